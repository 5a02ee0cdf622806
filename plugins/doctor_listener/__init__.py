"""The doctor's Airflow plugin: registers the listener that reports failed task instances."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from doctor_listener import listener


class DoctorListenerPlugin(AirflowPlugin):
    """Reports every task instance that fails for good to the doctor (see listener.py)."""

    name = "doctor_listener"
    listeners = [listener]
