//! Webhook sources: route a raw request to its platform, authenticate it, and turn it into
//! normalized events or a typed rejection (DESIGN 7).

mod decode;
mod fields;
pub mod generic;
mod request;
pub mod webinarjam;
pub mod zoom;

pub use request::{MAX_BODY_BYTES, RawRequest, Rejection, RejectionBody, RejectionKind};
pub use webinarjam::FieldAliases;

use crate::domain::WebinarEvent;
use crate::secret::Secret;

/// What a valid request amounts to.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceOutcome {
    /// One or more events to enqueue.
    Events(Vec<WebinarEvent>),
    /// Zoom's `endpoint.url_validation` challenge, answered without enqueuing anything.
    UrlValidation { plain_token: String, encrypted_token: String },
    /// An authentic request that carries nothing we act on (e.g. `webinar.started`).
    Ignored { reason: String },
    /// Zoom's `webinar.ended`: ingest records it so reconciliation pulls that occurrence.
    ZoomEnded(crate::platforms::zoom_ledger::EndedOccurrence),
    /// A Zoom participant event without an e-mail but with a registrant id: ingest matches it
    /// through the registration it recorded ([`zoom::participant_with_email`]), or keeps it.
    ZoomUnidentifiedParticipant { registrant_id: String },
}

/// The per-source secrets. A source without a secret is disabled and answers 404.
#[derive(Debug, Clone, Default)]
pub struct SourceSecrets {
    pub webinarjam: Option<Secret>,
    pub everwebinar: Option<Secret>,
    pub zoom: Option<Secret>,
    pub generic: Option<Secret>,
}

/// WebinarJam and EverWebinar share one webhook format; only the product (tag `{tool}`) differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenesisProduct {
    WebinarJam,
    EverWebinar,
}

/// Which handler a path belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Genesis { product: GenesisProduct, kind: String },
    Zoom,
    Generic { tool: String },
}

impl Route {
    /// Matches `/hooks/webinarjam/{kind}`, `/hooks/everwebinar/{kind}`, `/hooks/zoom` and
    /// `/hooks/generic/{tool}` (a trailing slash is tolerated). Segments are percent-decoded.
    pub fn parse(path: &str) -> Option<Route> {
        let trimmed = path.strip_suffix('/').unwrap_or(path);
        let mut segments = trimmed.strip_prefix("/hooks/")?.split('/');
        let platform = segments.next()?;
        let argument = segments.next().map(percent_decode);
        if segments.next().is_some() {
            return None;
        }
        match (platform, argument) {
            ("webinarjam", Some(Some(kind))) => Some(Route::Genesis { product: GenesisProduct::WebinarJam, kind }),
            ("everwebinar", Some(Some(kind))) => Some(Route::Genesis { product: GenesisProduct::EverWebinar, kind }),
            ("zoom", None) => Some(Route::Zoom),
            ("generic", Some(Some(tool))) => Some(Route::Generic { tool }),
            _ => None,
        }
    }

    /// The route as a template (`/hooks/webinarjam/{kind}`): what logs may say about a path,
    /// since a raw path is caller-controlled text (and a mistyped URL may carry a secret).
    pub fn template(&self) -> &'static str {
        match self {
            Route::Genesis { product: GenesisProduct::WebinarJam, .. } => "/hooks/webinarjam/{kind}",
            Route::Genesis { product: GenesisProduct::EverWebinar, .. } => "/hooks/everwebinar/{kind}",
            Route::Zoom => "/hooks/zoom",
            Route::Generic { .. } => "/hooks/generic/{tool}",
        }
    }

    fn platform(&self) -> &'static str {
        match self {
            Route::Genesis { product: GenesisProduct::WebinarJam, .. } => "webinarjam",
            Route::Genesis { product: GenesisProduct::EverWebinar, .. } => "everwebinar",
            Route::Zoom => "zoom",
            Route::Generic { .. } => "generic",
        }
    }

    fn secret_variable(&self) -> &'static str {
        match self {
            Route::Genesis { product: GenesisProduct::WebinarJam, .. } => "BRIDGE_WEBINARJAM_SECRET",
            Route::Genesis { product: GenesisProduct::EverWebinar, .. } => "BRIDGE_EVERWEBINAR_SECRET",
            Route::Zoom => "BRIDGE_ZOOM_SECRET_TOKEN",
            Route::Generic { .. } => "BRIDGE_GENERIC_SECRET",
        }
    }
}

/// A loggable name for any request path: its route template, `/health`, or `unknown`.
pub fn route_label(path: &str) -> &'static str {
    match Route::parse(path) {
        Some(route) => route.template(),
        None if path.trim_end_matches('/') == "/health" => "/health",
        None => "unknown",
    }
}

fn percent_decode(segment: &str) -> Option<String> {
    let decoded: String =
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={segment}")).ok()?.into_iter().next()?.1;
    (!decoded.is_empty()).then_some(decoded)
}

/// Routes, checks method, enablement and size, then hands the request to its source.
pub fn handle(request: &RawRequest, secrets: &SourceSecrets) -> Result<SourceOutcome, Rejection> {
    handle_with(request, secrets, &FieldAliases::default())
}

