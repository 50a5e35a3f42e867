//! What one soak run does: workload size, storage backend, consumer fleet, timings and chaos.

use std::str::FromStr;
use std::time::Duration;

/// Where queue, event log, contacts and tag directory live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// One SQLite file in a scratch directory; every consumer opens its own connection.
    Sqlite,
    /// SQS FIFO + DynamoDB in a private moto server (`tests/src/moto.rs`).
    Aws,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Aws => "aws",
        }
    }
}

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "sqlite" => Ok(BackendKind::Sqlite),
            "aws" => Ok(BackendKind::Aws),
            other => Err(format!("unknown backend {other:?}; use sqlite or aws")),
        }
    }
}

/// The faults injected, as rates per KlickTipp call (simulator) or per contact apply (crashes).
#[derive(Debug, Clone)]
pub struct ChaosSettings {
    pub rate_500: f64,
    pub rate_502_html: f64,
    /// The simulator applies the call, then holds the answer for `simulator_delay`, longer than
    /// the client's `client_timeout`: an ambiguous timeout.
    pub rate_timeout: f64,
    pub simulator_delay: Duration,
    pub client_timeout: Duration,
    pub rate_error12: f64,
    pub rate_error_in_200: f64,
    /// A session dies after this many authenticated calls.
    pub session_expiry_calls: u32,
    /// The simulator's own cap while the account is not squeezed, as a share of the bridge's
    /// total rate: above it the bridge's calls meet 429s.
    pub steady_limit_share: f64,
    /// The simulator's cap during a squeeze, so 429s happen even when the bridge is idle-ish.
    pub squeeze_limit: u32,
    /// One chaos phase: steady for this long, then squeezed for `squeeze`; `Retry-After` is sent
    /// on every other pair of phases.
    pub steady: Duration,
    pub squeeze: Duration,
    /// Contacts whose address KlickTipp refuses for good (406 error 5).
    pub rejected_contacts: usize,
    /// Chance per contact apply of a crash after the KlickTipp calls, before the record is saved.
    pub crash_before_save: f64,
    /// Chance per contact apply of a crash after the save, before the events are completed.
    pub crash_before_complete: f64,
}

