"""airflow-doctor: capture."""
