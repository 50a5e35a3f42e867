//! The per-process rate cap: evenly spaced call slots, no burst.
//!
//! A fresh (or long idle) limiter hands out its first slot at once and every next one a full
//! interval later: nothing is saved up, so an instance that starts next to others (a Lambda
//! fleet sharing KlickTipp's cap, each with `cap / MaximumConcurrency`) never bursts in its first
//! second. A 429 that still arrives (another client on the account, jitter) slows this instance
//! down: no slot before the server's `Retry-After` when it sends one (at most
//! [`LONGEST_PAUSE`]), and slots [`SLOWED_SPACING`] times further apart until [`SLOW_PERIOD`] has
//! passed without another 429. Gentle on purpose: a 429 from jitter should cost little of the
//! cap, and the slowed slots leave the server's window room to drain.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Slots are 2% further apart than `1 / rate`, so scheduling and network jitter can never
/// squeeze `rate + 1` calls into one second of the server's clock.
const SAFETY_MARGIN: f64 = 1.02;

/// A longer `Retry-After` is left to the caller (the retry or the queue); the limiter holds
/// every other call of the instance at most this long.
pub const LONGEST_PAUSE: Duration = Duration::from_secs(5);
/// After a 429 the slots are this much further apart (80% of the rate) ...
pub const SLOWED_SPACING: f64 = 1.25;
/// ... until this long has passed without another 429 (after the pause, if any).
pub const SLOW_PERIOD: Duration = Duration::from_secs(5);

/// Rates below one call an hour are treated as one call an hour (keeps the arithmetic finite).
const LONGEST_INTERVAL: Duration = Duration::from_secs(3600);

/// Hands out call slots `interval` apart. Shared by every call of a client and its clones, so
/// retries, logins and concurrent tasks all count against the same cap.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    interval: Option<Duration>,
    state: Mutex<Slots>,
    /// Calls per second of the last minutes, for the console's chart.
    meter: CallMeter,
}

#[derive(Debug, Default)]
struct Slots {
    /// The earliest instant the next slot may start; `None` before the first call.
    next_slot: Option<Instant>,
    /// Until then slots are [`SLOWED_SPACING`] times further apart (the last 429 plus
    /// [`SLOW_PERIOD`]).
    slow_until: Option<Instant>,
}

impl RateLimiter {
    /// `rate_per_second <= 0` or non-finite means unlimited.
    pub fn new(rate_per_second: f64) -> Self {
        let interval = (rate_per_second.is_finite() && rate_per_second > 0.0).then(|| {
            Duration::try_from_secs_f64(SAFETY_MARGIN / rate_per_second)
                .unwrap_or(LONGEST_INTERVAL)
                .min(LONGEST_INTERVAL)
        });
        Self { rate: rate_per_second, interval, state: Mutex::new(Slots::default()), meter: CallMeter::default() }
    }

    /// Wait for the next free slot. The first call of an idle limiter goes at once; a dropped
    /// (cancelled) wait still uses up its slot, which errs on the safe side.
    pub async fn acquire(&self) {
        self.acquire_before(None).await;
    }

    /// Like [`Self::acquire`], but only takes a slot that comes by `deadline`; returns false
    /// (without waiting or using up a slot) when the next one would come later.
    pub async fn acquire_before(&self, deadline: Option<Instant>) -> bool {
        let Some(interval) = self.interval else {
            self.meter.record();
            return true;
        };
        let slot = {
            let mut state = self.lock();
            let now = Instant::now();
            let slot = state.next_slot.map_or(now, |next| next.max(now));
            if deadline.is_some_and(|deadline| slot > deadline) {
                return false;
            }
            let slowed = state.slow_until.is_some_and(|until| slot < until);
            state.next_slot = Some(slot + if slowed { interval.mul_f64(SLOWED_SPACING) } else { interval });
            slot
        };
        tokio::time::sleep_until(slot).await;
        self.meter.record();
        true
    }

    /// KlickTipp answered 429: no slot before its `Retry-After` (at most [`LONGEST_PAUSE`]) from
    /// now, then slots [`SLOWED_SPACING`] times further apart for [`SLOW_PERIOD`]; every further
    /// 429 extends that. No effect on an unlimited limiter (nothing to slow).
    pub fn slow_down(&self, retry_after: Option<Duration>) {
        if self.interval.is_none() {
            return;
        }
        let resume = Instant::now() + retry_after.unwrap_or(Duration::ZERO).min(LONGEST_PAUSE);
        let mut state = self.lock();
        state.next_slot = Some(state.next_slot.map_or(resume, |next| next.max(resume)));
        state.slow_until = Some(resume + SLOW_PERIOD);
    }

