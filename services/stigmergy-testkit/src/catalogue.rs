//! The fixed vocabulary the generator draws from: organisations, materials, designs, places,
//! licences and the sentences people write. Plausible, not authoritative: the footprint figures
//! are round numbers of the right order of magnitude.

use stigmergy_domain::Unit;

/// A maker organisation: its name, the slug of its web site, and the city of its workshop.
pub(crate) struct Organisation {
    pub name: &'static str,
    pub slug: &'static str,
    pub city: &'static str,
    pub country: &'static str,
}

const fn org(
    name: &'static str,
    slug: &'static str,
    city: &'static str,
    country: &'static str,
) -> Organisation {
    Organisation {
        name,
        slug,
        city,
        country,
    }
}

/// Repeated with a number (`Fab Lab Barcelona 2`) when more organisations are asked for.
pub(crate) const ORGANISATIONS: &[Organisation] = &[
    org("Valldaura Microfactory", "valldaura", "Cerdanyola", "ES"),
    org("Open Stool Collective", "openstool", "Ghent", "BE"),
    org("Kantoor Groen", "kantoorgroen", "Utrecht", "NL"),
    org(
        "Precious Plastic Eindhoven",
        "preciousplastic-ehv",
        "Eindhoven",
        "NL",
    ),
    org("Fab Lab Barcelona", "fablabbcn", "Barcelona", "ES"),
    org("Werkstatt Kreuzberg", "werkstatt-kreuzberg", "Berlin", "DE"),
    org("Atelier Soudé", "atelier-soude", "Lyon", "FR"),
    org("Repair Café Utrecht", "repaircafe-utrecht", "Utrecht", "NL"),
    org("Makerspace Tampere", "makerspace-tampere", "Tampere", "FI"),
    org("Oficina Comum", "oficina-comum", "Lisbon", "PT"),
    org("Hackerspace Brno", "hackerspace-brno", "Brno", "CZ"),
    org("Officina Torino", "officina-torino", "Turin", "IT"),
    org("Solar Cargo Bikes", "solarcargo", "Copenhagen", "DK"),
    org("Wood Commons Kraków", "woodcommons", "Kraków", "PL"),
    org("Fibre Loop", "fibreloop", "Prato", "IT"),
    org("Circuit Menders", "circuitmenders", "Vienna", "AT"),
];

pub(crate) const FIRST_NAMES: &[&str] = &[
    "ana", "ben", "carla", "dani", "emre", "fatou", "greta", "hugo", "ines", "jonas", "kaja",
    "luca", "mira", "noor", "oskar", "paula", "quinn", "rosa", "sami", "tove",
];

pub(crate) const PERSON_NAMES: &[&str] = &[
    "Ana Ruiz",
    "Ben Okafor",
    "Carla Puig",
    "Dani Ferrer",
    "Emre Yilmaz",
    "Fatou Diallo",
    "Greta Lind",
    "Hugo Martin",
    "Inês Costa",
    "Jonas Weber",
    "Kaja Novak",
    "Luca Bianchi",
];

/// A material that can be sourced: its unit, a cradle-to-gate footprint per unit, its mass per
/// unit, the size of a lot, a recycled content it always has, and what recycling it yields.
pub(crate) struct Material {
    pub name: &'static str,
    pub unit: Unit,
    pub kg_co2e_per_unit: f64,
    pub kg_per_unit: f64,
    pub lot_size: (f64, f64),
    pub recycled_content: f64,
    pub recovered: &'static str,
}

const fn material(
    name: &'static str,
    unit: Unit,
    kg_co2e_per_unit: f64,
    kg_per_unit: f64,
    lot_size: (f64, f64),
    recycled_content: f64,
    recovered: &'static str,
) -> Material {
    Material {
        name,
        unit,
        kg_co2e_per_unit,
        kg_per_unit,
        lot_size,
        recycled_content,
        recovered,
    }
}

pub(crate) const MATERIALS: &[Material] = &[
    material(
        "Birch plywood 12 mm",
        Unit::Kilogram,
        0.68,
        1.0,
        (50.0, 800.0),
        0.0,
        "Birch chips",
    ),
    material(
        "PLA filament",
        Unit::Kilogram,
        2.1,
        1.0,
        (5.0, 60.0),
        0.0,
        "PLA flakes",
    ),
    material(
        "Recycled PLA filament",
        Unit::Kilogram,
        1.1,
        1.0,
        (5.0, 40.0),
        1.0,
        "PLA flakes",
    ),
    material(
        "Recycled PET sheet 3 mm",
        Unit::Kilogram,
        1.3,
        1.0,
        (20.0, 300.0),
        1.0,
        "PET regrind",
    ),
    material(
        "Aluminium 6061 extrusion",
        Unit::Kilogram,
        8.6,
        1.0,
        (20.0, 500.0),
        0.0,
        "Aluminium scrap",
    ),
    material(
        "Steel sheet S235 2 mm",
        Unit::Kilogram,
        2.0,
        1.0,
        (100.0, 2000.0),
        0.0,
        "Steel scrap",
    ),
    material(
        "Oak boards, FSC",
        Unit::Kilogram,
        0.45,
        1.0,
        (100.0, 1500.0),
        0.0,
        "Wood chips",
    ),
    material(
        "Hemp fibre",
        Unit::Kilogram,
        0.6,
        1.0,
        (20.0, 400.0),
        0.0,
        "Fibre offcuts",
    ),
    material(
        "Copper wire 1.5 mm²",
        Unit::Metre,
        0.09,
        0.014,
        (100.0, 2000.0),
        0.0,
        "Copper granulate",
    ),
    material(
        "Epoxy resin",
        Unit::Litre,
        6.7,
        1.15,
        (5.0, 60.0),
        0.0,
        "Mixed plastic regrind",
    ),
    material(
        "Linseed oil finish",
        Unit::Litre,
        1.2,
        0.93,
        (5.0, 50.0),
        0.0,
        "Mixed plastic regrind",
    ),
    material(
        "Organic cotton canvas",
        Unit::SquareMetre,
        0.9,
        0.35,
        (20.0, 400.0),
        0.0,
        "Textile fibre",
    ),
    material(
        "M4 stainless steel screws",
        Unit::Piece,
        0.004,
        0.002,
        (500.0, 20000.0),
        0.0,
        "Steel scrap",
    ),
    material(
        "ESP32 microcontroller module",
        Unit::Piece,
        1.6,
        0.01,
        (20.0, 500.0),
        0.0,
        "E-waste fraction",
    ),
    material(
        "Lithium-ion cell 18650",
        Unit::Piece,
        2.5,
        0.047,
        (50.0, 1000.0),
        0.0,
        "Black mass",
    ),
];

