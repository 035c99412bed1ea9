# shellcheck shell=bash
# The real services the tests run against, each on a free loopback port, handed to the tests in
# LBTEST_* variables. Everything started here is stopped at exit, pass or fail.

VENV="$CACHE_DIR/venv"
RUN_ID="lbtest-$$"

ensure_python_tools() {
    if [ ! -x "$VENV/bin/moto_server" ] || ! "$VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
        say "installing moto (S3) and aiosmtpd (SMTP) from PyPI into $VENV"
        if ! python3 -m venv "$VENV" 2>/dev/null; then
            apt_install python3-venv
            python3 -m venv "$VENV"
        fi
        "$VENV/bin/pip" install -q --disable-pip-version-check 'moto[server]' aiosmtpd
    fi
}

wait_port() { # wait_port PORT WHAT
    local i
    for i in $(seq 1 100); do
        python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$1)))" && return
        sleep 0.1
    done
    die "$2 did not listen on 127.0.0.1:$1"
}

wait_healthy() { # wait_healthy CONTAINER
    local i status
    for i in $(seq 1 120); do
        status=$(docker inspect -f '{{.State.Health.Status}}' "$1" 2>/dev/null || echo gone)
        [ "$status" = healthy ] && return
        [ "$status" = gone ] && break
        sleep 0.5
    done
    docker logs "$1" >&2 || true
    die "container $1 did not become healthy (status: $status)"
}

