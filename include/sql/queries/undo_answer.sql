-- "Undo" on the Doctor tab: the newest active answer of the case is undone. Returns it, or nothing.
UPDATE doctor.answers SET undone_at = now(), undone_by = %(user_name)s
WHERE id = (SELECT id FROM doctor.answers WHERE case_id = %(case_id)s AND undone_at IS NULL
            ORDER BY id DESC LIMIT 1)
RETURNING id, case_id, answer, error_class, user_name, answered_at, undone_at, undone_by
