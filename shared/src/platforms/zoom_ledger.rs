//! What Zoom's webhooks leave for later (DESIGN 11, issue 15 item 6), behind one small port:
//!
//! - **Ended occurrences** (`webinar.ended`): reconciliation pulls each one
//!   `BRIDGE_RECONCILE_AFTER_MINUTES` after its end and again a day later, even when the API's
//!   webinar list no longer shows it (Zoom lists scheduled webinars only).
//! - **Registrant id -> e-mail**, recorded when a registration is accepted, so a participant event
//!   without an e-mail (`participant_joined/left` of a guest who is not signed in) is matched.
//! - **Unmatched participant events**: a participant without an e-mail whose registrant id is not
//!   known yet is kept (the signed body, as received) until the registration arrives; the
//!   reconcile pull settles it too, as its participants report carries the registrant id.
//!
//! Every record expires with the event retention (`BRIDGE_EVENT_RETENTION_DAYS`). Adapters:
//! memory (here), SQLite (here, `serve`'s file), DynamoDB
//! ([`crate::adapters::dynamodb::DynamoZoomLedger`], `zoom#...` items of the events table).

use crate::domain::Email;
use crate::ports::{PortError, PortResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

/// A participant event body kept while its registrant id is unknown, with a cap per registrant
/// so a flood of rejoins cannot fill the store.
pub const MAX_KEPT_PER_REGISTRANT: usize = 100;

/// A Zoom occurrence whose `webinar.ended` webhook arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndedOccurrence {
    /// The webinar id (the number).
    pub webinar_id: String,
    /// The occurrence's uuid (what the report and absentee endpoints take).
    pub uuid: String,
    /// The occurrence id of a recurring webinar with a fixed time (type 9), as webhooks key it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurrence_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// `end_time` of the webhook (else when it arrived).
    pub ended_at: DateTime<Utc>,
}

impl EndedOccurrence {
    /// The pull of this occurrence.
    pub fn session(&self) -> super::mapping::ZoomSession {
        super::mapping::ZoomSession {
            webinar_id: self.webinar_id.clone(),
            uuid: self.uuid.clone(),
            topic: self.topic.clone(),
            start_time: self.start_time,
            duration_minutes: self.duration_minutes,
            timezone: self.timezone.clone(),
            occurrence_id: self.occurrence_id.clone(),
        }
    }

    /// Its key among the reconciled sessions (the same key the API listing gives it).
    pub fn key(&self) -> super::reconcile::SessionKey {
        super::reconcile::SessionKey {
            source: "zoom".to_owned(),
            webinar_id: self.webinar_id.clone(),
            session_id: self.uuid.clone(),
        }
    }
}

/// A participant event without an e-mail, kept until its registrant id is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptParticipant {
    /// The request body exactly as Zoom signed it.
    pub body: String,
    pub received_at: DateTime<Utc>,
}

/// What is kept for one registrant id: how many participant events and since when (for
/// `problems`; never the bodies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptSummary {
    pub registrant_id: String,
    pub count: usize,
    /// When the oldest kept event arrived.
    pub oldest: DateTime<Utc>,
}

fn sort_summaries(summaries: &mut [KeptSummary]) {
    summaries.sort_by(|a, b| (a.oldest, &a.registrant_id).cmp(&(b.oldest, &b.registrant_id)));
}

