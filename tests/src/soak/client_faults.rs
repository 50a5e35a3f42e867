//! Faults only the client can tell apart, counted from the bridge's own trace.
//!
//! The simulator's request log shows what it answered, but a timeout (the answer came too late
//! for the client) and error 12 (a 406 or a 200 whose body is `{"error":12}`) look like ordinary
//! answers there. The KlickTipp client emits one debug event per failed HTTP exchange
//! ("KlickTipp refused or failed", with `status`, `error_number` and `elapsed_ms`); this layer
//! counts those for the soak run in progress. Without the layer installed these counts stay
//! zero, which the quick test's "every fault class fired" check turns into a failure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{Filtered, Targets};
use tracing_subscriber::layer::Context;

/// The client's event for one failed exchange (see `klicktipp/client.rs`, `send`).
const FAILED_EXCHANGE: &str = "KlickTipp refused or failed";
const CLIENT_TARGET: &str = "webinar_bridge::klicktipp";
const ERROR_12: i64 = 12;

/// Counts of one run.
#[derive(Debug, Default)]
pub struct ClientFaults {
    /// No answer within the client's timeout.
    pub timeouts: AtomicU64,
    /// 406 `{"error":12}`.
    pub error_12: AtomicU64,
    /// 200 `{"error":12}`.
    pub error_in_200: AtomicU64,
    /// The client's timeout, to tell a timeout from another transport failure.
    client_timeout: Mutex<Duration>,
}

impl ClientFaults {
    fn count(&self, failure: &FailedExchange) {
        let timeout = *self.client_timeout.lock().unwrap_or_else(PoisonError::into_inner);
        let timed_out = failure.status.is_none()
            && failure.elapsed_ms.is_some_and(|elapsed| u128::from(elapsed) * 10 >= timeout.as_millis() * 9);
        let counter = match (failure.status, failure.error_number) {
            (None, _) if timed_out => &self.timeouts,
            (Some(406), Some(ERROR_12)) => &self.error_12,
            (Some(200), Some(ERROR_12)) => &self.error_in_200,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The tally of the run in progress; runs are serialized, so there is at most one.
static CURRENT: Mutex<Option<Arc<ClientFaults>>> = Mutex::new(None);

/// Makes a fresh tally current for the duration of a run.
pub fn start_tally(client_timeout: Duration) -> Arc<ClientFaults> {
    let tally = Arc::new(ClientFaults { client_timeout: Mutex::new(client_timeout), ..ClientFaults::default() });
    *CURRENT.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&tally));
    tally
}

pub fn stop_tally() {
    *CURRENT.lock().unwrap_or_else(PoisonError::into_inner) = None;
}

/// The layer to add to the process's subscriber; it enables the client's debug events for
/// itself only.
pub fn client_fault_layer<S>() -> Filtered<ClientFaultLayer, Targets, S>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    ClientFaultLayer.with_filter(Targets::new().with_target(CLIENT_TARGET, Level::DEBUG))
}

#[derive(Debug, Clone, Copy)]
pub struct ClientFaultLayer;

impl<S: Subscriber> Layer<S> for ClientFaultLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut failure = FailedExchange::default();
        event.record(&mut failure);
        if failure.message.as_deref() != Some(FAILED_EXCHANGE) {
            return;
        }
        let current = CURRENT.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(tally) = current {
            tally.count(&failure);
        }
    }
}

#[derive(Debug, Default)]
struct FailedExchange {
    message: Option<String>,
    status: Option<u64>,
    error_number: Option<i64>,
    elapsed_ms: Option<u64>,
}

impl Visit for FailedExchange {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "status" => self.status = Some(value),
            "elapsed_ms" => self.elapsed_ms = Some(value),
            "error_number" => self.error_number = i64::try_from(value).ok(),
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        match field.name() {
            "status" => self.status = u64::try_from(value).ok(),
            "elapsed_ms" => self.elapsed_ms = u64::try_from(value).ok(),
            "error_number" => self.error_number = Some(value),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        }
    }
}
