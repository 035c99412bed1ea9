#!/bin/bash
# Initialise a cluster on first start from POSTGRES_* like the official image, then run the server.
set -euo pipefail

export POSTGRES_USER=${POSTGRES_USER:-postgres}
export POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
export PGDATA=${PGDATA:-/var/lib/postgresql/data}
auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /run/postgresql
    chown -R postgres:postgres "$PGDATA" /run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
        echo "error: POSTGRES_PASSWORD is not set (or set POSTGRES_HOST_AUTH_METHOD=trust)" >&2
        exit 1
    fi
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
    initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host="$auth" >/dev/null
    rm -f "$pwfile"
    {
        echo "listen_addresses = '*'"
        [ "$auth" = md5 ] && echo "password_encryption = md5"
        # A self-signed certificate, so that sslmode=require can be tested as with managed PostgreSQL.
        echo "ssl = on"
    } >>"$PGDATA/postgresql.conf"
    openssl req -new -x509 -days 3650 -nodes -subj /CN=lifeboat-test \
        -keyout "$PGDATA/server.key" -out "$PGDATA/server.crt" >/dev/null 2>&1
    chmod 600 "$PGDATA/server.key"
    echo "host all all all $auth" >>"$PGDATA/pg_hba.conf"

    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    if [ "$POSTGRES_DB" != postgres ]; then
        psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -q \
            -c "CREATE DATABASE \"$POSTGRES_DB\""
    fi
    if [ "$auth" = md5 ] && [ -n "${POSTGRES_PASSWORD:-}" ]; then
        # initdb stored the password with the default scheme; store it again as md5.
        # psql interpolates :'pw' only in commands it reads, not in -c.
        psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -q --set=pw="$POSTGRES_PASSWORD" \
            <<<"ALTER ROLE \"$POSTGRES_USER\" PASSWORD :'pw'"
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
        *.sql) psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -q -f "$f" ;;
        *.sh) . "$f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "database cluster initialised"
fi

exec "$@"