#[async_trait]
pub trait ZoomLedger: Send + Sync {
    /// Records an ended occurrence; recording it again replaces it.
    async fn record_ended(&self, ended: &EndedOccurrence, retention: Duration) -> PortResult<()>;
    /// Live ended occurrences that ended at or after `since`, oldest first.
    async fn ended_since(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> PortResult<Vec<EndedOccurrence>>;
    /// Records which e-mail registered under `registrant_id`.
    async fn record_registrant(
        &self,
        registrant_id: &str,
        email: &Email,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> PortResult<()>;
    /// The e-mail of a live registrant id.
    async fn registrant_email(&self, registrant_id: &str, now: DateTime<Utc>) -> PortResult<Option<Email>>;
    /// Keeps a participant event of an unknown registrant id. `false` when the registrant already
    /// has [`MAX_KEPT_PER_REGISTRANT`] kept events (this one is then left to the reconcile pull).
    async fn keep_unmatched(
        &self,
        registrant_id: &str,
        kept: &KeptParticipant,
        retention: Duration,
    ) -> PortResult<bool>;
    /// Takes (removes and returns) the live kept events of `registrant_id`, oldest first.
    async fn take_unmatched(&self, registrant_id: &str, now: DateTime<Utc>) -> PortResult<Vec<KeptParticipant>>;
    /// Per registrant id with live kept events at `now`: their count and the oldest's arrival,
    /// oldest first. Reads a summary, not the bodies.
    async fn kept_summary(&self, now: DateTime<Utc>) -> PortResult<Vec<KeptSummary>>;
    /// Erases every registrant id -> e-mail record of `email`, live or expired (`forget`);
    /// returns how many there were.
    async fn forget_email(&self, email: &Email) -> PortResult<usize>;
}

fn later(now: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX)
}

fn ended_key(ended: &EndedOccurrence) -> (String, String) {
    (ended.webinar_id.clone(), ended.uuid.clone())
}

#[derive(Debug, Default)]
struct MemoryState {
    ended: BTreeMap<(String, String), (EndedOccurrence, DateTime<Utc>)>,
    registrants: HashMap<String, (Email, DateTime<Utc>)>,
    unmatched: HashMap<String, Vec<(KeptParticipant, DateTime<Utc>)>>,
}

/// In memory, for tests, `simulate` and a default.
#[derive(Debug, Default)]
pub struct MemoryZoomLedger {
    state: Mutex<MemoryState>,
}

impl MemoryZoomLedger {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ZoomLedger for MemoryZoomLedger {
    async fn record_ended(&self, ended: &EndedOccurrence, retention: Duration) -> PortResult<()> {
        let expires_at = later(ended.ended_at, retention);
        self.lock().ended.insert(ended_key(ended), (ended.clone(), expires_at));
        Ok(())
    }

    async fn ended_since(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> PortResult<Vec<EndedOccurrence>> {
        let mut found: Vec<EndedOccurrence> = self
            .lock()
            .ended
            .values()
            .filter(|(ended, expires_at)| *expires_at > now && ended.ended_at >= since)
            .map(|(ended, _)| ended.clone())
            .collect();
        found.sort_by_key(|ended| (ended.ended_at, ended_key(ended)));
        Ok(found)
    }

    async fn record_registrant(
        &self,
        registrant_id: &str,
        email: &Email,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> PortResult<()> {
        self.lock().registrants.insert(registrant_id.to_owned(), (email.clone(), later(now, retention)));
        Ok(())
    }

    async fn registrant_email(&self, registrant_id: &str, now: DateTime<Utc>) -> PortResult<Option<Email>> {
        Ok(self
            .lock()
            .registrants
            .get(registrant_id)
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(email, _)| email.clone()))
    }

    async fn keep_unmatched(
        &self,
        registrant_id: &str,
        kept: &KeptParticipant,
        retention: Duration,
    ) -> PortResult<bool> {
        let mut state = self.lock();
        let list = state.unmatched.entry(registrant_id.to_owned()).or_default();
        if list.len() >= MAX_KEPT_PER_REGISTRANT {
            return Ok(false);
        }
        list.push((kept.clone(), later(kept.received_at, retention)));
        Ok(true)
    }

    async fn take_unmatched(&self, registrant_id: &str, now: DateTime<Utc>) -> PortResult<Vec<KeptParticipant>> {
        let taken = self.lock().unmatched.remove(registrant_id).unwrap_or_default();
        Ok(taken.into_iter().filter(|(_, expires_at)| *expires_at > now).map(|(kept, _)| kept).collect())
    }

    async fn kept_summary(&self, now: DateTime<Utc>) -> PortResult<Vec<KeptSummary>> {
        let mut summaries: Vec<KeptSummary> = self
            .lock()
            .unmatched
            .iter()
            .filter_map(|(registrant_id, kept)| {
                let live: Vec<&KeptParticipant> =
                    kept.iter().filter(|(_, expires_at)| *expires_at > now).map(|(kept, _)| kept).collect();
                let oldest = live.iter().map(|kept| kept.received_at).min()?;
                Some(KeptSummary { registrant_id: registrant_id.clone(), count: live.len(), oldest })
            })
            .collect();
        sort_summaries(&mut summaries);
        Ok(summaries)
    }

    async fn forget_email(&self, email: &Email) -> PortResult<usize> {
        let mut state = self.lock();
        let before = state.registrants.len();
        state.registrants.retain(|_, (recorded, _)| recorded != email);
        Ok(before - state.registrants.len())
    }
}

/// A ledger that wakes a waiting reconciler each time an ended occurrence is recorded (`serve`,
/// where ingest and reconciliation share a process).
pub struct WakeOnEnded<L> {
    inner: L,
    ended: std::sync::Arc<tokio::sync::Notify>,
}

impl<L: ZoomLedger> WakeOnEnded<L> {
    pub fn new(inner: L) -> Self {
        Self { inner, ended: std::sync::Arc::default() }
    }

