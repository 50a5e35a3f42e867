//! `soak.json` and the human summary.

use super::effects::{DuplicateEffects, RedundantCalls};
use super::verify::{Convergence, OutcomeCounts};
use serde::Serialize;

/// Faults that actually happened during the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaultsInjected {
    pub http_500: u64,
    pub http_502: u64,
    pub http_429: u64,
    /// Of `http_429`, those answered with `Retry-After`.
    pub http_429_retry_after: u64,
    pub timeouts: u64,
    pub session_expiries: u64,
    /// 406 `{"error":12}`.
    pub error_12: u64,
    /// 200 `{"error":12}`.
    pub error_in_200: u64,
    pub crashes_before_save: u64,
    pub crashes_before_complete: u64,
}

impl FaultsInjected {
    /// Fault classes that never fired (the quick test requires none).
    pub fn missing(&self) -> Vec<&'static str> {
        let without_retry_after = self.http_429.saturating_sub(self.http_429_retry_after);
        [
            ("http_500", self.http_500),
            ("http_502", self.http_502),
            ("http_429 without Retry-After", without_retry_after),
            ("http_429 with Retry-After", self.http_429_retry_after),
            ("timeouts", self.timeouts),
            ("session_expiries", self.session_expiries),
            ("error_12", self.error_12),
            ("error_in_200", self.error_in_200),
            ("crashes_before_save", self.crashes_before_save),
            ("crashes_before_complete", self.crashes_before_complete),
        ]
        .into_iter()
        .filter(|(_, count)| *count == 0)
        .map(|(name, _)| name)
        .collect()
    }
}

/// The printed result. The first keys are the agreed `soak.json` shape; `details` explains them.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// Requests delivered (the generated log, duplicates included).
    pub events: usize,
    /// Distinct event ids ingest accepted.
    pub accepted: usize,
    /// Accepted ids with no final outcome, or with two.
    pub lost: usize,
    pub mismatched_contacts: usize,
    pub duplicate_effects: usize,
    pub redundant_calls: usize,
    pub dead_lettered: usize,
    pub rejected: usize,
    pub faults_injected: FaultsInjected,
    pub klicktipp_calls: usize,
    pub wall_seconds: f64,
    pub backend: String,
    pub details: Details,
}

#[derive(Debug, Clone, Serialize)]
pub struct Details {
    pub seed: u64,
    pub consumers: usize,
    pub ingest_tasks: usize,
    pub rps: f64,
    pub lease_ms: u64,
    pub visibility_timeout_ms: u64,
    pub max_receive_count: u32,
    pub accepted_deliveries: usize,
    pub ignored_requests: usize,
    pub refused_requests: usize,
    pub contacts: usize,
    pub refused_addresses: usize,
    pub outcomes: OutcomeCounts,
    /// Messages the dead-letter store holds (may exceed the ids read from it on AWS).
    pub dead_letter_messages: usize,
    /// Requests delivered per source route and kind (`/hooks/zoom registration_cancelled`, ...):
    /// every source and kind the workload promises really was sent.
    pub requests_by_kind: std::collections::BTreeMap<String, usize>,
    /// Contacts who registered again after cancelling.
    pub reregistrations: usize,
    pub refused_fields: bool,
    pub genesis_reregistration: bool,
    pub duplicate_deliveries_seen_by_consumers: usize,
    pub redelivered_or_retried: usize,
    pub abandoned_by_crashes: usize,
    pub batches: usize,
    pub batches_over_lease: usize,
    pub slowest_batch_ms: u64,
    pub queue_errors: usize,
    pub calls_per_second: f64,
    pub calls_by_endpoint: std::collections::BTreeMap<String, u64>,
    /// Calls refused with 403 because their session had expired (several per expiry when
    /// calls run concurrently on one session).
    pub refused_for_dead_session: usize,
    /// Contacts whose oracle tags (over the accepted documents) differ from the generator's
    /// ground truth: an ingest or oracle problem, not a consumer one.
    pub ground_truth_differences: usize,
    pub duplicate_effect_details: DuplicateEffects,
    /// Tag names whose `POST /tag` was answered 200 twice; explained by 200s carrying error 12
    /// unless `duplicate_effect_details` lists the name too.
    pub tag_creations_answered_200_twice: usize,
    pub redundant_call_details: RedundantCalls,
    pub convergence: Convergence,
    /// The drain hit the time limit with messages left.
    pub timed_out: bool,
    /// `--drop-webhooks`: requests dropped before delivery.
    pub dropped_webhooks: usize,
    /// `--reconcile`: what reconciliation against the platform simulator did and met.
    pub reconcile: Option<super::platform::ReconcileFigures>,
}

impl SoakReport {
    /// True when nothing was lost, nothing diverged, nothing happened twice, nothing was
    /// rejected that KlickTipp would have taken, nothing went to the dead letters, and something
    /// was applied at all.
    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    /// Every reason the run failed, each a sentence; empty when it passed.
    pub fn failures(&self) -> Vec<String> {
        let convergence = &self.details.convergence;
        [
            (self.lost > 0, format!("{} accepted events have no final outcome, or two", self.lost)),
            (self.mismatched_contacts > 0, format!("{} contacts differ from the oracle", self.mismatched_contacts)),
            (self.duplicate_effects > 0, format!("{} effects happened twice", self.duplicate_effects)),
            (
                convergence.unexpected_rejections > 0,
                format!("{} events were rejected that KlickTipp would have taken", convergence.unexpected_rejections),
            ),
            (self.dead_lettered > 0, format!("{} events ended in the dead letters", self.dead_lettered)),
            (
                self.details.dead_letter_messages > 0,
                format!("{} messages ended in the dead letters", self.details.dead_letter_messages),
            ),
            (self.details.outcomes.applied == 0, "nothing was applied".to_owned()),
            (self.details.timed_out, "the queue did not drain in time".to_owned()),
        ]
        .into_iter()
        .filter_map(|(failed, reason)| failed.then_some(reason))
        .chain(self.reconcile_failures())
        .collect()
    }

