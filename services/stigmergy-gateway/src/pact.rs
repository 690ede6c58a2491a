//! PACT v3-compatible footprint exchange: the views' footprint versions served as
//! `ProductFootprint` documents of the PACT Technical Specifications 3.0.0 (the schema they are
//! tested against is committed under `schemas/pact/v3/`, with its source), as open data: no API key.
//!
//! - `GET /pact/3/footprints` is PACT's ListFootprints: every version, deprecated ones included,
//!   in the order they were issued, filtered by `productId`, `companyId`, `geography`,
//!   `classification`, `validOn`, `validAfter`, `validBefore` and `status`, at most `limit` at a
//!   time, with a `Link: <…>; rel="next"` header to the next page while there may be more;
//! - `GET /pact/3/footprints/{id}` is PACT's GetFootprint.
//!
//! [`product_footprint`] maps a version to its document and is pure; [`urn_of`] and
//! [`iri_of_urn`] map Stigmergy's identifiers to the URNs PACT asks for, and back. What every
//! field holds, and what is published where the views know nothing, is written out in
//! `docs/open-data.md` ("PACT v3 footprint exchange"); the endpoints are in `docs/api.md`.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::Compress;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{Months, TimeDelta};
use serde_json::{Map, Value, json};
use stigmergy_capture::Capture;
use stigmergy_capture::problem::Problem;
use stigmergy_domain::views::document;
use stigmergy_domain::views::{Kind, Record};
use stigmergy_domain::{Iri, LogPosition, Timestamp, Unit};
use stigmergy_store::{
    FootprintCursor, FootprintFilter, FootprintProvenance, FootprintStatus, FootprintVersion,
    ViewStore,
};
use uuid::Uuid;

use crate::GatewaySchema;

/// The version of the PACT Technical Specifications the documents follow.
pub const SPEC_VERSION: &str = "3.0.0";
/// How many documents a page holds when the request sets no `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// The most documents a page holds, whatever `limit` asks.
pub const MAX_LIMIT: usize = 500;
/// The query parameter of the pagination link that says where the next page starts.
pub const AFTER: &str = "x-stigmergy-after";
/// The most footprint versions one listing request reads: a filter the store cannot apply
/// (`companyId`, the validity period) may pass few of them, and the page then ends early, with its
/// link to the next.
pub const MAX_EXAMINED: usize = 2000;
/// The most values of `productId` or `companyId` one request may give.
pub const MAX_IDENTIFIERS: usize = 100;
/// How long a footprint is valid when it declares no validity period: PACT v3's 3 years after
/// the end of its reference period.
const VALIDITY: Months = Months::new(36);

/// The identifier type of a product in a `urn:pact:` URN.
pub const PRODUCT_ID: &str = "product-id";
/// The identifier type of a company in a `urn:pact:` URN.
pub const COMPANY_ID: &str = "company-id";

/// The cross-sectoral standard PACT v3 requires a value for, from its closed list: the PACT
/// Methodology, whose cradle-to-gate boundary, cut-off of recycling and primary data share the
/// method follows (its conformance has not been assessed; the comment says so).
const CROSS_SECTORAL_STANDARDS: &[&str] = &["PACT-3.0"];
/// The IPCC assessment reports behind the figures, which PACT v3 requires: Stigmergy converts no
/// global-warming potential and does not record which report a declared figure used, so the
/// documents say "more than one" (the comment says the basis is not known).
const IPCC_REPORTS: &[&str] = &["AR5", "AR6"];

/// Mounts the PACT routes, compressed for clients that accept it. The gateway's schema must be
/// in the app data (the views and the organisation directory are read through it).
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/pact/3/footprints")
                .wrap(Compress::default())
                .get(list),
        )
        .service(
            web::resource("/pact/3/footprints/{id}")
                .wrap(Compress::default())
                .get(get),
        );
}

// ---------------------------------------------------------------------------------------------
// Identifiers

/// The URN PACT names a Stigmergy identifier by. `urn:uuid:` and `urn:epc:` identifiers are
/// URNs already and are kept as they are; an `https://` IRI becomes
/// `urn:pact:{host}:{identifier_type}:{the IRI without "https://"}`, its `%`, `?` and `#`
/// percent-encoded (a URN allows none of them bare), so that [`iri_of_urn`] gives the IRI back.
pub fn urn_of(iri: &Iri, identifier_type: &str) -> String {
    let text = iri.as_str();
    let Some(rest) = text.strip_prefix("https://") else {
        return text.to_owned();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.split(':').next().unwrap_or_default();
    let mut id = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '%' => id.push_str("%25"),
            '?' => id.push_str("%3F"),
            '#' => id.push_str("%23"),
            c => id.push(c),
        }
    }
    format!(
        "urn:pact:{}:{identifier_type}:{id}",
        host.to_ascii_lowercase()
    )
}

