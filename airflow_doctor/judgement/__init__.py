"""airflow-doctor: judgement."""
