# Stand-in for Astro Runtime 3.3 "-base" (astrocrpublic.azurecr.io/runtime:3.3-8-python-3.11-base),
# built by `make astro-check` under that name because no image registry is reachable here. What it
# shares with the real image: Debian, Python 3.11 as `python`/`pip` on PATH, Airflow 3.3.2 with its
# core dependencies, AIRFLOW_HOME=/usr/local/airflow as the working directory, a user `astro` in
# group 0, and no ONBUILD triggers (the "-base" flavour). What it lacks: everything proprietary in
# the real image (Astronomer's UI plugins, logging, monitoring DAG, its own provider set).
FROM astro-check/debian:bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates procps \
    && rm -rf /var/lib/apt/lists/*

# The host's CA bundle (the one `pip config list` names) and the local index on the Docker bridge
# that serves the wheels that exist only on the host's disk.
COPY host-ca.crt /etc/ssl/certs/host-ca.crt
ARG LOCAL_INDEX_HOST
RUN printf '[global]\ncert = /etc/ssl/certs/host-ca.crt\ntrusted-host = %s\ndisable-pip-version-check = true\ndefault-timeout = 180\n' \
        "${LOCAL_INDEX_HOST}" > /etc/pip.conf

RUN python3.11 -m venv /usr/local/python
ENV PATH=/usr/local/python/bin:${PATH} \
    AIRFLOW_HOME=/usr/local/airflow

# The versions of the host's tested .venv, as constraints: the stand-in resolves to what `make test`
# runs, not to whatever PyPI serves today.
COPY constraints.txt /etc/astro-check-constraints.txt
RUN pip install --no-cache-dir -c /etc/astro-check-constraints.txt apache-airflow==3.3.2

RUN useradd --uid 50000 --gid 0 --create-home --home-dir /home/astro astro \
    && mkdir -p /usr/local/airflow/logs \
    && chown -R astro:0 /usr/local/airflow
WORKDIR /usr/local/airflow
USER astro
LABEL io.astronomer.docker=true \
      io.astronomer.docker.runtime.version=3.3-8 \
      io.astronomer.docker.airflow.version=3.3.2 \
      io.airflow-doctor.astro-check.stand-in=true