/// The Stigmergy identifier a URN of [`urn_of`] names, if it names one. `urn:` and the namespace
/// are matched without regard to case (RFC 8141), as are a `urn:uuid:`'s UUID, an EPC URN's
/// scheme and a `urn:pact:` URN's host and identifier type; the rest is matched exactly, since
/// Stigmergy's identifiers are case-sensitive.
pub fn iri_of_urn(urn: &str, identifier_type: &str) -> Option<Iri> {
    let (scheme, rest) = urn.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("urn") {
        return None;
    }
    let (namespace, specific) = rest.split_once(':')?;
    match namespace.to_ascii_lowercase().as_str() {
        "uuid" => Iri::parse(format!("urn:uuid:{}", specific.to_ascii_lowercase())).ok(),
        "epc" => {
            let mut parts = specific.splitn(3, ':');
            let (kind, scheme, id) = (parts.next()?, parts.next()?, parts.next()?);
            Iri::parse(format!(
                "urn:epc:{}:{}:{id}",
                kind.to_ascii_lowercase(),
                scheme.to_ascii_lowercase()
            ))
            .ok()
        }
        "pact" => {
            let (host, rest) = specific.split_once(':')?;
            let (kind, id) = rest.split_once(':')?;
            if !kind.eq_ignore_ascii_case(identifier_type) {
                return None;
            }
            let rest = percent_decoded(id)?;
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let named = authority.split(':').next().unwrap_or_default();
            if !named.eq_ignore_ascii_case(host) {
                return None;
            }
            Iri::parse(format!("https://{rest}")).ok()
        }
        _ => None,
    }
}

/// `text` with every `%XX` decoded, if that gives UTF-8.
fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            decoded.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// `text` percent-encoded for a query string: every byte but the unreserved characters.
fn query_encoded(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

// ---------------------------------------------------------------------------------------------
// The document

/// A footprint version, with everything its document says besides its figures.
#[derive(Clone, Copy, Debug)]
pub struct Published<'a> {
    pub version: &'a FootprintVersion,
    /// The ids of the versions it replaces, the one it replaces directly first.
    pub preceding: &'a [Uuid],
    pub provenance: &'a FootprintProvenance,
    /// The resource's record, when the views hold one.
    pub record: Option<&'a Record>,
    /// The name of the design a batch was made from.
    pub design_name: Option<&'a str>,
    /// The name of the organisation that made the resource, as the directory has it.
    pub maker_name: Option<&'a str>,
}

/// Why a footprint version has no PACT v3 document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unpublishable {
    /// It is counted per a unit PACT v3 has no declared unit for (a length).
    Unit(Unit),
    /// One of its figures is not a finite number.
    NotFinite,
}

impl std::fmt::Display for Unpublishable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unit(unit) => write!(
                f,
                "it is counted per {} ({}), for which PACT v3 has no declared unit",
                Unit::words(*unit),
                unit.code()
            ),
            Self::NotFinite => f.write_str("one of its figures is not a finite number"),
        }
    }
}

/// A footprint's declared unit in PACT v3: `declaredUnitOfMeasurement`, `declaredUnitAmount`,
/// and `productMassPerDeclaredUnit` where it is known (the kilogram) or irrelevant (energy).
struct DeclaredUnit {
    measurement: &'static str,
    amount: String,
    mass: Option<&'static str>,
}

/// The declared unit of a footprint counted per one `unit` (figures are per one base unit: the
/// kilogram for every mass unit, else the unit itself), as the JSON-LD document declares it
/// (`document::declared_unit`).
fn declared_unit(unit: Unit) -> Result<DeclaredUnit, Unpublishable> {
    let (measurement, amount) = document::declared_unit(unit).ok_or(Unpublishable::Unit(unit))?;
    let mass = match measurement {
        "kilogram" => Some("1"),
        // PACT v3: the mass is not relevant to energy, and is given as 0.
        "kilowatt hour" => Some("0"),
        _ => None,
    };
    Ok(DeclaredUnit {
        measurement,
        amount: decimal(amount)?,
        mass,
    })
}

/// A figure as a PACT v3 decimal string (digits, no exponent).
fn decimal(value: f64) -> Result<String, Unpublishable> {
    if !value.is_finite() {
        return Err(Unpublishable::NotFinite);
    }
    // Rust writes an f64 in full decimal notation, with the fewest digits that read back the same.
    Ok(if value == 0.0 {
        "0".to_owned()
    } else {
        value.to_string()
    })
}

/// A share (0 to 1) as a PACT v3 percentage, to 10 decimal places at most.
fn percentage(share: f64) -> Result<String, Unpublishable> {
    rounded(share * 100.0)
}

