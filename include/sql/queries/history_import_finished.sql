-- Whether any history import has read its whole window (the sweeper imports a slice per sweep until one has).
SELECT EXISTS (SELECT 1 FROM doctor.history_imports WHERE finished_at IS NOT NULL)
