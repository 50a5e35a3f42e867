//! Ingest use case: raw request -> route -> source -> validate -> enqueue -> response (DESIGN 7).
//! Framework-agnostic: the Lambda, `serve` and tests all call [`Ingest::handle`].

use crate::adapters::memory::MemoryReceiptLog;
use crate::domain::{Email, EventKind, Source, WebinarEvent};
use crate::platforms::zoom_ledger::{EndedOccurrence, KeptParticipant, MemoryZoomLedger, ZoomLedger};
use crate::ports::{
    EventQueue, HistoryEntry, HistoryLog, OutgoingMessage, ParkCap, ParkOutcome, ParkedWebhook, ParkedWebhooks,
    PortError, Receipt, ReceiptLog,
};
use crate::sources::{self, FieldAliases, RawRequest, Rejection, SourceOutcome, SourceSecrets};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// How long receipts are kept when the caller does not say (`BRIDGE_EVENT_RETENTION_DAYS`' default).
const DEFAULT_RECEIPT_RETENTION: Duration = Duration::from_secs(30 * 86_400);

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
    receipts: Arc<dyn ReceiptLog>,
    retention: Duration,
    history: Option<Arc<dyn HistoryLog>>,
    zoom: Arc<dyn ZoomLedger>,
    aliases: FieldAliases,
    parked: Option<(Arc<dyn ParkedWebhooks>, ParkCap)>,
}

/// What running a parked body again came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reprocessed {
    /// It became events, which are queued; the parked body is removed.
    Accepted { event_ids: Vec<String> },
    /// Still refused: it stays parked with this reason.
    StillRefused { reason: String },
    /// The bridge could not finish (storage or queue unavailable): it stays parked as it was.
    Failed { message: String },
}

impl Ingest {
    /// Ingest with receipts kept in this process's memory: right for `simulate` and tests.
    /// Anything durable or shared (serve, Lambda) sets its receipt log with [`Ingest::with_receipts`].
    pub fn new(queue: Arc<dyn EventQueue>, secrets: SourceSecrets) -> Self {
        Self {
            queue,
            secrets,
            receipts: Arc::new(MemoryReceiptLog::default()),
            retention: DEFAULT_RECEIPT_RETENTION,
            history: None,
            zoom: Arc::new(MemoryZoomLedger::default()),
            aliases: FieldAliases::default(),
            parked: None,
        }
    }

    /// Where Zoom's ended occurrences, registrant ids and unmatched participant events are kept
    /// (kept as long as the receipts). Defaults to this process's memory, like the receipts.
    pub fn with_zoom_ledger(mut self, ledger: Arc<dyn ZoomLedger>) -> Self {
        self.zoom = ledger;
        self
    }

    /// Body key names added by configuration (`BRIDGE_FIELD_ALIASES`) for WebinarJam/EverWebinar.
    pub fn with_field_aliases(mut self, aliases: FieldAliases) -> Self {
        self.aliases = aliases;
        self
    }

    /// Keeps authenticated WebinarJam/EverWebinar bodies that cannot become an event in `store`
    /// (answered `202 parked`) instead of refusing them, up to `cap`, for the receipts' retention.
    pub fn with_parked(mut self, store: Arc<dyn ParkedWebhooks>, cap: ParkCap) -> Self {
        self.parked = Some((store, cap));
        self
    }

    /// Where event ids and their payload fingerprints are recorded, and for how long.
    pub fn with_receipts(mut self, receipts: Arc<dyn ReceiptLog>, retention: Duration) -> Self {
        self.receipts = receipts;
        self.retention = retention;
        self
    }

    /// Records each accepted event's `received` step in `history` (DESIGN 12), kept as long as
    /// the receipts. A failed write is logged, never fatal: the event is queued either way.
    pub fn with_history(mut self, history: Arc<dyn HistoryLog>) -> Self {
        self.history = Some(history);
        self
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
        match sources::handle_with(request, &self.secrets, &self.aliases) {
            Err(rejection) if rejection.parkable && self.parked.is_some() => self.park(request, &rejection).await,
            Err(rejection) => IngestResponse::from_rejection(&rejection),
            Ok(SourceOutcome::UrlValidation { plain_token, encrypted_token }) => {
                IngestResponse::new(200, json!({"plainToken": plain_token, "encryptedToken": encrypted_token}))
            }
            Ok(SourceOutcome::Ignored { reason }) => {
                IngestResponse::new(200, json!({"status": "ignored", "reason": reason}))
            }
            Ok(SourceOutcome::Events(events)) => self.accept(&events, request.received_at).await,
            Ok(SourceOutcome::ZoomEnded(ended)) => self.record_ended(&ended).await,
            Ok(SourceOutcome::ZoomUnidentifiedParticipant { registrant_id }) => {
                self.match_participant(request, &registrant_id).await
            }
        }
    }

