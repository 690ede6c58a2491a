//! The committed JSON Schemas (`schemas/` at the root of the repository), embedded at build time,
//! compiled once at start, and used to validate every submitted event. A test in the domain crate
//! keeps these files equal to the schemas generated from the types, so what capture enforces,
//! what it publishes at `GET /v1/schemas/{type}` and what the code parses cannot drift apart.

use std::collections::BTreeMap;

use serde_json::Value;
use stigmergy_domain::EventType;

use crate::problem::Violation;

macro_rules! committed {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../schemas/events/", $name, ".schema.json")))),*]
    };
}

/// The committed schema of each event type, by type name.
const EVENT_SCHEMAS: &[(&str, &str)] = committed![
    "DesignPublished",
    "DesignForked",
    "ContributionRecorded",
    "MaterialSourced",
    "BatchFabricated",
    "ShipmentDispatched",
    "ShipmentReceived",
    "BatchRepaired",
    "BatchRecycled",
    "EventRetracted",
];

/// The committed envelope schema (a stored event).
const ENVELOPE_SCHEMA: &str = include_str!("../../../schemas/envelope.schema.json");

/// Why the schemas could not be loaded; the service must not start then.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the committed schema {name} is not valid JSON: {source}")]
    NotJson {
        name: String,
        source: serde_json::Error,
    },
    #[error("the committed schema {name} does not compile: {reason}")]
    DoesNotCompile { name: String, reason: String },
    #[error("no committed schema for event type {0}")]
    Missing(String),
}

/// A compiled schema of one event type, with its published text.
struct Compiled {
    text: &'static str,
    validator: jsonschema::Validator,
}

/// Every event schema, compiled.
pub struct EventSchemas {
    by_type: BTreeMap<EventType, Compiled>,
}

impl std::fmt::Debug for EventSchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSchemas")
            .field("types", &self.by_type.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn compile(name: &str, text: &str) -> Result<jsonschema::Validator, SchemaError> {
    let schema: Value = serde_json::from_str(text).map_err(|source| SchemaError::NotJson {
        name: name.to_owned(),
        source,
    })?;
    jsonschema::options()
        .should_validate_formats(true)
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .build(&schema)
        .map_err(|error| SchemaError::DoesNotCompile {
            name: name.to_owned(),
            reason: error.to_string(),
        })
}

impl EventSchemas {
    /// Compiles the committed schemas; fails when any is missing or does not compile.
    pub fn load() -> Result<Self, SchemaError> {
        let mut by_type = BTreeMap::new();
        for &(name, text) in EVENT_SCHEMAS {
            let event_type =
                EventType::parse(name).ok_or_else(|| SchemaError::Missing(name.to_owned()))?;
            by_type.insert(
                event_type,
                Compiled {
                    text,
                    validator: compile(name, text)?,
                },
            );
        }
        for event_type in EventType::ALL {
            if !by_type.contains_key(event_type) {
                return Err(SchemaError::Missing(event_type.name().to_owned()));
            }
        }
        compile("envelope", ENVELOPE_SCHEMA)?;
        Ok(Self { by_type })
    }

    /// The published text of a schema: an event type's name, or `envelope`.
    pub fn text(&self, name: &str) -> Option<&'static str> {
        if name == "envelope" {
            return Some(ENVELOPE_SCHEMA);
        }
        EventType::parse(name)
            .and_then(|t| self.by_type.get(&t))
            .map(|c| c.text)
    }

    /// Names of every published schema.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.by_type.keys().map(|t| t.name()).collect();
        names.push("envelope");
        names
    }

    /// Validates one submitted event; `prefix` is the pointer of the event within the request
    /// (empty for a single event, `/3` for the fourth of a batch). Returns at most `limit`
    /// violations, each with the pointer of the offending value.
    pub fn validate(&self, event: &Value, prefix: &str, limit: usize) -> Vec<Violation> {
        let Some(object) = event.as_object() else {
            return vec![Violation {
                pointer: prefix.to_owned(),
                detail: format!("an event is a JSON object, not {}", json_kind(event)),
            }];
        };
        let type_name = match object.get("type") {
            Some(Value::String(name)) => name,
            Some(other) => {
                return vec![Violation {
                    pointer: format!("{prefix}/type"),
                    detail: format!("the event type is a string, not {}", json_kind(other)),
                }];
            }
            None => {
                return vec![Violation {
                    pointer: format!("{prefix}/type"),
                    detail: "the event type is missing".to_owned(),
                }];
            }
        };
        let Some(compiled) = EventType::parse(type_name).and_then(|t| self.by_type.get(&t)) else {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
            return vec![Violation {
                pointer: format!("{prefix}/type"),
                detail: format!(
                    "{type_name:?} is not an event type; expected one of {}",
                    known.join(", ")
                ),
            }];
        };
        // Most events are valid: the short-circuiting check costs a fraction of collecting
        // errors, which builds every keyword's location as it goes.
        if compiled.validator.is_valid(event) {
            return Vec::new();
        }
        compiled
            .validator
            .iter_errors(event)
            .take(limit)
            .map(|error| Violation {
                pointer: format!("{prefix}{}", error.instance_path().as_str()),
                detail: error.to_string(),
            })
            .collect()
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_committed_schema_compiles() {
        let schemas = EventSchemas::load().expect("the committed schemas compile");
        assert_eq!(schemas.names().len(), EventType::ALL.len() + 1);
    }

    #[test]
    fn a_schema_that_does_not_compile_is_an_error_not_a_silent_pass() {
        let broken = compile(
            "Broken",
            r#"{"type": "object", "properties": {"a": {"type": 12}}}"#,
        );
        assert!(
            matches!(broken, Err(SchemaError::DoesNotCompile { .. })),
            "{broken:?}"
        );
        let not_json = compile("NotJson", "{");
        assert!(matches!(not_json, Err(SchemaError::NotJson { .. })));
    }

    #[test]
    fn violations_point_at_the_offending_value() {
        let schemas = EventSchemas::load().expect("the committed schemas compile");
        let event = serde_json::json!({
            "type": "MaterialSourced",
            "occurredAt": "2026-05-01T08:30:00Z",
            "payload": {
                "lotId": "urn:uuid:0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6e",
                "material": "PLA",
                "quantity": { "amount": -3, "unit": "KGM" },
                "origin": { "name": "Mill", "country": "DE" },
                "supplier": { "id": "https://example.org/mill" },
                "kgCo2ePerUnit": 1.8,
                "dataQuality": "primary",
                "recycledContent": 0.0
            }
        });
        let violations = schemas.validate(&event, "/2", 10);
        let pointers: Vec<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(pointers, ["/2/payload/quantity/amount"]);
    }
}
