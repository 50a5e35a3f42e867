//! The axum <-> engine adapter: every method and path goes to `Ingest::handle`.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use webinar_bridge::ingest::{Ingest, IngestResponse};
use webinar_bridge::sources::{MAX_BODY_BYTES, RawRequest, Rejection, route_label};

/// A client that stops sending mid-body must not hold a connection (and its buffer) for ever.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// More headers than this get a JSON 431 (hyper refuses far larger heads itself, see `serve::edge`).
pub const MAX_HEADERS: usize = 100;
/// Header names and values together, in bytes, above which a JSON 431 answers.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Marks a response sent before the request body was read to its end, so the server reads and
/// discards the rest for a moment before closing (the client would otherwise get a reset
/// instead of the answer).
#[derive(Debug, Clone, Copy)]
pub struct BodyLeftUnread;

pub fn router(ingest: Ingest) -> Router {
    Router::new().fallback(handle).with_state(ingest)
}

async fn handle(State(ingest): State<Ingest>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(refusal) = refuse_before_body(&parts.headers) {
        // Ingest never saw it, so log it here the way ingest logs its own refusals.
        let error = refusal.body.get("error").and_then(|code| code.as_str());
        tracing::info!(method = %parts.method, route = route_label(parts.uri.path()), status = refusal.status, error, "webhook");
        return body_left_unread(json_response(&refusal));
    }
    let read = tokio::time::timeout(BODY_READ_TIMEOUT, read_body(body)).await.unwrap_or_else(|_| Err(body_timeout()));
    let body = match read {
        Ok(body) => body,
        Err(refusal) => {
            // Ingest never saw it, so log it here the way ingest logs its own refusals.
            let error = refusal.body.get("error").and_then(|code| code.as_str());
            tracing::info!(method = %parts.method, route = route_label(parts.uri.path()), status = refusal.status, error, "webhook");
            return body_left_unread(json_response(&refusal));
        }
    };
    let raw = RawRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: header_pairs(&parts.headers),
        body,
        received_at: chrono::Utc::now(),
    };
    json_response(&ingest.handle(&raw).await)
}

/// What the head alone shows is wrong: too many or too large headers (431), a compressed body
/// (415), a `Content-Length` over the cap (413, answered at once instead of after the body).
fn refuse_before_body(headers: &HeaderMap) -> Option<IngestResponse> {
    let header_bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return Some(headers_too_large());
    }
    let encoding = headers.get(header::CONTENT_ENCODING).map(|value| String::from_utf8_lossy(value.as_bytes()));
    if let Some(rejection) = Rejection::for_content_encoding(encoding.as_deref()) {
        return Some(IngestResponse::from_rejection(&rejection));
    }
    // hyper has already refused a Content-Length that is not a number (400).
    let announced =
        headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok());
    if announced.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Some(oversized_body());
    }
    None
}

fn headers_too_large() -> IngestResponse {
    IngestResponse {
        status: 431,
        body: serde_json::json!({
            "error": "request_header_fields_too_large",
            "message": format!(
                "The request has too many or too large headers; send at most {MAX_HEADERS} headers of at most {} KiB together.",
                MAX_HEADER_BYTES / 1024
            ),
        }),
    }
}

/// Reads at most `MAX_BODY_BYTES + 1` bytes, so an oversized body is refused (413) without being
/// buffered or parsed.
async fn read_body(body: Body) -> Result<Bytes, IngestResponse> {
    let mut stream = body.into_data_stream();
    let mut buffer = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| unreadable_body())?;
        if buffer.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(oversized_body());
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

/// DESIGN 7: 413 for a body over 256 KiB, with the usual JSON error body.
pub fn oversized_body() -> IngestResponse {
    IngestResponse::from_rejection(&Rejection::payload_too_large())
}

fn body_timeout() -> IngestResponse {
    let rejection = Rejection::new(
        webinar_bridge::sources::RejectionKind::RequestTimeout,
        "request_timeout",
        "The request body did not arrive within 10 seconds; send it again.",
    );
    IngestResponse::from_rejection(&rejection)
}

fn unreadable_body() -> IngestResponse {
    let rejection =
        Rejection::malformed("The request body could not be read completely; send it again.").with_field("body");
    IngestResponse::from_rejection(&rejection)
}

/// Header values that are not UTF-8 are kept lossily: signatures and tokens are ASCII, so a
/// mangled value fails authentication instead of failing the request.
fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect()
}

/// The rest of the body is still on the wire, so the connection cannot carry another request:
/// `connection: close` tells the client not to reuse it.
fn body_left_unread(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response.extensions_mut().insert(BodyLeftUnread);
    response
}

fn json_response(response: &IngestResponse) -> Response {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))];
    (status, headers, response.body_bytes()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use webinar_bridge::adapters::memory::MemoryQueue;
    use webinar_bridge::sources::SourceSecrets;

    fn head(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    header::HeaderName::from_bytes(name.as_bytes()).expect("a name"),
                    HeaderValue::from_str(value).expect("a value"),
                )
            })
            .collect()
    }

    #[test]
    fn the_head_alone_decides_413_415_and_431() {
        let refused = |pairs: &[(&str, &str)]| {
            refuse_before_body(&head(pairs)).map(|answer| (answer.status, answer.body["error"].clone()))
        };
        assert_eq!(refused(&[("content-length", "10485760")]), Some((413, "payload_too_large".into())));
        assert_eq!(refused(&[("content-length", &MAX_BODY_BYTES.to_string())]), None);
        assert_eq!(refused(&[("content-encoding", "gzip")]), Some((415, "unsupported_content_encoding".into())));
        assert_eq!(refused(&[("content-encoding", "identity")]), None);
        let many: Vec<(String, String)> =
            (0..=MAX_HEADERS).map(|index| (format!("x-{index}"), "v".to_owned())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        assert_eq!(refused(&many), Some((431, "request_header_fields_too_large".into())));
        let large = "v".repeat(MAX_HEADER_BYTES);
        assert_eq!(refused(&[("x-large", &large)]), Some((431, "request_header_fields_too_large".into())));
        assert_eq!(refused(&[("content-type", "application/json"), ("content-length", "2")]), None);
    }

    #[tokio::test]
    async fn an_answer_before_the_body_closes_the_connection() {
        let ingest = Ingest::new(Arc::new(MemoryQueue::default()), SourceSecrets::default());
        let request = Request::builder()
            .method("POST")
            .uri("/hooks/zoom")
            .header("content-length", "10485760")
            .body(Body::empty())
            .expect("a request");
        let response = handle(State(ingest), request).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        assert!(response.extensions().get::<BodyLeftUnread>().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_gets_a_408_json_error() {
        let ingest = Ingest::new(Arc::new(MemoryQueue::default()), SourceSecrets::default());
        let stalled = Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
        let request = Request::builder().method("POST").uri("/hooks/zoom").body(stalled).expect("a request");
        let response = handle(State(ingest), request).await;
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        let body = axum::body::to_bytes(response.into_body(), 4096).await.expect("a body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(json["error"], "request_timeout");
    }
}
