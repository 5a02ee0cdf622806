INSERT INTO doctor.remediations
    (case_id, decision, reasons, similarity, actor, cleared, outcome, dag_id, run_id, task_id, map_index,
     retry_class)
VALUES
    (%(case_id)s, %(decision)s, %(reasons)s, %(similarity)s, %(actor)s, %(cleared)s, %(outcome)s, %(dag_id)s,
     %(run_id)s, %(task_id)s, %(map_index)s, %(retry_class)s)
