#!/usr/bin/env bash
# Starts moto (SQS, DynamoDB, Secrets Manager emulator) in the background on a free loopback port.
# Writes $RUN_DIR/moto.pid, $RUN_DIR/moto.log and $RUN_DIR/moto.env, the environment that points
# the AWS SDK (and `cargo lambda watch --env-file`) at it. RUN_DIR defaults to infra/local/run.
#   bash infra/local/start-moto.sh && set -a && . infra/local/run/moto.env && set +a
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="${RUN_DIR:-$ROOT/infra/local/run}"
MOTO="$ROOT/.tools/bin/moto_server"
mkdir -p "$RUN_DIR"

if [[ ! -x "$MOTO" ]]; then
    echo "start-moto: $MOTO is missing: run infra/local/install-tools.sh first" >&2
    exit 1
fi
if [[ -f "$RUN_DIR/moto.pid" ]] && kill -0 "$(cat "$RUN_DIR/moto.pid")" 2>/dev/null; then
    echo "start-moto: already running (pid $(cat "$RUN_DIR/moto.pid")); env in $RUN_DIR/moto.env"
    exit 0
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PORT="${MOTO_PORT:-$(free_port)}"
"$MOTO" -H 127.0.0.1 -p "$PORT" >"$RUN_DIR/moto.log" 2>&1 &
PID=$!
echo "$PID" >"$RUN_DIR/moto.pid"

for _ in $(seq 1 200); do
    if curl -sf "http://127.0.0.1:$PORT/moto-api/" >/dev/null 2>&1; then
        cat >"$RUN_DIR/moto.env" <<ENV
AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
AWS_REGION=eu-central-1
AWS_DEFAULT_REGION=eu-central-1
AWS_ACCESS_KEY_ID=testing
AWS_SECRET_ACCESS_KEY=testing
AWS_EC2_METADATA_DISABLED=true
ENV
        echo "start-moto: moto on http://127.0.0.1:$PORT (pid $PID); env in $RUN_DIR/moto.env"
        exit 0
    fi
    if ! kill -0 "$PID" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
echo "start-moto: moto did not come up; see $RUN_DIR/moto.log" >&2
kill "$PID" 2>/dev/null || true
rm -f "$RUN_DIR/moto.pid"
exit 1
