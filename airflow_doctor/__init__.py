"""airflow-doctor: self-healing for Apache Airflow 3.

A task instance that fails for good is read, recognised and dealt with: retried when the evidence
says a plain retry will work, otherwise escalated to people with a diagnosis. Install the
distribution, add two one-line DAG files that call `airflow_doctor.dags.doctor_dag()` and
`doctor_sweeper_dag()`, and set the connections described in docs/configuration.md.
"""

__version__ = "0.2.0"
