//! Automatic reconciliation (DESIGN 11): which sessions are due for a pull. Each session that
//! has ended is pulled once `reconcile_after` past its end (no-show and duration data arrive
//! late), and again 24 hours after its end (replays and purchases). Pure: the caller passes
//! the sessions, the rounds already done and the time.

use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::time::Duration;

/// The second pull, for replays and purchases.
pub const REPLAY_ROUND_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Sessions older than this are left alone (backfill them by hand).
pub const LOOK_BACK: Duration = Duration::from_secs(7 * 24 * 3600);
/// A session whose length is not known is taken to last this long.
pub const DEFAULT_SESSION_LENGTH: Duration = Duration::from_secs(2 * 3600);

/// One session of one webinar on one platform.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionKey {
    /// `webinarjam`, `everwebinar` or `zoom`.
    pub source: String,
    pub webinar_id: String,
    /// Schedule id, or Zoom occurrence uuid.
    pub session_id: String,
}

/// Which pull of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Round {
    /// `reconcile_after` past the end.
    First,
    /// 24 hours past the end.
    Replay,
}

impl Round {
    pub fn as_str(self) -> &'static str {
        match self {
            Round::First => "first",
            Round::Replay => "replay",
        }
    }
}

/// A session and when it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedSession {
    pub key: SessionKey,
    pub ends_at: DateTime<Utc>,
}

/// The session's end from its start and length (or [`DEFAULT_SESSION_LENGTH`]).
pub fn end_of(starts_at: DateTime<Utc>, duration_minutes: Option<u32>) -> DateTime<Utc> {
    let length =
        duration_minutes.map_or(DEFAULT_SESSION_LENGTH, |minutes| Duration::from_secs(u64::from(minutes) * 60));
    starts_at + chrono::Duration::from_std(length).unwrap_or_default()
}

/// The pulls due at `now`, oldest session first. A session past its replay round whose first
/// round was never done gets only the replay round (it covers everything the first would).
pub fn due(
    sessions: &[EndedSession],
    done: &BTreeSet<(SessionKey, Round)>,
    now: DateTime<Utc>,
    reconcile_after: Duration,
) -> Vec<(SessionKey, Round)> {
    let after = |duration: Duration| chrono::Duration::from_std(duration).unwrap_or_default();
    let mut sessions: Vec<&EndedSession> = sessions.iter().collect();
    sessions.sort_by(|a, b| (a.ends_at, &a.key).cmp(&(b.ends_at, &b.key)));
    let mut pulls = Vec::new();
    for session in sessions {
        if session.ends_at + after(LOOK_BACK) < now {
            continue;
        }
        let is_done = |round| done.contains(&(session.key.clone(), round));
        if session.ends_at + after(REPLAY_ROUND_AFTER) <= now {
            if !is_done(Round::Replay) {
                pulls.push((session.key.clone(), Round::Replay));
            }
        } else if session.ends_at + after(reconcile_after) <= now && !is_done(Round::First) {
            pulls.push((session.key.clone(), Round::First));
        }
    }
    pulls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, ends_at: &str) -> EndedSession {
        EndedSession {
            key: SessionKey { source: "webinarjam".into(), webinar_id: "123".into(), session_id: id.into() },
            ends_at: ends_at.parse().unwrap(),
        }
    }

    #[test]
    fn each_session_is_pulled_after_the_delay_and_again_after_a_day() {
        let sessions = [session("45", "2026-02-10T19:00:00Z")];
        let delay = Duration::from_secs(120 * 60);
        let at = |time: &str| time.parse::<DateTime<Utc>>().unwrap();
        let mut done = BTreeSet::new();
        assert!(due(&sessions, &done, at("2026-02-10T20:59:00Z"), delay).is_empty());
        let first = due(&sessions, &done, at("2026-02-10T21:00:00Z"), delay);
        assert_eq!(first, [(sessions[0].key.clone(), Round::First)]);
        done.insert(first[0].clone());
        assert!(due(&sessions, &done, at("2026-02-11T18:59:00Z"), delay).is_empty());
        let replay = due(&sessions, &done, at("2026-02-11T19:00:00Z"), delay);
        assert_eq!(replay, [(sessions[0].key.clone(), Round::Replay)]);
        done.insert(replay[0].clone());
        assert!(due(&sessions, &done, at("2026-02-12T19:00:00Z"), delay).is_empty());
        // Long past: left to a manual backfill.
        assert!(due(&sessions, &BTreeSet::new(), at("2026-03-01T00:00:00Z"), delay).is_empty());
    }

    #[test]
    fn the_end_follows_the_length_or_a_default() {
        let start: DateTime<Utc> = "2026-02-10T19:00:00Z".parse().unwrap();
        assert_eq!(end_of(start, Some(60)).to_rfc3339(), "2026-02-10T20:00:00+00:00");
        assert_eq!(end_of(start, None).to_rfc3339(), "2026-02-10T21:00:00+00:00");
    }
}
