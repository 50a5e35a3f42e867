//! One FIFO throttle per platform API key (DESIGN 11).
//!
//! WebinarJam and EverWebinar allow 20 calls per second per account and answer 429 "Too many
//! requests" above that. Every outbound call first takes its turn here:
//! - calls leave in the order they asked (the gate is a fair mutex, so waiters queue first in,
//!   first out);
//! - a sliding window over the last `rate` calls: a call leaves only when the call `rate` places
//!   before it left at least one second (plus [`WINDOW_MARGIN`]) ago *and* was answered at least
//!   one second ago. The platform stamps a call somewhere between its leaving here and its
//!   answer arriving back, so counting from the answer guarantees that no one-second window at
//!   the platform ever holds more than `rate` calls, however long a call spent on the way (a
//!   stalled machine, a slow network). It costs only one round trip per `rate` calls. A call
//!   still unanswered [`UNANSWERED_CAP`] after it left is taken as arrived, so one hanging call
//!   does not hold up the queue until its timeout;
//! - calls are evenly spaced at least `1/rate` apart so a burst does not bunch up at the start
//!   of each second;
//! - a call answered 429 waits one second and goes again *before* any call that has not left
//!   yet: it keeps its place at the head of the queue, and the whole queue pauses with it.
//!
//! [`FifoThrottle::acquire`] hands out a [`Departure`]; hold it until the answer (or a transport
//! error) is back and drop it then: that is the moment the window counts from.
//!
//! Time is `tokio::time`, so tests run it on paused time without sleeping.

use std::collections::VecDeque;
use std::sync::Mutex as SyncMutex;
use std::time::Duration;
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;

/// Extra room on top of the one-second window counted from departures: what leaves here at the
/// edge of a window must not arrive inside the previous one at the platform. (The answer rule
/// covers longer delays.)
pub const WINDOW_MARGIN: Duration = Duration::from_millis(10);

/// A call without an answer this long after it left is counted as answered then (it has long
/// reached the platform; it only waits for a slow reply or its timeout).
pub const UNANSWERED_CAP: Duration = Duration::from_secs(1);

/// How long a call answered 429 waits before it goes again (the platform's advice).
pub const RATE_LIMIT_PAUSE: Duration = Duration::from_secs(1);

/// The FIFO throttle. Share it (`Arc`) between every client that uses the same API key.
#[derive(Debug)]
pub struct FifoThrottle {
    rate: u32,
    window: Duration,
    spacing: Duration,
    /// New calls queue here, first in, first out (tokio's mutex is fair).
    gate: Mutex<()>,
    /// Calls going again after a 429 queue here, ahead of every new call.
    retry_gate: Mutex<()>,
    state: SyncMutex<Window>,
    retry_left: Notify,
    /// Woken whenever a call's answer is back (a waiter may be waiting for it).
    answer_back: Notify,
}

#[derive(Debug, Default)]
struct Window {
    /// The most recent calls, oldest first; at most `rate` kept.
    sent: VecDeque<Sent>,
    /// Nothing leaves before this (set by a 429).
    paused_until: Option<Instant>,
    /// When the last call was due to leave by the spacing rule. Spacing counts from here, not
    /// from when the call actually woke up, so small wake-up delays do not add up and slow the
    /// queue below its rate.
    last_slot: Option<Instant>,
    /// Calls waiting to go again after a 429; new calls wait until they have left.
    retries_waiting: usize,
    /// Counters for figures and tests.
    departures: u64,
    rate_limited: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    /// The departure's number (`departures` before it left).
    number: u64,
    left: Instant,
    answered: Option<Instant>,
}

impl Sent {
    /// The latest the platform can have stamped this call.
    fn arrived_by(&self) -> Instant {
        self.answered.unwrap_or(self.left + UNANSWERED_CAP).min(self.left + UNANSWERED_CAP)
    }
}

/// What the throttle has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThrottleStats {
    pub departures: u64,
    pub rate_limited: u64,
}

/// One call that has left. Dropping it records that its answer is back (drop it when the
/// answer or a transport error arrives; dropping it at once counts from the departure only).
#[derive(Debug)]
pub struct Departure<'a> {
    throttle: &'a FifoThrottle,
    number: u64,
    answered_at: Option<Instant>,
}

impl Departure<'_> {
    /// This call's place in the order calls left (0 for the first).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Records that the answer came back at `at` (stamped where it arrived, which may be well
    /// before this call's task gets to run again on a busy machine).
    pub fn answered_at(mut self, at: Instant) {
        self.answered_at = Some(at);
    }
}

impl Drop for Departure<'_> {
    fn drop(&mut self) {
        let at = self.answered_at.unwrap_or_else(Instant::now);
        let mut window = self.throttle.lock_state();
        if let Some(sent) = window.sent.iter_mut().rev().find(|sent| sent.number == self.number) {
            sent.answered = Some(at);
        }
        drop(window);
        self.throttle.answer_back.notify_waiters();
    }
}

