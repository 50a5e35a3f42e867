//! What the client needs to know: where KlickTipp is, how to authenticate, how hard to try.

use crate::Secret;
use std::time::Duration;

pub const DEFAULT_BASE_URL: &str = "https://api.klicktipp.com";
pub const DEFAULT_RATE_PER_SECOND: f64 = 10.0;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(200);

/// How Management API calls authenticate (reference section 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KlickTippAuth {
    /// Username + password; the client logs in lazily and keeps the session cookie.
    Session { username: String, password: Secret },
    /// Developer key (hex) + customer key; every request is signed, no session.
    Partner { username: String, developer_key: Secret, customer_key: Secret },
    /// Listbuilding-only deployments: Management API calls fail with `NotConfigured`.
    None,
}

#[derive(Debug, Clone)]
pub struct KlickTippConfig {
    pub base_url: String,
    pub auth: KlickTippAuth,
    /// Key for `POST /subscriber/signin`.
    pub listbuilding_apikey: Option<Secret>,
    /// Token-bucket rate of this process (`BRIDGE_KLICKTIPP_RPS / instances`); <= 0 = unlimited.
    pub rate_per_second: f64,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Limit for one HTTP exchange, body included.
    pub request_timeout: Duration,
    /// First backoff step; doubles per retry.
    pub backoff_base: Duration,
}

impl KlickTippConfig {
    pub fn new(base_url: impl Into<String>, auth: KlickTippAuth) -> Self {
        Self {
            base_url: base_url.into(),
            auth,
            listbuilding_apikey: None,
            rate_per_second: DEFAULT_RATE_PER_SECOND,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            backoff_base: DEFAULT_BACKOFF_BASE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secrets() {
        let mut config = KlickTippConfig::new(
            DEFAULT_BASE_URL,
            KlickTippAuth::Session { username: "bridge".into(), password: Secret::new("hunter2") },
        );
        config.listbuilding_apikey = Some(Secret::new("lb-key-123"));
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("lb-key-123"), "{debug}");
        assert_eq!((config.max_attempts, config.rate_per_second), (4, 10.0));
    }
}
