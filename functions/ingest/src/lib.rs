//! The ingest Lambda's handler: a `lambda_http` request (HTTP API payload v2, function URL, REST
//! API or ALB) becomes the engine's framework-free [`RawRequest`]; the engine's answer becomes a
//! JSON response. Everything else (routing, auth, the 256 KiB cap, validation) is the engine's.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::http::header::{CONTENT_TYPE, HeaderValue};
use lambda_http::{Body, Request, RequestExt, Response};
use std::sync::Arc;
use webinar_bridge::adapters::aws_secrets::{SdkConfig, StartupError};
use webinar_bridge::adapters::dynamodb::{DynamoParkedWebhooks, DynamoReceiptLog, DynamoZoomLedger};
use webinar_bridge::adapters::dynamodb_history::DynamoHistoryLog;
use webinar_bridge::adapters::sqs::SqsQueue;
use webinar_bridge::config::BridgeConfig;
use webinar_bridge::ingest::{Ingest, IngestResponse};
use webinar_bridge::sources::{RawRequest, Rejection, route_label};

/// The ingest function: built once per cold start, then called per request.
#[derive(Clone)]
pub struct IngestFunction {
    ingest: Ingest,
}

impl IngestFunction {
    pub fn new(ingest: Ingest) -> Self {
        Self { ingest }
    }

    /// Production wiring: the SQS FIFO queue from `EVENTS_QUEUE_URL`, ingest receipts and parked
    /// webhooks in the events table (`EVENTS_TABLE`, items `receipt#<event id>` and
    /// `parked#<id>`), contact histories in `HISTORY_TABLE`, the source secrets and the field
    /// aliases.
    pub fn from_config(sdk: &SdkConfig, config: &BridgeConfig) -> Result<Self, StartupError> {
        Ok(Self::new(aws_ingest(sdk, config)?))
    }

    /// Never fails: every outcome, refusals included, is a JSON answer.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let raw = raw_request(&request, Utc::now());
        if let Some(rejection) = Rejection::for_content_encoding(raw.header("content-encoding")) {
            // API Gateway passes a compressed body through as it is; refuse it before any parsing.
            tracing::info!(method = %raw.method, route = route_label(&raw.path), status = rejection.status(), error = rejection.code, "webhook");
            return json_response(&IngestResponse::from_rejection(&rejection));
        }
        json_response(&self.ingest.handle(&raw).await)
    }
}

/// Ingest on the AWS resources the configuration names; `webinar-bridge reprocess` uses the same.
pub fn aws_ingest(sdk: &SdkConfig, config: &BridgeConfig) -> Result<Ingest, StartupError> {
    let queue_url = BridgeConfig::require(&config.events_queue_url, "EVENTS_QUEUE_URL")?;
    let events_table = BridgeConfig::require(&config.events_table, "EVENTS_TABLE")?;
    let queue = Arc::new(SqsQueue::from_conf(sdk, queue_url));
    let receipts = Arc::new(DynamoReceiptLog::from_conf(sdk, events_table));
    let parked = Arc::new(DynamoParkedWebhooks::from_conf(sdk, events_table));
    let mut ingest = Ingest::new(queue, config.secrets.clone())
        .with_receipts(receipts, config.retention)
        .with_field_aliases(config.field_aliases.clone())
        .with_parked(parked, config.parked_cap)
        // Zoom's ended occurrences, registrant ids and unmatched participants: `zoom#...` items.
        .with_zoom_ledger(Arc::new(DynamoZoomLedger::from_conf(sdk, events_table)));
    // Each accepted event's `received` step (DESIGN 12), in the history table.
    match &config.history_table {
        Some(table) => ingest = ingest.with_history(Arc::new(DynamoHistoryLog::from_conf(sdk, table))),
        None => tracing::warn!("HISTORY_TABLE is not set: contact stories are not recorded"),
    }
    Ok(ingest)
}

/// The engine's view of a Lambda HTTP request. The body arrives already base64-decoded.
pub fn raw_request(request: &Request, received_at: DateTime<Utc>) -> RawRequest {
    // API Gateway's raw path keeps percent-encoding; requests built in code have none.
    let path = match request.raw_http_path() {
        "" => request.uri().path(),
        raw => raw,
    };
    RawRequest {
        method: request.method().as_str().to_owned(),
        path: route_path(path).to_owned(),
        query: request.uri().query().filter(|query| !query.is_empty()).map(str::to_owned),
        headers: request
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body: Bytes::copy_from_slice(request.body().as_ref()),
        received_at,
    }
}

fn is_route(path: &str) -> bool {
    ["/hooks", "/health"]
        .iter()
        .any(|root| path.strip_prefix(root).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

/// The path the engine routes on: an API Gateway stage prefix (`/prod/hooks/zoom`) removed.
pub fn route_path(path: &str) -> &str {
    if is_route(path) {
        return path;
    }
    match path.strip_prefix('/').and_then(|rest| rest.find('/').map(|slash| &rest[slash..])) {
        Some(rest) if is_route(rest) => rest,
        _ => path,
    }
}

/// The engine's status and JSON body as a Lambda response.
pub fn json_response(answer: &IngestResponse) -> Response<Body> {
    let mut response = Response::new(Body::from(answer.body_bytes()));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_prefix_is_removed_and_routes_are_kept() {
        assert_eq!(route_path("/hooks/zoom"), "/hooks/zoom");
        assert_eq!(route_path("/prod/hooks/zoom"), "/hooks/zoom");
        assert_eq!(route_path("/prod/health"), "/health");
        assert_eq!(route_path("/health"), "/health");
        assert_eq!(route_path("/hooksfoo"), "/hooksfoo");
        assert_eq!(route_path("/prod/unknown"), "/prod/unknown");
        assert_eq!(route_path("/"), "/");
    }

    #[test]
    fn an_unknown_status_becomes_a_500_not_a_panic() {
        let response = json_response(&IngestResponse { status: 1000, body: serde_json::json!({"error": "x"}) });
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }
}