/// A figure as a decimal string, to 10 decimal places at most (for percentages, and for the
/// figures a comment quotes).
fn rounded(value: f64) -> Result<String, Unpublishable> {
    if !value.is_finite() {
        return Err(Unpublishable::NotFinite);
    }
    let fixed = format!("{value:.10}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    Ok(match trimmed {
        "" | "-0" => "0".to_owned(),
        other => other.to_owned(),
    })
}

/// The reference period of a version: from the earliest of the resource's own events it counts
/// to just after the latest (PACT's end is exclusive; one microsecond is the precision events are
/// compared at).
pub fn reference_period(provenance: &FootprintProvenance) -> (Timestamp, Timestamp) {
    let (first, last) = provenance.activity;
    let end = last
        .datetime()
        .checked_add_signed(TimeDelta::microseconds(1))
        .map_or(last, Timestamp::from_datetime);
    (first, end)
}

/// PACT v3's validity period of a footprint that declares none: the 3 years after the end of its
/// reference period.
pub fn validity_period(provenance: &FootprintProvenance) -> (Timestamp, Timestamp) {
    let (_, start) = reference_period(provenance);
    let end = start
        .datetime()
        .checked_add_months(VALIDITY)
        .map_or(start, Timestamp::from_datetime);
    (start, end)
}

/// What the resource is called: a lot's material, a batch's design, else its identifier.
fn product_name(published: &Published<'_>) -> String {
    published
        .record
        .and_then(|record| record.name.as_deref())
        .or(published.design_name)
        .map_or_else(|| published.version.resource.to_string(), str::to_owned)
}

/// What the resource is, in a sentence.
fn product_description(published: &Published<'_>) -> String {
    let resource = &published.version.resource;
    let Some(record) = published
        .record
        .filter(|record| record.kind != Kind::Unknown)
    else {
        return format!(
            "{resource}, which Stigmergy no longer knows: the event that recorded it was retracted."
        );
    };
    let what = match record.kind {
        Kind::MaterialLot => "Material lot",
        Kind::Batch => "Batch",
        Kind::RecoveredLot => "Lot recovered by recycling",
        Kind::Design => "Design",
        Kind::Shipment => "Shipment",
        Kind::Unknown => "Resource",
    };
    let mut text = what.to_owned();
    if let Some(quantity) = record.quantity {
        let _ = write!(
            text,
            " of {} {}",
            quantity.amount.get(),
            Unit::words(quantity.unit)
        );
    }
    match (record.kind, &record.name, published.design_name) {
        (Kind::Batch, _, Some(design)) => {
            let _ = write!(text, " made from the design \u{201c}{design}\u{201d}");
        }
        (_, Some(name), _) => {
            let _ = write!(text, " of \u{201c}{name}\u{201d}");
        }
        _ => {}
    }
    if let Some(design) = &record.design {
        let _ = write!(text, " ({design})");
    }
    let _ = write!(text, "; recorded in Stigmergy as {resource}.");
    text
}