/// Runs a parked WebinarJam/EverWebinar body again (it was authenticated when it arrived, and
/// its secret was never stored): the same parsing with today's `aliases`.
pub fn handle_parked(request: &RawRequest, aliases: &FieldAliases) -> Result<SourceOutcome, Rejection> {
    match Route::parse(&request.path) {
        Some(Route::Genesis { product, kind }) => {
            webinarjam::parse_authenticated(product, &kind, request, aliases).map_err(Rejection::parkable)
        }
        _ => Err(Rejection::new(
            RejectionKind::NotFound,
            "not_parkable",
            "Only WebinarJam and EverWebinar webhooks are parked and reprocessed.",
        )),
    }
}

/// The platform a path's route belongs to (`webinarjam`, `zoom`, ...), if it is a webhook route.
pub fn route_platform(path: &str) -> Option<&'static str> {
    Route::parse(path).map(|route| route.platform())
}

/// A query string without its `token` parameter (the secret is never stored); `None` when
/// nothing else is left.
pub fn query_without_token(query: Option<&str>) -> Option<String> {
    let kept: Vec<&str> = query?
        .split('&')
        .filter(|pair| {
            // Keys compare decoded (`tok%65n` is `token` too); an undecodable pair is dropped.
            serde_urlencoded::from_str::<Vec<(String, String)>>(pair)
                .is_ok_and(|decoded| !decoded.is_empty() && decoded.iter().all(|(key, _)| key != "token"))
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// [`handle`] with the configured field aliases (`BRIDGE_FIELD_ALIASES`) for WebinarJam and
/// EverWebinar bodies.
pub fn handle_with(
    request: &RawRequest,
    secrets: &SourceSecrets,
    aliases: &FieldAliases,
) -> Result<SourceOutcome, Rejection> {
    let route = Route::parse(&request.path).ok_or_else(|| {
        Rejection::new(
            RejectionKind::NotFound,
            "not_found",
            "No webhook lives at this path. Use /hooks/webinarjam/{kind}, /hooks/everwebinar/{kind}, /hooks/zoom or /hooks/generic/{tool}.",
        )
    })?;
    if !request.method.eq_ignore_ascii_case("POST") {
        return Err(Rejection::new(
            RejectionKind::MethodNotAllowed,
            "method_not_allowed",
            "Webhooks must be sent with POST.",
        ));
    }
    let secret = match &route {
        Route::Genesis { product: GenesisProduct::WebinarJam, .. } => secrets.webinarjam.as_ref(),
        Route::Genesis { product: GenesisProduct::EverWebinar, .. } => secrets.everwebinar.as_ref(),
        Route::Zoom => secrets.zoom.as_ref(),
        Route::Generic { .. } => secrets.generic.as_ref(),
    }
    .ok_or_else(|| {
        Rejection::new(
            RejectionKind::NotFound,
            "source_disabled",
            format!(
                "The {} source is not enabled on this bridge; its operator must set {}.",
                route.platform(),
                route.secret_variable()
            ),
        )
    })?;
    if request.body.len() > MAX_BODY_BYTES {
        return Err(Rejection::payload_too_large());
    }
    // Path segments are percent-decoded with replacement; a replaced byte means invalid UTF-8.
    match &route {
        Route::Genesis { kind, .. } if kind.contains(char::REPLACEMENT_CHARACTER) => {
            return Err(decode::invalid_utf8("URL segment", "kind"));
        }
        Route::Generic { tool } if tool.contains(char::REPLACEMENT_CHARACTER) => {
            return Err(decode::invalid_utf8("URL segment", "tool"));
        }
        _ => {}
    }
    match route {
        Route::Genesis { product, kind } => webinarjam::parse_with(product, &kind, request, secret, aliases),
        Route::Zoom => zoom::parse(request, secret),
        Route::Generic { tool } => generic::parse(&tool, request, secret),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_every_documented_path() {
        assert_eq!(
            Route::parse("/hooks/webinarjam/attended"),
            Some(Route::Genesis { product: GenesisProduct::WebinarJam, kind: "attended".into() })
        );
        assert_eq!(
            Route::parse("/hooks/everwebinar/no_show/"),
            Some(Route::Genesis { product: GenesisProduct::EverWebinar, kind: "no_show".into() })
        );
        assert_eq!(Route::parse("/hooks/zoom"), Some(Route::Zoom));
        assert_eq!(
            query_without_token(Some("token=s3cr3t&label=Clicked%20Offer")).as_deref(),
            Some("label=Clicked%20Offer")
        );
        assert_eq!(query_without_token(Some("tok%65n=s3cr3t")), None);
        assert_eq!(query_without_token(None), None);
        assert_eq!(route_label("/hooks/webinarjam/s3cr3t-typed-here"), "/hooks/webinarjam/{kind}");
        assert_eq!(route_label("/health/"), "/health");
        assert_eq!(route_label("/etc/passwd"), "unknown");
        assert_eq!(Route::parse("/hooks/generic/Webinar%20Geek"), Some(Route::Generic { tool: "Webinar Geek".into() }));
        assert_eq!(Route::parse("/hooks/generic/%FF"), Some(Route::Generic { tool: "\u{FFFD}".into() }));
        for path in ["/", "/hooks", "/hooks/zoom/extra", "/hooks/webinarjam", "/hooks/unknown/x", "/hooks/generic/"] {
            assert_eq!(Route::parse(path), None, "{path}");
        }
    }
}
