-- Every diagnosis of one case, newest first.
SELECT id, diagnoser, model, error_class, root_cause, transient, recommended_action, confidence,
       fix_steps, evidence, input_tokens, output_tokens, cached_tokens, latency_ms, created_at
FROM doctor.diagnoses WHERE case_id = %(case_id)s ORDER BY id DESC
