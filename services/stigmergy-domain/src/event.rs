//! The event envelope, the ten event types, and what a client submits.

use std::fmt;

use schemars::JsonSchema;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::ids::{EventId, Iri, OrganizationId};
use crate::payload::*;
use crate::time::Timestamp;

/// The version of the event schemas this code writes and reads.
pub const CURRENT_SCHEMA_VERSION: SchemaVersion = SchemaVersion(1);

/// The version of an event's schema. Stored events never change; an upcaster turns an older
/// version into the current one when one is introduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "u32")]
pub struct SchemaVersion(u32);

impl SchemaVersion {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for SchemaVersion {
    fn default() -> Self {
        CURRENT_SCHEMA_VERSION
    }
}

impl TryFrom<u32> for SchemaVersion {
    type Error = String;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        if value == CURRENT_SCHEMA_VERSION.0 {
            Ok(Self(value))
        } else {
            Err(format!(
                "schema version {value} is not supported; the current version is 1"
            ))
        }
    }
}

/// JSON does not tell `1` from `1.0`, and neither does the schema's `const`; so any number equal to
/// a supported version is that version.
impl TryFrom<f64> for SchemaVersion {
    type Error = String;
    fn try_from(value: f64) -> Result<Self, Self::Error> {
        if value == f64::from(CURRENT_SCHEMA_VERSION.0) {
            Ok(CURRENT_SCHEMA_VERSION)
        } else {
            Err(format!(
                "schema version {value} is not supported; the current version is 1"
            ))
        }
    }
}

impl From<SchemaVersion> for u32 {
    fn from(value: SchemaVersion) -> Self {
        value.0
    }
}

/// A position in the event log: the n-th event appended, counting from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LogPosition(pub u64);

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The lifecycle stage an event belongs to; one Kafka topic per stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Design,
    Contribution,
    Fabrication,
    Logistics,
    EndOfLife,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Self::Design => "design",
            Self::Contribution => "contribution",
            Self::Fabrication => "fabrication",
            Self::Logistics => "logistics",
            Self::EndOfLife => "endoflife",
        }
    }
}

macro_rules! event_types {
    ($($variant:ident => $stage:expr),* $(,)?) => {
        /// The type of a lifecycle event.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        pub enum EventType {
            $($variant),*
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($variant)),*
                }
            }

            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $(stringify!($variant) => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// The stage of this type; a retraction belongs to the stage of what it retracts.
            pub fn stage(self) -> Option<Stage> {
                match self {
                    $(Self::$variant => $stage),*
                }
            }
        }

        /// What happened: one of the ten lifecycle payloads.
        #[derive(Clone, Debug, PartialEq)]
        pub enum EventPayload {
            $($variant($variant)),*
        }

        impl EventPayload {
            pub fn event_type(&self) -> EventType {
                match self {
                    $(Self::$variant(_) => EventType::$variant),*
                }
            }

            /// Parses the JSON payload of an event of type `event_type`. An error names the JSON
            /// pointer, relative to the payload, where the payload went wrong.
            pub fn from_json(event_type: EventType, payload: &Value) -> Result<Self, SubmissionError> {
                match event_type {
                    $(EventType::$variant => parse_at(payload, "/payload").map(Self::$variant)),*
                }
            }
        }

        impl Serialize for EventPayload {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Self::$variant(payload) => payload.serialize(serializer)),*
                }
            }
        }
    };
}

event_types! {
    DesignPublished => Some(Stage::Design),
    DesignForked => Some(Stage::Design),
    ContributionRecorded => Some(Stage::Contribution),
    MaterialSourced => Some(Stage::Fabrication),
    BatchFabricated => Some(Stage::Fabrication),
    ShipmentDispatched => Some(Stage::Logistics),
    ShipmentReceived => Some(Stage::Logistics),
    BatchRepaired => Some(Stage::Fabrication),
    BatchRecycled => Some(Stage::EndOfLife),
    EventRetracted => None,
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl EventPayload {
    /// The thing this event is about, when the payload alone says it (every type but
    /// `EventRetracted`, whose subject is that of the retracted event).
    pub fn own_subject(&self) -> Option<&Iri> {
        Some(match self {
            Self::DesignPublished(p) => &p.design_id,
            Self::DesignForked(p) => &p.design_id,
            Self::ContributionRecorded(p) => &p.target,
            Self::MaterialSourced(p) => &p.lot_id,
            Self::BatchFabricated(p) => &p.batch_id,
            Self::ShipmentDispatched(p) => &p.shipment_id,
            Self::ShipmentReceived(p) => &p.shipment_id,
            Self::BatchRepaired(p) => &p.resource,
            Self::BatchRecycled(p) => &p.resource,
            Self::EventRetracted(_) => return None,
        })
    }

    /// What an event that published or forked a design says of the design: its licence, its
    /// version and where its files are.
    pub fn design_release(&self) -> Option<DesignRelease<'_>> {
        let (licence, version, source_uri) = match self {
            Self::DesignPublished(p) => (&p.licence, &p.version, &p.source_uri),
            Self::DesignForked(p) => (&p.licence, &p.version, &p.source_uri),
            _ => return None,
        };
        Some(DesignRelease {
            licence,
            version,
            source_uri: source_uri.as_ref(),
        })
    }
}

/// A design's licence, version and source, as the event that published or forked it says
/// ([`EventPayload::design_release`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DesignRelease<'a> {
    pub licence: &'a crate::ids::Licence,
    pub version: &'a crate::text::Name,
    pub source_uri: Option<&'a Iri>,
}

/// Where a submitted or stored event failed to parse, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmissionError {
    /// JSON pointer into the event.
    pub pointer: String,
    pub detail: String,
}

