INSERT INTO doctor.diagnoses
    (case_id, diagnoser, model, error_class, root_cause, transient, recommended_action, confidence,
     fix_steps, evidence, input_tokens, output_tokens, cached_tokens, latency_ms)
VALUES
    (%(case_id)s, %(diagnoser)s, %(model)s, %(error_class)s, %(root_cause)s, %(transient)s,
     %(recommended_action)s, %(confidence)s, %(fix_steps)s, %(evidence)s, %(input_tokens)s,
     %(output_tokens)s, %(cached_tokens)s, %(latency_ms)s)