    /// Notified after each recorded `webinar.ended`.
    pub fn notifier(&self) -> std::sync::Arc<tokio::sync::Notify> {
        std::sync::Arc::clone(&self.ended)
    }
}

#[async_trait]
impl<L: ZoomLedger> ZoomLedger for WakeOnEnded<L> {
    async fn record_ended(&self, ended: &EndedOccurrence, retention: Duration) -> PortResult<()> {
        self.inner.record_ended(ended, retention).await?;
        self.ended.notify_one();
        Ok(())
    }

    async fn ended_since(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> PortResult<Vec<EndedOccurrence>> {
        self.inner.ended_since(since, now).await
    }

    async fn record_registrant(
        &self,
        registrant_id: &str,
        email: &Email,
        now: DateTime<Utc>,
        retention: Duration,
    ) -> PortResult<()> {
        self.inner.record_registrant(registrant_id, email, now, retention).await
    }

    async fn registrant_email(&self, registrant_id: &str, now: DateTime<Utc>) -> PortResult<Option<Email>> {
        self.inner.registrant_email(registrant_id, now).await
    }

    async fn keep_unmatched(
        &self,
        registrant_id: &str,
        kept: &KeptParticipant,
        retention: Duration,
    ) -> PortResult<bool> {
        self.inner.keep_unmatched(registrant_id, kept, retention).await
    }

    async fn take_unmatched(&self, registrant_id: &str, now: DateTime<Utc>) -> PortResult<Vec<KeptParticipant>> {
        self.inner.take_unmatched(registrant_id, now).await
    }

    async fn kept_summary(&self, now: DateTime<Utc>) -> PortResult<Vec<KeptSummary>> {
        self.inner.kept_summary(now).await
    }

    async fn forget_email(&self, email: &Email) -> PortResult<usize> {
        self.inner.forget_email(email).await
    }
}

#[cfg(feature = "sqlite")]
pub use sqlite::SqliteZoomLedger;

#[cfg(feature = "sqlite")]
mod sqlite {
    //! In the `serve` database: its own tables and connection (like the done sessions), so it
    //! stays out of the adapters' migrations. Rows expired before a new record's time are purged
    //! when it is written.

    use super::*;
    use rusqlite::{Connection, OptionalExtension, params};
    use std::path::Path;

    pub struct SqliteZoomLedger {
        connection: Mutex<Connection>,
    }

    fn unavailable(error: rusqlite::Error) -> PortError {
        PortError::Unavailable(error.to_string())
    }