/// The PACT v3 `ProductFootprint` of a footprint version.
pub fn product_footprint(published: &Published<'_>) -> Result<Value, Unpublishable> {
    let version = published.version;
    let figures = &version.footprint;
    let per_unit = &figures.per_unit;
    let unit = declared_unit(figures.unit)?;
    let total = decimal(per_unit.total())?;
    let (start, end) = reference_period(published.provenance);
    let maker = &published.provenance.maker;

    let mut unknown = vec![
        "the split between fossil and biogenic emissions (the whole total is given as \
         fossilGhgEmissions, and biogenic CO2 uptake is not accounted, so \
         pcfIncludingBiogenicUptake equals pcfExcludingBiogenicUptake)",
        "the fossil carbon content (given as 0)",
    ];
    if unit.mass.is_none() {
        unknown.push("the mass per declared unit (given as 0)");
    }
    unknown.push(
        "the IPCC assessment reports behind the figures (Stigmergy converts no global-warming \
         potential; given as AR5 and AR6)",
    );
    unknown.push(
        "conformance with a cross-sectoral standard (PACT-3.0 is given: the method follows the \
         PACT Methodology's cradle-to-gate boundary, cut-off of recycling and primary data \
         share; its conformance has not been assessed)",
    );
    let mut comment = format!(
        "Computed by Stigmergy from the events its members recorded, with the method {} \
         version {} (cradle-to-gate, per declared unit; docs/methods.md). Per declared unit: \
         materials {}, fabrication {}, transport {} kgCO2e; recycled content {} %.",
        figures.method,
        figures.method_version,
        rounded(per_unit.materials)?,
        rounded(per_unit.fabrication)?,
        rounded(per_unit.transport)?,
        percentage(figures.recycled_content)?,
    );
    if !figures.missing_inputs.is_empty() {
        let _ = write!(
            comment,
            " A lower bound: {} input(s) whose footprint is not known were counted as 0 (see \
             exemptedEmissionsDescription).",
            figures.missing_inputs.len()
        );
    }
    let _ = write!(
        comment,
        " Not known to Stigmergy, and given only because PACT v3 requires a value: {}.",
        unknown.join("; ")
    );
    if !published.preceding.is_empty() {
        let _ = write!(
            comment,
            " This is version {} of the resource's footprint: it was issued again because an \
             event changed a figure it rests on (precedingPfIds lists the versions it replaces).",
            version.version
        );
    }

    let exempted = if figures.missing_inputs.is_empty() {
        String::new()
    } else {
        format!(
            "No emissions were left out by an exemption rule. These inputs' footprints are not \
             known and were counted as 0, so their share is not known and 0 understates it: {}.",
            figures
                .missing_inputs
                .iter()
                .map(Iri::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };

    let mut pcf = Map::new();
    pcf.insert("declaredUnitOfMeasurement".into(), json!(unit.measurement));
    pcf.insert("declaredUnitAmount".into(), json!(unit.amount));
    pcf.insert(
        "productMassPerDeclaredUnit".into(),
        json!(unit.mass.unwrap_or("0")),
    );
    pcf.insert("referencePeriodStart".into(), json!(start.to_string()));
    pcf.insert("referencePeriodEnd".into(), json!(end.to_string()));
    if let Some(country) = published.provenance.country {
        pcf.insert("geographyCountry".into(), json!(country.as_str()));
    }
    pcf.insert(
        "boundaryProcessesDescription".into(),
        json!(
            "Cradle-to-gate: the materials and parts consumed (at their own cradle-to-gate \
             footprints, as recorded), the energy (times the grid factor the event reports, else \
             a configured default for the facility's country) and direct emissions of \
             fabrication, repair and recycling, and the shipments that brought the inputs to \
             whoever consumed them. Use and end of life are outside the boundary, and so is the \
             transport of the product away from its maker."
        ),
    );
    pcf.insert("pcfExcludingBiogenicUptake".into(), json!(total));
    pcf.insert("pcfIncludingBiogenicUptake".into(), json!(total));
    pcf.insert("fossilGhgEmissions".into(), json!(total));
    pcf.insert("fossilCarbonContent".into(), json!("0"));
    pcf.insert("ipccCharacterizationFactors".into(), json!(IPCC_REPORTS));
    pcf.insert(
        "crossSectoralStandards".into(),
        json!(CROSS_SECTORAL_STANDARDS),
    );
    pcf.insert(
        "productOrSectorSpecificRules".into(),
        json!([{
            "operator": "Other",
            "otherOperatorName": "Stigmergy",
            "ruleNames": [format!("{} version {}", figures.method, figures.method_version)],
        }]),
    );
    pcf.insert("exemptedEmissionsPercent".into(), json!("0"));
    pcf.insert("exemptedEmissionsDescription".into(), json!(exempted));
    pcf.insert(
        "allocationRulesDescription".into(),
        json!(
            "A batch's emissions are divided by the quantity made. A shipment's emissions are \
             allocated to its lines by mass (equally when a line has no mass). Recycling follows \
             the cut-off approach: a recovered lot carries only the recycling process, allocated \
             to the recovered lots by mass. Repairs stay with the item repaired."
        ),
    );
    pcf.insert(
        "primaryDataShare".into(),
        json!(percentage(figures.primary_data_share)?),
    );

    let mut document = Map::new();
    document.insert("id".into(), json!(version.id.to_string()));
    document.insert("specVersion".into(), json!(SPEC_VERSION));
    if !published.preceding.is_empty() {
        document.insert(
            "precedingPfIds".into(),
            json!(
                published
                    .preceding
                    .iter()
                    .map(Uuid::to_string)
                    .collect::<Vec<_>>()
            ),
        );
    }
    document.insert(
        "created".into(),
        json!(published.provenance.issued.to_string()),
    );
    document.insert("status".into(), json!(version.status.name()));
    document.insert(
        "companyName".into(),
        json!(
            published
                .maker_name
                .filter(|name| !name.is_empty())
                .map_or_else(|| maker.to_string(), str::to_owned)
        ),
    );
    document.insert("companyIds".into(), json!([urn_of(maker, COMPANY_ID)]));
    document.insert(
        "productDescription".into(),
        json!(product_description(published)),
    );
    document.insert(
        "productIds".into(),
        json!([urn_of(&version.resource, PRODUCT_ID)]),
    );
    document.insert("productNameCompany".into(), json!(product_name(published)));
    document.insert("comment".into(), json!(comment));
    document.insert("pcf".into(), Value::Object(pcf));
    Ok(Value::Object(document))
}

// ---------------------------------------------------------------------------------------------
// The endpoints

/// A refusal, as RFC 9457 problem details that also carry PACT's `Error` members (`code`,
/// `message`).
fn refusal(
    status: StatusCode,
    kind: &'static str,
    title: &str,
    code: &str,
    detail: String,
) -> Problem {
    Problem::new(status, kind, title, detail.clone())
        .with("code", code)
        .with("message", detail)
}

fn invalid_parameter(parameter: &str, detail: String) -> Problem {
    refusal(
        StatusCode::BAD_REQUEST,
        "bad-parameter",
        "Invalid query parameter",
        "BadRequest",
        detail,
    )
    .with("parameter", parameter)
}

fn not_found(detail: String) -> Problem {
    refusal(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "NotFound",
        detail,
    )
}

fn unavailable(failure: impl std::fmt::Display) -> Problem {
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Service unavailable",
        "InternalError",
        failure.to_string(),
    )
}

/// What the handlers read: the views and the organisation directory.
struct Sources<'a> {
    views: &'a Arc<dyn ViewStore>,
    capture: &'a Capture,
}

