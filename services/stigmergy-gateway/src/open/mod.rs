//! Open metadata at a stable URL: `GET /id/{id}` answers a resource's JSON-LD document
//! (`application/ld+json`, built by `stigmergy_domain::views::document`) or its item page
//! (`text/html`, [`page`]) by content negotiation, `GET /id/{id}/qr` a QR code of that URL
//! ([`qr`]), GS1 Digital Link paths (`/01/{gtin}/…`) redirect to the item they name, and
//! `GET /context/v1.jsonld` serves the JSON-LD context. No API key is needed.

pub mod page;
pub mod qr;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, Accept, Header, Quality};
use actix_web::middleware::Compress;
use actix_web::{HttpRequest, HttpResponse, web};
use stigmergy_capture::Capture;
use stigmergy_capture::problem::Problem;
use stigmergy_domain::Iri;
use stigmergy_domain::views::document::{self, CONTEXT, CONTEXT_PATH};
use stigmergy_store::ViewStore;
pub use stigmergy_store::document::{Item, gather};

use crate::{GatewaySchema, Projector};

/// The public base URL documents and pages link with, when configured (`[open] public_url`);
/// else each request's own scheme and host.
#[derive(Clone, Debug, Default)]
pub struct PublicUrl(pub Option<String>);

/// Mounts the open-metadata routes; the gateway's schema must be in the app data. Documents,
/// pages and the context are compressed (gzip or deflate) for clients that accept it: a phone
/// scanning a label loads the page in a third of the bytes.
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
        .service(
            web::resource(CONTEXT_PATH)
                .wrap(Compress::default())
                .get(context),
        )
        .route("/id/{id}/qr", web::get().to(qr::serve))
        .service(
            web::resource("/id/{id}")
                .wrap(Compress::default())
                .get(item),
        )
        // An IRI written out unencoded, slashes and all.
        .service(
            web::resource("/id/{id:.+}")
                .wrap(Compress::default())
                .get(item),
        )
        .route("/01/{rest:.+}", web::get().to(digital_link));
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
        let names_of = |id: &Iri| directory.name_of(id);
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
    // Weak: the same validator for the document whether or not it is sent compressed.
    let etag = format!(
        "W/\"{version}-{}\"",
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
            // Weak comparison (RFC 9110 §8.8.3.2): the opaque tags alone.
            let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
            tags.split(',')
                .any(|tag| opaque(tag) == opaque(&etag) || tag.trim() == "*")
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