impl Default for ChaosSettings {
    fn default() -> Self {
        Self {
            rate_500: 0.025,
            rate_502_html: 0.025,
            rate_timeout: 0.025,
            simulator_delay: Duration::from_millis(600),
            client_timeout: Duration::from_millis(250),
            rate_error12: 0.025,
            rate_error_in_200: 0.02,
            session_expiry_calls: 40,
            steady_limit_share: 0.85,
            squeeze_limit: 3,
            steady: Duration::from_millis(2000),
            squeeze: Duration::from_millis(400),
            rejected_contacts: 3,
            crash_before_save: 0.03,
            crash_before_complete: 0.03,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Requests in the generated webinar log (duplicates included).
    pub events: usize,
    pub seed: u64,
    pub backend: BackendKind,
    /// Consumer instances sharing the storage, each with its own client, resolver and rate share.
    pub consumers: usize,
    /// Concurrent ingest tasks delivering the log.
    pub ingest_tasks: usize,
    /// Requests per second the senders deliver at, together: webhooks trickle in, so a
    /// contact's events meet the consumers in separate batches (more plans, more untags).
    /// `None` delivers as fast as ingest takes them.
    pub delivery_rate: Option<f64>,
    /// `BRIDGE_KLICKTIPP_RPS`: the fleet's total rate; each consumer gets `rps / consumers`.
    pub rps: f64,
    /// Claim lease and queue visibility timeout: short, so crashed work comes back quickly.
    pub lease: Duration,
    pub visibility_timeout: Duration,
    /// High enough that transient faults never dead-letter; any dead letter is reported.
    pub max_receive_count: u32,
    /// The embedded queue's deduplication window. Shorter than SQS's five minutes, so later
    /// duplicates get past the queue and meet the event log, as a platform's retry hours later
    /// would. (SQS's window is fixed, so the AWS backend always uses five minutes.)
    pub queue_dedup_window: Duration,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    pub client_max_attempts: u32,
    pub client_backoff_base: Duration,
    /// Give up (and report what is left as lost) after this long.
    pub time_limit: Duration,
    pub chaos: ChaosSettings,
    /// KlickTipp refuses a mapped data field of every contact (the webinar name mapped to a
    /// number field): the contact and all its tags must still be applied, the field left out
    /// (DESIGN 6).
    pub refused_fields: bool,
    /// WebinarJam and EverWebinar registrants also cancel and register again for the same
    /// session. Off in the standard soak: their webhooks carry no event time, so the bridge orders
    /// them by arrival, and the soak's chaos delivers some late (a cancellation after the
    /// re-registration), which the platform itself never does. The e2e suites cover the case.
    pub genesis_reregistration: bool,
    /// Zoom and generic registrants who cancelled register again. On in every soak. (It was off
    /// on moto for a while: a crash after the cancellation's untag, with the re-registration
    /// merged into the redelivered batch, left the contact without any tag; fixed in
    /// `consume.rs`, regression test `soak_findings::a_crash_after_an_untag_...`.)
    pub reregistrations: bool,
    /// `--drop-webhooks P`: each generated request is dropped before delivery with this
    /// probability (seeded), as a platform that never retries loses them.
    pub drop_webhooks: f64,
    /// `--reconcile`: after delivery, every session is reconciled from the platform simulator
    /// (with its faults), and the run is judged against the full truth (`soak::platform`).
    pub reconcile: bool,
}

impl SoakConfig {
    /// The full soak: `events` requests, all chaos on.
    pub fn full(events: usize, seed: u64, backend: BackendKind) -> Self {
        // The lease must outlast the slowest batch, or a redelivery could run beside it; batches
        // on moto take longer, and its visibility timeout only takes whole seconds.
        let (lease, visibility_timeout) = match backend {
            BackendKind::Sqlite => (Duration::from_secs(3), Duration::from_secs(4)),
            BackendKind::Aws => (Duration::from_secs(6), Duration::from_secs(8)),
        };
        Self {
            events,
            seed,
            backend,
            consumers: 4,
            ingest_tasks: 4,
            delivery_rate: Some(150.0),
            rps: 200.0,
            lease,
            visibility_timeout,
            max_receive_count: 100,
            queue_dedup_window: Duration::from_millis(100),
            retry_base: Duration::from_millis(100),
            retry_cap: Duration::from_secs(1),
            client_max_attempts: 4,
            client_backoff_base: Duration::from_millis(20),
            time_limit: Duration::from_secs(30 * 60),
            chaos: ChaosSettings::default(),
            refused_fields: true,
            genesis_reregistration: false,
            reregistrations: true,
            drop_webhooks: 0.0,
            reconcile: false,
        }
    }

    /// The CI size of `--drop-webhooks 0.2 --reconcile`: a fifth of the webhooks lost, every
    /// session reconciled from the platform simulator under its faults.
    pub fn quick_reconcile(seed: u64, backend: BackendKind) -> Self {
        let quick = Self::quick(seed, backend);
        Self {
            events: match backend {
                BackendKind::Sqlite => 800,
                BackendKind::Aws => 300,
            },
            drop_webhooks: 0.2,
            reconcile: true,
            reregistrations: false,
            ..quick
        }
    }

    /// The CI size: every fault class still fires, in well under a minute. Moto is slower
    /// than SQLite, so the AWS run gets a smaller log.
    pub fn quick(seed: u64, backend: BackendKind) -> Self {
        let (events, delivery_rate) = match backend {
            BackendKind::Sqlite => (1_500, 150.0),
            BackendKind::Aws => (400, 30.0),
        };
        // The bound on the drain, not its expected length (about 60 s on moto on a quiet 2-core
        // machine). Moto answers one request at a time, so on a loaded machine its drain took
        // over 120 s (load average 20), with every contact converged all the same.
        let time_limit = match backend {
            BackendKind::Sqlite => Duration::from_secs(120),
            BackendKind::Aws => Duration::from_secs(240),
        };
        Self { consumers: 3, delivery_rate: Some(delivery_rate), time_limit, ..Self::full(events, seed, backend) }
    }

    /// Each consumer's share of the rate cap.
    pub fn rps_per_consumer(&self) -> f64 {
        self.rps / self.consumers.max(1) as f64
    }
}
