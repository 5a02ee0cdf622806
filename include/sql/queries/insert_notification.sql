-- One message the doctor sent about one failed try (006_notifications.sql).
INSERT INTO doctor.notifications (dag_id, run_id, task_id, map_index, try_number, kind, subject, email, slack)
VALUES (%(dag_id)s, %(run_id)s, %(task_id)s, %(map_index)s, %(try_number)s, %(kind)s, %(subject)s,
        %(email)s, %(slack)s)