    fn micros(at: DateTime<Utc>) -> i64 {
        at.timestamp_micros()
    }

    impl SqliteZoomLedger {
        pub fn open(path: &Path) -> PortResult<Self> {
            Self::init(Connection::open(path).map_err(unavailable)?)
        }

        pub fn open_in_memory() -> PortResult<Self> {
            Self::init(Connection::open_in_memory().map_err(unavailable)?)
        }

        fn init(connection: Connection) -> PortResult<Self> {
            connection.busy_timeout(Duration::from_secs(5)).map_err(unavailable)?;
            connection
                .execute_batch(
                    "CREATE TABLE IF NOT EXISTS zoom_ended (
                         webinar_id TEXT NOT NULL, uuid TEXT NOT NULL, record TEXT NOT NULL,
                         ended_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
                         PRIMARY KEY (webinar_id, uuid));
                     CREATE TABLE IF NOT EXISTS zoom_registrants (
                         registrant_id TEXT PRIMARY KEY, email TEXT NOT NULL, expires_at INTEGER NOT NULL);
                     CREATE TABLE IF NOT EXISTS zoom_unmatched (
                         id INTEGER PRIMARY KEY AUTOINCREMENT, registrant_id TEXT NOT NULL, body TEXT NOT NULL,
                         received_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
                     CREATE INDEX IF NOT EXISTS zoom_unmatched_by_registrant ON zoom_unmatched (registrant_id, id);",
                )
                .map_err(unavailable)?;
            Ok(Self { connection: Mutex::new(connection) })
        }

        fn run<T>(&self, work: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> PortResult<T> {
            let connection = self.connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            work(&connection).map_err(unavailable)
        }

        fn purge(connection: &Connection, now: DateTime<Utc>) -> rusqlite::Result<()> {
            for table in ["zoom_ended", "zoom_registrants", "zoom_unmatched"] {
                connection.execute(&format!("DELETE FROM {table} WHERE expires_at <= ?1"), [micros(now)])?;
            }
            Ok(())
        }
    }

    #[async_trait]
    impl ZoomLedger for SqliteZoomLedger {
        async fn record_ended(&self, ended: &EndedOccurrence, retention: Duration) -> PortResult<()> {
            let record = serde_json::to_string(ended).map_err(|error| PortError::Corrupt(error.to_string()))?;
            self.run(|connection| {
                Self::purge(connection, ended.ended_at)?;
                connection.execute(
                    "INSERT OR REPLACE INTO zoom_ended (webinar_id, uuid, record, ended_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        ended.webinar_id,
                        ended.uuid,
                        record,
                        micros(ended.ended_at),
                        micros(later(ended.ended_at, retention))
                    ],
                )
            })?;
            Ok(())
        }

