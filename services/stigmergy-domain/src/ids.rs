//! Identifiers: IRIs for everything that can be pointed at, UUIDs for events, licences, countries.
//!
//! Each type is parsed once from untrusted text and its JSON Schema carries exactly the pattern the
//! parser enforces, so the published schema and the code cannot disagree.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Longest identifier accepted, in characters.
pub const IRI_MAX_LEN: usize = 2048;

/// The characters an `https` IRI may use in its path, query and fragment (RFC 3986 `pchar`,
/// `/`, `?`, `%` for escapes). Written without shorthand classes so that the ECMA-262 regex of a
/// JSON Schema validator and the Rust regex crate read it the same way.
const IRI_PATTERN: &str = concat!(
    "^(?:",
    "urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "|urn:epc:(?:id|class|idpat):[a-z0-9]+:[A-Za-z0-9.%*_-]+",
    "|https://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?",
    "(?:/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?",
    "(?:[?][A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?",
    "(?:#[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?",
    ")$"
);

const EVENT_ID_PATTERN: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

const SPDX_PATTERN: &str = "[A-Za-z0-9][A-Za-z0-9.+-]{0,99}";

static IRI_RE: LazyLock<Regex> = LazyLock::new(|| compile(IRI_PATTERN));
static EVENT_ID_RE: LazyLock<Regex> = LazyLock::new(|| compile(EVENT_ID_PATTERN));
static LICENCE_RE: LazyLock<Regex> = LazyLock::new(|| compile(&licence_pattern()));

fn compile(pattern: &str) -> Regex {
    // The patterns are constants of this file, covered by unit tests; failing here is a bug.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("identifier patterns are valid regular expressions")
}

fn licence_pattern() -> String {
    let iri = IRI_PATTERN.trim_start_matches('^').trim_end_matches('$');
    format!("^(?:{SPDX_PATTERN}|{iri})$")
}

/// An internationalised resource identifier naming a design, a material lot, a batch, a
/// shipment, an organisation or a person: `urn:uuid:…` (lower-case), an EPC URN
/// (`urn:epc:id:sgtin:…`), or an `https://` IRI the owner controls (GS1 Digital Link included).
///
/// Shared, not copied: a clone is a reference count.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Iri(std::sync::Arc<str>);

impl Serialize for Iri {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl Iri {
    pub fn parse(text: impl Into<String>) -> Result<Self, String> {
        let text = text.into();
        if text.chars().count() > IRI_MAX_LEN {
            return Err(format!("an identifier is at most {IRI_MAX_LEN} characters"));
        }
        if !IRI_RE.is_match(&text) {
            return Err(format!(
                "{text:?} is not an identifier: use urn:uuid:<lower-case uuid>, an EPC URN \
                 (urn:epc:id:…) or an https:// IRI"
            ));
        }
        Ok(Self(text.into()))
    }

    /// The `urn:uuid:` IRI of a UUID.
    pub fn from_uuid(uuid: uuid::Uuid) -> Self {
        Self(format!("urn:uuid:{}", uuid.hyphenated()).into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Iri {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Iri> for String {
    fn from(value: Iri) -> Self {
        value.0.to_string()
    }
}

impl fmt::Display for Iri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Iri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.0)
    }
}

impl JsonSchema for Iri {
    fn schema_name() -> Cow<'static, str> {
        "Iri".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An identifier: urn:uuid:<lower-case uuid>, an EPC URN (urn:epc:id:…) or an https:// IRI (GS1 Digital Link included).",
            "type": "string",
            "maxLength": IRI_MAX_LEN,
            "pattern": IRI_PATTERN,
        })
    }
}

/// The identifier of an organisation: the IRI it is known by (`urn:uuid:…` when Stigmergy
/// registered it).
pub type OrganizationId = Iri;

/// The identifier of an event: a UUID in its lower-case hyphenated form. It is the idempotency key
/// of capture.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(uuid::Uuid);

impl EventId {
    pub fn from_uuid(uuid: uuid::Uuid) -> Self {
        Self(uuid)
    }
    pub fn parse(text: &str) -> Result<Self, String> {
        if !EVENT_ID_RE.is_match(text) {
            return Err(format!(
                "{text:?} is not an event id: use a UUID in lower-case hyphenated form"
            ));
        }
        uuid::Uuid::parse_str(text)
            .map(Self)
            .map_err(|error| format!("{text:?} is not an event id: {error}"))
    }
    pub fn uuid(&self) -> uuid::Uuid {
        self.0
    }
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl TryFrom<String> for EventId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EventId> for String {
    fn from(value: EventId) -> Self {
        value.to_string()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0.hyphenated())
    }
}

impl JsonSchema for EventId {
    fn schema_name() -> Cow<'static, str> {
        "EventId".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A UUID in lower-case hyphenated form; the idempotency key of capture.",
            "type": "string",
            "pattern": EVENT_ID_PATTERN,
        })
    }
}

/// The licence of a design: an SPDX licence identifier (`CERN-OHL-S-2.0`, `CC-BY-SA-4.0`,
/// `GPL-3.0-or-later`, `MIT`) or the IRI of a licence text.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Licence(String);

/// Families of share-alike (copyleft) licences: a fork of a design under one of them must stay in
/// the same family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShareAlikeFamily {
    CernOhlStrong,
    CreativeCommonsShareAlike,
    Gpl,
    Agpl,
    Lgpl,
    PeerProduction,
}

