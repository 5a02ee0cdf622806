"""airflow-doctor: reads, recognises and deals with failed Airflow task instances."""
