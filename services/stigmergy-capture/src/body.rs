//! Request bodies: read within the size limit, refuse nesting deeper than the limit before
//! parsing, and split into events (one JSON object, a JSON array, or NDJSON lines), each with the
//! JSON pointer prefix its violations are reported under.

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::Value;

use crate::CaptureConfig;
use crate::problem::{Problem, Violation};

/// How the events were sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// One JSON object.
    Single,
    /// A JSON array of objects.
    Array,
    /// Newline-delimited JSON, one object per line.
    Ndjson,
}

/// The events of a request, each with its pointer prefix (`""` for a single event, `/i` in a
/// batch).
#[derive(Debug)]
pub struct Events {
    pub framing: Framing,
    pub items: Vec<(String, Value)>,
}

pub(crate) fn too_large(limit: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "Request body too large",
        format!(
            "the body is larger than the limit of {limit} bytes; split it into several requests"
        ),
    )
    .with("limit", limit)
}

/// Reads the whole body, refusing (413) as soon as it exceeds `limit` bytes.
pub async fn read_limited(
    request: &actix_web::HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, Problem> {
    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large(limit));
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "unreadable-body",
                "Unreadable body",
                error.to_string(),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The byte offset at which nesting first exceeds `max_depth`, scanning JSON text without
/// parsing it (so a deeply nested body costs nothing but this scan).
pub fn nesting_exceeded_at(text: &[u8], max_depth: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, &byte) in text.iter().enumerate() {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Some(offset);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            // A new NDJSON line starts again at depth 0 only if the previous one was balanced;
            // an unbalanced line is caught by the parser.
            _ => {}
        }
    }
    None
}

fn malformed(detail: String, pointer: String) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "malformed-json",
        "Malformed JSON",
        detail.clone(),
    )
    .with_errors(vec![Violation { pointer, detail }])
}

/// Splits a body into events according to its content type.
pub fn split(content_type: &str, body: &[u8], config: &CaptureConfig) -> Result<Events, Problem> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ndjson = match media.as_str() {
        "" | "application/json" => false,
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => true,
        other if other.ends_with("+json") => false,
        other => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                format!(
                    "{other} is not accepted; send application/json (one event or an array) or application/x-ndjson"
                ),
            ));
        }
    };
    if let Some(offset) = nesting_exceeded_at(body, config.max_json_depth) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "too-deep",
            "JSON nested too deeply",
            format!(
                "arrays and objects are nested more than {} levels deep (at byte {offset})",
                config.max_json_depth
            ),
        )
        .with("limit", config.max_json_depth)
        .with("offset", offset));
    }
    let events = if ndjson {
        let mut items = Vec::new();
        for (line_number, line) in body.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let pointer = format!("/{}", items.len());
            let value: Value = serde_json::from_slice(line).map_err(|error| {
                malformed(
                    format!("line {}: {error}", line_number + 1),
                    pointer.clone(),
                )
            })?;
            items.push((pointer, value));
        }
        Events {
            framing: Framing::Ndjson,
            items,
        }
    } else {
        let value: Value = serde_json::from_slice(body)
            .map_err(|error| malformed(error.to_string(), String::new()))?;
        match value {
            Value::Array(values) => Events {
                framing: Framing::Array,
                items: values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (format!("/{i}"), v))
                    .collect(),
            },
            single => Events {
                framing: Framing::Single,
                items: vec![(String::new(), single)],
            },
        }
    };
    if events.items.is_empty() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty-batch",
            "No events",
            "the request holds no event",
        ));
    }
    if events.items.len() > config.max_events_per_request {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-many-events",
            "Too many events",
            format!(
                "the request holds {} events; at most {} are accepted in one request",
                events.items.len(),
                config.max_events_per_request
            ),
        )
        .with("limit", config.max_events_per_request));
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str, max_depth: usize, expected: Option<usize>) {
        assert_eq!(
            nesting_exceeded_at(body.as_bytes(), max_depth),
            expected,
            "{body}"
        );
    }

    #[test]
    fn nesting_is_measured_outside_strings() {
        check(r#"{"a":[1,2,{"b":3}]}"#, 3, None);
        check(r#"{"a":[1,2,{"b":3}]}"#, 2, Some(10));
        check(r#"{"a":"[[[[[[[["}"#, 1, None);
        check(r#"{"a":"\"[[["}"#, 1, None);
        check(&"[".repeat(10_000), 32, Some(32));
    }

    #[test]
    fn bodies_split_into_events_with_their_pointers() {
        let config = CaptureConfig::default();
        let single = split("application/json", br#"{"type":"X"}"#, &config).map(|e| e.framing);
        assert_eq!(single.ok(), Some(Framing::Single));
        let array =
            split("application/json; charset=utf-8", br#"[{},{}]"#, &config).map(|e| e.items.len());
        assert_eq!(array.ok(), Some(2));
        let lines = split("application/x-ndjson", b"{}\n\n{}\n", &config).map(|e| e.items.len());
        assert_eq!(lines.ok(), Some(2));
        let broken = split("application/x-ndjson", b"{}\n{oops\n", &config)
            .err()
            .map(|p| p.errors);
        assert_eq!(broken.map(|e| e[0].pointer.clone()).as_deref(), Some("/1"));
        assert_eq!(
            split("text/csv", b"a,b", &config)
                .err()
                .map(|p| p.status.as_u16()),
            Some(415)
        );
        assert_eq!(
            split("application/json", b"[]", &config)
                .err()
                .map(|p| p.status.as_u16()),
            Some(422)
        );
    }
}
