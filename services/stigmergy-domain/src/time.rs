//! Instants in time, as RFC 3339 timestamps with an explicit offset.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use chrono::{DateTime, SecondsFormat, Utc};
use regex::Regex;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

macro_rules! month_day_time {
    () => {
        concat!(
            "-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])",
            "T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[.][0-9]{1,9})?",
        )
    };
}

/// The shape of an accepted timestamp. Leap seconds (`:60`) and 24:00 are refused, and the date
/// itself is checked by the parser and by the schema's `date-time` format. Years 0001 to 9998 may
/// carry any offset, years 0000 and 9999 only `Z`: so every accepted instant is written back in
/// UTC with a four-digit year, and reads back the same.
const TIMESTAMP_PATTERN: &str = concat!(
    "^(?:",
    "(?:0(?:00[1-9]|0[1-9][0-9]|[1-9][0-9]{2})|[1-8][0-9]{3}|9(?:[0-8][0-9]{2}|9[0-8][0-9]|99[0-8]))",
    month_day_time!(),
    "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])",
    "|(?:0000|9999)",
    month_day_time!(),
    "Z",
    ")$"
);

static TIMESTAMP_RE: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)]
    Regex::new(TIMESTAMP_PATTERN).expect("the timestamp pattern is a valid regular expression")
});

/// An instant, kept in UTC with nanosecond precision. Parsed from RFC 3339 with an explicit offset
/// (`2026-05-01T08:30:00Z`, `2026-05-01T10:30:00.250+02:00`); written back in UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    pub fn parse(text: &str) -> Result<Self, String> {
        let refuse = || {
            format!(
                "{text:?} is not a timestamp: use RFC 3339 with an offset, e.g. 2026-05-01T08:30:00Z"
            )
        };
        if !TIMESTAMP_RE.is_match(text) {
            return Err(refuse());
        }
        DateTime::parse_from_rfc3339(text)
            .map(|instant| Self(instant.with_timezone(&Utc)))
            .map_err(|_| refuse())
    }

    pub fn from_datetime(instant: DateTime<Utc>) -> Self {
        Self(instant)
    }

    pub fn datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// Microseconds since the Unix epoch (the precision events are compared at).
    pub fn unix_micros(&self) -> i64 {
        self.0.timestamp_micros()
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(&self) -> i64 {
        self.0.timestamp_millis()
    }
}

impl TryFrom<String> for Timestamp {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Timestamp> for String {
    fn from(value: Timestamp) -> Self {
        value.to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "RFC 3339 timestamp with an explicit offset, e.g. 2026-05-01T08:30:00Z.",
            "type": "string",
            "format": "date-time",
            "pattern": TIMESTAMP_PATTERN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_in_utc() {
        let parsed = Timestamp::parse("2026-05-01T10:30:00.250+02:00").ok();
        assert_eq!(
            parsed.map(|t| t.to_string()).as_deref(),
            Some("2026-05-01T08:30:00.250Z")
        );
        for refused in [
            "2026-05-01 08:30:00Z",
            "2026-05-01T08:30:00",
            "2026-02-30T08:30:00Z",
            "2026-05-01T23:59:60Z",
            "2026-05-01t08:30:00z",
            "0000-01-01T00:30:00+01:00",
            "9999-12-31T23:30:00-01:00",
            "0000-06-01T00:00:00+00:00",
        ] {
            assert!(Timestamp::parse(refused).is_err(), "{refused}");
        }
        for edge in [
            "0001-01-01T00:00:00+23:59",
            "9998-12-31T23:59:59-23:59",
            "9999-12-31T23:59:59Z",
        ] {
            let parsed = Timestamp::parse(edge);
            let read_back = parsed
                .as_ref()
                .ok()
                .map(|t| Timestamp::parse(&t.to_string()));
            assert_eq!(read_back, Some(parsed), "{edge}");
        }
    }
}
