//! [`HistoryLog`] on DynamoDB (DESIGN 12): the history table, one item per step.
//!
//! Item shape (the SAM template defines the same keys, index and TTL attribute):
//! - key `pk` (S): the contact's `Email::group_hash` (never the address), sort key `sk` (S):
//!   `<at, RFC 3339 with nanoseconds>#<append stamp>#<event id>`, so one Query on `pk` returns a
//!   contact's whole story oldest first; the append stamp (hex nanoseconds of the writer's wall
//!   clock, plus random bits) keeps steps at the same instant in append order and apart.
//! - `event_id` (S), `at` (S, RFC 3339), `step` (S, the JSON of [`HistoryStep`]),
//!   `expires_at` (N, epoch seconds: `at` + `BRIDGE_EVENT_RETENTION_DAYS`, the table's TTL).
//! - problem outcomes only: `problem` (S, always [`PROBLEMS_PARTITION`]), the partition key of the
//!   sparse index [`PROBLEMS_INDEX`] whose sort key is `sk` again, so `problems_since` is one
//!   Query with `sk >= since` that reads problem items only. Problems are rare, and the
//!   consumer that writes them is held to KlickTipp's rate (a few per second), far below the
//!   1,000 writes per second one index partition takes.
//!
//! TTL deletion runs late (up to days), so every read also filters on `expires_at`.

use super::sqs::unavailable;
use crate::ports::{HistoryEntry, HistoryLog, HistoryStep, PortError, PortResult};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::HashMap;
use std::time::Duration;

/// Partition key of the history table: the contact hash.
pub const HISTORY_PARTITION_KEY: &str = "pk";
/// Sort key of the history table (and of the problems index).
pub const HISTORY_SORT_KEY: &str = "sk";
/// TTL attribute of the history table, epoch seconds.
pub const HISTORY_TTL_ATTRIBUTE: &str = "expires_at";
/// The sparse index of problem outcomes.
pub const PROBLEMS_INDEX: &str = "problems";
/// Partition key attribute of [`PROBLEMS_INDEX`], set on problem outcomes only.
pub const PROBLEMS_INDEX_KEY: &str = "problem";
/// The one value of [`PROBLEMS_INDEX_KEY`].
pub const PROBLEMS_PARTITION: &str = "problem";

/// BatchWriteItem takes at most 25 requests.
const BATCH_WRITE_MAX: usize = 25;
/// Rounds of re-sending unprocessed deletes (throttling) before giving up as unavailable.
const UNPROCESSED_ROUNDS: usize = 8;

type Item = HashMap<String, AttributeValue>;

/// Contact histories in their own table.
#[derive(Clone, Debug)]
pub struct DynamoHistoryLog {
    client: Client,
    table: String,
}

impl DynamoHistoryLog {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self { client, table: table_name.into() }
    }

    pub fn from_conf(config: &aws_config::SdkConfig, table_name: impl Into<String>) -> Self {
        Self::new(Client::new(config), table_name)
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Every page of a Query; `index` = `None` queries the table.
    async fn query(
        &self,
        index: Option<&str>,
        key_condition: &str,
        names: &[(&str, &str)],
        values: &[(&str, AttributeValue)],
        projection: Option<&str>,
    ) -> PortResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression(key_condition)
                .set_projection_expression(projection.map(str::to_owned))
                .set_exclusive_start_key(start.take());
            for (placeholder, name) in names {
                request = request.expression_attribute_names(*placeholder, *name);
            }
            for (placeholder, value) in values {
                request = request.expression_attribute_values(*placeholder, value.clone());
            }
            let output = request.send().await.map_err(|error| unavailable("Query", &error))?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// Deletes items by key, 25 per request, re-sending what DynamoDB left unprocessed.
    async fn delete_keys(&self, keys: Vec<Item>) -> PortResult<()> {
        for chunk in keys.chunks(BATCH_WRITE_MAX) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|key| {
                    let delete = DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map_err(|error| PortError::Corrupt(format!("history delete request: {error}")))?;
                    Ok(WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<PortResult<_>>()?;
            for round in 0..UNPROCESSED_ROUNDS {
                if pending.is_empty() {
                    break;
                }
                if round > 0 {
                    tokio::time::sleep(Duration::from_millis(50 << round.min(5))).await;
                }
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|error| unavailable("BatchWriteItem", &error))?;
                pending = output.unprocessed_items.and_then(|mut left| left.remove(&self.table)).unwrap_or_default();
            }
            if !pending.is_empty() {
                return Err(PortError::Unavailable(format!(
                    "BatchWriteItem: {} history deletes still unprocessed (throttled); run it again",
                    pending.len()
                )));
            }
        }
        Ok(())
    }
}

/// Fixed width, so the text order is the time order.
pub fn sort_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

fn epoch_seconds_ceil(at: DateTime<Utc>) -> i64 {
    at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0)
}

fn later(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    at + chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX)
}

/// Orders steps appended at the same instant: the writer's clock in nanoseconds, then random
/// bits so two writers never collide on a key.
fn append_stamp() -> String {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("{nanos:016x}{:08x}", rand::random::<u32>())
}

