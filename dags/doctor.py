"""The doctor: failed task instances diagnosed, retried or escalated (DAG docs come from the package)."""

from airflow_doctor.dags import doctor_dag

dag = doctor_dag()
