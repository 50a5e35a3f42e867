#!/usr/bin/env bash
# Creates the bridge's AWS resources in the emulator, the way template.yaml defines them:
#   <prefix>-events.fifo      FIFO, no content-based dedup, dedup per message group, visibility 360 s,
#                             4 days retention, redrive to the DLQ after 5 receives
#   <prefix>-events-dlq.fifo  FIFO, 14 days retention
#   <prefix>-events           DynamoDB, key event_id (S), TTL on expires_at, on demand
#   <prefix>-contacts         DynamoDB, key pk (S), on demand
# Usage: create-resources.sh [PREFIX]   (default webinar-bridge-local). Idempotent.
# Reads $RUN_DIR/moto.env (start-moto.sh) and writes $RUN_DIR/resources.env with
# EVENTS_QUEUE_URL, EVENTS_DLQ_URL, EVENTS_TABLE and CONTACTS_TABLE.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="${RUN_DIR:-$ROOT/infra/local/run}"
PREFIX="${1:-webinar-bridge-local}"
PYTHON="$ROOT/.tools/bin/python3"

if [[ ! -f "$RUN_DIR/moto.env" ]]; then
    echo "create-resources: $RUN_DIR/moto.env is missing: run infra/local/start-moto.sh first" >&2
    exit 1
fi
set -a
# shellcheck disable=SC1091
. "$RUN_DIR/moto.env"
set +a

PREFIX="$PREFIX" OUT="$RUN_DIR/resources.env" "$PYTHON" - <<'PY'
import json, os
import boto3

prefix, out = os.environ["PREFIX"], os.environ["OUT"]
sqs = boto3.client("sqs")
dynamodb = boto3.client("dynamodb")

dlq_url = sqs.create_queue(
    QueueName=f"{prefix}-events-dlq.fifo",
    Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false", "MessageRetentionPeriod": "1209600"},
)["QueueUrl"]
dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
queue_url = sqs.create_queue(
    QueueName=f"{prefix}-events.fifo",
    Attributes={
        "FifoQueue": "true",
        "ContentBasedDeduplication": "false",
        "DeduplicationScope": "messageGroup",
        "FifoThroughputLimit": "perMessageGroupId",
        "VisibilityTimeout": "360",
        "MessageRetentionPeriod": "345600",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}),
    },
)["QueueUrl"]

def table(name, key):
    try:
        dynamodb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        )
    except dynamodb.exceptions.ResourceInUseException:
        pass
    return name

events = table(f"{prefix}-events", "event_id")
dynamodb.update_time_to_live(TableName=events, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
contacts = table(f"{prefix}-contacts", "pk")

with open(out, "w") as env:
    env.write(f"EVENTS_QUEUE_URL={queue_url}\nEVENTS_DLQ_URL={dlq_url}\nEVENTS_TABLE={events}\nCONTACTS_TABLE={contacts}\n")
print(f"create-resources: queue {queue_url}, tables {events} and {contacts}; env in {out}")
PY