impl<'a> Sources<'a> {
    fn of(schema: &'a GatewaySchema) -> Result<Self, Problem> {
        let missing = |what: &str| unavailable(format!("the gateway was built without {what}"));
        Ok(Self {
            views: schema
                .data::<Arc<dyn ViewStore>>()
                .ok_or_else(|| missing("views"))?,
            capture: schema.data::<Capture>().ok_or_else(|| missing("capture"))?,
        })
    }

    /// The document of each of `versions` (or why it has none), with the version's provenance,
    /// in order.
    async fn documents(
        &self,
        versions: &[FootprintVersion],
    ) -> Result<Vec<(FootprintProvenance, Result<Value, Unpublishable>)>, Problem> {
        let mut wanted: Vec<Iri> = versions.iter().map(|v| v.resource.clone()).collect();
        let mut records: HashMap<Iri, Record> = self
            .views
            .records(&wanted)
            .await
            .map_err(unavailable)?
            .into_iter()
            .collect();
        wanted = records
            .values()
            .filter(|record| record.kind == Kind::Batch)
            .filter_map(|record| record.design.clone())
            .filter(|design| !records.contains_key(design))
            .collect();
        if !wanted.is_empty() {
            records.extend(self.views.records(&wanted).await.map_err(unavailable)?);
        }
        let mut chains: HashMap<Iri, HashMap<Uuid, Option<Uuid>>> = HashMap::new();
        let mut documents = Vec::with_capacity(versions.len());
        for version in versions {
            let Some(provenance) = self
                .views
                .footprint_provenance(version)
                .await
                .map_err(unavailable)?
            else {
                return Err(unavailable(format!(
                    "the views do not hold the events footprint version {} was issued from",
                    version.id
                )));
            };
            if !chains.contains_key(&version.resource) {
                let all = self
                    .views
                    .footprint_versions(&version.resource)
                    .await
                    .map_err(unavailable)?;
                chains.insert(
                    version.resource.clone(),
                    all.into_iter().map(|v| (v.id, v.preceding)).collect(),
                );
            }
            let preceding = chains
                .get(&version.resource)
                .map(|chain| preceding_ids(chain, version))
                .unwrap_or_default();
            let record = records.get(&version.resource);
            let design_name = record
                .and_then(|record| record.design.as_ref())
                .and_then(|design| records.get(design))
                .and_then(|design| design.name.as_deref());
            let maker_name = self
                .capture
                .directory
                .get(&provenance.maker)
                .map(|organization| organization.name);
            let document = product_footprint(&Published {
                version,
                preceding: &preceding,
                provenance: &provenance,
                record,
                design_name,
                maker_name: maker_name.as_deref(),
            });
            documents.push((provenance, document));
        }
        Ok(documents)
    }
}

/// The versions `version` replaces, following `preceding` links (`chain`: every version of its
/// resource and the one it replaces), the one it replaces directly first.
fn preceding_ids(chain: &HashMap<Uuid, Option<Uuid>>, version: &FootprintVersion) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let mut seen = HashSet::from([version.id]);
    let mut next = version.preceding;
    while let Some(id) = next {
        if !seen.insert(id) {
            break;
        }
        ids.push(id);
        next = chain.get(&id).copied().flatten();
    }
    ids
}

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body.to_string())
}

