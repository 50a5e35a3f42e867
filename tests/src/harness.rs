//! The end-to-end harness (zero2prod's `spawn_app()` shape): the built `webinar-bridge` binary as
//! a subprocess, pointed at a KlickTipp simulator that runs inside the test process so a test can
//! set fault knobs and count calls; request signing; and the engine's pipeline wired in-process
//! over memory or SQLite adapters.
//!
//! The binary is not built here: `cargo build --workspace` is the test command's job. It is found
//! at `<target>/debug/webinar-bridge`, `<target>` being `CARGO_TARGET_DIR` or `<workspace>/target`.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use klicktipp_sim::{FieldType, SimConfig, Simulator};
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use webinar_bridge::Secret;
use webinar_bridge::adapters::memory::{
    MemoryContactStore, MemoryEventLog, MemoryQueue, MemoryTagDirectory, QueueSettings,
};
use webinar_bridge::adapters::sqlite::{SqliteContactStore, SqliteDb, SqliteEventLog, SqliteQueue, SqliteTagDirectory};
use webinar_bridge::config::BridgeConfig;
use webinar_bridge::consume::{Consumer, ConsumerOptions};
use webinar_bridge::ingest::Ingest;
use webinar_bridge::klicktipp::{KlickTippAuth, KlickTippClient, KlickTippConfig};
use webinar_bridge::ports::{ContactStore, EventLog, EventQueue, SystemClock, TagDirectory};
use webinar_bridge::tag_resolver::TagResolver;
use webinar_bridge::worker::{self, BatchSummary};

/// The secrets every suite configures (also the ones `tests/fixtures/simulate/example.jsonl` was
/// recorded with).
pub const WEBINARJAM_SECRET: &str = "wj-example-secret";
pub const ZOOM_SECRET: &str = "zoom-example-secret";
/// Standard Webhooks secret: `whsec_` + base64 of 24 bytes.
pub const GENERIC_SECRET: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3";
/// Names, webinar start, join URL, minutes and purchase amount go to KlickTipp.
pub const FIELD_MAP: &str = r#"{"first_name":"fieldFirstName","last_name":"fieldLastName","webinar_start":"field101","join_url":"field102","minutes_attended":"field103","purchase_amount":"field104"}"#;

/// The simulator account's credentials (`SimConfig::default()`).
pub const SIM_USERNAME: &str = "bridge";
pub const SIM_PASSWORD: &str = "sim-password";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Locating the binary

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The built `webinar-bridge`; panics with what to do when it is not there.
pub fn bridge_binary() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    };
    let binary = target.join("debug").join("webinar-bridge");
    assert!(
        binary.is_file(),
        "{} does not exist: build the workspace first (`cargo build --workspace --all-targets`), then run the e2e tests",
        binary.display()
    );
    binary
}

// ---------------------------------------------------------------------------------------------
// The simulator the binary talks to

/// The account every suite uses: KlickTipp's global fields plus the custom fields of [`FIELD_MAP`].
pub fn simulator_config() -> SimConfig {
    SimConfig::default()
        .with_custom_field("field101", "webinar_start", FieldType::DateTime)
        .with_custom_field("field102", "join_url", FieldType::Url)
        .with_custom_field("field103", "minutes_attended", FieldType::Number)
        .with_custom_field("field104", "purchase_amount", FieldType::Decimal)
}

pub async fn start_simulator() -> Simulator {
    klicktipp_sim::start(simulator_config(), "127.0.0.1:0").await.expect("start the KlickTipp simulator")
}

/// Calls per endpoint that happened after `before` was taken (endpoints with none left out).
pub fn calls_since(simulator: &Simulator, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    simulator
        .calls_by_endpoint()
        .into_iter()
        .map(|(endpoint, count)| {
            let earlier = before.get(&endpoint).copied().unwrap_or(0);
            (endpoint, count - earlier)
        })
        .filter(|(_, count)| *count > 0)
        .collect()
}