impl FifoThrottle {
    /// At most `rate_per_second` calls in any one-second window (a rate of 0 is treated as 1).
    pub fn new(rate_per_second: u32) -> Self {
        let rate = rate_per_second.max(1);
        Self {
            rate,
            window: Duration::from_secs(1) + WINDOW_MARGIN,
            spacing: Duration::from_secs(1) / rate,
            gate: Mutex::new(()),
            retry_gate: Mutex::new(()),
            state: SyncMutex::new(Window::default()),
            retry_left: Notify::new(),
            answer_back: Notify::new(),
        }
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub fn stats(&self) -> ThrottleStats {
        let window = self.lock_state();
        ThrottleStats { departures: window.departures, rate_limited: window.rate_limited }
    }

    /// Waits for this call's turn: after every call that asked earlier, and after every call
    /// that is going again after a 429. Returns when the call may leave.
    pub async fn acquire(&self) -> Departure<'_> {
        let _turn = self.gate.lock().await;
        loop {
            let retry_left = self.retry_left.notified();
            tokio::pin!(retry_left);
            retry_left.as_mut().enable();
            let answer_back = self.answer_back.notified();
            tokio::pin!(answer_back);
            answer_back.as_mut().enable();
            let wait = {
                let mut window = self.lock_state();
                if window.retries_waiting > 0 {
                    None
                } else {
                    match self.try_depart(&mut window, Instant::now()) {
                        Ok(number) => return Departure { throttle: self, number, answered_at: None },
                        Err(until) => Some(until),
                    }
                }
            };
            match wait {
                None => retry_left.await,
                Some(until) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        () = answer_back => {}
                    }
                }
            }
        }
    }

    /// For a call the platform answered 429: pauses the whole queue for [`RATE_LIMIT_PAUSE`]
    /// (or `retry_after` when the platform named a longer wait) and returns when this call may
    /// go again, ahead of every call that has not left yet.
    pub async fn acquire_after_rate_limit(&self, retry_after: Option<Duration>) -> Departure<'_> {
        let pause = retry_after.unwrap_or(RATE_LIMIT_PAUSE).max(RATE_LIMIT_PAUSE);
        {
            let mut window = self.lock_state();
            window.rate_limited += 1;
            let until = Instant::now() + pause;
            window.paused_until = Some(window.paused_until.map_or(until, |paused| paused.max(until)));
        }
        self.acquire_at_head(Duration::ZERO).await
    }

    /// For a call that failed in a way worth retrying (server error, broken connection): waits
    /// `backoff` and returns when it may go again, ahead of every call that has not left yet.
    /// Other calls keep leaving meanwhile.
    pub async fn acquire_at_head(&self, backoff: Duration) -> Departure<'_> {
        {
            let mut window = self.lock_state();
            window.retries_waiting += 1;
        }
        let earliest = Instant::now() + backoff;
        // If this future is dropped while waiting, the guard still takes the retry off the count.
        let _waiting = RetryGuard { throttle: self };
        let _turn = self.retry_gate.lock().await;
        tokio::time::sleep_until(earliest).await;
        loop {
            let answer_back = self.answer_back.notified();
            tokio::pin!(answer_back);
            answer_back.as_mut().enable();
            let wait = {
                let mut window = self.lock_state();
                match self.try_depart(&mut window, Instant::now()) {
                    Ok(number) => return Departure { throttle: self, number, answered_at: None },
                    Err(until) => until,
                }
            };
            tokio::select! {
                () = tokio::time::sleep_until(wait) => {}
                () = answer_back => {}
            }
        }
    }

    /// Records a departure at `now` if the window allows one, else says when it will (at the
    /// latest: an answer coming back earlier may allow it sooner).
    fn try_depart(&self, window: &mut Window, now: Instant) -> Result<u64, Instant> {
        // When the call is due, by every rule but "not before now".
        let mut due: Option<Instant> = window.paused_until;
        let mut raise = |at: Instant| due = Some(due.map_or(at, |due| due.max(at)));
        if let Some(last) = window.last_slot {
            raise(last + self.spacing);
        }
        if window.sent.len() >= self.rate as usize
            && let Some(oldest) = window.sent.get(window.sent.len() - self.rate as usize)
        {
            // The window rule counts actual departures, and answers.
            raise(oldest.left + self.window);
            raise(oldest.arrived_by() + Duration::from_secs(1));
        }
        if let Some(due) = due
            && due > now
        {
            return Err(due);
        }
        // A late wake-up keeps the schedule, but the next call still leaves at least half a
        // spacing after this one (so two calls never race each other to the platform); after
        // idling, the schedule starts afresh.
        let catch_up = self.spacing / 2;
        let slot = due.map_or(now, |due| due.max(now.checked_sub(catch_up).unwrap_or(now)));
        window.last_slot = Some(slot);
        let number = window.departures;
        window.sent.push_back(Sent { number, left: now, answered: None });
        while window.sent.len() > self.rate as usize {
            window.sent.pop_front();
        }
        window.departures += 1;
        Ok(number)
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, Window> {
        // A panic while holding this lock leaves only counters and times behind; keep going.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Counts a retry as waiting until it has left (or its future was dropped).
struct RetryGuard<'a> {
    throttle: &'a FifoThrottle,
}

impl Drop for RetryGuard<'_> {
    fn drop(&mut self) {
        let mut window = self.throttle.lock_state();
        window.retries_waiting = window.retries_waiting.saturating_sub(1);
        drop(window);
        self.throttle.retry_left.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Departure times (from the start) of `count` calls queued in order.
    async fn departures(throttle: Arc<FifoThrottle>, count: usize) -> Vec<(usize, Duration)> {
        let start = Instant::now();
        let log = Arc::new(SyncMutex::new(Vec::new()));
        let calls = (0..count).map(|index| {
            let throttle = throttle.clone();
            let log = log.clone();
            async move {
                throttle.acquire().await;
                log.lock().unwrap().push((index, start.elapsed()));
            }
        });
        futures::future::join_all(calls).await;
        Arc::try_unwrap(log).unwrap().into_inner().unwrap()
    }

    fn max_in_any_second(times: &[Duration]) -> usize {
        times
            .iter()
            .map(|start| times.iter().filter(|t| **t >= *start && **t < *start + Duration::from_secs(1)).count())
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn calls_leave_in_fifo_order_and_never_more_than_the_rate_in_any_second() {
        let log = departures(Arc::new(FifoThrottle::new(20)), 500).await;
        let order: Vec<usize> = log.iter().map(|(index, _)| *index).collect();
        assert_eq!(order, (0..500).collect::<Vec<_>>());
        let times: Vec<Duration> = log.iter().map(|(_, at)| *at).collect();
        assert!(max_in_any_second(&times) <= 20, "{}", max_in_any_second(&times));
        // The budget is used: 500 calls at 20/s take about 25 s, not much more.
        let total = *times.last().unwrap();
        assert!(total <= Duration::from_millis(26_500), "{total:?}");
        assert!(total >= Duration::from_millis(24_000), "{total:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limited_call_waits_a_second_and_goes_before_every_waiting_call() {
        let throttle = Arc::new(FifoThrottle::new(20));
        throttle.acquire().await;
        let start = Instant::now();
        let log = Arc::new(SyncMutex::new(Vec::new()));
        // The first call was answered 429; ten more are queued behind it.
        let retry = {
            let (throttle, log) = (throttle.clone(), log.clone());
            async move {
                throttle.acquire_after_rate_limit(None).await;
                log.lock().unwrap().push(("retry", start.elapsed()));
            }
        };
        let others = (0..10).map(|_| {
            let (throttle, log) = (throttle.clone(), log.clone());
            async move {
                throttle.acquire().await;
                log.lock().unwrap().push(("new", start.elapsed()));
            }
        });
        futures::future::join(retry, futures::future::join_all(others)).await;
        let log = log.lock().unwrap();
        assert_eq!(log[0].0, "retry");
        assert!(log[0].1 >= Duration::from_secs(1), "{:?}", log[0].1);
        assert!(log[1..].iter().all(|(kind, at)| *kind == "new" && *at > log[0].1));
        assert_eq!(throttle.stats(), ThrottleStats { departures: 12, rate_limited: 1 });
    }

    #[tokio::test(start_paused = true)]
    async fn a_longer_retry_after_is_honoured() {
        let throttle = FifoThrottle::new(5);
        let start = Instant::now();
        throttle.acquire_after_rate_limit(Some(Duration::from_secs(3))).await;
        assert!(start.elapsed() >= Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_rate_spaces_calls_evenly() {
        let log = departures(Arc::new(FifoThrottle::new(2)), 5).await;
        let times: Vec<u128> = log.iter().map(|(_, at)| at.as_millis()).collect();
        assert_eq!(times[0], 0);
        assert!(times.windows(2).all(|pair| pair[1] - pair[0] >= 500), "{times:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_answer_holds_back_the_call_a_window_later() {
        let throttle = FifoThrottle::new(2);
        let start = Instant::now();
        // The first call's answer takes 300 ms: the platform may have stamped it that late.
        let first = throttle.acquire().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(first);
        drop(throttle.acquire().await);
        throttle.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_millis(1300));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_call_holds_back_the_queue_for_at_most_the_cap() {
        let throttle = FifoThrottle::new(2);
        let start = Instant::now();
        let hanging = throttle.acquire().await;
        drop(throttle.acquire().await);
        throttle.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(1) + UNANSWERED_CAP);
        drop(hanging);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_coming_back_wakes_the_waiting_call() {
        let throttle = Arc::new(FifoThrottle::new(1));
        let start = Instant::now();
        let first = throttle.acquire().await;
        let answer = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(first);
        };
        let (_, second) = futures::future::join(answer, throttle.acquire()).await;
        drop(second);
        assert_eq!(start.elapsed(), Duration::from_millis(1200));
    }
}