/// `GET /pact/3/footprints/{id}`: one version, deprecated or not.
async fn get(
    path: web::Path<String>,
    schema: web::Data<GatewaySchema>,
) -> Result<HttpResponse, Problem> {
    let id = Uuid::parse_str(&path).map_err(|_| {
        refusal(
            StatusCode::BAD_REQUEST,
            "invalid-footprint-id",
            "Invalid footprint id",
            "BadRequest",
            format!(
                "{:?} is not a footprint id: a UUID is expected",
                path.as_str()
            ),
        )
    })?;
    let sources = Sources::of(&schema)?;
    let Some(version) = sources
        .views
        .footprint_version(id)
        .await
        .map_err(unavailable)?
    else {
        return Err(not_found(format!("no footprint {id} has been issued")));
    };
    let (_, document) = sources
        .documents(std::slice::from_ref(&version))
        .await?
        .pop()
        .ok_or_else(|| unavailable("no document was built"))?;
    match document {
        Ok(document) => Ok(json_response(StatusCode::OK, &json!({ "data": document }))),
        Err(why) => Err(not_found(format!(
            "footprint {id} is not published in PACT v3: {why}"
        ))),
    }
}

/// What a listing asks for.
#[derive(Clone, Debug, Default, PartialEq)]
struct Listing {
    limit: Option<usize>,
    /// The `productId`s given, and the resources they name.
    products: Option<Vec<Iri>>,
    /// The `companyId`s given, and the organisations they name.
    companies: Option<HashSet<Iri>>,
    /// `geography` or `classification` was given: the documents declare neither a region nor a
    /// classification, and only a country, which `countries` holds.
    countries: Option<HashSet<String>>,
    /// Whether a `classification` was given (no document declares one).
    classified: bool,
    valid_on: Option<Timestamp>,
    valid_after: Option<Timestamp>,
    valid_before: Option<Timestamp>,
    status: Option<FootprintStatus>,
    after: Option<FootprintCursor>,
    /// The parameters as given, but for `limit` and the cursor, for the pagination link.
    kept: Vec<(String, String)>,
}

/// The parameters PACT v3 defines for ListFootprints, and the cursor of the pagination link.
const PARAMETERS: &[&str] = &[
    "limit",
    "productId",
    "companyId",
    "geography",
    "classification",
    "validOn",
    "validAfter",
    "validBefore",
    "status",
    AFTER,
];

fn once<'a>(name: &str, values: &'a [String]) -> Result<&'a str, Problem> {
    match values {
        [value] => Ok(value),
        _ => Err(invalid_parameter(
            name,
            format!(
                "{name} is given {} times; it may be given once",
                values.len()
            ),
        )),
    }
}

fn urn<'a>(name: &str, value: &'a str) -> Result<&'a str, Problem> {
    match value.split_once(':') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("urn") && rest.contains(':') => {
            Ok(value)
        }
        _ => Err(invalid_parameter(
            name,
            format!("{name} {value:?} is not a URN (urn:<namespace>:<specific string>)"),
        )),
    }
}

fn identifiers(name: &str, values: &[String], identifier_type: &str) -> Result<Vec<Iri>, Problem> {
    if values.len() > MAX_IDENTIFIERS {
        return Err(invalid_parameter(
            name,
            format!("{name} is given more than {MAX_IDENTIFIERS} times"),
        ));
    }
    let mut named = Vec::new();
    for value in values {
        if let Some(iri) = iri_of_urn(urn(name, value)?, identifier_type)
            && !named.contains(&iri)
        {
            named.push(iri);
        }
    }
    Ok(named)
}

fn timestamp(name: &str, values: &[String]) -> Result<Timestamp, Problem> {
    let value = once(name, values)?;
    Timestamp::parse(value).map_err(|detail| invalid_parameter(name, format!("{name}: {detail}")))
}

/// Reads the query string of a listing.
fn listing(query: &str) -> Result<Listing, Problem> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|error| invalid_parameter("", format!("the query string is unreadable: {error}")))?
        .into_inner();
    let mut given: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in &pairs {
        if !PARAMETERS.contains(&name.as_str()) {
            return Err(invalid_parameter(
                name,
                format!(
                    "unknown parameter {name:?}; the parameters are {}",
                    PARAMETERS.join(", ")
                ),
            ));
        }
        match given.iter_mut().find(|(known, _)| known == name) {
            Some((_, values)) => values.push(value.clone()),
            None => given.push((name.clone(), vec![value.clone()])),
        }
    }
    let mut listing = Listing {
        kept: pairs
            .iter()
            .filter(|(name, _)| name != "limit" && name != AFTER)
            .cloned()
            .collect(),
        ..Listing::default()
    };
    for (name, values) in &given {
        match name.as_str() {
            "limit" => {
                let value = once(name, values)?;
                let limit = value.parse::<usize>().map_err(|_| {
                    invalid_parameter(
                        name,
                        format!("limit {value:?} is not a whole number of 0 or more"),
                    )
                })?;
                listing.limit = Some(limit);
            }
            "productId" => listing.products = Some(identifiers(name, values, PRODUCT_ID)?),
            "companyId" => {
                listing.companies =
                    Some(identifiers(name, values, COMPANY_ID)?.into_iter().collect());
            }
            "geography" => {
                listing.countries = Some(
                    values
                        .iter()
                        .map(|value| value.trim().to_ascii_uppercase())
                        .collect(),
                );
            }
            "classification" => {
                for value in values {
                    urn(name, value)?;
                }
                listing.classified = true;
            }
            "validOn" => listing.valid_on = Some(timestamp(name, values)?),
            "validAfter" => listing.valid_after = Some(timestamp(name, values)?),
            "validBefore" => listing.valid_before = Some(timestamp(name, values)?),
            "status" => {
                let value = once(name, values)?;
                let status = [FootprintStatus::Active, FootprintStatus::Deprecated]
                    .into_iter()
                    .find(|status| status.name().eq_ignore_ascii_case(value))
                    .ok_or_else(|| {
                        invalid_parameter(
                            name,
                            format!("status {value:?} is neither Active nor Deprecated"),
                        )
                    })?;
                listing.status = Some(status);
            }
            _ => listing.after = Some(cursor(once(name, values)?)?),
        }
    }
    Ok(listing)
}

