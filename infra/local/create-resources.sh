#!/usr/bin/env bash
# Creates the bridge's AWS resources in the emulator, the way template.yaml defines them:
#   <prefix>-events.fifo      FIFO, no content-based dedup, dedup per message group, visibility 360 s,
#                             4 days retention, redrive to the DLQ after 5 receives
#   <prefix>-events-dlq.fifo  FIFO, 14 days retention
#   <prefix>-events           DynamoDB, key event_id (S), TTL on expires_at, on demand, sparse
#                             index `refused` (refused (S), refused_at (S))
#   <prefix>-contacts         DynamoDB, key pk (S), on demand
#   <prefix>-history          DynamoDB, key pk (S) + sk (S), TTL on expires_at, on demand, sparse
#                             index `problems` (problem (S), sk (S))
# Usage: create-resources.sh [PREFIX]   (default webinar-bridge-local). Idempotent.
# Reads $RUN_DIR/moto.env (start-moto.sh) and writes $RUN_DIR/resources.env with
# EVENTS_QUEUE_URL, EVENTS_DLQ_URL, EVENTS_TABLE, CONTACTS_TABLE and HISTORY_TABLE.
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

def table(name, key, sort=None, index=None):
    """`index`: (name, hash attribute, range attribute) of a sparse GSI projecting everything."""
    attributes = [key] + ([sort] if sort else [])
    schema = [{"AttributeName": key, "KeyType": "HASH"}] + ([{"AttributeName": sort, "KeyType": "RANGE"}] if sort else [])
    extra = {}
    if index:
        index_name, index_key, index_sort = index
        attributes += [a for a in (index_key, index_sort) if a not in attributes]
        extra["GlobalSecondaryIndexes"] = [{
            "IndexName": index_name,
            "KeySchema": [{"AttributeName": index_key, "KeyType": "HASH"}, {"AttributeName": index_sort, "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }]
    try:
        dynamodb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in attributes],
            KeySchema=schema,
            **extra,
        )
    except dynamodb.exceptions.ResourceInUseException:
        pass
    return name

events = table(f"{prefix}-events", "event_id", index=("refused", "refused", "refused_at"))
dynamodb.update_time_to_live(TableName=events, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
contacts = table(f"{prefix}-contacts", "pk")
history = table(f"{prefix}-history", "pk", sort="sk", index=("problems", "problem", "sk"))
dynamodb.update_time_to_live(TableName=history, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})

with open(out, "w") as env:
    env.write(
        f"EVENTS_QUEUE_URL={queue_url}\nEVENTS_DLQ_URL={dlq_url}\nEVENTS_TABLE={events}\n"
        f"CONTACTS_TABLE={contacts}\nHISTORY_TABLE={history}\n"
    )
print(f"create-resources: queue {queue_url}, tables {events}, {contacts} and {history}; env in {out}")
PY