/// `[("POST /subscriber", 1), ...]` as a map, for comparing with [`calls_since`].
pub fn calls(expected: &[(&str, u64)]) -> BTreeMap<String, u64> {
    expected.iter().map(|(endpoint, count)| ((*endpoint).to_owned(), *count)).collect()
}

/// email -> sorted tag names, as the simulator holds them.
pub fn tags_by_email(simulator: &Simulator) -> BTreeMap<String, BTreeSet<String>> {
    simulator.contacts().into_iter().map(|contact| (contact.email, contact.tags.into_iter().collect())).collect()
}

// ---------------------------------------------------------------------------------------------
// Environment of the binary

/// The process environment of a `webinar-bridge` run. The child starts from an empty
/// environment, so nothing from the developer's shell (real credentials!) leaks in.
#[derive(Debug, Clone, Default)]
pub struct BridgeEnv {
    vars: BTreeMap<String, String>,
}

impl BridgeEnv {
    /// WebinarJam, Zoom and generic enabled (EverWebinar left disabled), [`FIELD_MAP`].
    pub fn with_sources() -> Self {
        Self::default()
            .set("BRIDGE_WEBINARJAM_SECRET", WEBINARJAM_SECRET)
            .set("BRIDGE_ZOOM_SECRET_TOKEN", ZOOM_SECRET)
            .set("BRIDGE_GENERIC_SECRET", GENERIC_SECRET)
            .set("BRIDGE_FIELD_MAP", FIELD_MAP)
    }

    /// [`Self::with_sources`] with the simulator as the KlickTipp account and `db` as BRIDGE_DB.
    pub fn for_simulator(simulator_url: &str, db: &Path) -> Self {
        Self::with_sources()
            .set("KLICKTIPP_BASE_URL", simulator_url)
            .set("KLICKTIPP_USERNAME", SIM_USERNAME)
            .set("KLICKTIPP_PASSWORD", SIM_PASSWORD)
            .set("BRIDGE_DB", &db.to_string_lossy())
    }

    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    /// The variables as set.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    pub fn remove(mut self, name: &str) -> Self {
        self.vars.remove(name);
        self
    }

    /// The configuration the binary will read, for in-process checks.
    pub fn config(&self) -> BridgeConfig {
        let vars = self.vars.iter().map(|(name, value)| (name.clone(), value.clone())).collect();
        BridgeConfig::from_vars(&vars).expect("the test environment is a valid configuration")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bridge_binary());
        command.args(args).env_clear().envs(&self.vars);
        if !self.vars.contains_key("RUST_LOG") {
            command.env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()));
        }
        command
    }
}

/// What a finished run of the binary left behind.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `webinar-bridge <args>` to completion.
pub fn run_bridge(env: &BridgeEnv, args: &[&str]) -> Finished {
    let output = env.command(args).output().expect("run webinar-bridge");
    Finished {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// [`run_bridge`] off the async runtime, so a simulator in this process keeps serving meanwhile.
pub async fn run_bridge_async(env: &BridgeEnv, args: &[&str]) -> Finished {
    let env = env.clone();
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_bridge(&env, &args)
    })
    .await
    .expect("the webinar-bridge run did not panic")
}

// ---------------------------------------------------------------------------------------------
// `webinar-bridge serve` as a subprocess

