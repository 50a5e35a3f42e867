//! Embedded adapters: every port on one SQLite file (DESIGN 1, the `serve` mode).
//!
//! Behaviour is that of `adapters::memory`, made durable:
//! - One connection behind a mutex. Every call is a few short statements, so a single writer is
//!   not the bottleneck next to KlickTipp's rate cap, and one connection keeps the code simple.
//! - Port calls run on tokio's blocking pool (`spawn_blocking`, so they need a Tokio runtime). Most
//!   take microseconds, but a commit can wait for a WAL checkpoint and a busy file waits up to
//!   `BUSY_TIMEOUT` for another process (an operator's CLI on the same file); neither may stall the
//!   runtime threads that serve HTTP. `SqliteDb::open` is synchronous: it runs once at start-up.
//! - Read-modify-write steps (claims, receives) run in `BEGIN IMMEDIATE` transactions, so several
//!   processes on the same file stay correct, not only several tasks in this one.
//! - Times are stored as Unix microseconds (`INTEGER`), which keeps comparisons in SQL exact.
//! - WAL checkpoints (the only fsyncs with `synchronous=NORMAL`) run on a thread and connection of
//!   their own, so no request waits for one (see `Checkpointer`).

use crate::adapters::claim_rule::decide_claim;
use crate::adapters::memory::{DeadLetter, QueueSettings};
use crate::adapters::receipt_rule::{decide_receipt, new_receipt, with_rejected_reuse};
use crate::adapters::receive_plan::{ReceivePlan, Walk};
use crate::domain::{ContactRecord, Email, EventId};
use crate::ports::{
    Claim, ClaimToken, Clock, ContactAdmin, ContactStore, DeadLetters, EventErasure, EventLog, EventQueue, EventRecord,
    EventStatus, FinalOutcome, HistoryEntry, HistoryLog, HistoryStep, OutgoingMessage, ParkCap, ParkOutcome,
    ParkedWebhook, ParkedWebhooks, PortError, PortResult, QueuedMessage, Receipt, ReceiptLog, ReceiptRecord,
    RedriveMethod, RedriveSelection, Redriven, SystemClock, TagClaim, TagDirectory, Versioned,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::Duration;

/// How long a statement waits for another connection's write lock before giving up (`Unavailable`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the background checkpointer moves the WAL into the database file. Also bounds how
/// much a power cut can lose: commits are synced to disk by the next checkpoint.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// WAL pages after which a commit checkpoints by itself: a safety net for when the background
/// checkpointer cannot keep up (SQLite's default is 1000 pages).
const FALLBACK_AUTOCHECKPOINT_PAGES: i64 = 16_384;

/// Schema migrations; entry `n` upgrades `user_version` n to n + 1. Only ever append.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE queue_messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,  -- FIFO order; never reused
    group_id      TEXT    NOT NULL,
    dedup_id      TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    receive_count INTEGER NOT NULL,
    visible_at    INTEGER NOT NULL,                   -- Unix microseconds
    receipt       TEXT                                -- the live delivery; NULL when not in flight
) STRICT;
CREATE INDEX queue_messages_by_visibility ON queue_messages (visible_at);

CREATE TABLE queue_dedup (
    dedup_id TEXT PRIMARY KEY,
    sent_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX queue_dedup_by_age ON queue_dedup (sent_at);

CREATE TABLE dead_letters (
    message_id    INTEGER PRIMARY KEY,                -- the id it had in queue_messages
    group_id      TEXT    NOT NULL,
    dedup_id      TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    receive_count INTEGER NOT NULL,
    dead_at       INTEGER NOT NULL
) STRICT;

CREATE TABLE event_log (
    event_id    TEXT PRIMARY KEY,
    fingerprint TEXT    NOT NULL,
    lease_until INTEGER,                              -- set while in progress
    outcome     TEXT,                                 -- FinalOutcome JSON once completed
    updated_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    CHECK ((lease_until IS NULL) <> (outcome IS NULL))
) STRICT, WITHOUT ROWID;
CREATE INDEX event_log_by_expiry ON event_log (expires_at);

CREATE TABLE contacts (
    email   TEXT PRIMARY KEY,
    record  TEXT    NOT NULL,                         -- ContactRecord JSON
    version INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE tags (
    name        TEXT PRIMARY KEY,
    tag_id      INTEGER,                              -- known in KlickTipp
    lease_until INTEGER,                              -- or being created until then
    CHECK ((tag_id IS NULL) <> (lease_until IS NULL))
) STRICT, WITHOUT ROWID;
"#,
    r#"
-- A receive takes each group's waiting messages together (SQS FIFO's shape); this finds them.
-- It walks by id and group, never by visibility, so that index only cost writes.
CREATE INDEX queue_messages_by_group ON queue_messages (group_id, id);
DROP INDEX queue_messages_by_visibility;
"#,
    r#"
-- Why a message was dead-lettered by the consumer (unreadable); NULL when it used up its receives.
ALTER TABLE dead_letters ADD COLUMN reason TEXT;
"#,
    r#"
-- Ingest receipts: the first payload seen under each event id, and refused reuses of the id.
CREATE TABLE ingest_receipts (
    event_id                  TEXT PRIMARY KEY,
    fingerprint               TEXT    NOT NULL,
    first_seen                INTEGER NOT NULL,
    expires_at                INTEGER NOT NULL,
    rejected_reuses           INTEGER NOT NULL DEFAULT 0,
    last_rejected_at          INTEGER,
    last_rejected_fingerprint TEXT
) STRICT, WITHOUT ROWID;
CREATE INDEX ingest_receipts_by_expiry ON ingest_receipts (expires_at);
"#,
    r#"
-- Claims have owners: the token of the claim that wrote the row; complete and release check it.
ALTER TABLE event_log ADD COLUMN owner TEXT;
-- Purging dead letters by age.
CREATE INDEX dead_letters_by_age ON dead_letters (dead_at);
"#,
    r#"
-- The story of each contact's events (DESIGN 12): received, then its outcome. Keyed by the
-- contact's address hash (Email::group_hash), never the address.
CREATE TABLE history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    contact    TEXT    NOT NULL,
    event_id   TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    problem    INTEGER NOT NULL,                      -- 1 when the step is an outcome to look at
    step       TEXT    NOT NULL,                      -- HistoryStep JSON
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX history_by_contact ON history (contact, at);
CREATE INDEX history_by_expiry ON history (expires_at);
CREATE INDEX history_problems ON history (at) WHERE problem = 1;
"#,
    r#"
-- Per-webinar settings (issue 15): tag mapping, listid and include filter per `source#webinar`
-- (`*` for all), and the webinars seen (their tags created ahead).
CREATE TABLE webinar_settings (
    key     TEXT PRIMARY KEY,                         -- source#webinar
    setting TEXT NOT NULL                             -- WebinarSetting JSON
) STRICT, WITHOUT ROWID;
CREATE TABLE webinars_seen (
    key     TEXT PRIMARY KEY,                         -- source#webinar[#date]
    seen_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
"#,
    r#"
-- Authenticated webhooks whose body could not become an event, kept to be reprocessed (issue 15).
CREATE TABLE parked_webhooks (
    id           TEXT    PRIMARY KEY,                 -- ParkedWebhook::new_id: sorts by arrival
    source       TEXT    NOT NULL,
    path         TEXT    NOT NULL,
    query        TEXT,                                -- without the token
    content_type TEXT,
    body         BLOB    NOT NULL,
    size         INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    reason       TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX parked_webhooks_by_expiry ON parked_webhooks (expires_at);
"#,
];

// ---------------------------------------------------------------------------------------------
// Errors and conversions

impl From<rusqlite::Error> for PortError {
    fn from(error: rusqlite::Error) -> Self {
        use rusqlite::Error as E;
        match &error {
            E::SqliteFailure(failure, _) => match failure.code {
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => PortError::Corrupt(error.to_string()),
                // Busy, locked, I/O, disk full, cannot open, ...: the file may recover, so retry.
                _ => PortError::Unavailable(error.to_string()),
            },
            E::FromSqlConversionFailure(..)
            | E::IntegralValueOutOfRange(..)
            | E::InvalidColumnType(..)
            | E::Utf8Error(..) => PortError::Corrupt(error.to_string()),
            _ => PortError::Unavailable(error.to_string()),
        }
    }
}

fn corrupt(what: impl fmt::Display) -> PortError {
    PortError::Corrupt(what.to_string())
}

fn to_micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn from_micros(micros: i64) -> PortResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt(format!("timestamp {micros} is out of range")))
}

