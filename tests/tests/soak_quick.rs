//! The chaos soak at CI size, on SQLite and on SQS + DynamoDB (moto): nothing lost, every
//! contact equal to the oracle, no duplicate effect, and every fault class actually fired, so the
//! soak cannot pass quietly without chaos.
//!
//! The bridge's whole trace (JSON, down to `trace` for the bridge's own targets) is captured in
//! memory and must hold no contact's address and no secret (issue 8's logging guarantee).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};
use webinar_bridge_tests::harness::SIM_PASSWORD;
use webinar_bridge_tests::soak::{self, BackendKind, SoakConfig, SoakReport, Workload};

const SEED: u64 = 8;
/// Everything the bridge says, and what its libraries say at info; the simulator is test
/// equipment, not the bridge.
const CAPTURE_FILTER: &str = "info,webinar_bridge=trace,klicktipp_sim=warn";

/// The process-wide trace, as JSON lines.
#[derive(Clone, Default)]
struct CapturedTrace(Arc<Mutex<Vec<u8>>>);

impl CapturedTrace {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl Write for CapturedTrace {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedTrace {
    type Writer = CapturedTrace;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs the subscriber once for this test binary: the JSON capture plus the soak's
/// client-fault counter.
fn captured_trace() -> &'static CapturedTrace {
    static TRACE: OnceLock<CapturedTrace> = OnceLock::new();
    TRACE.get_or_init(|| {
        let trace = CapturedTrace::default();
        let json = tracing_subscriber::fmt::layer()
            .json()
            .with_writer(trace.clone())
            .with_filter(EnvFilter::new(CAPTURE_FILTER));
        tracing_subscriber::registry().with(json).with(soak::client_fault_layer()).init();
        trace
    })
}

async fn quick_soak(backend: BackendKind) -> (SoakConfig, SoakReport) {
    let trace = captured_trace();
    let config = SoakConfig::quick(SEED, backend);
    let report = soak::run(&config).await.expect("the soak runs");
    eprintln!("{}\n{}", serde_json::to_string_pretty(&report).expect("the report serializes"), report.summary());

    assert_eq!(report.lost, 0, "accepted events without exactly one outcome");
    assert_eq!(report.mismatched_contacts, 0, "contacts that differ from the oracle");
    assert_eq!(report.duplicate_effects, 0, "{:?}", report.details.duplicate_effect_details);
    assert_eq!(report.details.convergence.unexpected_rejections, 0, "transient faults taken for permanent ones");
    assert!(!report.details.timed_out, "the queue did not drain in time");
    assert_eq!(report.details.ground_truth_differences, 0, "ingest and the generator disagree");
    assert!(report.accepted > 0 && report.rejected > 0, "refused addresses must produce rejected events");
    assert_eq!(report.dead_lettered, 0, "events in the dead letters");
    assert_eq!(report.details.dead_letter_messages, 0, "messages in the dead letters");
    assert!(report.details.outcomes.applied > 0, "nothing was applied");
    for kind in [
        "EverWebinar registered",
        "Generic registered",
        "Generic cancelled",
        "Zoom cancelled",
        "WebinarJam attended",
        "Zoom attended",
    ] {
        assert!(
            report.details.requests_by_kind.contains_key(kind),
            "the workload sent no {kind}: {:?}",
            report.details.requests_by_kind
        );
    }
    if config.reregistrations {
        assert!(report.details.reregistrations > 0, "no contact registered again after cancelling");
    }
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    let missing = report.faults_injected.missing();
    assert!(missing.is_empty(), "fault classes that never fired: {missing:?}");

    assert_no_contact_data_or_secrets(&trace.text(), &config);
    (config, report)
}

fn assert_no_contact_data_or_secrets(trace: &str, config: &SoakConfig) {
    assert!(trace.contains("KlickTipp refused or failed"), "the capture holds the bridge's trace");
    assert!(!trace.contains("@example."), "a raw e-mail address reached the logs");
    let workload = Workload::for_config(config);
    for email in &workload.emails {
        assert!(!trace.contains(email.as_str()), "a contact's address reached the logs");
    }
    for secret in workload.secret_texts.iter().map(String::as_str).chain([SIM_PASSWORD]) {
        assert!(!trace.contains(secret), "a secret reached the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_soak_on_sqlite_converges_under_chaos() {
    quick_soak(BackendKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_soak_on_sqs_and_dynamodb_converges_under_chaos() {
    quick_soak(BackendKind::Aws).await;
}

/// `--drop-webhooks 0.2 --reconcile` at CI size on SQLite: a fifth of the webhooks never
/// arrive, every session is reconciled from the platform simulator while it answers 5xx, holds
/// answers past the client's timeout and expires the Zoom token; nothing is lost and every
/// contact equals the oracle of the full truth (Zoom no-shows included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_soak_with_dropped_webhooks_reconciles_to_the_full_truth() {
    let trace = captured_trace();
    let config = SoakConfig::quick_reconcile(SEED, BackendKind::Sqlite);
    let report = soak::run(&config).await.expect("the soak runs");
    eprintln!("{}\n{}", serde_json::to_string_pretty(&report).expect("the report serializes"), report.summary());

    assert!(report.details.dropped_webhooks > 0, "no webhook was dropped");
    let reconcile = report.details.reconcile.as_ref().expect("reconciliation ran");
    assert!(reconcile.sessions_pulled >= 3, "{reconcile:?}");
    assert_eq!(reconcile.sessions_left, 0, "{reconcile:?}");
    assert_eq!(report.lost, 0, "accepted events without exactly one outcome");
    assert_eq!(report.mismatched_contacts, 0, "contacts that differ from the oracle");
    assert_eq!(report.details.ground_truth_differences, 0, "webhooks and reconciliation differ from the full truth");
    assert_eq!(report.duplicate_effects, 0, "{:?}", report.details.duplicate_effect_details);
    assert_eq!(report.dead_lettered, 0, "events in the dead letters");
    assert!(!report.details.timed_out, "the queue did not drain in time");
    assert!(
        reconcile.missing_faults().is_empty(),
        "platform faults that never fired: {:?}",
        reconcile.missing_faults()
    );
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    assert_no_contact_data_or_secrets(&trace.text(), &config);
}
