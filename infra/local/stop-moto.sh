#!/usr/bin/env bash
# Stops the moto server start-moto.sh started (by its PID file; RUN_DIR as there).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="${RUN_DIR:-$ROOT/infra/local/run}"
PID_FILE="$RUN_DIR/moto.pid"

if [[ ! -f "$PID_FILE" ]]; then
    echo "stop-moto: not running (no $PID_FILE)"
    exit 0
fi
PID="$(cat "$PID_FILE")"
if kill "$PID" 2>/dev/null; then
    for _ in $(seq 1 50); do
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$PID" 2>/dev/null || true
    echo "stop-moto: stopped pid $PID"
else
    echo "stop-moto: pid $PID was not running"
fi
rm -f "$PID_FILE" "$RUN_DIR/moto.env"
