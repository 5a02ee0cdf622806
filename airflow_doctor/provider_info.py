"""What Airflow learns about the doctor through the `apache_airflow_provider` entry point.

`get_provider_info` names the distribution, its connection types and its plugins, and declares the
`doctor` section of Airflow's configuration (`AIRFLOW__DOCTOR__*`), built from the settings' own
declarations in `airflow_doctor.settings` so the two cannot drift.
"""

from __future__ import annotations

from airflow_doctor import __version__
from airflow_doctor.hooks import CONNECTION_TYPES
from airflow_doctor.settings import config_section


def get_provider_info() -> dict:
    """The provider info dictionary Airflow's ProvidersManager validates and reads.

    Returns:
        A dict in the shape of Airflow's `provider_info.schema.json`: package-name, name,
        description, versions, connection-types, plugins and config (the `[doctor]` options with
        their descriptions, types and defaults as strings; `airflow config list --section doctor`).
    """
    return {
        "package-name": "airflow-doctor",
        "name": "Airflow Doctor",
        "description": (
            "Self-healing for Apache Airflow 3: failed task instances diagnosed, retried or escalated."
        ),
        "versions": [__version__],
        "connection-types": CONNECTION_TYPES,
        "notifications": ["airflow_doctor.notifications.notifier.DoctorNotifier"],
        "plugins": [
            {"name": "doctor_listener", "plugin-class": "airflow_doctor.plugins.DoctorListenerPlugin"},
            {"name": "doctor_ui", "plugin-class": "airflow_doctor.plugins.DoctorUIPlugin"},
        ],
        "config": config_section(),
    }
