//! Checks on `template.yaml` that cfn-lint, the serverless rules and `sam validate --lint` do not
//! make: service limits they do not model (FIFO batch size, MaximumConcurrency >= 2), the
//! relations between resources that the rate cap and exactly-once delivery depend on, the
//! DynamoDB contract with the adapters, least privilege and where secrets may appear.
//!
//! The template is read as plain YAML: CloudFormation's short-form tags (`!Ref`, `!GetAtt`, `!If`,
//! `!Sub`) arrive as tagged values and are resolved here only as far as each check needs.
//! Numbers that come from parameters are checked at the parameters' MinValue, Default and
//! MaxValue, so a check holds for every value `sam deploy --guided` accepts.

use serde_yaml::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use webinar_bridge::adapters::aws_secrets::{SECRET_KEYS, SECRETS_ARN_VARIABLE};
use webinar_bridge::adapters::dynamodb::{
    CONTACTS_PARTITION_KEY, EVENTS_PARTITION_KEY, EVENTS_TTL_ATTRIBUTE, REFUSED_INDEX, REFUSED_INDEX_KEY,
    REFUSED_INDEX_SORT,
};
use webinar_bridge::adapters::dynamodb_history::{
    HISTORY_PARTITION_KEY, HISTORY_SORT_KEY, HISTORY_TTL_ATTRIBUTE, PROBLEMS_INDEX, PROBLEMS_INDEX_KEY,
};
use webinar_bridge::consume::{MAX_RECEIVE_COUNT, ride_out};
use webinar_bridge_tests::moto::TEMPLATE_MAX_RECEIVE_COUNT;

const SERVERLESS_FUNCTION: &str = "AWS::Serverless::Function";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the workspace").to_path_buf()
}

struct Template {
    root: Value,
}

impl Template {
    fn load() -> Self {
        // TEMPLATE_UNDER_TEST lets a mutated copy be checked (to see that a check can fail).
        let path =
            std::env::var_os("TEMPLATE_UNDER_TEST").map_or_else(|| repo_root().join("template.yaml"), PathBuf::from);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let root = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("template.yaml is not YAML: {e}"));
        Self { root }
    }

    fn section(&self, name: &str) -> &Mapping {
        self.root.get(name).and_then(Value::as_mapping).unwrap_or_else(|| panic!("template has no {name} section"))
    }

    fn resources(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.section("Resources").iter().map(|(k, v)| (k.as_str().expect("logical ids are strings"), v))
    }

    fn resource(&self, id: &str) -> &Value {
        self.section("Resources").get(id).unwrap_or_else(|| panic!("no resource {id}"))
    }

    fn resource_type(&self, id: &str) -> &str {
        self.resource(id).get("Type").and_then(Value::as_str).unwrap_or_else(|| panic!("{id} has no Type"))
    }

    fn props(&self, id: &str) -> &Value {
        self.resource(id).get("Properties").unwrap_or_else(|| panic!("{id} has no Properties"))
    }

    fn parameter(&self, name: &str) -> &Value {
        self.section("Parameters").get(name).unwrap_or_else(|| panic!("no parameter {name}"))
    }

    /// The logical id of the SAM function that builds `binary`.
    fn function(&self, binary: &str) -> &str {
        let found: Vec<&str> = self
            .resources()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(SERVERLESS_FUNCTION))
            .filter(|(_, r)| {
                r.get("Metadata")
                    .and_then(|m| m.get("BuildProperties"))
                    .and_then(|b| b.get("Binary"))
                    .and_then(Value::as_str)
                    == Some(binary)
            })
            .map(|(id, _)| id)
            .collect();
        assert_eq!(found.len(), 1, "exactly one function must build the `{binary}` binary, found {found:?}");
        found[0]
    }

    /// A function property, falling back to `Globals.Function` as SAM does.
    fn function_prop(&self, id: &str, key: &str) -> Option<&Value> {
        self.props(id).get(key).or_else(|| self.globals().and_then(|g| g.get(key)))
    }

    fn globals(&self) -> Option<&Value> {
        self.root.get("Globals").and_then(|g| g.get("Function"))
    }

    /// The function's environment: Globals merged with its own variables (its own win), as SAM merges maps.
    fn environment(&self, id: &str) -> BTreeMap<String, Value> {
        let mut merged = BTreeMap::new();
        for source in [self.globals(), Some(self.props(id))].into_iter().flatten() {
            if let Some(vars) = source.get("Environment").and_then(|e| e.get("Variables")).and_then(Value::as_mapping) {
                for (k, v) in vars {
                    merged.insert(k.as_str().expect("variable names are strings").to_owned(), v.clone());
                }
            }
        }
        merged
    }

    /// The queue a function's SQS event source consumes, with that event's properties.
    fn sqs_event(&self, id: &str) -> &Value {
        let events = self.props(id).get("Events").and_then(Value::as_mapping).expect("consumer has Events");
        let sqs: Vec<&Value> = events
            .values()
            .filter(|e| e.get("Type").and_then(Value::as_str) == Some("SQS"))
            .map(|e| e.get("Properties").expect("SQS event has Properties"))
            .collect();
        assert_eq!(sqs.len(), 1, "the consumer must have exactly one SQS event source");
        sqs[0]
    }

    /// Evaluates a number (literal or `!Ref` to a Number parameter) under a parameter scenario.
    fn number(&self, value: &Value, scenario: Scenario) -> f64 {
        if let Some(name) = ref_target(value) {
            let parameter = self.parameter(name);
            let pick = |key: &str| {
                parameter.get(key).map(|v| as_f64(v).unwrap_or_else(|| panic!("{name}.{key} is not a number")))
            };
            let default = pick("Default").unwrap_or_else(|| panic!("parameter {name} needs a Default"));
            return match scenario {
                Scenario::Min => pick("MinValue").unwrap_or_else(|| panic!("parameter {name} needs a MinValue")),
                Scenario::Default => default,
                Scenario::Max => pick("MaxValue").unwrap_or_else(|| panic!("parameter {name} needs a MaxValue")),
            };
        }
        as_f64(value).unwrap_or_else(|| panic!("expected a number or a !Ref to a parameter, got {value:?}"))
    }
}

