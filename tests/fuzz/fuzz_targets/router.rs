//! Any method, path, query, headers and body through `sources::handle`, the entry point the
//! ingest function calls. Paths are mostly built on the real routes so the fuzzer gets past
//! routing. Every source enabled; then none, where every answer must be 404 or 405.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use webinar_bridge::sources::{self, SourceSecrets};
use webinar_bridge_fuzz::{all_secrets, assert_contract, raw_request};

#[derive(Debug, Arbitrary)]
enum Path {
    WebinarJam(String),
    EverWebinar(String),
    Zoom { trailing_slash: bool },
    Generic(String),
    Health,
    Any(String),
}

impl Path {
    fn text(&self) -> String {
        match self {
            Path::WebinarJam(kind) => format!("/hooks/webinarjam/{kind}"),
            Path::EverWebinar(kind) => format!("/hooks/everwebinar/{kind}"),
            Path::Zoom { trailing_slash } => if *trailing_slash { "/hooks/zoom/" } else { "/hooks/zoom" }.to_owned(),
            Path::Generic(tool) => format!("/hooks/generic/{tool}"),
            Path::Health => "/health".to_owned(),
            Path::Any(path) => path.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    post: bool,
    other_method: String,
    path: Path,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let method = if input.post { "POST" } else { input.other_method.as_str() };
    let request = raw_request(method, &input.path.text(), input.query, input.headers, input.body);
    assert_contract(&sources::handle(&request, &all_secrets()));

    match sources::handle(&request, &SourceSecrets::default()) {
        Err(rejection) => {
            assert!(matches!(rejection.status(), 404 | 405), "disabled source answered {}", rejection.status())
        }
        Ok(outcome) => panic!("a bridge without secrets accepted {outcome:?}"),
    }
});
