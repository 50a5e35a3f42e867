//! The KlickTipp contract as data, and a runner that checks any base URL
//! against it: the simulator in tests, a real test account when
//! `KLICKTIPP_BASE_URL` is set.
//!
//! A table (`tests/contract.json`, bundled as [`ContractTable::bundled`]) is an
//! ordered list of cases. Each case sends one request and checks the status and
//! the body *shape*; later cases use values captured from earlier answers
//! (`${tag_a}`), so the table creates what it needs and deletes it at the end.
//!
//! Variables: `${name}` as a whole JSON string is replaced by the variable's
//! JSON value (a captured integer stays an integer); `${name:string}` and any
//! `${name}` inside longer text give its text. Built in: `run` (unique per
//! run), `username`, `password`, `email_domain` (default `example.com`). A case that needs
//! a variable nobody defined is skipped, not failed.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::auth::partner_ci;
use crate::config::PartnerAccount;

/// The table shipped with the crate.
pub const BUNDLED_TABLE_JSON: &str = include_str!("../tests/contract.json");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractTable {
    #[serde(default)]
    pub description: String,
    pub cases: Vec<ContractCase>,
}

impl ContractTable {
    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        Ok(serde_json::from_str(text)?)
    }

    pub fn bundled() -> anyhow::Result<Self> {
        Self::from_json(BUNDLED_TABLE_JSON)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractCase {
    pub name: String,
    /// The section-8 row this case belongs to, for people reading failures.
    #[serde(default)]
    pub row: String,
    pub request: CaseRequest,
    pub expect: CaseExpect,
    /// Variable name -> where to find it in the answer: a JSON pointer
    /// (`/0`, `/id`), `key_where_value=<text>` (first map key with that value)
    /// or `last_segment:<pointer>` (the last path segment of the URL there).
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseRequest {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub auth: CaseAuth,
    #[serde(default)]
    pub encoding: BodyEncoding,
    #[serde(default)]
    pub body: Option<Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseAuth {
    /// No cookie, no partner headers.
    #[default]
    None,
    /// The runner's session (logged in once, on first use).
    Session,
    /// A session logged in for this case only (e.g. to log it out).
    FreshSession,
    /// A cookie with the right name and a made-up id.
    DeadSession,
    /// `X-Un` / `X-Ci`; skipped without partner credentials.
    Partner,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyEncoding {
    #[default]
    Json,
    /// `application/x-www-form-urlencoded` with PHP bracket keys.
    Form,
    /// `multipart/form-data` with PHP bracket names.
    Multipart,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseExpect {
    pub status: u16,
    pub shape: Shape,
    /// `error` number of an error object, or a list of acceptable numbers.
    #[serde(default)]
    pub error: Option<Value>,
    /// A JSON value the body must contain (objects: a subset of keys, recursively).
    #[serde(default)]
    pub contains: Option<Value>,
    /// Keys the body object must have.
    #[serde(default)]
    pub has_keys: Vec<String>,
    /// The answer sets a `SSESS…` session cookie.
    #[serde(default)]
    pub set_cookie: bool,
    /// Ids the answer's id list must hold (compared as text). The id list is
    /// the body when it is an array, else its `subscribers` array.
    #[serde(default)]
    pub ids_include: Vec<Value>,
    /// Ids the answer's id list must not hold.
    #[serde(default)]
    pub ids_exclude: Vec<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Anything, including an empty body.
    Any,
    Empty,
    /// A non-empty JSON array of strings (`["API access denied."]`).
    ArrayOfStrings,
    /// `[true]`.
    TrueArray,
    /// `[123]`: one integer.
    IntArray,
    /// `["https://…"]`.
    UrlArray,
    /// A JSON string (the router's 405 text).
    JsonString,
    /// `{"error": <int>, …}`.
    ErrorObject,
    /// The contact object: string `id`, `email`, `status`, `listid`, `tags` array, `manual_tags`.
    ContactObject,
    /// A map from numeric id strings to strings, or `[]` when empty.
    IdMap,
    /// A map from `field…` keys to labels.
    FieldMap,
    /// `{sessid, session_name: "SSESS…", account: {…}}`.
    LoginObject,
    /// `{tagid: "<digits>", name, text}`.
    TagObject,
    /// `{listid, name, usesingleoptin, …}`.
    ListObject,
    /// `{id, name}`.
    FieldObject,
    /// `GET /subscriber`: `{"subscribers": ["123", …]}` (OpenAPI) or a plain `["123", …]`.
    SubscriberIndex,
    /// Any JSON object.
    Object,
}

/// Where to run the table and as whom.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub partner: Option<PartnerAccount>,
    /// Extra variables, e.g. `single_optin_listid`, `listbuilding_apikey`, `smart_tagid`.
    pub vars: BTreeMap<String, String>,
}

impl Credentials {
    /// From `KLICKTIPP_BASE_URL`, `KLICKTIPP_USERNAME`, `KLICKTIPP_PASSWORD`,
    /// optional `KLICKTIPP_DEVELOPER_KEY` + `KLICKTIPP_CUSTOMER_KEY`, and the
    /// variables `KLICKTIPP_LISTBUILDING_APIKEY`, `KLICKTIPP_SINGLE_OPTIN_LISTID`,
    /// `KLICKTIPP_SMART_TAGID`, `KLICKTIPP_TEST_EMAIL_DOMAIN`.
    /// `None` when `KLICKTIPP_BASE_URL` is not set.
    pub fn from_env() -> Option<(String, Credentials)> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let base_url = env("KLICKTIPP_BASE_URL")?;
        let username = env("KLICKTIPP_USERNAME").unwrap_or_default();
        let partner = match (env("KLICKTIPP_DEVELOPER_KEY"), env("KLICKTIPP_CUSTOMER_KEY")) {
            (Some(developer_key), Some(customer_key)) => {
                Some(PartnerAccount { username: username.clone(), developer_key, customer_key })
            }
            _ => None,
        };
        let mut vars = BTreeMap::new();
        for (var, name) in [
            ("listbuilding_apikey", "KLICKTIPP_LISTBUILDING_APIKEY"),
            ("single_optin_listid", "KLICKTIPP_SINGLE_OPTIN_LISTID"),
            ("smart_tagid", "KLICKTIPP_SMART_TAGID"),
            ("email_domain", "KLICKTIPP_TEST_EMAIL_DOMAIN"),
        ] {
            if let Some(value) = env(name) {
                vars.insert(var.to_owned(), value);
            }
        }
        Some((
            base_url,
            Credentials { username, password: env("KLICKTIPP_PASSWORD").unwrap_or_default(), partner, vars },
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub case: String,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.case, self.message)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableReport {
    pub passed: Vec<String>,
    /// Case name and why it was skipped.
    pub skipped: Vec<(String, String)>,
    pub failures: Vec<Failure>,
}

/// Runs every case in order; the failures (empty = the target honours the contract).
pub async fn run_table(base_url: &str, credentials: &Credentials, table: &ContractTable) -> Vec<Failure> {
    run_table_report(base_url, credentials, table).await.failures
}

/// Like [`run_table`], with passed and skipped cases too.
pub async fn run_table_report(base_url: &str, credentials: &Credentials, table: &ContractTable) -> TableReport {
    let mut runner = Runner::new(base_url, credentials);
    let mut report = TableReport::default();
    for case in &table.cases {
        match runner.run_case(case).await {
            CaseOutcome::Passed => report.passed.push(case.name.clone()),
            CaseOutcome::Skipped(why) => report.skipped.push((case.name.clone(), why)),
            CaseOutcome::Failed(message) => report.failures.push(Failure { case: case.name.clone(), message }),
        }
    }
    report
}

enum CaseOutcome {
    Passed,
    Skipped(String),
    Failed(String),
}

#[derive(Clone)]
struct SessionCookie {
    name: String,
    id: String,
}

struct Answer {
    status: u16,
    content_type: String,
    set_cookie: Vec<String>,
    text: String,
    json: Option<Value>,
}

struct Runner<'a> {
    client: reqwest::Client,
    base_url: String,
    credentials: &'a Credentials,
    vars: BTreeMap<String, Value>,
    session: Option<SessionCookie>,
}

impl<'a> Runner<'a> {
    fn new(base_url: &str, credentials: &'a Credentials) -> Self {
        let run =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| format!("{:x}", d.as_nanos())).unwrap_or_default();
        let mut vars = BTreeMap::from([
            ("run".to_owned(), Value::String(run)),
            ("username".to_owned(), Value::String(credentials.username.clone())),
            ("password".to_owned(), Value::String(credentials.password.clone())),
            ("email_domain".to_owned(), Value::String("example.com".to_owned())),
        ]);
        for (name, value) in &credentials.vars {
            vars.insert(name.clone(), Value::String(value.clone()));
        }
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
        Self { client, base_url: base_url.trim_end_matches('/').to_owned(), credentials, vars, session: None }
    }

    async fn run_case(&mut self, case: &ContractCase) -> CaseOutcome {
        let path = match substitute(&Value::String(case.request.path.clone()), &self.vars) {
            Ok(path) => text_of(&path),
            Err(missing) => return CaseOutcome::Skipped(format!("needs variable {missing}")),
        };
        let body = match case.request.body.as_ref().map(|b| substitute(b, &self.vars)) {
            None => None,
            Some(Ok(body)) => Some(body),
            Some(Err(missing)) => {
                return CaseOutcome::Skipped(format!("needs variable {missing}"));
            }
        };
        let contains = match case.expect.contains.as_ref().map(|c| substitute(c, &self.vars)) {
            None => None,
            Some(Ok(contains)) => Some(contains),
            Some(Err(missing)) => {
                return CaseOutcome::Skipped(format!("needs variable {missing}"));
            }
        };
        let has_keys = match case
            .expect
            .has_keys
            .iter()
            .map(|key| substitute_text(key, &self.vars).map(|k| text_of(&k)))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(keys) => keys,
            Err(missing) => return CaseOutcome::Skipped(format!("needs variable {missing}")),
        };
        let ids = |wanted: &[Value]| substitute(&Value::Array(wanted.to_vec()), &self.vars);
        let (ids_include, ids_exclude) = match (ids(&case.expect.ids_include), ids(&case.expect.ids_exclude)) {
            (Ok(include), Ok(exclude)) => (include, exclude),
            (Err(missing), _) | (_, Err(missing)) => {
                return CaseOutcome::Skipped(format!("needs variable {missing}"));
            }
        };
        let auth_headers = match self.auth_headers(case.request.auth).await {
            Ok(Some(headers)) => headers,
            Ok(None) => return CaseOutcome::Skipped("needs partner credentials".to_owned()),
            Err(problem) => return CaseOutcome::Failed(problem),
        };
        let answer =
            match self.send(&case.request.method, &path, auth_headers, case.request.encoding, body.as_ref()).await {
                Ok(answer) => answer,
                Err(problem) => return CaseOutcome::Failed(problem),
            };
        let mut problems = check(&case.expect, contains.as_ref(), &has_keys, &answer);
        problems.extend(check_ids(&ids_include, &ids_exclude, &answer));
        if !problems.is_empty() {
            return CaseOutcome::Failed(format!(
                "{} {}: {}; got {} {}",
                case.request.method,
                path,
                problems.join("; "),
                answer.status,
                snippet(&answer.text)
            ));
        }
        for (var, location) in &case.capture {
            match answer.json.as_ref().and_then(|json| capture(json, location)) {
                Some(value) => {
                    self.vars.insert(var.clone(), value);
                }
                None => {
                    return CaseOutcome::Failed(format!(
                        "could not capture {var} at {location} from {}",
                        snippet(&answer.text)
                    ));
                }
            }
        }
        CaseOutcome::Passed
    }

    /// `Ok(None)`: the case needs partner credentials that were not given.
    async fn auth_headers(&mut self, auth: CaseAuth) -> Result<Option<Vec<(String, String)>>, String> {
        let cookie = |session: &SessionCookie| vec![("cookie".to_owned(), format!("{}={}", session.name, session.id))];
        Ok(Some(match auth {
            CaseAuth::None => Vec::new(),
            CaseAuth::Session => cookie(&self.session().await?),
            CaseAuth::FreshSession => cookie(&self.login().await?),
            CaseAuth::DeadSession => {
                let name = self.session().await?.name;
                cookie(&SessionCookie { name, id: "contract-test-dead-session-0000000000000000000".to_owned() })
            }
            CaseAuth::Partner => {
                let Some(partner) = &self.credentials.partner else {
                    return Ok(None);
                };
                let ci = partner_ci(&partner.developer_key, &partner.customer_key)
                    .map_err(|e| format!("partner credentials: {e}"))?;
                vec![("x-un".to_owned(), partner.username.clone()), ("x-ci".to_owned(), ci)]
            }
        }))
    }

    async fn session(&mut self) -> Result<SessionCookie, String> {
        if let Some(session) = &self.session {
            return Ok(session.clone());
        }
        let session = self.login().await?;
        self.session = Some(session.clone());
        Ok(session)
    }

    async fn login(&self) -> Result<SessionCookie, String> {
        let body = json!({"username": self.credentials.username, "password": self.credentials.password});
        let answer = self.send("POST", "/account/login", Vec::new(), BodyEncoding::Json, Some(&body)).await?;
        let json = answer.json.as_ref();
        let field = |key: &str| json.and_then(|j| j.get(key)).and_then(Value::as_str).map(str::to_owned);
        match (answer.status, field("session_name"), field("sessid")) {
            (200, Some(name), Some(id)) => Ok(SessionCookie { name, id }),
            _ => Err(format!("runner login failed: {} {}", answer.status, snippet(&answer.text))),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: Vec<(String, String)>,
        encoding: BodyEncoding,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| format!("bad method {method}: {e}"))?;
        let mut request = self.client.request(method, format!("{}{path}", self.base_url));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = match encoding {
                BodyEncoding::Json => request.json(body),
                BodyEncoding::Form => {
                    let encoded =
                        serde_urlencoded::to_string(php_pairs(body)).map_err(|e| format!("cannot form-encode: {e}"))?;
                    request.header("content-type", "application/x-www-form-urlencoded").body(encoded)
                }
                BodyEncoding::Multipart => {
                    let (content_type, encoded) = multipart_body(&php_pairs(body));
                    request.header("content-type", content_type).body(encoded)
                }
            };
        }
        let response = request.send().await.map_err(|e| format!("request failed: {e}"))?;
        let status = response.status().as_u16();
        let header_text = |value: &reqwest::header::HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
        let content_type = response.headers().get("content-type").map(header_text).unwrap_or_default();
        let set_cookie = response.headers().get_all("set-cookie").iter().map(header_text).collect();
        let text = response.text().await.map_err(|e| format!("unreadable answer: {e}"))?;
        let json = serde_json::from_str(&text).ok();
        Ok(Answer { status, content_type, set_cookie, text, json })
    }
}

// --- variables ------------------------------------------------------------------

/// Replaces `${name}` / `${name:string}` everywhere (object keys become text);
/// `Err(name)` for an unknown variable.
fn substitute(value: &Value, vars: &BTreeMap<String, Value>) -> Result<Value, String> {
    Ok(match value {
        Value::String(text) => substitute_text(text, vars)?,
        Value::Array(items) => Value::Array(items.iter().map(|item| substitute(item, vars)).collect::<Result<_, _>>()?),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((text_of(&substitute_text(k, vars)?), substitute(v, vars)?)))
                .collect::<Result<Map<_, _>, String>>()?,
        ),
        other => other.clone(),
    })
}

