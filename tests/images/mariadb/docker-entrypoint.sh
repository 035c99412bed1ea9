#!/bin/bash
# Initialise a data directory on first start from MARIADB_*/MYSQL_* like the official image, then
# run the server on every interface, with TLS offered.
set -euo pipefail

var() { # var NAME: MARIADB_NAME, else MYSQL_NAME
    local m="MARIADB_$1" y="MYSQL_$1"
    printf '%s' "${!m:-${!y:-}}"
}
root_pw=$(var ROOT_PASSWORD)
database=$(var DATABASE)
user=$(var USER)
password=$(var PASSWORD)
datadir=/var/lib/mysql
tls=/etc/mysql/tls

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$datadir" /run/mysqld "$tls"
    # A certificate mounted at /tls (server.pem, server.key) is served; else a self-signed one.
    if [ -f /tls/server.pem ] && [ -f /tls/server.key ]; then
        cp /tls/server.pem /tls/server.key "$tls/"
    elif [ ! -f "$tls/server.pem" ]; then
        openssl req -new -x509 -days 3650 -nodes -subj /CN=lifeboat-test-mariadb \
            -keyout "$tls/server.key" -out "$tls/server.pem" >/dev/null 2>&1
    fi
    chown -R mysql:mysql "$datadir" /run/mysqld "$tls"
    exec setpriv --reuid=mysql --regid=mysql --init-groups "$0" "$@"
fi

# SQL string literal of $1 (backslashes and quotes doubled).
lit() {
    local s=${1//\\/\\\\}
    printf "'%s'" "${s//\'/\'\'}"
}

# Debian's package left a data directory of its own in the image: a new volume starts from that
# copy, which is replaced by one made from the environment (the marker says it was).
if [ "${1:-}" = mariadbd ] && [ ! -f "$datadir/.lifeboat-initialised" ]; then
    if [ -z "$root_pw" ]; then
        echo "error: MARIADB_ROOT_PASSWORD (or MYSQL_ROOT_PASSWORD) is not set" >&2
        exit 1
    fi
    find "$datadir" -mindepth 1 -delete
    mariadb-install-db --user=mysql --datadir="$datadir" --auth-root-authentication-method=normal \
        --skip-test-db >/dev/null
    mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket=/run/mysqld/init.sock &
    pid=$!
    for _ in $(seq 1 60); do
        mariadb-admin --socket=/run/mysqld/init.sock ping >/dev/null 2>&1 && break
        sleep 0.5
    done
    {
        echo "SET sql_log_bin=0;"
        echo "DELETE FROM mysql.global_priv WHERE User='' OR Host NOT IN ('localhost');"
        echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(lit "$root_pw");"
        echo "CREATE USER 'root'@'%' IDENTIFIED BY $(lit "$root_pw");"
        echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
        [ -n "$database" ] && echo "CREATE DATABASE IF NOT EXISTS \`${database//\`/\`\`}\` CHARACTER SET utf8mb4;"
        if [ -n "$user" ]; then
            echo "CREATE USER $(lit "$user")@'%' IDENTIFIED BY $(lit "$password");"
            [ -n "$database" ] && echo "GRANT ALL ON \`${database//\`/\`\`}\`.* TO $(lit "$user")@'%';"
        fi
        echo "FLUSH PRIVILEGES;"
    } | mariadb --socket=/run/mysqld/init.sock -uroot
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
        *.sql) mariadb --socket=/run/mysqld/init.sock -uroot -p"$root_pw" ${database:+"$database"} <"$f" ;;
        *.sh) . "$f" ;;
        esac
    done
    kill "$pid"
    wait "$pid" || true
    touch "$datadir/.lifeboat-initialised"
    echo "database initialised"
fi

if [ "${1:-}" = mariadbd ]; then
    shift
    exec mariadbd --user=mysql --datadir="$datadir" --bind-address=0.0.0.0 --port=3306 \
        --skip-name-resolve --log-warnings=1 \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
        --ssl-cert="$tls/server.pem" --ssl-key="$tls/server.key" "$@"
fi
exec "$@"
