//! [`EventLog`], [`ContactStore`] and [`TagDirectory`] on DynamoDB (DESIGN 1, 6).
//!
//! Every claim is "read first, conditional write second": the read decides with the same rule as
//! every other adapter ([`decide_claim`]); the write's condition only guards against a concurrent
//! writer, and when it fails the record is read again and decided anew. Reads are strongly
//! consistent because each one precedes a conditional write.
//!
//! Item shapes (the SAM template defines the same keys and TTL attribute):
//! - events table, key `event_id` (S): `fingerprint` (S), `status` (S: `in_progress` |
//!   `completed`), `lease_until` (N, epoch ms, in progress only), `outcome` (S, JSON of
//!   [`FinalOutcome`], completed only), `updated_at` (S, RFC 3339), `expires_at` (N, epoch
//!   seconds, the table's TTL attribute), `owner` (S, the [`ClaimToken`] of the claim that wrote
//!   it; `complete` and `release` are conditional on it).
//! - contacts table, key `pk` (S): contacts `contact#<email>` with `record_zstd` (B, the JSON of
//!   [`ContactRecord`], zstd-compressed; older items have `record` (S, the plain JSON), read as
//!   well) and `version` (N); tags `tag#<name>` with `tag_id` (N) once known, or
//!   `creating_until` (N, epoch ms) while one consumer creates it.
//! - contacts table, per-webinar settings (issue 15): one item `settings#webinars` with
//!   `settings` (S, the JSON list of every `WebinarSetting`) and `version` (N, each write is
//!   conditional on it); seen webinars `seen#<source>#<webinar>[#<date>]` with `seen_at` (S).
//! - events table, ingest receipts under key `receipt#<event_id>` (never a consumer claim's key,
//!   since event ids start with their source): `fingerprint` (S), `first_seen` (S, RFC 3339),
//!   `expires_at` (N, the TTL), `rejected_reuses` (N), `last_rejected_at` (S) and
//!   `last_rejected_fingerprint` (S) once a reuse was refused, plus `refused` (S, always
//!   [`REFUSED_PARTITION`]) and `refused_at` (S, fixed-width RFC 3339): the keys of the sparse
//!   index [`REFUSED_INDEX`], so listing refused webhooks is one Query over refused receipts only.
//! - events table, parked webhooks under key `parked#<id>`: `source`, `path`, `query`?,
//!   `content_type`? (S), `body` (B), `received_at`, `reason`, `updated_at` (S, RFC 3339),
//!   `expires_at` (N, the TTL); and one index item `parked#index` with `entries` (M: id ->
//!   `<size>:<expires epoch s>`) and `version` (N), so the cap is checked and bodies listed
//!   without a scan.

use super::claim_rule::decide_claim;
use super::receipt_rule::{decide_receipt, new_receipt};
use super::sqs::unavailable;
use crate::domain::{ContactRecord, Email, EventId};
use crate::ports::{
    Claim, ClaimToken, ContactAdmin, ContactStore, EventErasure, EventLog, EventRecord, EventStatus, FinalOutcome,
    ParkCap, ParkOutcome, ParkedWebhook, ParkedWebhooks, PortError, PortResult, Receipt, ReceiptLog, ReceiptRecord,
    TagClaim, TagDirectory, Versioned,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::time::Duration;

pub use aws_sdk_dynamodb;

/// Partition key of the events table.
pub const EVENTS_PARTITION_KEY: &str = "event_id";
/// TTL attribute of the events table, epoch seconds.
pub const EVENTS_TTL_ATTRIBUTE: &str = "expires_at";
/// Partition key of the contacts table (contacts and the tag directory).
pub const CONTACTS_PARTITION_KEY: &str = "pk";
pub const CONTACT_KEY_PREFIX: &str = "contact#";
pub const TAG_KEY_PREFIX: &str = "tag#";
/// Key prefix of ingest receipts in the events table.
pub const RECEIPT_KEY_PREFIX: &str = "receipt#";
/// Sparse index of the events table over receipts with a refused reuse.
pub const REFUSED_INDEX: &str = "refused";
/// Partition key attribute of [`REFUSED_INDEX`], set when a reuse is refused.
pub const REFUSED_INDEX_KEY: &str = "refused";
/// The one value of [`REFUSED_INDEX_KEY`].
pub const REFUSED_PARTITION: &str = "refused";
/// Sort key attribute of [`REFUSED_INDEX`]: the last refusal, fixed-width RFC 3339.
pub const REFUSED_INDEX_SORT: &str = "refused_at";

const STATUS_IN_PROGRESS: &str = "in_progress";
const STATUS_COMPLETED: &str = "completed";
/// Read-decide-write rounds before a claim gives up to a writer that keeps winning.
const CLAIM_ROUNDS: usize = 4;
/// DynamoDB's item size limit (names and values together).
pub const DYNAMODB_ITEM_LIMIT: usize = 400 * 1024;
/// zstd level for contact records: the default, fast and within a few percent of the best ratio
/// on this data (the incompressible part is the event ids in the stamps).
const CONTACT_ZSTD_LEVEL: i32 = 3;
/// The attribute holding the compressed record.
const RECORD_ZSTD: &str = "record_zstd";
/// Parallel writes when recording a `GET /tag` listing.
const RECORD_EXISTING_CONCURRENCY: usize = 8;

type Item = HashMap<String, AttributeValue>;

// ---------------------------------------------------------------------------------------------
// Time and attribute conversions

/// Epoch seconds, rounded up: a record is never forgotten before its time.
fn epoch_seconds_ceil(at: DateTime<Utc>) -> i64 {
    at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0)
}

/// Epoch milliseconds, rounded up: a lease never ends before its time.
fn epoch_millis_ceil(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis() + i64::from(!at.timestamp_subsec_nanos().is_multiple_of(1_000_000))
}

fn later(now: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX)
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn corrupt(what: &str, name: &str) -> PortError {
    PortError::Corrupt(format!("{what}: attribute `{name}` is missing or malformed"))
}

fn string_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|value| value.as_s().ok()).map(String::as_str)
}

fn number_attr<T: FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name).and_then(|value| value.as_n().ok()).and_then(|raw| raw.parse().ok())
}

fn required<T>(value: Option<T>, what: &str, name: &str) -> PortResult<T> {
    value.ok_or_else(|| corrupt(what, name))
}

// ---------------------------------------------------------------------------------------------
// One table

/// A condition for a write: the expression plus exactly the names and values it uses
/// (DynamoDB rejects unused ones).
struct Condition {
    expression: &'static str,
    names: &'static [(&'static str, &'static str)],
    values: Vec<(&'static str, AttributeValue)>,
}

impl Condition {
    fn new(expression: &'static str, names: &'static [(&'static str, &'static str)]) -> Self {
        Self { expression, names, values: Vec::new() }
    }

    fn value(mut self, placeholder: &'static str, value: AttributeValue) -> Self {
        self.values.push((placeholder, value));
        self
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        Some(self.names.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())
    }
}

/// Whether a conditional write happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    Yes,
    ConditionFailed,
}

#[derive(Clone, Debug)]
struct Table {
    client: Client,
    name: String,
    key: &'static str,
}

impl Table {
    async fn get(&self, key: &str) -> PortResult<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .key(self.key, s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| unavailable("GetItem", &error))?;
        Ok(output.item)
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> PortResult<Written> {
        let bytes = item_size(&item);
        let request = self.client.put_item().table_name(&self.name).set_item(Some(item));
        let request = match &condition {
            Some(condition) => request
                .condition_expression(condition.expression)
                .set_expression_attribute_names(condition.names())
                .set_expression_attribute_values(condition.values()),
            None => request,
        };
        match request.send().await {
            Ok(_) => Ok(Written::Yes),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(Written::ConditionFailed)
            }
            // DynamoDB counts a little differently than `item_size`; its word is final.
            Err(error) if is_item_too_large(&error) => Err(PortError::TooLarge { bytes, limit: DYNAMODB_ITEM_LIMIT }),
            Err(error) => Err(unavailable("PutItem", &error)),
        }
    }

    async fn delete(&self, key: &str, condition: Option<Condition>) -> PortResult<Written> {
        let request = self.client.delete_item().table_name(&self.name).key(self.key, s(key));
        let request = match &condition {
            Some(condition) => request
                .condition_expression(condition.expression)
                .set_expression_attribute_names(condition.names())
                .set_expression_attribute_values(condition.values()),
            None => request,
        };
        match request.send().await {
            Ok(_) => Ok(Written::Yes),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(Written::ConditionFailed)
            }
            Err(error) => Err(unavailable("DeleteItem", &error)),
        }
    }
}