/// The materials hub lots are made of (indices into [`MATERIALS`]): bulk stock a regional
/// supplier sells to everyone.
pub(crate) const HUB_MATERIALS: &[usize] = &[5, 0, 1, 4, 6];

/// Designs as (name, slug).
pub(crate) const DESIGNS: &[(&str, &str)] = &[
    ("Open Stool", "open-stool"),
    ("Flat-pack Shelf", "flatpack-shelf"),
    ("Modular Desk", "modular-desk"),
    ("Bike Trailer", "bike-trailer"),
    ("Solar Food Dryer", "solar-dryer"),
    ("Water Filter Housing", "water-filter"),
    ("Open Prosthetic Hand", "prosthetic-hand"),
    ("Compost Sifter", "compost-sifter"),
    ("Seed Planter", "seed-planter"),
    ("Small Wind Turbine Blade", "wind-blade"),
    ("Frame Loom", "frame-loom"),
    ("Weather Station", "weather-station"),
    ("Repairable Kettle", "repairable-kettle"),
    ("Cargo Bike Box", "cargo-box"),
    ("Open Chair", "open-chair"),
    ("Lamp Shade", "lamp-shade"),
];

pub(crate) const DESIGN_DESCRIPTIONS: &[&str] = &[
    "A flat-pack piece cut from one sheet, assembled without glue.",
    "Parametric source files; every part fits a 600 × 400 mm laser bed.",
    "Designed for disassembly: standard fasteners only.",
    "Printable joints, wooden members, tested to 150 kg.",
];

/// SPDX identifiers and one licence IRI; the share-alike ones are in three families.
pub(crate) const LICENCES: &[&str] = &[
    "CERN-OHL-S-2.0",
    "CC-BY-SA-4.0",
    "CERN-OHL-W-2.0",
    "CERN-OHL-P-2.0",
    "GPL-3.0-or-later",
    "MIT",
    "https://wiki.p2pfoundation.net/Peer_Production_License",
];

/// Where material comes from, as (name, country).
pub(crate) const ORIGINS: &[(&str, &str)] = &[
    ("Koskisen mill, Järvelä", "FI"),
    ("Filament recycler, Barcelona", "ES"),
    ("Aluminium extruder, Bonn", "DE"),
    ("Steel service centre, Linz", "AT"),
    ("Sawmill, Białowieża", "PL"),
    ("Hemp cooperative, Troyes", "FR"),
    ("Wire works, Wrocław", "PL"),
    ("Resin plant, Rotterdam", "NL"),
    ("Textile mill, Izmir", "TR"),
    ("Fastener wholesaler, Stuttgart", "DE"),
    ("Electronics distributor, Shenzhen", "CN"),
    ("Cell factory, Skellefteå", "SE"),
];

/// Suppliers as (name, site).
pub(crate) const SUPPLIERS: &[(&str, &str)] = &[
    ("Koskisen", "https://koskisen.example"),
    ("rFil", "https://rfil.example"),
    ("Alu Rhein", "https://alurhein.example"),
    ("Stahl Linz", "https://stahl-linz.example"),
    ("Puszcza Timber", "https://puszcza.example"),
    ("Chanvre de l'Aube", "https://chanvre.example"),
    ("Kabel Wrocław", "https://kabel.example"),
    ("Harsen Rotterdam", "https://harsen.example"),
    ("Ege Tekstil", "https://egetekstil.example"),
    ("Schrauben Süd", "https://schrauben.example"),
];

pub(crate) const CONTRIBUTION_DESCRIPTIONS: &[&str] = &[
    "Reworked the joints for a 12 mm sheet.",
    "Wrote the assembly guide with photographs.",
    "Load test to 150 kg, report attached.",
    "Reviewed the cutting files and fixed the kerf.",
    "Fixed the bill of materials.",
];

pub(crate) const REPAIR_DESCRIPTIONS: &[&str] = &[
    "Reprinted two cracked joints.",
    "Replaced the worn bearings and re-oiled the frame.",
    "New cells in the battery pack.",
    "Re-glued a split leg and refinished the top.",
];

pub(crate) const RETRACTION_REASONS: &[&str] = &[
    "Recorded by mistake",
    "Recorded twice from the workshop tablet",
    "Entered against the wrong item",
];

pub(crate) const SHIPMENT_CANCELLED: &str = "Shipment cancelled before pickup";
pub(crate) const LOT_REJECTED: &str = "Lot rejected at incoming inspection";
