//! Sign-in, sessions, CSRF tokens and the sign-in rate limit of the web console.

use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq as _;

/// The session cookie's name.
pub const COOKIE: &str = "wb_console";
/// A session lasts this long after sign-in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Wrong tokens allowed per window; the next sign-in in the window gets 429.
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Sessions kept at most (the oldest is dropped beyond it).
const MAX_SESSIONS: usize = 256;
/// A token shorter than this is refused at start.
pub const MIN_TOKEN_CHARS: usize = 16;

/// What a sign-in attempt earned.
#[derive(Debug, PartialEq, Eq)]
pub enum SignIn {
    /// A new session: (session id, CSRF token).
    Accepted(Session),
    Wrong,
    /// Too many wrong tokens lately; try again after this long.
    Limited(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub csrf: String,
    expires: Instant,
}

pub struct Guard {
    token_digest: [u8; 32],
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<VecDeque<Instant>>,
}

impl Guard {
    pub fn new(token: &str) -> Self {
        Self {
            token_digest: Sha256::digest(token.as_bytes()).into(),
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(VecDeque::new()),
        }
    }

    pub fn sign_in(&self, offered: &str, now: Instant) -> SignIn {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        while failures.front().is_some_and(|at| now.duration_since(*at) >= FAILURE_WINDOW) {
            failures.pop_front();
        }
        if failures.len() >= MAX_FAILURES {
            let oldest = failures.front().copied().unwrap_or(now);
            return SignIn::Limited(FAILURE_WINDOW.saturating_sub(now.duration_since(oldest)));
        }
        let offered: [u8; 32] = Sha256::digest(offered.as_bytes()).into();
        if !bool::from(offered.ct_eq(&self.token_digest)) {
            failures.push_back(now);
            return SignIn::Wrong;
        }
        drop(failures);
        let session = Session { id: random_token(), csrf: random_token(), expires: now + SESSION_LIFETIME };
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, kept| kept.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions.values().min_by_key(|kept| kept.expires).map(|kept| kept.id.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(session.id.clone(), session.clone());
        SignIn::Accepted(session)
    }

    /// The live session behind a cookie value.
    pub fn session(&self, id: &str, now: Instant) -> Option<Session> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.get(id).filter(|session| session.expires > now).cloned()
    }

    pub fn sign_out(&self, id: &str) {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }
}

impl Session {
    /// Whether a form's CSRF token is this session's (constant time).
    pub fn csrf_matches(&self, offered: Option<&str>) -> bool {
        offered.is_some_and(|offered| bool::from(offered.as_bytes().ct_eq(self.csrf.as_bytes())))
    }
}

/// 32 random bytes, hex.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// The session id in a `Cookie` header, if any.
pub fn session_cookie(header: Option<&str>) -> Option<&str> {
    header?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

pub fn set_cookie(session: &Session) -> String {
    format!("{COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}", session.id, SESSION_LIFETIME.as_secs())
}

pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_tokens_are_limited_per_window_and_the_right_one_opens_a_session() {
        let guard = Guard::new("a-long-enough-console-token");
        let start = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(guard.sign_in("nope", start), SignIn::Wrong);
        }
        assert!(matches!(guard.sign_in("a-long-enough-console-token", start), SignIn::Limited(_)));
        let later = start + FAILURE_WINDOW;
        let SignIn::Accepted(session) = guard.sign_in("a-long-enough-console-token", later) else {
            panic!("the window has passed")
        };
        assert_eq!(guard.session(&session.id, later), Some(session.clone()));
        assert!(session.csrf_matches(Some(&session.csrf)));
        assert!(!session.csrf_matches(Some("x")) && !session.csrf_matches(None));
        assert_eq!(guard.session(&session.id, later + SESSION_LIFETIME), None);
        guard.sign_out(&session.id);
        assert_eq!(guard.session(&session.id, later), None);
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(session_cookie(Some("a=1; wb_console=abc; b=2")), Some("abc"));
        assert_eq!(session_cookie(Some("a=1")), None);
        assert_eq!(session_cookie(None), None);
        assert!(
            set_cookie(&Session { id: "x".into(), csrf: "y".into(), expires: Instant::now() })
                .contains("HttpOnly; SameSite=Strict")
        );
    }
}
