//! The HTTP edge of the real `webinar-bridge serve` (issue 12, defects 1 and 8): idle and
//! slow-header sockets beyond the connection cap do not stop `/health` and the webhooks from
//! answering, slow and idle connections are closed, and protocol-level errors get a 4xx, JSON
//! wherever hyper lets the router answer.
//!
//! Raw TCP where the request is not something an HTTP client would send. Every wait is bounded.
//! Needs `cargo build --workspace` first (the harness says so if the binary is missing).

use klicktipp_sim::Simulator;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use webinar_bridge_tests::harness::{self, BridgeEnv, ServeProcess, WEBINARJAM_SECRET};

/// What "still answering" means for a new request while the edge is under pressure.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// Upper bound of any single read in these tests.
const READ_LIMIT: Duration = Duration::from_secs(5);

struct Edge {
    serve: ServeProcess,
    address: SocketAddr,
    _simulator: Simulator,
    _dir: TempDir,
}

impl Edge {
    async fn start(args: &[&str]) -> Self {
        let simulator = harness::start_simulator().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let env = BridgeEnv::for_simulator(&simulator.url(), &dir.path().join("bridge.db"));
        let serve = ServeProcess::start(&env, args).await;
        let address = serve.url("").trim_start_matches("http://").parse().expect("serve's address");
        Self { serve, address, _simulator: simulator, _dir: dir }
    }

    fn logs(&self) -> String {
        format!("{}\n{}", self.serve.stdout_text(), self.serve.stderr_text())
    }

    async fn connect(&self) -> TcpStream {
        tokio::time::timeout(READ_LIMIT, TcpStream::connect(self.address))
            .await
            .expect("connect in time")
            .expect("connect to serve")
    }

    /// A GET /health on a new connection: its status and how long the answer took.
    async fn health(&self) -> (u16, Duration) {
        let started = Instant::now();
        let reply = self.exchange(b"GET /health HTTP/1.1\r\nHost: bridge\r\nConnection: close\r\n\r\n").await;
        (reply.status, started.elapsed())
    }

    /// A valid WebinarJam registration on a new connection: the reply and how long it took.
    async fn webinarjam(&self, email: &str) -> (Reply, Duration) {
        let body = json!({"email": email, "first_name": "Erika", "webinar_id": "123", "webinar_name": "Masterclass"})
            .to_string();
        let request = format!(
            "POST /hooks/webinarjam/registered HTTP/1.1\r\nHost: bridge\r\nConnection: close\r\n\
             Content-Type: application/json\r\nAuthorization: Bearer {WEBINARJAM_SECRET}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let started = Instant::now();
        let reply = self.exchange(request.as_bytes()).await;
        (reply, started.elapsed())
    }

    /// Sends `request` on a new connection (writing on while reading, as a client that does not
    /// wait for the answer would) and reads the answer, at most for [`READ_LIMIT`].
    async fn exchange(&self, request: &[u8]) -> Reply {
        let stream = self.connect().await;
        let (mut reader, mut writer) = stream.into_split();
        let request = request.to_vec();
        let writing = tokio::spawn(async move {
            // The server may answer and close before it has read everything: that is fine.
            let _ = writer.write_all(&request).await;
            writer
        });
        let received = read_answer(&mut reader, READ_LIMIT).await;
        writing.abort();
        Reply::parse(&received)
    }
}

/// Everything received until one whole answer is in, EOF, a reset or `limit`.
async fn read_answer(reader: &mut (impl tokio::io::AsyncRead + Unpin), limit: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 8192];
    let deadline = tokio::time::Instant::now() + limit;
    while !is_complete(&received)
        && let Ok(Ok(read)) = tokio::time::timeout_at(deadline, reader.read(&mut buffer)).await
        && read > 0
    {
        received.extend_from_slice(&buffer[..read]);
    }
    received
}

/// A head and as many body bytes as its `content-length` says.
fn is_complete(received: &[u8]) -> bool {
    let text = String::from_utf8_lossy(received);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
    let length = head
        .lines()
        .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|value| value.trim().to_owned()))
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(0);
    body.len() >= length
}

