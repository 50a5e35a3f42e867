#!/usr/bin/env bash
# The two Lambda functions end to end under cargo-lambda's local Lambda emulator (no Docker):
#   moto (SQS FIFO + DLQ, DynamoDB, Secrets Manager) <- resources as template.yaml defines them
#   klicktipp-sim                                   <- the KlickTipp account
#   cargo lambda watch                              <- ingest (function URL) and consumer
# 1. POST a signed Zoom registration to http://127.0.0.1:<port>/lambda-url/ingest/hooks/zoom
# 2. read the queued message from SQS and wrap it in an SQS event (tests/fixtures/aws/sqs_record.json)
# 3. cargo lambda invoke consumer --data-file event.json
# 4. the simulator's contact carries "[Zoom] [Demo Webinar] Registered"
# The functions read their secrets from a Secrets Manager secret (BRIDGE_SECRETS_ARN), as on AWS.
# Everything binds to 127.0.0.1; every process started here is stopped on exit. Prints PASS or FAIL.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.tools/bin:$PATH" # cargo-lambda, and zig through `python3 -m ziglang`
export RUN_DIR="$ROOT/infra/local/run/flow-$$"
PYTHON="$ROOT/.tools/bin/python3"
FIRST_CALL_TIMEOUT="${FIRST_CALL_TIMEOUT:-600}" # cargo lambda builds each function on its first call
WATCH_PID="" SIM_PID="" STARTED=$SECONDS
mkdir -p "$RUN_DIR"

log() { echo "lambda-flow: $*"; }

fail() {
    log "FAIL: $*"
    for file in watch.log sim.log; do
        [[ -f "$RUN_DIR/$file" ]] && { echo "--- last lines of $file"; tail -n 40 "$RUN_DIR/$file"; }
    done
    exit 1
}

cleanup() {
    local status=$?
    # cargo lambda watch runs in its own process group with the function processes it spawns.
    [[ -n "$WATCH_PID" ]] && kill -- "-$WATCH_PID" 2>/dev/null || true
    [[ -n "$SIM_PID" ]] && kill "$SIM_PID" 2>/dev/null || true
    [[ -n "$WATCH_PID" ]] && wait "$WATCH_PID" 2>/dev/null || true
    [[ -n "$SIM_PID" ]] && wait "$SIM_PID" 2>/dev/null || true
    bash "$ROOT/infra/local/stop-moto.sh" >/dev/null 2>&1 || true
    if [[ $status -eq 0 ]]; then rm -rf "$RUN_DIR"; else log "kept $RUN_DIR for inspection"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_http() { # url timeout-seconds [pid that must stay alive]
    local deadline=$((SECONDS + $2))
    until curl -sf -o /dev/null "$1"; do
        if ((SECONDS >= deadline)) || { [[ -n "${3:-}" ]] && ! kill -0 "$3" 2>/dev/null; }; then
            return 1
        fi
        sleep 0.5
    done
}

# --------------------------------------------------------------------------- emulators
bash infra/local/install-tools.sh >/dev/null
bash infra/local/start-moto.sh >/dev/null
bash infra/local/create-resources.sh "flow-$$" >/dev/null
set -a
. "$RUN_DIR/moto.env"
. "$RUN_DIR/resources.env"
set +a
log "moto at $AWS_ENDPOINT_URL, queue $EVENTS_QUEUE_URL"

cargo build --workspace --bins --quiet # klicktipp-sim, and warm artifacts for the functions
SIM_PORT="$(free_port)"
"$ROOT/target/debug/klicktipp-sim" --listen "127.0.0.1:$SIM_PORT" >"$RUN_DIR/sim.log" 2>&1 &
SIM_PID=$!
SIM_URL="http://127.0.0.1:$SIM_PORT"
wait_for_http "$SIM_URL/_sim/contacts" 30 "$SIM_PID" || fail "klicktipp-sim did not start"
log "klicktipp-sim at $SIM_URL"

ZOOM_SECRET="flow-zoom-secret-$$"
SECRET_ARN="$("$PYTHON" - "$ZOOM_SECRET" <<'PY'
import json, sys, boto3
secret = {"KLICKTIPP_PASSWORD": "sim-password", "BRIDGE_ZOOM_SECRET_TOKEN": sys.argv[1], "BRIDGE_GENERIC_SECRET": ""}
print(boto3.client("secretsmanager").create_secret(Name="flow-bridge-secrets", SecretString=json.dumps(secret))["ARN"])
PY
)"

