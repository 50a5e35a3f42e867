//! Issue 12, defects 2-6 and the kind aliases, through the real `webinar-bridge serve` HTTP port
//! against the KlickTipp simulator: event ids scoped per tool, a reused id with another payload
//! refused with 409 and recorded, invalid UTF-8 and conflicting duplicate keys refused naming the
//! field, one contact per IDN mailbox, documented kind aliases. Each part would fail if its
//! defect came back; the final KlickTipp state is asserted exactly.
//!
//! Needs `cargo build --workspace` first (the harness says so if the binary is missing).

use chrono::Utc;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;
use webinar_bridge::adapters::sqlite::{SqliteEventLog, SqliteReceiptLog};
use webinar_bridge::domain::EventId;
use webinar_bridge::ports::{EventLog, ReceiptLog};
use webinar_bridge_tests::harness::{self, BridgeEnv, ServeProcess, WEBINARJAM_SECRET};

const DRAIN_TIMEOUT: Duration = Duration::from_secs(45);

struct Reply {
    status: u16,
    body: Value,
}

struct Bridge {
    serve: ServeProcess,
    http: reqwest::Client,
    db_path: PathBuf,
    _dir: TempDir,
}

impl Bridge {
    async fn start(simulator_url: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_path = dir.path().join("bridge.db");
        let serve = ServeProcess::start(&BridgeEnv::for_simulator(simulator_url, &db_path), &[]).await;
        Self { serve, http: reqwest::Client::new(), db_path, _dir: dir }
    }

