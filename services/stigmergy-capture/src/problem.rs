//! RFC 9457 problem details: every refusal the service gives is one of these, as
//! `application/problem+json`, with the JSON pointer of each thing that went wrong.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Map, Value};

/// Where the problem types are documented (`docs/api.md` lists them all).
pub const PROBLEM_BASE_URI: &str = "https://stigmergy.dev/problems/";

/// One thing wrong with the input: where (a JSON pointer) and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub pointer: String,
    pub detail: String,
}

/// A problem details document.
#[derive(Clone, Debug)]
pub struct Problem {
    pub status: StatusCode,
    /// The last segment of the problem type URI, e.g. `schema-violation`.
    pub kind: &'static str,
    pub title: String,
    pub detail: String,
    pub errors: Vec<Violation>,
    /// Extension members (`rule`, `limit`, …; `retryAfterMs` also sets `Retry-After`).
    pub extensions: Map<String, Value>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            title: title.into(),
            detail: detail.into(),
            errors: Vec::new(),
            extensions: Map::new(),
        }
    }

    /// Says when to send the request again: `retryAfterMs`, and `Retry-After` in whole seconds
    /// (rounded up).
    pub fn retry_after(self, wait: std::time::Duration) -> Self {
        self.with(
            "retryAfterMs",
            u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        )
    }

    pub fn with_errors(mut self, errors: Vec<Violation>) -> Self {
        self.errors = errors;
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert(
            "type".into(),
            format!("{PROBLEM_BASE_URI}{}", self.kind).into(),
        );
        body.insert("title".into(), self.title.clone().into());
        body.insert("status".into(), self.status.as_u16().into());
        body.insert("detail".into(), self.detail.clone().into());
        if !self.errors.is_empty() {
            body.insert(
                "errors".into(),
                serde_json::to_value(&self.errors).unwrap_or(Value::Null),
            );
        }
        for (key, value) in &self.extensions {
            body.insert(key.clone(), value.clone());
        }
        Value::Object(body)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.kind, self.detail)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if let Some(milliseconds) = self.extensions.get("retryAfterMs").and_then(Value::as_u64) {
            response.insert_header((header::RETRY_AFTER, milliseconds.div_ceil(1000).max(1)));
        }
        response.body(self.body().to_string())
    }
}