/// DynamoDB refuses an item over 400 KB with a `ValidationException` whose message is the only
/// thing that tells it apart from other validation errors.
fn is_item_too_large<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    error: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    error.as_service_error().is_some_and(|service| {
        service.code() == Some("ValidationException")
            && service.message().is_some_and(|message| message.to_ascii_lowercase().contains("item size"))
    })
}

// ---------------------------------------------------------------------------------------------
// Event log

/// Idempotency records in the events table.
#[derive(Clone, Debug)]
pub struct DynamoEventLog {
    table: Table,
}

impl DynamoEventLog {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self { table: Table { client, name: table_name.into(), key: EVENTS_PARTITION_KEY } }
    }

    pub fn from_conf(config: &aws_config::SdkConfig, table_name: impl Into<String>) -> Self {
        Self::new(Client::new(config), table_name)
    }

    pub fn table_name(&self) -> &str {
        &self.table.name
    }

    async fn read(&self, event_id: &EventId) -> PortResult<Option<EventRecord>> {
        self.table.get(event_id.as_str()).await?.map(|item| event_record(&item)).transpose()
    }
}

fn event_item(
    event_id: &EventId,
    fingerprint: &str,
    owner: &ClaimToken,
    now: DateTime<Utc>,
    lease: Duration,
    retention: Duration,
) -> Item {
    HashMap::from([
        (EVENTS_PARTITION_KEY.to_owned(), s(event_id.as_str())),
        ("fingerprint".to_owned(), s(fingerprint)),
        ("owner".to_owned(), s(owner.as_str())),
        ("status".to_owned(), s(STATUS_IN_PROGRESS)),
        ("lease_until".to_owned(), n(epoch_millis_ceil(later(now, lease)))),
        ("updated_at".to_owned(), s(now.to_rfc3339_opts(SecondsFormat::AutoSi, true))),
        (EVENTS_TTL_ATTRIBUTE.to_owned(), n(epoch_seconds_ceil(later(now, retention)))),
    ])
}

fn event_record(item: &Item) -> PortResult<EventRecord> {
    const WHAT: &str = "event record";
    let event_id =
        required(string_attr(item, EVENTS_PARTITION_KEY).and_then(EventId::from_sender), WHAT, EVENTS_PARTITION_KEY)?;
    let status = match required(string_attr(item, "status"), WHAT, "status")? {
        STATUS_IN_PROGRESS => {
            let millis = required(number_attr::<i64>(item, "lease_until"), WHAT, "lease_until")?;
            let lease_until = required(DateTime::from_timestamp_millis(millis), WHAT, "lease_until")?;
            EventStatus::InProgress { lease_until }
        }
        STATUS_COMPLETED => {
            let outcome = required(string_attr(item, "outcome"), WHAT, "outcome")?;
            let outcome: FinalOutcome = serde_json::from_str(outcome).map_err(|_| corrupt(WHAT, "outcome"))?;
            EventStatus::Completed(outcome)
        }
        _ => return Err(corrupt(WHAT, "status")),
    };
    let updated_at = required(string_attr(item, "updated_at").and_then(|raw| raw.parse().ok()), WHAT, "updated_at")?;
    let expires_at = required(
        number_attr::<i64>(item, EVENTS_TTL_ATTRIBUTE).and_then(|secs| DateTime::from_timestamp(secs, 0)),
        WHAT,
        EVENTS_TTL_ATTRIBUTE,
    )?;
    Ok(EventRecord {
        event_id,
        fingerprint: required(string_attr(item, "fingerprint"), WHAT, "fingerprint")?.to_owned(),
        status,
        updated_at,
        expires_at,
    })
}

/// Overwrites only what `decide_claim` would also take: nothing there, an expired record, or a
/// lapsed lease on the same payload.
fn claim_condition(fingerprint: &str, now: DateTime<Utc>) -> Condition {
    Condition::new(
        "attribute_not_exists(#id) OR #expires <= :now_s \
         OR (#status = :in_progress AND #lease <= :now_ms AND #fingerprint = :fingerprint)",
        &[
            ("#id", EVENTS_PARTITION_KEY),
            ("#expires", EVENTS_TTL_ATTRIBUTE),
            ("#status", "status"),
            ("#lease", "lease_until"),
            ("#fingerprint", "fingerprint"),
        ],
    )
    .value(":now_s", n(now.timestamp()))
    .value(":now_ms", n(now.timestamp_millis()))
    .value(":in_progress", s(STATUS_IN_PROGRESS))
    .value(":fingerprint", s(fingerprint))
}

#[async_trait]
impl EventLog for DynamoEventLog {
    async fn claim(
        &self,
        event_id: &EventId,
        fingerprint: &str,
        owner: &ClaimToken,
        now: DateTime<Utc>,
        lease: Duration,
        retention: Duration,
    ) -> PortResult<Claim> {
        for _ in 0..CLAIM_ROUNDS {
            let existing = self.read(event_id).await?;
            let decision = decide_claim(existing.as_ref(), fingerprint, now);
            if decision != Claim::Claimed {
                return Ok(decision);
            }
            let item = event_item(event_id, fingerprint, owner, now, lease, retention);
            if self.table.put(item, Some(claim_condition(fingerprint, now))).await? == Written::Yes {
                return Ok(Claim::Claimed);
            }
            // Someone else wrote in between: decide again on what they wrote.
        }
        Ok(Claim::Busy)
    }

    async fn complete(
        &self,
        event_id: &EventId,
        owner: &ClaimToken,
        outcome: &FinalOutcome,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> PortResult<()> {
        let outcome = serde_json::to_string(outcome).map_err(|error| PortError::Corrupt(error.to_string()))?;
        let result = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key(EVENTS_PARTITION_KEY, s(event_id.as_str()))
            .update_expression(
                "SET #status = :completed, #outcome = :outcome, #updated = :updated, #expires = :expires REMOVE #lease",
            )
            .condition_expression("#status = :in_progress AND #owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#outcome", "outcome")
            .expression_attribute_names("#updated", "updated_at")
            .expression_attribute_names("#expires", EVENTS_TTL_ATTRIBUTE)
            .expression_attribute_names("#lease", "lease_until")
            .expression_attribute_values(":completed", s(STATUS_COMPLETED))
            .expression_attribute_values(":in_progress", s(STATUS_IN_PROGRESS))
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":outcome", s(outcome))
            .expression_attribute_values(":updated", s(now.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
            .expression_attribute_values(":expires", n(epoch_seconds_ceil(later(now, retention))))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(PortError::ClaimLost)
            }
            Err(error) => Err(unavailable("UpdateItem", &error)),
        }
    }

    async fn release(&self, event_id: &EventId, owner: &ClaimToken) -> PortResult<()> {
        // Only our open claim is given back; a completed record stays.
        let condition =
            Condition::new("#status = :in_progress AND #owner = :owner", &[("#status", "status"), ("#owner", "owner")])
                .value(":in_progress", s(STATUS_IN_PROGRESS))
                .value(":owner", s(owner.as_str()));
        if self.table.delete(event_id.as_str(), Some(condition)).await? == Written::Yes {
            return Ok(());
        }
        match self.read(event_id).await? {
            Some(EventRecord { status: EventStatus::InProgress { .. }, .. }) => Err(PortError::ClaimLost),
            _ => Ok(()),
        }
    }

    async fn get(&self, event_id: &EventId) -> PortResult<Option<EventRecord>> {
        self.read(event_id).await
    }
}

// ---------------------------------------------------------------------------------------------
// Contact store

/// Contact records in the contacts table, with optimistic concurrency on `version`.
#[derive(Clone, Debug)]
pub struct DynamoContactStore {
    table: Table,
}

impl DynamoContactStore {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self { table: Table { client, name: table_name.into(), key: CONTACTS_PARTITION_KEY } }
    }

    pub fn from_conf(config: &aws_config::SdkConfig, table_name: impl Into<String>) -> Self {
        Self::new(Client::new(config), table_name)
    }

    pub fn table_name(&self) -> &str {
        &self.table.name
    }
}

pub fn contact_key(email: &Email) -> String {
    format!("{CONTACT_KEY_PREFIX}{}", email.as_str())
}