#[derive(Debug, Clone, Copy)]
enum Scenario {
    Min,
    Default,
    Max,
}

const SCENARIOS: [Scenario; 3] = [Scenario::Min, Scenario::Default, Scenario::Max];

fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `!Ref X` or `{Ref: X}`.
fn ref_target(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(t) if t.tag == "Ref" => t.value.as_str(),
        Value::Mapping(m) if m.len() == 1 => m.get("Ref").and_then(Value::as_str),
        _ => None,
    }
}

/// `!GetAtt X.Attr`, `!GetAtt [X, Attr]` or `{Fn::GetAtt: [X, Attr]}`.
fn get_att(value: &Value) -> Option<(String, String)> {
    let inner = match value {
        Value::Tagged(t) if t.tag == "GetAtt" => &t.value,
        Value::Mapping(m) if m.len() == 1 => m.get("Fn::GetAtt")?,
        _ => return None,
    };
    match inner {
        Value::String(s) => s.split_once('.').map(|(a, b)| (a.to_owned(), b.to_owned())),
        Value::Sequence(seq) if seq.len() == 2 => Some((seq[0].as_str()?.to_owned(), seq[1].as_str()?.to_owned())),
        _ => None,
    }
}

fn get_att_of(value: &Value, resource: &str, attribute: &str) -> bool {
    get_att(value).is_some_and(|(r, a)| r == resource && a == attribute)
}

/// Every resource and parameter name an expression refers to (`Ref`, `GetAtt`, `${...}` in `Sub`).
fn references(value: &Value, out: &mut BTreeSet<String>) {
    if let Some(target) = ref_target(value) {
        out.insert(target.to_owned());
    }
    if let Some((resource, _)) = get_att(value) {
        out.insert(resource);
    }
    match value {
        Value::Tagged(t) => {
            if t.tag == "Sub" {
                let text = match &t.value {
                    Value::String(s) => Some(s.as_str()),
                    Value::Sequence(seq) => seq.first().and_then(Value::as_str),
                    _ => None,
                };
                for piece in text.unwrap_or_default().split("${").skip(1) {
                    let name = piece.split('}').next().unwrap_or_default();
                    out.insert(name.split('.').next().unwrap_or_default().to_owned());
                }
            }
            references(&t.value, out);
        }
        Value::Sequence(seq) => seq.iter().for_each(|v| references(v, out)),
        Value::Mapping(m) => m.values().for_each(|v| references(v, out)),
        _ => {}
    }
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(seq) => seq.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

fn is_true(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Bool(true))) || value.and_then(Value::as_str) == Some("true")
}

fn key_schema(t: &Template, table: &str) -> Vec<(String, String)> {
    let props = t.props(table);
    let types: BTreeMap<&str, &str> = props
        .get("AttributeDefinitions")
        .and_then(Value::as_sequence)
        .expect("AttributeDefinitions")
        .iter()
        .map(|d| (d["AttributeName"].as_str().unwrap(), d["AttributeType"].as_str().unwrap()))
        .collect();
    props
        .get("KeySchema")
        .and_then(Value::as_sequence)
        .expect("KeySchema")
        .iter()
        .map(|k| {
            let name = k["AttributeName"].as_str().unwrap();
            let kind = k["KeyType"].as_str().unwrap();
            (format!("{name}:{kind}"), types.get(name).copied().unwrap_or("undefined").to_owned())
        })
        .collect()
}

/// The logical ids of the event queue and its dead-letter queue, found through the wiring
/// (the consumer's event source, then its RedrivePolicy), not through names.
fn queues(t: &Template) -> (String, String) {
    let consumer = t.function("consumer");
    let (queue, attribute) =
        get_att(&t.sqs_event(consumer)["Queue"]).expect("the SQS event's Queue is !GetAtt <queue>.Arn");
    assert_eq!(attribute, "Arn");
    let redrive = t
        .props(&queue)
        .get("RedrivePolicy")
        .unwrap_or_else(|| panic!("{queue} has no RedrivePolicy: failed events would be lost"));
    let (dlq, attribute) = get_att(&redrive["deadLetterTargetArn"]).expect("deadLetterTargetArn is !GetAtt <dlq>.Arn");
    assert_eq!(attribute, "Arn");
    (queue, dlq)
}

