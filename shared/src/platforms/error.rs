//! What can go wrong pulling from a webinar platform's API, and how each failure is handled.
//!
//! As for KlickTipp (DESIGN 6): transport errors, timeouts, 5xx, 429 and unusable answers are
//! retryable; a refused key, a missing webinar or any other refusal is permanent and says what a
//! person can do about it. Classification looks at status codes (and Zoom's error code), never
//! at message text.

use std::time::Duration;

/// The platform an error came from, as people name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    WebinarJam,
    EverWebinar,
    Zoom,
}

impl Platform {
    pub fn name(self) -> &'static str {
        match self {
            Platform::WebinarJam => "WebinarJam",
            Platform::EverWebinar => "EverWebinar",
            Platform::Zoom => "Zoom",
        }
    }

    /// The variables that configure the platform's API access.
    pub fn variables(self) -> &'static str {
        match self {
            Platform::WebinarJam => "BRIDGE_WEBINARJAM_API_KEY",
            Platform::EverWebinar => "BRIDGE_EVERWEBINAR_API_KEY",
            Platform::Zoom => "ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET",
        }
    }

    /// What to do when the credential is refused, for messages.
    pub fn credential_hint(self) -> &'static str {
        match self {
            Platform::WebinarJam => {
                "the API key may have been regenerated (the old one stops working at once): copy the current key from WebinarJam > Webinars > Advanced > API custom integration into BRIDGE_WEBINARJAM_API_KEY"
            }
            Platform::EverWebinar => {
                "the API key may have been regenerated (the old one stops working at once): copy the current key from EverWebinar > Webinars > Advanced > API custom integration into BRIDGE_EVERWEBINAR_API_KEY"
            }
            Platform::Zoom => {
                "the app may be deactivated or its secret regenerated: check ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET against the Server-to-Server OAuth app in the Zoom Marketplace"
            }
        }
    }
}

/// A failed platform API call. `Display` is a sentence a person can act on; it never contains
/// a key, a token or an e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// No usable HTTP exchange: connect error, timeout, broken connection. Retryable.
    #[error("{} {operation}: the API could not be reached ({detail}); it is retried later", .platform.name())]
    Transport { platform: Platform, operation: &'static str, detail: String },

    /// HTTP 429 even after waiting and retrying. Retryable.
    #[error("{} {operation}: still rate limited (HTTP 429) after retrying; another integration may share this account's budget", .platform.name())]
    RateLimited { platform: Platform, operation: &'static str, retry_after: Option<Duration> },

    /// HTTP 5xx. Retryable.
    #[error("{} {operation}: the platform had a server error (HTTP {status}); it is retried later", .platform.name())]
    Server { platform: Platform, operation: &'static str, status: u16 },

    /// The key or the app credentials were refused. Permanent until someone fixes them.
    #[error("{} {operation}: the API refused the credentials (HTTP {status}); {}", .platform.name(), .platform.credential_hint())]
    Unauthorized { platform: Platform, operation: &'static str, status: u16 },

    /// The Zoom app lacks a scope (code 4700). Permanent.
    #[error(
        "Zoom {operation}: the app lacks a scope this call needs (code 4700); add report:read:admin and webinar:read:admin to the Server-to-Server OAuth app"
    )]
    MissingScope { operation: &'static str },

    /// The webinar (or session) does not exist or has expired (404, Zoom code 3001). Permanent.
    #[error("{} {operation}: webinar {webinar} was not found or its data has expired (HTTP {status}); check the webinar id with `webinar-bridge webinars`", .platform.name())]
    NotFound { platform: Platform, operation: &'static str, webinar: String, status: u16 },

    /// Any other refusal (4xx, or a 2xx whose `status` is not `success`). Permanent.
    #[error("{} {operation} was refused (HTTP {status}): {message}", .platform.name())]
    Rejected { platform: Platform, operation: &'static str, status: u16, message: String },

    /// A success status with a body that is not what the endpoint returns. Retryable.
    #[error("{} {operation}: unusable answer (HTTP {status}): {detail}", .platform.name())]
    InvalidResponse { platform: Platform, operation: &'static str, status: u16, detail: String },

    /// The bridge has no credentials for this platform. Permanent.
    #[error("{} is not configured: set {} to pull from its API", .platform.name(), .platform.variables())]
    NotConfigured { platform: Platform },
}

impl PlatformError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Transport { .. } | Self::RateLimited { .. } | Self::Server { .. } | Self::InvalidResponse { .. }
        )
    }

    /// The HTTP status, when there was an HTTP answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::RateLimited { .. } => Some(429),
            Self::Server { status, .. }
            | Self::Unauthorized { status, .. }
            | Self::NotFound { status, .. }
            | Self::Rejected { status, .. }
            | Self::InvalidResponse { status, .. } => Some(*status),
            Self::MissingScope { .. } => Some(403),
            Self::Transport { .. } | Self::NotConfigured { .. } => None,
        }
    }
}

/// A transport error in words, without the URL (which may carry a query with a token).
pub(crate) fn transport_detail(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else if error.is_body() || error.is_decode() {
        "the answer broke off".to_owned()
    } else {
        "request failed".to_owned()
    }
}

/// Keeps a platform's message short and free of e-mail addresses before it is shown.
pub(crate) fn short_message(raw: &str) -> String {
    let words: Vec<String> = raw
        .split_whitespace()
        .map(|word| if word.contains('@') { "<email>".to_owned() } else { word.to_owned() })
        .collect();
    let text = words.join(" ");
    if text.chars().count() > 200 { format!("{}…", text.chars().take(200).collect::<String>()) } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_klicktipp_rules() {
        let transport =
            PlatformError::Transport { platform: Platform::Zoom, operation: "x", detail: "timed out".into() };
        assert!(transport.is_retryable());
        let server = PlatformError::Server { platform: Platform::WebinarJam, operation: "x", status: 503 };
        assert!(server.is_retryable());
        let key =
            PlatformError::Unauthorized { platform: Platform::EverWebinar, operation: "registrants", status: 401 };
        assert!(!key.is_retryable());
        assert!(key.to_string().contains("regenerated"), "{key}");
        assert!(key.to_string().contains("BRIDGE_EVERWEBINAR_API_KEY"), "{key}");
    }

    #[test]
    fn messages_never_show_addresses() {
        assert_eq!(short_message("no such lead erika@example.com here"), "no such lead <email> here");
        assert!(short_message(&"x ".repeat(300)).chars().count() <= 201);
    }
}
