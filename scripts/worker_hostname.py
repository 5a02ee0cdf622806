"""`[core] hostname_callable` for several Airflow workers on one machine (the local Celery stack).

Airflow records the host name of the worker that ran each try in `task_instance.hostname`
(the task runner calls the configured callable). Workers on separate machines differ by nature;
the local stack's Celery workers share one host, so each is started with its own
`DOCTOR_WORKER_HOSTNAME` and reports that instead. Kept free of imports beyond the standard
library: every task process imports it.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    """This worker's host name: `$DOCTOR_WORKER_HOSTNAME`, else the machine's FQDN (`socket.getfqdn()`)."""
    return os.environ.get("DOCTOR_WORKER_HOSTNAME") or socket.getfqdn()