#[test]
fn functions_are_rust_on_arm64_built_from_the_workspace_crate_that_defines_the_binary() {
    let t = Template::load();
    for binary in ["ingest", "consumer"] {
        let id = t.function(binary);
        assert_eq!(t.function_prop(id, "Runtime").and_then(Value::as_str), Some("provided.al2023"), "{id}");
        assert_eq!(t.function_prop(id, "Handler").and_then(Value::as_str), Some("bootstrap"), "{id}");
        let arch = t.function_prop(id, "Architectures").map(strings).unwrap_or_default();
        assert_eq!(arch, ["arm64"], "{id}");
        let build = t.resource(id)["Metadata"]["BuildMethod"].as_str();
        assert_eq!(build, Some("rust-cargolambda"), "{id}");
        let memory = t.number(t.function_prop(id, "MemorySize").expect("MemorySize"), Scenario::Default);
        assert!(memory >= 256.0, "{id}: below 256 MB the TLS handshakes dominate the cold start (anchors D)");

        // CodeUri must be the crate whose manifest declares the binary: that is where SAM runs
        // `cargo lambda build --bin <Binary>` and where it looks the binary name up.
        let code_uri = t.props(id)["CodeUri"].as_str().expect("CodeUri is a path");
        let manifest = repo_root().join(code_uri).join("Cargo.toml");
        let manifest =
            std::fs::read_to_string(&manifest).unwrap_or_else(|e| panic!("{id}: {}: {e}", manifest.display()));
        assert!(
            manifest.contains(&format!("name = \"{binary}\"")),
            "{id}: {code_uri}/Cargo.toml declares no [[bin]] `{binary}`"
        );
    }
}

#[test]
fn events_queue_and_its_dead_letter_queue_are_fifo_with_explicit_deduplication() {
    let t = Template::load();
    let (queue, dlq) = queues(&t);
    for id in [&queue, &dlq] {
        assert_eq!(t.resource_type(id), "AWS::SQS::Queue");
        let props = t.props(id);
        assert!(is_true(props.get("FifoQueue")), "{id} must be FIFO (a FIFO queue's DLQ must be FIFO too)");
        assert!(is_true(props.get("SqsManagedSseEnabled")), "{id} must be encrypted at rest");
        // The producer sets MessageDeduplicationId = event id; content-based dedup would treat a
        // retried webhook with a new timestamp as a new event.
        assert!(!is_true(props.get("ContentBasedDeduplication")), "{id}: ContentBasedDeduplication must be off");
        if let Some(name) = props.get("QueueName") {
            let mut text = String::new();
            if let Value::Tagged(tagged) = name {
                text = tagged.value.as_str().unwrap_or_default().to_owned();
            } else if let Some(s) = name.as_str() {
                text = s.to_owned();
            }
            assert!(text.ends_with(".fifo"), "{id}: a FIFO queue name must end in .fifo, got {text:?}");
        }
    }
    // The queue the functions are told about is the queue the consumer reads.
    for binary in ["ingest", "consumer"] {
        let id = t.function(binary);
        assert_eq!(ref_target(&t.environment(id)["EVENTS_QUEUE_URL"]), Some(queue.as_str()), "{id}: EVENTS_QUEUE_URL");
    }
}

#[test]
fn failed_events_reach_the_dead_letter_queue_after_at_least_five_receives() {
    let t = Template::load();
    let (queue, dlq) = queues(&t);
    assert_ne!(queue, dlq);
    let receives = t.number(&t.props(&queue)["RedrivePolicy"]["maxReceiveCount"], Scenario::Default);
    assert!(
        receives >= 5.0,
        "maxReceiveCount {receives}: fewer than 5 receives parks events on a short KlickTipp hiccup"
    );
    assert_eq!(receives, f64::from(TEMPLATE_MAX_RECEIVE_COUNT), "tests/src/moto.rs TEMPLATE_MAX_RECEIVE_COUNT");
    assert_eq!(TEMPLATE_MAX_RECEIVE_COUNT, MAX_RECEIVE_COUNT, "consume::MAX_RECEIVE_COUNT (serve's queue)");
    // Throttling or a KlickTipp outage of three hours must not push anything into the DLQ.
    let ride_out = ride_out(TEMPLATE_MAX_RECEIVE_COUNT);
    assert!(ride_out >= Duration::from_secs(4 * 3600), "maxReceiveCount {receives} rides out only {ride_out:?}");
    let consumer_env = t.environment(t.function("consumer"));
    assert_eq!(
        ref_target(&consumer_env["DEAD_LETTER_QUEUE_URL"]),
        Some(dlq.as_str()),
        "consumer: DEAD_LETTER_QUEUE_URL"
    );
    let main_retention = t.number(&t.props(&queue)["MessageRetentionPeriod"], Scenario::Default);
    let dlq_retention = t.number(&t.props(&dlq)["MessageRetentionPeriod"], Scenario::Default);
    // A standard queue's message keeps its original enqueue time in the DLQ (a FIFO one may not);
    // a DLQ retention at least as long as the queue's is safe either way and never drops an event
    // that was already old when it failed.
    assert!(dlq_retention >= main_retention, "the DLQ must keep messages at least as long as the queue");
}

#[test]
fn consumer_event_source_respects_fifo_limits_and_the_rate_cap() {
    let t = Template::load();
    let consumer = t.function("consumer");
    let event = t.sqs_event(consumer);
    let reserved =
        t.props(consumer).get("ReservedConcurrentExecutions").expect("the consumer needs ReservedConcurrentExecutions");
    let maximum = &event["ScalingConfig"]["MaximumConcurrency"];
    assert!(!maximum.is_null(), "ScalingConfig.MaximumConcurrency is the rate limiter and must be set");
    for scenario in SCENARIOS {
        let batch = t.number(&event["BatchSize"], scenario);
        assert!((1.0..=10.0).contains(&batch), "{scenario:?}: BatchSize {batch} (a FIFO source takes at most 10)");
        let max = t.number(maximum, scenario);
        assert!(max >= 2.0, "{scenario:?}: MaximumConcurrency {max} (the API's minimum is 2)");
        let reserved = t.number(reserved, scenario);
        assert!(
            max <= reserved,
            "{scenario:?}: MaximumConcurrency {max} > ReservedConcurrentExecutions {reserved}: throttled batches burn receive attempts"
        );
    }
    assert!(
        strings(&event["FunctionResponseTypes"]).iter().any(|s| s == "ReportBatchItemFailures"),
        "without ReportBatchItemFailures the failure list is ignored and failed events are deleted"
    );
    assert!(
        event.get("MaximumBatchingWindowInSeconds").is_none(),
        "FIFO event sources do not support a batching window"
    );
}

