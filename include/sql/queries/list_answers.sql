-- Every answer people gave on one case, newest first (the Doctor tab's history).
SELECT id, case_id, answer, error_class, actor, user_name, answered_at, cleared, undone_at, undone_by
FROM doctor.answers WHERE case_id = %(case_id)s ORDER BY id DESC
