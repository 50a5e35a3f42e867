//! What can go wrong talking to KlickTipp, and how each failure is to be handled (DESIGN 6).
//!
//! Classification looks only at the HTTP status and KlickTipp's `error` number, never at message
//! text: KlickTipp answers in the account's language (German or English).

use super::redact::redact_emails;
use std::fmt::Write as _;
use std::time::Duration;

/// How the caller should treat a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Transient: try again later (the client already did, up to `max_attempts`).
    Retryable,
    /// The session was refused. The client logs in again once by itself; the class only shows up
    /// on a raw 401/403 before that has happened.
    Relogin,
    /// Retrying cannot help; record the outcome and show it to the user.
    Permanent,
}

/// KlickTipp's field-level validation detail (`{error: 8, field, name, field_value, reason}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldError {
    /// The field key, e.g. `fieldLeadValue` (`name` in the body).
    pub key: Option<String>,
    /// The field's label, e.g. `Lead Value` (`field` in the body).
    pub label: Option<String>,
    /// The rejected value as KlickTipp echoed it. Contact data: kept out of `Display`.
    pub value: Option<String>,
    /// KlickTipp's explanation, e.g. `must be a numeric value`.
    pub reason: Option<String>,
}

/// A failed KlickTipp call. `Display` names the operation, status, error number, field key and
/// reason, and never a secret, a session id or an e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KlickTippError {
    /// No usable HTTP exchange: connect error, timeout, broken connection. Retryable.
    #[error("KlickTipp {operation}: transport error: {detail}")]
    Transport { operation: &'static str, detail: String },

    /// HTTP 429. Retryable after `retry_after` (1 s when KlickTipp does not say).
    #[error("KlickTipp {operation}: rate limited (HTTP 429){}", retry_after_note(.retry_after))]
    RateLimited { operation: &'static str, retry_after: Option<Duration> },

    /// HTTP 5xx, whatever the body (often an empty body or a proxy's HTML page). Retryable.
    #[error("KlickTipp {operation}: server error (HTTP {status})")]
    Server { operation: &'static str, status: u16 },

    /// KlickTipp refused the request (4xx, or a `{error}` body inside a 2xx). Permanent unless
    /// the error number is 6 (confirmation e-mail not sent) or 12 (internal error).
    #[error("KlickTipp {operation} rejected: {}", rejection_summary(*.status, .error, .code, .field, .messages))]
    Rejected {
        operation: &'static str,
        status: u16,
        error: Option<i64>,
        code: Option<i64>,
        /// Boxed: it is rare and large, and keeps `Result<_, KlickTippError>` small.
        field: Option<Box<FieldError>>,
        messages: Vec<String>,
    },

    /// Credentials refused: login failed, or access still denied right after a fresh login (or
    /// at all, with partner or listbuilding credentials). Permanent.
    #[error(
        "KlickTipp {operation}: authentication failed (HTTP {status}); check the credentials and the account's API access"
    )]
    AuthFailed { operation: &'static str, status: u16 },

    /// A success status with a body that is not what the endpoint returns: typically a proxy's
    /// page or a truncated answer. Treated as retryable because such pages are transient far
    /// more often than not, and every operation that retries on it is idempotent (or, for tag
    /// creation, checks for the tag first); `max_attempts` bounds the cost when it is not.
    #[error("KlickTipp {operation}: unusable response (HTTP {status}): {detail}")]
    InvalidResponse { operation: &'static str, status: u16, detail: String },

    /// Not attempted (or its wait not taken): the invocation deadline is too close. Retryable,
    /// by a later invocation.
    #[error("KlickTipp {operation}: not attempted, the invocation deadline is too close")]
    DeadlineReached { operation: &'static str },

    /// The client lacks what this call needs (e.g. a listbuilding API key). Permanent.
    #[error("KlickTipp client not configured: {what}")]
    NotConfigured { what: &'static str },
}

impl KlickTippError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Transport { .. }
            | Self::RateLimited { .. }
            | Self::Server { .. }
            | Self::InvalidResponse { .. }
            | Self::DeadlineReached { .. } => ErrorClass::Retryable,
            Self::Rejected { status: 401 | 403, .. } => ErrorClass::Relogin,
            Self::Rejected { error: Some(6 | 12), .. } => ErrorClass::Retryable,
            Self::Rejected { .. } | Self::AuthFailed { .. } | Self::NotConfigured { .. } => ErrorClass::Permanent,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }

    /// How long KlickTipp asked us to wait (429 with `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// KlickTipp's `error` number (e.g. 5 invalid e-mail, 8 field validation).
    pub fn error_number(&self) -> Option<i64> {
        match self {
            Self::Rejected { error, .. } => *error,
            _ => None,
        }
    }

    /// The HTTP status, when there was an HTTP answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::RateLimited { .. } => Some(429),
            Self::Server { status, .. }
            | Self::Rejected { status, .. }
            | Self::AuthFailed { status, .. }
            | Self::InvalidResponse { status, .. } => Some(*status),
            Self::Transport { .. } | Self::NotConfigured { .. } | Self::DeadlineReached { .. } => None,
        }
    }

    /// The field KlickTipp complained about (error 8).
    pub fn field_error(&self) -> Option<&FieldError> {
        match self {
            Self::Rejected { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// What KlickTipp gave as the reason, fit for a user and a log line: the field reason, else its
    /// first message, else this error's summary; addresses are redacted.
    pub fn redacted_reason(&self) -> String {
        let raw = match self {
            Self::Rejected { field, messages, .. } => {
                field.as_ref().and_then(|field| field.reason.clone()).or_else(|| messages.first().cloned())
            }
            _ => None,
        };
        let reason = raw.map(|text| redact_emails(&text)).unwrap_or_else(|| self.to_string());
        reason.chars().take(MAX_MESSAGE_CHARS).collect()
    }

    /// The data field KlickTipp named (its key, else its label), addresses redacted.
    pub fn field_name(&self) -> Option<String> {
        self.field_error()
            .and_then(|field| field.key.clone().or_else(|| field.label.clone()))
            .map(|name| redact_emails(&name))
    }

    /// The operation that failed, e.g. `"tag subscriber"`.
    pub fn operation(&self) -> Option<&'static str> {
        match self {
            Self::Transport { operation, .. }
            | Self::RateLimited { operation, .. }
            | Self::Server { operation, .. }
            | Self::Rejected { operation, .. }
            | Self::AuthFailed { operation, .. }
            | Self::InvalidResponse { operation, .. }
            | Self::DeadlineReached { operation } => Some(operation),
            Self::NotConfigured { .. } => None,
        }
    }
}

/// Longest KlickTipp text we copy into an error message.
const MAX_MESSAGE_CHARS: usize = 300;

fn retry_after_note(retry_after: &Option<Duration>) -> String {
    retry_after.map_or_else(String::new, |wait| format!(", retry after {} s", wait.as_secs()))
}

fn rejection_summary(
    status: u16,
    error: &Option<i64>,
    code: &Option<i64>,
    field: &Option<Box<FieldError>>,
    messages: &[String],
) -> String {
    let mut summary = format!("HTTP {status}");
    if let Some(error) = error {
        let _ = write!(summary, ", error {error}");
    }
    if let Some(code) = code {
        let _ = write!(summary, ", code {code}");
    }
    if let Some(field) = field {
        summary.push_str(", field ");
        summary.push_str(field.key.as_deref().unwrap_or("?"));
        if let Some(label) = &field.label {
            let _ = write!(summary, " ({})", redact_emails(label));
        }
        if let Some(reason) = &field.reason {
            let _ = write!(summary, ": {}", redact_emails(reason));
        }
    }
    if !messages.is_empty() {
        let joined = redact_emails(&messages.join("; "));
        let shortened: String = joined.chars().take(MAX_MESSAGE_CHARS).collect();
        let _ = write!(summary, ": {shortened}");
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::super::operations::UPSERT_SUBSCRIBER;
    use super::*;

    fn rejected(status: u16, error: Option<i64>) -> KlickTippError {
        KlickTippError::Rejected { operation: "op", status, error, code: None, field: None, messages: vec![] }
    }

    #[test]
    fn reasons_for_users_never_carry_an_address() {
        let error = KlickTippError::Rejected {
            operation: UPSERT_SUBSCRIBER,
            status: 406,
            error: Some(5),
            code: None,
            field: None,
            messages: vec!["Die E-Mail-Adresse erika@example.com ist ungültig.".into()],
        };
        assert_eq!(error.redacted_reason(), "Die E-Mail-Adresse <email> ist ungültig.");
        assert_eq!(error.field_name(), None);
    }

    #[test]
    fn classification_table() {
        use ErrorClass::*;
        let cases = [
            (KlickTippError::Transport { operation: "op", detail: "timed out".into() }, Retryable),
            (KlickTippError::RateLimited { operation: "op", retry_after: None }, Retryable),
            (KlickTippError::Server { operation: "op", status: 500 }, Retryable),
            (KlickTippError::Server { operation: "op", status: 503 }, Retryable),
            (KlickTippError::InvalidResponse { operation: "op", status: 200, detail: "html".into() }, Retryable),
            (rejected(406, Some(6)), Retryable),
            (rejected(406, Some(12)), Retryable),
            (rejected(200, Some(12)), Retryable),
            (rejected(401, None), Relogin),
            (rejected(403, None), Relogin),
            (rejected(400, None), Permanent),
            (rejected(404, None), Permanent),
            (rejected(405, None), Permanent),
            (rejected(406, Some(5)), Permanent),
            (rejected(406, Some(7)), Permanent),
            (rejected(406, Some(8)), Permanent),
            (rejected(406, Some(403)), Permanent),
            (rejected(406, None), Permanent),
            (rejected(200, Some(7)), Permanent),
            (KlickTippError::AuthFailed { operation: "op", status: 403 }, Permanent),
            (KlickTippError::NotConfigured { what: "KLICKTIPP_LISTBUILDING_APIKEY" }, Permanent),
        ];
        for (error, class) in cases {
            assert_eq!(error.class(), class, "{error}");
            assert_eq!(error.is_retryable(), class == Retryable, "{error}");
        }
    }

    #[test]
    fn accessors() {
        let limited = KlickTippError::RateLimited { operation: "op", retry_after: Some(Duration::from_secs(2)) };
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(limited.status(), Some(429));
        assert_eq!(rejected(406, Some(5)).error_number(), Some(5));
        assert_eq!(rejected(406, Some(5)).status(), Some(406));
        assert_eq!(KlickTippError::Transport { operation: "op", detail: String::new() }.status(), None);
    }

    #[test]
    fn display_names_the_field_but_not_the_value_or_emails() {
        let error = KlickTippError::Rejected {
            operation: "upsert subscriber",
            status: 406,
            error: Some(8),
            code: None,
            field: Some(Box::new(FieldError {
                key: Some("field42".into()),
                label: Some("Webinar date".into()),
                value: Some("secret-ish value".into()),
                reason: Some("must be a unix timestamp".into()),
            })),
            messages: vec!["Die Adresse erika@example.com ist ungültig".into()],
        };
        let text = error.to_string();
        for expected in ["upsert subscriber", "406", "error 8", "field42", "Webinar date", "must be a unix timestamp"] {
            assert!(text.contains(expected), "{text} lacks {expected}");
        }
        assert!(!text.contains("secret-ish value"), "{text}");
        assert!(!text.contains("erika@example.com"), "{text}");
    }
}