impl fmt::Display for SubmissionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at {}: {}",
            if self.pointer.is_empty() {
                "/"
            } else {
                &self.pointer
            },
            self.detail
        )
    }
}

impl std::error::Error for SubmissionError {}

fn parse_at<T: for<'de> Deserialize<'de>>(
    value: &Value,
    prefix: &str,
) -> Result<T, SubmissionError> {
    // The common case (valid input, already checked against the schema) parses without tracking
    // the path; only a failure is parsed again, tracking it, to say where it went wrong.
    T::deserialize(value).or_else(|_| {
        serde_path_to_error::deserialize(value).map_err(|error| {
            let mut pointer = prefix.to_owned();
            for segment in error.path().iter() {
                use serde_path_to_error::Segment;
                match segment {
                    Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
                    Segment::Map { key } | Segment::Enum { variant: key } => {
                        pointer.push('/');
                        pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    }
                    Segment::Unknown => {}
                }
            }
            SubmissionError {
                pointer,
                detail: error.into_inner().to_string(),
            }
        })
    })
}

/// An event as a client submits it: the server adds `recordedAt`, `recordedBy` and `subject`,
/// and mints `eventId` when it is missing.
#[derive(Clone, Debug, PartialEq)]
pub struct Submission {
    pub event_id: Option<EventId>,
    pub schema_version: SchemaVersion,
    pub occurred_at: Timestamp,
    /// What the client claims; it must be the authenticated organisation.
    pub recorded_by: Option<OrganizationId>,
    /// What the client claims; it must be the subject the payload implies.
    pub subject: Option<Iri>,
    pub payload: EventPayload,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSubmission {
    #[serde(default, deserialize_with = "present")]
    event_id: Option<EventId>,
    #[serde(rename = "type")]
    event_type: EventType,
    #[serde(default)]
    schema_version: SchemaVersion,
    occurred_at: Timestamp,
    #[serde(default, deserialize_with = "present")]
    recorded_by: Option<OrganizationId>,
    #[serde(default, deserialize_with = "present")]
    subject: Option<Iri>,
    /// Parsed on its own once the type is known.
    #[serde(rename = "payload")]
    _payload: serde::de::IgnoredAny,
}

/// An optional envelope field is absent or holds a value; `null` is refused, as the schema
/// refuses it.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

impl Submission {
    /// Parses one submitted event. Errors carry the JSON pointer of the offending value.
    pub fn from_json(value: Value) -> Result<Self, SubmissionError> {
        let raw: RawSubmission = parse_at(&value, "")?;
        let payload = value.get("payload").unwrap_or(&Value::Null);
        Ok(Self {
            event_id: raw.event_id,
            schema_version: raw.schema_version,
            occurred_at: raw.occurred_at,
            recorded_by: raw.recorded_by,
            subject: raw.subject,
            payload: EventPayload::from_json(raw.event_type, payload)?,
        })
    }

    pub fn to_json(&self) -> Value {
        let mut object = serde_json::Map::new();
        if let Some(id) = &self.event_id {
            object.insert("eventId".into(), Value::String(id.to_string()));
        }
        object.insert(
            "type".into(),
            Value::String(self.payload.event_type().name().into()),
        );
        object.insert(
            "schemaVersion".into(),
            Value::from(self.schema_version.get()),
        );
        object.insert(
            "occurredAt".into(),
            Value::String(self.occurred_at.to_string()),
        );
        if let Some(by) = &self.recorded_by {
            object.insert("recordedBy".into(), Value::String(by.to_string()));
        }
        if let Some(subject) = &self.subject {
            object.insert("subject".into(), Value::String(subject.to_string()));
        }
        object.insert(
            "payload".into(),
            serde_json::to_value(&self.payload).unwrap_or(Value::Null),
        );
        Value::Object(object)
    }
}

/// A recorded lifecycle event: the envelope and its payload, as stored in the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub event_id: EventId,
    pub schema_version: SchemaVersion,
    pub occurred_at: Timestamp,
    pub recorded_at: Timestamp,
    pub recorded_by: OrganizationId,
    pub subject: Iri,
    pub payload: EventPayload,
}

impl Event {
    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeOut<'a> {
    event_id: &'a EventId,
    #[serde(rename = "type")]
    event_type: EventType,
    schema_version: SchemaVersion,
    occurred_at: &'a Timestamp,
    recorded_at: &'a Timestamp,
    recorded_by: &'a OrganizationId,
    subject: &'a Iri,
    payload: &'a EventPayload,
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        EnvelopeOut {
            event_id: &self.event_id,
            event_type: self.event_type(),
            schema_version: self.schema_version,
            occurred_at: &self.occurred_at,
            recorded_at: &self.recorded_at,
            recorded_by: &self.recorded_by,
            subject: &self.subject,
            payload: &self.payload,
        }
        .serialize(serializer)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EnvelopeIn {
    event_id: EventId,
    #[serde(rename = "type")]
    event_type: EventType,
    schema_version: SchemaVersion,
    occurred_at: Timestamp,
    recorded_at: Timestamp,
    recorded_by: OrganizationId,
    subject: Iri,
    payload: Value,
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = EnvelopeIn::deserialize(deserializer)?;
        let payload =
            EventPayload::from_json(raw.event_type, &raw.payload).map_err(D::Error::custom)?;
        Ok(Self {
            event_id: raw.event_id,
            schema_version: raw.schema_version,
            occurred_at: raw.occurred_at,
            recorded_at: raw.recorded_at,
            recorded_by: raw.recorded_by,
            subject: raw.subject,
            payload,
        })
    }
}
