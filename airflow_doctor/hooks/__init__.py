"""The doctor's hooks: its clients for Airflow's REST API and for its knowledge base.

`CONNECTION_TYPES` lists the connection types the doctor defines, in the shape of the provider
info's `connection-types` (provider_info.py publishes it).
"""

CONNECTION_TYPES: list[dict[str, str]] = []