#[test]
fn consumer_token_bucket_divides_by_the_same_parameter_as_maximum_concurrency() {
    let t = Template::load();
    let consumer = t.function("consumer");
    let maximum = &t.sqs_event(consumer)["ScalingConfig"]["MaximumConcurrency"];
    let env = t.environment(consumer);
    let variable = env.get("BRIDGE_CONSUMER_CONCURRENCY").expect("the consumer needs BRIDGE_CONSUMER_CONCURRENCY");
    match (ref_target(maximum), ref_target(variable)) {
        (Some(a), Some(b)) => {
            assert_eq!(a, b, "MaximumConcurrency and BRIDGE_CONSUMER_CONCURRENCY must be the same parameter")
        }
        _ => assert_eq!(
            as_f64(maximum),
            as_f64(variable),
            "MaximumConcurrency and BRIDGE_CONSUMER_CONCURRENCY must agree"
        ),
    }
    assert!(env.contains_key("BRIDGE_KLICKTIPP_RPS"), "the consumer needs the account-wide rate");
}

#[test]
fn visibility_timeout_covers_six_consumer_timeouts() {
    let t = Template::load();
    let (queue, _) = queues(&t);
    let consumer = t.function("consumer");
    let timeout = t.number(t.function_prop(consumer, "Timeout").expect("consumer Timeout"), Scenario::Default);
    let visibility = t.number(&t.props(&queue)["VisibilityTimeout"], Scenario::Default);
    assert!(visibility >= 6.0 * timeout, "VisibilityTimeout {visibility} s < 6 x consumer Timeout {timeout} s");
}

