//! Open metadata at a stable URL: `GET /id/{id}` answers a resource's JSON-LD document
//! (`application/ld+json`, built by `stigmergy_domain::views::document`) or its item page
//! (`text/html`, [`page`]) by content negotiation, `GET /id/{id}/qr` a QR code of that URL
//! ([`qr`]), GS1 Digital Link paths (`/01/{gtin}/…`) redirect to the item they name, and
//! `GET /context/v1.jsonld` serves the JSON-LD context. No API key is needed.

pub mod page;
pub mod qr;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, Accept, Header, Quality};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;
use stigmergy_capture::Capture;
use stigmergy_capture::problem::Problem;
use stigmergy_domain::views::document::{
    self, CONTEXT, CONTEXT_PATH, DesignSummary, FootprintIssue, Inputs,
};
use stigmergy_domain::views::{Direction, Kind, Record, Role};
use stigmergy_domain::{Event, EventPayload, Iri, Licence};
use stigmergy_store::{FootprintStatus, ViewStore};

use crate::{GatewaySchema, Projector};

/// How many forks up the ancestry of a design a page and document follow.
const MAX_ANCESTRY: usize = 32;

/// The public base URL documents and pages link with, when configured (`[open] public_url`);
/// else each request's own scheme and host.
#[derive(Clone, Debug, Default)]
pub struct PublicUrl(pub Option<String>);

/// Mounts the open-metadata routes; the gateway's schema must be in the app data.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .app_data(web::QueryConfig::default().error_handler(|error, _| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-parameter",
                "Bad query parameter",
                error.to_string(),
            )
            .into()
        }))
        .route(CONTEXT_PATH, web::get().to(context))
        .route("/id/{id}/qr", web::get().to(qr::serve))
        .route("/id/{id}", web::get().to(item))
        // An IRI written out unencoded, slashes and all.
        .route("/id/{id:.+}", web::get().to(item))
        .route("/01/{rest:.+}", web::get().to(digital_link));
}

/// Everything the document and the page of one resource show, read from the views.
#[derive(Clone, Debug)]
pub struct Item {
    pub id: Iri,
    pub record: Record,
    pub history: Vec<(Event, Role)>,
    pub upstream: Vec<(Iri, Option<String>)>,
    pub downstream: Vec<(Iri, Option<String>)>,
    pub design: Option<DesignSummary>,
    pub licence: Option<Licence>,
    pub ancestry: Vec<DesignSummary>,
    pub footprint: Option<FootprintIssue>,
    pub names: BTreeMap<Iri, String>,
    pub as_of: u64,
}

impl Item {
    /// Its JSON-LD document, with links below `base`.
    pub fn document(&self, base: &str) -> Value {
        document::document(&Inputs {
            base,
            id: &self.id,
            record: &self.record,
            history: &self.history,
            upstream: &self.upstream,
            downstream: &self.downstream,
            design: self.design.as_ref(),
            licence: self.licence.as_ref(),
            ancestry: &self.ancestry,
            footprint: self.footprint.as_ref(),
            names: &self.names,
            as_of: self.as_of,
        })
    }

    /// The event that retracted its creation, when it was.
    pub fn retraction(&self) -> Option<&Event> {
        document::retraction(&self.record, &self.history)
    }
}

/// Reads what the document of `id` needs; `None` when no event mentions it. `names` knows the
/// organisations (the directory); contributors' and suppliers' names come from the events.
pub async fn gather(
    views: &dyn ViewStore,
    names_of: &(dyn Fn(&Iri) -> Option<String> + Sync),
    as_of: u64,
    id: &Iri,
) -> stigmergy_store::Result<Option<Item>> {
    let Some(record) = views.record(id).await? else {
        return Ok(None);
    };
    let history: Vec<(Event, Role)> = views
        .timeline(id)
        .await?
        .into_iter()
        .map(|entry| (entry.event, entry.role))
        .collect();
    let mut names = BTreeMap::new();
    for (event, _) in &history {
        collect_names(event, &mut names);
    }
    let upstream = neighbours(views, id, Direction::Upstream).await?;
    let downstream = neighbours(views, id, Direction::Downstream).await?;
    // The suppliers of its inputs are named in the events that created them.
    for (input, _) in &upstream {
        for entry in views.timeline(input).await? {
            if entry.role == Role::Created {
                collect_names(&entry.event, &mut names);
            }
        }
    }

    // A batch's design, or a fork's parent; then the parents of that, up the fork tree.
    let design = match &record.design {
        Some(design) => Some(design_summary(views, design, &mut names).await?),
        None => None,
    };
    let mut ancestry = Vec::new();
    let mut seen = BTreeSet::from([id.clone()]);
    let mut next = design.as_ref().map(|d| d.id.clone());
    if record.kind == Kind::Batch {
        // A batch's ancestry starts at its design's parent.
        next = match &design {
            Some(design) => views.record(&design.id).await?.and_then(|r| r.design),
            None => None,
        };
        if let Some(design) = &design {
            seen.insert(design.id.clone());
        }
    }
    while let Some(parent) = next.take() {
        if ancestry.len() >= MAX_ANCESTRY || !seen.insert(parent.clone()) {
            break;
        }
        let summary = design_summary(views, &parent, &mut names).await?;
        next = views.record(&parent).await?.and_then(|r| r.design);
        ancestry.push(summary);
    }
    let licence = if record.kind == Kind::Design {
        licence_in(&history)
    } else {
        None
    };
    let footprint = current_footprint(views, id).await?;
    for organization in history
        .iter()
        .map(|(event, _)| &event.recorded_by)
        .chain(record.created_by.as_ref())
    {
        if let Some(name) = names_of(organization) {
            names.insert(organization.clone(), name);
        }
    }
    if let Some(attribution) = &record.attribution {
        for (agent, _) in attribution.ranked() {
            if !names.contains_key(&agent)
                && let Some(name) = names_of(&agent)
            {
                names.insert(agent, name);
            }
        }
    }
    Ok(Some(Item {
        id: id.clone(),
        record,
        history,
        upstream,
        downstream,
        design,
        licence,
        ancestry,
        footprint,
        names,
        as_of,
    }))
}

