//! The two Lambda handlers invoked in-process with the events AWS would send them: the ingest
//! handler with API Gateway / function URL requests built from `tests/fixtures/aws`, enqueuing to
//! SQS in moto; the consumer handler with SQS events built from what moto's queue delivers,
//! against the KlickTipp simulator, with DynamoDB in moto. Both are wired exactly as in
//! production (`from_config`), with the KlickTipp password and the source secrets coming from
//! a Secrets Manager secret (`BRIDGE_SECRETS_ARN`).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use base64::Engine as _;
use chrono::Utc;
use klicktipp_sim::{Knobs, Simulator};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime};
use webinar_bridge::adapters::aws_secrets::{SecretsError, environment_with_secrets};
use webinar_bridge::adapters::dynamodb::{DynamoEventLog, DynamoReceiptLog};
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::adapters::sqs::aws_sdk_sqs::types::Message;
use webinar_bridge::config::BridgeConfig;
use webinar_bridge::domain::WebinarEvent;
use webinar_bridge::ports::{Claim, ClaimToken, EventLog, EventQueue, OutgoingMessage, ReceiptLog};
use webinar_bridge_consumer::ConsumerFunction;
use webinar_bridge_ingest::IngestFunction;
use webinar_bridge_tests::harness::{self, SIM_PASSWORD, SIM_USERNAME, WEBINARJAM_SECRET, ZOOM_SECRET, calls};
use webinar_bridge_tests::moto::{Moto, MotoQueue, TEMPLATE_MAX_RECEIVE_COUNT};

const ERIKA: &str = "erika@example.com";
const MAX: &str = "max@example.com";

fn fixture(path: &str) -> String {
    let full = harness::workspace_root().join("tests/fixtures").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|error| panic!("read {}: {error}", full.display()))
}

fn fixture_json(path: &str) -> Value {
    serde_json::from_str(&fixture(path)).expect("a JSON fixture")
}

/// The Zoom registration fixture, for `email`.
fn zoom_registration(email: &str) -> String {
    fixture("zoom/registration_created.json").replace(ERIKA, email)
}

// ---------------------------------------------------------------------------------------------
// The rig: moto resources, the simulator, and the functions' environment

struct Rig {
    moto: Moto,
    queue: MotoQueue,
    events_table: String,
    simulator: Simulator,
    vars: HashMap<String, String>,
}

impl Rig {
    async fn start() -> Self {
        Self::start_with(&[], Duration::from_secs(30)).await
    }

