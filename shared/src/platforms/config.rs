//! Pull-side configuration (DESIGN 11), read from the same environment as everything else.

use crate::config::ConfigError;
use crate::secret::Secret;
use std::collections::HashMap;
use std::time::Duration;

pub const DEFAULT_PLATFORM_RPS: u32 = 20;
pub const DEFAULT_RECONCILE_AFTER_MINUTES: u32 = 120;

/// Credentials and limits for pulling from the platforms. A platform without credentials is
/// not pulled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformConfig {
    pub webinarjam_api_key: Option<Secret>,
    pub everwebinar_api_key: Option<Secret>,
    pub zoom: Option<ZoomAppConfig>,
    /// The WebinarJam/EverWebinar API host (`WEBINARJAM_API_BASE_URL`).
    pub genesis_base_url: String,
    /// The Zoom API host (`ZOOM_API_BASE_URL`); the token endpoint follows it.
    pub zoom_base_url: String,
    /// Calls per second per API key (`BRIDGE_PLATFORM_RPS`).
    pub rate_per_second: u32,
    /// How long after a session ends it is first pulled (`BRIDGE_RECONCILE_AFTER_MINUTES`).
    pub reconcile_after: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoomAppConfig {
    pub account_id: String,
    pub client_id: String,
    pub client_secret: Secret,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        Self {
            webinarjam_api_key: None,
            everwebinar_api_key: None,
            zoom: None,
            genesis_base_url: super::genesis::DEFAULT_BASE_URL.to_owned(),
            zoom_base_url: super::zoom::DEFAULT_API_BASE_URL.to_owned(),
            rate_per_second: DEFAULT_PLATFORM_RPS,
            reconcile_after: Duration::from_secs(u64::from(DEFAULT_RECONCILE_AFTER_MINUTES) * 60),
        }
    }
}

impl PlatformConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads the variables; empty values count as unset.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()).map(str::to_owned);
        let problem = |variable: &'static str, problem: &str| ConfigError { variable, problem: problem.to_owned() };
        let url = |variable: &'static str, default: &str| match get(variable) {
            None => Ok(default.to_owned()),
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                Ok(url.trim_end_matches('/').to_owned())
            }
            Some(_) => Err(problem(variable, "must start with https:// (or http:// for a local simulator)")),
        };
        let rate_per_second = match get("BRIDGE_PLATFORM_RPS") {
            None => DEFAULT_PLATFORM_RPS,
            Some(raw) => raw.parse::<u32>().ok().filter(|rate| (1..=1000).contains(rate)).ok_or_else(|| {
                problem(
                    "BRIDGE_PLATFORM_RPS",
                    "must be the platform API calls per second, a whole number from 1 to 1000 (WebinarJam allows 20)",
                )
            })?,
        };
        let reconcile_minutes = match get("BRIDGE_RECONCILE_AFTER_MINUTES") {
            None => DEFAULT_RECONCILE_AFTER_MINUTES,
            Some(raw) => raw.parse::<u32>().ok().filter(|minutes| *minutes <= 10_080).ok_or_else(|| {
                problem("BRIDGE_RECONCILE_AFTER_MINUTES", "must be whole minutes from 0 to 10080 (one week)")
            })?,
        };
        let zoom = match (get("ZOOM_ACCOUNT_ID"), get("ZOOM_CLIENT_ID"), get("ZOOM_CLIENT_SECRET")) {
            (None, None, None) => None,
            (Some(account_id), Some(client_id), Some(secret)) => {
                Some(ZoomAppConfig { account_id, client_id, client_secret: Secret::new(secret) })
            }
            (account, client, _) => {
                let missing = if account.is_none() {
                    "ZOOM_ACCOUNT_ID"
                } else if client.is_none() {
                    "ZOOM_CLIENT_ID"
                } else {
                    "ZOOM_CLIENT_SECRET"
                };
                return Err(problem(
                    missing,
                    "is missing: Zoom pulls need all three of ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET (a Server-to-Server OAuth app)",
                ));
            }
        };
        Ok(Self {
            webinarjam_api_key: get("BRIDGE_WEBINARJAM_API_KEY").map(Secret::new),
            everwebinar_api_key: get("BRIDGE_EVERWEBINAR_API_KEY").map(Secret::new),
            zoom,
            genesis_base_url: url("WEBINARJAM_API_BASE_URL", super::genesis::DEFAULT_BASE_URL)?,
            zoom_base_url: url("ZOOM_API_BASE_URL", super::zoom::DEFAULT_API_BASE_URL)?,
            rate_per_second,
            reconcile_after: Duration::from_secs(u64::from(reconcile_minutes) * 60),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_and_overrides() {
        let config = PlatformConfig::from_vars(&vars(&[])).unwrap();
        assert_eq!(config, PlatformConfig::default());
        let config = PlatformConfig::from_vars(&vars(&[
            ("BRIDGE_EVERWEBINAR_API_KEY", "k"),
            ("WEBINARJAM_API_BASE_URL", "http://127.0.0.1:9/"),
            ("BRIDGE_PLATFORM_RPS", "5"),
            ("BRIDGE_RECONCILE_AFTER_MINUTES", "0"),
        ]))
        .unwrap();
        assert_eq!(config.genesis_base_url, "http://127.0.0.1:9");
        assert_eq!((config.rate_per_second, config.reconcile_after), (5, Duration::ZERO));
        assert!(config.everwebinar_api_key.is_some() && config.webinarjam_api_key.is_none());
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (pairs, variable) in [
            (vec![("BRIDGE_PLATFORM_RPS", "0")], "BRIDGE_PLATFORM_RPS"),
            (vec![("BRIDGE_PLATFORM_RPS", "fast")], "BRIDGE_PLATFORM_RPS"),
            (vec![("BRIDGE_RECONCILE_AFTER_MINUTES", "-1")], "BRIDGE_RECONCILE_AFTER_MINUTES"),
            (vec![("ZOOM_API_BASE_URL", "api.zoom.us")], "ZOOM_API_BASE_URL"),
            (vec![("ZOOM_ACCOUNT_ID", "a"), ("ZOOM_CLIENT_SECRET", "s")], "ZOOM_CLIENT_ID"),
        ] {
            assert_eq!(PlatformConfig::from_vars(&vars(&pairs)).unwrap_err().variable, variable);
        }
    }
}