/// The resources one step up or down from `id`, with their names.
async fn neighbours(
    views: &dyn ViewStore,
    id: &Iri,
    direction: Direction,
) -> stigmergy_store::Result<Vec<(Iri, Option<String>)>> {
    let lineage = views.lineage(id, direction, 1).await?;
    let ids: Vec<Iri> = lineage
        .nodes
        .into_iter()
        .filter(|(_, depth)| *depth == 1)
        .map(|(node, _)| node)
        .collect();
    let records: BTreeMap<Iri, Record> = views.records(&ids).await?.into_iter().collect();
    Ok(ids
        .into_iter()
        .map(|node| {
            let name = records.get(&node).and_then(|r| r.name.clone());
            (node, name)
        })
        .collect())
}

async fn design_summary(
    views: &dyn ViewStore,
    design: &Iri,
    names: &mut BTreeMap<Iri, String>,
) -> stigmergy_store::Result<DesignSummary> {
    let record = views.record(design).await?;
    let timeline = views.timeline(design).await?;
    let history: Vec<(Event, Role)> = timeline
        .into_iter()
        .map(|entry| (entry.event, entry.role))
        .collect();
    for (event, role) in &history {
        if *role == Role::ContributedTo || *role == Role::Created {
            collect_names(event, names);
        }
    }
    Ok(DesignSummary {
        id: design.clone(),
        name: record.and_then(|r| r.name),
        licence: licence_in(&history),
    })
}

/// The licence of the design whose history this is (from the event that created it).
fn licence_in(history: &[(Event, Role)]) -> Option<Licence> {
    history
        .iter()
        .find_map(|(event, role)| match (&event.payload, role) {
            (EventPayload::DesignPublished(p), Role::Created) => Some(p.licence.clone()),
            (EventPayload::DesignForked(p), Role::Created) => Some(p.licence.clone()),
            _ => None,
        })
}

/// The active footprint version of `id`, with the ids of those it replaced, latest first.
async fn current_footprint(
    views: &dyn ViewStore,
    id: &Iri,
) -> stigmergy_store::Result<Option<FootprintIssue>> {
    let versions = views.footprint_versions(id).await?;
    let Some(current) = versions
        .iter()
        .rev()
        .find(|version| version.status == FootprintStatus::Active)
    else {
        return Ok(None);
    };
    let preceding = versions
        .iter()
        .rev()
        .filter(|version| version.version < current.version)
        .map(|version| version.id)
        .collect();
    Ok(Some(FootprintIssue {
        id: current.id,
        version: current.version,
        preceding,
    }))
}

/// The names events give to the parties they mention (`{"id": …, "name": …}` anywhere in a
/// payload: contributors, suppliers).
fn collect_names(event: &Event, names: &mut BTreeMap<Iri, String>) {
    fn walk(value: &Value, names: &mut BTreeMap<Iri, String>) {
        match value {
            Value::Object(map) => {
                if let (Some(Value::String(id)), Some(Value::String(name))) =
                    (map.get("id"), map.get("name"))
                    && let Ok(iri) = Iri::parse(id.as_str())
                {
                    names.entry(iri).or_insert_with(|| name.clone());
                }
                map.values().for_each(|v| walk(v, names));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, names)),
            _ => {}
        }
    }
    if let Ok(payload) = serde_json::to_value(&event.payload) {
        walk(&payload, names);
    }
}