#[test]
fn dynamodb_tables_match_the_adapter_contract() {
    let t = Template::load();
    let env = t.environment(t.function("consumer"));
    let events = ref_target(&env["EVENTS_TABLE"]).expect("EVENTS_TABLE is !Ref <table>").to_owned();
    let contacts = ref_target(&env["CONTACTS_TABLE"]).expect("CONTACTS_TABLE is !Ref <table>").to_owned();
    assert_ne!(events, contacts);
    for table in [&events, &contacts] {
        assert_eq!(t.resource_type(table), "AWS::DynamoDB::Table");
        let props = t.props(table);
        assert_eq!(props["BillingMode"].as_str(), Some("PAY_PER_REQUEST"), "{table}");
        assert!(is_true(props["PointInTimeRecoverySpecification"].get("PointInTimeRecoveryEnabled")), "{table}: PITR");
        assert!(
            props.get("DeletionProtectionEnabled").is_some(),
            "{table}: DeletionProtectionEnabled (behind a parameter)"
        );
    }
    assert_eq!(key_schema(&t, &events), [(format!("{EVENTS_PARTITION_KEY}:HASH"), "S".to_owned())]);
    assert_eq!(key_schema(&t, &contacts), [(format!("{CONTACTS_PARTITION_KEY}:HASH"), "S".to_owned())]);
    let ttl = &t.props(&events)["TimeToLiveSpecification"];
    assert_eq!(ttl["AttributeName"].as_str(), Some(EVENTS_TTL_ATTRIBUTE));
    assert!(is_true(ttl.get("Enabled")), "TTL must be enabled, or idempotency records pile up forever");
    // Refused webhooks: a sparse index over receipts with a refused reuse.
    let refused = &t.props(&events)["GlobalSecondaryIndexes"][0];
    assert_eq!(refused["IndexName"].as_str(), Some(REFUSED_INDEX));
    assert_eq!(refused["KeySchema"][0]["AttributeName"].as_str(), Some(REFUSED_INDEX_KEY));
    assert_eq!(refused["KeySchema"][1]["AttributeName"].as_str(), Some(REFUSED_INDEX_SORT));

    // Contact histories: their own table, keyed by contact hash and time, a sparse problems
    // index, and the retention as TTL.
    let history = ref_target(&env["HISTORY_TABLE"]).expect("HISTORY_TABLE is !Ref <table>").to_owned();
    assert_eq!(t.resource_type(&history), "AWS::DynamoDB::Table");
    let props = t.props(&history);
    assert_eq!(props["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    assert_eq!(
        key_schema(&t, &history),
        [
            (format!("{HISTORY_PARTITION_KEY}:HASH"), "S".to_owned()),
            (format!("{HISTORY_SORT_KEY}:RANGE"), "S".to_owned())
        ]
    );
    assert_eq!(props["TimeToLiveSpecification"]["AttributeName"].as_str(), Some(HISTORY_TTL_ATTRIBUTE));
    assert!(is_true(props["TimeToLiveSpecification"].get("Enabled")), "history expires with the retention");
    let problems = &props["GlobalSecondaryIndexes"][0];
    assert_eq!(problems["IndexName"].as_str(), Some(PROBLEMS_INDEX));
    assert_eq!(problems["KeySchema"][0]["AttributeName"].as_str(), Some(PROBLEMS_INDEX_KEY));
    assert_eq!(problems["KeySchema"][1]["AttributeName"].as_str(), Some(HISTORY_SORT_KEY));
}

#[test]
fn every_function_gets_the_whole_configuration_pointing_at_this_stack() {
    let t = Template::load();
    let (queue, _) = queues(&t);
    let consumer_env = t.environment(t.function("consumer"));
    let events_table = ref_target(&consumer_env["EVENTS_TABLE"]).unwrap().to_owned();
    let contacts_table = ref_target(&consumer_env["CONTACTS_TABLE"]).unwrap().to_owned();
    let expected_refs = [
        ("EVENTS_QUEUE_URL", queue.as_str()),
        ("EVENTS_TABLE", "EventsTable"),
        ("CONTACTS_TABLE", "ContactsTable"),
        ("HISTORY_TABLE", "HistoryTable"),
    ];
    assert_eq!((events_table.as_str(), contacts_table.as_str()), ("EventsTable", "ContactsTable"));
    for binary in ["ingest", "consumer"] {
        let id = t.function(binary);
        let env = t.environment(id);
        for variable in [
            "EVENTS_QUEUE_URL",
            "EVENTS_TABLE",
            "CONTACTS_TABLE",
            "BRIDGE_KLICKTIPP_RPS",
            "BRIDGE_CONSUMER_CONCURRENCY",
            "BRIDGE_TAG_TEMPLATE",
            "BRIDGE_FIELD_MAP",
            "BRIDGE_FULL_ATTENDANCE_PERCENT",
            "BRIDGE_EVENT_RETENTION_DAYS",
            "KLICKTIPP_BASE_URL",
            "KLICKTIPP_LISTID",
            SECRETS_ARN_VARIABLE,
        ] {
            assert!(env.contains_key(variable), "{id} lacks {variable}");
        }
        for (variable, resource) in expected_refs {
            assert_eq!(ref_target(&env[variable]), Some(resource), "{id}: {variable} must be !Ref {resource}");
        }
        let mut secret_refs = BTreeSet::new();
        references(&env[SECRETS_ARN_VARIABLE], &mut secret_refs);
        assert!(
            secret_refs.iter().any(|r| t
                .section("Resources")
                .get(r.as_str())
                .is_some_and(|res| res["Type"] == "AWS::SecretsManager::Secret")),
            "{id}: {SECRETS_ARN_VARIABLE} must reference the stack's secret, got {secret_refs:?}"
        );
    }
}

/// Allowed statements of the role a function runs with: (actions, resource expressions).
fn role_statements(t: &Template, function: &str) -> Vec<(Vec<String>, Vec<Value>)> {
    assert!(
        t.props(function).get("Policies").is_none(),
        "{function}: SAM Policies would add AWSLambdaBasicExecutionRole (logs on *)"
    );
    let (role, attribute) =
        get_att(&t.props(function)["Role"]).expect("each function runs with its own role (!GetAtt <role>.Arn)");
    assert_eq!(attribute, "Arn");
    assert_eq!(t.resource_type(&role), "AWS::IAM::Role");
    let role_props = t.props(&role);
    assert!(role_props.get("ManagedPolicyArns").is_none(), "{role}: managed policies are not least privilege");
    let mut out = Vec::new();
    for policy in role_props["Policies"].as_sequence().expect("inline Policies") {
        for statement in policy["PolicyDocument"]["Statement"].as_sequence().expect("Statement list") {
            assert_eq!(statement["Effect"].as_str(), Some("Allow"));
            let resources = match &statement["Resource"] {
                Value::Sequence(seq) => seq.clone(),
                other => vec![other.clone()],
            };
            out.push((strings(&statement["Action"]), resources));
        }
    }
    out
}

#[test]
fn iam_statements_name_their_actions_and_resources() {
    let t = Template::load();
    // Every policy document anywhere in the template, including SAM inline policies if any appear.
    fn walk(value: &Value, path: &str, out: &mut Vec<String>) {
        match value {
            Value::Mapping(m) => {
                if let Some(statements) = m.get("Statement").and_then(Value::as_sequence) {
                    for s in statements {
                        assert!(
                            s.get("NotAction").is_none() && s.get("NotResource").is_none(),
                            "{path}: NotAction/NotResource"
                        );
                        for action in strings(&s["Action"]) {
                            assert!(!action.contains('*'), "{path}: wildcard action {action}");
                            out.push(action);
                        }
                        let listing = strings(&s["Action"]).iter().all(|a| {
                            let verb = a.split(':').nth(1).unwrap_or_default();
                            verb.starts_with("List") || verb.starts_with("Describe")
                        });
                        let resources = match &s["Resource"] {
                            Value::Sequence(seq) => seq.clone(),
                            other => vec![other.clone()],
                        };
                        for resource in resources {
                            if resource.as_str().is_some_and(|r| r.trim() == "*") && s["Effect"] == "Allow" {
                                assert!(listing, "{path}: Resource \"*\" for non-list actions");
                            }
                        }
                    }
                }
                for (k, v) in m {
                    walk(v, &format!("{path}.{}", k.as_str().unwrap_or("?")), out);
                }
            }
            Value::Sequence(seq) => seq.iter().for_each(|v| walk(v, path, out)),
            Value::Tagged(tagged) => walk(&tagged.value, path, out),
            _ => {}
        }
    }
    let mut actions = Vec::new();
    walk(&t.root, "template", &mut actions);
    assert!(!actions.is_empty(), "found no IAM statements at all");

    let (queue, _) = queues(&t);
    let secret_of = |resources: &[Value]| -> bool {
        resources.iter().all(|r| {
            let mut refs = BTreeSet::new();
            references(r, &mut refs);
            refs.contains("BridgeSecret") && refs.contains("ExistingSecretArn")
        })
    };
    let grants = |function: &str| -> BTreeMap<String, Vec<Value>> {
        let mut map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (acts, resources) in role_statements(&t, function) {
            for action in acts {
                map.entry(action).or_default().extend(resources.iter().cloned());
            }
        }
        map
    };

    let ingest = t.function("ingest");
    let ingest_log =
        ref_target(&t.props(ingest)["LoggingConfig"]["LogGroup"]).expect("LoggingConfig.LogGroup").to_owned();
    let granted = grants(ingest);
    let expected: BTreeSet<&str> = [
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sqs:SendMessage",
        "secretsmanager:GetSecretValue",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        // Taking the Zoom participant events kept for a registrant id (`zoom#unmatched#...`).
        "dynamodb:DeleteItem",
    ]
    .into();
    assert_eq!(
        granted.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        expected,
        "ingest may only log, enqueue, record receipts and the Zoom ledger, and read its secret"
    );
    for action in ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"] {
        assert!(
            granted[action].iter().all(|r| get_att_of(r, "EventsTable", "Arn")),
            "ingest touches only the events table ({action})"
        );
    }
    assert!(
        granted["dynamodb:PutItem"]
            .iter()
            .all(|r| get_att_of(r, "EventsTable", "Arn") || get_att_of(r, "HistoryTable", "Arn")),
        "ingest puts only receipts, Zoom ledger items and history steps"
    );
    assert!(
        granted["sqs:SendMessage"].iter().all(|r| get_att_of(r, &queue, "Arn")),
        "ingest sends only to the events queue"
    );
    assert!(
        granted["logs:PutLogEvents"].iter().all(|r| get_att_of(r, &ingest_log, "Arn")),
        "ingest writes only its own log group"
    );
    assert!(secret_of(&granted["secretsmanager:GetSecretValue"]), "ingest reads only the bridge secret");

    let consumer = t.function("consumer");
    let consumer_log =
        ref_target(&t.props(consumer)["LoggingConfig"]["LogGroup"]).expect("LoggingConfig.LogGroup").to_owned();
    let granted = grants(consumer);
    let expected: BTreeSet<&str> = [
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
        "secretsmanager:GetSecretValue",
    ]
    .into();
    assert_eq!(granted.keys().map(String::as_str).collect::<BTreeSet<_>>(), expected);
    for action in ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"] {
        assert!(granted[action].iter().all(|r| get_att_of(r, &queue, "Arn")), "{action} only on the events queue");
    }
    let (_, dlq) = queues(&t);
    assert!(
        granted["sqs:SendMessage"].iter().all(|r| get_att_of(r, &dlq, "Arn")),
        "the consumer sends only to the dead-letter queue (unreadable messages)"
    );
    for action in [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
    ] {
        assert!(
            granted[action].iter().all(|r| get_att_of(r, "EventsTable", "Arn")
                || get_att_of(r, "ContactsTable", "Arn")
                || (action == "dynamodb:PutItem" && get_att_of(r, "HistoryTable", "Arn"))),
            "{action} only on the events and contacts tables (PutItem also on the history table)"
        );
    }
    assert!(
        granted["logs:PutLogEvents"].iter().all(|r| get_att_of(r, &consumer_log, "Arn")),
        "consumer writes only its own log group"
    );
    assert!(secret_of(&granted["secretsmanager:GetSecretValue"]), "consumer reads only the bridge secret");
}

