//! `contact` and `problems` through the built binary on both backends, with the same cases and
//! the same expected answers (DESIGN 12): `serve` on SQLite (webhooks over HTTP), and the AWS
//! functions on moto (the ingest and consumer handlers wired by `from_config`, so the Lambdas'
//! own history wiring is what records the story; the binary reads it by the Lambdas' variables,
//! and by `--stack` through a CloudFormation stack whose outputs name the moto resources).
//!
//! The cases: a contact registered (applied, with a field problem: the account's `field101` is a
//! number and the webinar name goes to it) and attended; a contact KlickTipp refuses (rejected);
//! an unreadable message (dead letter); a webhook id reused with other content (refused, 409); a
//! Zoom participant without an e-mail whose registration has not arrived (kept, `zoom_unmatched`).
//!
//! Needs `cargo build --workspace` first (the harness says so if the binary is missing).

use aws_lambda_events::event::sqs::SqsEvent;
use chrono::Utc;
use klicktipp_sim::{FieldType, SimConfig, Simulator};
use serde_json::{Value, json};
use std::time::Duration;
use webinar_bridge::adapters::memory::QueueSettings;
use webinar_bridge::adapters::sqlite::{SqliteDb, SqliteQueue};
use webinar_bridge::adapters::sqs::aws_sdk_sqs::types::Message;
use webinar_bridge::domain::Email;
use webinar_bridge::ports::{EventQueue, OutgoingMessage};
use webinar_bridge_consumer::ConsumerFunction;
use webinar_bridge_ingest::IngestFunction;
use webinar_bridge_tests::harness::{
    self, BridgeEnv, GENERIC_SECRET, SIM_PASSWORD, SIM_USERNAME, ServeProcess, WEBINARJAM_SECRET, ZOOM_SECRET,
};
use webinar_bridge_tests::moto::{Moto, MotoQueue, TEMPLATE_MAX_RECEIVE_COUNT};

const EMAIL: &str = "story.person@example.com";
const REFUSED_BY_KLICKTIPP: &str = "refused.person@example.com";
const GENERIC_EMAIL: &str = "generic.person@example.com";
const FIELD_MAP: &str = r#"{"first_name":"fieldFirstName","webinar_name":"field101"}"#;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(45);
const REGISTERED: &str = "[WebinarJam] [Masterclass] Registered";
const ATTENDED: &str = "[WebinarJam] [Masterclass] Attended";

async fn start_simulator() -> Simulator {
    let config = SimConfig::default().with_custom_field("field101", "Webinar Name", FieldType::Number);
    let simulator = klicktipp_sim::start(config, "127.0.0.1:0").await.expect("start the simulator");
    let mut knobs = simulator.knobs();
    knobs.reject_emails = vec![REFUSED_BY_KLICKTIPP.to_owned()];
    simulator.set_knobs(knobs);
    simulator
}

fn masterclass(email: &str) -> String {
    json!({
        "webinar_id": "123", "webinar_name": "Masterclass", "schedule": "45", "date": "2026-02-10 19:00",
        "timezone": "GMT+1", "email": email, "live_room_url": "https://event.webinarjam.com/live/123/45",
    })
    .to_string()
}

fn webinarjam_headers() -> Vec<(String, String)> {
    vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("authorization".to_owned(), format!("Bearer {WEBINARJAM_SECRET}")),
    ]
}