/// `at + duration`, saturating instead of panicking on absurd durations.
fn later(at: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|delta| at.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `at - duration`, saturating.
fn earlier(at: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|delta| at.checked_sub_signed(delta))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn stored_id(id: u64, what: &str) -> PortResult<i64> {
    i64::try_from(id).map_err(|_| corrupt(format!("{what} {id} does not fit in a SQLite integer")))
}

fn loaded_id(id: i64, what: &str) -> PortResult<u64> {
    u64::try_from(id).map_err(|_| corrupt(format!("stored {what} {id} is negative")))
}

/// `BEGIN IMMEDIATE`: takes the write lock up front, waiting up to `BUSY_TIMEOUT` for it. A deferred
/// transaction that reads and then writes would instead fail at once when another connection
/// wrote in between.
fn write_transaction(connection: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    connection.transaction_with_behavior(TransactionBehavior::Immediate)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic mid-call dropped its transaction (rolled back), so the connection is still sound.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// The database

/// One SQLite database holding the queue, event log, contacts and tags. Cheap to clone: every
/// adapter built from it shares the one connection.
#[derive(Clone)]
pub struct SqliteDb {
    connection: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
    /// File-backed databases only; stops when the last handle is dropped.
    _checkpointer: Option<Arc<Checkpointer>>,
}

impl SqliteDb {
    /// The schema version this build writes (`PRAGMA user_version`).
    pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

    /// Opens (creating if needed) the database file, switches it to WAL and migrates the schema.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteDb, PortError> {
        let path = path.as_ref().to_path_buf();
        let connection = Connection::open(&path)?;
        Self::initialize(connection, Some(path))
    }

    /// A private database that lives as long as this handle (tests, `simulate`).
    pub fn open_in_memory() -> Result<SqliteDb, PortError> {
        Self::initialize(Connection::open_in_memory()?, None)
    }

    /// The file behind this database; `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The schema version stored in the file.
    pub async fn schema_version(&self) -> PortResult<u32> {
        self.run(|connection| Ok(connection.pragma_query_value(None, "user_version", |row| row.get(0))?)).await
    }

    fn initialize(mut connection: Connection, path: Option<PathBuf>) -> PortResult<SqliteDb> {
        configure(&connection, path.is_some())?;
        migrate(&mut connection)?;
        let checkpointer = path.as_deref().map(|path| Arc::new(Checkpointer::start(path)));
        Ok(SqliteDb { connection: Arc::new(Mutex::new(connection)), path, _checkpointer: checkpointer })
    }

    /// Runs `work` on the blocking pool with the connection to itself.
    async fn run<T, F>(&self, work: F) -> PortResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> PortResult<T> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || work(&mut lock(&connection)))
            .await
            .map_err(|error| PortError::Unavailable(format!("storage task failed: {error}")))?
    }
}

/// Rows deleted per statement when purging, so a large backlog of expired rows never holds the
/// connection long: requests interleave between the chunks.
const PURGE_CHUNK: i64 = 1_000;

/// What one [`SqliteDb::purge`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Event records past their TTL (`BRIDGE_EVENT_RETENTION_DAYS` after they completed).
    pub events: usize,
    /// Dead letters older than the retention (SQS also drops a dead-letter queue's messages
    /// after its retention period).
    pub dead_letters: usize,
    /// Queue deduplication ids past the deduplication window.
    pub dedup_ids: usize,
    /// History entries past their retention.
    pub history: usize,
    /// Ingest receipts past their retention.
    pub receipts: usize,
    /// Parked webhook bodies past their retention.
    pub parked: usize,
}

/// Row counts and file size, for the storage figures and the bounded-growth test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageStats {
    pub rows: BTreeMap<&'static str, u64>,
    /// `PRAGMA page_count`: pages in use or free; freed pages are reused before the file grows.
    pub pages: u64,
    pub page_size: u64,
}

/// The tables that can grow with time.
const STATS_TABLES: [&str; 7] =
    ["queue_messages", "queue_dedup", "dead_letters", "event_log", "contacts", "tags", "history"];

impl SqliteDb {
    /// Deletes what has outlived its use as of `now`: event records whose TTL has passed (they
    /// behave as absent already), dead letters older than `retention`, and deduplication ids
    /// older than `dedup_window`. In chunks, so it never blocks the pipeline for long. `serve`
    /// runs it periodically.
    pub async fn purge(&self, now: DateTime<Utc>, retention: Duration, dedup_window: Duration) -> PortResult<Purged> {
        let expired = to_micros(now);
        let dead_before = to_micros(earlier(now, retention));
        let dedup_before = to_micros(earlier(now, dedup_window));
        Ok(Purged {
            events: self
                .purge_chunked(
                    "DELETE FROM event_log WHERE event_id IN
                     (SELECT event_id FROM event_log WHERE expires_at <= ?1 LIMIT ?2)",
                    expired,
                )
                .await?,
            dead_letters: self
                .purge_chunked(
                    "DELETE FROM dead_letters WHERE message_id IN
                     (SELECT message_id FROM dead_letters WHERE dead_at <= ?1 LIMIT ?2)",
                    dead_before,
                )
                .await?,
            dedup_ids: self
                .purge_chunked(
                    "DELETE FROM queue_dedup WHERE dedup_id IN
                     (SELECT dedup_id FROM queue_dedup WHERE sent_at <= ?1 LIMIT ?2)",
                    dedup_before,
                )
                .await?,
            history: self
                .purge_chunked(
                    "DELETE FROM history WHERE id IN
                     (SELECT id FROM history WHERE expires_at <= ?1 LIMIT ?2)",
                    expired,
                )
                .await?,
            receipts: self
                .purge_chunked(
                    "DELETE FROM ingest_receipts WHERE event_id IN
                     (SELECT event_id FROM ingest_receipts WHERE expires_at <= ?1 LIMIT ?2)",
                    expired,
                )
                .await?,
            parked: self
                .purge_chunked(
                    "DELETE FROM parked_webhooks WHERE id IN
                     (SELECT id FROM parked_webhooks WHERE expires_at <= ?1 LIMIT ?2)",
                    expired,
                )
                .await?,
        })
    }

    async fn purge_chunked(&self, sql: &'static str, before: i64) -> PortResult<usize> {
        let mut total = 0;
        loop {
            let deleted = self
                .run(move |connection| Ok(connection.prepare_cached(sql)?.execute(params![before, PURGE_CHUNK])?))
                .await?;
            total += deleted;
            if (deleted as i64) < PURGE_CHUNK {
                return Ok(total);
            }
        }
    }

    /// Rows per table and the database's page count.
    pub async fn stats(&self) -> PortResult<StorageStats> {
        self.run(|connection| {
            let mut rows = BTreeMap::new();
            for table in STATS_TABLES {
                let count: i64 =
                    connection.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| row.get(0))?;
                rows.insert(table, loaded_id(count, "row count")?);
            }
            let pages: i64 = connection.pragma_query_value(None, "page_count", |row| row.get(0))?;
            let page_size: i64 = connection.pragma_query_value(None, "page_size", |row| row.get(0))?;
            Ok(StorageStats {
                rows,
                pages: loaded_id(pages, "page count")?,
                page_size: loaded_id(page_size, "page size")?,
            })
        })
        .await
    }
}

/// What the console's overview shows: events per hour and the backlog (issue 14).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverviewCounts {
    /// One entry per hour from `since` (hour start, Unix seconds), oldest first.
    pub hours: Vec<HourCounts>,
    /// Messages waiting or in flight.
    pub queue_depth: u64,
    pub dead_letters: u64,
    /// Events KlickTipp refused for good (within the retention).
    pub rejected: u64,
    /// Contacts with a field value KlickTipp refused.
    pub field_problem_contacts: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HourCounts {
    pub hour_start: i64,
    pub accepted: u64,
    pub applied: u64,
    pub rejected: u64,
}

const MICROS_PER_HOUR: i64 = 3_600_000_000;

