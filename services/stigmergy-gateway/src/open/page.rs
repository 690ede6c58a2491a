//! The item page a buyer reaches by scanning a label: what the resource is, its journey on a
//! timeline, its footprint broken down in a chart (inline SVG, no script), its design's fork
//! ancestry, who contributed and their shares, and links up and down its lineage. Plain HTML
//! and a little CSS, readable on a phone; the JSON-LD document is embedded for crawlers.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;
use stigmergy_domain::views::document::{self, DesignSummary};
use stigmergy_domain::views::{Kind, Role};
use stigmergy_domain::{Event, EventType, Iri};

use super::Item;

const STYLE: &str = r#"
:root { color-scheme: light dark; --ink: #1d2a22; --muted: #5b6b61; --line: #d5ddd8; --accent: #2f7d4f; --bg: #fbfcfb; }
@media (prefers-color-scheme: dark) { :root { --ink: #e5ece7; --muted: #9fb0a5; --line: #33433a; --bg: #121814; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: var(--bg); }
main { max-width: 42rem; margin: 0 auto; padding: 1rem; }
header { display: flex; gap: 1rem; align-items: flex-start; justify-content: space-between; }
header > div { min-width: 0; overflow-wrap: anywhere; }
header img { width: 6rem; height: 6rem; flex: none; background: #fff; padding: .25rem; border-radius: .25rem; }
h1 { font-size: 1.5rem; margin: .25rem 0; }
h2 { font-size: 1.1rem; margin: 1.75rem 0 .5rem; border-bottom: 1px solid var(--line); padding-bottom: .25rem; }
.kind { text-transform: uppercase; letter-spacing: .06em; font-size: .75rem; color: var(--muted); }
.iri { font-size: .8rem; color: var(--muted); word-break: break-all; }
.banner { background: #a33; color: #fff; padding: .75rem 1rem; border-radius: .25rem; margin: 1rem 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 1rem 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
ol.timeline { list-style: none; padding: 0; margin: 0; border-left: 2px solid var(--accent); }
ol.timeline li { position: relative; padding: 0 0 1rem 1rem; }
ol.timeline li::before { content: ""; position: absolute; left: -.45rem; top: .4rem; width: .7rem; height: .7rem; border-radius: 50%; background: var(--accent); }
ol.timeline time { display: block; font-size: .8rem; color: var(--muted); }
.total { font-size: 1.75rem; font-weight: 600; }
.unit { color: var(--muted); }
svg text { fill: var(--ink); font: 13px system-ui, sans-serif; }
table { width: 100%; border-collapse: collapse; }
td { padding: .3rem 0; vertical-align: middle; overflow-wrap: anywhere; }
td.percent { text-align: right; padding: 0 .5rem; white-space: nowrap; }
td.share { width: 40%; }
.bar { height: .6rem; background: var(--accent); border-radius: .3rem; }
ul.links { padding-left: 1.2rem; }
a { color: var(--accent); }
footer { margin-top: 2rem; font-size: .8rem; color: var(--muted); }
"#;

/// The page of `item`, with `document` (its JSON-LD) embedded and links below `base`.
pub fn render(item: &Item, document: &Value, base: &str) -> Markup {
    let record = &item.record;
    let title = title(item);
    let url = document::item_url(base, &item.id);
    // `</` cannot end the script element early once escaped.
    let embedded = document.to_string().replace("</", "<\\/");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Stigmergy" }
                link rel="alternate" type="application/ld+json" href=(format!("{url}?format=jsonld"));
                style { (PreEscaped(STYLE)) }
                script type="application/ld+json" { (PreEscaped(embedded)) }
            }
            body {
                main {
                    header {
                        div {
                            div.kind { (kind_label(record.kind)) }
                            h1 { (title) }
                            div.iri { (item.id.as_str()) }
                        }
                        img src=(format!("{url}/qr?format=svg")) alt="QR code of this page's address";
                    }
                    @if let Some(retraction) = item.retraction() {
                        div.banner role="alert" id="retracted" {
                            "The record of this item was retracted on "
                            (day(retraction)) ": "
                            (retraction_reason(retraction))
                        }
                    }
                    (facts(item, base))
                    (journey(item))
                    (footprint(item))
                    (ancestry(item, base))
                    (contributors(item))
                    (links("Made from", "upstream", &item.upstream, base))
                    (links("Went into", "downstream", &item.downstream, base))
                    footer {
                        "Open data: "
                        a href=(format!("{url}?format=jsonld")) { "JSON-LD" }
                        @if let Some(issue) = &item.footprint {
                            " · " a href=(format!("{base}/pact/3/footprints/{}", issue.id)) { "PACT footprint" }
                        }
                        " · as of log position " (item.as_of)
                        " · version " (document["version"].as_str().unwrap_or_default())
                    }
                }
            }
        }
    }
}

/// Its name; a batch is named after its design; else the last segment of its IRI.
fn title(item: &Item) -> String {
    if let Some(name) = &item.record.name {
        return name.clone();
    }
    if item.record.kind == Kind::Batch
        && let Some(name) = item.design.as_ref().and_then(|d| d.name.as_ref())
    {
        return format!("{name} (batch)");
    }
    let iri = item.id.as_str();
    iri.trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .filter(|last| !last.is_empty())
        .unwrap_or(iri)
        .to_owned()
}

fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Design => "Open design",
        Kind::MaterialLot => "Material lot",
        Kind::Batch => "Batch",
        Kind::RecoveredLot => "Recovered material",
        Kind::Shipment => "Shipment",
        Kind::Unknown => "Unrecorded item",
    }
}

