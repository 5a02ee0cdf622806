"""airflow-doctor: triggers."""
