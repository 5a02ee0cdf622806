"""airflow-doctor: hooks."""