/// Whether the server closes `stream` within `limit` (EOF or reset, no answer expected).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buffer = [0_u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn parse(received: &[u8]) -> Self {
        let text = String::from_utf8_lossy(received).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status line in {text:?}"));
        Self { status, head: head.to_ascii_lowercase(), body: body.to_owned() }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {self:?}"))
    }

    /// DESIGN 7's error body with a sentence a person can act on.
    fn assert_json_error(&self, status: u16, error: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(self.head.contains("content-type: application/json"), "{self:?}");
        let body = self.json();
        assert_eq!(body["error"], error, "{self:?}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.split_whitespace().count() >= 4 && message.ends_with('.'),
            "not a sentence a person can act on: {self:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The connection cap

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_beyond_the_cap_do_not_stop_health_or_webhooks() {
    const CAP: usize = 16;
    let edge = Edge::start(&["--max-connections", &CAP.to_string()]).await;

    // Three times the cap of sockets that never send a byte, and some that send half a head.
    let mut idle = Vec::new();
    for _ in 0..3 * CAP {
        idle.push(edge.connect().await);
    }
    let mut slow = Vec::new();
    for _ in 0..CAP / 2 {
        let mut stream = edge.connect().await;
        stream.write_all(b"POST /hooks/webinarjam/registered HTTP/1.1\r\nHost: bridge\r\n").await.expect("write");
        slow.push(stream);
    }

    let (status, took) = edge.health().await;
    assert_eq!(status, 200, "/health answers with {} sockets held", idle.len() + slow.len());
    assert!(took < ANSWER_WITHIN, "/health took {took:?}");
    let (reply, took) = edge.webinarjam("cap@example.com").await;
    assert_eq!((reply.status, &reply.json()["status"]), (200, &json!("accepted")), "{reply:?}");
    assert!(took < ANSWER_WITHIN, "the webhook took {took:?}");

    // The server made room by closing the oldest idle sockets, not by refusing the new ones.
    let mut closed = 0;
    for stream in idle.iter_mut().take(CAP) {
        if closed_within(stream, Duration::from_secs(2)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, CAP, "the {CAP} oldest idle sockets were closed to make room");
    let logs = edge.logs();
    assert!(
        logs.lines().any(|line| line.contains("connection cap reached") && line.contains("closed_longest_idle")),
        "shedding is logged:\n{logs}"
    );
    drop((idle, slow));

    // With every slot holding a request in flight (a body that does not come), a new connection
    // gets a quick 503 JSON answer instead of waiting.
    let mut stalled = Vec::new();
    for _ in 0..CAP {
        let mut stream = edge.connect().await;
        let head = format!(
            "POST /hooks/webinarjam/registered HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n\
             Authorization: Bearer {WEBINARJAM_SECRET}\r\nContent-Length: 100\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let reply = edge.exchange(b"GET /health HTTP/1.1\r\nHost: bridge\r\n\r\n").await;
    assert!(started.elapsed() < ANSWER_WITHIN, "the refusal took {:?}", started.elapsed());
    reply.assert_json_error(503, "overloaded");
    assert!(reply.head.contains("retry-after: 1"), "{reply:?}");
    let logs = edge.logs();
    assert!(logs.lines().any(|line| line.contains("refused_all_busy")), "the refusal is logged:\n{logs}");

    // Once those requests end, the edge answers normally again.
    drop(stalled);
    let started = Instant::now();
    loop {
        let (status, _) = edge.health().await;
        if status == 200 {
            break;
        }
        assert!(started.elapsed() < READ_LIMIT, "/health never recovered (last status {status})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Defect 1 as reported, in small: more idle sockets than serve has file descriptors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_beyond_the_open_file_limit_do_not_stop_health_or_webhooks() {
    const OPEN_FILES: u32 = 96;
    let simulator = harness::start_simulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let env = BridgeEnv::for_simulator(&simulator.url(), &dir.path().join("bridge.db"));
    // Timeouts far away: only the cap can make room.
    let args = ["--idle-timeout", "300", "--header-timeout", "300"];
    let serve = ServeProcess::start_with_open_file_limit(&env, &args, OPEN_FILES).await;
    let address = serve.url("").trim_start_matches("http://").parse().expect("serve's address");
    let edge = Edge { serve, address, _simulator: simulator, _dir: dir };

    let mut idle = Vec::new();
    for _ in 0..2 * OPEN_FILES {
        idle.push(edge.connect().await);
    }
    let (status, took) = edge.health().await;
    assert_eq!(status, 200, "/health answers with {} idle sockets held", idle.len());
    assert!(took < ANSWER_WITHIN, "/health took {took:?}");
    let (reply, took) = edge.webinarjam("files@example.com").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(took < ANSWER_WITHIN, "the webhook took {took:?}");
    let logs = edge.logs();
    assert!(
        logs.contains("--max-connections lowered to stay under the open-file limit"),
        "the lowered cap is logged:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_header_connections_are_closed() {
    let edge = Edge::start(&["--idle-timeout", "1", "--header-timeout", "2"]).await;

    // Sends nothing: the idle timeout closes it.
    let started = Instant::now();
    let mut silent = edge.connect().await;
    assert!(closed_within(&mut silent, READ_LIMIT).await, "a silent connection stays open");
    let silent_for = started.elapsed();
    assert!(silent_for >= Duration::from_millis(900), "closed before the idle timeout: {silent_for:?}");

    // Slowloris: a byte every 200 ms is not idle, but the head must be complete within 2 s.
    let started = Instant::now();
    let mut slow = edge.connect().await;
    slow.write_all(b"POST /hooks/webinarjam/registered HTTP/1.1\r\nHost: bridge\r\n").await.expect("write");
    let mut closed = false;
    for byte in b"X-Padding: ".iter().cycle().take(40) {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buffer = [0_u8; 256];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buffer)).await {
            closed = true;
            break;
        }
    }
    let slow_for = started.elapsed();
    assert!(closed, "a slow-header connection was still open after {slow_for:?}");
    assert!(
        slow_for >= Duration::from_millis(1_800) && slow_for < Duration::from_secs(5),
        "closed by the 2 s header timeout, not the idle timeout: {slow_for:?}"
    );

    // A keep-alive connection is closed once idle after its answer, too.
    let mut kept = edge.connect().await;
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: bridge\r\n\r\n").await.expect("write");
    let mut buffer = [0_u8; 1024];
    let read = tokio::time::timeout(READ_LIMIT, kept.read(&mut buffer)).await.expect("an answer").expect("read");
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut kept, READ_LIMIT).await, "an idle keep-alive connection stays open");
}

// ---------------------------------------------------------------------------------------------
// Protocol-level errors

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_answer_a_4xx_json_where_the_router_sees_them() {
    let edge = Edge::start(&[]).await;
    let authorized = format!(
        "POST /hooks/webinarjam/registered HTTP/1.1\r\nHost: bridge\r\nConnection: close\r\n\
         Content-Type: application/json\r\nAuthorization: Bearer {WEBINARJAM_SECRET}\r\n"
    );

    // A body announced as 10 MiB is refused from its Content-Length, before any of it is sent.
    let started = Instant::now();
    let reply = edge.exchange(format!("{authorized}Content-Length: 10485760\r\n\r\n").as_bytes()).await;
    reply.assert_json_error(413, "payload_too_large");
    assert!(started.elapsed() < ANSWER_WITHIN, "413 took {:?}", started.elapsed());
    assert!(reply.head.contains("connection: close"), "the connection is not reused: {reply:?}");

    // 300 KiB actually sent: the answer still arrives (the rest is read and dropped, no reset).
    let body = "x".repeat(300 * 1024);
    let reply = edge.exchange(format!("{authorized}Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).await;
    reply.assert_json_error(413, "payload_too_large");

    // A compressed body is refused as such, not as "not valid JSON".
    let gzip = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xab\xae\x05\x00\x43\xbf\xa6\xa3\x02\x00\x00\x00";
    let mut request =
        format!("{authorized}Content-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", gzip.len()).into_bytes();
    request.extend_from_slice(gzip);
    edge.exchange(&request).await.assert_json_error(415, "unsupported_content_encoding");

    // More headers than the router accepts, but few enough for hyper to parse: JSON 431.
    let many: String = (0..150).map(|index| format!("X-Header-{index}: value\r\n")).collect();
    edge.exchange(format!("{authorized}{many}Content-Length: 2\r\n\r\n{{}}").as_bytes())
        .await
        .assert_json_error(431, "request_header_fields_too_large");

    // What hyper refuses itself, before any handler runs: a 4xx, JSON only if it has a body.
    let thousands: String = (0..5_000).map(|index| format!("X-Header-{index}: value\r\n")).collect();
    let protocol_errors: [(&str, Vec<u8>, u16); 3] = [
        ("5,000 headers", format!("{authorized}{thousands}\r\n").into_bytes(), 431),
        ("garbage request line", b"\x16\x03\x01 not http at all\r\n\r\n".to_vec(), 400),
        ("negative Content-Length", format!("{authorized}Content-Length: -5\r\n\r\n{{}}").into_bytes(), 400),
    ];
    for (name, request, status) in protocol_errors {
        let reply = edge.exchange(&request).await;
        assert_eq!(reply.status, status, "{name}: {reply:?}");
        assert!(reply.body.is_empty() || serde_json::from_str::<Value>(&reply.body).is_ok(), "{name}: {reply:?}");
    }

    // The same server still accepts a valid request.
    let (reply, _) = edge.webinarjam("edge@example.com").await;
    assert_eq!(reply.status, 200, "{reply:?}");
}
