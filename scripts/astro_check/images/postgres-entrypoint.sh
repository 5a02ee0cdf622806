#!/bin/sh
# Entry point of the Postgres stand-in: initialise PGDATA once with the official image's variables,
# then run the server in the foreground as the `postgres` user.
set -eu
: "${POSTGRES_USER:=postgres}" "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
mkdir -p "$PGDATA" && chown postgres "$PGDATA" && chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp) && printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile" && chown postgres "$pwfile"
    # UTF8 like the official image: psycopg 3 returns bytes from an SQL_ASCII server.
    runuser -u postgres -- /opt/pgbin/initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [ "$POSTGRES_DB" != "postgres" ]; then
        echo "CREATE DATABASE \"$POSTGRES_DB\";" \
            | runuser -u postgres -- /opt/pgbin/postgres --single -D "$PGDATA" postgres >/dev/null
    fi
fi
exec runuser -u postgres -- /opt/pgbin/postgres -D "$PGDATA" -c listen_addresses='*' \
    -c unix_socket_directories=/tmp -c max_connections=200