#[test]
fn every_log_group_has_retention_and_every_function_logs_json_to_its_own() {
    let t = Template::load();
    let mut groups = Vec::new();
    for binary in ["ingest", "consumer"] {
        let id = t.function(binary);
        let logging = &t.props(id)["LoggingConfig"];
        assert_eq!(logging["LogFormat"].as_str(), Some("JSON"), "{id}");
        let group = ref_target(&logging["LogGroup"])
            .unwrap_or_else(|| panic!("{id}: LoggingConfig.LogGroup is !Ref <log group>"));
        groups.push(group.to_owned());
    }
    assert_ne!(groups[0], groups[1], "each function has its own log group");
    let api_logs = t
        .resources()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::HttpApi")
        .map(|(id, r)| {
            get_att(&r["Properties"]["AccessLogSettings"]["DestinationArn"])
                .unwrap_or_else(|| panic!("{id}: access logs"))
                .0
        })
        .collect::<Vec<_>>();
    assert_eq!(api_logs.len(), 1, "one HTTP API with access logs");
    groups.extend(api_logs);
    for group in &groups {
        assert_eq!(t.resource_type(group), "AWS::Logs::LogGroup");
    }
    for (id, resource) in t.resources().filter(|(_, r)| r["Type"] == "AWS::Logs::LogGroup") {
        assert!(
            resource["Properties"].get("RetentionInDays").is_some(),
            "{id}: logs without retention are kept (and billed) forever"
        );
    }
}

