"""The doctor's hooks: its clients for Airflow's REST API and for its knowledge base.

`CONNECTION_TYPES` lists the connection types the doctor defines, in the shape of the provider
info's `connection-types` (provider_info.py publishes it). The knowledge base's connection
(`doctor_db`) is of the Postgres provider's type `postgres`, so it is not listed here.
"""

CONNECTION_TYPES: list[dict] = [
    {
        "connection-type": "airflow_api",
        "hook-class-name": "airflow_doctor.hooks.airflow_api.AirflowApiHook",
        "hook-name": "Airflow REST API",
        # Declared here, not by the hook's get_ui_field_behaviour() (deprecated since Airflow 3.2):
        # the connection form reads it without importing the hook.
        "ui-field-behaviour": {
            "hidden-fields": ["extra"],
            "relabeling": {
                "host": "API server URL",
                "schema": "Scheme (when the host is a bare name)",
                "login": "Username",
            },
            "placeholders": {
                "host": "http://airflow-api-server:8080",
                "schema": "http",
                "login": "the account the doctor acts as",
            },
        },
    }
]
