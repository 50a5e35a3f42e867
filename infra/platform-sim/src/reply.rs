//! An answer before it becomes an HTTP response, so the status can be logged.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use serde_json::Value;

#[derive(Debug, Clone)]
pub(crate) enum ReplyBody {
    Json(Value),
    Text(String),
    Html(String),
    Empty,
}

#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: ReplyBody,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self { status, body: ReplyBody::Json(body), headers: Vec::new() }
    }

    pub fn ok(body: Value) -> Self {
        Self::json(200, body)
    }

    pub fn text(status: u16, text: &str) -> Self {
        Self { status, body: ReplyBody::Text(text.to_owned()), headers: Vec::new() }
    }

    pub fn html(status: u16, html: String) -> Self {
        Self { status, body: ReplyBody::Html(html), headers: Vec::new() }
    }

    pub fn empty(status: u16) -> Self {
        Self { status, body: ReplyBody::Empty, headers: Vec::new() }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn into_response(self) -> Response<Body> {
        let (content_type, body) = match self.body {
            ReplyBody::Json(value) => (Some("application/json"), Body::from(value.to_string())),
            ReplyBody::Text(text) => (Some("text/plain; charset=utf-8"), Body::from(text)),
            ReplyBody::Html(html) => (Some("text/html; charset=utf-8"), Body::from(html)),
            ReplyBody::Empty => (None, Body::empty()),
        };
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let Some(content_type) = content_type {
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}
