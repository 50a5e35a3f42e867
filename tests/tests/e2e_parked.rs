//! Refused webhooks are kept, not lost (issue 15 item 5): an authenticated WebinarJam body the
//! bridge cannot read is parked (202), listed by `parked` and `problems`, and after the marketer
//! adds an alias (`BRIDGE_FIELD_ALIASES`) `reprocess` turns it into the right tags, with exact
//! KlickTipp calls. Through `serve` on SQLite (the built binary), and in process for the cap and
//! the refusals that must stay refusals. The AWS side is in `aws_handlers.rs`.
//!
//! Needs `cargo build --workspace` first (the harness says so if the binary is missing).

use bytes::Bytes;
use chrono::Utc;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use webinar_bridge::Secret;
use webinar_bridge::adapters::memory::{MemoryParkedWebhooks, MemoryQueue};
use webinar_bridge::ingest::{Ingest, IngestResponse, Reprocessed};
use webinar_bridge::ports::{ParkCap, ParkedWebhooks};
use webinar_bridge::sources::{FieldAliases, RawRequest, SourceSecrets};
use webinar_bridge_tests::harness::{self, BridgeEnv, ServeProcess, WEBINARJAM_SECRET, calls};

const DRAIN_TIMEOUT: Duration = Duration::from_secs(45);
const EMAIL: &str = "parked.person@example.com";
const REGISTERED: &str = "[WebinarJam] [Masterclass] Registered";
const ALIASES: &str = r#"{"email":["Mail Adresse"]}"#;

/// A registration whose e-mail sits under a key the bridge does not know.
fn unknown_shape(email: &str) -> Value {
    json!({"webinar_id": "123", "webinar_name": "Masterclass", "schedule": "45", "date": "2026-02-10 19:00",
           "Mail Adresse": email, "first_name": "Petra"})
}

