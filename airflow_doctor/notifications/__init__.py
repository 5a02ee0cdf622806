"""airflow-doctor: notifications."""