/// What a request may be answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    JsonLd,
    Json,
    Html,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Self::JsonLd => "application/ld+json",
            Self::Json => "application/json",
            Self::Html => "text/html; charset=utf-8",
        }
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemQuery {
    /// `jsonld`, `json` or `html`: overrides the `Accept` header (for links and browsers).
    format: Option<String>,
}

/// The format a request asks for: `?format=` when given, else the `Accept` header's most
/// preferred of JSON-LD, JSON and HTML (JSON-LD on a tie or without the header); `None` when
/// the header accepts none of them.
pub fn negotiate(request: &HttpRequest, format: Option<&str>) -> Result<Option<Format>, Problem> {
    if let Some(format) = format {
        return match format {
            "jsonld" => Ok(Some(Format::JsonLd)),
            "json" => Ok(Some(Format::Json)),
            "html" => Ok(Some(Format::Html)),
            other => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-parameter",
                "Bad query parameter",
                format!("format={other:?}: expected jsonld, json or html"),
            )
            .with("parameter", "format")),
        };
    }
    if !request.headers().contains_key(header::ACCEPT) {
        return Ok(Some(Format::JsonLd));
    }
    let Ok(accept) = Accept::parse(request) else {
        return Ok(Some(Format::JsonLd));
    };
    // By essence (`application/ld+json`), since the parser keeps a `+json` suffix apart.
    let quality = |wanted: &str| -> Quality {
        let wanted_type = wanted.split('/').next().unwrap_or_default();
        accept
            .iter()
            .filter_map(|item| {
                let (kind, subtype) = (item.item.type_().as_str(), item.item.subtype().as_str());
                let specificity = match (kind, subtype) {
                    _ if item.item.essence_str() == wanted => 3,
                    _ if kind == wanted_type && subtype == "*" => 2,
                    ("*", "*") => 1,
                    _ => return None,
                };
                Some((specificity, item.quality))
            })
            .max_by_key(|(specificity, _)| *specificity)
            .map_or(Quality::ZERO, |(_, q)| q)
    };
    let ranked = [
        (Format::JsonLd, quality("application/ld+json")),
        (Format::Json, quality("application/json")),
        (Format::Html, quality("text/html")),
    ];
    let best = ranked.iter().filter(|(_, q)| *q > Quality::ZERO).fold(
        None::<(Format, Quality)>,
        |best, &(format, q)| match best {
            Some((_, top)) if top >= q => best,
            _ => Some((format, q)),
        },
    );
    Ok(best.map(|(format, _)| format))
}

/// The base URL links are made with.
pub fn base_url(request: &HttpRequest, configured: &PublicUrl) -> String {
    match &configured.0 {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let info = request.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}

/// What the handlers read through: the views, the directory, the projector, the base URL.
pub(crate) struct Reader<'a> {
    pub(crate) views: &'a Arc<dyn ViewStore>,
    capture: &'a Capture,
    projector: &'a str,
    pub(crate) base: String,
}

impl<'a> Reader<'a> {
    pub(crate) fn of(request: &HttpRequest, schema: &'a GatewaySchema) -> Result<Self, Problem> {
        let missing =
            |what: &str| Problem::unavailable(format!("the gateway was built without {what}"));
        let views = schema
            .data::<Arc<dyn ViewStore>>()
            .ok_or_else(|| missing("views"))?;
        let capture = schema.data::<Capture>().ok_or_else(|| missing("capture"))?;
        let projector = schema
            .data::<Projector>()
            .ok_or_else(|| missing("a projector"))?;
        let configured = schema.data::<PublicUrl>().cloned().unwrap_or_default();
        Ok(Self {
            views,
            capture,
            projector: &projector.0,
            base: base_url(request, &configured),
        })
    }

    pub(crate) async fn item(&self, id: &Iri) -> Result<Item, Problem> {
        let as_of = self
            .views
            .position(self.projector)
            .await
            .map_err(unavailable)?
            .0;
        let directory = &self.capture.directory;
        let names_of = |id: &Iri| directory.get(id).map(|organization| organization.name);
        gather(self.views.as_ref(), &names_of, as_of, id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                Problem::not_found(format!("no event mentions {id}")).with("id", id.as_str())
            })
    }
}

pub(crate) fn unavailable(error: stigmergy_store::Error) -> Problem {
    Problem::unavailable(format!("the views cannot be read: {error}"))
}

/// The IRI in a `/id/{id}` path (percent-decoded by the router).
pub(crate) fn parse_id(raw: &str) -> Result<Iri, Problem> {
    Iri::parse(raw).map_err(|reason| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-id",
            "Not an identifier",
            format!("{raw:?} is not an IRI: {reason}"),
        )
        .with("id", raw)
    })
}

