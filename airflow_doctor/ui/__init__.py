"""airflow-doctor: ui."""
