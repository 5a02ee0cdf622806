"""airflow-doctor: self-healing for Apache Airflow 3.

A task instance that fails for good is read, recognised and dealt with: retried when the evidence
says a plain retry will work, otherwise escalated to people with a diagnosis. Install the
distribution, add two one-line DAG files that call `airflow_doctor.dags.doctor_dag()` and
`doctor_sweeper_dag()`, and set the connections described in docs/configuration.md.
"""

__version__ = "0.2.0"

#: Names importable from the package itself, each from its module on first use (PEP 562): importing
#: `airflow_doctor` alone stays free, as every task process of a DAG using the retry policy pays for it.
_LAZY = {
    "DoctorRetryPolicy": "airflow_doctor.retry_policy",
    "StaticDoctorRetryPolicy": "airflow_doctor.retry_policy",
}


def __getattr__(name: str):
    """`airflow_doctor.DoctorRetryPolicy` and `airflow_doctor.StaticDoctorRetryPolicy`, imported on first use.

    Raises:
        AttributeError: any other name.
    """
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'airflow_doctor' has no attribute {name!r}")