impl SqliteDb {
    /// Counts per hour from `since` to `now` (accepted from the ingest receipts, applied and
    /// rejected from the event log) and the backlog, for the console's overview.
    pub async fn overview_counts(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> PortResult<OverviewCounts> {
        let first_hour = to_micros(since).div_euclid(MICROS_PER_HOUR);
        let last_hour = to_micros(now).div_euclid(MICROS_PER_HOUR);
        self.run(move |connection| {
            let hours = usize::try_from((last_hour - first_hour + 1).clamp(1, 24 * 31)).map_err(corrupt)?;
            let mut counts: Vec<HourCounts> = (0..hours)
                .map(|index| HourCounts { hour_start: (first_hour + index as i64) * 3600, ..HourCounts::default() })
                .collect();
            let since = first_hour * MICROS_PER_HOUR;
            let slot = |micros: i64| usize::try_from(micros.div_euclid(MICROS_PER_HOUR) - first_hour).ok();
            let mut accepted = connection.prepare_cached(
                "SELECT first_seen / 3600000000, COUNT(*) FROM ingest_receipts WHERE first_seen >= ?1 GROUP BY 1",
            )?;
            let rows = accepted.query_map([since], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))?;
            for row in rows {
                let (hour, count) = row?;
                if let Some(entry) = slot(hour * MICROS_PER_HOUR).and_then(|index| counts.get_mut(index)) {
                    entry.accepted = loaded_id(count, "count")?;
                }
            }
            let mut outcomes = connection.prepare_cached(
                "SELECT updated_at / 3600000000, json_extract(outcome, '$.outcome'), COUNT(*) FROM event_log
                 WHERE outcome IS NOT NULL AND updated_at >= ?1 GROUP BY 1, 2",
            )?;
            let rows = outcomes.query_map([since], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Option<String>>(1)?, row.get::<_, i64>(2)?))
            })?;
            for row in rows {
                let (hour, outcome, count) = row?;
                if let Some(entry) = slot(hour * MICROS_PER_HOUR).and_then(|index| counts.get_mut(index)) {
                    match outcome.as_deref() {
                        Some("applied") => entry.applied += loaded_id(count, "count")?,
                        Some("rejected") => entry.rejected += loaded_id(count, "count")?,
                        _ => {}
                    }
                }
            }
            let count =
                |sql: &str| -> PortResult<u64> { loaded_id(connection.query_row(sql, [], |row| row.get(0))?, "count") };
            Ok(OverviewCounts {
                hours: counts,
                queue_depth: count("SELECT COUNT(*) FROM queue_messages")?,
                dead_letters: count("SELECT COUNT(*) FROM dead_letters")?,
                rejected: count(
                    "SELECT COUNT(*) FROM event_log WHERE json_extract(outcome, '$.outcome') = 'rejected'",
                )?,
                field_problem_contacts: count(
                    "SELECT COUNT(*) FROM contacts WHERE json_extract(record, '$.field_problems') NOT IN ('{}')",
                )?,
            })
        })
        .await
    }

    /// The stored contacts whose address hashes to `short_hash` (`Email::short_hash`): how the
    /// console addresses a contact without putting the address in a URL.
    pub async fn contacts_with_short_hash(&self, short_hash: &str) -> PortResult<Vec<Email>> {
        let wanted = short_hash.to_ascii_lowercase();
        self.run(move |connection| {
            let mut statement = connection.prepare_cached("SELECT email FROM contacts")?;
            let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
            let mut found = Vec::new();
            for email in rows {
                if let Ok(email) = Email::parse(&email?)
                    && email.short_hash() == wanted
                {
                    found.push(email);
                }
            }
            Ok(found)
        })
        .await
    }

    /// Contacts holding a field value KlickTipp refused (at most `limit`).
    pub async fn contacts_with_field_problems(&self, limit: usize) -> PortResult<Vec<Email>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT email FROM contacts WHERE json_extract(record, '$.field_problems') NOT IN ('{}') LIMIT ?1",
            )?;
            let rows = statement.query_map([limit], |row| row.get::<_, String>(0))?;
            let mut found = Vec::new();
            for email in rows {
                found.push(Email::parse(&email?).map_err(corrupt)?);
            }
            Ok(found)
        })
        .await
    }

    /// Events KlickTipp refused for good, newest first: (event id, reason JSON, when).
    pub async fn rejected_events(&self, limit: usize) -> PortResult<Vec<(String, String, DateTime<Utc>)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT event_id, outcome, updated_at FROM event_log
                 WHERE json_extract(outcome, '$.outcome') = 'rejected' ORDER BY updated_at DESC LIMIT ?1",
            )?;
            let rows = statement.query_map([limit], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (event_id, outcome, at) = row?;
                out.push((event_id, outcome, from_micros(at)?));
            }
            Ok(out)
        })
        .await
    }
}

/// A webinar some stored contact has state for, as the console's settings page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownWebinar {
    pub key: crate::domain::WebinarKey,
    /// The name an event gave it, if any.
    pub name: Option<String>,
    /// The latest session start (RFC 3339) and its time zone, for a `{date}` preview.
    pub latest_start: Option<String>,
    pub timezone: Option<String>,
    /// Contacts with state for it.
    pub contacts: u64,
}

impl SqliteDb {
    /// Every webinar the stored contacts have state for, with its name and contact count.
    pub async fn known_webinars(&self) -> PortResult<Vec<KnownWebinar>> {
        self.run(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT json_extract(w.value, '$.webinar'),
                        MAX(json_extract(w.value, '$.state.fields.webinar_name.value')),
                        MAX(json_extract(w.value, '$.state.fields.webinar_start.value')),
                        MAX(json_extract(w.value, '$.state.fields.timezone.value')),
                        COUNT(*)
                 FROM contacts, json_each(contacts.record, '$.webinars') AS w
                 GROUP BY 1",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            })?;
            let mut found: Vec<KnownWebinar> = Vec::new();
            for row in rows {
                let (key, name, latest_start, timezone, contacts) = row?;
                let key: crate::domain::WebinarKey = serde_json::from_str(&key).map_err(corrupt)?;
                let contacts = loaded_id(contacts, "count")?;
                // The same key written in two spellings (field order) is one webinar.
                if let Some(known) = found.iter_mut().find(|known| known.key == key) {
                    known.contacts += contacts;
                    known.name = known.name.take().or(name);
                    continue;
                }
                found.push(KnownWebinar { key, name, latest_start, timezone, contacts });
            }
            found.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(found)
        })
        .await
    }
}

impl fmt::Debug for SqliteDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteDb").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Checkpoints the WAL every `CHECKPOINT_INTERVAL` on a connection and thread of its own.
///
/// With SQLite's default, the commit that filled 1000 WAL pages ran the checkpoint itself: two
/// fsyncs (2-8 ms each on the project machines) inside a request, under the connection's mutex,
/// once every ~170 webhooks at 1,000/s, which was serve's p99. A PASSIVE checkpoint from a
/// second connection never blocks the writer, and an idle database costs nothing (nothing new
/// to copy, no fsync).
struct Checkpointer {
    /// Dropping it wakes the thread, which checkpoints once more and ends.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Self {
        let (stop, stopped) = mpsc::channel();
        let path = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_until_stopped(&path, &stopped))
            .map_err(|error| tracing::warn!(%error, "no background checkpoints; commits will checkpoint"))
            .ok();
        Self { stop: Some(stop), thread }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn checkpoint_until_stopped(path: &Path, stopped: &mpsc::Receiver<()>) {
    let connection = match open_checkpoint_connection(path) {
        Ok(connection) => connection,
        Err(error) => {
            tracing::warn!(%error, "no background checkpoints; commits will checkpoint");
            return;
        }
    };
    loop {
        let stopping = !matches!(stopped.recv_timeout(CHECKPOINT_INTERVAL), Err(mpsc::RecvTimeoutError::Timeout));
        // (busy, WAL frames, frames checkpointed); a busy answer just means "next time".
        if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(0)) {
            tracing::warn!(%error, "WAL checkpoint failed; retrying");
        }
        if stopping {
            return;
        }
    }
}

fn open_checkpoint_connection(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // NORMAL: the checkpoint syncs the WAL before copying it and the database after.
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(connection)
}

fn configure(connection: &Connection, file_backed: bool) -> PortResult<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    if file_backed {
        // WAL: readers never block the writer, and with synchronous=NORMAL a commit needs no fsync
        // (a power cut may lose the last commits, never corrupt the file).
        let mode: String = connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(journal_mode = %mode, "SQLite refused WAL mode; continuing with a slower journal");
        }
        connection.pragma_update(None, "wal_autocheckpoint", FALLBACK_AUTOCHECKPOINT_PAGES)?;
    }
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", true)?;
    // Deleted content is overwritten with zeros, so an erased contact (`forget`) leaves no bytes
    // behind in freed pages or cells.
    connection.pragma_update(None, "secure_delete", true)?;
    Ok(())
}

