//! Zoom: any headers and body, either with fuzzed `x-zm-*` headers (must always be 401) or
//! correctly signed at a fuzzed clock offset (401 `stale_timestamp` exactly when the offset is
//! beyond five minutes; otherwise the body parser is reached and must not panic).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use webinar_bridge::Secret;
use webinar_bridge::sources::zoom;
use webinar_bridge_fuzz::{
    NOW_UNIX, ZOOM_SECRET, assert_contract, assert_not_unauthorized, raw_request, zoom_signature,
};

#[derive(Debug, Arbitrary)]
enum Signing {
    Fuzzed { timestamp: Option<String>, signature: Option<String> },
    Correct { clock_offset_seconds: i16 },
}

#[derive(Debug, Arbitrary)]
struct Input {
    signing: Signing,
    json_content_type: bool,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let mut headers = Vec::new();
    if input.json_content_type {
        headers.push(("content-type".to_owned(), "application/json".to_owned()));
    }
    match &input.signing {
        Signing::Fuzzed { timestamp, signature } => {
            headers.extend(timestamp.clone().map(|value| ("x-zm-request-timestamp".to_owned(), value)));
            headers.extend(signature.clone().map(|value| ("x-zm-signature".to_owned(), value)));
        }
        Signing::Correct { clock_offset_seconds } => {
            let timestamp = (NOW_UNIX + i64::from(*clock_offset_seconds)).to_string();
            headers.push(("x-zm-signature".to_owned(), zoom_signature(&timestamp, &input.body)));
            headers.push(("x-zm-request-timestamp".to_owned(), timestamp));
        }
    }
    headers.extend(input.headers);
    let request = raw_request("POST", "/hooks/zoom", None, headers, input.body);

    let result = zoom::parse(&request, &Secret::new(ZOOM_SECRET));
    assert_contract(&result);
    match input.signing {
        Signing::Fuzzed { .. } => {
            let status = result.as_ref().err().map(|rejection| rejection.status());
            assert_eq!(status, Some(401), "an unsigned or mis-signed Zoom request got through");
        }
        Signing::Correct { clock_offset_seconds } if clock_offset_seconds.unsigned_abs() > 300 => {
            let code = result.as_ref().err().map(|rejection| rejection.code);
            assert_eq!(code, Some("stale_timestamp"), "a replay {clock_offset_seconds} s away got through");
        }
        Signing::Correct { .. } => assert_not_unauthorized(&result),
    }
});