# --------------------------------------------------------------------------- functions
cat >"$RUN_DIR/functions.env" <<ENV
AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
AWS_REGION=$AWS_REGION
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
AWS_EC2_METADATA_DISABLED=true
EVENTS_QUEUE_URL=$EVENTS_QUEUE_URL
EVENTS_TABLE=$EVENTS_TABLE
CONTACTS_TABLE=$CONTACTS_TABLE
HISTORY_TABLE=$HISTORY_TABLE
BRIDGE_SECRETS_ARN=$SECRET_ARN
KLICKTIPP_BASE_URL=$SIM_URL
KLICKTIPP_USERNAME=bridge
BRIDGE_KLICKTIPP_RPS=10
BRIDGE_CONSUMER_CONCURRENCY=2
RUST_LOG="info,webinar_bridge_consumer=debug"
ENV
LAMBDA_PORT="$(free_port)"
setsid cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$LAMBDA_PORT" --ignore-changes \
    --env-file "$RUN_DIR/functions.env" >"$RUN_DIR/watch.log" 2>&1 &
WATCH_PID=$!
LAMBDA_URL="http://127.0.0.1:$LAMBDA_PORT/lambda-url"
log "cargo lambda watch on 127.0.0.1:$LAMBDA_PORT; building ingest on its first call"
wait_for_http "$LAMBDA_URL/ingest/health" "$FIRST_CALL_TIMEOUT" "$WATCH_PID" || fail "the ingest function never answered /health"

# --------------------------------------------------------------------------- 1. ingest
BODY="$ROOT/tests/fixtures/zoom/registration_created.json"
TIMESTAMP="$(date +%s)"
SIGNATURE="$("$PYTHON" - "$ZOOM_SECRET" "$TIMESTAMP" "$BODY" <<'PY'
import hashlib, hmac, sys
secret, timestamp, path = sys.argv[1:]
body = open(path, "rb").read()
print("v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest())
PY
)"
STATUS="$(curl -sS -o "$RUN_DIR/ingest.json" -w '%{http_code}' -X POST "$LAMBDA_URL/ingest/hooks/zoom" \
    -H 'content-type: application/json' -H "x-zm-request-timestamp: $TIMESTAMP" \
    -H "x-zm-signature: $SIGNATURE" --data-binary "@$BODY")"
[[ "$STATUS" == 200 ]] || fail "ingest answered $STATUS: $(cat "$RUN_DIR/ingest.json")"
grep -q '"status":"accepted"' "$RUN_DIR/ingest.json" || fail "ingest did not accept: $(cat "$RUN_DIR/ingest.json")"
log "ingest: 200 $(cat "$RUN_DIR/ingest.json")"

# --------------------------------------------------------------------------- 2. SQS event
"$PYTHON" - "$ROOT/tests/fixtures/aws/sqs_record.json" "$RUN_DIR/event.json" <<'PY' || fail "no message in the queue"
import json, os, sys, boto3
template, out = json.load(open(sys.argv[1])), sys.argv[2]
queue = os.environ["EVENTS_QUEUE_URL"]
messages = boto3.client("sqs").receive_message(
    QueueUrl=queue, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], WaitTimeSeconds=2
).get("Messages", [])
if len(messages) != 1:
    sys.exit(f"expected one queued message, got {len(messages)}")
records = []
for message in messages:
    record = json.loads(json.dumps(template))
    record.update(messageId=message["MessageId"], receiptHandle=message["ReceiptHandle"],
                  body=message["Body"], md5OfBody=message["MD5OfBody"])
    record["attributes"].update(message["Attributes"])
    record["eventSourceARN"] = "arn:aws:sqs:eu-central-1:123456789012:" + queue.rsplit("/", 1)[1]
    records.append(record)
json.dump({"Records": records}, open(out, "w"))
PY
log "queued message wrapped in $RUN_DIR/event.json"

# --------------------------------------------------------------------------- 3. consumer
cargo lambda invoke --invoke-address 127.0.0.1 --invoke-port "$LAMBDA_PORT" consumer \
    --data-file "$RUN_DIR/event.json" --output-format json >"$RUN_DIR/consumer.json" 2>"$RUN_DIR/invoke.log" \
    || fail "cargo lambda invoke consumer failed: $(cat "$RUN_DIR/invoke.log")"
"$PYTHON" -c 'import json, sys; r = json.load(open(sys.argv[1])); sys.exit(r.get("batchItemFailures") != [])' \
    "$RUN_DIR/consumer.json" || fail "consumer reported failures: $(cat "$RUN_DIR/consumer.json")"
log "consumer: $(cat "$RUN_DIR/consumer.json")"

# --------------------------------------------------------------------------- 4. KlickTipp
curl -sf "$SIM_URL/_sim/contacts" >"$RUN_DIR/contacts.json" || fail "cannot read the simulator's contacts"
"$PYTHON" - "$RUN_DIR/contacts.json" <<'PY' || fail "the contact is not tagged: $(cat "$RUN_DIR/contacts.json")"
import json, sys
contacts = {c["email"]: c for c in json.load(open(sys.argv[1]))}
tags = contacts.get("erika@example.com", {}).get("tags", [])
sys.exit("[Zoom] [Demo Webinar] Registered" not in tags)
PY
log "erika@example.com is tagged [Zoom] [Demo Webinar] Registered"
log "PASS ($((SECONDS - STARTED)) s)"
