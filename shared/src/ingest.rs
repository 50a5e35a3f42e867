//! Ingest use case: raw request -> route -> source -> validate -> enqueue -> response (DESIGN 7).
//! Framework-agnostic: the Lambda, `serve` and tests all call [`Ingest::handle`].

use crate::domain::WebinarEvent;
use crate::ports::{EventQueue, OutgoingMessage, PortError};
use crate::sources::{self, RawRequest, Rejection, SourceOutcome, SourceSecrets};
use serde_json::json;
use std::sync::Arc;

/// What to send back: a status and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestResponse {
    pub status: u16,
    pub body: serde_json::Value,
}

impl IngestResponse {
    fn new(status: u16, body: serde_json::Value) -> Self {
        Self { status, body }
    }

    /// The JSON error answer of DESIGN 7 for a refused request.
    pub fn from_rejection(rejection: &Rejection) -> Self {
        Self::new(rejection.status(), json!(rejection.body()))
    }

    pub fn body_bytes(&self) -> Vec<u8> {
        self.body.to_string().into_bytes()
    }
}

/// The queue message for an event: its contact's FIFO group and its id as the dedup key.
pub fn to_message(event: &WebinarEvent) -> Result<OutgoingMessage, serde_json::Error> {
    Ok(OutgoingMessage {
        group_id: event.contact.email.group_hash(),
        dedup_id: event.event_id.as_str().to_owned(),
        body: serde_json::to_string(event)?,
    })
}

#[derive(Clone)]
pub struct Ingest {
    queue: Arc<dyn EventQueue>,
    secrets: SourceSecrets,
}

impl Ingest {
    pub fn new(queue: Arc<dyn EventQueue>, secrets: SourceSecrets) -> Self {
        Self { queue, secrets }
    }

    pub async fn handle(&self, request: &RawRequest) -> IngestResponse {
        let response = self.respond(request).await;
        tracing::info!(
            method = %request.method,
            route = sources::route_label(&request.path),
            status = response.status,
            error = response.body.get("error").and_then(|v| v.as_str()),
            "webhook"
        );
        response
    }

    async fn respond(&self, request: &RawRequest) -> IngestResponse {
        if request.path.trim_end_matches('/') == "/health" {
            return if request.method.eq_ignore_ascii_case("GET") || request.method.eq_ignore_ascii_case("HEAD") {
                IngestResponse::new(200, json!({"status": "ok"}))
            } else {
                IngestResponse::new(405, json!({"error": "method_not_allowed", "message": "Use GET for /health."}))
            };
        }
        match sources::handle(request, &self.secrets) {
            Err(rejection) => IngestResponse::from_rejection(&rejection),
            Ok(SourceOutcome::UrlValidation { plain_token, encrypted_token }) => {
                IngestResponse::new(200, json!({"plainToken": plain_token, "encryptedToken": encrypted_token}))
            }
            Ok(SourceOutcome::Ignored { reason }) => {
                IngestResponse::new(200, json!({"status": "ignored", "reason": reason}))
            }
            Ok(SourceOutcome::Events(events)) => self.enqueue(&events).await,
        }
    }

    async fn enqueue(&self, events: &[WebinarEvent]) -> IngestResponse {
        let messages: Result<Vec<_>, _> = events.iter().map(to_message).collect();
        let outcome = match messages {
            Ok(messages) => self.queue.send(&messages).await,
            Err(error) => Err(PortError::Corrupt(error.to_string())),
        };
        if let Err(error) = outcome {
            // 503 so the platform retries; ids are stable, so a retry cannot duplicate anything.
            tracing::error!(%error, events = events.len(), "enqueue failed");
            return IngestResponse::new(
                503,
                json!({"error": "queue_unavailable", "message": "The bridge could not store the event right now; the sender should retry."}),
            );
        }
        for event in events {
            tracing::info!(event_id = %event.event_id, kind = %event.kind, source = %event.source.key(), contact = %event.contact.email.short_hash(), "accepted");
        }
        let ids: Vec<&str> = events.iter().map(|event| event.event_id.as_str()).collect();
        match ids.as_slice() {
            [single] => IngestResponse::new(200, json!({"status": "accepted", "event_id": single})),
            _ => IngestResponse::new(200, json!({"status": "accepted", "event_id": ids.first(), "event_ids": ids})),
        }
    }
}