wait_running() { # wait_running CONTAINER: its process is up (an image health check would not speak TLS)
    local i
    for i in $(seq 1 60); do
        [ "$(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ] && return
        sleep 0.5
    done
    docker logs "$1" >&2 || true
    die "container $1 did not start"
}

start_services() {
    local logs="$CACHE_DIR/log/$RUN_ID"
    mkdir -p "$logs"
    on_exit "rm -rf '$logs'"
    on_exit "docker ps -aq --filter label=lifeboat-run=$RUN_ID | xargs -r docker rm -f -v >/dev/null"
    # What the tests clean up themselves, unless they were interrupted (Ctrl-C skips their Drops).
    on_exit "remove_test_leftovers"

    say "starting PostgreSQL, MariaDB and Redis containers"
    local pw my_pw my_root_pw
    pw=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
    my_pw=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
    my_root_pw=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
    docker run -d --name "$RUN_ID-postgres" --label "lifeboat-run=$RUN_ID" \
        -e POSTGRES_USER=lifeboat -e POSTGRES_PASSWORD="$pw" -e POSTGRES_DB=lifeboat \
        -p 127.0.0.1::5432 lifeboat-test/postgres:15 >/dev/null
    docker run -d --name "$RUN_ID-redis" --label "lifeboat-run=$RUN_ID" \
        -p 127.0.0.1::6379 lifeboat-test/redis:7 >/dev/null

    say "starting S3 (moto) and SMTP (aiosmtpd) on loopback"
    local s3_port smtp_port starttls_port tls_port
    s3_port=$(free_port)
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >"$logs/moto.log" 2>&1 &
    on_exit "kill $!"
    # A CA and a certificate it signs for 127.0.0.1/localhost: clients verify it with the CA file.
    local tls="$logs/tls"
    mkdir -p "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=lifeboat-test-ca \
        -keyout "$tls/ca.key" -out "$tls/ca.pem" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$tls/smtp.key" -out "$tls/smtp.csr" >/dev/null 2>&1
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$tls/ext.cnf"
    openssl x509 -req -in "$tls/smtp.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
        -days 2 -extfile "$tls/ext.cnf" -out "$tls/smtp.pem" >/dev/null 2>&1
    # MariaDB serves TLS with the same certificate (localhost, 127.0.0.1): VERIFY_IDENTITY
    # against the CA file can be tested, as with a managed server.
    mkdir -p "$tls/mariadb"
    cp "$tls/smtp.pem" "$tls/mariadb/server.pem"
    cp "$tls/smtp.key" "$tls/mariadb/server.key"
    docker run -d --name "$RUN_ID-mariadb" --label "lifeboat-run=$RUN_ID" \
        -e MARIADB_ROOT_PASSWORD="$my_root_pw" -e MARIADB_DATABASE=lifeboat \
        -e MARIADB_USER=lifeboat -e MARIADB_PASSWORD="$my_pw" -v "$tls/mariadb:/tls:ro" \
        -p 127.0.0.1::3306 lifeboat-test/mariadb:10.11 >/dev/null
    # Redis over TLS only, as Upstash serves it (seed 004): the same certificate, readable by the
    # image's redis user.
    mkdir -p "$tls/redis"
    cp "$tls/smtp.pem" "$tls/redis/server.pem"
    cp "$tls/smtp.key" "$tls/redis/server.key"
    chmod 755 "$tls/redis"
    chmod 644 "$tls/redis/server.pem" "$tls/redis/server.key"
    docker run -d --name "$RUN_ID-redis-tls" --label "lifeboat-run=$RUN_ID" -v "$tls/redis:/tls:ro" --no-healthcheck \
        -p 127.0.0.1::6380 lifeboat-test/redis:7 redis-server --port 0 --tls-port 6380 \
        --tls-cert-file /tls/server.pem --tls-key-file /tls/server.key --tls-auth-clients no \
        --bind 0.0.0.0 --protected-mode no --save "" --appendonly no >/dev/null
    smtp_port=$(free_port)
    starttls_port=$(free_port)
    tls_port=$(free_port)
    LBTEST_SMTP_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
    export LBTEST_SMTP_PASSWORD
    "$VENV/bin/python" "$ROOT/tests/fixtures/smtp_server.py" "$logs/maildir" "$tls/smtp.pem" "$tls/smtp.key" \
        "$smtp_port" "$starttls_port" "$tls_port" >"$logs/smtp.log" 2>&1 &
    on_exit "kill $!"

    wait_port "$s3_port" "moto_server"
    wait_port "$smtp_port" "the SMTP server"
    "$VENV/bin/python" - "$s3_port" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
                  aws_access_key_id="lbtest", aws_secret_access_key="lbtest-secret")
s3.create_bucket(Bucket="lifeboat-test")
PY

    wait_healthy "$RUN_ID-postgres"
    wait_healthy "$RUN_ID-redis"
    wait_healthy "$RUN_ID-mariadb"
    wait_running "$RUN_ID-redis-tls"
    local rediss_port
    rediss_port=$(docker port "$RUN_ID-redis-tls" 6380 | head -1 | awk -F: '{print $NF}')
    wait_port "$rediss_port" "Redis over TLS"
    local pg_port redis_port my_port
    my_port=$(docker port "$RUN_ID-mariadb" 3306 | head -1 | awk -F: '{print $NF}')
    pg_port=$(docker port "$RUN_ID-postgres" 5432 | head -1 | awk -F: '{print $NF}')
    redis_port=$(docker port "$RUN_ID-redis" 6379 | head -1 | awk -F: '{print $NF}')

    export LBTEST_DATABASE_URL="postgres://lifeboat:$pw@127.0.0.1:$pg_port/lifeboat"
    export LBTEST_POSTGRES_CONTAINER="$RUN_ID-postgres"
    export LBTEST_MYSQL_URL="mysql://lifeboat:$my_pw@127.0.0.1:$my_port/lifeboat"
    export LBTEST_MYSQL_ROOT_PASSWORD="$my_root_pw"
    export LBTEST_MARIADB_CONTAINER="$RUN_ID-mariadb"
    export LBTEST_MYSQL_CA_FILE="$tls/ca.pem"
    export LBTEST_REDIS_URL="redis://127.0.0.1:$redis_port"
    export LBTEST_REDISS_URL="rediss://127.0.0.1:$rediss_port"
    export LBTEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
    export LBTEST_S3_BUCKET=lifeboat-test
    export LBTEST_S3_ACCESS_KEY_ID=lbtest
    export LBTEST_S3_SECRET_ACCESS_KEY=lbtest-secret
    export LBTEST_SMTP_PORT=$smtp_port
    export LBTEST_SMTP_STARTTLS_PORT=$starttls_port
    export LBTEST_SMTP_TLS_PORT=$tls_port
    export LBTEST_SMTP_CA_FILE="$tls/ca.pem"
    export LBTEST_MAILDIR="$logs/maildir"
    export LBTEST_COMPOSE="$COMPOSE_CMD"
}

# Containers, compose projects, stacks, networks and images that tests name lbtest-*/lbswarm*.
remove_test_leftovers() {
    if [ "$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = active ]; then
        docker stack ls --format '{{.Name}}' 2>/dev/null | grep '^lbswarm' | xargs -r -n1 docker stack rm >/dev/null 2>&1
        docker service ls --filter label=lifeboat.job -q | xargs -r docker service rm >/dev/null 2>&1
        sleep 2
    fi
    docker ps -aq --filter label=lifeboat-test=1 | xargs -r docker rm -f -v >/dev/null 2>&1
    docker ps -a --format '{{.ID}} {{.Label "com.docker.compose.project"}}' |
        awk '$2 ~ /^lbtest/ {print $1}' | xargs -r docker rm -f -v >/dev/null 2>&1
    docker network ls --format '{{.Name}}' | grep '^lbtest' | xargs -r docker network rm >/dev/null 2>&1
    docker volume ls -q | grep -E '^(lbtest|lbswarm)' | xargs -r docker volume rm >/dev/null 2>&1
    docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '(^|/|:)lbtest-' | xargs -r docker rmi -f >/dev/null 2>&1
    return 0
}
