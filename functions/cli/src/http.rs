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

pub fn router(ingest: Ingest) -> Router {
    Router::new().fallback(handle).with_state(ingest)
}

async fn handle(State(ingest): State<Ingest>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(BODY_READ_TIMEOUT, read_body(body)).await.unwrap_or_else(|_| Err(body_timeout()));
    let body = match read {
        Ok(body) => body,
        Err(refusal) => {
            // Ingest never saw it, so log it here the way ingest logs its own refusals.
            let error = refusal.body.get("error").and_then(|code| code.as_str());
            tracing::info!(method = %parts.method, route = route_label(parts.uri.path()), status = refusal.status, error, "webhook");
            return json_response(&refusal);
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
