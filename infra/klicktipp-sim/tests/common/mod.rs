//! Shared helpers for the simulator's HTTP tests.
#![allow(dead_code)]

use klicktipp_sim::{SimConfig, Simulator};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

pub const USERNAME: &str = "bridge";
pub const PASSWORD: &str = "sim-password";

/// One answer, read completely.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    /// `(status, body)`, handy for one-line assertions.
    pub fn pair(&self) -> (u16, Value) {
        (self.status, self.json())
    }
}

/// A simulator plus an HTTP client that remembers its session cookie.
pub struct TestApi {
    pub sim: Simulator,
    pub client: reqwest::Client,
    pub cookie: Option<String>,
    pub extra_headers: Vec<(String, String)>,
}

impl TestApi {
    pub async fn start(config: SimConfig) -> Self {
        let sim = klicktipp_sim::start(config, "127.0.0.1:0").await.expect("simulator starts");
        Self { sim, client: reqwest::Client::new(), cookie: None, extra_headers: Vec::new() }
    }

    /// Started and logged in.
    pub async fn logged_in(config: SimConfig) -> Self {
        let mut api = Self::start(config).await;
        api.login().await;
        api
    }

    pub async fn login(&mut self) -> Answer {
        self.cookie = None;
        let answer = self.post("/account/login", json!({"username": USERNAME, "password": PASSWORD})).await;
        assert_eq!(answer.status, 200, "login failed: {}", answer.text);
        let body = answer.json();
        let name = body["session_name"].as_str().expect("session_name");
        let id = body["sessid"].as_str().expect("sessid");
        self.cookie = Some(format!("{name}={id}"));
        answer
    }

    fn request(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("valid method");
        let mut request = self.client.request(method, format!("{}{path}", self.sim.url()));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        for (name, value) in &self.extra_headers {
            request = request.header(name, value);
        }
        request
    }

    async fn read(request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("request reaches the simulator");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("answer body");
        Answer { status, headers, text }
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::read(request).await
    }

    /// A body sent as-is with the given content type.
    pub async fn send_raw(&self, method: &str, path: &str, content_type: &str, body: &str) -> Answer {
        Self::read(self.request(method, path).header("content-type", content_type).body(body.to_owned())).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send("POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.send("PUT", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send("DELETE", path, None).await
    }

    /// `POST /tag`, returning the new id.
    pub async fn create_tag(&self, name: &str) -> u64 {
        let answer = self.post("/tag", json!({"name": name})).await;
        assert_eq!(answer.status, 200, "create tag: {}", answer.text);
        answer.json()[0].as_u64().expect("[id]")
    }

    /// `POST /subscriber`, returning the contact object.
    pub async fn upsert(&self, body: Value) -> Value {
        let answer = self.post("/subscriber", body).await;
        assert_eq!(answer.status, 200, "upsert: {}", answer.text);
        answer.json()
    }
}
