//! Rate limiting and injected faults.

use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::json;

use crate::messages::Msg;
use crate::reply::Reply;
use crate::state::SimState;

const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// 429 (with `Retry-After` when that knob is on); nothing happened.
    TooManyRequests,
    /// 500 with an empty body; nothing happened.
    Internal500,
    /// 502 with an HTML page from the proxy; nothing happened.
    BadGatewayHtml,
    /// The normal answer, late; the effect happens at once.
    Delay(Duration),
    /// 406 `{"error":12}`; nothing happened.
    Error12,
    /// 200 `{"error":12}`; nothing happened.
    ErrorIn200,
}

const BAD_GATEWAY_HTML: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

impl SimState {
    /// Rolling window over `(now - 1s, now]`: accepted when fewer than R
    /// requests were accepted in it. Refused requests do not count.
    pub fn admit(&mut self, now: Instant) -> bool {
        let Some(limit) = self.knobs.rate_limit_per_second else {
            self.accepted_recently.clear();
            return true;
        };
        while self.accepted_recently.front().is_some_and(|at| now.saturating_duration_since(*at) >= WINDOW) {
            self.accepted_recently.pop_front();
        }
        if self.accepted_recently.len() >= limit as usize {
            return false;
        }
        self.accepted_recently.push_back(now);
        true
    }

    /// One draw per call; the rates are stacked so the faults exclude each other.
    pub fn draw_fault(&mut self) -> Option<Fault> {
        let knobs = &self.knobs;
        let candidates = [
            (knobs.fault_rate_429, Fault::TooManyRequests),
            (knobs.fault_rate_500, Fault::Internal500),
            (knobs.fault_rate_502_html, Fault::BadGatewayHtml),
            (knobs.fault_rate_timeout, Fault::Delay(Duration::from_millis(knobs.timeout_ms))),
            (knobs.fault_rate_error12, Fault::Error12),
            (knobs.error_in_200_rate, Fault::ErrorIn200),
        ];
        if !candidates.iter().any(|(rate, _)| *rate > 0.0) {
            return None;
        }
        let roll: f64 = self.rng.random();
        let mut threshold = 0.0;
        for (rate, fault) in candidates {
            threshold += rate.clamp(0.0, 1.0);
            if roll < threshold {
                return Some(fault);
            }
        }
        None
    }

    pub fn too_many_requests(&self) -> Reply {
        let reply = Reply::message(429, Msg::TooManyRequests, self.knobs.language);
        if self.knobs.retry_after {
            reply.with_header("retry-after", self.knobs.retry_after_seconds.to_string())
        } else {
            reply
        }
    }
}

/// The answer of a fault that short-circuits the call.
pub(crate) fn fault_reply(fault: Fault) -> Option<Reply> {
    match fault {
        Fault::Internal500 => Some(Reply::empty(500)),
        Fault::BadGatewayHtml => Some(Reply::html(502, BAD_GATEWAY_HTML.to_owned())),
        Fault::Error12 => Some(Reply::error(12)),
        Fault::ErrorIn200 => Some(Reply::ok(json!({"error": 12}))),
        Fault::Delay(_) | Fault::TooManyRequests => None,
    }
}
