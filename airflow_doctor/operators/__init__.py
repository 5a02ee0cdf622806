"""airflow-doctor: operators."""