fn generic_registration(webinar: &str) -> String {
    json!({
        "kind": "registered", "occurred_at": "2026-01-10T09:15:00Z",
        "contact": {"email": GENERIC_EMAIL}, "webinar": {"id": webinar},
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// The two deployments

enum Target {
    Serve { serve: ServeProcess, db: SqliteDb },
    Aws(Box<AwsFunctions>),
}

/// The functions on moto.
struct AwsFunctions {
    moto: Moto,
    queue: MotoQueue,
    ingest: IngestFunction,
    consumer: ConsumerFunction,
}

struct Deployment {
    target: Target,
    /// What the binary runs with to read this deployment.
    env: BridgeEnv,
    _dir: tempfile::TempDir,
}

impl Deployment {
    async fn serve(simulator: &Simulator) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_path = dir.path().join("bridge.db");
        let env = BridgeEnv::for_simulator(&simulator.url(), &db_path)
            .set("BRIDGE_FIELD_MAP", FIELD_MAP)
            .set("BRIDGE_KLICKTIPP_RPS", "50");
        let serve = ServeProcess::start(&env, &[]).await;
        let db = harness::open_db(&db_path);
        Self { target: Target::Serve { serve, db }, env, _dir: dir }
    }

    /// The functions wired as on AWS: queue, tables and the secret (the KlickTipp password and
    /// the source secrets) in moto.
    async fn aws(simulator: &Simulator) -> Self {
        let moto = Moto::start().await;
        let settings = QueueSettings { max_receive_count: TEMPLATE_MAX_RECEIVE_COUNT, ..QueueSettings::default() };
        let queue = moto.create_queue(settings).await;
        let events = moto.create_events_table().await;
        let contacts = moto.create_contacts_table().await;
        let history = moto.create_history_table().await;
        let secret = json!({
            "KLICKTIPP_PASSWORD": SIM_PASSWORD,
            "BRIDGE_ZOOM_SECRET_TOKEN": ZOOM_SECRET,
            "BRIDGE_WEBINARJAM_SECRET": WEBINARJAM_SECRET,
            "BRIDGE_GENERIC_SECRET": GENERIC_SECRET,
        });
        let arn = moto.create_secret(&secret.to_string()).await;
        let mut env = BridgeEnv::default()
            .set("BRIDGE_SECRETS_ARN", &arn)
            .set("EVENTS_QUEUE_URL", queue.url())
            .set("DEAD_LETTER_QUEUE_URL", &queue.dlq_url)
            .set("EVENTS_TABLE", &events)
            .set("CONTACTS_TABLE", &contacts)
            .set("HISTORY_TABLE", &history)
            .set("KLICKTIPP_BASE_URL", &simulator.url())
            .set("KLICKTIPP_USERNAME", SIM_USERNAME)
            .set("BRIDGE_FIELD_MAP", FIELD_MAP)
            .set("BRIDGE_KLICKTIPP_RPS", "50");
        for (name, value) in moto.aws_env() {
            env = env.set(name, &value);
        }
        // The functions read their secret at cold start, as on AWS.
        let vars = env.vars().clone().into_iter().collect();
        let vars = webinar_bridge::adapters::aws_secrets::environment_with_secrets(moto.sdk(), vars)
            .await
            .expect("read the secret");
        let config = webinar_bridge::config::BridgeConfig::from_vars(&vars).expect("a valid configuration");
        let ingest = IngestFunction::from_config(moto.sdk(), &config).expect("ingest starts");
        let consumer = ConsumerFunction::from_config(moto.sdk(), &config).expect("consumer starts");
        let dir = tempfile::tempdir().expect("temp dir");
        Self { target: Target::Aws(Box::new(AwsFunctions { moto, queue, ingest, consumer })), env, _dir: dir }
    }

    /// Status and JSON answer of a webhook.
    async fn post(&self, path: &str, headers: &[(String, String)], body: &str) -> (u16, Value) {
        match &self.target {
            Target::Serve { serve, .. } => {
                let mut request = reqwest::Client::new().post(serve.url(path)).body(body.to_owned());
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                let response = request.send().await.expect("serve answers");
                let status = response.status().as_u16();
                (status, response.json().await.expect("a JSON answer"))
            }
            Target::Aws(aws) => {
                let ingest = &aws.ingest;
                let mut request = lambda_http::http::Request::builder().method("POST").uri(path);
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                let request = request.body(lambda_http::Body::from(body.to_owned())).expect("a request");
                let response = ingest.handle(request).await;
                let status = response.status().as_u16();
                (status, serde_json::from_slice(response.body().as_ref()).expect("a JSON answer"))
            }
        }
    }

    async fn accepted(&self, path: &str, headers: &[(String, String)], body: &str) -> String {
        let (status, answer) = self.post(path, headers, body).await;
        assert_eq!(status, 200, "{answer}");
        answer["event_id"].as_str().expect("an event id").to_owned()
    }

    /// A message no consumer can read, in the contact's group.
    async fn send_unreadable(&self, group: &str) {
        let message = OutgoingMessage {
            group_id: group.to_owned(),
            dedup_id: "unreadable-1".to_owned(),
            body: "{not json".into(),
        };
        match &self.target {
            Target::Serve { db, .. } => {
                SqliteQueue::new(db.clone(), QueueSettings::default()).send(&[message]).await.expect("enqueue")
            }
            Target::Aws(aws) => aws.queue.send(&[message]).await.expect("enqueue"),
        }
    }

    /// Runs the consumer until the queue is empty (on AWS: as the event source mapping would,
    /// deleting what the handler did not report failed).
    async fn drain(&self) {
        match &self.target {
            Target::Serve { db, .. } => harness::wait_until_drained(db, DRAIN_TIMEOUT).await,
            Target::Aws(aws) => {
                let AwsFunctions { moto, queue, consumer, .. } = aws.as_ref();
                let started = std::time::Instant::now();
                loop {
                    let messages = queue.receive_raw(10).await;
                    if messages.is_empty() && queue.depth().await.expect("depth") == 0 {
                        return;
                    }
                    assert!(started.elapsed() < DRAIN_TIMEOUT, "the queue did not drain");
                    let response = consumer.handle(sqs_event(&messages), None).await;
                    let failed: Vec<String> =
                        response.batch_item_failures.iter().map(|failure| failure.item_identifier.clone()).collect();
                    assert!(failed.is_empty(), "failed records: {failed:?}");
                    for message in &messages {
                        moto.sqs()
                            .delete_message()
                            .queue_url(queue.url())
                            .receipt_handle(message.receipt_handle().unwrap_or_default())
                            .send()
                            .await
                            .expect("delete a handled message");
                    }
                }
            }
        }
    }

    async fn stop(self) -> (BridgeEnv, Option<Moto>, tempfile::TempDir) {
        match self.target {
            Target::Serve { serve, db } => {
                assert!(serve.terminate().await.success());
                drop(db);
                (self.env, None, self._dir)
            }
            Target::Aws(aws) => (self.env, Some(aws.moto), self._dir),
        }
    }
}

/// A Lambda SQS event from received messages, on the `sqs_record.json` template.
fn sqs_event(messages: &[Message]) -> SqsEvent {
    let template = std::fs::read_to_string(harness::workspace_root().join("tests/fixtures/aws/sqs_record.json"))
        .expect("the SQS record fixture");
    let records: Vec<Value> = messages
        .iter()
        .map(|message| {
            let mut record: Value = serde_json::from_str(&template).expect("JSON");
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

// ---------------------------------------------------------------------------------------------
// The cases, the same on both

/// The event ids the scenario produced.
struct Produced {
    registered: String,
    attended: String,
    refused_by_klicktipp: String,
    reused: String,
}

async fn run_scenario(deployment: &Deployment) -> Produced {
    let path = |kind: &str| format!("/hooks/webinarjam/{kind}");
    let registered = deployment.accepted(&path("registered"), &webinarjam_headers(), &masterclass(EMAIL)).await;
    deployment.drain().await;
    let attended = deployment.accepted(&path("attended"), &webinarjam_headers(), &masterclass(EMAIL)).await;
    let refused_by_klicktipp =
        deployment.accepted(&path("registered"), &webinarjam_headers(), &masterclass(REFUSED_BY_KLICKTIPP)).await;
    let now = Utc::now().timestamp();
    let first = generic_registration("4711");
    let reused = deployment
        .accepted("/hooks/generic/livestorm", &harness::standard_webhook_headers("msg_reused", now, &first), &first)
        .await;
    let other = generic_registration("4712");
    let (status, answer) = deployment
        .post("/hooks/generic/livestorm", &harness::standard_webhook_headers("msg_reused", now, &other), &other)
        .await;
    assert_eq!(status, 409, "a reused id with other content is refused: {answer}");
    deployment.send_unreadable(&Email::parse(EMAIL).expect("valid").group_hash()).await;
    // A Zoom participant without an e-mail whose registration the bridge has not seen: kept.
    let joined = json!({"event": "webinar.participant_joined", "event_ts": Utc::now().timestamp_millis(),
        "payload": {"account_id": "AbCdEf123", "object": {"uuid": "k7Zq9XvRTn2wYb3cQp1Lmg==", "id": "85012345678",
            "host_id": "HoSt_1", "topic": "Demo Webinar", "type": 5, "start_time": "2026-01-15T17:00:00Z",
            "duration": 60, "timezone": "Europe/Berlin",
            "participant": {"user_id": "", "id": "", "user_name": "Someone", "email": "",
                "registrant_id": "reg_waiting", "join_time": "2026-01-15T17:02:00Z"}}}})
    .to_string();
    let (status, answer) =
        deployment.post("/hooks/zoom", &harness::zoom_headers(&joined, Utc::now().timestamp()), &joined).await;
    assert_eq!((status, answer["status"].as_str()), (202, Some("kept")), "{answer}");
    deployment.drain().await;
    Produced { registered, attended, refused_by_klicktipp, reused }
}

fn json_of(run: &harness::Finished) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|error| panic!("{error}: {}\n{}", run.stdout, run.stderr))
}

/// The story's timeline as (event id, kind received, outcomes).
fn timeline(story: &Value) -> Vec<(String, String, Vec<String>)> {
    story["timeline"]
        .as_array()
        .expect("a timeline")
        .iter()
        .map(|item| {
            let outcomes = item["outcomes"]
                .as_array()
                .expect("outcomes")
                .iter()
                .map(|outcome| outcome["outcome"].as_str().expect("outcome").to_owned())
                .collect();
            (
                item["event_id"].as_str().expect("id").to_owned(),
                item["received"]["kind"].as_str().unwrap_or("-").to_owned(),
                outcomes,
            )
        })
        .collect()
}

/// A problem as (kind, event id, field, KlickTipp error number, has a fix).
type ProblemRow = (String, Option<String>, Option<String>, Option<i64>, bool);

fn problem_rows(problems: &Value) -> Vec<ProblemRow> {
    let mut rows: Vec<_> = problems
        .as_array()
        .expect("a problem list")
        .iter()
        .map(|problem| {
            (
                problem["kind"].as_str().expect("kind").to_owned(),
                problem["event_id"].as_str().map(str::to_owned),
                problem["field"].as_str().map(str::to_owned),
                problem["error_number"].as_i64(),
                problem["fix"].as_str().is_some_and(|fix| !fix.is_empty()),
            )
        })
        .collect();
    rows.sort();
    rows
}

async fn check_commands(env: &BridgeEnv, produced: &Produced, extra: &[&str]) {
    let args = |base: &[&str]| -> Vec<String> { base.iter().chain(extra).map(|arg| (*arg).to_owned()).collect() };
    let run = |base: &[&str]| {
        let args = args(base);
        let env = env.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            harness::run_bridge_async(&env, &args).await
        }
    };

    let contact = run(&["contact", EMAIL, "--json"]).await;
    assert_eq!(contact.code, Some(1), "a field problem exits 1: {}\n{}", contact.stdout, contact.stderr);
    let story = json_of(&contact);
    assert_eq!(
        timeline(&story),
        [
            (
                produced.registered.clone(),
                "registered".to_owned(),
                vec!["field_problem".to_owned(), "applied".to_owned()]
            ),
            (produced.attended.clone(), "attended".to_owned(), vec!["applied".to_owned()]),
        ],
        "{story}"
    );
    assert_eq!(story["implied_tags"], json!([ATTENDED, REGISTERED]));
    assert_eq!(story["klicktipp_checked"], true, "KlickTipp asked with the deployment's credentials");
    assert_eq!(story["differences"], json!([]));
    let problems: Vec<(String, Option<String>)> = story["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|problem| {
            (problem["kind"].as_str().expect("kind").to_owned(), problem["field"].as_str().map(str::to_owned))
        })
        .collect();
    assert_eq!(problems, [("field_problem".to_owned(), Some("field101".to_owned()))]);

    let refused = json_of(&run(&["contact", REFUSED_BY_KLICKTIPP, "--json", "--offline"]).await);
    assert_eq!(
        timeline(&refused),
        [(produced.refused_by_klicktipp.clone(), "registered".to_owned(), vec!["rejected".to_owned()])]
    );

    let problems = run(&["problems", "--json"]).await;
    assert_eq!(problems.code, Some(1), "{}\n{}", problems.stdout, problems.stderr);
    let mut expected = vec![
        ("dead_letter".to_owned(), None, None, None, true),
        ("field_problem".to_owned(), Some(produced.registered.clone()), Some("field101".to_owned()), Some(8), true),
        ("refused_webhook".to_owned(), Some(produced.reused.clone()), None, None, true),
        ("rejected".to_owned(), Some(produced.refused_by_klicktipp.clone()), None, Some(5), true),
        ("zoom_unmatched".to_owned(), None, None, None, true),
    ];
    expected.sort();
    assert_eq!(problem_rows(&json_of(&problems)), expected, "{}", problems.stdout);
    let text = run(&["problems"]).await;
    assert!(text.stdout.starts_with("5 problem(s):"), "{}", text.stdout);
    assert!(
        text.stdout.contains("registrant reg_waiting") && text.stdout.contains("the reconcile pull"),
        "the kept Zoom events with their fix: {}",
        text.stdout
    );
    assert!(!text.stdout.contains(EMAIL) && !text.stderr.contains(EMAIL), "problems never show an address");

    // Dead letters stay listed until they are redriven, whatever the time filter.
    let future = run(&["problems", "--json", "--since", "2999-01-01T00:00:00Z"]).await;
    assert_eq!(future.code, Some(1));
    assert_eq!(problem_rows(&json_of(&future)), [("dead_letter".to_owned(), None, None, None, true)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_and_problems_on_serves_sqlite() {
    let simulator = start_simulator().await;
    let deployment = Deployment::serve(&simulator).await;
    let produced = run_scenario(&deployment).await;
    let (env, _, _dir) = deployment.stop().await;
    check_commands(&env, &produced, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_and_problems_on_aws_by_the_functions_variables_and_by_stack() {
    let simulator = start_simulator().await;
    let deployment = Deployment::aws(&simulator).await;
    let produced = run_scenario(&deployment).await;
    let (env, moto, _dir) = deployment.stop().await;
    let moto = moto.expect("moto");
    check_commands(&env, &produced, &[]).await;

    // `--stack`: only the AWS credentials and region in the environment; the stack's outputs
    // name the resources and the secret, its parameters give the settings.
    let vars = env.vars().clone();
    let outputs = [
        ("EventsTableName", "EVENTS_TABLE"),
        ("ContactsTableName", "CONTACTS_TABLE"),
        ("HistoryTableName", "HISTORY_TABLE"),
        ("EventsQueueUrl", "EVENTS_QUEUE_URL"),
        ("DeadLetterQueueUrl", "DEAD_LETTER_QUEUE_URL"),
        ("SecretArn", "BRIDGE_SECRETS_ARN"),
    ];
    let template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {
            "KlickTippBaseUrl": {"Type": "String", "Default": vars["KLICKTIPP_BASE_URL"]},
            "FieldMap": {"Type": "String", "Default": FIELD_MAP},
        },
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "stack-marker"}}},
        "Outputs": outputs
            .iter()
            .map(|(output, variable)| ((*output).to_owned(), json!({"Value": vars[*variable]})))
            .collect::<serde_json::Map<String, Value>>(),
    });
    let cloudformation = aws_sdk_cloudformation::Client::new(moto.sdk());
    cloudformation
        .create_stack()
        .stack_name("bridge-test")
        .template_body(template.to_string())
        .send()
        .await
        .expect("create the stack in moto");
    // The username lives in the secret on AWS too; everything else comes from the stack.
    let secret_with_username = json!({
        "KLICKTIPP_USERNAME": SIM_USERNAME, "KLICKTIPP_PASSWORD": SIM_PASSWORD,
        "BRIDGE_WEBINARJAM_SECRET": WEBINARJAM_SECRET,
    });
    moto.secrets_manager()
        .put_secret_value()
        .secret_id(&vars["BRIDGE_SECRETS_ARN"])
        .secret_string(secret_with_username.to_string())
        .send()
        .await
        .expect("update the secret");
    let mut stack_env = BridgeEnv::default();
    for (name, value) in moto.aws_env() {
        stack_env = stack_env.set(name, &value);
    }
    check_commands(&stack_env, &produced, &["--stack", "bridge-test"]).await;

    let missing = harness::run_bridge_async(&stack_env, &["problems", "--stack", "no-such-stack"]).await;
    assert_eq!(missing.code, Some(2), "{}", missing.stderr);
    assert!(missing.stderr.starts_with("--stack no-such-stack: "), "{}", missing.stderr);
    assert_eq!(missing.stderr.lines().count(), 1, "{}", missing.stderr);
}
