"""airflow-doctor: knowledge."""
