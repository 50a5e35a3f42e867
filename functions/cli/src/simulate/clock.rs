//! The replay's clock: set to each request's arrival while feeding, moved forward by hand while
//! draining, so retry delays pass instantly and the result does not depend on the wall clock.

use chrono::{DateTime, Utc};
use std::sync::Mutex;
use std::time::Duration;
use webinar_bridge::ports::Clock;

pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self { now: Mutex::new(start) }
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.lock() = at;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.lock();
        *now = chrono::Duration::from_std(by).ok().and_then(|by| now.checked_add_signed(by)).unwrap_or(*now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        // The guarded value is a plain time, valid even if a holder panicked.
        self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}