    async fn accept(&self, events: &[WebinarEvent], now: DateTime<Utc>) -> IngestResponse {
        if let Some(refusal) = self.check_receipts(events, now).await {
            return refusal;
        }
        let mut response = self.enqueue(events).await;
        if response.status == 200 {
            let settled = self.settle_zoom_registrations(events, now).await;
            if !settled.is_empty() {
                // The answer names every event this request put on the queue, the participant
                // events it settled included.
                let mut ids: Vec<serde_json::Value> =
                    events.iter().map(|event| json!(event.event_id.as_str())).collect();
                ids.extend(settled.into_iter().map(serde_json::Value::String));
                response.body["event_ids"] = serde_json::Value::Array(ids);
            }
        }
        response
    }

    /// `webinar.ended`: recorded, so reconciliation pulls the occurrence after the delay.
    async fn record_ended(&self, ended: &EndedOccurrence) -> IngestResponse {
        match self.zoom.record_ended(ended, self.retention).await {
            Ok(()) => IngestResponse::new(
                200,
                json!({"status": "recorded", "reason": format!(
                    "webinar {} occurrence {} ended; its attendance and no-shows are pulled from Zoom's reports after BRIDGE_RECONCILE_AFTER_MINUTES.",
                    ended.webinar_id, ended.uuid)}),
            ),
            Err(error) => {
                tracing::error!(%error, "recording the ended Zoom occurrence failed");
                unavailable()
            }
        }
    }

