//! What the fuzz targets share: the request a fuzzer input decodes to, the secrets every source
//! is enabled with, correct signing (random headers almost never authenticate, so a target signs
//! part of its inputs to reach the parsers behind the verifiers), and the contract every answer
//! must keep. A broken contract panics, which libFuzzer records as a crash with its input.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use webinar_bridge::Secret;
use webinar_bridge::sources::{RawRequest, Rejection, SourceOutcome, SourceSecrets};

pub const WEBINARJAM_SECRET: &str = "wj_fuzz_secret_0123456789";
pub const EVERWEBINAR_SECRET: &str = "ew_fuzz_secret_0123456789";
pub const ZOOM_SECRET: &str = "zoom_fuzz_secret_0123456789";
/// The Standard Webhooks specification's example secret.
pub const GENERIC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The bridge's clock in every fuzz run: fixed, so a crash reproduces.
pub const NOW_UNIX: i64 = 1_767_088_800;

/// The statuses DESIGN 7 allows for a refusal.
const REFUSAL_STATUSES: [u16; 7] = [400, 401, 404, 405, 413, 415, 422];

pub fn all_secrets() -> SourceSecrets {
    SourceSecrets {
        webinarjam: Some(Secret::new(WEBINARJAM_SECRET)),
        everwebinar: Some(Secret::new(EVERWEBINAR_SECRET)),
        zoom: Some(Secret::new(ZOOM_SECRET)),
        generic: Some(Secret::new(GENERIC_SECRET)),
    }
}

pub fn raw_request(
    method: &str,
    path: &str,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> RawRequest {
    RawRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        query,
        headers,
        body: Bytes::from(body),
        received_at: DateTime::<Utc>::from_timestamp(NOW_UNIX, 0).unwrap_or_default(),
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { unreachable!("HMAC takes keys of any length") };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `x-zm-signature` for `body` at `timestamp` (the header text, which need not be digits).
pub fn zoom_signature(timestamp: &str, body: &[u8]) -> String {
    format!("v0={}", hex::encode(hmac_sha256(ZOOM_SECRET.as_bytes(), &[b"v0:", timestamp.as_bytes(), b":", body])))
}

/// One `v1,<base64>` entry of `webhook-signature`.
pub fn standard_webhooks_signature(webhook_id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = BASE64.decode(GENERIC_SECRET.trim_start_matches("whsec_")).unwrap_or_default();
    let digest = hmac_sha256(&key, &[webhook_id.as_bytes(), b".", timestamp.as_bytes(), b".", body]);
    format!("v1,{}", BASE64.encode(digest))
}

/// Events, a validation answer, an ignore, or a refusal with an allowed status, a non-empty
/// message and no secret in it. Anything else is a bug.
pub fn assert_contract(result: &Result<SourceOutcome, Rejection>) {
    match result {
        Ok(SourceOutcome::Events(events)) => assert!(!events.is_empty(), "accepted without events"),
        Ok(
            SourceOutcome::UrlValidation { .. }
            | SourceOutcome::Ignored { .. }
            | SourceOutcome::ZoomEnded(_)
            | SourceOutcome::ZoomUnidentifiedParticipant { .. },
        ) => {}
        Err(rejection) => {
            assert!(REFUSAL_STATUSES.contains(&rejection.status()), "status {}", rejection.status());
            assert!(!rejection.message.trim().is_empty(), "empty message for {}", rejection.code);
            for secret in [WEBINARJAM_SECRET, EVERWEBINAR_SECRET, ZOOM_SECRET, GENERIC_SECRET] {
                assert!(!rejection.message.contains(secret), "the message of {} leaks a secret", rejection.code);
            }
        }
    }
}

/// Whether a correctly authenticated request was still refused as unauthenticated.
pub fn assert_not_unauthorized(result: &Result<SourceOutcome, Rejection>) {
    if let Err(rejection) = result {
        assert_ne!(rejection.status(), 401, "authenticated, yet refused with {}", rejection.code);
    }
}