/// A running `webinar-bridge serve` on a free port. Killed when dropped.
pub struct ServeProcess {
    child: Child,
    base_url: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl ServeProcess {
    /// Starts serve with `--listen 127.0.0.1:0` plus `args`, learns its port from the banner and
    /// waits until `/health` answers.
    pub async fn start(env: &BridgeEnv, args: &[&str]) -> Self {
        let mut all_args = vec!["serve", "--listen", "127.0.0.1:0"];
        all_args.extend_from_slice(args);
        let mut child = env
            .command(&all_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn webinar-bridge serve");
        let stdout = collect_lines(child.stdout.take().expect("piped stdout"));
        let stderr = collect_lines(child.stderr.take().expect("piped stderr"));
        let mut serve = Self { child, base_url: String::new(), stdout, stderr };
        serve.base_url = serve.wait_for_banner().await;
        serve.wait_until_healthy().await;
        serve
    }

    /// [`Self::start`] under `ulimit -n open_files` (through `/bin/sh`, which then `exec`s serve).
    pub async fn start_with_open_file_limit(env: &BridgeEnv, args: &[&str], open_files: u32) -> Self {
        let binary = bridge_binary();
        let mut all_args = vec!["serve", "--listen", "127.0.0.1:0"];
        all_args.extend_from_slice(args);
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {open_files} && exec \"$0\" \"$@\""))
            .arg(&binary)
            .args(&all_args)
            .env_clear()
            .envs(&env.vars)
            .env("RUST_LOG", env.vars.get("RUST_LOG").map_or("info", String::as_str));
        let mut child =
            command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn sh -c webinar-bridge serve");
        let stdout = collect_lines(child.stdout.take().expect("piped stdout"));
        let stderr = collect_lines(child.stderr.take().expect("piped stderr"));
        let mut serve = Self { child, base_url: String::new(), stdout, stderr };
        serve.base_url = serve.wait_for_banner().await;
        serve.wait_until_healthy().await;
        serve
    }

    async fn wait_for_banner(&mut self) -> String {
        const PREFIX: &str = "webinar-bridge is listening on ";
        let started = Instant::now();
        loop {
            let found = self.stdout_lines().iter().find_map(|line| line.strip_prefix(PREFIX).map(str::to_owned));
            if let Some(url) = found {
                return url;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("webinar-bridge serve exited with {status} before listening; stderr:\n{}", self.stderr_text());
            }
            assert!(
                started.elapsed() < STARTUP_TIMEOUT,
                "serve printed no listen address; stderr:\n{}",
                self.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_until_healthy(&self) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(response) = client.get(self.url("/health")).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(started.elapsed() < STARTUP_TIMEOUT, "serve never became healthy; stderr:\n{}", self.stderr_text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        lock(&self.stdout).clone()
    }

    pub fn stdout_text(&self) -> String {
        self.stdout_lines().join("\n")
    }

    pub fn stderr_text(&self) -> String {
        lock(&self.stderr).join("\n")
    }

    /// SIGKILL: a crash, no cleanup of any kind.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL serve");
        self.child.wait().expect("reap serve");
    }

    /// SIGTERM, then waits for the exit; returns the exit status.
    pub async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll serve") {
                return status;
            }
            assert!(
                started.elapsed() < STOP_TIMEOUT,
                "serve did not stop after SIGTERM; stderr:\n{}",
                self.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect_lines(stream: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            lock(&sink).push(line);
        }
    });
    lines
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// Watching the SQLite file of a running serve

/// A second connection to serve's database (SQLite allows several processes on one file).
pub fn open_db(path: &Path) -> SqliteDb {
    SqliteDb::open(path).expect("open the bridge database")
}

/// Waits until serve's queue holds nothing: every accepted event has its outcome (or is a
/// dead letter). Panics after `timeout`.
pub async fn wait_until_drained(db: &SqliteDb, timeout: Duration) {
    let queue = SqliteQueue::new(db.clone(), QueueSettings::default());
    let started = Instant::now();
    loop {
        let pending = queue.pending().await.expect("count pending messages");
        if pending == 0 {
            return;
        }
        assert!(started.elapsed() < timeout, "{pending} messages still pending after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Signing

type HmacSha256 = Hmac<Sha256>;

/// Zoom's headers for `body` sent at `timestamp` (Unix seconds), signed with [`ZOOM_SECRET`].
pub fn zoom_headers(body: &str, timestamp: i64) -> Vec<(String, String)> {
    let mut mac = HmacSha256::new_from_slice(ZOOM_SECRET.as_bytes()).expect("any key length");
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("x-zm-request-timestamp".to_owned(), timestamp.to_string()),
        ("x-zm-signature".to_owned(), format!("v0={}", hex::encode(mac.finalize().into_bytes()))),
    ]
}

/// Standard Webhooks headers for `body`, signed with [`GENERIC_SECRET`].
pub fn standard_webhook_headers(id: &str, timestamp: i64, body: &str) -> Vec<(String, String)> {
    let encoded_key = GENERIC_SECRET.strip_prefix("whsec_").expect("a whsec_ secret");
    let key = base64::engine::general_purpose::STANDARD.decode(encoded_key).expect("base64 key");
    let mut mac = HmacSha256::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("webhook-id".to_owned(), id.to_owned()),
        ("webhook-timestamp".to_owned(), timestamp.to_string()),
        ("webhook-signature".to_owned(), format!("v1,{signature}")),
    ]
}

// ---------------------------------------------------------------------------------------------
// The pipeline in-process, over either set of embedded adapters

/// Which embedded adapters carry the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Sqlite,
}

/// Ingest and consumer wired as `serve` wires them, on `backend`, against `simulator`.
pub struct Pipeline {
    pub ingest: Ingest,
    pub consumer: Consumer,
    pub queue: Arc<dyn EventQueue>,
    pub log: Arc<dyn EventLog>,
}

impl Pipeline {
    /// Groups are processed one at a time so the batches (and the call counts) are the same on
    /// every backend and every run.
    pub fn new(backend: Backend, simulator: &Simulator, config: &BridgeConfig) -> Self {
        let clock = Arc::new(SystemClock);
        let ports = EmbeddedPorts::new(backend);
        let client = simulator_client(simulator);
        let ingest = Ingest::new(Arc::clone(&ports.queue), config.secrets.clone());
        let resolver = TagResolver::new(ports.tags, client.clone(), clock.clone());
        let options =
            ConsumerOptions { group_concurrency: 1, listid: config.klicktipp.listid, ..ConsumerOptions::default() };
        let consumer = Consumer::new(
            Arc::clone(&ports.log),
            ports.contacts,
            resolver,
            client,
            config.settings.clone(),
            options,
            clock,
        );
        Self { ingest, consumer, queue: ports.queue, log: ports.log }
    }

