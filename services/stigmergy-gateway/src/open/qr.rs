//! QR codes for labels: `GET /id/{id}/qr` encodes the item's URL (`/id/{id}` on the public base
//! URL) as SVG (`image/svg+xml`, the default) or PNG (`image/png`), chosen by `?format=svg|png`
//! or the `Accept` header. Medium error correction, a quiet zone of four modules.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, Accept, Header};
use actix_web::{HttpRequest, HttpResponse, web};
use qrcode::{Color, EcLevel, QrCode};
use stigmergy_capture::problem::Problem;
use stigmergy_domain::views::document;

use super::{Reader, parse_id, unavailable};
use crate::GatewaySchema;

/// Pixels per module of a PNG.
const PNG_SCALE: usize = 8;
/// Modules of white around the code, as the standard asks.
const QUIET_ZONE: usize = 4;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QrQuery {
    /// `svg` or `png`: overrides the `Accept` header.
    format: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Image {
    Svg,
    Png,
}

fn negotiate(request: &HttpRequest, format: Option<&str>) -> Result<Image, Problem> {
    match format {
        Some("svg") => return Ok(Image::Svg),
        Some("png") => return Ok(Image::Png),
        Some(other) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-parameter",
                "Bad query parameter",
                format!("format={other:?}: expected svg or png"),
            )
            .with("parameter", "format"));
        }
        None => {}
    }
    let Ok(accept) = Accept::parse(request) else {
        return Ok(Image::Svg);
    };
    for mime in accept.ranked() {
        match mime.essence_str() {
            "image/png" => return Ok(Image::Png),
            "image/svg+xml" | "image/*" | "*/*" => return Ok(Image::Svg),
            _ => {}
        }
    }
    if accept.is_empty() {
        return Ok(Image::Svg);
    }
    Err(Problem::new(
        StatusCode::NOT_ACCEPTABLE,
        "not-acceptable",
        "Not acceptable",
        "QR codes are served as image/svg+xml or image/png",
    ))
}

pub(crate) async fn serve(
    request: HttpRequest,
    id: web::Path<String>,
    query: web::Query<QrQuery>,
    schema: web::Data<GatewaySchema>,
) -> Result<HttpResponse, Problem> {
    let image = negotiate(&request, query.format.as_deref())?;
    let id = parse_id(&id)?;
    let reader = Reader::of(&request, &schema)?;
    if reader
        .views
        .record(&id)
        .await
        .map_err(unavailable)?
        .is_none()
    {
        return Err(Problem::not_found(format!("no event mentions {id}")).with("id", id.as_str()));
    }
    let url = document::item_url(&reader.base, &id);
    let code = QrCode::with_error_correction_level(url.as_bytes(), EcLevel::M).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too-long",
            "Too long for a QR code",
            format!("the URL {url} does not fit in a QR code: {e}"),
        )
    })?;
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .insert_header((header::VARY, "Accept"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
    Ok(match image {
        Image::Svg => response.content_type("image/svg+xml").body(
            code.render::<qrcode::render::svg::Color<'_>>()
                .quiet_zone(true)
                .min_dimensions(200, 200)
                .build(),
        ),
        Image::Png => response
            .content_type("image/png")
            .body(png(&code).map_err(|e| {
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    format!("cannot encode the PNG: {e}"),
                )
            })?),
    })
}

/// The code as a grayscale PNG, [`PNG_SCALE`] pixels a module, with the quiet zone.
pub fn png(code: &QrCode) -> Result<Vec<u8>, png::EncodingError> {
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * PNG_SCALE;
    let mut pixels = vec![255_u8; side * side];
    for (n, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (x, y) = (n % modules + QUIET_ZONE, n / modules + QUIET_ZONE);
        for row in y * PNG_SCALE..(y + 1) * PNG_SCALE {
            pixels[row * side + x * PNG_SCALE..row * side + (x + 1) * PNG_SCALE].fill(0);
        }
    }
    let mut bytes = Vec::new();
    let side = u32::try_from(side).unwrap_or(u32::MAX);
    let mut encoder = png::Encoder::new(&mut bytes, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(bytes)
}