impl ShareAlikeFamily {
    pub fn name(self) -> &'static str {
        match self {
            Self::CernOhlStrong => "CERN-OHL-S",
            Self::CreativeCommonsShareAlike => "CC-BY-SA",
            Self::Gpl => "GPL",
            Self::Agpl => "AGPL",
            Self::Lgpl => "LGPL",
            Self::PeerProduction => "Peer Production Licence",
        }
    }
}

impl Licence {
    pub fn parse(text: impl Into<String>) -> Result<Self, String> {
        let text = text.into();
        if text.chars().count() > IRI_MAX_LEN || !LICENCE_RE.is_match(&text) {
            return Err(format!(
                "{text:?} is not a licence: use an SPDX licence identifier (e.g. CERN-OHL-S-2.0) \
                 or the https:// IRI of the licence text"
            ));
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The share-alike family of this licence, if it is a share-alike licence.
    pub fn share_alike_family(&self) -> Option<ShareAlikeFamily> {
        let id = self.0.to_ascii_uppercase();
        let starts = |prefix: &str| id.starts_with(prefix);
        if starts("CERN-OHL-S") {
            Some(ShareAlikeFamily::CernOhlStrong)
        } else if starts("CC-BY-SA") || starts("CC-BY-NC-SA") {
            Some(ShareAlikeFamily::CreativeCommonsShareAlike)
        } else if starts("AGPL-") {
            Some(ShareAlikeFamily::Agpl)
        } else if starts("LGPL-") {
            Some(ShareAlikeFamily::Lgpl)
        } else if starts("GPL-") {
            Some(ShareAlikeFamily::Gpl)
        } else if id.contains("PEER_PRODUCTION") || id.contains("PEER-PRODUCTION") {
            Some(ShareAlikeFamily::PeerProduction)
        } else {
            None
        }
    }
}

impl TryFrom<String> for Licence {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Licence> for String {
    fn from(value: Licence) -> Self {
        value.0
    }
}

impl fmt::Debug for Licence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Licence({})", self.0)
    }
}

impl JsonSchema for Licence {
    fn schema_name() -> Cow<'static, str> {
        "Licence".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An SPDX licence identifier (CERN-OHL-S-2.0, CC-BY-SA-4.0, GPL-3.0-or-later, …) or the https:// IRI of the licence text.",
            "type": "string",
            "maxLength": IRI_MAX_LEN,
            "pattern": licence_pattern(),
        })
    }
}

/// An ISO 3166-1 alpha-2 country code (upper case), used to place facilities and to choose a
/// default electricity grid factor.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Ok(Self([*a, *b])),
            _ => Err(format!(
                "{text:?} is not a country code: use ISO 3166-1 alpha-2 in upper case (e.g. DE)"
            )),
        }
    }
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl TryFrom<String> for CountryCode {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<CountryCode> for String {
    fn from(value: CountryCode) -> Self {
        value.as_str().to_owned()
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl JsonSchema for CountryCode {
    fn schema_name() -> Cow<'static, str> {
        "CountryCode".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "ISO 3166-1 alpha-2 country code, upper case.",
            "type": "string",
            "pattern": "^[A-Z]{2}$",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_iri(text: &str, accepted: bool) {
        assert_eq!(Iri::parse(text).is_ok(), accepted, "{text}");
    }

    #[test]
    fn identifiers_follow_the_documented_forms() {
        check_iri("urn:uuid:0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6e", true);
        check_iri("urn:uuid:0191E1A4-7F43-7C4A-9D4E-1F2A3B4C5D6E", false);
        check_iri("urn:epc:id:sgtin:0614141.107346.2017", true);
        check_iri("https://id.gs1.org/01/09520123456788/10/ABC123", true);
        check_iri("https://example.org/designs/chair?v=2#frame", true);
        check_iri("https://example.org:8443/x", true);
        check_iri("http://example.org/x", false);
        check_iri("https://", false);
        check_iri("https://exa mple.org", false);
        check_iri("urn:isbn:123", false);
        check_iri(&format!("https://example.org/{}", "a".repeat(3000)), false);
    }

    #[test]
    fn licences_and_share_alike_families() {
        let family = |text: &str| {
            Licence::parse(text)
                .ok()
                .and_then(|l| l.share_alike_family())
        };
        assert_eq!(
            family("CERN-OHL-S-2.0"),
            Some(ShareAlikeFamily::CernOhlStrong)
        );
        assert_eq!(
            family("CC-BY-SA-4.0"),
            Some(ShareAlikeFamily::CreativeCommonsShareAlike)
        );
        assert_eq!(family("GPL-3.0-or-later"), Some(ShareAlikeFamily::Gpl));
        assert_eq!(family("AGPL-3.0-only"), Some(ShareAlikeFamily::Agpl));
        assert_eq!(family("CERN-OHL-P-2.0"), None);
        assert_eq!(family("MIT"), None);
        assert_eq!(
            family("https://wiki.p2pfoundation.net/Peer_Production_License"),
            Some(ShareAlikeFamily::PeerProduction)
        );
        assert!(Licence::parse("not a licence").is_err());
    }

    #[test]
    fn event_ids_are_lower_case_hyphenated() {
        assert!(EventId::parse("0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6e").is_ok());
        assert!(EventId::parse("0191e1a47f437c4a9d4e1f2a3b4c5d6e").is_err());
        assert!(EventId::parse("0191E1A4-7F43-7C4A-9D4E-1F2A3B4C5D6E").is_err());
    }
}
