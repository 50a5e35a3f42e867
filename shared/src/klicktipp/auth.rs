//! Credentials: partner request signing and the shared login session.

use super::error::KlickTippError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use reqwest::header::{COOKIE, HeaderName, HeaderValue};
use sha2::Sha256;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Mutex;

/// The `X-Ci` header of partner authentication:
/// `base64(HMAC-SHA256(key = hex_decode(developer_key), msg = customer_key) ‖ customer_key)`.
pub fn partner_signature(developer_key_hex: &str, customer_key: &str) -> Result<String, KlickTippError> {
    let not_hex = KlickTippError::NotConfigured { what: "KLICKTIPP_DEVELOPER_KEY must be a non-empty hex string" };
    let key = hex::decode(developer_key_hex.trim()).map_err(|_| not_hex.clone())?;
    if key.is_empty() {
        return Err(not_hex);
    }
    if customer_key.is_empty() {
        return Err(KlickTippError::NotConfigured { what: "KLICKTIPP_CUSTOMER_KEY must not be empty" });
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| not_hex)?;
    mac.update(customer_key.as_bytes());
    let mut signed = mac.finalize().into_bytes().to_vec();
    signed.extend_from_slice(customer_key.as_bytes());
    Ok(BASE64.encode(signed))
}

/// Headers added to a request; values holding secrets are marked sensitive.
pub(crate) type AuthHeaders = Vec<(HeaderName, HeaderValue)>;

/// `X-Un` and `X-Ci`, computed once: the signature does not change between requests.
pub(crate) fn partner_headers(
    username: &str,
    developer_key_hex: &str,
    customer_key: &str,
) -> Result<AuthHeaders, KlickTippError> {
    let username = HeaderValue::from_str(username)
        .map_err(|_| KlickTippError::NotConfigured { what: "KLICKTIPP_USERNAME must be printable ASCII" })?;
    let mut signature = HeaderValue::from_str(&partner_signature(developer_key_hex, customer_key)?)
        .map_err(|_| KlickTippError::NotConfigured { what: "KLICKTIPP_CUSTOMER_KEY must be printable ASCII" })?;
    signature.set_sensitive(true);
    Ok(vec![(HeaderName::from_static("x-un"), username), (HeaderName::from_static("x-ci"), signature)])
}

/// A logged-in session. `generation` counts logins, so a caller whose request was refused can
/// tell whether someone else has already logged in again since.
#[derive(Debug)]
pub(crate) struct Session {
    pub generation: u64,
    headers: AuthHeaders,
    /// Requests sent with this session, counted before sending.
    uses: AtomicU64,
}

impl Session {
    /// The headers for one more request; counts the use.
    pub(crate) fn headers_for_request(&self) -> &AuthHeaders {
        self.uses.fetch_add(1, Ordering::SeqCst);
        &self.headers
    }

    /// The headers without counting a use (closing the session).
    pub(crate) fn headers(&self) -> &AuthHeaders {
        &self.headers
    }

    /// Whether a refusal of this session proves the credentials are refused: only when no other
    /// request used it. Otherwise those requests may have used it up (KlickTipp's session
    /// lifetime is undocumented) and the refusal says nothing about the credentials. Uses are
    /// counted before sending, so every request the server saw before refusing is counted.
    pub(crate) fn refusal_is_conclusive(&self) -> bool {
        self.uses.load(Ordering::SeqCst) <= 1
    }
}

/// The `Cookie: <session_name>=<sessid>` header of a session.
pub(crate) fn session_cookie(session_name: &str, sessid: &str) -> Option<AuthHeaders> {
    let mut cookie = HeaderValue::from_str(&format!("{session_name}={sessid}")).ok()?;
    cookie.set_sensitive(true);
    Some(vec![(COOKIE, cookie)])
}

#[derive(Debug, Default)]
struct SessionSlot {
    generation: u64,
    current: Option<Arc<Session>>,
}

/// The one session shared by all calls of a client. Logins happen under the lock, so callers
/// that find the session expired at the same time cause a single login and then share it.
#[derive(Debug, Default)]
pub(crate) struct SessionStore {
    slot: Mutex<SessionSlot>,
}

