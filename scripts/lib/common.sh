# shellcheck shell=bash
# Helpers shared by scripts/test, scripts/demo and scripts/bench.
#
# Everything here is idempotent and cached: a rerun on a machine that already built the images
# costs seconds. Nothing is pulled from a registry: images are built from a Debian root
# filesystem made by debootstrap, with the mirror read from this machine's apt sources.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE_DIR=${LBTEST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lifeboat}
mkdir -p "$CACHE_DIR"
# The classic builder: it resolves FROM against local images and never contacts a registry.
export DOCKER_BUILDKIT=0

# Cleanup actions run at exit, last registered first.
_CLEANUPS=()
on_exit() { _CLEANUPS+=("$1"); }
_run_cleanups() {
    local i
    for ((i = ${#_CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${_CLEANUPS[$i]}" || true
    done
}
trap _run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 2
}

is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
    is_root || die "missing $*; install it with: sudo apt-get install $*"
    say "installing $* from Debian's packages"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    fi
}

need_cmd() { # need_cmd COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 || apt_install "$2"
}

# --- Docker engine -----------------------------------------------------------------------------

# Use the engine that answers; where none does and we are root on Debian, install docker.io,
# start dockerd and stop it at exit (only the daemon this script started).
ensure_engine() {
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        return
    fi
    if command -v docker >/dev/null 2>&1 && docker info 2>&1 | grep -qi 'permission denied'; then
        die "the Docker engine runs but refuses $(id -un): add the user to the docker group (sudo usermod -aG docker $(id -un), then log in again) or run as root"
    fi
    if ! is_root || [ ! -f /etc/debian_version ]; then
        die "no Docker engine answers. Start one (sudo systemctl start docker, or run dockerd) and retry."
    fi
    need_cmd dockerd docker.io
    need_cmd docker docker.io
    # Installing docker.io may have started the engine through systemd already.
    for _ in $(seq 1 5); do
        docker info >/dev/null 2>&1 && return
        sleep 1
    done
    say "starting dockerd (stopped again at exit)"
    mkdir -p "$CACHE_DIR/log"
    dockerd >"$CACHE_DIR/log/dockerd.log" 2>&1 &
    local pid=$!
    on_exit "kill $pid; wait $pid 2>/dev/null"
    local i
    for i in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return
        sleep 1
    done
    die "dockerd did not answer within 60 s; see $CACHE_DIR/log/dockerd.log"
}

# Export COMPOSE_CMD: "docker compose" (v2 plugin) or "docker-compose" (v1).
ensure_compose() {
    if docker compose version >/dev/null 2>&1; then
        COMPOSE_CMD="docker compose"
    elif command -v docker-compose >/dev/null 2>&1; then
        COMPOSE_CMD="docker-compose"
    else
        apt_install docker-compose
        COMPOSE_CMD="docker-compose"
    fi
}

# --- Images ------------------------------------------------------------------------------------

BASE_PACKAGES="postgresql-15,redis-server,nginx-light,caddy,mariadb-server,ca-certificates,openssl"
BASE_IMAGE=lifeboat-test/base:bookworm

apt_mirror() {
    local m=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
        m=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
    fi
    [ -n "$m" ] || die "no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
    echo "$m"
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

hash_of() { # hash_of FILE|STRING... -> 12 hex digits over the contents of files and the strings
    local x
    for x in "$@"; do
        if [ -f "$x" ]; then cat "$x"; else printf '%s\n' "$x"; fi
    done | sha256sum | cut -c1-12
}

build_base_image() {
    local hash
    hash=$(hash_of "bookworm minbase $BASE_PACKAGES v1")
    if image_exists "lifeboat-test/base:$hash"; then
        docker tag "lifeboat-test/base:$hash" "$BASE_IMAGE"
        return
    fi
    is_root || die "the test images are built from a Debian root filesystem (debootstrap), which needs root: run this script as root (sudo) once; later runs reuse the cached images"
    need_cmd debootstrap debootstrap
    local mirror rootfs
    mirror=$(apt_mirror)
    rootfs="$CACHE_DIR/rootfs-$hash"
    if [ ! -f "$rootfs.done" ]; then
        say "building a Debian bookworm root filesystem with debootstrap (about a minute)"
        rm -rf "$rootfs"
        debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$rootfs" "$mirror" \
            >"$CACHE_DIR/debootstrap.log" 2>&1 || die "debootstrap failed; see $CACHE_DIR/debootstrap.log"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        touch "$rootfs.done"
    fi
    say "importing the root filesystem as $BASE_IMAGE"
    tar -C "$rootfs" -c . | docker import \
        -c 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'ENV LANG=C.UTF-8' \
        - "lifeboat-test/base:$hash" >/dev/null
    docker tag "lifeboat-test/base:$hash" "$BASE_IMAGE"
    rm -rf "$rootfs" "$rootfs.done"
}

# build_context_image NAME:TAG CONTEXT_DIR [docker build args...]
# Builds once per content hash of the base image and the context; reruns only retag.
build_context_image() {
    local ref=$1 ctx=$2
    shift 2
    local base_id hash name
    base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
    hash=$({
        (cd "$ctx" && find . -type f | LC_ALL=C sort | xargs sha256sum)
        echo "$base_id $*"
    } | sha256sum | cut -c1-12)
    name=${ref%%:*}
    if image_exists "$name:h-$hash"; then
        docker tag "$name:h-$hash" "$ref"
        return
    fi
    say "building image $ref"
    docker build -q -t "$name:h-$hash" -t "$ref" "$@" "$ctx" >/dev/null 2>"$CACHE_DIR/build.log" ||
        die "building $ref failed: $(cat "$CACHE_DIR/build.log")"
}

# Forget cache tags of NAME that no current tag points at (older builds of the same image).
prune_stale_tags() {
    local name=$1 live tag
    live=$(docker images --format '{{.Tag}} {{.ID}}' "$name" | awk '$1 !~ /^h-/ {print $2}' | sort -u)
    docker images --format '{{.Tag}} {{.ID}}' "$name" | while read -r tag id; do
        case "$tag" in h-*) grep -qx "$id" <<<"$live" || docker rmi "$name:$tag" >/dev/null 2>&1 || true ;; esac
    done
}

build_service_images() {
    build_base_image
    build_context_image lifeboat-test/postgres:15 "$ROOT/tests/images/postgres"
    build_context_image lifeboat-test/redis:7 "$ROOT/tests/images/redis"
    build_context_image lifeboat-test/mariadb:10.11 "$ROOT/tests/images/mariadb"
    build_context_image lifeboat-test/nginx:1.22 "$ROOT/tests/images/nginx"
    build_context_image lifeboat-test/caddy:2.6 "$ROOT/tests/images/caddy"
}

# The demo app: one binary, three image tags. v2 adds a migration; broken never becomes healthy.
build_app_images() {
    local bin=$1 ctx="$CACHE_DIR/app-context"
    rm -rf "$ctx"
    mkdir -p "$ctx"
    cp "$ROOT/tests/images/app/Dockerfile" "$ctx/"
    cp "$bin" "$ctx/lifeboat-demo-app"
    local v
    for v in v1 v2 broken; do
        build_context_image "lifeboat-demo/app:$v" "$ctx" --build-arg "DEMO_VERSION=$v"
    done
    prune_stale_tags lifeboat-demo/app
}

# A single-node swarm for the Swarm suite (tests/e2e/swarm.rs) and the bench group `swarm`, on
# loopback, left again at the end when this script made it; an engine already in a swarm is used
# as it is, and stays so.
ensure_swarm() {
    local state
    state=$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unknown)
    [ "$state" = active ] && return 0
    [ "$state" = inactive ] || die "this engine's swarm state is '$state'; the Swarm tests need an inactive or active one"
    say "initialising a single-node swarm on loopback (left again at the end)"
    docker swarm init --advertise-addr 127.0.0.1 --listen-addr "127.0.0.1:$(free_port)" >/dev/null
    on_exit "docker swarm leave --force >/dev/null 2>&1"
}

