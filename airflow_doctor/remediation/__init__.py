"""airflow-doctor: remediation."""