impl SessionStore {
    /// The current session, logging in first when there is none or when it is still the one
    /// of generation `refused` (the session a caller just saw rejected).
    pub(crate) async fn get_or_login<F, Fut>(
        &self,
        refused: Option<u64>,
        login: F,
    ) -> Result<Arc<Session>, KlickTippError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AuthHeaders, KlickTippError>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(session) = &slot.current
            && Some(session.generation) != refused
        {
            return Ok(Arc::clone(session));
        }
        slot.current = None;
        let headers = login().await?;
        slot.generation += 1;
        let session = Arc::new(Session { generation: slot.generation, headers, uses: AtomicU64::new(0) });
        slot.current = Some(Arc::clone(&session));
        Ok(session)
    }

    /// Forget the session (logout), returning it so it can be closed on the server.
    pub(crate) async fn take(&self) -> Option<Arc<Session>> {
        self.slot.lock().await.current.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn partner_signature_matches_the_published_vector() {
        assert_eq!(
            partner_signature("0123456789abcdef", "customer-key").ok().as_deref(),
            Some("cZkWFoPs3rLacJ4OpaooJMMOcb/fLxbZpeeOzJFCGh1jdXN0b21lci1rZXk=")
        );
    }

    #[test]
    fn partner_signature_rejects_bad_keys() {
        for (developer_key, customer_key) in [("not hex", "c"), ("", "c"), ("0123", "")] {
            let error = partner_signature(developer_key, customer_key).unwrap_err();
            assert!(matches!(error, KlickTippError::NotConfigured { .. }));
        }
    }

    #[test]
    fn partner_headers_hide_the_signature() {
        let headers = partner_headers("user", "0123456789abcdef", "customer-key").expect("valid");
        assert_eq!(headers[0].0.as_str(), "x-un");
        assert!(headers[1].1.is_sensitive());
        assert!(!format!("{headers:?}").contains("cZkWFoPs"));
    }

    fn cookie() -> Result<AuthHeaders, KlickTippError> {
        session_cookie("SSESSabc", "sid").ok_or(KlickTippError::NotConfigured { what: "test" })
    }

    #[tokio::test]
    async fn reuses_the_session_until_it_is_refused() {
        let store = SessionStore::default();
        let logins = AtomicU32::new(0);
        let login = || async {
            logins.fetch_add(1, Ordering::SeqCst);
            cookie()
        };
        let first = store.get_or_login(None, login).await.expect("login");
        let again = store.get_or_login(None, login).await.expect("same session");
        assert_eq!((first.generation, again.generation, logins.load(Ordering::SeqCst)), (1, 1, 1));
        let renewed = store.get_or_login(Some(1), login).await.expect("relogin");
        assert_eq!((renewed.generation, logins.load(Ordering::SeqCst)), (2, 2));
        assert!(store.take().await.is_some());
        assert!(store.take().await.is_none());
    }

    #[tokio::test]
    async fn a_refusal_is_conclusive_only_for_a_session_nobody_else_used() {
        let store = SessionStore::default();
        let session = store.get_or_login(None, || async { cookie() }).await.expect("login");
        session.headers_for_request();
        assert!(session.refusal_is_conclusive());
        session.headers_for_request();
        assert!(!session.refusal_is_conclusive());
    }

    #[tokio::test]
    async fn concurrent_refusals_cause_one_login() {
        let store = Arc::new(SessionStore::default());
        let logins = Arc::new(AtomicU32::new(0));
        let count_login = |logins: Arc<AtomicU32>| async move {
            logins.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            cookie()
        };
        store.get_or_login(None, || count_login(Arc::clone(&logins))).await.expect("first login");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (store, logins) = (Arc::clone(&store), Arc::clone(&logins));
                tokio::spawn(async move {
                    store.get_or_login(Some(1), || count_login(logins)).await.map(|session| session.generation)
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.expect("task").ok(), Some(2));
        }
        assert_eq!(logins.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn session_cookie_is_sensitive() {
        let headers = session_cookie("SSESSabc", "sid").expect("valid");
        assert_eq!(headers[0].1.to_str().ok(), Some("SSESSabc=sid"));
        assert!(headers[0].1.is_sensitive());
        assert!(session_cookie("bad\nname", "sid").is_none());
    }
}
