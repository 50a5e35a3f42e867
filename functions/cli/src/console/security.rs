//! Sign-in, sessions, CSRF tokens and the sign-in rate limit of the web console.

use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq as _;

/// The session cookie's name.
pub const COOKIE: &str = "wb_console";
/// A session lasts this long after sign-in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Wrong tokens allowed per client address and window; its next sign-in in the window gets 429.
pub const MAX_FAILURES: usize = 5;
/// Wrong tokens from all addresses together per window before every sign-in gets 429: a backstop
/// against guessing from many addresses (the token has at least 16 characters). It also bounds
/// the map of addresses: each remembered address holds at least one of these wrong tokens.
pub const MAX_FAILURES_ALL_CLIENTS: usize = 100;
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
    failures: Mutex<Failures>,
}

/// Recent wrong tokens, per client address and in total.
#[derive(Default)]
struct Failures {
    by_client: HashMap<IpAddr, VecDeque<Instant>>,
    all: VecDeque<Instant>,
}

impl Failures {
    fn expire(&mut self, now: Instant) {
        let expired = |at: &Instant| now.duration_since(*at) >= FAILURE_WINDOW;
        while self.all.front().is_some_and(expired) {
            self.all.pop_front();
        }
        self.by_client.retain(|_, times| {
            while times.front().is_some_and(expired) {
                times.pop_front();
            }
            !times.is_empty()
        });
    }

    /// How long `client` must wait, if it is limited.
    fn limited(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let wait = |times: &VecDeque<Instant>, max: usize| {
            (times.len() >= max).then(|| {
                let oldest = times.front().copied().unwrap_or(now);
                FAILURE_WINDOW.saturating_sub(now.duration_since(oldest))
            })
        };
        let own = self.by_client.get(&client).and_then(|times| wait(times, MAX_FAILURES));
        own.or_else(|| wait(&self.all, MAX_FAILURES_ALL_CLIENTS))
    }

    /// Only called when not limited, so at most [`MAX_FAILURES_ALL_CLIENTS`] live entries exist.
    fn record(&mut self, client: IpAddr, now: Instant) {
        self.by_client.entry(client).or_default().push_back(now);
        self.all.push_back(now);
    }
}

impl Guard {
    pub fn new(token: &str) -> Self {
        Self {
            token_digest: Sha256::digest(token.as_bytes()).into(),
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(Failures::default()),
        }
    }

    /// A sign-in from `client` (the connection's peer address). Wrong tokens are limited per
    /// address, so one client guessing does not lock everyone else out.
    pub fn sign_in(&self, offered: &str, client: IpAddr, now: Instant) -> SignIn {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.expire(now);
        if let Some(wait) = failures.limited(client, now) {
            return SignIn::Limited(wait);
        }
        let offered: [u8; 32] = Sha256::digest(offered.as_bytes()).into();
        if !bool::from(offered.ct_eq(&self.token_digest)) {
            failures.record(client, now);
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

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn client(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn wrong_tokens_are_limited_per_window_and_the_right_one_opens_a_session() {
        let guard = Guard::new("a-long-enough-console-token");
        let start = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(guard.sign_in("nope", HERE, start), SignIn::Wrong);
        }
        assert!(matches!(guard.sign_in("a-long-enough-console-token", HERE, start), SignIn::Limited(_)));
        let later = start + FAILURE_WINDOW;
        let SignIn::Accepted(session) = guard.sign_in("a-long-enough-console-token", HERE, later) else {
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
    fn one_client_guessing_does_not_lock_out_another() {
        let guard = Guard::new("a-long-enough-console-token");
        let now = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(guard.sign_in("nope", client(1), now), SignIn::Wrong);
        }
        assert!(matches!(guard.sign_in("nope", client(1), now), SignIn::Limited(_)));
        assert!(matches!(guard.sign_in("a-long-enough-console-token", client(2), now), SignIn::Accepted(_)));
        assert_eq!(guard.sign_in("nope", client(2), now), SignIn::Wrong);
    }

    #[test]
    fn many_clients_together_are_limited_and_the_map_stays_bounded() {
        let guard = Guard::new("a-long-enough-console-token");
        let now = Instant::now();
        let mut wrong = 0;
        for n in 0..(MAX_FAILURES_ALL_CLIENTS as u32 + 50) {
            match guard.sign_in("nope", client(n), now) {
                SignIn::Wrong => wrong += 1,
                SignIn::Limited(_) => break,
                SignIn::Accepted(_) => panic!("a wrong token opened a session"),
            }
        }
        assert_eq!(wrong, MAX_FAILURES_ALL_CLIENTS, "the backstop across all addresses");
        assert!(guard.failures.lock().expect("not poisoned").by_client.len() <= MAX_FAILURES_ALL_CLIENTS);
        // Past the window every address may try again, and the expired addresses are dropped.
        let later = now + FAILURE_WINDOW;
        assert!(matches!(guard.sign_in("a-long-enough-console-token", client(3), later), SignIn::Accepted(_)));
        assert!(guard.failures.lock().expect("not poisoned").by_client.is_empty());
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
