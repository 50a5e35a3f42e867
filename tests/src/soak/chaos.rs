//! Fault injection: the simulator's knobs (HTTP faults, rate limits, session expiry, refused
//! addresses), cycled through phases so 429s come both with and without `Retry-After`; and the
//! consumer's crash hook.

use super::config::{ChaosSettings, SoakConfig};
use klicktipp_sim::{Knobs, Simulator};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use webinar_bridge::consume::{CrashHook, CrashPoint};

/// The knobs of one phase.
fn knobs(config: &SoakConfig, rejected: &[String], phase: u64) -> Knobs {
    let chaos = &config.chaos;
    let squeezed = phase % 2 == 1;
    let steady_limit = (config.rps * chaos.steady_limit_share).round().max(1.0) as u32;
    Knobs {
        rate_limit_per_second: Some(if squeezed { chaos.squeeze_limit } else { steady_limit }),
        // Phases 0-1 without, 2-3 with, 4-5 without, ...
        retry_after: (phase / 2) % 2 == 1,
        fault_rate_500: chaos.rate_500,
        fault_rate_502_html: chaos.rate_502_html,
        fault_rate_timeout: chaos.rate_timeout,
        timeout_ms: u64::try_from(chaos.simulator_delay.as_millis()).unwrap_or(u64::MAX),
        fault_rate_error12: chaos.rate_error12,
        error_in_200_rate: chaos.rate_error_in_200,
        session_expiry_calls: Some(chaos.session_expiry_calls),
        reject_emails: rejected.to_vec(),
        // `set_knobs` re-seeds the fault RNG: a new seed per phase keeps the draws fresh.
        seed: config.seed.wrapping_mul(1_000).wrapping_add(phase),
        ..Knobs::default()
    }
}

/// Where in the simulator's request log each phase began, and whether it sent `Retry-After`.
#[derive(Debug, Clone, Default)]
pub struct PhaseLog {
    starts: Vec<(usize, bool)>,
}

impl PhaseLog {
    /// Whether the request at `index` of the log was answered in a phase with `Retry-After`.
    /// (A request in flight across a switch may be attributed to either side.)
    pub fn retry_after_at(&self, index: usize) -> bool {
        self.starts.iter().rev().find(|(start, _)| *start <= index).is_some_and(|(_, retry_after)| *retry_after)
    }
}

/// Sets the first phase's knobs now, then switches phases in the background until `stop`; the
/// task returns where each phase started in the request log.
pub fn start_cycling(
    simulator: &Simulator,
    config: &SoakConfig,
    rejected: &[String],
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<PhaseLog> {
    let mut log = PhaseLog::default();
    let switch = move |log: &mut PhaseLog, simulator: &Simulator, knobs: Knobs| {
        log.starts.push((simulator.total_calls() as usize, knobs.retry_after));
        simulator.set_knobs(knobs);
    };
    switch(&mut log, simulator, knobs(config, rejected, 0));
    let (simulator, config, rejected) = (simulator.clone(), config.clone(), rejected.to_vec());
    tokio::spawn(async move {
        let mut phase = 0u64;
        while !*stop.borrow() {
            let length = if phase % 2 == 1 { config.chaos.squeeze } else { config.chaos.steady };
            tokio::select! {
                _ = tokio::time::sleep(length) => {}
                _ = stop.changed() => break,
            }
            phase += 1;
            switch(&mut log, &simulator, knobs(&config, &rejected, phase));
        }
        // A calm account for the verification's reads.
        simulator.set_knobs(Knobs { reject_emails: rejected, ..Knobs::default() });
        log
    })
}

/// Crashes a consumer at the hook's points with seeded chances, counting each.
pub struct CrashInjector {
    rng: Mutex<StdRng>,
    before_save: f64,
    before_complete: f64,
    crashed_before_save: AtomicU64,
    crashed_before_complete: AtomicU64,
}

impl CrashInjector {
    pub fn new(chaos: &ChaosSettings, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x00C4_A511)),
            before_save: chaos.crash_before_save,
            before_complete: chaos.crash_before_complete,
            crashed_before_save: AtomicU64::new(0),
            crashed_before_complete: AtomicU64::new(0),
        })
    }

    pub fn hook(self: &Arc<Self>) -> CrashHook {
        let injector = Arc::clone(self);
        Arc::new(move |point| injector.crash_at(point))
    }

    fn crash_at(&self, point: CrashPoint) -> bool {
        let (chance, counter) = match point {
            CrashPoint::AfterKlickTippBeforeSave => (self.before_save, &self.crashed_before_save),
            CrashPoint::AfterSaveBeforeComplete => (self.before_complete, &self.crashed_before_complete),
        };
        let roll: f64 = self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner).random();
        let crash = roll < chance;
        if crash {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        crash
    }

    pub fn crashes_before_save(&self) -> u64 {
        self.crashed_before_save.load(Ordering::Relaxed)
    }

    pub fn crashes_before_complete(&self) -> u64 {
        self.crashed_before_complete.load(Ordering::Relaxed)
    }
}