/// A cursor as the pagination link writes it: `{position}.{id}`.
fn cursor(text: &str) -> Result<FootprintCursor, Problem> {
    let malformed = || {
        invalid_parameter(
            AFTER,
            format!("{AFTER} {text:?} is not a cursor of a pagination link"),
        )
    };
    let (position, id) = text.split_once('.').ok_or_else(malformed)?;
    Ok(FootprintCursor {
        issued_at: LogPosition(position.parse().map_err(|_| malformed())?),
        id: Uuid::parse_str(id).map_err(|_| malformed())?,
    })
}

impl Listing {
    /// Whether no document can match: a classification (none is declared), or identifiers of
    /// nothing Stigmergy knows.
    fn matches_nothing(&self) -> bool {
        self.classified
            || self.products.as_ref().is_some_and(Vec::is_empty)
            || self.companies.as_ref().is_some_and(HashSet::is_empty)
            || self.countries.as_ref().is_some_and(HashSet::is_empty)
    }

    /// Whether a version whose document was built passes the filters the store does not apply.
    fn admits(&self, provenance: &FootprintProvenance) -> bool {
        if let Some(companies) = &self.companies
            && !companies.contains(&provenance.maker)
        {
            return false;
        }
        if let Some(countries) = &self.countries {
            let Some(country) = provenance.country else {
                return false;
            };
            if !countries.contains(country.as_str()) {
                return false;
            }
        }
        let (start, end) = validity_period(provenance);
        self.valid_on.is_none_or(|on| start <= on && on <= end)
            && self.valid_after.is_none_or(|after| start > after)
            && self.valid_before.is_none_or(|before| end < before)
    }

    /// The pagination link to the page after `cursor` (from the first without one), on `base`
    /// (the public URL when configured, like the documents' links).
    fn next_link(
        &self,
        base: &str,
        request: &HttpRequest,
        limit: usize,
        cursor: Option<FootprintCursor>,
    ) -> String {
        let mut query = String::new();
        for (name, value) in &self.kept {
            let _ = write!(query, "{}={}&", query_encoded(name), query_encoded(value));
        }
        let _ = write!(query, "limit={limit}");
        if let Some(cursor) = cursor {
            let _ = write!(query, "&{AFTER}={}.{}", cursor.issued_at.0, cursor.id);
        }
        format!("<{base}{}?{query}>; rel=\"next\"", request.path())
    }
}