fn name_of<'a>(item: &'a Item, id: &'a Iri) -> &'a str {
    item.names.get(id).map_or(id.as_str(), String::as_str)
}

fn facts(item: &Item, base: &str) -> Markup {
    let record = &item.record;
    html! {
        dl.facts {
            @if let Some(maker) = &record.created_by {
                dt { @if record.kind == Kind::Design { "Published by" } @else { "Made by" } }
                dd { (name_of(item, maker)) }
            }
            @if let Some(quantity) = &record.quantity {
                dt { "Quantity" }
                dd { (number(quantity.amount.get())) " " (quantity.unit.words()) }
            }
            @if let Some(design) = &item.design {
                dt { @if record.kind == Kind::Design { "Forked from" } @else { "Design" } }
                dd { (design_link(design, base)) }
            }
            @if let Some(licence) = &item.licence {
                dt { "Licence" }
                dd { a href=(document::licence_iri(licence)) { (licence.as_str()) } }
            } @else if let Some(licence) = item.design.as_ref().and_then(|d| d.licence.as_ref()) {
                dt { "Design licence" }
                dd { a href=(document::licence_iri(licence)) { (licence.as_str()) } }
            }
            @if let Some(footprint) = &record.footprint {
                dt { "Recycled content" }
                dd { (percent(footprint.recycled_content)) }
            }
        }
    }
}

fn design_link(design: &DesignSummary, base: &str) -> Markup {
    let label = design
        .name
        .clone()
        .unwrap_or_else(|| design.id.as_str().to_owned());
    html! { a href=(document::item_url(base, &design.id)) { (label) } }
}

fn event_label(event_type: EventType, role: Role) -> &'static str {
    match (event_type, role) {
        (EventType::DesignPublished, _) => "Design published",
        (EventType::DesignForked, Role::Cited) => "Forked into a new design",
        (EventType::DesignForked, _) => "Forked from its parent design",
        (EventType::ContributionRecorded, _) => "Contribution recorded",
        (EventType::MaterialSourced, _) => "Material sourced",
        (EventType::BatchFabricated, Role::Created) => "Fabricated",
        (EventType::BatchFabricated, Role::Cited) => "A batch was made from this design",
        (EventType::BatchFabricated, _) => "Used to fabricate a batch",
        (EventType::ShipmentDispatched, _) => "Shipped",
        (EventType::ShipmentReceived, _) => "Received",
        (EventType::BatchRepaired, Role::Repaired) => "Repaired",
        (EventType::BatchRepaired, _) => "Used as a spare part",
        (EventType::BatchRecycled, Role::Created) => "Recovered by recycling",
        (EventType::BatchRecycled, _) => "Recycled",
        (EventType::EventRetracted, _) => "A record was retracted",
    }
}

