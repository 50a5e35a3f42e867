//! The per-process rate cap: evenly spaced call slots, no burst.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Slots are 2% further apart than `1 / rate`, so scheduling and network jitter can never
/// squeeze `rate + 1` calls into one second of the server's clock.
const SAFETY_MARGIN: f64 = 1.02;

/// Rates below one call an hour are treated as one call an hour (keeps the arithmetic finite).
const LONGEST_INTERVAL: Duration = Duration::from_secs(3600);

/// Hands out call slots `interval` apart. Shared by every call of a client and its clones, so
/// retries, logins and concurrent tasks all count against the same cap.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    interval: Option<Duration>,
    next_slot: Mutex<Option<Instant>>,
    /// Calls per second of the last minutes, for the console's chart.
    meter: CallMeter,
}

impl RateLimiter {
    /// `rate_per_second <= 0` or non-finite means unlimited.
    pub fn new(rate_per_second: f64) -> Self {
        let interval = (rate_per_second.is_finite() && rate_per_second > 0.0).then(|| {
            Duration::try_from_secs_f64(SAFETY_MARGIN / rate_per_second)
                .unwrap_or(LONGEST_INTERVAL)
                .min(LONGEST_INTERVAL)
        });
        Self { rate: rate_per_second, interval, next_slot: Mutex::new(None), meter: CallMeter::default() }
    }

    /// Wait for the next free slot. The first call of an idle limiter goes at once; a dropped
    /// (cancelled) wait still uses up its slot, which errs on the safe side.
    pub async fn acquire(&self) {
        let Some(interval) = self.interval else {
            self.meter.record();
            return;
        };
        let slot = {
            // The guarded value is a plain Instant, valid even if a holder panicked.
            let mut next_slot = self.next_slot.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let slot = next_slot.map_or(now, |next| next.max(now));
            *next_slot = Some(slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
        self.meter.record();
    }

    /// Like [`Self::acquire`], but only takes a slot that comes by `deadline`; returns false
    /// (without waiting or using up a slot) when the next one would come later.
    pub async fn acquire_before(&self, deadline: Option<Instant>) -> bool {
        let Some(interval) = self.interval else {
            self.meter.record();
            return true;
        };
        let slot = {
            let mut next_slot = self.next_slot.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let slot = next_slot.map_or(now, |next| next.max(now));
            if deadline.is_some_and(|deadline| slot > deadline) {
                return false;
            }
            *next_slot = Some(slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
        self.meter.record();
        true
    }

    /// The configured calls per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The spacing between slots; `None` when unlimited.
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Calls that went out in each of the last `seconds` whole seconds (oldest first, the
    /// current, unfinished second last).
    pub fn calls_per_second(&self, seconds: usize) -> Vec<u32> {
        self.meter.last(seconds, unix_second())
    }
}

/// Seconds of call counts the meter keeps.
pub const METER_SECONDS: usize = 300;

/// A ring of per-second call counts, keyed by Unix second.
#[derive(Debug, Default)]
struct CallMeter {
    seconds: Mutex<std::collections::VecDeque<(u64, u32)>>,
}

impl CallMeter {
    fn record(&self) {
        self.record_at(unix_second());
    }

    fn record_at(&self, second: u64) {
        let mut seconds = self.seconds.lock().unwrap_or_else(PoisonError::into_inner);
        match seconds.back_mut() {
            Some((last, count)) if *last == second => *count = count.saturating_add(1),
            _ => seconds.push_back((second, 1)),
        }
        while seconds.front().is_some_and(|(first, _)| first + (METER_SECONDS as u64) < second) {
            seconds.pop_front();
        }
    }

    fn last(&self, count: usize, now: u64) -> Vec<u32> {
        let seconds = self.seconds.lock().unwrap_or_else(PoisonError::into_inner);
        let count = count.min(METER_SECONDS);
        let first = now.saturating_sub(count.saturating_sub(1) as u64);
        let mut out = vec![0; count];
        for (second, calls) in seconds.iter() {
            if (first..=now).contains(second) {
                out[(second - first) as usize] = *calls;
            }
        }
        out
    }
}

fn unix_second() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_counts_calls_per_second_and_forgets_old_seconds() {
        let meter = CallMeter::default();
        for second in [100, 100, 101, 103, 103, 103] {
            meter.record_at(second);
        }
        assert_eq!(meter.last(5, 103), vec![0, 2, 1, 0, 3]);
        assert_eq!(meter.last(2, 104), vec![3, 0]);
        meter.record_at(100 + METER_SECONDS as u64 + 10);
        assert_eq!(meter.seconds.lock().expect("not poisoned").len(), 1);
    }
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn spaces_calls_evenly_without_burst() {
        let limiter = RateLimiter::new(10.0);
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..30 {
            limiter.acquire().await;
            times.push(start.elapsed());
        }
        assert_eq!(times[0], Duration::ZERO);
        let interval = limiter.interval().expect("limited");
        assert!(interval.abs_diff(Duration::from_millis(102)) < Duration::from_micros(1));
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], interval);
        }
        for (index, at) in times.iter().enumerate() {
            let in_window = times.iter().filter(|other| **other >= *at && **other < *at + Duration::from_secs(1));
            assert!(in_window.count() <= 10, "window from call {index}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_the_slots() {
        let limiter = Arc::new(RateLimiter::new(5.0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                tokio::spawn(async move {
                    limiter.acquire().await;
                    start.elapsed()
                })
            })
            .collect();
        let mut times = Vec::new();
        for task in tasks {
            times.push(task.await.expect("task finished"));
        }
        times.sort();
        let interval = limiter.interval().expect("limited");
        assert_eq!(times.last().copied(), Some(interval * 9));
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], interval);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_is_not_saved_up_as_burst() {
        let limiter = RateLimiter::new(10.0);
        limiter.acquire().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let start = Instant::now();
        limiter.acquire().await;
        limiter.acquire().await;
        assert_eq!(Some(start.elapsed()), limiter.interval());
    }

    #[tokio::test(start_paused = true)]
    async fn no_slot_is_taken_past_the_deadline() {
        let limiter = RateLimiter::new(1.0);
        let deadline = Some(Instant::now() + Duration::from_millis(1500));
        assert!(limiter.acquire_before(deadline).await);
        assert!(limiter.acquire_before(deadline).await, "the second slot comes at 1.02 s");
        let before = Instant::now();
        assert!(!limiter.acquire_before(deadline).await, "the third would come at 2.04 s");
        assert_eq!(before.elapsed(), Duration::ZERO, "a refused slot is not waited for");
        assert!(limiter.acquire_before(None).await, "the refused slot was not used up");
        assert!(before.elapsed() < Duration::from_millis(1100));
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_rates_never_wait() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let limiter = RateLimiter::new(rate);
            assert_eq!(limiter.interval(), None);
            let start = Instant::now();
            for _ in 0..100 {
                limiter.acquire().await;
            }
            assert_eq!(start.elapsed(), Duration::ZERO);
        }
        assert_eq!(RateLimiter::new(1e-300).interval(), Some(LONGEST_INTERVAL));
    }
}