/// `GET /pact/3/footprints`: a page of versions, in the order they were issued.
async fn list(
    request: HttpRequest,
    schema: web::Data<GatewaySchema>,
) -> Result<HttpResponse, Problem> {
    let listing = listing(request.query_string())?;
    let limit = listing.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    if listing.matches_nothing() {
        return Ok(json_response(StatusCode::OK, &json!({ "data": [] })));
    }
    let sources = Sources::of(&schema)?;
    let filter = FootprintFilter {
        resources: listing.products.clone(),
        status: listing.status,
    };
    let mut data = Vec::new();
    let mut cursor = listing.after;
    let mut examined = 0;
    let mut exhausted = false;
    while data.len() < limit && examined < MAX_EXAMINED {
        let wanted = (limit - data.len()).min(MAX_EXAMINED - examined);
        let page = sources
            .views
            .footprint_page(&filter, cursor, wanted)
            .await
            .map_err(unavailable)?;
        if page.len() < wanted {
            exhausted = true;
        }
        let documents = sources.documents(&page).await?;
        for (version, (provenance, document)) in page.iter().zip(documents) {
            examined += 1;
            cursor = Some(version.cursor());
            if let Ok(document) = document
                && listing.admits(&provenance)
            {
                data.push(document);
            }
        }
        if exhausted {
            break;
        }
    }
    let mut response = HttpResponse::Ok();
    response.content_type("application/json");
    if !exhausted
        && !sources
            .views
            .footprint_page(&filter, cursor, 1)
            .await
            .map_err(unavailable)?
            .is_empty()
    {
        let configured = schema
            .data::<crate::open::PublicUrl>()
            .cloned()
            .unwrap_or_default();
        let base = crate::open::base_url(&request, &configured);
        response.insert_header((
            header::LINK,
            listing.next_link(&base, &request, limit, cursor),
        ));
    }
    Ok(response.body(json!({ "data": data }).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_map_to_urns_and_back() {
        for (iri, urn) in [
            (
                "urn:uuid:0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6e",
                "urn:uuid:0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6e",
            ),
            (
                "urn:epc:id:sgtin:0614141.112345.400",
                "urn:epc:id:sgtin:0614141.112345.400",
            ),
            (
                "https://valldaura.example/batches/open-stool-2025-001",
                "urn:pact:valldaura.example:product-id:valldaura.example/batches/open-stool-2025-001",
            ),
            (
                "https://Id.Example:8443/01/09506000134352/10/A%2FB?x=1#top",
                "urn:pact:id.example:product-id:Id.Example:8443/01/09506000134352/10/A%252FB%3Fx=1%23top",
            ),
        ] {
            let parsed = Iri::parse(iri).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(urn_of(&parsed, PRODUCT_ID), urn);
            assert_eq!(iri_of_urn(urn, PRODUCT_ID).as_ref(), Some(&parsed), "{urn}");
        }
        let uuid = "urn:uuid:0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6e";
        assert_eq!(
            iri_of_urn("URN:UUID:0191E1A4-7F43-7C4A-9D4E-1F2A3B4C5D6E", COMPANY_ID)
                .map(|iri| iri.to_string())
                .as_deref(),
            Some(uuid),
            "the scheme, namespace and UUID in any case"
        );
        assert_eq!(
            iri_of_urn(
                "urn:PACT:VALLDAURA.example:Product-ID:valldaura.example/batches/b1",
                PRODUCT_ID
            )
            .map(|iri| iri.to_string())
            .as_deref(),
            Some("https://valldaura.example/batches/b1")
        );
        for other in [
            "urn:gtin:4712345060507",
            "urn:pact:valldaura.example:company-id:valldaura.example/batches/b1",
            "urn:pact:elsewhere.example:product-id:valldaura.example/batches/b1",
            "urn:pact:valldaura.example:product-id:valldaura.example/%zz",
            "urn:uuid:not-a-uuid",
            "https://valldaura.example/batches/b1",
        ] {
            assert_eq!(iri_of_urn(other, PRODUCT_ID), None, "{other}");
        }
    }

    #[test]
    fn figures_are_decimal_strings_without_exponents() {
        assert_eq!(decimal(0.0).as_deref(), Ok("0"));
        assert_eq!(decimal(-0.0).as_deref(), Ok("0"));
        assert_eq!(decimal(1e-7).as_deref(), Ok("0.0000001"));
        assert_eq!(decimal(2.5e21).as_deref(), Ok("2500000000000000000000"));
        assert_eq!(decimal(f64::NAN), Err(Unpublishable::NotFinite));
        assert_eq!(percentage(0.129).as_deref(), Ok("12.9"));
        assert_eq!(percentage(1.0).as_deref(), Ok("100"));
        assert_eq!(percentage(0.0).as_deref(), Ok("0"));
        assert_eq!(percentage(0.57).as_deref(), Ok("57"));
    }

    #[test]
    fn listings_read_pact_parameters_and_refuse_others() {
        let read = listing(
            "productId=urn:uuid:0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6e&productId=urn:gtin:1&status=active&limit=5",
        )
        .unwrap_or_else(|p| panic!("{p}"));
        assert_eq!(read.limit, Some(5));
        assert_eq!(read.status, Some(FootprintStatus::Active));
        assert_eq!(
            read.products.map(|p| p.len()),
            Some(1),
            "a GTIN names nothing Stigmergy knows"
        );
        for refused in [
            "limit=-1",
            "limit=ten",
            "limit=1&limit=2",
            "status=Current",
            "productId=plywood",
            "validOn=yesterday",
            "x-stigmergy-after=12",
            "x-stigmergy-after=12.not-a-uuid",
            "offset=10",
            "$filter=x",
        ] {
            let problem = listing(refused)
                .err()
                .unwrap_or_else(|| panic!("{refused}"));
            assert_eq!(problem.status, StatusCode::BAD_REQUEST, "{refused}");
            assert_eq!(problem.body()["code"], "BadRequest");
        }
        for nothing in ["classification=urn:pact:x:y:z", "productId=urn:gtin:1"] {
            let read = listing(nothing).unwrap_or_else(|p| panic!("{p}"));
            assert!(read.matches_nothing(), "{nothing}");
        }
    }
}