#[test]
fn ingest_routes_cover_the_design_contract() {
    let t = Template::load();
    let ingest = t.function("ingest");
    let routes: BTreeSet<(String, String)> = t.props(ingest)["Events"]
        .as_mapping()
        .expect("ingest Events")
        .values()
        .filter(|e| e["Type"] == "HttpApi")
        .filter_map(|e| {
            Some((e["Properties"]["Method"].as_str()?.to_uppercase(), e["Properties"]["Path"].as_str()?.to_owned()))
        })
        .collect();
    for (method, path) in [
        ("POST", "/hooks/webinarjam/{kind}"),
        ("POST", "/hooks/everwebinar/{kind}"),
        ("POST", "/hooks/zoom"),
        ("POST", "/hooks/generic/{tool}"),
        ("GET", "/health"),
    ] {
        assert!(routes.contains(&(method.to_owned(), path.to_owned())), "missing route {method} {path}");
    }
    let stage = &t.props("WebhookApi")["DefaultRouteSettings"];
    assert!(
        stage.get("ThrottlingRateLimit").is_some() && stage.get("ThrottlingBurstLimit").is_some(),
        "stage throttling"
    );
}

fn named_like_a_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "secret",
        "password",
        "token",
        "apikey",
        "api_key",
        "credential",
        "customerkey",
        "developerkey",
        "customer_key",
        "developer_key",
    ]
    .iter()
    .any(|word| lower.contains(word))
}

#[test]
fn secrets_never_appear_in_parameters_outputs_or_function_configuration() {
    let t = Template::load();
    let text = serde_yaml::to_string(&t.root).unwrap();
    // A dynamic reference would copy the secret's value into the function configuration,
    // readable by anyone with lambda:GetFunctionConfiguration.
    assert!(
        !text.contains("{{resolve:secretsmanager") && !text.contains("{{resolve:ssm-secure"),
        "no dynamic secret references"
    );

    for (name, parameter) in t.section("Parameters") {
        let name = name.as_str().unwrap();
        // An ARN names a secret, it is not one.
        if named_like_a_secret(name) && !name.ends_with("Arn") {
            assert!(
                is_true(parameter.get("NoEcho")),
                "parameter {name} looks like a secret: keep it in Secrets Manager"
            );
        }
    }
    let no_echo: BTreeSet<String> = t
        .section("Parameters")
        .iter()
        .filter(|(_, p)| is_true(p.get("NoEcho")))
        .map(|(n, _)| n.as_str().unwrap().to_owned())
        .collect();
    for (name, output) in t.section("Outputs") {
        let name = name.as_str().unwrap();
        let mut refs = BTreeSet::new();
        references(&output["Value"], &mut refs);
        assert!(refs.is_disjoint(&no_echo), "output {name} echoes a NoEcho parameter");
        for r in &refs {
            if t.section("Resources").get(r.as_str()).is_some_and(|res| res["Type"] == "AWS::SecretsManager::Secret") {
                // Ref of a secret is its ARN; GetAtt could only ever add more.
                assert!(get_att(&output["Value"]).is_none(), "output {name} must give the secret's ARN only");
                assert!(name.ends_with("Arn"), "output {name} carries a secret reference: name it ...Arn");
            }
        }
    }
    for binary in ["ingest", "consumer"] {
        let id = t.function(binary);
        for variable in t.environment(id).keys() {
            assert!(
                !SECRET_KEYS.contains(&variable.as_str()),
                "{id}: {variable} belongs in the secret, not the environment"
            );
        }
    }

    // The placeholder the stack creates has exactly the keys the functions read, all empty.
    let placeholder = t
        .resources()
        .find(|(_, r)| r["Type"] == "AWS::SecretsManager::Secret")
        .map(|(_, r)| r["Properties"]["SecretString"].as_str().expect("SecretString is literal JSON").to_owned())
        .expect("the stack can create the secret");
    let placeholder: BTreeMap<String, String> =
        serde_json::from_str(&placeholder).expect("SecretString is a JSON object of strings");
    assert_eq!(
        placeholder.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        SECRET_KEYS.into_iter().collect::<BTreeSet<_>>()
    );
    assert!(placeholder.values().all(String::is_empty), "the template never carries a secret value");
}

#[test]
fn parameters_are_described_and_constrained() {
    let t = Template::load();
    for (name, parameter) in t.section("Parameters") {
        let name = name.as_str().unwrap();
        assert!(
            parameter.get("Description").and_then(Value::as_str).is_some_and(|d| !d.is_empty()),
            "{name}: Description"
        );
        let constrained = match parameter["Type"].as_str() {
            Some("Number") => {
                parameter.get("AllowedValues").is_some()
                    || (parameter.get("MinValue").is_some() && parameter.get("MaxValue").is_some())
            }
            _ => parameter.get("AllowedValues").is_some() || parameter.get("AllowedPattern").is_some(),
        };
        assert!(constrained, "{name}: needs AllowedValues, AllowedPattern or MinValue+MaxValue");
    }
    for name in [
        "KlickTippListId",
        "KlickTippBaseUrl",
        "FieldMap",
        "TagTemplate",
        "KlickTippRps",
        "ConsumerConcurrency",
        "EventRetentionDays",
        "FullAttendancePercent",
        "AlarmEmail",
        "DeletionProtection",
        "ExistingSecretArn",
        "ApiThrottleBurst",
        "ApiThrottleRate",
        "LogRetentionDays",
        "WebinarSettings",
        "TagsAhead",
    ] {
        t.parameter(name);
    }
}

