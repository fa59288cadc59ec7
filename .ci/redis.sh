#!/usr/bin/env bash
# Make sure a Redis server answers on 127.0.0.1:6379 for the store contract tests.
#
# Idempotent and non-interactive: returns at once when Redis already answers PONG; otherwise
# installs redis-server from the Debian archive if it is missing, starts a throwaway,
# non-persistent instance (no RDB, no AOF) and waits up to 10 s for it to answer.
# SECBOT_CI_REDIS_PORT overrides the port (only to test this script beside a running server).
set -euo pipefail

HOST=127.0.0.1
PORT="${SECBOT_CI_REDIS_PORT:-6379}"
DATA_DIR="${SECBOT_CI_REDIS_DIR:-/tmp/secbot-redis}"
PYTHON="${PYTHON:-python3}"

log() { echo "redis.sh: $*" >&2; }

answers() {
    if command -v redis-cli >/dev/null 2>&1; then
        [ "$(redis-cli -h "$HOST" -p "$PORT" ping 2>/dev/null || true)" = "PONG" ]
    else
        # No redis-cli (Redis runs elsewhere, e.g. a service container): ask with redis-py.
        "$PYTHON" -c "import redis; redis.Redis(host='$HOST', port=$PORT, socket_timeout=1, \
socket_connect_timeout=1).ping()" >/dev/null 2>&1
    fi
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        log "need root to run: $*"
        return 1
    fi
}

if answers; then
    log "Redis already answers on $HOST:$PORT"
    exit 0
fi

if ! command -v redis-server >/dev/null 2>&1; then
    log "installing redis-server"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends redis-server
    # The package may have started its own service (where an init system runs): reuse it.
    if answers; then
        log "Redis answers on $HOST:$PORT (package service)"
        exit 0
    fi
fi

mkdir -p "$DATA_DIR"
log "starting redis-server on $HOST:$PORT (dir $DATA_DIR)"
redis-server --daemonize yes --bind "$HOST" --port "$PORT" --save "" --appendonly no \
    --dir "$DATA_DIR" --logfile "$DATA_DIR/redis-$PORT.log"

for _ in $(seq 1 50); do
    if answers; then
        log "Redis answers on $HOST:$PORT"
        exit 0
    fi
    sleep 0.2
done

log "Redis did not answer on $HOST:$PORT within 10 s; last log lines:"
tail -n 20 "$DATA_DIR/redis-$PORT.log" >&2 2>/dev/null || true
exit 1
