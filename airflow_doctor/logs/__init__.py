"""airflow-doctor: logs."""