    /// Whether a 429 within the last [`SLOW_PERIOD`] (after its pause) still halves the rate.
    pub fn is_slowed(&self) -> bool {
        self.lock().slow_until.is_some_and(|until| Instant::now() < until)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        // The guarded values are plain Instants, valid even if a holder panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// The times of `count` acquisitions from now, one after the other.
    async fn acquire_times(limiter: &RateLimiter, count: usize) -> Vec<Duration> {
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..count {
            limiter.acquire().await;
            times.push(start.elapsed());
        }
        times
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_limiter_does_not_burst_in_its_first_second() {
        // A fleet instance's share of the cap: 20 calls/s over 4 instances.
        let limiter = RateLimiter::new(5.0);
        let times = acquire_times(&limiter, 20).await;
        let first_second = times.iter().filter(|at| **at < Duration::from_secs(1)).count();
        assert_eq!(first_second, 5, "{times:?}");
        let interval = limiter.interval().expect("limited");
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], interval);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn four_fresh_instances_together_stay_under_the_shared_cap() {
        let fleet: Vec<RateLimiter> = (0..4).map(|_| RateLimiter::new(5.0)).collect();
        let start = Instant::now();
        let tasks = fleet.into_iter().map(|limiter| async move {
            let mut times = Vec::new();
            for _ in 0..15 {
                limiter.acquire().await;
                times.push(start.elapsed());
            }
            times
        });
        let mut times: Vec<Duration> = futures_concat(tasks).await;
        times.sort();
        for at in &times {
            let in_window = times.iter().filter(|other| **other >= *at && **other < *at + Duration::from_secs(1));
            assert!(in_window.count() <= 20, "window from {at:?}");
        }
    }

    async fn futures_concat(
        tasks: impl Iterator<Item = impl std::future::Future<Output = Vec<Duration>> + Send + 'static>,
    ) -> Vec<Duration> {
        let handles: Vec<_> = tasks.map(tokio::spawn).collect();
        let mut all = Vec::new();
        for handle in handles {
            all.extend(handle.await.expect("task finished"));
        }
        all
    }

    /// Paused time still wakes sleepers on whole milliseconds.
    fn assert_close(actual: Duration, expected: Duration) {
        assert!(actual.abs_diff(expected) <= Duration::from_millis(1), "{actual:?} is not {expected:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_for_retry_after_then_slows_the_rate_and_recovers() {
        let limiter = RateLimiter::new(10.0);
        let interval = limiter.interval().expect("limited");
        limiter.acquire().await;
        let told = Instant::now();
        limiter.slow_down(Some(Duration::from_secs(2)));
        assert!(limiter.is_slowed());
        let times = acquire_times(&limiter, 4).await;
        // Nothing before Retry-After, then slots further apart.
        assert_eq!(times[0], Duration::from_secs(2));
        for pair in times.windows(2) {
            assert_close(pair[1] - pair[0], interval.mul_f64(SLOWED_SPACING));
        }
        // Quiet for the slow period: the full rate is back.
        tokio::time::sleep_until(told + Duration::from_secs(2) + SLOW_PERIOD).await;
        assert!(!limiter.is_slowed());
        let times = acquire_times(&limiter, 4).await;
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], interval);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_without_retry_after_only_slows_and_long_pauses_are_capped() {
        let limiter = RateLimiter::new(10.0);
        let interval = limiter.interval().expect("limited");
        limiter.slow_down(None);
        let times = acquire_times(&limiter, 3).await;
        assert_eq!(times[0], Duration::ZERO, "no Retry-After, no pause");
        assert_close(times[1], interval.mul_f64(SLOWED_SPACING));
        assert_close(times[2], interval.mul_f64(2.0 * SLOWED_SPACING));
        let limiter = RateLimiter::new(10.0);
        limiter.slow_down(Some(Duration::from_secs(30)));
        assert_eq!(acquire_times(&limiter, 1).await, [LONGEST_PAUSE]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_never_moves_a_later_slot_earlier_and_repeats_extend_the_slow_period() {
        let limiter = RateLimiter::new(0.5);
        limiter.acquire().await;
        // The next slot is already 2.04 s away; a 1 s pause must not pull it in.
        limiter.slow_down(Some(Duration::from_secs(1)));
        let interval = limiter.interval().expect("limited");
        assert_eq!(acquire_times(&limiter, 1).await, [interval]);
        tokio::time::sleep(SLOW_PERIOD - Duration::from_secs(1)).await;
        limiter.slow_down(None);
        tokio::time::sleep(SLOW_PERIOD - Duration::from_secs(1)).await;
        assert!(limiter.is_slowed(), "the second 429 started a new slow period");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unlimited_limiter_ignores_429s() {
        let limiter = RateLimiter::new(0.0);
        limiter.slow_down(Some(Duration::from_secs(3)));
        assert!(!limiter.is_slowed());
        assert_eq!(acquire_times(&limiter, 3).await, [Duration::ZERO; 3]);
    }
}