    /// `extra` variables on top of what every test sets; the queue's visibility timeout.
    async fn start_with(extra: &[(&str, &str)], visibility_timeout: Duration) -> Self {
        let moto = Moto::start().await;
        let settings = QueueSettings {
            visibility_timeout,
            max_receive_count: TEMPLATE_MAX_RECEIVE_COUNT,
            ..QueueSettings::default()
        };
        let queue = moto.create_queue(settings).await;
        let (events_table, contacts_table) = (moto.create_events_table().await, moto.create_contacts_table().await);
        let simulator = harness::start_simulator().await;
        let secret = json!({
            "KLICKTIPP_PASSWORD": SIM_PASSWORD,
            "BRIDGE_ZOOM_SECRET_TOKEN": ZOOM_SECRET,
            "BRIDGE_WEBINARJAM_SECRET": WEBINARJAM_SECRET,
            "BRIDGE_GENERIC_SECRET": "",
        });
        let arn = moto.create_secret(&secret.to_string()).await;
        let mut vars: HashMap<String, String> = [
            ("BRIDGE_SECRETS_ARN", arn.as_str()),
            ("EVENTS_QUEUE_URL", queue.url()),
            ("DEAD_LETTER_QUEUE_URL", queue.dlq_url.as_str()),
            ("EVENTS_TABLE", events_table.as_str()),
            ("CONTACTS_TABLE", contacts_table.as_str()),
            ("KLICKTIPP_BASE_URL", simulator.url().as_str()),
            ("KLICKTIPP_USERNAME", SIM_USERNAME),
            ("BRIDGE_FIELD_MAP", harness::FIELD_MAP),
            ("BRIDGE_KLICKTIPP_RPS", "1000"),
            ("BRIDGE_TAGS_AHEAD", "off"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        vars.extend(extra.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
        Self { moto, queue, events_table, simulator, vars }
    }

    /// The configuration the functions build at cold start: environment plus the secret.
    async fn config(&self) -> BridgeConfig {
        let vars = environment_with_secrets(self.moto.sdk(), self.vars.clone()).await.expect("read the secret");
        BridgeConfig::from_vars(&vars).expect("a valid configuration")
    }

    async fn ingest(&self) -> IngestFunction {
        IngestFunction::from_config(self.moto.sdk(), &self.config().await).expect("ingest starts")
    }

    async fn consumer(&self) -> ConsumerFunction {
        ConsumerFunction::from_config(self.moto.sdk(), &self.config().await).expect("consumer starts")
    }

    /// What the event source mapping would hand the consumer next.
    async fn next_sqs_event(&self) -> SqsEvent {
        let messages = self.queue.receive_raw(10).await;
        sqs_event(&messages)
    }

    async fn shutdown(self) {
        self.simulator.shutdown().await;
    }
}

/// A Lambda SQS event from received messages, on the `sqs_record.json` template.
fn sqs_event(messages: &[Message]) -> SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|message| {
            let mut record = fixture_json("aws/sqs_record.json");
            record["messageId"] = json!(message.message_id());
            record["receiptHandle"] = json!(message.receipt_handle());
            record["body"] = json!(message.body());
            record["md5OfBody"] = json!(message.md5_of_body());
            for (name, value) in message.attributes().into_iter().flatten() {
                record["attributes"][name.as_str()] = json!(value);
            }
            record
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("an SQS event")
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<String> {
    response.batch_item_failures.iter().map(|failure| failure.item_identifier.clone()).collect()
}

fn ids(event: &SqsEvent, indices: &[usize]) -> Vec<String> {
    indices.iter().map(|&index| event.records[index].message_id.clone().unwrap_or_default()).collect()
}

fn event_of(record: &SqsMessage) -> WebinarEvent {
    serde_json::from_str(record.body.as_deref().unwrap_or_default()).expect("a queued event")
}

// ---------------------------------------------------------------------------------------------
// Requests as API Gateway and function URLs send them

/// An HTTP API (payload 2.0) request on stage `prod`: the raw path keeps the stage prefix.
fn http_api_request(path: &str, headers: &[(String, String)], body: &str) -> Request {
    let mut event = fixture_json("aws/http_api_v2_request.json");
    let staged = format!("/prod{path}");
    event["rawPath"] = json!(staged);
    event["requestContext"]["http"]["path"] = json!(staged);
    for (name, value) in headers {
        event["headers"][name.as_str()] = json!(value);
    }
    event["body"] = json!(body);
    lambda_http::request::from_str(&event.to_string()).expect("an HTTP API event")
}

/// A function URL request with a base64 body, as function URLs deliver form posts.
fn function_url_request(path: &str, query: &str, body: &[u8]) -> Request {
    let mut event = fixture_json("aws/function_url_request.json");
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
    event["rawQueryString"] = json!(query);
    event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
    lambda_http::request::from_str(&event.to_string()).expect("a function URL event")
}

fn signed_zoom(body: &str) -> Request {
    http_api_request("/hooks/zoom", &harness::zoom_headers(body, Utc::now().timestamp()), body)
}

fn webinarjam_form(email: &str) -> Request {
    let form = fixture("webinarjam/registered.form").trim().replace("erika%40example.com", &email.replace('@', "%40"));
    function_url_request("/hooks/webinarjam/registered", &format!("token={WEBINARJAM_SECRET}"), form.as_bytes())
}

/// Status and JSON body; also checks the answer is JSON.
fn answer(response: &Response<Body>) -> (u16, Value) {
    assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
    let body = serde_json::from_slice(response.body().as_ref()).expect("a JSON body");
    (response.status().as_u16(), body)
}

// ---------------------------------------------------------------------------------------------
// Ingest

#[tokio::test]
async fn ingest_enqueues_a_signed_zoom_registration_sent_through_an_http_api_stage() {
    let rig = Rig::start().await;
    let ingest = rig.ingest().await;
    let (status, body) = answer(&ingest.handle(signed_zoom(&zoom_registration(ERIKA))).await);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "accepted");
    let event_id = body["event_id"].as_str().expect("an event id").to_owned();
    assert!(event_id.starts_with("zoom:"), "{event_id}");
    let queued = rig.queue.receive_raw(10).await;
    assert_eq!(queued.len(), 1);
    let attributes = queued[0].attributes().cloned().unwrap_or_default();
    let attribute =
        |name: &str| attributes.iter().find(|(key, _)| key.as_str() == name).map(|(_, value)| value.clone());
    assert_eq!(attribute("MessageDeduplicationId"), Some(event_id.clone()));
    let event: WebinarEvent = serde_json::from_str(queued[0].body().unwrap_or_default()).expect("the event as JSON");
    assert_eq!(event.event_id.as_str(), event_id);
    assert_eq!(attribute("MessageGroupId"), Some(event.contact.email.group_hash()));
    // The platform retrying the same webhook is accepted and not queued again.
    let (status, again) = answer(&ingest.handle(signed_zoom(&zoom_registration(ERIKA))).await);
    assert_eq!((status, again["event_id"].as_str()), (200, Some(event_id.as_str())));
    assert_eq!(rig.queue.depth().await.expect("depth"), 1);
    rig.shutdown().await;
}

#[tokio::test]
async fn ingest_enqueues_a_webinarjam_form_sent_through_a_function_url_with_a_base64_body() {
    let rig = Rig::start().await;
    let ingest = rig.ingest().await;
    let (status, body) = answer(&ingest.handle(webinarjam_form(ERIKA)).await);
    assert_eq!((status, body["status"].as_str()), (200, Some("accepted")), "{body}");
    assert_eq!(rig.queue.depth().await.expect("depth"), 1);
    rig.shutdown().await;
}

#[tokio::test]
async fn ingest_refuses_a_reused_event_id_with_409_and_records_it_in_the_events_table() {
    let rig = Rig::start().await;
    let ingest = rig.ingest().await;
    let (status, body) = answer(&ingest.handle(webinarjam_form(ERIKA)).await);
    assert_eq!((status, body["status"].as_str()), (200, Some("accepted")), "{body}");
    let event_id = body["event_id"].as_str().expect("an event id").to_owned();
    // Same identity (kind, e-mail, webinar, session), different content: WebinarJam's id is reused.
    let form = fixture("webinarjam/registered.form").trim().replace("first_name=Erika", "first_name=Erica");
    let request =
        function_url_request("/hooks/webinarjam/registered", &format!("token={WEBINARJAM_SECRET}"), form.as_bytes());
    let (status, body) = answer(&ingest.handle(request).await);
    assert_eq!(
        (status, body["error"].as_str(), body["event_id"].as_str()),
        (409, Some("event_id_reused"), Some(event_id.as_str())),
        "{body}"
    );
    assert_eq!(rig.queue.depth().await.expect("depth"), 1, "the reused id was not enqueued");
    let receipts = DynamoReceiptLog::new(rig.moto.dynamodb(), &rig.events_table);
    let id = webinar_bridge::domain::EventId::from_sender(&event_id).expect("an id");
    let receipt = receipts.get(&id, Utc::now()).await.expect("read the receipt").expect("a receipt");
    assert_eq!(receipt.rejected_reuses, 1, "the refused reuse is recorded");
    // The original redelivered is still accepted (and deduplicated by the queue).
    let (status, _) = answer(&ingest.handle(webinarjam_form(ERIKA)).await);
    assert_eq!(status, 200);
    rig.shutdown().await;
}

#[tokio::test]
async fn ingest_answers_health_checks_behind_the_stage_prefix() {
    let rig = Rig::start().await;
    let mut event = fixture_json("aws/http_api_v2_request.json");
    event["rawPath"] = json!("/prod/health");
    event["requestContext"]["http"]["method"] = json!("GET");
    event["requestContext"]["http"]["path"] = json!("/prod/health");
    let request = lambda_http::request::from_str(&event.to_string()).expect("an HTTP API event");
    let (status, body) = answer(&rig.ingest().await.handle(request).await);
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    rig.shutdown().await;
}

#[tokio::test]
async fn ingest_refuses_a_bad_zoom_signature_with_401_json_and_enqueues_nothing() {
    let rig = Rig::start().await;
    let body = zoom_registration(ERIKA);
    let mut headers = harness::zoom_headers(&body, Utc::now().timestamp());
    for (name, value) in &mut headers {
        if name == "x-zm-signature" {
            *value = format!("v0={}", "0".repeat(64));
        }
    }
    let (status, answer_body) =
        answer(&rig.ingest().await.handle(http_api_request("/hooks/zoom", &headers, &body)).await);
    assert_eq!(status, 401, "{answer_body}");
    assert!(answer_body["error"].is_string() && answer_body["message"].is_string(), "{answer_body}");
    assert_eq!(rig.queue.depth().await.expect("depth"), 0);
    rig.shutdown().await;
}

#[tokio::test]
async fn ingest_refuses_a_body_over_256_kib_with_413_json_and_enqueues_nothing() {
    let rig = Rig::start().await;
    let padding = "x".repeat(300 * 1024);
    let body = zoom_registration(ERIKA).replacen("\"AbCdEf123\"", &format!("\"{padding}\""), 1);
    let (status, answer_body) = answer(&rig.ingest().await.handle(signed_zoom(&body)).await);
    assert_eq!(status, 413, "{answer_body}");
    assert!(answer_body["error"].is_string(), "{answer_body}");
    assert_eq!(rig.queue.depth().await.expect("depth"), 0);
    rig.shutdown().await;
}

#[tokio::test]
async fn ingest_refuses_a_compressed_body_with_415_json_and_enqueues_nothing() {
    let rig = Rig::start().await;
    let body = zoom_registration(ERIKA);
    let mut headers = harness::zoom_headers(&body, Utc::now().timestamp());
    headers.push(("content-encoding".to_owned(), "gzip".to_owned()));
    let request = http_api_request("/hooks/zoom", &headers, &body);
    let (status, answer_body) = answer(&rig.ingest().await.handle(request).await);
    assert_eq!((status, answer_body["error"].as_str()), (415, Some("unsupported_content_encoding")), "{answer_body}");
    assert!(answer_body["message"].as_str().is_some_and(|message| message.contains("uncompressed")), "{answer_body}");
    assert_eq!(rig.queue.depth().await.expect("depth"), 0);
    rig.shutdown().await;
}

#[tokio::test]
async fn ingest_answers_503_json_when_the_queue_is_unreachable() {
    let rig = Rig::start().await;
    let mut config = rig.config().await;
    config.events_queue_url = Some(format!("{}/123456789012/no-such-queue.fifo", rig.moto.endpoint()));
    let ingest = IngestFunction::from_config(rig.moto.sdk(), &config).expect("ingest starts");
    let (status, body) = answer(&ingest.handle(signed_zoom(&zoom_registration(ERIKA))).await);
    assert_eq!((status, body["error"].as_str()), (503, Some("queue_unavailable")), "{body}");
    rig.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Consumer

#[tokio::test]
async fn consumer_applies_a_batch_with_the_minimal_klicktipp_calls_and_ignores_a_redelivery() {
    let rig = Rig::start().await;
    let ingest = rig.ingest().await;
    for request in [signed_zoom(&zoom_registration(MAX)), webinarjam_form(ERIKA)] {
        let (status, body) = answer(&ingest.handle(request).await);
        assert_eq!(status, 200, "{body}");
    }
    let consumer = rig.consumer().await;
    let event = rig.next_sqs_event().await;
    assert_eq!(event.records.len(), 2);
    let response = consumer.handle(event.clone(), Some(SystemTime::now() + Duration::from_secs(60))).await;
    assert_eq!(failed_ids(&response), Vec::<String>::new());
    let tags = harness::tags_by_email(&rig.simulator);
    assert_eq!(tags[MAX], BTreeSet::from(["[Zoom] [Demo Webinar] Registered".to_owned()]));
    assert_eq!(tags[ERIKA], BTreeSet::from(["[WebinarJam] [Masterclass] Registered".to_owned()]));
    // One login, one tag listing, each new tag created once, one upsert (with its tag) per contact.
    let expected = calls(&[("GET /tag", 1), ("POST /account/login", 1), ("POST /subscriber", 2), ("POST /tag", 2)]);
    assert_eq!(rig.simulator.calls_by_endpoint(), expected);
    // The same batch again (Lambda redelivers after a lost response): duplicates, no calls.
    let response = consumer.handle(event, None).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(rig.simulator.calls_by_endpoint(), expected);
    rig.shutdown().await;
}

#[tokio::test]
async fn consumer_creates_a_new_tag_once_for_a_batch_of_contacts_that_all_need_it() {
    let rig = Rig::start().await;
    let ingest = rig.ingest().await;
    for email in [ERIKA, MAX, "anna@example.com"] {
        assert_eq!(answer(&ingest.handle(signed_zoom(&zoom_registration(email))).await).0, 200);
    }
    let event = rig.next_sqs_event().await;
    let response = rig.consumer().await.handle(event, None).await;
    assert!(response.batch_item_failures.is_empty(), "{:?}", failed_ids(&response));
    // Three groups race for one new tag: one creates it (claim in DynamoDB), the others wait.
    let expected = calls(&[("GET /tag", 1), ("POST /account/login", 1), ("POST /subscriber", 3), ("POST /tag", 1)]);
    assert_eq!(rig.simulator.calls_by_endpoint(), expected);
    assert_eq!(rig.simulator.tags().len(), 1);
    rig.shutdown().await;
}

#[tokio::test]
async fn consumer_fails_a_busy_group_with_its_later_messages_and_waits_out_the_lease() {
    // A short queue visibility timeout: anything not delayed on purpose is back after a second.
    let rig = Rig::start_with(&[], Duration::from_secs(1)).await;
    let ingest = rig.ingest().await;
    let later = zoom_registration(ERIKA).replace("webinar.registration_created", "webinar.registration_approved");
    for request in [signed_zoom(&zoom_registration(ERIKA)), signed_zoom(&zoom_registration(MAX)), signed_zoom(&later)] {
        assert_eq!(answer(&ingest.handle(request).await).0, 200);
    }
    let event = rig.next_sqs_event().await;
    let emails: Vec<String> =
        event.records.iter().map(|record| event_of(record).contact.email.as_str().to_owned()).collect();
    assert_eq!(emails, [ERIKA, MAX, ERIKA]);
    // Another consumer instance holds Erika's first event.
    let first = event_of(&event.records[0]);
    let other = DynamoEventLog::from_conf(rig.moto.sdk(), &rig.events_table);
    let (lease, retention) = (Duration::from_secs(120), Duration::from_secs(3600));
    let claim =
        other.claim(&first.event_id, &first.fingerprint(), &ClaimToken::new(), Utc::now(), lease, retention).await;
    assert_eq!(claim.expect("claim"), Claim::Claimed);

    let response = rig.consumer().await.handle(event.clone(), None).await;
    assert_eq!(failed_ids(&response), ids(&event, &[0, 2]), "Erika's group fails as a whole, in order");
    assert_eq!(harness::tags_by_email(&rig.simulator).keys().collect::<Vec<_>>(), [MAX]);
    // What Lambda does with the answer: delete the successes.
    let max = webinar_bridge_consumer::queued_message_from_sqs_record(&event.records[1]).expect("complete");
    rig.queue.ack(&max).await.expect("delete Max's message");
    // Erika's messages wait out the other worker's lease (ChangeMessageVisibility), instead of
    // returning after the queue's one second and spending receives on a busy claim.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(rig.queue.receive_raw(10).await.is_empty(), "the busy group came back before the lease ended");
    assert_eq!(rig.queue.depth().await.expect("depth"), 2);
    rig.shutdown().await;
}

#[tokio::test]
async fn consumer_fails_every_group_while_klicktipp_is_down_and_applies_nothing() {
    let rig = Rig::start().await;
    let ingest = rig.ingest().await;
    for request in [signed_zoom(&zoom_registration(MAX)), webinarjam_form(ERIKA)] {
        assert_eq!(answer(&ingest.handle(request).await).0, 200);
    }
    rig.simulator.set_knobs(Knobs { fault_rate_500: 1.0, ..Knobs::default() });
    let event = rig.next_sqs_event().await;
    let response = rig.consumer().await.handle(event.clone(), None).await;
    assert_eq!(failed_ids(&response), ids(&event, &[0, 1]));
    assert!(rig.simulator.contacts().is_empty());
    // The claims were given back, so the retry applies at once when KlickTipp is back.
    rig.simulator.set_knobs(Knobs::default());
    let response = rig.consumer().await.handle(event, None).await;
    assert!(response.batch_item_failures.is_empty(), "{:?}", failed_ids(&response));
    assert_eq!(rig.simulator.contacts().len(), 2);
    rig.shutdown().await;
}

#[tokio::test]
async fn consumer_dead_letters_an_unreadable_message_with_its_reason_and_applies_the_rest() {
    let rig = Rig::start().await;
    assert_eq!(answer(&rig.ingest().await.handle(signed_zoom(&zoom_registration(ERIKA))).await).0, 200);
    // From a newer ingest during a rolling deploy: a schema version this consumer does not know.
    let newer = r#"{"schema":2,"event_id":"evt-from-the-future","kind":"registered"}"#;
    let unreadable = OutgoingMessage { group_id: "newer".into(), dedup_id: "newer-1".into(), body: newer.into() };
    rig.queue.send(&[unreadable]).await.expect("send");
    let event = rig.next_sqs_event().await;
    assert_eq!(event.records.len(), 2);
    let response = rig.consumer().await.handle(event, Some(SystemTime::now() + Duration::from_secs(60))).await;
    assert!(response.batch_item_failures.is_empty(), "{:?}", failed_ids(&response));
    assert_eq!(rig.simulator.contacts().len(), 1, "the readable event was applied");
    let dead = rig.queue.dead_letters().await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].body.as_str(), dead[0].group_id.as_str()), (newer, "newer"), "kept byte for byte");
    let reason = dead[0].reason.as_deref().unwrap_or_default();
    assert!(reason.starts_with("unknown schema version 2"), "{reason}");
    assert!(rig.queue.receive_raw(10).await.is_empty(), "nothing visible in the queue");
    rig.shutdown().await;
}

#[tokio::test]
async fn consumer_hands_back_untouched_groups_when_the_invocation_is_about_to_time_out() {
    let rig = Rig::start().await;
    assert_eq!(answer(&rig.ingest().await.handle(signed_zoom(&zoom_registration(ERIKA))).await).0, 200);
    let event = rig.next_sqs_event().await;
    // Two seconds left, less than the five-second safety margin: nothing is started.
    let response = rig.consumer().await.handle(event.clone(), Some(SystemTime::now() + Duration::from_secs(2))).await;
    assert_eq!(failed_ids(&response), ids(&event, &[0]));
    assert_eq!(rig.simulator.total_calls(), 0);
    // Handed back with the first retry delay (2 s), not at once: a receive spent without progress
    // must not come straight back, or invocations cut short would burn maxReceiveCount (DESIGN 6).
    assert!(rig.queue.receive_raw(10).await.is_empty(), "visible again before its retry delay");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let again = rig.queue.receive_raw(10).await;
    assert_eq!(again.len(), 1);
    rig.shutdown().await;
}

#[tokio::test]
async fn consumer_keeps_to_its_share_of_the_account_rate() {
    // 4 calls/s for the account over 2 instances: this instance may make 2 a second. The
    // simulator answers 429 above 3 a second: the whole account rate would trip it, the share
    // never does (the spare call absorbs scheduling jitter on a busy machine).
    let rig = Rig::start_with(
        &[("BRIDGE_KLICKTIPP_RPS", "4"), ("BRIDGE_CONSUMER_CONCURRENCY", "2")],
        Duration::from_secs(30),
    )
    .await;
    // The tag exists already, so the three contacts only need upserts.
    let tag = "[Zoom] [Demo Webinar] Registered";
    harness::simulator_client(&rig.simulator).create_tag(tag, None).await.expect("create the tag");
    let ingest = rig.ingest().await;
    for email in [ERIKA, MAX, "anna@example.com"] {
        assert_eq!(answer(&ingest.handle(signed_zoom(&zoom_registration(email))).await).0, 200);
    }
    let event = rig.next_sqs_event().await;
    tokio::time::sleep(Duration::from_millis(1_100)).await; // the setup calls leave the window
    rig.simulator.set_knobs(Knobs { rate_limit_per_second: Some(3), retry_after: true, ..Knobs::default() });
    let before = rig.simulator.calls_by_endpoint();
    let started = Instant::now();
    let response = rig.consumer().await.handle(event, None).await;
    let elapsed = started.elapsed();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(harness::tags_by_email(&rig.simulator).values().filter(|tags| tags.contains(tag)).count(), 3);
    assert_eq!(rig.simulator.count_status(429), 0, "never over the cap");
    // login, GET /tag, 3 x POST /subscriber: 5 calls, spaced 0.51 s apart.
    let made = harness::calls_since(&rig.simulator, &before);
    assert_eq!(made, calls(&[("GET /tag", 1), ("POST /account/login", 1), ("POST /subscriber", 3)]));
    assert!(elapsed >= Duration::from_millis(4 * 500), "{elapsed:?} for 5 calls");
    rig.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Cold start configuration

#[tokio::test]
async fn the_secret_is_laid_over_the_environment_and_a_bad_one_names_the_variable() {
    let moto = Moto::start().await;
    let arn = moto
        .create_secret(r#"{"BRIDGE_ZOOM_SECRET_TOKEN":"from-the-secret","KLICKTIPP_LISTBUILDING_APIKEY":""}"#)
        .await;
    let env = HashMap::from([
        ("BRIDGE_SECRETS_ARN".to_owned(), arn),
        ("BRIDGE_ZOOM_SECRET_TOKEN".to_owned(), "from-the-environment".to_owned()),
        ("KLICKTIPP_LISTBUILDING_APIKEY".to_owned(), "kept".to_owned()),
    ]);
    let vars = environment_with_secrets(moto.sdk(), env).await.expect("read the secret");
    assert_eq!(vars["BRIDGE_ZOOM_SECRET_TOKEN"], "from-the-secret");
    assert_eq!(vars["KLICKTIPP_LISTBUILDING_APIKEY"], "kept", "an empty value in the secret counts as unset");
    let unchanged = environment_with_secrets(moto.sdk(), HashMap::new()).await.expect("no secret to read");
    assert!(unchanged.is_empty());

    let bad = moto.create_secret("not json").await;
    let error = environment_with_secrets(moto.sdk(), HashMap::from([("BRIDGE_SECRETS_ARN".to_owned(), bad)]))
        .await
        .expect_err("not a JSON object");
    assert!(matches!(error, SecretsError::NotAnObject));
    assert!(error.to_string().starts_with("BRIDGE_SECRETS_ARN"), "{error}");
    let missing = HashMap::from([(
        "BRIDGE_SECRETS_ARN".to_owned(),
        "arn:aws:secretsmanager:eu-central-1:123456789012:secret:missing".to_owned(),
    )]);
    let error = environment_with_secrets(moto.sdk(), missing).await.expect_err("no such secret");
    assert!(matches!(error, SecretsError::Unavailable(_)), "{error}");
}

#[tokio::test]
async fn the_consumer_refuses_to_start_without_tables_or_klicktipp_credentials() {
    let moto = Moto::start().await;
    let base = |pairs: &[(&str, &str)]| {
        let vars: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        BridgeConfig::from_vars(&vars).expect("valid on its own")
    };
    let no_table = base(&[("EVENTS_QUEUE_URL", "http://q"), ("KLICKTIPP_USERNAME", "u"), ("KLICKTIPP_PASSWORD", "p")]);
    let error = ConsumerFunction::from_config(moto.sdk(), &no_table).err().expect("refused");
    assert!(error.to_string().starts_with("EVENTS_TABLE"), "{error}");
    let no_credentials = base(&[("EVENTS_QUEUE_URL", "http://q"), ("EVENTS_TABLE", "e"), ("CONTACTS_TABLE", "c")]);
    let error = ConsumerFunction::from_config(moto.sdk(), &no_credentials).err().expect("refused");
    assert!(error.to_string().starts_with("KLICKTIPP_USERNAME"), "{error}");
    let error = IngestFunction::from_config(moto.sdk(), &base(&[])).err().expect("refused");
    assert!(error.to_string().starts_with("EVENTS_QUEUE_URL"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Parked webhooks (issue 15 item 5)

/// The registration form with the e-mail under a key the bridge does not know.
fn webinarjam_unknown_shape(token: &str) -> Request {
    let form = fixture("webinarjam/registered.form").trim().replace("&email=", "&Mail+Adresse=");
    function_url_request("/hooks/webinarjam/registered", &format!("token={token}"), form.as_bytes())
}

#[tokio::test]
async fn a_parked_body_is_reprocessed_on_aws_into_the_right_tags_after_the_alias_is_added() {
    use webinar_bridge::adapters::dynamodb::DynamoParkedWebhooks;
    use webinar_bridge::ingest::Reprocessed;
    use webinar_bridge::ports::ParkedWebhooks;
    let rig = Rig::start().await;
    let ingest = rig.ingest().await;
    let store = DynamoParkedWebhooks::new(rig.moto.dynamodb(), &rig.events_table);

    // Without the secret: 401, nothing kept.
    let (status, _) = answer(&ingest.handle(webinarjam_unknown_shape("wrong")).await);
    assert_eq!(status, 401);
    assert!(store.list(Utc::now()).await.expect("list").is_empty());

    let (status, body) = answer(&ingest.handle(webinarjam_unknown_shape(WEBINARJAM_SECRET)).await);
    assert_eq!((status, body["status"].as_str(), body["code"].as_str()), (202, Some("parked"), Some("missing_email")));
    let id = body["id"].as_str().expect("an id").to_owned();
    assert_eq!(rig.queue.depth().await.expect("depth"), 0);
    let parked = store.get(&id, Utc::now()).await.expect("get").expect("kept in the events table");
    assert_eq!((parked.source.as_str(), parked.query.as_deref()), ("webinarjam", None), "the token is not kept");

    // Reprocessed with today's configuration: still parked.
    let unchanged = webinar_bridge_ingest::aws_ingest(rig.moto.sdk(), &rig.config().await).expect("ingest");
    let outcome = unchanged.reprocess(&store, &parked, Utc::now()).await;
    assert!(matches!(outcome, Reprocessed::StillRefused { .. }), "{outcome:?}");
    assert_eq!(rig.queue.depth().await.expect("depth"), 0);

    // With the alias, as `webinar-bridge reprocess --aws` does it: queued, removed from the store.
    let mut fixed = Rig { vars: rig.vars.clone(), ..rig };
    fixed.vars.insert("BRIDGE_FIELD_ALIASES".into(), r#"{"email":["Mail Adresse"]}"#.into());
    let ingest = webinar_bridge_ingest::aws_ingest(fixed.moto.sdk(), &fixed.config().await).expect("ingest");
    let outcome = ingest.reprocess(&store, &parked, Utc::now()).await;
    assert!(matches!(&outcome, Reprocessed::Accepted { event_ids } if event_ids.len() == 1), "{outcome:?}");
    assert!(store.list(Utc::now()).await.expect("list").is_empty());

    let event = fixed.next_sqs_event().await;
    assert_eq!(event.records.len(), 1);
    let response = fixed.consumer().await.handle(event, None).await;
    assert!(response.batch_item_failures.is_empty());
    let tags = harness::tags_by_email(&fixed.simulator);
    assert_eq!(tags[ERIKA], BTreeSet::from(["[WebinarJam] [Masterclass] Registered".to_owned()]));
    let expected = calls(&[("GET /tag", 1), ("POST /account/login", 1), ("POST /subscriber", 1), ("POST /tag", 1)]);
    assert_eq!(fixed.simulator.calls_by_endpoint(), expected);
    fixed.shutdown().await;
}