/// The item a contact record is stored as: its JSON, zstd-compressed, as a binary attribute.
/// `PortError::TooLarge` when even that exceeds DynamoDB's item limit: permanent, as no retry can
/// make it smaller.
pub fn contact_item(record: &ContactRecord, version: u64) -> PortResult<Item> {
    let json = serde_json::to_vec(record).map_err(|error| PortError::Corrupt(error.to_string()))?;
    let compressed = zstd::bulk::compress(&json, CONTACT_ZSTD_LEVEL)
        .map_err(|error| PortError::Corrupt(format!("cannot compress the contact record: {error}")))?;
    let item = HashMap::from([
        (CONTACTS_PARTITION_KEY.to_owned(), s(contact_key(&record.email))),
        (RECORD_ZSTD.to_owned(), AttributeValue::B(compressed.into())),
        ("version".to_owned(), n(version)),
    ]);
    let bytes = item_size(&item);
    if bytes > DYNAMODB_ITEM_LIMIT {
        return Err(PortError::TooLarge { bytes, limit: DYNAMODB_ITEM_LIMIT });
    }
    Ok(item)
}

/// An item's size as DynamoDB counts it for the limit: attribute names plus values (strings and
/// binaries by length, numbers by their digits: an upper bound), for the shapes this adapter writes.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(text) => text.len(),
                    AttributeValue::N(number) => number.len() + 1,
                    AttributeValue::B(blob) => blob.as_ref().len(),
                    AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
                    // Not written by this adapter; counted generously.
                    other => format!("{other:?}").len(),
                }
        })
        .sum()
}

fn contact_versioned(item: &Item) -> PortResult<Versioned<ContactRecord>> {
    const WHAT: &str = "contact record";
    let decoded = match item.get(RECORD_ZSTD) {
        Some(AttributeValue::B(blob)) => zstd::stream::decode_all(blob.as_ref())
            .map_err(|error| PortError::Corrupt(format!("{WHAT}: cannot decompress: {error}")))
            .and_then(|json| {
                serde_json::from_slice(&json).map_err(|error| PortError::Corrupt(format!("{WHAT}: {error}")))
            }),
        Some(_) => Err(corrupt(WHAT, RECORD_ZSTD)),
        // Written before records were compressed.
        None => {
            let raw = required(string_attr(item, "record"), WHAT, "record")?;
            serde_json::from_str(raw).map_err(|error| PortError::Corrupt(format!("{WHAT}: {error}")))
        }
    };
    Ok(Versioned { value: decoded?, version: required(number_attr(item, "version"), WHAT, "version")? })
}

#[async_trait]
impl ContactStore for DynamoContactStore {
    async fn load(&self, email: &Email) -> PortResult<Option<Versioned<ContactRecord>>> {
        self.table.get(&contact_key(email)).await?.map(|item| contact_versioned(&item)).transpose()
    }