/// Where a shipment went, as its payload names the places.
fn places(event: &Event) -> Option<String> {
    let payload = serde_json::to_value(&event.payload).ok()?;
    let name = |key: &str| {
        payload
            .get(key)
            .and_then(|place| place.get("name").or(Some(place)))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match (name("from"), name("to"), name("location")) {
        (Some(from), Some(to), _) => Some(format!("{from} → {to}")),
        (_, _, Some(location)) => Some(location),
        _ => None,
    }
}

fn day(event: &Event) -> String {
    event.occurred_at.to_string().chars().take(10).collect()
}

fn retraction_reason(event: &Event) -> String {
    match &event.payload {
        stigmergy_domain::EventPayload::EventRetracted(p) => p.reason.to_string(),
        _ => String::new(),
    }
}

fn journey(item: &Item) -> Markup {
    html! {
        section id="journey" {
            h2 { "Journey" }
            @if item.history.is_empty() {
                p { "No events about this item." }
            } @else {
                ol.timeline {
                    @for (event, role) in &item.history {
                        li data-event-type=(event.event_type().name()) {
                            time datetime=(event.occurred_at.to_string()) { (day(event)) }
                            strong { (event_label(event.event_type(), *role)) }
                            @if let Some(places) = places(event) { " · " (places) }
                            br;
                            span.unit { "by " (name_of(item, &event.recorded_by)) }
                        }
                    }
                }
            }
        }
    }
}

/// The footprint: its total per declared unit and a bar chart of its three parts.
fn footprint(item: &Item) -> Markup {
    let Some(footprint) = &item.record.footprint else {
        return html! {};
    };
    let parts = [
        ("Materials", footprint.per_unit.materials),
        ("Fabrication", footprint.per_unit.fabrication),
        ("Transport", footprint.per_unit.transport),
    ];
    let total = footprint.per_unit.total();
    let widest = parts.iter().map(|(_, v)| v.abs()).fold(0.0_f64, f64::max);
    // Per one of it: the singular of a counted unit.
    let unit = {
        use stigmergy_domain::Unit;
        match footprint.unit {
            Unit::Piece => "piece",
            Unit::One => "unit",
            Unit::Set => "set",
            Unit::Litre => "litre",
            Unit::Millilitre => "millilitre",
            Unit::CubicMetre => "cubic metre",
            Unit::Metre => "metre",
            Unit::SquareMetre => "square metre",
            other => other.words(),
        }
    };
    let (label_width, bar_width, row) = (100.0, 180.0, 28.0);
    html! {
        section id="footprint" {
            h2 { "Carbon footprint" }
            p {
                span.total { (number(total)) } " "
                span.unit { "kg CO₂e per " (unit) " (cradle to gate)" }
            }
            svg id="footprint-chart" role="img" viewBox=(format!("0 0 360 {}", row * 3.0))
                width="100%" aria-label=(format!("Footprint breakdown: materials {}, fabrication {}, transport {} kg CO2e", number(parts[0].1), number(parts[1].1), number(parts[2].1))) {
                @for (n, (label, value)) in parts.iter().enumerate() {
                    @let y = row * n as f64;
                    @let width = if widest > 0.0 { bar_width * value.abs() / widest } else { 0.0 };
                    text x="0" y=(y + 18.0) { (label) }
                    rect class="bar" data-part=(label.to_lowercase()) x=(label_width) y=(y + 6.0)
                        width=(format!("{width:.1}")) height="14" rx="3" fill="#2f7d4f" {}
                    text x=(label_width + width + 6.0) y=(y + 18.0) { (number(*value)) }
                }
            }
            p.unit {
                "Primary data: " (percent(footprint.primary_data_share))
                " · method " (footprint.method) " " (footprint.method_version)
                @if let Some(issue) = &item.footprint { " · footprint version " (issue.version) }
                @if !footprint.missing_inputs.is_empty() {
                    " · a lower bound: the footprint of "
                    (footprint.missing_inputs.len()) " input(s) is not known"
                }
            }
        }
    }
}

fn ancestry(item: &Item, base: &str) -> Markup {
    if item.ancestry.is_empty() && !(item.record.kind == Kind::Batch && item.design.is_some()) {
        return html! {};
    }
    html! {
        section id="ancestry" {
            h2 { "Design ancestry" }
            ol {
                @if item.record.kind == Kind::Batch && let Some(design) = &item.design {
                    li { (design_link(design, base)) (licence_note(design)) }
                }
                @for design in &item.ancestry {
                    li { "forked from " (design_link(design, base)) (licence_note(design)) }
                }
            }
        }
    }
}

fn licence_note(design: &DesignSummary) -> Markup {
    html! {
        @if let Some(licence) = &design.licence { " (" (licence.as_str()) ")" }
    }
}

fn contributors(item: &Item) -> Markup {
    let Some(attribution) = &item.record.attribution else {
        return html! {};
    };
    let ranked = attribution.ranked();
    html! {
        section id="contributors" {
            h2 { "Who contributed" }
            table {
                @for (agent, share) in &ranked {
                    tr {
                        td { (name_of(item, agent)) }
                        td.percent { (percent(*share)) }
                        td.share { div.bar style=(format!("width:{:.1}%", share * 100.0)) {} }
                    }
                }
            }
            p.unit { "Shares by " (stigmergy_domain::views::contribution::METHOD) }
        }
    }
}

fn links(title: &str, id: &str, resources: &[(Iri, Option<String>)], base: &str) -> Markup {
    if resources.is_empty() {
        return html! {};
    }
    html! {
        section id=(id) {
            h2 { (title) }
            ul.links {
                @for (resource, name) in resources {
                    li { a href=(document::item_url(base, resource)) { (name.as_deref().unwrap_or(resource.as_str())) } }
                }
            }
        }
    }
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 || value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

fn percent(share: f64) -> String {
    format!("{:.0}\u{a0}%", share * 100.0)
}