    async fn post(&self, path: &str, headers: &[(String, String)], body: impl Into<Vec<u8>>) -> Reply {
        let mut request = self.http.post(self.serve.url(path)).body(body.into()).timeout(Duration::from_secs(10));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.expect("serve answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("a JSON body, got {text:?}"));
        Reply { status, body }
    }

    /// A generic event signed the Standard Webhooks way under `webhook_id`.
    async fn generic(&self, tool: &str, webhook_id: &str, body: &Value) -> Reply {
        let body = body.to_string();
        let headers = harness::standard_webhook_headers(webhook_id, Utc::now().timestamp(), &body);
        self.post(&format!("/hooks/generic/{tool}"), &headers, body).await
    }

    async fn webinarjam(&self, kind: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        self.webinarjam_at(&format!("/hooks/webinarjam/{kind}"), content_type, body).await
    }

    async fn webinarjam_at(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        let headers = [
            ("content-type".to_owned(), content_type.to_owned()),
            ("authorization".to_owned(), format!("Bearer {WEBINARJAM_SECRET}")),
        ];
        self.post(path, &headers, body).await
    }
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

fn generic_event(kind: &str, email: &str) -> Value {
    json!({"kind": kind, "contact": {"email": email}, "webinar": {"id": "w1", "name": "Demo"}})
}

fn assert_refused(reply: &Reply, status: u16, error: &str, field: &str, what: &str) {
    assert_eq!(
        (reply.status, reply.body["error"].as_str(), reply.body["field"].as_str()),
        (status, Some(error), Some(field)),
        "{what}: {}",
        reply.body
    );
    let message = reply.body["message"].as_str().unwrap_or_default();
    assert!(message.len() > 20 && message.contains(field), "{what}: a sentence naming the field: {message}");
}

/// An authenticated WebinarJam body the bridge cannot read is kept, not refused (issue 15):
/// `202 parked` with the refusal's code, field and sentence.
fn assert_parked(reply: &Reply, error: &str, field: &str, what: &str) {
    assert_eq!(
        (reply.status, reply.body["status"].as_str(), reply.body["code"].as_str(), reply.body["field"].as_str()),
        (202, Some("parked"), Some(error), Some(field)),
        "{what}: {}",
        reply.body
    );
    let reason = reply.body["reason"].as_str().unwrap_or_default();
    assert!(reason.len() > 20 && reason.contains(field), "{what}: a sentence naming the field: {reason}");
}

fn accepted_id(reply: &Reply, what: &str) -> String {
    assert_eq!((reply.status, reply.body["status"].as_str()), (200, Some("accepted")), "{what}: {}", reply.body);
    reply.body["event_id"].as_str().expect("an event id").to_owned()
}

fn tags(simulator_tags: &BTreeMap<String, BTreeSet<String>>, email: &str) -> Vec<String> {
    simulator_tags.get(email).map(|tags| tags.iter().cloned().collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_and_strict_decoding_hold_through_serve() {
    let simulator = harness::start_simulator().await;
    let bridge = Bridge::start(&simulator.url()).await;

    // Defect 2: one webhook-id for two tools is two events, and both tools' tags are applied.
    let toola = accepted_id(
        &bridge.generic("toola", "msg_shared", &generic_event("registered", "lena@example.com")).await,
        "toola",
    );
    let toolb = accepted_id(
        &bridge.generic("toolb", "msg_shared", &generic_event("registered", "lena@example.com")).await,
        "toolb",
    );
    assert_ne!(toola, toolb, "event ids are scoped by tool");
    assert_eq!((toola.as_str(), toolb.as_str()), ("generic:toola:msg_shared", "generic:toolb:msg_shared"));

    // Defect 3: the same id with another payload is refused with 409 and recorded; a
    // redelivery of the original payload is still fine.
    let first = accepted_id(
        &bridge.generic("toola", "msg_reused", &generic_event("registered", "max@example.com")).await,
        "first use",
    );
    let reused = bridge.generic("toola", "msg_reused", &generic_event("cancelled", "max@example.com")).await;
    assert_eq!((reused.status, reused.body["error"].as_str()), (409, Some("event_id_reused")), "{}", reused.body);
    assert_eq!(reused.body["event_id"].as_str(), Some(first.as_str()));
    assert!(reused.body["message"].as_str().is_some_and(|message| message.contains("new id")), "{}", reused.body);
    let again = bridge.generic("toola", "msg_reused", &generic_event("registered", "max@example.com")).await;
    assert_eq!(accepted_id(&again, "redelivery of the original"), first);

    // Defect 4: invalid UTF-8 is refused naming the field, in forms, JSON and the query string
    // (an authenticated WebinarJam body is parked with that refusal: the platform never resends).
    let form = b"email=utf8%40example.com&webinar_id=123&webinar_name=%FF%FEX&first_name=Erika".to_vec();
    assert_parked(&bridge.webinarjam("registered", FORM, form).await, "invalid_utf8", "webinar_name", "form");
    let mut body = br#"{"email":"utf8@example.com","webinar_id":"123","first_name":""#.to_vec();
    body.extend_from_slice(b"\xFF\xFEX\"}");
    assert_parked(&bridge.webinarjam("registered", JSON, body).await, "invalid_utf8", "first_name", "JSON");
    let query = bridge
        .post(
            "/hooks/webinarjam/registered?token=%FF",
            &[("content-type".to_owned(), JSON.to_owned())],
            json!({"email": "utf8@example.com", "webinar_id": "123"}).to_string(),
        )
        .await;
    assert_refused(&query, 400, "invalid_utf8", "token", "query");
    let tool = bridge.generic("%FF%FEX", "msg_utf8", &generic_event("registered", "utf8@example.com")).await;
    assert_refused(&tool, 400, "invalid_utf8", "tool", "tool in the URL");

    // Defect 5: conflicting duplicate keys are a 400 naming the key, whatever the encoding;
    // identical duplicates are accepted.
    let form = b"email=dup-a%40example.com&webinar_id=123&email=dup-b%40example.com".to_vec();
    assert_parked(&bridge.webinarjam("registered", FORM, form).await, "duplicate_key", "email", "form");
    let body = br#"{"email":"dup-a@example.com","webinar_id":"123","email":"dup-b@example.com"}"#.to_vec();
    assert_parked(&bridge.webinarjam("registered", JSON, body).await, "duplicate_key", "email", "JSON");
    let generic_body = r#"{"kind":"registered","contact":{"email":"dup-a@example.com","email":"dup-b@example.com"},"webinar":{"id":"w1"}}"#;
    let headers = harness::standard_webhook_headers("msg_dup", Utc::now().timestamp(), generic_body);
    let reply = bridge.post("/hooks/generic/toola", &headers, generic_body).await;
    assert_refused(&reply, 400, "duplicate_key", "contact.email", "generic JSON");
    let form = b"email=same%40example.com&webinar_id=123&webinar_name=Masterclass&email=same%40example.com".to_vec();
    accepted_id(&bridge.webinarjam("registered", FORM, form).await, "identical duplicates");

    // Defect 6: one IDN mailbox in either spelling is one contact, sent in ASCII form.
    let unicode = json!({"email": "idn@bücher.de", "webinar_id": "123", "webinar_name": "Masterclass"}).to_string();
    accepted_id(&bridge.webinarjam("registered", JSON, unicode).await, "unicode domain");
    let punycode = b"email=IDN%40xn--bcher-kva.de&webinar_id=123&webinar_name=Masterclass".to_vec();
    accepted_id(&bridge.webinarjam("attended", FORM, punycode).await, "punycode domain");

    // Kind aliases are documented and accepted; anything else is parked (it would be a 422).
    let buyer = json!({"email": "buyer@example.com", "webinar_id": "123", "webinar_name": "Masterclass"}).to_string();
    accepted_id(&bridge.webinarjam("bought", JSON, buyer.clone()).await, "documented alias");
    let unknown = bridge.webinarjam("sold", JSON, buyer).await;
    assert_parked(&unknown, "unknown_kind", "kind", "unknown kind");

    // KlickTipp ends up exactly so.
    let db = harness::open_db(&bridge.db_path);
    harness::wait_until_drained(&db, DRAIN_TIMEOUT).await;
    let state = harness::tags_by_email(&simulator);
    assert_eq!(
        state.keys().map(String::as_str).collect::<Vec<_>>(),
        ["buyer@example.com", "idn@xn--bcher-kva.de", "lena@example.com", "max@example.com", "same@example.com"],
        "no contact for a refused request, one for the IDN mailbox"
    );
    assert_eq!(tags(&state, "lena@example.com"), ["[toola] [Demo] Registered", "[toolb] [Demo] Registered"]);
    assert_eq!(tags(&state, "max@example.com"), ["[toola] [Demo] Registered"], "the reused id was not applied");
    assert_eq!(
        tags(&state, "idn@xn--bcher-kva.de"),
        ["[WebinarJam] [Masterclass] Attended", "[WebinarJam] [Masterclass] Registered"]
    );
    assert_eq!(
        tags(&state, "buyer@example.com"),
        ["[WebinarJam] [Masterclass] Buyer", "[WebinarJam] [Masterclass] Registered"]
    );
    assert_eq!(tags(&state, "same@example.com"), ["[WebinarJam] [Masterclass] Registered"]);

    // The refused reuse is findable later: a stored receipt with its count, and a WARN line.
    let id = EventId::from_sender(&first).expect("an id");
    let receipt = SqliteReceiptLog::new(db.clone()).get(&id, Utc::now()).await.expect("receipts").expect("a receipt");
    assert_eq!(receipt.rejected_reuses, 1);
    assert!(receipt.last_rejected_at.is_some() && receipt.last_rejected_fingerprint.is_some());
    assert!(SqliteEventLog::new(db).get(&id).await.expect("event log").is_some(), "the original was applied");
    let warned = bridge
        .serve
        .stdout_lines()
        .into_iter()
        .chain(bridge.serve.stderr_text().lines().map(str::to_owned))
        .any(|line| line.contains("WARN") && line.contains("event id reused") && line.contains(first.as_str()));
    assert!(warned, "a WARN line names the reused event id");
    assert!(bridge.serve.terminate().await.success(), "serve exits 0 on SIGTERM");
}