    async fn save(&self, record: &ContactRecord, expected: Option<u64>) -> PortResult<u64> {
        let version = expected.unwrap_or(0) + 1;
        let item = contact_item(record, version)?;
        let condition = match expected {
            None => Condition::new("attribute_not_exists(#pk)", &[("#pk", CONTACTS_PARTITION_KEY)]),
            Some(expected) => {
                Condition::new("#version = :expected", &[("#version", "version")]).value(":expected", n(expected))
            }
        };
        match self.table.put(item, Some(condition)).await? {
            Written::Yes => Ok(version),
            Written::ConditionFailed => Err(PortError::VersionConflict),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tag directory

/// Tag name -> id in the contacts table, shared by every consumer instance.
#[derive(Clone, Debug)]
pub struct DynamoTagDirectory {
    table: Table,
}

impl DynamoTagDirectory {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self { table: Table { client, name: table_name.into(), key: CONTACTS_PARTITION_KEY } }
    }

    pub fn from_conf(config: &aws_config::SdkConfig, table_name: impl Into<String>) -> Self {
        Self::new(Client::new(config), table_name)
    }

    async fn known(&self, name: &str, id: u64, only_if_unknown: bool) -> PortResult<()> {
        let item = HashMap::from([(CONTACTS_PARTITION_KEY.to_owned(), s(tag_key(name))), ("tag_id".to_owned(), n(id))]);
        let condition =
            only_if_unknown.then(|| Condition::new("attribute_not_exists(#tag_id)", &[("#tag_id", "tag_id")]));
        self.table.put(item, condition).await.map(|_| ())
    }
}

pub fn tag_key(name: &str) -> String {
    format!("{TAG_KEY_PREFIX}{name}")
}

/// What a tag item says, decided like the memory adapter: a known id wins, then a live claim.
fn decide_tag_claim(item: Option<&Item>, now: DateTime<Utc>) -> PortResult<Option<TagClaim>> {
    let Some(item) = item else { return Ok(None) };
    if item.contains_key("tag_id") {
        return required(number_attr(item, "tag_id"), "tag entry", "tag_id").map(|id| Some(TagClaim::Exists(id)));
    }
    let until = number_attr::<i64>(item, "creating_until").unwrap_or(i64::MIN);
    Ok((until > now.timestamp_millis()).then_some(TagClaim::HeldByOther))
}

#[async_trait]
impl TagDirectory for DynamoTagDirectory {
    async fn lookup(&self, name: &str) -> PortResult<Option<u64>> {
        match self.table.get(&tag_key(name)).await? {
            Some(item) if item.contains_key("tag_id") => {
                required(number_attr(&item, "tag_id"), "tag entry", "tag_id").map(Some)
            }
            _ => Ok(None),
        }
    }

    async fn record_existing(&self, tags: &BTreeMap<String, u64>) -> PortResult<()> {
        // Owned pairs: borrowed ones make the future not `Send` (a higher-ranked lifetime).
        let listed: Vec<(String, u64)> = tags.iter().map(|(name, id)| (name.clone(), *id)).collect();
        stream::iter(listed)
            .map(|(name, id)| async move { self.known(&name, id, true).await })
            .buffer_unordered(RECORD_EXISTING_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    async fn claim_creation(&self, name: &str, now: DateTime<Utc>, lease: Duration) -> PortResult<TagClaim> {
        let key = tag_key(name);
        for _ in 0..CLAIM_ROUNDS {
            let existing = self.table.get(&key).await?;
            if let Some(decided) = decide_tag_claim(existing.as_ref(), now)? {
                return Ok(decided);
            }
            let item = HashMap::from([
                (CONTACTS_PARTITION_KEY.to_owned(), s(key.as_str())),
                ("creating_until".to_owned(), n(epoch_millis_ceil(later(now, lease)))),
            ]);
            let condition = Condition::new(
                "attribute_not_exists(#pk) OR (attribute_not_exists(#tag_id) AND #until <= :now_ms)",
                &[("#pk", CONTACTS_PARTITION_KEY), ("#tag_id", "tag_id"), ("#until", "creating_until")],
            )
            .value(":now_ms", n(now.timestamp_millis()));
            if self.table.put(item, Some(condition)).await? == Written::Yes {
                // An item we overwrote was an expired claim: its creator may have created the tag.
                return Ok(if existing.is_some() { TagClaim::TakenOver } else { TagClaim::Claimed });
            }
        }
        Ok(TagClaim::HeldByOther)
    }

    async fn record_created(&self, name: &str, id: u64) -> PortResult<()> {
        self.known(name, id, false).await
    }

    async fn forget(&self, name: &str) -> PortResult<()> {
        self.table.delete(&tag_key(name), None).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        rfc3339.parse().expect("a valid time")
    }

    #[test]
    fn times_round_up_so_nothing_ends_early() {
        assert_eq!(epoch_seconds_ceil(at("2026-01-15T12:00:00Z")), 1_768_478_400);
        assert_eq!(epoch_seconds_ceil(at("2026-01-15T12:00:00.001Z")), 1_768_478_401);
        assert_eq!(epoch_millis_ceil(at("2026-01-15T12:00:00.0015Z")), 1_768_478_400_002);
    }

    #[test]
    fn an_event_item_reads_back_as_its_record() {
        let id = EventId::from_sender("evt-1").expect("valid id");
        let now = at("2026-01-15T12:00:00.250Z");
        let item = event_item(&id, "fp", &ClaimToken::new(), now, Duration::from_secs(30), Duration::from_secs(86_400));
        assert_eq!(item.get(EVENTS_TTL_ATTRIBUTE), Some(&n(1_768_564_801_i64)));
        let record = event_record(&item).expect("readable");
        assert_eq!(record.updated_at, now);
        assert_eq!(record.status, EventStatus::InProgress { lease_until: at("2026-01-15T12:00:30.250Z") });
        assert_eq!(decide_claim(Some(&record), "fp", now), Claim::Busy);
    }

    #[test]
    fn a_malformed_item_is_corrupt_not_a_panic() {
        let item = HashMap::from([(EVENTS_PARTITION_KEY.to_owned(), s("evt-1")), ("status".to_owned(), s("odd"))]);
        assert!(matches!(event_record(&item), Err(PortError::Corrupt(_))));
    }

    #[test]
    fn a_lapsed_tag_claim_is_free_and_a_live_one_is_held() {
        let now = at("2026-01-15T12:00:00Z");
        let claim = |until: i64| HashMap::from([("creating_until".to_owned(), n(until))]);
        let now_ms = now.timestamp_millis();
        assert_eq!(decide_tag_claim(Some(&claim(now_ms)), now).ok(), Some(None));
        assert_eq!(decide_tag_claim(Some(&claim(now_ms + 1)), now).ok(), Some(Some(TagClaim::HeldByOther)));
        let known = HashMap::from([("tag_id".to_owned(), n(7))]);
        assert_eq!(decide_tag_claim(Some(&known), now).ok(), Some(Some(TagClaim::Exists(7))));
    }
}

// ---------------------------------------------------------------------------------------------
// Receipt log

/// Ingest receipts in the events table under `receipt#<event_id>`: read, decide with the same
/// rule as every adapter, then a write conditioned on what was read.
#[derive(Clone, Debug)]
pub struct DynamoReceiptLog {
    table: Table,
}

impl DynamoReceiptLog {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self { table: Table { client, name: table_name.into(), key: EVENTS_PARTITION_KEY } }
    }

    pub fn from_conf(config: &aws_config::SdkConfig, table_name: impl Into<String>) -> Self {
        Self::new(Client::new(config), table_name)
    }

    /// Counts a refused reuse atomically (`ADD`), so concurrent refusals never contend; the
    /// condition only checks that the receipt read is still the live one.
    async fn count_rejected_reuse(
        &self,
        existing: &ReceiptRecord,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> PortResult<Written> {
        let result = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key(EVENTS_PARTITION_KEY, s(format!("{RECEIPT_KEY_PREFIX}{}", existing.event_id.as_str())))
            .update_expression(
                "SET #last_at = :at, #last_fp = :fp, #refused = :refused, #refused_at = :refused_at ADD #reuses :one",
            )
            .condition_expression("#fingerprint = :original AND #expires > :now_s")
            .expression_attribute_names("#last_at", "last_rejected_at")
            .expression_attribute_names("#last_fp", "last_rejected_fingerprint")
            .expression_attribute_names("#reuses", "rejected_reuses")
            .expression_attribute_names("#fingerprint", "fingerprint")
            .expression_attribute_names("#expires", EVENTS_TTL_ATTRIBUTE)
            .expression_attribute_names("#refused", REFUSED_INDEX_KEY)
            .expression_attribute_names("#refused_at", REFUSED_INDEX_SORT)
            .expression_attribute_values(":at", rfc3339(now))
            .expression_attribute_values(":refused", s(REFUSED_PARTITION))
            .expression_attribute_values(":refused_at", s(super::dynamodb_history::sort_time(now)))
            .expression_attribute_values(":fp", s(fingerprint))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":original", s(existing.fingerprint.as_str()))
            .expression_attribute_values(":now_s", n(now.timestamp()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Written::Yes),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(Written::ConditionFailed)
            }
            Err(error) => Err(unavailable("UpdateItem", &error)),
        }
    }

    async fn read(&self, event_id: &EventId) -> PortResult<Option<ReceiptRecord>> {
        let key = format!("{RECEIPT_KEY_PREFIX}{}", event_id.as_str());
        self.table.get(&key).await?.map(|item| receipt_record(event_id, &item)).transpose()
    }
}

fn rfc3339(at: DateTime<Utc>) -> AttributeValue {
    s(at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn receipt_item(record: &ReceiptRecord) -> Item {
    let mut item = HashMap::from([
        (EVENTS_PARTITION_KEY.to_owned(), s(format!("{RECEIPT_KEY_PREFIX}{}", record.event_id.as_str()))),
        ("fingerprint".to_owned(), s(record.fingerprint.as_str())),
        ("first_seen".to_owned(), rfc3339(record.first_seen)),
        (EVENTS_TTL_ATTRIBUTE.to_owned(), n(epoch_seconds_ceil(record.expires_at))),
        ("rejected_reuses".to_owned(), n(record.rejected_reuses)),
    ]);
    if let Some(at) = record.last_rejected_at {
        item.insert("last_rejected_at".to_owned(), rfc3339(at));
    }
    if let Some(fingerprint) = &record.last_rejected_fingerprint {
        item.insert("last_rejected_fingerprint".to_owned(), s(fingerprint.as_str()));
    }
    item
}

fn receipt_record(event_id: &EventId, item: &Item) -> PortResult<ReceiptRecord> {
    const WHAT: &str = "ingest receipt";
    let time = |name: &str| string_attr(item, name).and_then(|raw| raw.parse::<DateTime<Utc>>().ok());
    Ok(ReceiptRecord {
        event_id: event_id.clone(),
        fingerprint: required(string_attr(item, "fingerprint"), WHAT, "fingerprint")?.to_owned(),
        first_seen: required(time("first_seen"), WHAT, "first_seen")?,
        expires_at: required(
            number_attr::<i64>(item, EVENTS_TTL_ATTRIBUTE).and_then(|secs| DateTime::from_timestamp(secs, 0)),
            WHAT,
            EVENTS_TTL_ATTRIBUTE,
        )?,
        rejected_reuses: required(number_attr(item, "rejected_reuses"), WHAT, "rejected_reuses")?,
        last_rejected_at: time("last_rejected_at"),
        last_rejected_fingerprint: string_attr(item, "last_rejected_fingerprint").map(str::to_owned),
    })
}

#[async_trait]
impl ReceiptLog for DynamoReceiptLog {
    async fn record(
        &self,
        event_id: &EventId,
        fingerprint: &str,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> PortResult<Receipt> {
        for _ in 0..CLAIM_ROUNDS {
            let existing = self.read(event_id).await?;
            let receipt = decide_receipt(existing.as_ref(), fingerprint, now);
            let written = match (&receipt, &existing) {
                (Receipt::New, _) => {
                    let condition = Condition::new(
                        "attribute_not_exists(#id) OR #expires <= :now_s",
                        &[("#id", EVENTS_PARTITION_KEY), ("#expires", EVENTS_TTL_ATTRIBUTE)],
                    )
                    .value(":now_s", n(now.timestamp()));
                    let item = receipt_item(&new_receipt(event_id, fingerprint, now, retention));
                    self.table.put(item, Some(condition)).await?
                }
                (Receipt::DifferentPayload { .. }, Some(existing)) => {
                    self.count_rejected_reuse(existing, fingerprint, now).await?
                }
                _ => return Ok(receipt),
            };
            if written == Written::Yes {
                return Ok(receipt);
            }
            // The receipt was replaced or expired in between: decide again on what is there now.
        }
        Err(PortError::Unavailable("ingest receipt kept changing concurrently".into()))
    }

    async fn get(&self, event_id: &EventId, now: DateTime<Utc>) -> PortResult<Option<ReceiptRecord>> {
        Ok(self.read(event_id).await?.filter(|record| record.expires_at > now))
    }

    async fn refused_since(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> PortResult<Vec<ReceiptRecord>> {
        let mut records = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .table
                .client
                .query()
                .table_name(&self.table.name)
                .index_name(REFUSED_INDEX)
                .key_condition_expression("#refused = :refused AND #refused_at >= :since")
                .expression_attribute_names("#refused", REFUSED_INDEX_KEY)
                .expression_attribute_names("#refused_at", REFUSED_INDEX_SORT)
                .expression_attribute_values(":refused", s(REFUSED_PARTITION))
                .expression_attribute_values(":since", s(super::dynamodb_history::sort_time(since)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|error| unavailable("Query", &error))?;
            for item in output.items.unwrap_or_default() {
                let key = required(string_attr(&item, EVENTS_PARTITION_KEY), "ingest receipt", EVENTS_PARTITION_KEY)?;
                let event_id = required(
                    key.strip_prefix(RECEIPT_KEY_PREFIX).and_then(EventId::from_sender),
                    "ingest receipt",
                    EVENTS_PARTITION_KEY,
                )?;
                let record = receipt_record(&event_id, &item)?;
                if record.expires_at > now {
                    records.push(record);
                }
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(records),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Done reconciliation rounds

/// Key prefix of done reconciliation rounds in the events table (the reconcile function's IAM
/// policy is limited to it with `dynamodb:LeadingKeys`).
pub const RECONCILED_KEY_PREFIX: &str = "reconciled#";
/// A done round is kept a little longer than the reconciler looks back.
const RECONCILED_KEEP: Duration = Duration::from_secs(14 * 24 * 3600);

/// Done reconciliation rounds in the events table under
/// `reconciled#<source>#<webinar>#<session>#<round>`, one item per round, expiring by TTL.
#[derive(Clone, Debug)]
pub struct DynamoDoneSessions {
    table: Table,
}

impl DynamoDoneSessions {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self { table: Table { client, name: table_name.into(), key: EVENTS_PARTITION_KEY } }
    }

    pub fn from_conf(config: &aws_config::SdkConfig, table_name: impl Into<String>) -> Self {
        Self::new(Client::new(config), table_name)
    }
}

pub fn reconciled_key(
    key: &crate::platforms::reconcile::SessionKey,
    round: crate::platforms::reconcile::Round,
) -> String {
    format!("{RECONCILED_KEY_PREFIX}{}#{}#{}#{}", key.source, key.webinar_id, key.session_id, round.as_str())
}

#[async_trait]
impl crate::platforms::done_store::DoneSessionStore for DynamoDoneSessions {
    async fn done_among(
        &self,
        rounds: &[(crate::platforms::reconcile::SessionKey, crate::platforms::reconcile::Round)],
    ) -> PortResult<
        std::collections::BTreeSet<(crate::platforms::reconcile::SessionKey, crate::platforms::reconcile::Round)>,
    > {
        let found: Vec<_> = stream::iter(rounds.iter().cloned())
            .map(|(key, round)| async move {
                let item = self.table.get(&reconciled_key(&key, round)).await?;
                Ok::<_, PortError>(item.map(|_| (key, round)))
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn mark_done(
        &self,
        key: &crate::platforms::reconcile::SessionKey,
        round: crate::platforms::reconcile::Round,
        at: DateTime<Utc>,
    ) -> PortResult<()> {
        let item = HashMap::from([
            (EVENTS_PARTITION_KEY.to_owned(), s(reconciled_key(key, round))),
            ("done_at".to_owned(), rfc3339(at)),
            (EVENTS_TTL_ATTRIBUTE.to_owned(), n(epoch_seconds_ceil(later(at, RECONCILED_KEEP)))),
        ]);
        self.table.put(item, None).await.map(|_| ())
    }
}

// ---------------------------------------------------------------------------------------------
// Zoom ledger

/// Key prefix of the Zoom ledger's items in the events table (ingest may write them; the
/// reconcile function reads `zoom#ended#...`; IAM limits each with `dynamodb:LeadingKeys`).
pub const ZOOM_KEY_PREFIX: &str = "zoom#";
/// Ended occurrences are read this far back at most (the reconciler looks back 7 days).
const ZOOM_ENDED_MAX_DAYS: i64 = 31;

/// The Zoom ledger ([`crate::platforms::zoom_ledger`]) in the events table:
/// - `zoom#ended#<YYYY-MM-DD>`: one item per day of end, one attribute `o_<hash>` (the occurrence
///   as JSON) per ended occurrence, so a reconcile run reads a few items, never a scan;
/// - `zoom#registrant#<id>`: the registrant's `email`;
/// - `zoom#unmatched#<id>`: `kept`, a list of participant events waiting for that registrant;
/// - `zoom#unmatched-index`: per registrant with kept events, `n_<id>` (how many), `o_<id>` (the
///   oldest's arrival, epoch microseconds) and `e_<id>` (when they expire), so `problems` reads
///   one item instead of scanning the table.
///
/// Every item expires by TTL with the event retention.
#[derive(Clone, Debug)]
pub struct DynamoZoomLedger {
    table: Table,
}

impl DynamoZoomLedger {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self { table: Table { client, name: table_name.into(), key: EVENTS_PARTITION_KEY } }
    }

    pub fn from_conf(config: &aws_config::SdkConfig, table_name: impl Into<String>) -> Self {
        Self::new(Client::new(config), table_name)
    }

    fn ended_day_key(day: chrono::NaiveDate) -> String {
        format!("{ZOOM_KEY_PREFIX}ended#{}", day.format("%Y-%m-%d"))
    }

    fn unmatched_index_key() -> String {
        format!("{ZOOM_KEY_PREFIX}unmatched-index")
    }

    /// Counts a kept event of `registrant_id` in the index item (best effort: the event itself
    /// is stored either way, and the summary is only what `problems` shows).
    async fn index_kept(&self, registrant_id: &str, received_at: DateTime<Utc>, expires: i64) {
        let result = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key(EVENTS_PARTITION_KEY, s(Self::unmatched_index_key()))
            .update_expression(
                "SET #oldest = if_not_exists(#oldest, :received), #exp = :expires, #ttl = :expires ADD #count :one",
            )
            .expression_attribute_names("#oldest", format!("o_{registrant_id}"))
            .expression_attribute_names("#exp", format!("e_{registrant_id}"))
            .expression_attribute_names("#count", format!("n_{registrant_id}"))
            .expression_attribute_names("#ttl", EVENTS_TTL_ATTRIBUTE)
            .expression_attribute_values(":received", n(received_at.timestamp_micros()))
            .expression_attribute_values(":expires", n(expires))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        if let Err(error) = result {
            tracing::warn!(error = %unavailable("UpdateItem", &error), "counting a kept Zoom participant event failed");
        }
    }

    /// Drops `registrant_id` from the index item (its kept events were taken).
    async fn unindex_kept(&self, registrant_id: &str) {
        let result = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key(EVENTS_PARTITION_KEY, s(Self::unmatched_index_key()))
            .update_expression("REMOVE #oldest, #exp, #count")
            .condition_expression("attribute_exists(#count)")
            .expression_attribute_names("#oldest", format!("o_{registrant_id}"))
            .expression_attribute_names("#exp", format!("e_{registrant_id}"))
            .expression_attribute_names("#count", format!("n_{registrant_id}"))
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
            Err(error) => {
                tracing::warn!(error = %unavailable("UpdateItem", &error), "uncounting taken Zoom participant events failed");
            }
        }
    }
}

fn zoom_ended_attribute(ended: &crate::platforms::zoom_ledger::EndedOccurrence) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{}\n{}", ended.webinar_id, ended.uuid).as_bytes());
    format!("o_{}", hex::encode(&digest[..12]))
}

#[async_trait]
impl crate::platforms::zoom_ledger::ZoomLedger for DynamoZoomLedger {
    async fn record_ended(
        &self,
        ended: &crate::platforms::zoom_ledger::EndedOccurrence,
        retention: Duration,
    ) -> PortResult<()> {
        // Each occurrence carries its own expiry; the day's item lives as long as its longest.
        let expires = epoch_seconds_ceil(later(ended.ended_at, retention));
        let record = serde_json::json!({"expires_at": expires, "occurrence": ended}).to_string();
        let key = Self::ended_day_key(ended.ended_at.date_naive());
        self.table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key(EVENTS_PARTITION_KEY, s(key.clone()))
            .update_expression("SET #occurrence = :record, #expires = if_not_exists(#expires, :expires)")
            .expression_attribute_names("#occurrence", zoom_ended_attribute(ended))
            .expression_attribute_names("#expires", EVENTS_TTL_ATTRIBUTE)
            .expression_attribute_values(":record", s(record))
            .expression_attribute_values(":expires", n(expires))
            .send()
            .await
            .map_err(|error| unavailable("UpdateItem", &error))?;
        let extended = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key(EVENTS_PARTITION_KEY, s(key))
            .update_expression("SET #expires = :expires")
            .condition_expression("#expires < :expires")
            .expression_attribute_names("#expires", EVENTS_TTL_ATTRIBUTE)
            .expression_attribute_values(":expires", n(expires))
            .send()
            .await;
        match extended {
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(error) => Err(unavailable("UpdateItem", &error)),
        }
    }

    async fn ended_since(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> PortResult<Vec<crate::platforms::zoom_ledger::EndedOccurrence>> {
        let first = since.max(now - chrono::Duration::days(ZOOM_ENDED_MAX_DAYS)).date_naive();
        let days: Vec<chrono::NaiveDate> = first.iter_days().take_while(|day| *day <= now.date_naive()).collect();
        let items: Vec<Option<Item>> = stream::iter(days)
            .map(|day| async move { self.table.get(&Self::ended_day_key(day)).await })
            .buffered(8)
            .try_collect()
            .await?;
        #[derive(serde::Deserialize)]
        struct Stored {
            expires_at: i64,
            occurrence: crate::platforms::zoom_ledger::EndedOccurrence,
        }
        let mut found = Vec::new();
        for item in items.into_iter().flatten() {
            for (name, value) in &item {
                let Some(record) = name.starts_with("o_").then(|| value.as_s().ok()).flatten() else {
                    continue;
                };
                let stored: Stored = serde_json::from_str(record)
                    .map_err(|error| PortError::Corrupt(format!("a stored ended Zoom occurrence: {error}")))?;
                if stored.expires_at > now.timestamp() && stored.occurrence.ended_at >= since {
                    found.push(stored.occurrence);
                }
            }
        }
        found.sort_by(|a, b| (a.ended_at, &a.webinar_id, &a.uuid).cmp(&(b.ended_at, &b.webinar_id, &b.uuid)));
        Ok(found)
    }

    async fn record_registrant(
        &self,
        registrant_id: &str,
        email: &Email,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> PortResult<()> {
        let item = HashMap::from([
            (EVENTS_PARTITION_KEY.to_owned(), s(format!("{ZOOM_KEY_PREFIX}registrant#{registrant_id}"))),
            ("email".to_owned(), s(email.as_str())),
            (EVENTS_TTL_ATTRIBUTE.to_owned(), n(epoch_seconds_ceil(later(now, retention)))),
        ]);
        self.table.put(item, None).await.map(|_| ())
    }

    async fn registrant_email(&self, registrant_id: &str, now: DateTime<Utc>) -> PortResult<Option<Email>> {
        let Some(item) = self.table.get(&format!("{ZOOM_KEY_PREFIX}registrant#{registrant_id}")).await? else {
            return Ok(None);
        };
        if number_attr::<i64>(&item, EVENTS_TTL_ATTRIBUTE).is_some_and(|expires| expires <= now.timestamp()) {
            return Ok(None);
        }
        let raw = required(string_attr(&item, "email"), "Zoom registrant", "email")?;
        Email::parse(raw).map(Some).map_err(|_| corrupt("Zoom registrant", "email"))
    }

    async fn keep_unmatched(
        &self,
        registrant_id: &str,
        kept: &crate::platforms::zoom_ledger::KeptParticipant,
        retention: Duration,
    ) -> PortResult<bool> {
        let record = serde_json::to_string(kept).map_err(|error| PortError::Corrupt(error.to_string()))?;
        let result = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key(EVENTS_PARTITION_KEY, s(format!("{ZOOM_KEY_PREFIX}unmatched#{registrant_id}")))
            .update_expression("SET #kept = list_append(if_not_exists(#kept, :empty), :one), #expires = :expires")
            .condition_expression("attribute_not_exists(#kept) OR size(#kept) < :cap")
            .expression_attribute_names("#kept", "kept")
            .expression_attribute_names("#expires", EVENTS_TTL_ATTRIBUTE)
            .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":one", AttributeValue::L(vec![s(record)]))
            .expression_attribute_values(":cap", n(crate::platforms::zoom_ledger::MAX_KEPT_PER_REGISTRANT))
            .expression_attribute_values(":expires", n(epoch_seconds_ceil(later(kept.received_at, retention))))
            .send()
            .await;
        match result {
            Ok(_) => {
                let expires = epoch_seconds_ceil(later(kept.received_at, retention));
                self.index_kept(registrant_id, kept.received_at, expires).await;
                Ok(true)
            }
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(false)
            }
            Err(error) if is_item_too_large(&error) => Ok(false),
            Err(error) => Err(unavailable("UpdateItem", &error)),
        }
    }

    async fn take_unmatched(
        &self,
        registrant_id: &str,
        now: DateTime<Utc>,
    ) -> PortResult<Vec<crate::platforms::zoom_ledger::KeptParticipant>> {
        // One DeleteItem returning what it deleted: two takers never both get the same events.
        let output = self
            .table
            .client
            .delete_item()
            .table_name(&self.table.name)
            .key(EVENTS_PARTITION_KEY, s(format!("{ZOOM_KEY_PREFIX}unmatched#{registrant_id}")))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|error| unavailable("DeleteItem", &error))?;
        let Some(item) = output.attributes else {
            return Ok(Vec::new());
        };
        self.unindex_kept(registrant_id).await;
        if number_attr::<i64>(&item, EVENTS_TTL_ATTRIBUTE).is_some_and(|expires| expires <= now.timestamp()) {
            return Ok(Vec::new());
        }
        let kept = item.get("kept").and_then(|value| value.as_l().ok()).map(Vec::as_slice).unwrap_or_default();
        kept.iter()
            .map(|value| {
                let raw = value.as_s().map_err(|_| corrupt("kept Zoom participant", "kept"))?;
                serde_json::from_str(raw).map_err(|_| corrupt("kept Zoom participant", "kept"))
            })
            .collect()
    }

    /// One `GetItem` of the index item (never a scan).
    async fn kept_summary(&self, now: DateTime<Utc>) -> PortResult<Vec<crate::platforms::zoom_ledger::KeptSummary>> {
        let Some(item) = self.table.get(&Self::unmatched_index_key()).await? else { return Ok(Vec::new()) };
        let mut summaries = Vec::new();
        for name in item.keys() {
            let Some(registrant_id) = name.strip_prefix("n_") else { continue };
            let count = number_attr::<i64>(&item, name).unwrap_or(0);
            let expires = number_attr::<i64>(&item, &format!("e_{registrant_id}")).unwrap_or(0);
            let oldest = number_attr::<i64>(&item, &format!("o_{registrant_id}"))
                .and_then(DateTime::from_timestamp_micros)
                .ok_or_else(|| corrupt("kept Zoom participants index", "o_"))?;
            if count > 0 && expires > now.timestamp() {
                summaries.push(crate::platforms::zoom_ledger::KeptSummary {
                    registrant_id: registrant_id.to_owned(),
                    count: usize::try_from(count).unwrap_or(0),
                    oldest,
                });
            }
        }
        summaries.sort_by(|a, b| (a.oldest, &a.registrant_id).cmp(&(b.oldest, &b.registrant_id)));
        Ok(summaries)
    }

    /// The registrant items are keyed by registrant id, not by e-mail, so this is a paginated
    /// Scan of the events table reading only the matching keys, then one conditional delete per
    /// match (it still holds this e-mail, so a registrant id recorded again for someone else in
    /// between stays). It reads the whole table, but `forget` is rare and run by hand.
    async fn forget_email(&self, email: &Email) -> PortResult<usize> {
        let prefix = format!("{ZOOM_KEY_PREFIX}registrant#");
        let mut keys = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .table
                .client
                .scan()
                .table_name(&self.table.name)
                .projection_expression("#pk")
                .filter_expression("begins_with(#pk, :prefix) AND #email = :email")
                .expression_attribute_names("#pk", EVENTS_PARTITION_KEY)
                .expression_attribute_names("#email", "email")
                .expression_attribute_values(":prefix", s(prefix.as_str()))
                .expression_attribute_values(":email", s(email.as_str()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|error| unavailable("Scan (Zoom registrants)", &error))?;
            keys.extend(
                output.items().iter().filter_map(|item| string_attr(item, EVENTS_PARTITION_KEY)).map(str::to_owned),
            );
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        let mut erased = 0;
        for key in keys {
            let still_this_email =
                Condition::new("#email = :email", &[("#email", "email")]).value(":email", s(email.as_str()));
            erased += usize::from(matches!(self.table.delete(&key, Some(still_this_email)).await?, Written::Yes));
        }
        Ok(erased)
    }
}

// ---------------------------------------------------------------------------------------------
// Per-webinar settings

/// Key of the one item holding every per-webinar setting (contacts table).
pub const WEBINAR_SETTINGS_KEY: &str = "settings#webinars";
/// Key prefix of seen webinars (contacts table).
pub const SEEN_KEY_PREFIX: &str = "seen#";
/// Read-modify-write rounds of a settings change against concurrent writers.
const SETTINGS_ROUNDS: usize = 8;

/// Per-webinar settings in the contacts table: every entry in one item (a few KB even for
/// hundreds of webinars), so the consumer reads them with one `GetItem` per batch; writes are
/// conditional on the item's version. Uses only the item actions the template already grants.
#[derive(Clone, Debug)]
pub struct DynamoWebinarSettings {
    table: Table,
}

impl DynamoWebinarSettings {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self { table: Table { client, name: table_name.into(), key: CONTACTS_PARTITION_KEY } }
    }

    pub fn from_conf(config: &aws_config::SdkConfig, table_name: impl Into<String>) -> Self {
        Self::new(Client::new(config), table_name)
    }

    /// The stored entries by key and the item's version (0 = no item yet).
    async fn load(&self) -> PortResult<(BTreeMap<String, crate::domain::WebinarSetting>, u64)> {
        const WHAT: &str = "webinar settings";
        let Some(item) = self.table.get(WEBINAR_SETTINGS_KEY).await? else { return Ok((BTreeMap::new(), 0)) };
        let version = required(number_attr::<u64>(&item, "version"), WHAT, "version")?;
        let json = required(string_attr(&item, "settings"), WHAT, "settings")?;
        let entries: Vec<crate::domain::WebinarSetting> =
            serde_json::from_str(json).map_err(|error| PortError::Corrupt(format!("{WHAT}: {error}")))?;
        Ok((entries.into_iter().map(|entry| (entry.key(), entry)).collect(), version))
    }

    /// Applies `change` to the stored entries and writes them back if nobody wrote in between.
    async fn update<T>(
        &self,
        change: impl Fn(&mut BTreeMap<String, crate::domain::WebinarSetting>) -> T,
    ) -> PortResult<T> {
        for _ in 0..SETTINGS_ROUNDS {
            let (mut entries, version) = self.load().await?;
            let result = change(&mut entries);
            let list: Vec<&crate::domain::WebinarSetting> = entries.values().collect();
            let json = serde_json::to_string(&list).map_err(|error| PortError::Corrupt(error.to_string()))?;
            let item = HashMap::from([
                (CONTACTS_PARTITION_KEY.to_owned(), s(WEBINAR_SETTINGS_KEY)),
                ("settings".to_owned(), s(json)),
                ("version".to_owned(), n(version + 1)),
            ]);
            let condition = if version == 0 {
                Condition::new("attribute_not_exists(#pk)", &[("#pk", CONTACTS_PARTITION_KEY)])
            } else {
                Condition::new("#version = :version", &[("#version", "version")]).value(":version", n(version))
            };
            if self.table.put(item, Some(condition)).await? == Written::Yes {
                return Ok(result);
            }
        }
        Err(PortError::VersionConflict)
    }
}

fn seen_key(key: &str) -> String {
    format!("{SEEN_KEY_PREFIX}{key}")
}

#[async_trait]
impl crate::ports::WebinarSettings for DynamoWebinarSettings {
    async fn all(&self) -> PortResult<crate::domain::WebinarSettingsSet> {
        Ok(crate::domain::WebinarSettingsSet::new(self.load().await?.0.into_values()))
    }

    async fn put(&self, setting: &crate::domain::WebinarSetting) -> PortResult<()> {
        self.update(|entries| {
            entries.insert(setting.key(), setting.clone());
        })
        .await
    }

    async fn remove(&self, source: &str, webinar: &str) -> PortResult<bool> {
        let key = crate::domain::setting_key(source, webinar);
        self.update(|entries| entries.remove(&key).is_some()).await
    }

    async fn is_seen(&self, key: &str) -> PortResult<bool> {
        Ok(self.table.get(&seen_key(key)).await?.is_some())
    }

    async fn mark_seen(&self, key: &str, at: DateTime<Utc>) -> PortResult<()> {
        let item =
            HashMap::from([(CONTACTS_PARTITION_KEY.to_owned(), s(seen_key(key))), ("seen_at".to_owned(), rfc3339(at))]);
        let condition = Condition::new("attribute_not_exists(#pk)", &[("#pk", CONTACTS_PARTITION_KEY)]);
        self.table.put(item, Some(condition)).await.map(|_| ())
    }
}

// ---------------------------------------------------------------------------------------------
// Enumeration and erasure (DESIGN 12: resync --all, forget)

impl Table {
    /// Deletes the item under `key`; false when there was none.
    async fn erase(&self, key: &str) -> PortResult<bool> {
        let exists = if self.key == EVENTS_PARTITION_KEY {
            Condition::new("attribute_exists(#k)", &[("#k", EVENTS_PARTITION_KEY)])
        } else {
            Condition::new("attribute_exists(#k)", &[("#k", CONTACTS_PARTITION_KEY)])
        };
        Ok(matches!(self.delete(key, Some(exists)).await?, Written::Yes))
    }
}

#[async_trait]
impl ContactAdmin for DynamoContactStore {
    /// A paginated Scan of the contacts table reading only the keys of the contact items
    /// (tags share the table): one read unit per 4 KB of keys scanned.
    async fn emails(&self) -> PortResult<Vec<Email>> {
        let mut emails = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .table
                .client
                .scan()
                .table_name(&self.table.name)
                .projection_expression("#pk")
                .filter_expression("begins_with(#pk, :prefix)")
                .expression_attribute_names("#pk", CONTACTS_PARTITION_KEY)
                .expression_attribute_values(":prefix", s(CONTACT_KEY_PREFIX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|error| unavailable("Scan (contacts)", &error))?;
            for item in output.items() {
                let Some(AttributeValue::S(key)) = item.get(CONTACTS_PARTITION_KEY) else { continue };
                if let Some(raw) = key.strip_prefix(CONTACT_KEY_PREFIX) {
                    emails
                        .push(Email::parse(raw).map_err(|error| PortError::Corrupt(format!("contact key: {error}")))?);
                }
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        emails.sort();
        Ok(emails)
    }

    async fn erase(&self, email: &Email) -> PortResult<bool> {
        self.table.erase(&contact_key(email)).await
    }
}

#[async_trait]
impl EventErasure for DynamoEventLog {
    async fn erase_events(&self, event_ids: &[EventId]) -> PortResult<usize> {
        let mut erased = 0;
        for id in event_ids {
            erased += usize::from(self.table.erase(id.as_str()).await?);
        }
        Ok(erased)
    }
}

#[async_trait]
impl EventErasure for DynamoReceiptLog {
    async fn erase_events(&self, event_ids: &[EventId]) -> PortResult<usize> {
        let mut erased = 0;
        for id in event_ids {
            erased += usize::from(self.table.erase(&format!("{RECEIPT_KEY_PREFIX}{}", id.as_str())).await?);
        }
        Ok(erased)
    }
}

// ---------------------------------------------------------------------------------------------
// Parked webhooks

/// Key prefix of parked webhook bodies in the events table.
pub const PARKED_KEY_PREFIX: &str = "parked#";
/// The one item listing every parked body's id, size and expiry.
const PARKED_INDEX_KEY: &str = "parked#index";
/// The index item must stay well under DynamoDB's 400 KB: about 60 bytes per entry.
pub const DYNAMO_MAX_PARKED: usize = 5_000;

/// Parked webhook bodies in the events table (`parked#<id>`, expiring by TTL), with an index
/// item written under optimistic concurrency that holds the cap.
#[derive(Clone, Debug)]
pub struct DynamoParkedWebhooks {
    table: Table,
}

/// The index: id -> (size, expires epoch seconds), and the version its next write must match.
struct ParkedIndex {
    entries: BTreeMap<String, (usize, i64)>,
    version: Option<u64>,
}

impl DynamoParkedWebhooks {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self { table: Table { client, name: table_name.into(), key: EVENTS_PARTITION_KEY } }
    }

    pub fn from_conf(config: &aws_config::SdkConfig, table_name: impl Into<String>) -> Self {
        Self::new(Client::new(config), table_name)
    }

    async fn read_index(&self) -> PortResult<ParkedIndex> {
        let Some(item) = self.table.get(PARKED_INDEX_KEY).await? else {
            return Ok(ParkedIndex { entries: BTreeMap::new(), version: None });
        };
        const WHAT: &str = "parked index";
        let version = required(number_attr::<u64>(&item, "version"), WHAT, "version")?;
        let mut entries = BTreeMap::new();
        if let Some(AttributeValue::M(map)) = item.get("entries") {
            for (id, value) in map {
                let parsed = value
                    .as_s()
                    .ok()
                    .and_then(|raw| raw.split_once(':'))
                    .and_then(|(size, expires)| Some((size.parse().ok()?, expires.parse().ok()?)));
                entries.insert(id.clone(), required(parsed, WHAT, "entries")?);
            }
        }
        Ok(ParkedIndex { entries, version: Some(version) })
    }

    /// Writes the index if nobody else did since it was read.
    async fn write_index(&self, entries: &BTreeMap<String, (usize, i64)>, read: Option<u64>) -> PortResult<Written> {
        let expires = entries.values().map(|(_, expires)| *expires).max().unwrap_or(0);
        let map: HashMap<String, AttributeValue> =
            entries.iter().map(|(id, (size, expires))| (id.clone(), s(format!("{size}:{expires}")))).collect();
        let item = HashMap::from([
            (EVENTS_PARTITION_KEY.to_owned(), s(PARKED_INDEX_KEY)),
            ("entries".to_owned(), AttributeValue::M(map)),
            ("version".to_owned(), n(read.map_or(1, |version| version + 1))),
            // Without live entries the index may go too (an absent index is an empty one).
            (EVENTS_TTL_ATTRIBUTE.to_owned(), n(expires.max(1))),
        ]);
        let condition = match read {
            None => Condition::new("attribute_not_exists(#id)", &[("#id", EVENTS_PARTITION_KEY)]),
            Some(version) => {
                Condition::new("#version = :version", &[("#version", "version")]).value(":version", n(version))
            }
        };
        self.table.put(item, Some(condition)).await
    }

    /// Changes the index with `change` (on its live entries) until the write wins.
    async fn update_index<T>(
        &self,
        now: DateTime<Utc>,
        mut change: impl FnMut(&mut BTreeMap<String, (usize, i64)>) -> Result<(), T>,
    ) -> PortResult<Result<(), T>> {
        for _ in 0..CLAIM_ROUNDS * 2 {
            let index = self.read_index().await?;
            let mut entries: BTreeMap<_, _> =
                index.entries.into_iter().filter(|(_, (_, expires))| *expires > now.timestamp()).collect();
            if let Err(refused) = change(&mut entries) {
                return Ok(Err(refused));
            }
            if self.write_index(&entries, index.version).await? == Written::Yes {
                return Ok(Ok(()));
            }
        }
        Err(PortError::Unavailable("the parked webhook index kept changing concurrently".into()))
    }

    async fn read(&self, id: &str) -> PortResult<Option<ParkedWebhook>> {
        self.table.get(&format!("{PARKED_KEY_PREFIX}{id}")).await?.map(|item| parked_webhook(id, &item)).transpose()
    }
}

fn parked_item(webhook: &ParkedWebhook) -> Item {
    let mut item = HashMap::from([
        (EVENTS_PARTITION_KEY.to_owned(), s(format!("{PARKED_KEY_PREFIX}{}", webhook.id))),
        ("source".to_owned(), s(webhook.source.as_str())),
        ("path".to_owned(), s(webhook.path.as_str())),
        ("body".to_owned(), AttributeValue::B(webhook.body.clone().into())),
        ("received_at".to_owned(), rfc3339(webhook.received_at)),
        ("reason".to_owned(), s(webhook.reason.as_str())),
        ("updated_at".to_owned(), rfc3339(webhook.updated_at)),
        (EVENTS_TTL_ATTRIBUTE.to_owned(), n(epoch_seconds_ceil(webhook.expires_at))),
    ]);
    if let Some(query) = &webhook.query {
        item.insert("query".to_owned(), s(query.as_str()));
    }
    if let Some(content_type) = &webhook.content_type {
        item.insert("content_type".to_owned(), s(content_type.as_str()));
    }
    item
}

fn parked_webhook(id: &str, item: &Item) -> PortResult<ParkedWebhook> {
    const WHAT: &str = "parked webhook";
    let time = |name: &str| string_attr(item, name).and_then(|raw| raw.parse::<DateTime<Utc>>().ok());
    let text = |name: &'static str| required(string_attr(item, name), WHAT, name).map(str::to_owned);
    Ok(ParkedWebhook {
        id: id.to_owned(),
        source: text("source")?,
        path: text("path")?,
        query: string_attr(item, "query").map(str::to_owned),
        content_type: string_attr(item, "content_type").map(str::to_owned),
        body: required(item.get("body").and_then(|value| value.as_b().ok()), WHAT, "body")?.as_ref().to_vec(),
        received_at: required(time("received_at"), WHAT, "received_at")?,
        reason: text("reason")?,
        updated_at: required(time("updated_at"), WHAT, "updated_at")?,
        expires_at: required(
            number_attr::<i64>(item, EVENTS_TTL_ATTRIBUTE).and_then(|secs| DateTime::from_timestamp(secs, 0)),
            WHAT,
            EVENTS_TTL_ATTRIBUTE,
        )?,
    })
}

#[async_trait]
impl ParkedWebhooks for DynamoParkedWebhooks {
    async fn park(&self, webhook: &ParkedWebhook, cap: ParkCap, now: DateTime<Utc>) -> PortResult<ParkOutcome> {
        let max_count = cap.max_count.min(DYNAMO_MAX_PARKED);
        let expires = epoch_seconds_ceil(webhook.expires_at);
        let reserved = self
            .update_index(now, |entries| {
                entries.remove(&webhook.id);
                let count = entries.len();
                let bytes: usize = entries.values().map(|(size, _)| size).sum();
                if count + 1 > max_count || bytes + webhook.size() > cap.max_bytes {
                    return Err(ParkOutcome::Full { count, bytes });
                }
                entries.insert(webhook.id.clone(), (webhook.size(), expires));
                Ok(())
            })
            .await?;
        if let Err(full) = reserved {
            return Ok(full);
        }
        if let Err(error) = self.table.put(parked_item(webhook), None).await {
            // Give the reserved room back; a failure here only leaves an entry that expires.
            let _ = self
                .update_index(now, |entries| {
                    entries.remove(&webhook.id);
                    Ok::<(), ()>(())
                })
                .await;
            return Err(error);
        }
        Ok(ParkOutcome::Parked)
    }

    async fn list(&self, now: DateTime<Utc>) -> PortResult<Vec<ParkedWebhook>> {
        let index = self.read_index().await?;
        let ids: Vec<String> = index
            .entries
            .into_iter()
            .filter(|(_, (_, expires))| *expires > now.timestamp())
            .map(|(id, _)| id)
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            // An entry whose body is gone (removed, or its write failed) is skipped.
            if let Some(webhook) = self.read(&id).await?.filter(|webhook| webhook.expires_at > now) {
                out.push(webhook);
            }
        }
        Ok(out)
    }

    async fn get(&self, id: &str, now: DateTime<Utc>) -> PortResult<Option<ParkedWebhook>> {
        Ok(self.read(id).await?.filter(|webhook| webhook.expires_at > now))
    }

    async fn set_reason(&self, id: &str, reason: &str, at: DateTime<Utc>) -> PortResult<bool> {
        let result = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key(EVENTS_PARTITION_KEY, s(format!("{PARKED_KEY_PREFIX}{id}")))
            .update_expression("SET #reason = :reason, #updated = :at")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#reason", "reason")
            .expression_attribute_names("#updated", "updated_at")
            .expression_attribute_names("#id", EVENTS_PARTITION_KEY)
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":at", rfc3339(at))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(false)
            }
            Err(error) => Err(unavailable("UpdateItem", &error)),
        }
    }

    async fn remove(&self, id: &str) -> PortResult<bool> {
        let condition = Condition::new("attribute_exists(#id)", &[("#id", EVENTS_PARTITION_KEY)]);
        let removed = self.table.delete(&format!("{PARKED_KEY_PREFIX}{id}"), Some(condition)).await? == Written::Yes;
        // Nothing else is pruned here: removing takes no clock.
        self.update_index(DateTime::<Utc>::MIN_UTC, |entries| {
            entries.remove(id);
            Ok::<(), ()>(())
        })
        .await?
        .ok();
        Ok(removed)
    }
}
