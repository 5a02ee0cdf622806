"""The doctor's sweeper: failures no listener reported, and what people did (docs from the package)."""

from airflow_doctor.dags import doctor_sweeper_dag

dag = doctor_sweeper_dag()