    /// A Zoom participant without an e-mail: matched through the registrant id recorded at
    /// registration, else kept until that registration arrives (answer 202 `kept`). The
    /// reconcile pull settles it either way, from the participants report's registrant id.
    async fn match_participant(&self, request: &RawRequest, registrant_id: &str) -> IngestResponse {
        let now = request.received_at;
        match self.zoom.registrant_email(registrant_id, now).await {
            Ok(Some(email)) => return self.accept_matched(&request.body, now, &email).await,
            Ok(None) => {}
            Err(error) => {
                tracing::error!(%error, "reading the Zoom registrant ledger failed");
                return unavailable();
            }
        }
        let Ok(body) = std::str::from_utf8(&request.body) else {
            return IngestResponse::new(
                200,
                json!({"status": "ignored", "reason": "participant has no e-mail and its body is not UTF-8."}),
            );
        };
        let kept = KeptParticipant { body: body.to_owned(), received_at: now };
        let stored = match self.zoom.keep_unmatched(registrant_id, &kept, self.retention).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::error!(%error, "keeping the unmatched Zoom participant failed");
                return unavailable();
            }
        };
        // A registration accepted meanwhile may have looked before this was kept: look again.
        if let Ok(Some(email)) = self.zoom.registrant_email(registrant_id, now).await {
            let ids = self.settle_kept(registrant_id, &email, now).await;
            return IngestResponse::new(
                200,
                json!({"status": "accepted", "event_id": ids.first(), "event_ids": ids,
                    "reason": "participant matched to its registration by registrant id."}),
            );
        }
        tracing::info!(stored, "zoom participant without e-mail kept until its registration is known");
        let (status, reason) = if stored {
            (
                "kept",
                "participant has no e-mail and its registrant id is not known yet; the event is kept until the registration arrives, and the reconcile pull matches it too.",
            )
        } else {
            (
                "unmatched",
                "participant has no e-mail and its registrant id is not known yet; too many events are kept for it already, so the reconcile pull will settle its attendance.",
            )
        };
        IngestResponse::new(202, json!({"status": status, "reason": reason}))
    }

    async fn accept_matched(&self, body: &[u8], received_at: DateTime<Utc>, email: &Email) -> IngestResponse {
        match sources::zoom::participant_with_email(body, received_at, email) {
            Ok(events) if !events.is_empty() => Box::pin(self.accept(&events, received_at)).await,
            Ok(_) => IngestResponse::new(
                200,
                json!({"status": "ignored", "reason": "participant matched, but the event carries no attendance."}),
            ),
            Err(rejection) => IngestResponse::from_rejection(&rejection),
        }
    }

    /// After a Zoom registration is accepted: remember its registrant id, and hand on the
    /// participant events kept for that id.
    async fn settle_zoom_registrations(&self, events: &[WebinarEvent], now: DateTime<Utc>) -> Vec<String> {
        let mut settled = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for event in events {
            if event.source != Source::Zoom || event.kind != EventKind::Registered {
                continue;
            }
            let Some(registrant_id) = event.facts.registrant_id.as_deref() else {
                continue;
            };
            if !seen.insert(registrant_id) {
                continue;
            }
            if let Err(error) =
                self.zoom.record_registrant(registrant_id, &event.contact.email, now, self.retention).await
            {
                tracing::warn!(%error, "recording the Zoom registrant id failed; its e-mail-less participant events wait for the reconcile pull");
                continue;
            }
            settled.extend(self.settle_kept(registrant_id, &event.contact.email, now).await);
        }
        settled
    }

    /// Hands on the participant events kept for `registrant_id`; the ids of those accepted.
    async fn settle_kept(&self, registrant_id: &str, email: &Email, now: DateTime<Utc>) -> Vec<String> {
        let kept = match self.zoom.take_unmatched(registrant_id, now).await {
            Ok(kept) => kept,
            Err(error) => {
                tracing::warn!(%error, "reading the kept Zoom participant events failed");
                return Vec::new();
            }
        };
        let mut accepted = Vec::new();
        for participant in kept {
            let response =
                Box::pin(self.accept_matched(participant.body.as_bytes(), participant.received_at, email)).await;
            if response.status == 200 && response.body["status"] == "accepted" {
                match response.body.get("event_ids").and_then(serde_json::Value::as_array) {
                    Some(ids) => accepted.extend(ids.iter().filter_map(|id| id.as_str().map(str::to_owned))),
                    None => accepted.extend(response.body["event_id"].as_str().map(str::to_owned)),
                }
            }
            if response.status >= 300 && response.status != 409 {
                // Not accepted now: kept again for the next registration delivery or the pull.
                if let Err(error) = self.zoom.keep_unmatched(registrant_id, &participant, self.retention).await {
                    tracing::warn!(%error, "a kept Zoom participant event could not be kept again; the reconcile pull settles it");
                }
            }
        }
        accepted
    }

    /// Keeps an authenticated body that could not become an event: `202 parked` with the
    /// refusal's sentence, or 503 when the parked store is full or unavailable.
    async fn park(&self, request: &RawRequest, rejection: &Rejection) -> IngestResponse {
        let Some((store, cap)) = &self.parked else {
            return IngestResponse::from_rejection(rejection);
        };
        let now = request.received_at;
        let webhook = ParkedWebhook {
            id: ParkedWebhook::new_id(now),
            source: sources::route_platform(&request.path).unwrap_or("unknown").to_owned(),
            path: request.path.clone(),
            query: sources::query_without_token(request.query.as_deref()),
            content_type: request.header("content-type").map(str::to_owned),
            body: request.body.to_vec(),
            received_at: now,
            reason: rejection.message.clone(),
            updated_at: now,
            expires_at: later(now, self.retention),
        };
        match store.park(&webhook, *cap, now).await {
            Ok(ParkOutcome::Parked) => {
                tracing::warn!(id = %webhook.id, source = %webhook.source, code = rejection.code, field = rejection.field.as_deref(), bytes = webhook.size(), "webhook parked: its body could not become an event; fix the alias or configuration and run `webinar-bridge reprocess`");
                let mut body =
                    json!({"status": "parked", "reason": rejection.message, "id": webhook.id, "code": rejection.code});
                if let Some(field) = &rejection.field {
                    body["field"] = json!(field);
                }
                IngestResponse::new(202, body)
            }
            Ok(ParkOutcome::Full { count, bytes }) => {
                tracing::error!(
                    count,
                    bytes,
                    max_count = cap.max_count,
                    max_bytes = cap.max_bytes,
                    code = rejection.code,
                    "parked webhook store is full; a body that could not become an event was refused with 503"
                );
                IngestResponse::new(
                    503,
                    json!({
                        "error": "parked_store_full",
                        "message": format!("{} The bridge keeps such bodies to reprocess them, but its store is full ({count} bodies, {bytes} bytes); the operator must run `webinar-bridge parked` and `webinar-bridge reprocess`, or raise BRIDGE_PARKED_MAX_COUNT / BRIDGE_PARKED_MAX_BYTES.", rejection.message),
                    }),
                )
            }
            Err(error) => {
                tracing::error!(%error, "parking a webhook failed");
                IngestResponse::new(
                    503,
                    json!({"error": "queue_unavailable", "message": "The bridge could not store the webhook right now; the sender should retry."}),
                )
            }
        }
    }

    /// Runs a parked body through the same parsing, receipts, queue and history again (after an
    /// alias or configuration fix). Accepted: queued and removed from `store`. Refused again: it
    /// stays, with the new reason.
    pub async fn reprocess(
        &self,
        store: &dyn ParkedWebhooks,
        webhook: &ParkedWebhook,
        now: DateTime<Utc>,
    ) -> Reprocessed {
        let request = RawRequest {
            method: "POST".to_owned(),
            path: webhook.path.clone(),
            query: webhook.query.clone(),
            headers: webhook.content_type.iter().map(|value| ("content-type".to_owned(), value.clone())).collect(),
            body: webhook.body.clone().into(),
            received_at: webhook.received_at,
        };
        let refused = |reason: String| async move {
            match store.set_reason(&webhook.id, &reason, now).await {
                Ok(_) => Reprocessed::StillRefused { reason },
                Err(error) => Reprocessed::Failed { message: format!("recording the new reason failed: {error}") },
            }
        };
        let events = match sources::handle_parked(&request, &self.aliases) {
            Err(rejection) => return refused(rejection.message).await,
            Ok(SourceOutcome::Events(events)) => events,
            // Parked bodies are WebinarJam/EverWebinar ones: the Zoom outcomes cannot occur.
            Ok(
                SourceOutcome::Ignored { .. }
                | SourceOutcome::UrlValidation { .. }
                | SourceOutcome::ZoomEnded(_)
                | SourceOutcome::ZoomUnidentifiedParticipant { .. },
            ) => Vec::new(),
        };
        if !events.is_empty() {
            let response = match self.check_receipts(&events, now).await {
                Some(refusal) => refusal,
                None => self.enqueue(&events).await,
            };
            let message = response.body.get("message").and_then(|m| m.as_str()).unwrap_or_default().to_owned();
            match response.status {
                200 => {}
                409 => return refused(message).await,
                _ => return Reprocessed::Failed { message },
            }
        }
        if let Err(error) = store.remove(&webhook.id).await {
            // Queued already; a second reprocess would enqueue the same ids again, which is harmless.
            tracing::warn!(%error, id = %webhook.id, "removing a reprocessed webhook failed");
        }
        tracing::info!(id = %webhook.id, events = events.len(), "parked webhook reprocessed");
        Reprocessed::Accepted { event_ids: events.iter().map(|event| event.event_id.as_str().to_owned()).collect() }
    }

    /// Records every event's id with its payload fingerprint. A reused id with a different
    /// payload refuses the whole request with 409 (the reuse is counted on the stored receipt
    /// and logged), so it is never dropped silently by the queue's deduplication.
    async fn check_receipts(&self, events: &[WebinarEvent], now: DateTime<Utc>) -> Option<IngestResponse> {
        for event in events {
            match self.receipts.record(&event.event_id, &event.fingerprint(), now, self.retention).await {
                Ok(Receipt::New | Receipt::SamePayload) => {}
                Ok(Receipt::DifferentPayload { first_seen }) => {
                    let first_seen = first_seen.to_rfc3339_opts(SecondsFormat::Secs, true);
                    tracing::warn!(event_id = %event.event_id, source = %event.source.key(), kind = %event.kind, contact = %event.contact.email.short_hash(), %first_seen, "event id reused with a different payload; refused with 409 and recorded");
                    return Some(IngestResponse::new(
                        409,
                        json!({
                            "error": "event_id_reused",
                            "message": format!("The event id was first used at {first_seen} for an event with different content; this delivery was refused and recorded. Give every distinct event its own id (webhook-id or event_id), and resend a changed event under a new id."),
                            "event_id": event.event_id.as_str(),
                        }),
                    ));
                }
                Err(error) => {
                    tracing::error!(%error, event_id = %event.event_id, "recording the event receipt failed");
                    return Some(IngestResponse::new(
                        503,
                        json!({"error": "queue_unavailable", "message": "The bridge could not store the event right now; the sender should retry."}),
                    ));
                }
            }
        }
        None
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
            return unavailable();
        }
        for event in events {
            tracing::info!(event_id = %event.event_id, kind = %event.kind, source = %event.source.key(), contact = %event.contact.email.short_hash(), "accepted");
            if let Some(history) = &self.history
                && let Err(error) = history.append(&HistoryEntry::received(event), self.retention).await
            {
                tracing::warn!(%error, event_id = %event.event_id, "recording the event's history failed");
            }
        }
        let ids: Vec<&str> = events.iter().map(|event| event.event_id.as_str()).collect();
        match ids.as_slice() {
            [single] => IngestResponse::new(200, json!({"status": "accepted", "event_id": single})),
            _ => IngestResponse::new(200, json!({"status": "accepted", "event_id": ids.first(), "event_ids": ids})),
        }
    }
}

/// 503: the sender retries (ids are stable, so a retry cannot duplicate anything).
fn unavailable() -> IngestResponse {
    IngestResponse::new(
        503,
        json!({"error": "queue_unavailable", "message": "The bridge could not store the event right now; the sender should retry."}),
    )
}

/// `at + duration`, saturating.
fn later(at: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|delta| at.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