async fn post(serve: &ServeProcess, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request =
        reqwest::Client::new().post(serve.url(path)).header("content-type", "application/json").body(body.to_string());
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.expect("serve answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

fn json_of(run: &harness::Finished) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|error| panic!("{error}: {}\n{}", run.stdout, run.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_body_is_reprocessed_into_the_right_tags_after_the_alias_is_added_on_serve() {
    let simulator = harness::start_simulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("bridge.db");
    let env = BridgeEnv::for_simulator(&simulator.url(), &db_path);
    let serve = ServeProcess::start(&env, &[]).await;
    let db = harness::open_db(&db_path);
    let store = webinar_bridge::adapters::sqlite::SqliteParkedWebhooks::new(db.clone());

    // Without the secret: 401 and nothing kept.
    let (status, body) = post(&serve, "/hooks/webinarjam/registered", Some("wrong"), &unknown_shape(EMAIL)).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_secret")), "{body}");
    let (status, _) = post(&serve, "/hooks/webinarjam/registered", None, &unknown_shape(EMAIL)).await;
    assert_eq!(status, 401);
    assert!(store.list(Utc::now()).await.expect("list").is_empty(), "an unauthenticated body is never stored");

    // Authenticated: parked with the sentence the 422 had.
    let (status, body) =
        post(&serve, "/hooks/webinarjam/registered", Some(WEBINARJAM_SECRET), &unknown_shape(EMAIL)).await;
    assert_eq!((status, body["status"].as_str(), body["code"].as_str()), (202, Some("parked"), Some("missing_email")));
    assert!(
        body["reason"].as_str().is_some_and(|reason| reason.starts_with("The body has no e-mail address")),
        "{body}"
    );
    let id = body["id"].as_str().expect("an id").to_owned();
    harness::wait_until_drained(&db, DRAIN_TIMEOUT).await;
    assert_eq!(simulator.total_calls(), 0, "nothing reached KlickTipp");

    // `parked` lists it without the body or the address; `--show` is the one way to see both.
    let listed = harness::run_bridge_async(&env, &["parked", "--json"]).await;
    assert_eq!(listed.code, Some(1), "something is parked: {}", listed.stderr);
    let listed_json = json_of(&listed);
    assert_eq!(listed_json[0]["id"], json!(id));
    assert_eq!(listed_json[0]["source"], "webinarjam");
    assert_eq!(listed_json[0]["path"], "/hooks/webinarjam/registered");
    assert_eq!(listed_json[0]["size"], json!(unknown_shape(EMAIL).to_string().len()));
    let text = harness::run_bridge_async(&env, &["parked"]).await;
    for output in [&listed.stdout, &text.stdout] {
        assert!(!output.contains(EMAIL), "the listing shows no address: {output}");
    }
    assert!(text.stdout.contains(&id) && text.stdout.contains("reprocess"), "{}", text.stdout);
    let shown = harness::run_bridge_async(&env, &["parked", "--show", &id]).await;
    assert_eq!(shown.code, Some(0), "{}", shown.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(json_of(&shown)["body"].as_str().expect("body")).ok(),
        Some(unknown_shape(EMAIL))
    );
    let problems = harness::run_bridge_async(&env, &["problems", "--json"]).await;
    let problems = json_of(&problems);
    let parked_problem = problems.as_array().expect("a list").iter().find(|problem| problem["kind"] == "parked");
    assert_eq!(parked_problem.map(|problem| problem["message_id"].clone()), Some(json!(id)), "{problems}");

    // Reprocessing before the fix: still parked, nothing queued.
    let again = harness::run_bridge_async(&env, &["reprocess", "--all"]).await;
    assert_eq!(again.code, Some(1), "{}\n{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("still parked"), "{}", again.stdout);
    let unknown = harness::run_bridge_async(&env, &["reprocess", "nope"]).await;
    assert_eq!(unknown.code, Some(2), "{}", unknown.stderr);
    let bad_alias =
        harness::run_bridge_async(&env.clone().set("BRIDGE_FIELD_ALIASES", r#"{"mail":["x"]}"#), &["parked"]).await;
    assert_eq!(bad_alias.code, Some(2));
    assert!(
        bad_alias.stderr.starts_with("BRIDGE_FIELD_ALIASES") && bad_alias.stderr.contains("known fields"),
        "{}",
        bad_alias.stderr
    );

    // The marketer teaches the bridge the key; serve's consumer applies the queued event.
    let fixed = env.clone().set("BRIDGE_FIELD_ALIASES", ALIASES);
    let run = harness::run_bridge_async(&fixed, &["reprocess", &id]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("accepted: 1 event(s) queued webinarjam:"), "{}", run.stdout);
    harness::wait_until_drained(&db, DRAIN_TIMEOUT).await;
    let tags = harness::tags_by_email(&simulator);
    assert_eq!(tags.get(EMAIL).cloned().unwrap_or_default(), [REGISTERED.to_owned()].into());
    let expected = calls(&[("GET /tag", 1), ("POST /account/login", 1), ("POST /subscriber", 1), ("POST /tag", 1)]);
    assert_eq!(simulator.calls_by_endpoint(), expected);
    let after = harness::run_bridge_async(&fixed, &["parked", "--json"]).await;
    assert_eq!((after.code, json_of(&after)), (Some(0), json!([])));
    // The same body sent now is read at once (serve itself has no alias, so this one parks again).
    let (status, body) =
        post(&serve, "/hooks/webinarjam/registered", Some(WEBINARJAM_SECRET), &unknown_shape(EMAIL)).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("parked")));
    assert!(serve.terminate().await.success());
    drop(db);
    simulator.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// In process: the cap, and refusals that stay refusals

fn webinarjam_request(kind: &str, query: Option<&str>, token: Option<&str>, body: &str) -> RawRequest {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some(token) = token {
        headers.push(("authorization".to_owned(), format!("Bearer {token}")));
    }
    RawRequest {
        method: "POST".into(),
        path: format!("/hooks/webinarjam/{kind}"),
        query: query.map(str::to_owned),
        headers,
        body: Bytes::from(body.to_owned()),
        received_at: Utc::now(),
    }
}

fn ingest(store: &MemoryParkedWebhooks, queue: &MemoryQueue, cap: ParkCap) -> Ingest {
    let secrets = SourceSecrets {
        webinarjam: Some(Secret::new(WEBINARJAM_SECRET)),
        zoom: Some(Secret::new(harness::ZOOM_SECRET)),
        ..SourceSecrets::default()
    };
    Ingest::new(Arc::new(queue.clone()), secrets).with_parked(Arc::new(store.clone()), cap)
}

#[tokio::test]
async fn a_full_parked_store_refuses_new_bodies_with_503_and_keeps_the_old_ones() {
    let (store, queue) = (MemoryParkedWebhooks::default(), MemoryQueue::default());
    let ingest = ingest(&store, &queue, ParkCap { max_count: 2, max_bytes: 1_000_000 });
    let body = unknown_shape(EMAIL).to_string();
    for _ in 0..2 {
        let IngestResponse { status, .. } =
            ingest.handle(&webinarjam_request("registered", None, Some(WEBINARJAM_SECRET), &body)).await;
        assert_eq!(status, 202);
    }
    let full = ingest.handle(&webinarjam_request("registered", None, Some(WEBINARJAM_SECRET), &body)).await;
    assert_eq!((full.status, full.body["error"].as_str()), (503, Some("parked_store_full")), "{}", full.body);
    assert!(full.body["message"].as_str().is_some_and(|m| m.contains("BRIDGE_PARKED_MAX_COUNT")));
    assert_eq!(store.list(Utc::now()).await.expect("list").len(), 2, "the older bodies are kept");
    assert_eq!(queue.pending(), 0);
}

#[tokio::test]
async fn only_authenticated_webinarjam_body_refusals_are_parked_and_the_token_is_never_stored() {
    let (store, queue) = (MemoryParkedWebhooks::default(), MemoryQueue::default());
    let ingest = ingest(&store, &queue, ParkCap::default());
    let body = unknown_shape(EMAIL).to_string();
    // Unauthenticated, and a bad token in the URL: 401, nothing stored.
    for request in [
        webinarjam_request("registered", None, None, &body),
        webinarjam_request("registered", Some("token=wrong"), None, &body),
    ] {
        assert_eq!(ingest.handle(&request).await.status, 401);
    }
    // Over the size cap: 413 as before.
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(webinar_bridge::sources::MAX_BODY_BYTES));
    assert_eq!(
        ingest.handle(&webinarjam_request("registered", None, Some(WEBINARJAM_SECRET), &huge)).await.status,
        413
    );
    // A Zoom body that is not JSON keeps its 4xx (a signed source's client bug).
    let zoom_body = "not json";
    let zoom = RawRequest {
        method: "POST".into(),
        path: "/hooks/zoom".into(),
        query: None,
        headers: harness::zoom_headers(zoom_body, Utc::now().timestamp())
            .into_iter()
            .chain([("content-type".to_owned(), "application/json".to_owned())])
            .collect(),
        body: Bytes::from_static(zoom_body.as_bytes()),
        received_at: Utc::now(),
    };
    assert_eq!(ingest.handle(&zoom).await.status, 400);
    assert!(store.list(Utc::now()).await.expect("list").is_empty());

    // The token in the rule URL authenticates, and is dropped from what is kept; the label stays.
    let request = webinarjam_request(
        "engaged",
        Some(&format!("token={WEBINARJAM_SECRET}&label=Clicked%20Offer")),
        None,
        "not json at all {",
    );
    let parked = ingest.handle(&request).await;
    assert_eq!((parked.status, parked.body["status"].as_str()), (202, Some("parked")), "{}", parked.body);
    let kept = store.list(Utc::now()).await.expect("list");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].query.as_deref(), Some("label=Clicked%20Offer"));
    assert_eq!(kept[0].body, b"not json at all {");
    assert!(!format!("{kept:?}").contains(WEBINARJAM_SECRET), "the secret is never stored");

    // A body that can never be read stays parked with the (new) reason; one that can is queued.
    let outcome = ingest.reprocess(&store, &kept[0], Utc::now()).await;
    assert!(
        matches!(&outcome, Reprocessed::StillRefused { reason } if reason.contains("not valid JSON")),
        "{outcome:?}"
    );
    let good = webinarjam_request("registered", None, Some(WEBINARJAM_SECRET), &body);
    let parked = ingest.handle(&good).await;
    let id = parked.body["id"].as_str().expect("an id").to_owned();
    let webhook = store.get(&id, Utc::now()).await.expect("get").expect("parked");
    let fixed = ingest.clone().with_field_aliases(FieldAliases::parse_json(ALIASES).expect("valid aliases"));
    let outcome = fixed.reprocess(&store, &webhook, Utc::now()).await;
    assert!(matches!(&outcome, Reprocessed::Accepted { event_ids } if event_ids.len() == 1), "{outcome:?}");
    assert_eq!(queue.pending(), 1);
    assert_eq!(store.list(Utc::now()).await.expect("list").len(), 1, "only the unreadable one is left");
}

#[test]
fn field_aliases_are_checked_with_one_line_errors() {
    assert!(FieldAliases::parse_json(ALIASES).is_ok());
    assert!(FieldAliases::parse_json(r#"{"Email":"e-mail address","webinar_name":["Kurs"]}"#).is_ok());
    for (raw, expected) in [
        (r#"{"mail":["x"]}"#, "unknown field \"mail\"; known fields: email, first_name"),
        (r#"{"email":[]}"#, "needs 1 to 32 aliases"),
        (r#"{"email":[3]}"#, "must be strings"),
        (r#"{"email":["--"]}"#, "must have a letter or digit"),
        (r#"["email"]"#, "must be a JSON object"),
    ] {
        let error = FieldAliases::parse_json(raw).expect_err(raw);
        assert!(error.contains(expected), "{raw}: {error}");
        assert!(!error.contains('\n'));
    }
}