# --- Cargo -------------------------------------------------------------------------------------

cargo_build() { # cargo_build [extra args]: every binary of the workspace, debug profile
    say "building the workspace"
    (cd "$ROOT" && cargo build --workspace --bins --locked "$@")
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The target of static binaries: musl where its target can be installed (smallest), else the
# host's glibc with crt-static. Prints "TARGET RUSTFLAGS".
static_target() {
    local host arch musl
    host=$(rustc -vV | sed -n 's/^host: //p')
    arch=${host%%-*}
    musl="$arch-unknown-linux-musl"
    # ring's C code is compiled with musl-gcc (Debian's musl-tools): musl only when both are there.
    command -v musl-gcc >/dev/null 2>&1 || { is_root && apt_install musl-tools >/dev/null 2>&1; } || true
    if command -v musl-gcc >/dev/null 2>&1 &&
        { rustup target list --installed 2>/dev/null | grep -qx "$musl" || rustup target add "$musl" >/dev/null 2>&1; }; then
        echo "$musl ${RUSTFLAGS:-}"
    else
        echo "$host ${RUSTFLAGS:-} -C target-feature=+crt-static"
    fi
}

# lifeboat-healthcheck as a static binary: the only file a FROM scratch image needs.
# Prints its path. Usage: build_static_healthcheck [cargo args, e.g. --no-default-features]
build_static_healthcheck() {
    local target rustflags dir="target/static"
    read -r target rustflags <<<"$(static_target)"
    [ $# -gt 0 ] && dir="target/static-min"
    say "building the static lifeboat-healthcheck ($target${1:+ $*})"
    (cd "$ROOT" && RUSTFLAGS="$rustflags" cargo build --profile healthcheck --locked -p lifeboat-healthcheck \
        --target "$target" --target-dir "$dir" "$@") >&2
    echo "$ROOT/$dir/$target/healthcheck/lifeboat-healthcheck"
}
