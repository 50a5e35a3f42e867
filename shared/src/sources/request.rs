//! A framework-agnostic HTTP request and the typed rejection every source answers with.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Bodies above this are refused before any parsing (DESIGN 7: 413).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// One incoming webhook as the HTTP layer saw it, whatever that layer is (Lambda, axum, a test).
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: String,
    /// The path without the query string, e.g. `/hooks/zoom`.
    pub path: String,
    /// The raw query string without `?`, if any.
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub received_at: DateTime<Utc>,
}

impl RawRequest {
    /// First header of that name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// First query parameter of that name, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .ok()?
            .into_iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// Query parameter `name`, strictly decoded: a 400 naming the parameter when its value is not
    /// UTF-8 or it is repeated with different values (see `decode::query_param`).
    pub fn strict_query_param(&self, name: &str) -> Result<Option<String>, Rejection> {
        let Some(query) = self.query.as_deref() else {
            return Ok(None);
        };
        super::decode::query_param(query.as_bytes(), name)
    }

    /// The media type of the body, lower-cased, without parameters such as `charset`.
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type")
            .map(|value| value.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .filter(|value| !value.is_empty())
    }
}

/// Why a request was refused; decides the HTTP status (DESIGN 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    MalformedBody,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    /// The body did not arrive in time (answered by the HTTP layer, never by a source).
    RequestTimeout,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable,
}

impl RejectionKind {
    pub fn status(self) -> u16 {
        match self {
            RejectionKind::MalformedBody => 400,
            RejectionKind::Unauthorized => 401,
            RejectionKind::NotFound => 404,
            RejectionKind::MethodNotAllowed => 405,
            RejectionKind::RequestTimeout => 408,
            RejectionKind::PayloadTooLarge => 413,
            RejectionKind::UnsupportedMediaType => 415,
            RejectionKind::Unprocessable => 422,
        }
    }
}

/// A refused request: nothing is enqueued, the sender gets `status` and [`Rejection::body`].
///
/// `message` is a sentence a person can act on. It never contains a secret and never echoes
/// request content beyond a field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub kind: RejectionKind,
    /// Machine-readable code, e.g. `invalid_signature`, `invalid_email`, `unknown_kind`.
    pub code: &'static str,
    pub message: String,
    /// The body field at fault, when there is one.
    pub field: Option<String>,
    /// An authenticated request whose content could not become an event, from a platform that
    /// never resends (WebinarJam, EverWebinar): ingest keeps it to be reprocessed (202 parked).
    pub parkable: bool,
}

#[derive(Debug, Serialize)]
pub struct RejectionBody<'a> {
    pub error: &'a str,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
}

impl Rejection {
    pub fn new(kind: RejectionKind, code: &'static str, message: impl Into<String>) -> Self {
        Self { kind, code, message: message.into(), field: None, parkable: false }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(RejectionKind::MalformedBody, "malformed_body", message)
    }

    /// DESIGN 7: 413 for a body over [`MAX_BODY_BYTES`], decided before any parsing.
    pub fn payload_too_large() -> Self {
        Self::new(
            RejectionKind::PayloadTooLarge,
            "payload_too_large",
            format!(
                "The body is larger than {} KiB; send one webinar event (or a small batch) per request.",
                MAX_BODY_BYTES / 1024
            ),
        )
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(RejectionKind::Unauthorized, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>, field: impl Into<String>) -> Self {
        Self::new(RejectionKind::Unprocessable, code, message).with_field(field)
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// Marks a refusal of the body's content (400, 422) as parkable; others are left as they are.
    pub fn parkable(mut self) -> Self {
        self.parkable = matches!(self.kind, RejectionKind::MalformedBody | RejectionKind::Unprocessable);
        self
    }

    /// The JSON error body of DESIGN 7: `{"error","message","field"?}`.
    pub fn body(&self) -> RejectionBody<'_> {
        RejectionBody { error: self.code, message: &self.message, field: self.field.as_deref() }
    }
}

impl Rejection {
    /// 415 for a compressed body (`Content-Encoding` other than `identity`): sources read the
    /// bytes as sent, and a gzip body would otherwise be refused as "not valid JSON". Both HTTP
    /// edges ask this before reading the body; `None` means the body is uncompressed.
    pub fn for_content_encoding(content_encoding: Option<&str>) -> Option<Self> {
        let encoding = content_encoding?.trim();
        if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
            return None;
        }
        Some(
            Self::new(
                RejectionKind::UnsupportedMediaType,
                "unsupported_content_encoding",
                "The body is compressed (Content-Encoding); send the body uncompressed, without a Content-Encoding header.",
            )
            .with_field("content-encoding"),
        )
    }
}