/// Brings the schema up to `SCHEMA_VERSION`; a no-op on an up-to-date file. Runs in an immediate
/// transaction so two processes opening a new file at once do not both migrate it.
fn migrate(connection: &mut Connection) -> PortResult<()> {
    let transaction = write_transaction(connection)?;
    let current: u32 = transaction.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if current > SqliteDb::SCHEMA_VERSION {
        return Err(corrupt(format!(
            "the database has schema version {current}, newer than this build's {}",
            SqliteDb::SCHEMA_VERSION
        )));
    }
    for migration in &MIGRATIONS[current as usize..] {
        transaction.execute_batch(migration)?;
    }
    transaction.pragma_update(None, "user_version", SqliteDb::SCHEMA_VERSION)?;
    transaction.commit()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Queue

/// Durable FIFO queue with the semantics of `MemoryQueue` (SQS FIFO).
#[derive(Clone)]
pub struct SqliteQueue {
    db: SqliteDb,
    settings: QueueSettings,
    clock: Arc<dyn Clock>,
}

/// A message that may be delivered by this receive.
struct Deliverable {
    id: i64,
    group_id: String,
    body: String,
    receive_count: u32,
}

impl SqliteQueue {
    pub fn new(db: SqliteDb, settings: QueueSettings) -> Self {
        Self::with_clock(db, settings, Arc::new(SystemClock))
    }

    pub fn with_clock(db: SqliteDb, settings: QueueSettings, clock: Arc<dyn Clock>) -> Self {
        Self { db, settings, clock }
    }

    /// Messages that used up their receives, oldest first.
    pub async fn dead_letters(&self) -> PortResult<Vec<DeadLetter>> {
        self.db
            .run(|connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT message_id, group_id, body, receive_count, reason FROM dead_letters ORDER BY dead_at, message_id",
                )?;
                let rows = statement.query_map([], |row| {
                    Ok(DeadLetter {
                        message_id: row.get::<_, i64>(0)?.to_string(),
                        group_id: row.get(1)?,
                        body: row.get(2)?,
                        receive_count: row.get(3)?,
                        reason: row.get(4)?,
                    })
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
    }

    /// Messages not yet acknowledged or dead-lettered.
    pub async fn pending(&self) -> PortResult<usize> {
        self.db
            .run(|connection| {
                let count: i64 = connection.query_row("SELECT COUNT(*) FROM queue_messages", [], |row| row.get(0))?;
                usize::try_from(count).map_err(corrupt)
            })
            .await
    }

    /// Moves every dead letter back into the queue at its original place, visible now and with a
    /// fresh receive count (operators' redrive, like SQS's). Returns how many moved.
    pub async fn redrive_dead_letters(&self) -> PortResult<usize> {
        let now = to_micros(self.clock.now());
        self.db
            .run(move |connection| {
                let transaction = write_transaction(connection)?;
                let moved = transaction.execute(
                    "INSERT INTO queue_messages (id, group_id, dedup_id, body, receive_count, visible_at, receipt)
                     SELECT message_id, group_id, dedup_id, body, 0, ?1, NULL FROM dead_letters",
                    [now],
                )?;
                transaction.execute("DELETE FROM dead_letters", [])?;
                transaction.commit()?;
                Ok(moved)
            })
            .await
    }
}

/// Forgets dedup ids whose window has passed.
fn forget_old_dedup_ids(connection: &Connection, window_start: i64) -> rusqlite::Result<()> {
    connection.prepare_cached("DELETE FROM queue_dedup WHERE sent_at <= ?1")?.execute([window_start])?;
    Ok(())
}

/// Records `dedup_id`; false if it is already within the window.
fn first_sighting(connection: &Connection, dedup_id: &str, now: i64) -> rusqlite::Result<bool> {
    let inserted = connection
        .prepare_cached("INSERT INTO queue_dedup (dedup_id, sent_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING")?
        .execute(params![dedup_id, now])?;
    Ok(inserted == 1)
}

fn move_to_dead_letters(connection: &Connection, id: i64, now: i64) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO dead_letters (message_id, group_id, dedup_id, body, receive_count, dead_at)
             SELECT id, group_id, dedup_id, body, receive_count, ?2 FROM queue_messages WHERE id = ?1",
        )?
        .execute(params![id, now])?;
    connection.prepare_cached("DELETE FROM queue_messages WHERE id = ?1")?.execute([id])?;
    Ok(())
}

/// SQS FIFO's receive shape (see [`crate::adapters::receive_plan`]). It reads only as far as it
/// needs: the oldest messages by id, and each of their groups through `queue_messages_by_group`.
fn plan_receive(
    connection: &Connection,
    now: i64,
    max: usize,
    max_receive_count: u32,
) -> rusqlite::Result<ReceivePlan<Deliverable>> {
    let mut plan = ReceivePlan::new(max, max_receive_count);
    if plan.is_full() {
        return Ok(plan);
    }
    let mut by_age = connection.prepare_cached("SELECT group_id FROM queue_messages ORDER BY id")?;
    let mut of_group = connection.prepare_cached(
        "SELECT id, body, receive_count, visible_at FROM queue_messages WHERE group_id = ?1 ORDER BY id",
    )?;
    let mut walked_groups: HashSet<String> = HashSet::new();
    let mut oldest_first = by_age.query([])?;
    'groups: while let Some(row) = oldest_first.next()? {
        let group_id: String = row.get(0)?;
        if walked_groups.contains(&group_id) {
            continue;
        }
        let mut members = of_group.query([&group_id])?;
        while let Some(member) = members.next()? {
            let visible = member.get::<_, i64>(3)? <= now;
            let (id, receive_count): (i64, u32) = (member.get(0)?, member.get(2)?);
            let body = if visible { member.get(1)? } else { String::new() };
            let message = Deliverable { id, group_id: group_id.clone(), body, receive_count };
            match plan.offer(message, visible, receive_count) {
                Walk::NextMessage => {}
                Walk::NextGroup => break,
                Walk::Stop => break 'groups,
            }
        }
        walked_groups.insert(group_id);
    }
    Ok(plan)
}

/// Marks one message in flight until `visible_at` and returns the delivery.
fn deliver(connection: &Connection, message: Deliverable, visible_at: i64) -> rusqlite::Result<QueuedMessage> {
    let receive_count = message.receive_count.saturating_add(1);
    // The random part keeps receipts unique even when a redriven message starts counting again.
    let receipt = format!("{}-{}-{:016x}", message.id, receive_count, rand::random::<u64>());
    connection
        .prepare_cached("UPDATE queue_messages SET receive_count = ?2, visible_at = ?3, receipt = ?4 WHERE id = ?1")?
        .execute(params![message.id, receive_count, visible_at, receipt])?;
    Ok(QueuedMessage {
        message_id: message.id.to_string(),
        receipt,
        group_id: message.group_id,
        body: message.body,
        receive_count,
    })
}

/// The row id behind a delivery; `None` for ids this queue never issued.
fn row_id(message: &QueuedMessage) -> Option<i64> {
    message.message_id.parse().ok()
}

#[async_trait]
impl EventQueue for SqliteQueue {
    async fn send(&self, messages: &[OutgoingMessage]) -> PortResult<()> {
        let now = self.clock.now();
        let window_start = to_micros(earlier(now, self.settings.dedup_window));
        let now = to_micros(now);
        let messages = messages.to_vec();
        self.db
            .run(move |connection| {
                let transaction = write_transaction(connection)?;
                forget_old_dedup_ids(&transaction, window_start)?;
                for message in &messages {
                    if !first_sighting(&transaction, &message.dedup_id, now)? {
                        continue;
                    }
                    transaction
                        .prepare_cached(
                            "INSERT INTO queue_messages (group_id, dedup_id, body, receive_count, visible_at)
                             VALUES (?1, ?2, ?3, 0, ?4)",
                        )?
                        .execute(params![message.group_id, message.dedup_id, message.body, now])?;
                }
                transaction.commit()?;
                Ok(())
            })
            .await
    }

    async fn receive(&self, max: usize) -> PortResult<Vec<QueuedMessage>> {
        let now = self.clock.now();
        let visible_at = to_micros(later(now, self.settings.visibility_timeout));
        let now = to_micros(now);
        let max_receive_count = self.settings.max_receive_count;
        self.db
            .run(move |connection| {
                let transaction = write_transaction(connection)?;
                let plan = plan_receive(&transaction, now, max, max_receive_count)?;
                for dead in plan.dead {
                    move_to_dead_letters(&transaction, dead.id, now)?;
                }
                let received = plan
                    .deliver
                    .into_iter()
                    .map(|message| deliver(&transaction, message, visible_at))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                transaction.commit()?;
                Ok(received)
            })
            .await
    }

    async fn ack(&self, message: &QueuedMessage) -> PortResult<()> {
        let Some(id) = row_id(message) else { return Ok(()) };
        let receipt = message.receipt.clone();
        self.db
            .run(move |connection| {
                // A stale receipt (the message was redelivered meanwhile) matches nothing.
                connection
                    .prepare_cached("DELETE FROM queue_messages WHERE id = ?1 AND receipt = ?2")?
                    .execute(params![id, receipt])?;
                Ok(())
            })
            .await
    }

    async fn retry_later(&self, message: &QueuedMessage, delay: Duration) -> PortResult<()> {
        let Some(id) = row_id(message) else { return Ok(()) };
        let visible_at = to_micros(later(self.clock.now(), delay));
        let receipt = message.receipt.clone();
        self.db
            .run(move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE queue_messages SET visible_at = ?3, receipt = NULL WHERE id = ?1 AND receipt = ?2",
                    )?
                    .execute(params![id, receipt, visible_at])?;
                Ok(())
            })
            .await
    }

    async fn dead_letter(&self, message: &QueuedMessage, reason: &str) -> PortResult<()> {
        let Some(id) = row_id(message) else { return Ok(()) };
        let now = to_micros(self.clock.now());
        let receipt = message.receipt.clone();
        let reason = reason.to_owned();
        self.db
            .run(move |connection| {
                let transaction = write_transaction(connection)?;
                // A stale receipt (the message was redelivered meanwhile) matches nothing.
                let moved = transaction
                    .prepare_cached(
                        "INSERT INTO dead_letters (message_id, group_id, dedup_id, body, receive_count, dead_at, reason)
                         SELECT id, group_id, dedup_id, body, receive_count, ?3, ?4 FROM queue_messages
                         WHERE id = ?1 AND receipt = ?2",
                    )?
                    .execute(params![id, receipt, now, reason])?;
                if moved == 1 {
                    transaction.prepare_cached("DELETE FROM queue_messages WHERE id = ?1")?.execute([id])?;
                }
                transaction.commit()?;
                Ok(())
            })
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Event log

/// Idempotency records with leases and a TTL. Expired records behave as absent: a claim takes
/// them over (`decide_claim`), `get` does not return them, and `purge_expired` deletes them.
#[derive(Clone)]
pub struct SqliteEventLog {
    db: SqliteDb,
    clock: Arc<dyn Clock>,
}

impl SqliteEventLog {
    pub fn new(db: SqliteDb) -> Self {
        Self::with_clock(db, Arc::new(SystemClock))
    }

    /// `clock` decides which records `get` treats as expired.
    pub fn with_clock(db: SqliteDb, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    /// Deletes records that expired at or before `now`; returns how many.
    pub async fn purge_expired(&self, now: DateTime<Utc>) -> PortResult<usize> {
        let now = to_micros(now);
        self.db
            .run(move |connection| Ok(connection.execute("DELETE FROM event_log WHERE expires_at <= ?1", [now])?))
            .await
    }
}

const EVENT_COLUMNS: &str = "event_id, fingerprint, lease_until, outcome, updated_at, expires_at";

/// The raw columns of an `event_log` row, decoded outside rusqlite so decoding errors are ours.
struct EventRow {
    event_id: String,
    fingerprint: String,
    lease_until: Option<i64>,
    outcome: Option<String>,
    updated_at: i64,
    expires_at: i64,
}

impl EventRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            event_id: row.get(0)?,
            fingerprint: row.get(1)?,
            lease_until: row.get(2)?,
            outcome: row.get(3)?,
            updated_at: row.get(4)?,
            expires_at: row.get(5)?,
        })
    }

    fn into_record(self) -> PortResult<EventRecord> {
        let status = match (self.lease_until, self.outcome) {
            (_, Some(outcome)) => {
                EventStatus::Completed(serde_json::from_str::<FinalOutcome>(&outcome).map_err(corrupt)?)
            }
            (Some(lease_until), None) => EventStatus::InProgress { lease_until: from_micros(lease_until)? },
            (None, None) => return Err(corrupt(format!("event {} has neither a lease nor an outcome", self.event_id))),
        };
        // Stored ids were valid when written; serde is `EventId`'s one unvalidated constructor.
        let event_id = serde_json::from_value(serde_json::Value::String(self.event_id)).map_err(corrupt)?;
        Ok(EventRecord {
            event_id,
            fingerprint: self.fingerprint,
            status,
            updated_at: from_micros(self.updated_at)?,
            expires_at: from_micros(self.expires_at)?,
        })
    }
}

