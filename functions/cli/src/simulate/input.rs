//! The request file: one recorded request per line (JSON), blank lines ignored.
//!
//! `{"method","path","headers":{..},"body":"<raw text>"}` or `"body_base64"` instead of `"body"`,
//! optional `"query"` (the path may carry one too) and optional `"received_at"` (RFC 3339).

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use webinar_bridge::sources::RawRequest;

/// Where the synthetic clock starts: line N arrives N - 1 seconds after this.
pub const SYNTHETIC_START: &str = "2026-01-01T00:00:00Z";

/// Signed-request headers whose time is the request's arrival when `received_at` is absent, so a
/// recorded signature still verifies on replay.
const TIMESTAMP_HEADERS: [&str; 2] = ["x-zm-request-timestamp", "webhook-timestamp"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    method: String,
    path: String,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_base64: Option<String>,
    #[serde(default)]
    received_at: Option<String>,
}

/// One request of the file, ready to replay.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Line number in the file, from 1.
    pub line: usize,
    pub request: RawRequest,
}

/// A line that cannot be replayed, printed as `line N: what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub problem: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

/// Every request of the file, in file order; the first bad line is the error.
pub fn parse_file(content: &[u8]) -> Result<Vec<RecordedRequest>, LineError> {
    let start = synthetic_start();
    let mut requests = Vec::new();
    for (index, raw_line) in content.split(|byte| *byte == b'\n').enumerate() {
        let line = index + 1;
        let text =
            std::str::from_utf8(raw_line).map_err(|_| LineError { line, problem: "is not UTF-8 text".into() })?;
        if text.trim().is_empty() {
            continue;
        }
        let synthetic = start + chrono::Duration::seconds(i64::try_from(index).unwrap_or(i64::MAX / 2));
        let request = parse_line(text, synthetic).map_err(|problem| LineError { line, problem })?;
        requests.push(RecordedRequest { line, request });
    }
    Ok(requests)
}

fn synthetic_start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(SYNTHETIC_START).map(|start| start.with_timezone(&Utc)).unwrap_or_default()
}

fn parse_line(text: &str, synthetic_arrival: DateTime<Utc>) -> Result<RawRequest, String> {
    let line: Line = serde_json::from_str(text).map_err(|error| describe_json_error(&error))?;
    if line.method.is_empty() || !line.method.bytes().all(|byte| byte.is_ascii_alphabetic()) {
        return Err(format!("\"method\" must be an HTTP method such as POST, not {:?}", line.method));
    }
    if !line.path.starts_with('/') {
        return Err(format!("\"path\" must start with '/', e.g. /hooks/zoom, not {:?}", line.path));
    }
    let (path, query) = split_query(&line.path, line.query.as_deref());
    let body = body_bytes(line.body, line.body_base64)?;
    let headers: Vec<(String, String)> = line.headers.into_iter().collect();
    let received_at = match line.received_at.as_deref() {
        Some(raw) => DateTime::parse_from_rfc3339(raw).map(|at| at.with_timezone(&Utc)).map_err(|_| {
            format!("\"received_at\" must be an RFC 3339 time such as 2026-01-15T17:00:00Z, not {raw:?}")
        })?,
        None => signed_timestamp(&headers).unwrap_or(synthetic_arrival),
    };
    Ok(RawRequest { method: line.method, path, query, headers, body, received_at })
}

/// `/hooks/x?token=..` splits into path and query; a separate `"query"` is appended to it.
fn split_query(raw_path: &str, extra_query: Option<&str>) -> (String, Option<String>) {
    let (path, path_query) = match raw_path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (raw_path, None),
    };
    let parts: Vec<&str> = path_query
        .into_iter()
        .chain(extra_query.map(|query| query.trim_start_matches('?')))
        .filter(|q| !q.is_empty())
        .collect();
    let query = (!parts.is_empty()).then(|| parts.join("&"));
    (path.to_owned(), query)
}

fn body_bytes(body: Option<String>, body_base64: Option<String>) -> Result<Bytes, String> {
    match (body, body_base64) {
        (Some(_), Some(_)) => Err("give either \"body\" or \"body_base64\", not both".into()),
        (Some(text), None) => Ok(Bytes::from(text)),
        (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map(Bytes::from)
            .map_err(|error| format!("\"body_base64\" is not valid base64: {error}")),
        (None, None) => Ok(Bytes::new()),
    }
}

/// The time a signing header carries (Unix seconds), if any.
fn signed_timestamp(headers: &[(String, String)]) -> Option<DateTime<Utc>> {
    TIMESTAMP_HEADERS.iter().find_map(|wanted| {
        headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .and_then(|(_, value)| value.trim().parse::<i64>().ok())
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
    })
}

/// serde's message without its "at line 1 column N" (every line is line 1 to it).
fn describe_json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
    match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("not a JSON object: {message} (column {})", error.column())
        }
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(raw: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(raw).expect("valid time").with_timezone(&Utc)
    }

    #[test]
    fn arrival_comes_from_received_at_then_signature_header_then_line_number() {
        let file = concat!(
            r#"{"method":"POST","path":"/hooks/zoom","received_at":"2026-02-01T10:00:00+01:00"}"#,
            "\n\n",
            r#"{"method":"POST","path":"/hooks/zoom","headers":{"X-Zm-Request-Timestamp":"1768496520"}}"#,
            "\n",
            r#"{"method":"POST","path":"/hooks/webinarjam/registered?token=t","query":"a=1","body":"x=1"}"#,
        );
        let requests = parse_file(file.as_bytes()).expect("valid file");
        let lines: Vec<usize> = requests.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 3, 4]);
        assert_eq!(requests[0].request.received_at, at("2026-02-01T09:00:00Z"));
        assert_eq!(requests[1].request.received_at, at("2026-01-15T17:02:00Z"));
        assert_eq!(requests[2].request.received_at, at("2026-01-01T00:00:03Z"));
        assert_eq!(requests[2].request.path, "/hooks/webinarjam/registered");
        assert_eq!(requests[2].request.query.as_deref(), Some("token=t&a=1"));
        assert_eq!(&requests[2].request.body[..], b"x=1");
    }

    #[test]
    fn bad_lines_name_their_number_and_problem() {
        let cases = [
            ("{\"method\":\"POST\"", "not a JSON object"),
            (r#"{"method":"POST"}"#, "missing field `path`"),
            (r#"{"method":"POST","path":"/x","bdy":""}"#, "unknown field `bdy`"),
            (r#"{"method":"POST","path":"x"}"#, "must start with '/'"),
            (r#"{"method":"POST","path":"/x","body":"","body_base64":""}"#, "not both"),
            (r#"{"method":"POST","path":"/x","body_base64":"!!"}"#, "not valid base64"),
            (r#"{"method":"POST","path":"/x","received_at":"yesterday"}"#, "RFC 3339"),
            (r#"{"method":"POST","path":"/x","headers":{"a":1}}"#, "invalid type"),
        ];
        for (line, expected) in cases {
            let file = format!("\n{line}\n");
            let error = parse_file(file.as_bytes()).expect_err(line);
            assert_eq!(error.line, 2, "{line}");
            assert!(error.to_string().starts_with("line 2: "), "{error}");
            assert!(error.problem.contains(expected), "{line}: {error}");
        }
    }
}