#[test]
fn put_secrets_script_writes_exactly_the_keys_the_functions_read() {
    let script = std::fs::read_to_string(repo_root().join("infra/put-secrets.sh")).expect("infra/put-secrets.sh");
    let keys: BTreeSet<&str> = script
        .lines()
        .filter(|line| line.starts_with("KEYS=\""))
        .flat_map(|line| line.trim_start_matches("KEYS=\"").trim_end_matches('"').split_whitespace())
        .filter(|word| *word != "$KEYS")
        .collect();
    assert_eq!(keys, SECRET_KEYS.into_iter().collect::<BTreeSet<_>>());
}

#[test]
fn reconcile_runs_alone_on_a_schedule_with_a_least_privilege_role_and_an_alarm() {
    let t = Template::load();
    let function = t.function("reconcile");
    let props = t.props(function);
    // One process owns each platform key's rate budget.
    assert_eq!(as_f64(&props["ReservedConcurrentExecutions"]), Some(1.0), "{function}: reserved concurrency 1");
    assert_eq!(as_f64(&props["EventInvokeConfig"]["MaximumRetryAttempts"]), Some(0.0));

    // An EventBridge Scheduler schedule invokes exactly this function, through a role that may do
    // nothing else.
    let schedules: Vec<&str> = t
        .resources()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Scheduler::Schedule"))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(schedules.len(), 1, "one reconcile schedule, found {schedules:?}");
    let schedule = t.props(schedules[0]);
    assert_eq!(ref_target(&schedule["ScheduleExpression"]), Some("ReconcileScheduleExpression"));
    assert_eq!(t.parameter("ReconcileScheduleExpression")["Default"].as_str(), Some("rate(15 minutes)"));
    assert!(get_att_of(&schedule["Target"]["Arn"], function, "Arn"), "the schedule targets {function}");
    let (scheduler_role, _) = get_att(&schedule["Target"]["RoleArn"]).expect("the schedule has its own role");
    let scheduler_props = t.props(&scheduler_role);
    let trust = &scheduler_props["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(trust["Principal"]["Service"].as_str(), Some("scheduler.amazonaws.com"));
    let statements = scheduler_props["Policies"][0]["PolicyDocument"]["Statement"].as_sequence().unwrap();
    assert_eq!(statements.len(), 1);
    assert_eq!(strings(&statements[0]["Action"]), ["lambda:InvokeFunction"]);
    assert!(get_att_of(&statements[0]["Resource"], function, "Arn"));

    // The function's own role: logs, enqueue, `reconciled#` items, tags ahead, the secret; nothing else.
    let statements = role_statements(&t, function);
    let actions: BTreeSet<String> = statements.iter().flat_map(|(actions, _)| actions.clone()).collect();
    let expected: BTreeSet<String> = [
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sqs:SendMessage",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "secretsmanager:GetSecretValue",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(actions, expected);
    let (role, _) = get_att(&props["Role"]).unwrap();
    for statement in t.props(&role)["Policies"][0]["PolicyDocument"]["Statement"].as_sequence().unwrap() {
        if strings(&statement["Action"]).iter().any(|action| action.starts_with("dynamodb:"))
            && get_att_of(&statement["Resource"], "ContactsTable", "Arn")
        {
            // Tags ahead for listed webinars: the tag directory and seen marks, the settings read only.
            let leading = strings(&statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]);
            let directory = [
                format!("{}*", webinar_bridge::adapters::dynamodb::TAG_KEY_PREFIX),
                format!("{}*", webinar_bridge::adapters::dynamodb::SEEN_KEY_PREFIX),
            ];
            let settings = [webinar_bridge::adapters::dynamodb::WEBINAR_SETTINGS_KEY.to_owned()];
            assert!(leading == directory || leading == settings, "{leading:?}");
            if leading == settings {
                assert_eq!(strings(&statement["Action"]), ["dynamodb:GetItem"]);
            }
            continue;
        }
        if strings(&statement["Action"]).iter().any(|action| action.starts_with("dynamodb:")) {
            assert!(get_att_of(&statement["Resource"], "EventsTable", "Arn"));
            let leading = strings(&statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]);
            // Its done rounds, and (read only) the Zoom occurrences ingest recorded as ended.
            let reconciled = [format!("{}*", webinar_bridge::adapters::dynamodb::RECONCILED_KEY_PREFIX)];
            let ended = [format!("{}ended#*", webinar_bridge::adapters::dynamodb::ZOOM_KEY_PREFIX)];
            assert!(leading == reconciled || leading == ended, "{leading:?}");
            if leading == ended {
                assert_eq!(strings(&statement["Action"]), ["dynamodb:GetItem"]);
            }
        }
        if strings(&statement["Action"]) == ["sqs:SendMessage"] {
            assert!(get_att_of(&statement["Resource"], "EventsQueue", "Arn"), "it enqueues like ingest");
        }
    }

    // A failing run reaches the alarm topic.
    let alarm = t
        .resources()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .map(|(id, _)| t.props(id))
        .find(|p| {
            p["MetricName"].as_str() == Some("Errors") && ref_target(&p["Dimensions"][0]["Value"]) == Some(function)
        })
        .expect("an Errors alarm on the reconcile function");
    assert_eq!(ref_target(&alarm["AlarmActions"][0]), Some("AlarmTopic"));
    assert!(as_f64(&alarm["Threshold"]).is_some_and(|threshold| threshold <= 1.0));
    assert!(as_f64(&alarm["Period"]).is_some_and(|period| period <= 3600.0));
}