/// The item one history step is stored as.
pub fn history_item(entry: &HistoryEntry, retention: Duration) -> PortResult<Item> {
    let step = serde_json::to_string(&entry.step).map_err(|error| PortError::Corrupt(error.to_string()))?;
    let mut item = HashMap::from([
        (HISTORY_PARTITION_KEY.to_owned(), AttributeValue::S(entry.contact.clone())),
        (
            HISTORY_SORT_KEY.to_owned(),
            AttributeValue::S(format!("{}#{}#{}", sort_time(entry.at), append_stamp(), entry.event_id.as_str())),
        ),
        ("event_id".to_owned(), AttributeValue::S(entry.event_id.as_str().to_owned())),
        ("at".to_owned(), AttributeValue::S(entry.at.to_rfc3339_opts(SecondsFormat::AutoSi, true))),
        ("step".to_owned(), AttributeValue::S(step)),
        (
            HISTORY_TTL_ATTRIBUTE.to_owned(),
            AttributeValue::N(epoch_seconds_ceil(later(entry.at, retention)).to_string()),
        ),
    ]);
    if matches!(&entry.step, HistoryStep::Outcome(outcome) if outcome.is_problem()) {
        item.insert(PROBLEMS_INDEX_KEY.to_owned(), AttributeValue::S(PROBLEMS_PARTITION.to_owned()));
    }
    Ok(item)
}

fn text<'a>(item: &'a Item, name: &str) -> PortResult<&'a str> {
    item.get(name)
        .and_then(|value| value.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| PortError::Corrupt(format!("history entry: attribute `{name}` is missing or malformed")))
}

fn expires_at(item: &Item) -> Option<i64> {
    item.get(HISTORY_TTL_ATTRIBUTE).and_then(|value| value.as_n().ok()).and_then(|raw| raw.parse().ok())
}

/// A stored item back as its entry.
pub fn history_entry(item: &Item) -> PortResult<HistoryEntry> {
    let corrupt = |name: &str| PortError::Corrupt(format!("history entry: attribute `{name}` is malformed"));
    let event_id = text(item, "event_id")?;
    Ok(HistoryEntry {
        contact: text(item, HISTORY_PARTITION_KEY)?.to_owned(),
        event_id: crate::domain::EventId::from_sender(event_id).ok_or_else(|| corrupt("event_id"))?,
        at: text(item, "at")?.parse().map_err(|_| corrupt("at"))?,
        step: serde_json::from_str(text(item, "step")?).map_err(|_| corrupt("step"))?,
    })
}

/// The live entries among `items` (TTL deletion runs late), in stored order.
fn live(items: Vec<Item>, now: DateTime<Utc>) -> PortResult<Vec<HistoryEntry>> {
    items
        .iter()
        .filter(|item| expires_at(item).is_none_or(|expires| expires > now.timestamp()))
        .map(history_entry)
        .collect()
}

#[async_trait]
impl HistoryLog for DynamoHistoryLog {
    async fn append(&self, entry: &HistoryEntry, retention: Duration) -> PortResult<()> {
        let item = history_item(entry, retention)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|error| unavailable("PutItem", &error))?;
        Ok(())
    }

    async fn for_contact(&self, contact: &str, now: DateTime<Utc>) -> PortResult<Vec<HistoryEntry>> {
        let items = self
            .query(
                None,
                "#pk = :contact",
                &[("#pk", HISTORY_PARTITION_KEY)],
                &[(":contact", AttributeValue::S(contact.to_owned()))],
                None,
            )
            .await?;
        live(items, now)
    }

    async fn problems_since(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> PortResult<Vec<HistoryEntry>> {
        let items = self
            .query(
                Some(PROBLEMS_INDEX),
                "#problem = :problem AND #sk >= :since",
                &[("#problem", PROBLEMS_INDEX_KEY), ("#sk", HISTORY_SORT_KEY)],
                &[
                    (":problem", AttributeValue::S(PROBLEMS_PARTITION.to_owned())),
                    (":since", AttributeValue::S(sort_time(since))),
                ],
                None,
            )
            .await?;
        live(items, now)
    }

    async fn forget_contact(&self, contact: &str) -> PortResult<usize> {
        let keys = self
            .query(
                None,
                "#pk = :contact",
                &[("#pk", HISTORY_PARTITION_KEY), ("#sk", HISTORY_SORT_KEY)],
                &[(":contact", AttributeValue::S(contact.to_owned()))],
                Some("#pk, #sk"),
            )
            .await?;
        let count = keys.len();
        self.delete_keys(keys).await?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Email, EventId};
    use crate::ports::HistoryOutcome;

    fn at(raw: &str) -> DateTime<Utc> {
        raw.parse().expect("a valid time")
    }

    #[test]
    fn sort_times_order_as_text_like_in_time() {
        let times = ["2026-01-15T12:00:00Z", "2026-01-15T12:00:00.5Z", "2026-01-15T12:00:01Z", "2026-02-01T00:00:00Z"];
        let keys: Vec<String> = times.iter().map(|raw| sort_time(at(raw))).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(sort_time(DateTime::<Utc>::UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn only_problem_outcomes_enter_the_problems_index_and_items_read_back() {
        let email = Email::parse("ana@example.com").expect("valid");
        let id = EventId::from_sender("zoom-1").expect("valid");
        let retention = Duration::from_secs(86_400);
        let applied = HistoryEntry::outcome(&email, &id, at("2026-01-15T12:00:00.25Z"), HistoryOutcome::Applied);
        let dead = HistoryEntry::outcome(
            &email,
            &id,
            at("2026-01-15T12:00:01Z"),
            HistoryOutcome::DeadLettered { reason: "unreadable".into() },
        );
        let applied_item = history_item(&applied, retention).expect("item");
        assert!(!applied_item.contains_key(PROBLEMS_INDEX_KEY));
        assert_eq!(applied_item.get(HISTORY_TTL_ATTRIBUTE), Some(&AttributeValue::N("1768564801".into())));
        assert_eq!(history_entry(&applied_item).expect("readable"), applied);
        let dead_item = history_item(&dead, retention).expect("item");
        assert_eq!(dead_item.get(PROBLEMS_INDEX_KEY), Some(&AttributeValue::S(PROBLEMS_PARTITION.into())));
        assert!(!format!("{dead_item:?}").contains("ana@example.com"), "the address is never stored");
    }
}