    /// With `--reconcile`: the accepted events (delivered webhooks and pulled records) must
    /// describe the full truth, every session must be reconciled, and every platform fault
    /// class must have fired.
    fn reconcile_failures(&self) -> Vec<String> {
        let Some(reconcile) = &self.details.reconcile else { return Vec::new() };
        let mut failures = Vec::new();
        if self.details.ground_truth_differences > 0 {
            failures.push(format!(
                "{} contacts: webhooks and reconciliation together differ from the full truth",
                self.details.ground_truth_differences
            ));
        }
        if reconcile.sessions_left > 0 {
            failures.push(format!("{} sessions were still failing after the last pass", reconcile.sessions_left));
        }
        if reconcile.sessions_pulled == 0 {
            failures.push("no session was reconciled".to_owned());
        }
        for fault in reconcile.missing_faults() {
            failures.push(format!("the {fault} fault never fired"));
        }
        failures
    }

    pub fn summary(&self) -> String {
        let faults = &self.faults_injected;
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        let mut lines = vec![
            format!(
                "soak {verdict}: {} requests, {} events accepted, backend {}, {:.1} s, {} KlickTipp calls ({:.0}/s)",
                self.events,
                self.accepted,
                self.backend,
                self.wall_seconds,
                self.klicktipp_calls,
                self.details.calls_per_second
            ),
            format!(
                "  outcomes: {} applied, {} rejected, {} dead-lettered, {} lost; {} of {} contacts differ from the oracle",
                self.details.outcomes.applied,
                self.rejected,
                self.dead_lettered,
                self.lost,
                self.mismatched_contacts,
                self.details.convergence.contacts_checked
            ),
            format!(
                "  effects: {} duplicate, {} redundant (tag {}, untag {})",
                self.duplicate_effects,
                self.redundant_calls,
                self.details.redundant_call_details.tag,
                self.details.redundant_call_details.untag
            ),
            format!(
                "  faults: 500x{} 502x{} 429x{} ({} with Retry-After) timeouts x{} session expiries x{} error12 x{} (+{} in 200) crashes {}+{}",
                faults.http_500,
                faults.http_502,
                faults.http_429,
                faults.http_429_retry_after,
                faults.timeouts,
                faults.session_expiries,
                faults.error_12,
                faults.error_in_200,
                faults.crashes_before_save,
                faults.crashes_before_complete
            ),
            format!(
                "  fleet: {} consumers, {} batches, slowest {} ms, {} over the {} ms lease, {} queue errors",
                self.details.consumers,
                self.details.batches,
                self.details.slowest_batch_ms,
                self.details.batches_over_lease,
                self.details.lease_ms,
                self.details.queue_errors
            ),
        ];
        lines.push(format!(
            "  workload: {} (refused fields {}, WebinarJam/EverWebinar re-registration {})",
            self.details
                .requests_by_kind
                .iter()
                .map(|(kind, count)| format!("{kind} x{count}"))
                .collect::<Vec<_>>()
                .join(", "),
            if self.details.refused_fields { "on" } else { "off" },
            if self.details.genesis_reregistration { "on" } else { "off" },
        ));
        if let Some(reconcile) = &self.details.reconcile {
            lines.push(format!(
                "  reconcile: {} webhooks dropped; {} sessions pulled in {} passes ({} failed attempts), {} events enqueued; platform {} calls, 5xx x{}, timeouts x{}, 429 x{}, Zoom tokens {} ({} expired), {:.1} s",
                self.details.dropped_webhooks,
                reconcile.sessions_pulled,
                reconcile.passes,
                reconcile.failed_attempts,
                reconcile.events_enqueued,
                reconcile.platform_calls,
                reconcile.platform_5xx,
                reconcile.platform_timeouts,
                reconcile.platform_429,
                reconcile.zoom_tokens_issued,
                reconcile.zoom_tokens_expired,
                reconcile.seconds
            ));
        }
        for failure in self.failures() {
            lines.push(format!("  FAILED: {failure}"));
        }
        if self.details.ground_truth_differences > 0 {
            lines.push(format!(
                "  {} contacts: the oracle over the accepted documents differs from the generator's ground truth",
                self.details.ground_truth_differences
            ));
        }
        if self.details.convergence.unexpected_rejections > 0 {
            lines.push(format!(
                "  {} events rejected without a refused address behind them",
                self.details.convergence.unexpected_rejections
            ));
        }
        if self.details.timed_out {
            lines.push("  the drain hit the time limit: messages were left in the queue".to_owned());
        }
        for mismatch in &self.details.convergence.examples {
            lines.push(format!("  mismatch {}: {}", mismatch.contact, mismatch.note));
        }
        lines.join("\n")
    }
}
