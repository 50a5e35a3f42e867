//! How long to wait before trying a retryable call again.

use super::error::KlickTippError;
use std::time::Duration;

/// Upper bound of the exponential backoff.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A 429 without `Retry-After` waits this long (DESIGN 1).
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// A longer `Retry-After` is not waited out inside one call: the error goes back to the caller
/// (the queue consumer requeues), instead of holding a Lambda invocation idle.
pub(crate) const LONGEST_INLINE_WAIT: Duration = Duration::from_secs(30);

/// The wait before the attempt after `failed_attempt` (1-based), or `None` to give up now.
pub(crate) fn delay_before_retry(error: &KlickTippError, failed_attempt: u32, base: Duration) -> Option<Duration> {
    match error {
        KlickTippError::RateLimited { retry_after, .. } => {
            let wait = retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
            (wait <= LONGEST_INLINE_WAIT).then_some(wait)
        }
        _ => Some(with_jitter(exponential(base, failed_attempt))),
    }
}

/// `base * 2^(failed_attempt - 1)`, capped.
fn exponential(base: Duration, failed_attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(failed_attempt.saturating_sub(1));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// "Equal jitter": half the delay fixed, half random, so retries of many callers spread out
/// but none comes back immediately.
fn with_jitter(delay: Duration) -> Duration {
    let half = delay / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
    Some(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(200);

    fn server_error() -> KlickTippError {
        KlickTippError::Server { operation: "op", status: 500 }
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter() {
        for failed_attempt in 1..=4u32 {
            let full = BASE * 2u32.pow(failed_attempt - 1);
            for _ in 0..50 {
                let delay = delay_before_retry(&server_error(), failed_attempt, BASE).expect("retry");
                assert!(delay >= full / 2 && delay <= full, "{delay:?} for attempt {failed_attempt}");
            }
        }
        let late = delay_before_retry(&server_error(), 40, BASE).expect("retry");
        assert!(late <= MAX_BACKOFF);
    }

    #[test]
    fn rate_limits_wait_as_told() {
        let told = KlickTippError::RateLimited { operation: "op", retry_after: Some(Duration::from_secs(2)) };
        assert_eq!(delay_before_retry(&told, 1, BASE), Some(Duration::from_secs(2)));
        let untold = KlickTippError::RateLimited { operation: "op", retry_after: None };
        assert_eq!(delay_before_retry(&untold, 3, BASE), Some(DEFAULT_RETRY_AFTER));
        let too_long = KlickTippError::RateLimited { operation: "op", retry_after: Some(Duration::from_secs(3600)) };
        assert_eq!(delay_before_retry(&too_long, 1, BASE), None);
    }

    #[test]
    fn parses_retry_after() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