/// The stored record, expired or not.
fn stored_event(connection: &Connection, event_id: &str) -> PortResult<Option<EventRecord>> {
    connection
        .prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM event_log WHERE event_id = ?1"))?
        .query_row([event_id], EventRow::read)
        .optional()?
        .map(EventRow::into_record)
        .transpose()
}

#[async_trait]
impl EventLog for SqliteEventLog {
    async fn claim(
        &self,
        event_id: &EventId,
        fingerprint: &str,
        owner: &ClaimToken,
        now: DateTime<Utc>,
        lease: Duration,
        retention: Duration,
    ) -> PortResult<Claim> {
        let event_id = event_id.as_str().to_owned();
        let fingerprint = fingerprint.to_owned();
        let owner = owner.as_str().to_owned();
        let lease_until = to_micros(later(now, lease));
        let expires_at = to_micros(later(now, retention));
        self.db
            .run(move |connection| {
                let transaction = write_transaction(connection)?;
                let claim = decide_claim(stored_event(&transaction, &event_id)?.as_ref(), &fingerprint, now);
                if claim == Claim::Claimed {
                    transaction
                        .prepare_cached(&format!(
                            "INSERT OR REPLACE INTO event_log ({EVENT_COLUMNS}, owner) VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6)"
                        ))?
                        .execute(params![event_id, fingerprint, lease_until, to_micros(now), expires_at, owner])?;
                }
                transaction.commit()?;
                Ok(claim)
            })
            .await
    }