fn substitute_text(text: &str, vars: &BTreeMap<String, Value>) -> Result<Value, String> {
    let lookup = |reference: &str| -> Result<(Value, bool), String> {
        let (name, as_string) = match reference.strip_suffix(":string") {
            Some(name) => (name, true),
            None => (reference, false),
        };
        vars.get(name).cloned().map(|value| (value, as_string)).ok_or_else(|| name.to_owned())
    };
    // The whole string is one reference: keep the variable's JSON type.
    if let Some(reference) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}'))
        && !reference.contains(['{', '}'])
    {
        let (value, as_string) = lookup(reference)?;
        return Ok(if as_string { Value::String(text_of(&value)) } else { value });
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let (value, _) = lookup(&after[..end])?;
        out.push_str(&text_of(&value));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn capture(json: &Value, location: &str) -> Option<Value> {
    if let Some(pointer) = location.strip_prefix("last_segment:") {
        let url = json.pointer(pointer)?.as_str()?;
        let path = url.split(['?', '#']).next().unwrap_or_default().trim_end_matches('/');
        return path.rsplit('/').next().filter(|segment| !segment.is_empty()).map(|s| Value::String(s.to_owned()));
    }
    if let Some(wanted) = location.strip_prefix("key_where_value=") {
        return json.as_object().and_then(|map| {
            map.iter().find(|(_, v)| v.as_str() == Some(wanted)).map(|(k, _)| Value::String(k.clone()))
        });
    }
    json.pointer(location).cloned()
}

// --- encodings ----------------------------------------------------------------------

/// Flattens JSON into PHP form pairs: `fields[fieldFirstName]`, `tagids[0]`.
fn php_pairs(value: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}[{key}]") };
                    walk(&name, child, out);
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    walk(&format!("{prefix}[{index}]"), child, out);
                }
            }
            Value::Null => out.push((prefix.to_owned(), String::new())),
            other => out.push((prefix.to_owned(), text_of(other))),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