    /// Processes batches until one comes back empty (no retries are expected without faults).
    pub async fn drain(&self) -> BatchSummary {
        let mut total = BatchSummary::default();
        loop {
            let batch = worker::process_one_batch(self.queue.as_ref(), &self.consumer).await.expect("queue works");
            if batch.received == 0 {
                return total;
            }
            total.add(&batch);
        }
    }
}

struct EmbeddedPorts {
    queue: Arc<dyn EventQueue>,
    log: Arc<dyn EventLog>,
    contacts: Arc<dyn ContactStore>,
    tags: Arc<dyn TagDirectory>,
}

impl EmbeddedPorts {
    fn new(backend: Backend) -> Self {
        match backend {
            Backend::Memory => Self {
                queue: Arc::new(MemoryQueue::default()),
                log: Arc::new(MemoryEventLog::default()),
                contacts: Arc::new(MemoryContactStore::default()),
                tags: Arc::new(MemoryTagDirectory::default()),
            },
            Backend::Sqlite => {
                let db = SqliteDb::open_in_memory().expect("open an in-memory SQLite database");
                Self {
                    queue: Arc::new(SqliteQueue::new(db.clone(), QueueSettings::default())),
                    log: Arc::new(SqliteEventLog::new(db.clone())),
                    contacts: Arc::new(SqliteContactStore::new(db.clone())),
                    tags: Arc::new(SqliteTagDirectory::new(db)),
                }
            }
        }
    }
}

/// A client of the simulator's account without a rate cap.
pub fn simulator_client(simulator: &Simulator) -> KlickTippClient {
    let auth = KlickTippAuth::Session { username: SIM_USERNAME.to_owned(), password: Secret::new(SIM_PASSWORD) };
    let mut config = KlickTippConfig::new(simulator.url(), auth);
    config.rate_per_second = 0.0;
    KlickTippClient::new(config).expect("a client for the simulator")
}
