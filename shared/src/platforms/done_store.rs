//! The port for which reconciliation rounds are done (DESIGN 11): SQLite in `serve`
//! ([`super::done_sessions::DoneSessions`]), DynamoDB on AWS
//! ([`crate::adapters::dynamodb::DynamoDoneSessions`], items `reconciled#...` in the events table),
//! memory in tests.

use super::reconcile::{LOOK_BACK, Round, SessionKey};
use crate::ports::PortResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::sync::Mutex;

#[async_trait]
pub trait DoneSessionStore: Send + Sync {
    /// Which of `rounds` are done (a store that cannot list its keys reads each one).
    async fn done_among(&self, rounds: &[(SessionKey, Round)]) -> PortResult<BTreeSet<(SessionKey, Round)>>;
    /// Remembers a round as done; doing it twice is harmless.
    async fn mark_done(&self, key: &SessionKey, round: Round, at: DateTime<Utc>) -> PortResult<()>;
}

/// Both rounds of each session still inside [`LOOK_BACK`] at `now`: the rounds `due` may ask about.
pub fn candidate_rounds<'a>(
    keys: impl IntoIterator<Item = (&'a SessionKey, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> Vec<(SessionKey, Round)> {
    let look_back = chrono::Duration::from_std(LOOK_BACK).unwrap_or_default();
    keys.into_iter()
        .filter(|(_, ends_at)| *ends_at + look_back >= now)
        .flat_map(|(key, _)| [(key.clone(), Round::First), (key.clone(), Round::Replay)])
        .collect()
}

/// In memory, for tests and the simulators.
#[derive(Debug, Default)]
pub struct MemoryDoneSessions {
    done: Mutex<BTreeSet<(SessionKey, Round)>>,
}

impl MemoryDoneSessions {
    pub fn all(&self) -> BTreeSet<(SessionKey, Round)> {
        self.done.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[async_trait]
impl DoneSessionStore for MemoryDoneSessions {
    async fn done_among(&self, rounds: &[(SessionKey, Round)]) -> PortResult<BTreeSet<(SessionKey, Round)>> {
        let done = self.done.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(rounds.iter().filter(|round| done.contains(round)).cloned().collect())
    }

    async fn mark_done(&self, key: &SessionKey, round: Round, _at: DateTime<Utc>) -> PortResult<()> {
        self.done.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert((key.clone(), round));
        Ok(())
    }
}

#[cfg(feature = "sqlite")]
#[async_trait]
impl DoneSessionStore for super::done_sessions::DoneSessions {
    async fn done_among(&self, rounds: &[(SessionKey, Round)]) -> PortResult<BTreeSet<(SessionKey, Round)>> {
        let all = self.all()?;
        Ok(rounds.iter().filter(|round| all.contains(round)).cloned().collect())
    }

    async fn mark_done(&self, key: &SessionKey, round: Round, at: DateTime<Utc>) -> PortResult<()> {
        super::done_sessions::DoneSessions::mark_done(self, key, round, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_recent_sessions_are_candidates_and_done_rounds_are_found() {
        let now: DateTime<Utc> = "2026-02-20T00:00:00Z".parse().unwrap();
        let key = |id: &str| SessionKey { source: "zoom".into(), webinar_id: "1".into(), session_id: id.into() };
        let (recent, old) = (key("recent"), key("old"));
        let candidates = candidate_rounds(
            [(&recent, now - chrono::Duration::hours(3)), (&old, now - chrono::Duration::days(8))],
            now,
        );
        assert_eq!(candidates, [(recent.clone(), Round::First), (recent.clone(), Round::Replay)]);
        let store = MemoryDoneSessions::default();
        store.mark_done(&recent, Round::First, now).await.unwrap();
        store.mark_done(&recent, Round::First, now).await.unwrap();
        assert_eq!(store.done_among(&candidates).await.unwrap(), BTreeSet::from([(recent, Round::First)]));
    }
}