    async fn complete(
        &self,
        event_id: &EventId,
        owner: &ClaimToken,
        outcome: &FinalOutcome,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> PortResult<()> {
        let event_id = event_id.as_str().to_owned();
        let owner = owner.as_str().to_owned();
        let outcome = serde_json::to_string(outcome).map_err(corrupt)?;
        let expires_at = to_micros(later(now, retention));
        self.db
            .run(move |connection| {
                let updated = connection
                    .prepare_cached(
                        "UPDATE event_log SET lease_until = NULL, outcome = ?2, updated_at = ?3, expires_at = ?4
                         WHERE event_id = ?1 AND outcome IS NULL AND owner = ?5",
                    )?
                    .execute(params![event_id, outcome, to_micros(now), expires_at, owner])?;
                if updated == 0 {
                    return Err(PortError::ClaimLost);
                }
                Ok(())
            })
            .await
    }

    async fn release(&self, event_id: &EventId, owner: &ClaimToken) -> PortResult<()> {
        let event_id = event_id.as_str().to_owned();
        let owner = owner.as_str().to_owned();
        self.db
            .run(move |connection| {
                let transaction = write_transaction(connection)?;
                let released = transaction
                    .prepare_cached("DELETE FROM event_log WHERE event_id = ?1 AND outcome IS NULL AND owner = ?2")?
                    .execute(params![event_id, owner])?;
                let held_by_other = released == 0
                    && transaction
                        .prepare_cached("SELECT 1 FROM event_log WHERE event_id = ?1 AND outcome IS NULL")?
                        .exists([&event_id])?;
                transaction.commit()?;
                if held_by_other { Err(PortError::ClaimLost) } else { Ok(()) }
            })
            .await
    }

    async fn get(&self, event_id: &EventId) -> PortResult<Option<EventRecord>> {
        let event_id = event_id.as_str().to_owned();
        let now = self.clock.now();
        self.db
            .run(move |connection| Ok(stored_event(connection, &event_id)?.filter(|record| record.expires_at > now)))
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Contact store

/// Contact records as JSON with a version column for optimistic concurrency.
#[derive(Clone)]
pub struct SqliteContactStore {
    db: SqliteDb,
}

impl SqliteContactStore {
    pub fn new(db: SqliteDb) -> Self {
        Self { db }
    }
}

fn insert_new_contact(connection: &Connection, email: &str, json: &str) -> PortResult<u64> {
    let inserted = connection
        .prepare_cached("INSERT INTO contacts (email, record, version) VALUES (?1, ?2, 1) ON CONFLICT DO NOTHING")?
        .execute(params![email, json])?;
    if inserted == 0 {
        return Err(PortError::VersionConflict);
    }
    Ok(1)
}

fn update_contact(connection: &Connection, email: &str, json: &str, expected: u64) -> PortResult<u64> {
    // A version beyond SQLite's range was never issued by this store, so it cannot match.
    let expected = i64::try_from(expected).map_err(|_| PortError::VersionConflict)?;
    let next = expected.checked_add(1).ok_or_else(|| corrupt("contact version overflow"))?;
    let updated = connection
        .prepare_cached("UPDATE contacts SET record = ?2, version = ?4 WHERE email = ?1 AND version = ?3")?
        .execute(params![email, json, expected, next])?;
    if updated == 0 {
        return Err(PortError::VersionConflict);
    }
    loaded_id(next, "contact version")
}

#[async_trait]
impl ContactStore for SqliteContactStore {
    async fn load(&self, email: &Email) -> PortResult<Option<Versioned<ContactRecord>>> {
        let email = email.as_str().to_owned();
        self.db
            .run(move |connection| {
                let row: Option<(String, i64)> = connection
                    .prepare_cached("SELECT record, version FROM contacts WHERE email = ?1")?
                    .query_row([email], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()?;
                let Some((json, version)) = row else { return Ok(None) };
                let value: ContactRecord = serde_json::from_str(&json).map_err(corrupt)?;
                Ok(Some(Versioned { value, version: loaded_id(version, "contact version")? }))
            })
            .await
    }

    async fn save(&self, record: &ContactRecord, expected: Option<u64>) -> PortResult<u64> {
        let email = record.email.as_str().to_owned();
        let json = serde_json::to_string(record).map_err(corrupt)?;
        self.db
            .run(move |connection| match expected {
                None => insert_new_contact(connection, &email, &json),
                Some(expected) => update_contact(connection, &email, &json, expected),
            })
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Tag directory

/// Tag name -> KlickTipp id, with single-writer creation claims under a lease.
#[derive(Clone)]
pub struct SqliteTagDirectory {
    db: SqliteDb,
}

impl SqliteTagDirectory {
    pub fn new(db: SqliteDb) -> Self {
        Self { db }
    }
}

/// `(tag_id, lease_until)` of a stored tag row.
fn stored_tag(connection: &Connection, name: &str) -> rusqlite::Result<Option<(Option<i64>, Option<i64>)>> {
    connection
        .prepare_cached("SELECT tag_id, lease_until FROM tags WHERE name = ?1")?
        .query_row([name], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
}

#[async_trait]
impl TagDirectory for SqliteTagDirectory {
    async fn lookup(&self, name: &str) -> PortResult<Option<u64>> {
        let name = name.to_owned();
        self.db
            .run(move |connection| match stored_tag(connection, &name)? {
                Some((Some(id), _)) => Ok(Some(loaded_id(id, "tag id")?)),
                _ => Ok(None),
            })
            .await
    }

    async fn record_existing(&self, tags: &BTreeMap<String, u64>) -> PortResult<()> {
        let tags = tags
            .iter()
            .map(|(name, id)| Ok((name.clone(), stored_id(*id, "tag id")?)))
            .collect::<PortResult<Vec<_>>>()?;
        self.db
            .run(move |connection| {
                let transaction = write_transaction(connection)?;
                for (name, id) in &tags {
                    // A known id wins; a pending creation claim gives way to the id KlickTipp has.
                    transaction
                        .prepare_cached(
                            "INSERT INTO tags (name, tag_id, lease_until) VALUES (?1, ?2, NULL)
                             ON CONFLICT (name) DO UPDATE SET tag_id = excluded.tag_id, lease_until = NULL
                             WHERE tags.tag_id IS NULL",
                        )?
                        .execute(params![name, id])?;
                }
                transaction.commit()?;
                Ok(())
            })
            .await
    }

    async fn claim_creation(&self, name: &str, now: DateTime<Utc>, lease: Duration) -> PortResult<TagClaim> {
        let name = name.to_owned();
        let lease_until = to_micros(later(now, lease));
        let now = to_micros(now);
        self.db
            .run(move |connection| {
                let transaction = write_transaction(connection)?;
                let claim = match stored_tag(&transaction, &name)? {
                    Some((Some(id), _)) => TagClaim::Exists(loaded_id(id, "tag id")?),
                    Some((None, Some(held_until))) if held_until > now => TagClaim::HeldByOther,
                    expired => {
                        transaction
                            .prepare_cached(
                                "INSERT OR REPLACE INTO tags (name, tag_id, lease_until) VALUES (?1, NULL, ?2)",
                            )?
                            .execute(params![name, lease_until])?;
                        if expired.is_some() { TagClaim::TakenOver } else { TagClaim::Claimed }
                    }
                };
                transaction.commit()?;
                Ok(claim)
            })
            .await
    }

    async fn record_created(&self, name: &str, id: u64) -> PortResult<()> {
        let name = name.to_owned();
        let id = stored_id(id, "tag id")?;
        self.db
            .run(move |connection| {
                connection
                    .prepare_cached("INSERT OR REPLACE INTO tags (name, tag_id, lease_until) VALUES (?1, ?2, NULL)")?
                    .execute(params![name, id])?;
                Ok(())
            })
            .await
    }

    async fn forget(&self, name: &str) -> PortResult<()> {
        let name = name.to_owned();
        self.db
            .run(move |connection| {
                connection.prepare_cached("DELETE FROM tags WHERE name = ?1")?.execute([name])?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(db: &SqliteDb, sql: &str) {
        lock(&db.connection).execute_batch(sql).expect("raw SQL");
    }

    #[test]
    fn busy_and_locked_are_retryable_and_corruption_is_not() {
        for code in [rusqlite::ffi::SQLITE_BUSY, rusqlite::ffi::SQLITE_LOCKED] {
            let error = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
            assert!(matches!(PortError::from(error), PortError::Unavailable(_)));
        }
        let corrupt = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT), None);
        assert!(matches!(PortError::from(corrupt), PortError::Corrupt(_)));
    }

    #[tokio::test]
    async fn an_unreadable_contact_is_corrupt() {
        let db = SqliteDb::open_in_memory().expect("open");
        raw(&db, "INSERT INTO contacts (email, record, version) VALUES ('a@example.com', '{\"email\":', 1)");
        let email = Email::parse("a@example.com").expect("email");
        let loaded = SqliteContactStore::new(db).load(&email).await;
        assert!(matches!(loaded, Err(PortError::Corrupt(_))), "{loaded:?}");
    }

    #[tokio::test]
    async fn an_unreadable_outcome_is_corrupt() {
        let db = SqliteDb::open_in_memory().expect("open");
        raw(
            &db,
            "INSERT INTO event_log (event_id, fingerprint, outcome, updated_at, expires_at)
             VALUES ('evt', 'fp', '{\"outcome\":\"exploded\"}', 0, 9000000000000000)",
        );
        let id = EventId::from_sender("evt").expect("id");
        let owner = ClaimToken::new();
        let claim = SqliteEventLog::new(db).claim(&id, "fp", &owner, Utc::now(), Duration::ZERO, Duration::ZERO).await;
        assert!(matches!(claim, Err(PortError::Corrupt(_))), "{claim:?}");
    }

    #[test]
    fn a_schema_from_a_newer_build_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("future.db");
        let db = SqliteDb::open(&path).expect("open");
        raw(&db, "PRAGMA user_version = 99");
        drop(db);
        assert!(matches!(SqliteDb::open(&path), Err(PortError::Corrupt(_))));
    }

    #[test]
    fn absurd_durations_saturate_instead_of_panicking() {
        let now = Utc::now();
        assert_eq!(later(now, Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(earlier(now, Duration::MAX), DateTime::<Utc>::MIN_UTC);
        assert!(from_micros(to_micros(DateTime::<Utc>::MAX_UTC)).is_ok(), "the latest time still fits");
    }
}

// ---------------------------------------------------------------------------------------------
// Receipt log

/// Ingest receipts (`ingest_receipts`): decided by the same rule as the memory adapter, inside
/// one write transaction, so concurrent deliveries of one id see one winner.
#[derive(Clone)]
pub struct SqliteReceiptLog {
    db: SqliteDb,
}

impl SqliteReceiptLog {
    /// Expired receipts are deleted by [`SqliteDb::purge`], with the rest of what expires.
    pub fn new(db: SqliteDb) -> Self {
        Self { db }
    }
}

impl SqliteReceiptLog {
    /// Live receipts with refused reuses whose last refusal was at or after `since` (the
    /// `problems` command's refused webhooks), oldest first.
    pub async fn refused_receipts_since(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> PortResult<Vec<ReceiptRecord>> {
        let (since, now) = (to_micros(since), to_micros(now));
        self.db
            .run(move |connection| {
                let ids: Vec<String> = connection
                    .prepare_cached(
                        "SELECT event_id FROM ingest_receipts
                         WHERE rejected_reuses > 0 AND last_rejected_at >= ?1 AND expires_at > ?2
                         ORDER BY last_rejected_at",
                    )?
                    .query_map(params![since, now], |row| row.get(0))?
                    .collect::<Result<_, _>>()?;
                let mut records = Vec::new();
                for id in ids {
                    let event_id = EventId::from_sender(&id)
                        .ok_or_else(|| corrupt(format!("stored event id {id:?} is invalid")))?;
                    records.extend(stored_receipt(connection, &event_id)?);
                }
                Ok(records)
            })
            .await
    }
}

const RECEIPT_COLUMNS: &str =
    "event_id, fingerprint, first_seen, expires_at, rejected_reuses, last_rejected_at, last_rejected_fingerprint";

fn stored_receipt(connection: &Connection, event_id: &EventId) -> PortResult<Option<ReceiptRecord>> {
    type RawReceipt = (String, i64, i64, i64, Option<i64>, Option<String>);
    let row: Option<RawReceipt> = connection
        .prepare_cached(&format!("SELECT {RECEIPT_COLUMNS} FROM ingest_receipts WHERE event_id = ?1"))?
        .query_row([event_id.as_str()], |row| {
            Ok((row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?))
        })
        .optional()?;
    let Some((fingerprint, first_seen, expires_at, rejected_reuses, last_rejected_at, last_rejected_fingerprint)) = row
    else {
        return Ok(None);
    };
    Ok(Some(ReceiptRecord {
        event_id: event_id.clone(),
        fingerprint,
        first_seen: from_micros(first_seen)?,
        expires_at: from_micros(expires_at)?,
        rejected_reuses: u32::try_from(rejected_reuses).map_err(corrupt)?,
        last_rejected_at: last_rejected_at.map(from_micros).transpose()?,
        last_rejected_fingerprint,
    }))
}

fn store_receipt(connection: &Connection, record: &ReceiptRecord) -> PortResult<()> {
    connection
        .prepare_cached(&format!(
            "INSERT OR REPLACE INTO ingest_receipts ({RECEIPT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ))?
        .execute(params![
            record.event_id.as_str(),
            record.fingerprint,
            to_micros(record.first_seen),
            to_micros(record.expires_at),
            i64::from(record.rejected_reuses),
            record.last_rejected_at.map(to_micros),
            record.last_rejected_fingerprint,
        ])?;
    Ok(())
}

#[async_trait]
impl ReceiptLog for SqliteReceiptLog {
    async fn record(
        &self,
        event_id: &EventId,
        fingerprint: &str,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> PortResult<Receipt> {
        let event_id = event_id.clone();
        let fingerprint = fingerprint.to_owned();
        self.db
            .run(move |connection| {
                let transaction = write_transaction(connection)?;
                let existing = stored_receipt(&transaction, &event_id)?;
                let receipt = decide_receipt(existing.as_ref(), &fingerprint, now);
                match (&receipt, &existing) {
                    (Receipt::New, _) => {
                        store_receipt(&transaction, &new_receipt(&event_id, &fingerprint, now, retention))?
                    }
                    (Receipt::DifferentPayload { .. }, Some(existing)) => {
                        store_receipt(&transaction, &with_rejected_reuse(existing, &fingerprint, now))?
                    }
                    _ => {}
                }
                transaction.commit()?;
                Ok(receipt)
            })
            .await
    }

    async fn get(&self, event_id: &EventId, now: DateTime<Utc>) -> PortResult<Option<ReceiptRecord>> {
        let event_id = event_id.clone();
        self.db
            .run(move |connection| Ok(stored_receipt(connection, &event_id)?.filter(|record| record.expires_at > now)))
            .await
    }

    async fn refused_since(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> PortResult<Vec<ReceiptRecord>> {
        self.refused_receipts_since(since, now).await
    }
}

// ---------------------------------------------------------------------------------------------

/// Contact histories (`history`), indexed by contact hash and time.
#[derive(Clone)]
pub struct SqliteHistoryLog {
    db: SqliteDb,
}

impl SqliteHistoryLog {
    pub fn new(db: SqliteDb) -> Self {
        Self { db }
    }

    /// Appends many steps in one transaction (imports and benchmarks; `append` is one each).
    pub async fn append_many(&self, entries: &[HistoryEntry], retention: Duration) -> PortResult<()> {
        let rows = entries.iter().map(|entry| history_row(entry, retention)).collect::<PortResult<Vec<_>>>()?;
        self.db
            .run(move |connection| {
                let transaction = write_transaction(connection)?;
                {
                    let mut insert = transaction.prepare_cached(HISTORY_INSERT_SQL)?;
                    for row in &rows {
                        insert.execute(params![row.0, row.1, row.2, row.3, row.4, row.5])?;
                    }
                }
                transaction.commit()?;
                Ok(())
            })
            .await
    }

    /// `EXPLAIN QUERY PLAN` of the reads `contact` and `problems` make, as (query, plan) pairs,
    /// so a test can check they use their indexes.
    pub async fn query_plans(&self) -> PortResult<Vec<(&'static str, String)>> {
        self.db
            .run(|connection| {
                let mut plans = Vec::new();
                for (name, sql) in [("for_contact", HISTORY_FOR_CONTACT_SQL), ("problems_since", HISTORY_PROBLEMS_SQL)]
                {
                    let mut statement = connection.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let details: Vec<String> = statement
                        .query_map(params!["contact", 0_i64], |row| row.get::<_, String>(3))?
                        .collect::<Result<_, _>>()?;
                    plans.push((name, details.join("; ")));
                }
                Ok(plans)
            })
            .await
    }
}

const HISTORY_INSERT_SQL: &str = "INSERT INTO history (contact, event_id, at, problem, step, expires_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const HISTORY_FOR_CONTACT_SQL: &str = "SELECT contact, event_id, at, step FROM history
     WHERE contact = ?1 AND expires_at > ?2 ORDER BY at, id";
const HISTORY_PROBLEMS_SQL: &str = "SELECT contact, event_id, at, step FROM history
     WHERE problem = 1 AND at >= ?1 AND expires_at > ?2 ORDER BY at, id";

type HistoryRow = (String, String, i64, i64, String, i64);

fn history_row(entry: &HistoryEntry, retention: Duration) -> PortResult<HistoryRow> {
    let step = serde_json::to_string(&entry.step).map_err(corrupt)?;
    let problem = matches!(&entry.step, HistoryStep::Outcome(outcome) if outcome.is_problem());
    Ok((
        entry.contact.clone(),
        entry.event_id.as_str().to_owned(),
        to_micros(entry.at),
        i64::from(problem),
        step,
        to_micros(later(entry.at, retention)),
    ))
}

fn history_rows(connection: &Connection, sql: &str, params: impl rusqlite::Params) -> PortResult<Vec<HistoryEntry>> {
    let mut statement = connection.prepare_cached(sql)?;
    let rows = statement.query_map(params, |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?, row.get::<_, String>(3)?))
    })?;
    let mut entries = Vec::new();
    for row in rows {
        let (contact, event_id, at, step) = row?;
        entries.push(HistoryEntry {
            contact,
            event_id: EventId::from_sender(&event_id)
                .ok_or_else(|| corrupt(format!("stored event id {event_id:?} is invalid")))?,
            at: from_micros(at)?,
            step: serde_json::from_str(&step).map_err(corrupt)?,
        });
    }
    Ok(entries)
}

#[async_trait]
impl HistoryLog for SqliteHistoryLog {
    async fn append(&self, entry: &HistoryEntry, retention: Duration) -> PortResult<()> {
        let row = history_row(entry, retention)?;
        self.db
            .run(move |connection| {
                connection
                    .prepare_cached(HISTORY_INSERT_SQL)?
                    .execute(params![row.0, row.1, row.2, row.3, row.4, row.5])?;
                Ok(())
            })
            .await
    }

    async fn for_contact(&self, contact: &str, now: DateTime<Utc>) -> PortResult<Vec<HistoryEntry>> {
        let contact = contact.to_owned();
        let now = to_micros(now);
        self.db.run(move |connection| history_rows(connection, HISTORY_FOR_CONTACT_SQL, params![contact, now])).await
    }

    async fn problems_since(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> PortResult<Vec<HistoryEntry>> {
        let (since, now) = (to_micros(since), to_micros(now));
        self.db.run(move |connection| history_rows(connection, HISTORY_PROBLEMS_SQL, params![since, now])).await
    }

    async fn forget_contact(&self, contact: &str) -> PortResult<usize> {
        let contact = contact.to_owned();
        self.db
            .run(move |connection| Ok(connection.execute("DELETE FROM history WHERE contact = ?1", [contact])?))
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Per-webinar settings

/// Per-webinar settings and seen webinars in the `webinar_settings` and `webinars_seen` tables.
#[derive(Clone)]
pub struct SqliteWebinarSettings {
    db: SqliteDb,
}

impl SqliteWebinarSettings {
    pub fn new(db: SqliteDb) -> Self {
        Self { db }
    }
}

#[async_trait]
impl crate::ports::WebinarSettings for SqliteWebinarSettings {
    async fn all(&self) -> PortResult<crate::domain::WebinarSettingsSet> {
        self.db
            .run(move |connection| {
                let mut statement = connection.prepare_cached("SELECT setting FROM webinar_settings ORDER BY key")?;
                let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
                let mut entries = Vec::new();
                for row in rows {
                    entries.push(serde_json::from_str::<crate::domain::WebinarSetting>(&row?).map_err(corrupt)?);
                }
                Ok(crate::domain::WebinarSettingsSet::new(entries))
            })
            .await
    }

    async fn put(&self, setting: &crate::domain::WebinarSetting) -> PortResult<()> {
        let (key, json) = (setting.key(), serde_json::to_string(setting).map_err(corrupt)?);
        self.db
            .run(move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO webinar_settings (key, setting) VALUES (?1, ?2)
                         ON CONFLICT (key) DO UPDATE SET setting = excluded.setting",
                    )?
                    .execute(params![key, json])?;
                Ok(())
            })
            .await
    }

    async fn remove(&self, source: &str, webinar: &str) -> PortResult<bool> {
        let key = crate::domain::setting_key(source, webinar);
        self.db
            .run(move |connection| Ok(connection.execute("DELETE FROM webinar_settings WHERE key = ?1", [key])? > 0))
            .await
    }

    async fn is_seen(&self, key: &str) -> PortResult<bool> {
        let key = key.to_owned();
        self.db
            .run(move |connection| {
                Ok(connection
                    .prepare_cached("SELECT 1 FROM webinars_seen WHERE key = ?1")?
                    .query_row([key], |_| Ok(()))
                    .optional()?
                    .is_some())
            })
            .await
    }

    async fn mark_seen(&self, key: &str, at: DateTime<Utc>) -> PortResult<()> {
        let (key, at) = (key.to_owned(), to_micros(at));
        self.db
            .run(move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO webinars_seen (key, seen_at) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                    )?
                    .execute(params![key, at])?;
                Ok(())
            })
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Dead letters, enumeration and erasure (DESIGN 12: redrive, resync --all, forget)

#[async_trait]
impl DeadLetters for SqliteQueue {
    async fn list(&self, limit: usize) -> PortResult<Vec<DeadLetter>> {
        Ok(self.dead_letters().await?.into_iter().take(limit).collect())
    }

    /// Each message goes back under its original id, so it sits at its original place in its
    /// group (a receive walks a group by id), visible now and with a fresh receive count.
    async fn redrive(&self, selection: &RedriveSelection) -> PortResult<Redriven> {
        let now = to_micros(self.clock.now());
        let selection = selection.clone();
        self.db
            .run(move |connection| {
                let transaction = write_transaction(connection)?;
                let letters: Vec<DeadLetter> = {
                    let mut statement = transaction.prepare_cached(
                        "SELECT message_id, group_id, body, receive_count, reason FROM dead_letters
                         ORDER BY dead_at, message_id",
                    )?;
                    let rows = statement.query_map([], |row| {
                        Ok(DeadLetter {
                            message_id: row.get::<_, i64>(0)?.to_string(),
                            group_id: row.get(1)?,
                            body: row.get(2)?,
                            receive_count: row.get(3)?,
                            reason: row.get(4)?,
                        })
                    })?;
                    rows.collect::<Result<_, _>>()?
                };
                let mut moved = Vec::new();
                for letter in letters.into_iter().filter(|letter| selection.selects(letter)) {
                    let id: i64 = letter.message_id.parse().map_err(corrupt)?;
                    transaction
                        .prepare_cached(
                            "INSERT INTO queue_messages (id, group_id, dedup_id, body, receive_count, visible_at, receipt)
                             SELECT message_id, group_id, dedup_id, body, 0, ?2, NULL FROM dead_letters
                             WHERE message_id = ?1",
                        )?
                        .execute(params![id, now])?;
                    transaction.prepare_cached("DELETE FROM dead_letters WHERE message_id = ?1")?.execute([id])?;
                    moved.push(letter);
                }
                transaction.commit()?;
                Ok(Redriven { method: RedriveMethod::InPlace, moved, note: None })
            })
            .await
    }

    async fn erase_group(&self, group_id: &str) -> PortResult<usize> {
        let group_id = group_id.to_owned();
        self.db
            .run(move |connection| {
                let transaction = write_transaction(connection)?;
                let queued = transaction.execute("DELETE FROM queue_messages WHERE group_id = ?1", [&group_id])?;
                let dead = transaction.execute("DELETE FROM dead_letters WHERE group_id = ?1", [&group_id])?;
                transaction.commit()?;
                Ok(queued + dead)
            })
            .await
    }
}

#[async_trait]
impl ContactAdmin for SqliteContactStore {
    async fn emails(&self) -> PortResult<Vec<Email>> {
        self.db
            .run(|connection| {
                let mut statement = connection.prepare_cached("SELECT email FROM contacts ORDER BY email")?;
                let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
                let mut emails = Vec::new();
                for email in rows {
                    emails.push(Email::parse(&email?).map_err(corrupt)?);
                }
                Ok(emails)
            })
            .await
    }

    async fn erase(&self, email: &Email) -> PortResult<bool> {
        let email = email.as_str().to_owned();
        self.db
            .run(move |connection| Ok(connection.execute("DELETE FROM contacts WHERE email = ?1", [email])? > 0))
            .await
    }
}

/// Event records and the queue's deduplication ids (the event id is the dedup id).
#[async_trait]
impl EventErasure for SqliteEventLog {
    async fn erase_events(&self, event_ids: &[EventId]) -> PortResult<usize> {
        let ids: Vec<String> = event_ids.iter().map(|id| id.as_str().to_owned()).collect();
        self.db
            .run(move |connection| {
                let transaction = write_transaction(connection)?;
                let mut erased = 0;
                for id in &ids {
                    erased += transaction.prepare_cached("DELETE FROM event_log WHERE event_id = ?1")?.execute([id])?;
                    erased +=
                        transaction.prepare_cached("DELETE FROM queue_dedup WHERE dedup_id = ?1")?.execute([id])?;
                }
                transaction.commit()?;
                Ok(erased)
            })
            .await
    }
}

#[async_trait]
impl EventErasure for SqliteReceiptLog {
    async fn erase_events(&self, event_ids: &[EventId]) -> PortResult<usize> {
        let ids: Vec<String> = event_ids.iter().map(|id| id.as_str().to_owned()).collect();
        self.db
            .run(move |connection| {
                let transaction = write_transaction(connection)?;
                let mut erased = 0;
                for id in &ids {
                    erased +=
                        transaction.prepare_cached("DELETE FROM ingest_receipts WHERE event_id = ?1")?.execute([id])?;
                }
                transaction.commit()?;
                Ok(erased)
            })
            .await
    }
}

/// How often [`SqliteDb::scrub`] retries a WAL truncation another connection keeps busy.
const SCRUB_ATTEMPTS: u32 = 20;

impl SqliteDb {
    /// After an erasure: rebuilds the file (`VACUUM`, so no free page keeps old bytes, whatever
    /// build wrote them) and moves the WAL into it and truncates it to zero bytes, so deleted
    /// rows are gone from the bytes on disk too. Every connection runs with `secure_delete`, so
    /// deleted content is zeroed when it is freed. Returns false when another connection kept
    /// the WAL busy through every attempt (its frames are then overwritten by later commits).
    pub async fn scrub(&self) -> PortResult<bool> {
        let file_backed = self.path.is_some();
        self.run(move |connection| {
            connection.execute_batch("VACUUM")?;
            if !file_backed {
                return Ok(true);
            }
            for attempt in 0..SCRUB_ATTEMPTS {
                // (busy, WAL frames, frames checkpointed)
                let busy: i64 = connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
                if busy == 0 {
                    return Ok(true);
                }
                std::thread::sleep(Duration::from_millis(50 * u64::from(attempt + 1)));
            }
            Ok(false)
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Parked webhooks

/// Parked webhook bodies (`parked_webhooks`); the cap is checked and the body written in one
/// write transaction, so concurrent deliveries cannot overshoot it. `SqliteDb::purge` drops
/// expired ones.
#[derive(Clone)]
pub struct SqliteParkedWebhooks {
    db: SqliteDb,
}

impl SqliteParkedWebhooks {
    pub fn new(db: SqliteDb) -> Self {
        Self { db }
    }
}

const PARKED_COLUMNS: &str = "id, source, path, query, content_type, body, received_at, reason, updated_at, expires_at";

fn parked_row(row: &Row<'_>) -> rusqlite::Result<(ParkedWebhook, [i64; 3])> {
    Ok((
        ParkedWebhook {
            id: row.get(0)?,
            source: row.get(1)?,
            path: row.get(2)?,
            query: row.get(3)?,
            content_type: row.get(4)?,
            body: row.get(5)?,
            received_at: DateTime::<Utc>::MIN_UTC,
            reason: row.get(7)?,
            updated_at: DateTime::<Utc>::MIN_UTC,
            expires_at: DateTime::<Utc>::MIN_UTC,
        },
        [row.get(6)?, row.get(8)?, row.get(9)?],
    ))
}

fn parked_with_times(
    (mut parked, [received_at, updated_at, expires_at]): (ParkedWebhook, [i64; 3]),
) -> PortResult<ParkedWebhook> {
    parked.received_at = from_micros(received_at)?;
    parked.updated_at = from_micros(updated_at)?;
    parked.expires_at = from_micros(expires_at)?;
    Ok(parked)
}

#[async_trait]
impl ParkedWebhooks for SqliteParkedWebhooks {
    async fn park(&self, webhook: &ParkedWebhook, cap: ParkCap, now: DateTime<Utc>) -> PortResult<ParkOutcome> {
        let webhook = webhook.clone();
        self.db
            .run(move |connection| {
                let transaction = write_transaction(connection)?;
                let (count, bytes): (i64, i64) = transaction
                    .prepare_cached(
                        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM parked_webhooks WHERE expires_at > ?1 AND id <> ?2",
                    )?
                    .query_row(params![to_micros(now), webhook.id], |row| Ok((row.get(0)?, row.get(1)?)))?;
                let count = usize::try_from(count).map_err(corrupt)?;
                let bytes = usize::try_from(bytes).map_err(corrupt)?;
                if count + 1 > cap.max_count || bytes + webhook.size() > cap.max_bytes {
                    return Ok(ParkOutcome::Full { count, bytes });
                }
                transaction
                    .prepare_cached(&format!(
                        "INSERT OR REPLACE INTO parked_webhooks ({PARKED_COLUMNS}, size) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                    ))?
                    .execute(params![
                        webhook.id,
                        webhook.source,
                        webhook.path,
                        webhook.query,
                        webhook.content_type,
                        webhook.body,
                        to_micros(webhook.received_at),
                        webhook.reason,
                        to_micros(webhook.updated_at),
                        to_micros(webhook.expires_at),
                        i64::try_from(webhook.size()).map_err(corrupt)?,
                    ])?;
                transaction.commit()?;
                Ok(ParkOutcome::Parked)
            })
            .await
    }

    async fn list(&self, now: DateTime<Utc>) -> PortResult<Vec<ParkedWebhook>> {
        self.db
            .run(move |connection| {
                let rows: Vec<_> = connection
                    .prepare_cached(&format!(
                        "SELECT {PARKED_COLUMNS} FROM parked_webhooks WHERE expires_at > ?1 ORDER BY id"
                    ))?
                    .query_map([to_micros(now)], parked_row)?
                    .collect::<Result<_, _>>()?;
                rows.into_iter().map(parked_with_times).collect()
            })
            .await
    }

    async fn get(&self, id: &str, now: DateTime<Utc>) -> PortResult<Option<ParkedWebhook>> {
        let id = id.to_owned();
        self.db
            .run(move |connection| {
                connection
                    .prepare_cached(&format!(
                        "SELECT {PARKED_COLUMNS} FROM parked_webhooks WHERE id = ?1 AND expires_at > ?2"
                    ))?
                    .query_row(params![id, to_micros(now)], parked_row)
                    .optional()?
                    .map(parked_with_times)
                    .transpose()
            })
            .await
    }

    async fn set_reason(&self, id: &str, reason: &str, at: DateTime<Utc>) -> PortResult<bool> {
        let (id, reason) = (id.to_owned(), reason.to_owned());
        self.db
            .run(move |connection| {
                Ok(connection
                    .prepare_cached("UPDATE parked_webhooks SET reason = ?2, updated_at = ?3 WHERE id = ?1")?
                    .execute(params![id, reason, to_micros(at)])?
                    > 0)
            })
            .await
    }

    async fn remove(&self, id: &str) -> PortResult<bool> {
        let id = id.to_owned();
        self.db
            .run(move |connection| {
                Ok(connection.prepare_cached("DELETE FROM parked_webhooks WHERE id = ?1")?.execute([id])? > 0)
            })
            .await
    }
}