fn multipart_body(pairs: &[(String, String)]) -> (String, String) {
    let boundary = "----klicktipp-contract-boundary-7d41";
    let mut body = String::new();
    for (name, value) in pairs {
        body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

// --- checks -----------------------------------------------------------------------------

fn snippet(text: &str) -> String {
    const MAX: usize = 300;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    }
}

fn check(expect: &CaseExpect, contains: Option<&Value>, has_keys: &[String], answer: &Answer) -> Vec<String> {
    let mut problems = Vec::new();
    if answer.status != expect.status {
        problems.push(format!("status {} expected", expect.status));
    }
    let json_expected = !matches!(expect.shape, Shape::Any | Shape::Empty);
    if json_expected && !answer.content_type.contains("json") {
        problems.push(format!("content type {:?} is not JSON", answer.content_type));
    }
    if let Err(problem) = check_shape(expect.shape, answer) {
        problems.push(problem);
    }
    if let Some(wanted) = &expect.error {
        let got = answer.json.as_ref().and_then(|j| j.get("error"));
        let acceptable = match wanted {
            Value::Array(options) => options.clone(),
            single => vec![single.clone()],
        };
        if !got.is_some_and(|got| acceptable.contains(got)) {
            problems.push(format!("error {wanted} expected"));
        }
    }
    if let Some(wanted) = contains
        && !answer.json.as_ref().is_some_and(|j| contains_value(j, wanted))
    {
        problems.push(format!("body should contain {wanted}"));
    }
    for key in has_keys {
        if answer.json.as_ref().is_none_or(|j| j.get(key).is_none()) {
            problems.push(format!("key {key:?} missing"));
        }
    }
    if expect.set_cookie {
        let ok = answer.set_cookie.iter().any(|cookie| {
            let lower = cookie.to_ascii_lowercase();
            cookie.starts_with("SSESS") && lower.contains("httponly")
        });
        if !ok {
            problems.push("no SSESS… httponly Set-Cookie".to_owned());
        }
    }
    problems
}

/// The id list of an answer (an array, or the `subscribers` array of an object), as text.
fn id_list(answer: &Answer) -> Option<Vec<String>> {
    let json = answer.json.as_ref()?;
    let items = json.as_array().or_else(|| json.get("subscribers").and_then(Value::as_array))?;
    Some(items.iter().map(text_of).collect())
}

fn check_ids(include: &Value, exclude: &Value, answer: &Answer) -> Vec<String> {
    let (Some(include), Some(exclude)) = (include.as_array(), exclude.as_array()) else {
        return Vec::new();
    };
    if include.is_empty() && exclude.is_empty() {
        return Vec::new();
    }
    let Some(ids) = id_list(answer) else {
        return vec!["no id list in the body".to_owned()];
    };
    let mut problems = Vec::new();
    for wanted in include.iter().map(text_of) {
        if !ids.contains(&wanted) {
            problems.push(format!("id {wanted} missing from the list"));
        }
    }
    for unwanted in exclude.iter().map(text_of) {
        if ids.contains(&unwanted) {
            problems.push(format!("id {unwanted} should not be listed"));
        }
    }
    problems
}

/// Objects: a subset of keys, recursively. Arrays: every wanted item is
/// contained in some actual item (order free). Anything else: equality.
fn contains_value(actual: &Value, wanted: &Value) -> bool {
    match (actual, wanted) {
        (Value::Object(actual), Value::Object(wanted)) => {
            wanted.iter().all(|(k, w)| actual.get(k).is_some_and(|a| contains_value(a, w)))
        }
        (Value::Array(actual), Value::Array(wanted)) => {
            wanted.iter().all(|w| actual.iter().any(|a| contains_value(a, w)))
        }
        (actual, wanted) => actual == wanted,
    }
}

fn is_digit_string(value: &Value) -> bool {
    value.as_str().is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

fn is_map_or_empty_array(value: &Value) -> bool {
    value.is_object() || value.as_array().is_some_and(Vec::is_empty)
}

fn check_shape(shape: Shape, answer: &Answer) -> Result<(), String> {
    let body = answer.json.as_ref();
    let fail = |what: &str| Err(format!("body is not {what}"));
    let object = body.and_then(Value::as_object);
    let str_key = |key: &str| object.and_then(|o| o.get(key)).is_some_and(Value::is_string);
    match shape {
        Shape::Any => Ok(()),
        Shape::Empty if answer.text.trim().is_empty() => Ok(()),
        Shape::Empty => fail("empty"),
        Shape::ArrayOfStrings => match body.and_then(Value::as_array) {
            Some(items) if !items.is_empty() && items.iter().all(Value::is_string) => Ok(()),
            _ => fail("a non-empty array of strings"),
        },
        Shape::TrueArray if body == Some(&json!([true])) => Ok(()),
        Shape::TrueArray => fail("[true]"),
        Shape::IntArray => match body.and_then(Value::as_array).map(Vec::as_slice) {
            Some([only]) if only.is_u64() => Ok(()),
            _ => fail("a one-integer array"),
        },
        Shape::UrlArray => match body.and_then(Value::as_array).map(Vec::as_slice) {
            Some([Value::String(url)]) if url.starts_with("http") => Ok(()),
            _ => fail("a one-URL array"),
        },
        Shape::JsonString if body.is_some_and(Value::is_string) => Ok(()),
        Shape::JsonString => fail("a JSON string"),
        Shape::ErrorObject => match object.and_then(|o| o.get("error")) {
            Some(code) if code.is_u64() => Ok(()),
            _ => fail("an error object"),
        },
        Shape::ContactObject => {
            let ok = object.is_some_and(|o| {
                o.get("id").is_some_and(is_digit_string)
                    && o.get("listid").is_some_and(is_digit_string)
                    && ["email", "status", "optin"].iter().all(|k| str_key(k))
                    && o.get("tags").is_some_and(Value::is_array)
                    && o.get("manual_tags").is_some_and(is_map_or_empty_array)
            });
            if ok { Ok(()) } else { fail("a contact object") }
        }
        Shape::IdMap => match body {
            Some(Value::Array(items)) if items.is_empty() => Ok(()),
            Some(Value::Object(map))
                if map.iter().all(|(k, v)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) && v.is_string()) =>
            {
                Ok(())
            }
            _ => fail("a map of id strings to strings"),
        },
        Shape::FieldMap => match object {
            Some(map) if !map.is_empty() && map.iter().all(|(k, v)| k.starts_with("field") && v.is_string()) => Ok(()),
            _ => fail("a map of field keys to labels"),
        },
        Shape::LoginObject => {
            let ok = str_key("sessid")
                && object
                    .and_then(|o| o.get("session_name"))
                    .and_then(Value::as_str)
                    .is_some_and(|name| name.starts_with("SSESS"))
                && object.and_then(|o| o.get("account")).is_some_and(Value::is_object);
            if ok { Ok(()) } else { fail("a login object") }
        }
        Shape::TagObject => {
            let ok = object.is_some_and(|o| o.get("tagid").is_some_and(is_digit_string)) && str_key("name");
            if ok { Ok(()) } else { fail("a tag object") }
        }
        Shape::ListObject => {
            let ok = object.is_some_and(|o| {
                o.get("listid").is_some()
                    && o.get("name").is_some_and(Value::is_string)
                    && o.get("usesingleoptin").is_some()
            });
            if ok { Ok(()) } else { fail("an opt-in process object") }
        }
        Shape::FieldObject if str_key("id") && str_key("name") => Ok(()),
        Shape::FieldObject => fail("a field object"),
        Shape::SubscriberIndex => {
            let items = body.and_then(|b| b.as_array().or_else(|| b.get("subscribers").and_then(Value::as_array)));
            match items {
                Some(items) if items.iter().all(|id| is_digit_string(id) || id.is_u64()) => Ok(()),
                _ => fail("a subscriber index ({\"subscribers\":[ids]} or [ids])"),
            }
        }
        Shape::Object if object.is_some() => Ok(()),
        Shape::Object => fail("an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_keeps_types_or_makes_text() {
        let vars = BTreeMap::from([("tag".to_owned(), json!(17)), ("run".to_owned(), json!("ab"))]);
        assert_eq!(substitute(&json!("${tag}"), &vars), Ok(json!(17)));
        assert_eq!(substitute(&json!("${tag:string}"), &vars), Ok(json!("17")));
        assert_eq!(
            substitute(&json!({"e": "x-${run}@y", "t": ["${tag}"]}), &vars),
            Ok(json!({"e": "x-ab@y", "t": [17]}))
        );
        assert_eq!(substitute(&json!("${nope}"), &vars), Err("nope".to_owned()));
    }

    #[test]
    fn php_pairs_flatten_nested_values() {
        let mut pairs = php_pairs(&json!({"email": "a@b.de", "tagids": [1, 2], "fields": {"fieldCity": "X"}}));
        pairs.sort();
        assert_eq!(
            pairs,
            vec![
                ("email".to_owned(), "a@b.de".to_owned()),
                ("fields[fieldCity]".to_owned(), "X".to_owned()),
                ("tagids[0]".to_owned(), "1".to_owned()),
                ("tagids[1]".to_owned(), "2".to_owned()),
            ]
        );
    }

    #[test]
    fn captures_the_last_url_segment_and_checks_id_lists() {
        let redirect = json!(["https://sim.invalid/pending/k3y9?x=1"]);
        assert_eq!(capture(&redirect, "last_segment:/0"), Some(json!("k3y9")));
        assert_eq!(capture(&json!(["https://sim.invalid/"]), "last_segment:/0"), Some(json!("sim.invalid")));
        let answer = |text: &str| Answer {
            status: 200,
            content_type: "application/json".to_owned(),
            set_cookie: Vec::new(),
            text: text.to_owned(),
            json: serde_json::from_str(text).ok(),
        };
        let object = answer(r#"{"subscribers":["1","2"]}"#);
        assert!(check_ids(&json!([1, "2"]), &json!([3]), &object).is_empty());
        assert_eq!(check_ids(&json!([3]), &json!(["1"]), &object).len(), 2);
        assert!(check_ids(&json!(["7"]), &json!([]), &answer("[7]")).is_empty());
        assert!(contains_value(&json!({"tags": ["5", "6"]}), &json!({"tags": ["6"]})));
        assert!(!contains_value(&json!({"tags": ["5"]}), &json!({"tags": ["6"]})));
    }

    #[test]
    fn bundled_table_parses() {
        let table = ContractTable::bundled().expect("tests/contract.json is valid");
        assert!(table.cases.len() > 50);
    }
}
