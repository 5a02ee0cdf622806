"""airflow-doctor: listeners."""