        async fn ended_since(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> PortResult<Vec<EndedOccurrence>> {
            let records: Vec<String> = self.run(|connection| {
                connection
                    .prepare(
                        "SELECT record FROM zoom_ended WHERE ended_at >= ?1 AND expires_at > ?2
                         ORDER BY ended_at, webinar_id, uuid",
                    )?
                    .query_map(params![micros(since), micros(now)], |row| row.get(0))?
                    .collect()
            })?;
            records
                .iter()
                .map(|record| {
                    serde_json::from_str(record)
                        .map_err(|error| PortError::Corrupt(format!("a stored ended Zoom occurrence: {error}")))
                })
                .collect()
        }

        async fn record_registrant(
            &self,
            registrant_id: &str,
            email: &Email,
            now: DateTime<Utc>,
            retention: Duration,
        ) -> PortResult<()> {
            self.run(|connection| {
                connection.execute(
                    "INSERT OR REPLACE INTO zoom_registrants (registrant_id, email, expires_at) VALUES (?1, ?2, ?3)",
                    params![registrant_id, email.as_str(), micros(later(now, retention))],
                )
            })?;
            Ok(())
        }

        async fn registrant_email(&self, registrant_id: &str, now: DateTime<Utc>) -> PortResult<Option<Email>> {
            let raw: Option<String> = self.run(|connection| {
                connection
                    .query_row(
                        "SELECT email FROM zoom_registrants WHERE registrant_id = ?1 AND expires_at > ?2",
                        params![registrant_id, micros(now)],
                        |row| row.get(0),
                    )
                    .optional()
            })?;
            raw.map(|raw| Email::parse(&raw).map_err(|error| PortError::Corrupt(format!("a stored e-mail: {error}"))))
                .transpose()
        }

        async fn keep_unmatched(
            &self,
            registrant_id: &str,
            kept: &KeptParticipant,
            retention: Duration,
        ) -> PortResult<bool> {
            self.run(|connection| {
                Self::purge(connection, kept.received_at)?;
                let count: i64 = connection.query_row(
                    "SELECT COUNT(*) FROM zoom_unmatched WHERE registrant_id = ?1",
                    [registrant_id],
                    |row| row.get(0),
                )?;
                if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_KEPT_PER_REGISTRANT {
                    return Ok(false);
                }
                connection.execute(
                    "INSERT INTO zoom_unmatched (registrant_id, body, received_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        registrant_id,
                        kept.body,
                        micros(kept.received_at),
                        micros(later(kept.received_at, retention))
                    ],
                )?;
                Ok(true)
            })
        }

        async fn take_unmatched(&self, registrant_id: &str, now: DateTime<Utc>) -> PortResult<Vec<KeptParticipant>> {
            let rows: Vec<(String, i64)> = self.run(|connection| {
                // IMMEDIATE: a deferred read that later deletes cannot wait for serve's writer (SQLITE_BUSY at once).
                let transaction =
                    rusqlite::Transaction::new_unchecked(connection, rusqlite::TransactionBehavior::Immediate)?;
                let rows = transaction
                    .prepare(
                        "SELECT body, received_at FROM zoom_unmatched WHERE registrant_id = ?1 AND expires_at > ?2
                         ORDER BY id",
                    )?
                    .query_map(params![registrant_id, micros(now)], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                transaction.execute("DELETE FROM zoom_unmatched WHERE registrant_id = ?1", [registrant_id])?;
                transaction.commit()?;
                Ok(rows)
            })?;
            rows.into_iter()
                .map(|(body, received_at)| {
                    let received_at = DateTime::from_timestamp_micros(received_at)
                        .ok_or_else(|| PortError::Corrupt("a kept participant's time is out of range".into()))?;
                    Ok(KeptParticipant { body, received_at })
                })
                .collect()
        }

        async fn kept_summary(&self, now: DateTime<Utc>) -> PortResult<Vec<KeptSummary>> {
            // The index by (registrant_id, id) serves the grouping.
            let rows: Vec<(String, i64, i64)> = self.run(|connection| {
                connection
                    .prepare(
                        "SELECT registrant_id, COUNT(*), MIN(received_at) FROM zoom_unmatched WHERE expires_at > ?1
                         GROUP BY registrant_id",
                    )?
                    .query_map([micros(now)], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                    .collect()
            })?;
            let mut summaries = rows
                .into_iter()
                .map(|(registrant_id, count, oldest)| {
                    let oldest = DateTime::from_timestamp_micros(oldest)
                        .ok_or_else(|| PortError::Corrupt("a kept participant's time is out of range".into()))?;
                    Ok(KeptSummary { registrant_id, count: usize::try_from(count).unwrap_or(0), oldest })
                })
                .collect::<PortResult<Vec<_>>>()?;
            sort_summaries(&mut summaries);
            Ok(summaries)
        }

        async fn forget_email(&self, email: &Email) -> PortResult<usize> {
            let erased = self.run(|connection| {
                connection.execute("DELETE FROM zoom_registrants WHERE email = ?1", [email.as_str()])
            })?;
            Ok(erased)
        }
    }
}