async fn context() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/ld+json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(CONTEXT)
}

async fn item(
    request: HttpRequest,
    id: web::Path<String>,
    query: web::Query<ItemQuery>,
    schema: web::Data<GatewaySchema>,
) -> Result<HttpResponse, Problem> {
    let Some(format) = negotiate(&request, query.format.as_deref())? else {
        return Err(Problem::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            "Not acceptable",
            "this resource is served as application/ld+json, application/json or text/html",
        ));
    };
    let id = parse_id(&id)?;
    let reader = Reader::of(&request, &schema)?;
    let item = reader.item(&id).await?;
    let document = item.document(&reader.base);
    let version = document["version"].as_str().unwrap_or_default().to_owned();
    let etag = format!(
        "\"{version}-{}\"",
        match format {
            Format::JsonLd => "ld",
            Format::Json => "json",
            Format::Html => "html",
        }
    );
    let status = if item.retraction().is_some() {
        StatusCode::GONE
    } else {
        StatusCode::OK
    };
    let unchanged = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let mut response = HttpResponse::build(if unchanged {
        StatusCode::NOT_MODIFIED
    } else {
        status
    });
    response
        .insert_header((header::VARY, "Accept"))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((
            header::LINK,
            format!(
                "<{}>; rel=\"alternate\"; type=\"application/ld+json\", <{}/qr>; rel=\"related\"; type=\"image/svg+xml\"",
                document::item_url(&reader.base, &id),
                document::item_url(&reader.base, &id),
            ),
        ));
    if unchanged {
        return Ok(response.finish());
    }
    response.content_type(format.content_type());
    Ok(match format {
        Format::JsonLd | Format::Json => response
            .body(serde_json::to_string_pretty(&document).unwrap_or_else(|_| document.to_string())),
        Format::Html => response.body(page::render(&item, &document, &reader.base).into_string()),
    })
}

/// A GS1 Digital Link path (`/01/{gtin}[/10/{lot}][/21/{serial}]…`): the resource whose IRI is
/// that path on GS1's canonical host (`https://id.gs1.org`) or on this resolver's, by a
/// `303 See Other` to its `/id/` URL (the query string, e.g. `?format=html`, kept).
async fn digital_link(
    request: HttpRequest,
    rest: web::Path<String>,
    schema: web::Data<GatewaySchema>,
) -> Result<HttpResponse, Problem> {
    let path = format!("/01/{}", rest.into_inner());
    let gtin = path.split('/').nth(2).unwrap_or_default().to_owned();
    check_gtin(&gtin)?;
    let reader = Reader::of(&request, &schema)?;
    let candidates = [
        format!("https://id.gs1.org{path}"),
        format!("{}{path}", reader.base),
    ];
    for candidate in candidates {
        let Ok(iri) = Iri::parse(candidate.as_str()) else {
            continue;
        };
        if reader
            .views
            .record(&iri)
            .await
            .map_err(unavailable)?
            .is_some()
        {
            let mut location = document::item_url(&reader.base, &iri);
            if !request.query_string().is_empty() {
                location.push('?');
                location.push_str(request.query_string());
            }
            return Ok(HttpResponse::SeeOther()
                .insert_header((header::LOCATION, location))
                .finish());
        }
    }
    Err(Problem::not_found(format!(
        "no event mentions the GS1 Digital Link {path} (on https://id.gs1.org or {})",
        reader.base
    ))
    .with("path", path))
}

/// A GTIN-8, -12, -13 or -14 with its check digit right.
fn check_gtin(gtin: &str) -> Result<(), Problem> {
    let bad = |why: &str| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-gtin",
            "Not a GTIN",
            format!("{gtin:?} is not a GTIN: {why}"),
        )
        .with("gtin", gtin)
    };
    if !matches!(gtin.len(), 8 | 12 | 13 | 14) || !gtin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("a GTIN is 8, 12, 13 or 14 digits"));
    }
    let digits: Vec<u32> = gtin.bytes().map(|b| u32::from(b - b'0')).collect();
    let (body, check) = digits.split_at(digits.len() - 1);
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { d * 3 } else { *d })
        .sum();
    if (10 - sum % 10) % 10 == check[0] {
        Ok(())
    } else {
        Err(bad("its check digit is wrong"))
    }
}

#[cfg(test)]
mod tests {
    use super::check_gtin;

    #[test]
    fn gtins_are_checked_by_their_check_digit() {
        assert!(check_gtin("09506000134352").is_ok());
        assert!(check_gtin("4006381333931").is_ok());
        assert!(check_gtin("09506000134353").is_err());
        assert!(check_gtin("0950600013435").is_err());
        assert!(check_gtin("95060001343a2").is_err());
    }
}
