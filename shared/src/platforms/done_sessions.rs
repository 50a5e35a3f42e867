//! Which reconciliation rounds are done, remembered in the `serve` database (its own table, its
//! own connection, so it stays out of the adapters' schema).

use super::reconcile::{Round, SessionKey};
use crate::ports::{PortError, PortResult};
use rusqlite::{Connection, params};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

pub struct DoneSessions {
    connection: Mutex<Connection>,
}

fn unavailable(error: rusqlite::Error) -> PortError {
    PortError::Unavailable(error.to_string())
}

impl DoneSessions {
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
                "CREATE TABLE IF NOT EXISTS reconciled_sessions (
                     source TEXT NOT NULL, webinar_id TEXT NOT NULL, session_id TEXT NOT NULL,
                     round TEXT NOT NULL, done_at TEXT NOT NULL,
                     PRIMARY KEY (source, webinar_id, session_id, round))",
            )
            .map_err(unavailable)?;
        Ok(Self { connection: Mutex::new(connection) })
    }

    pub fn all(&self) -> PortResult<BTreeSet<(SessionKey, Round)>> {
        let connection = self.connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut statement = connection
            .prepare("SELECT source, webinar_id, session_id, round FROM reconciled_sessions")
            .map_err(unavailable)?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    SessionKey { source: row.get(0)?, webinar_id: row.get(1)?, session_id: row.get(2)? },
                    row.get::<_, String>(3)?,
                ))
            })
            .map_err(unavailable)?;
        let mut done = BTreeSet::new();
        for row in rows {
            let (key, round) = row.map_err(unavailable)?;
            let round = match round.as_str() {
                "first" => Round::First,
                "replay" => Round::Replay,
                other => return Err(PortError::Corrupt(format!("unknown reconciliation round {other:?}"))),
            };
            done.insert((key, round));
        }
        Ok(done)
    }

    pub fn mark_done(&self, key: &SessionKey, round: Round, at: chrono::DateTime<chrono::Utc>) -> PortResult<()> {
        let connection = self.connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        connection
            .execute(
                "INSERT OR REPLACE INTO reconciled_sessions (source, webinar_id, session_id, round, done_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![key.source, key.webinar_id, key.session_id, round.as_str(), at.to_rfc3339()],
            )
            .map_err(unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_rounds_are_remembered_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge.db");
        let key = SessionKey { source: "everwebinar".into(), webinar_id: "77".into(), session_id: "9".into() };
        {
            let store = DoneSessions::open(&path).unwrap();
            assert!(store.all().unwrap().is_empty());
            store.mark_done(&key, Round::First, chrono::Utc::now()).unwrap();
            store.mark_done(&key, Round::First, chrono::Utc::now()).unwrap();
        }
        let store = DoneSessions::open(&path).unwrap();
        assert_eq!(store.all().unwrap(), BTreeSet::from([(key, Round::First)]));
    }
}
