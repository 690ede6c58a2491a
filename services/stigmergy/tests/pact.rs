//! The PACT v3 footprint exchange through the real application over HTTP: every document of
//! `GET /pact/3/footprints` (every page) and `GET /pact/3/footprints/{id}` of the demo validates
//! against the committed PACT v3 schema (`schemas/pact/v3/openapi.yaml`, its `ProductFootprint`,
//! with JSON Schema 2020-12 as OpenAPI 3.1 has it); the filters and the pagination links work; a
//! footprint issued again deprecates its predecessor, which the new one names in
//! `precedingPfIds`; unknown ids answer 404 and bad parameters 400, as problem+json.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::LazyLock;

use reqwest::StatusCode;
use serde_json::{Value, json};
use stigmergy::demo::DemoReport;
use support::{Org, TestApp};

const BATCH_1: &str = "https://valldaura.example/batches/open-stool-2025-001";
const BATCH_2: &str = "https://valldaura.example/batches/open-stool-2025-002";
const PLYWOOD: &str = "https://valldaura.example/lots/birch-plywood-2025-014";
const RPLA: &str = "https://valldaura.example/lots/rpla-filament-2025-007";
const FLAKES: &str = "https://preciousplastic-ehv.example/lots/pla-flakes-2025-031";
const CHIPS: &str = "https://preciousplastic-ehv.example/lots/birch-chips-2025-032";

/// The PACT URN of one of the demo's `https://` identifiers.
fn urn(iri: &str) -> String {
    let rest = iri.strip_prefix("https://").unwrap();
    let host = rest.split('/').next().unwrap();
    format!("urn:pact:{host}:product-id:{rest}")
}

/// The committed PACT v3 schema: the `ProductFootprint` of the OpenAPI document, compiled as
/// JSON Schema 2020-12 with its formats checked.
static PRODUCT_FOOTPRINT: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/pact/v3/openapi.yaml");
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
    let openapi: Value = serde_norway::from_str(&text).expect("the PACT OpenAPI document is YAML");
    assert_eq!(openapi["openapi"], "3.1.0");
    assert_eq!(openapi["info"]["version"], "3.0.0");
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": "#/components/schemas/ProductFootprint",
        "components": { "schemas": openapi["components"]["schemas"] },
    });
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|error| panic!("the PACT ProductFootprint does not compile: {error}"))
});

fn violations(document: &Value) -> Vec<String> {
    PRODUCT_FOOTPRINT
        .iter_errors(document)
        .map(|error| format!("{error} at {}", error.instance_path()))
        .collect()
}

fn assert_valid(document: &Value) {
    let found = violations(document);
    assert!(
        found.is_empty(),
        "not a PACT v3 ProductFootprint: {found:#?}\n{document:#}"
    );
}

/// The demo, loaded and projected, with its organisations.
async fn demo() -> (TestApp, DemoReport) {
    demo_on(TestApp::spawn().await).await
}

async fn demo_on(app: TestApp) -> (TestApp, DemoReport) {
    let report = stigmergy::demo::load(&app.base, support::OPERATOR_TOKEN)
        .await
        .expect("the demo loads");
    app.wait_for_views().await;
    (app, report)
}

fn organization(report: &DemoReport, role: &str) -> Org {
    let found = report
        .organizations
        .iter()
        .find(|o| o.role == role)
        .unwrap();
    Org {
        id: found.id.clone(),
        key: found.api_key.clone(),
    }
}

/// A page of the listing: its status, content type, body and `Link` target.
struct Page {
    status: StatusCode,
    content_type: String,
    body: Value,
    next: Option<String>,
}

async fn fetch(app: &TestApp, url: &str) -> Page {
    let response = app.client.get(url).send().await.expect("GET");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let content_type = header("content-type").unwrap_or_default();
    let next = header("link").map(|link| {
        assert!(link.ends_with(r#">; rel="next""#), "{link}");
        link.trim_start_matches('<')
            .split_once('>')
            .unwrap()
            .0
            .to_owned()
    });
    let status = response.status();
    let body = response.json().await.expect("a JSON body");
    Page {
        status,
        content_type,
        body,
        next,
    }
}

/// Every document of a listing, following the pagination links from `path`.
async fn every_page(app: &TestApp, path: &str) -> (Vec<Value>, usize) {
    let mut documents = Vec::new();
    let mut pages = 0;
    let mut url = Some(format!("{}{path}", app.base));
    while let Some(at) = url {
        let page = fetch(app, &at).await;
        assert_eq!(page.status, StatusCode::OK, "{at}: {:#}", page.body);
        assert_eq!(page.content_type, "application/json");
        documents.extend(page.body["data"].as_array().unwrap().iter().cloned());
        pages += 1;
        assert!(pages < 1000, "the links never end");
        if let Some(next) = &page.next {
            assert!(
                next.starts_with(&app.base),
                "an absolute link to the same host: {next}"
            );
        }
        url = page.next;
    }
    (documents, pages)
}

async fn listed(app: &TestApp, query: &str) -> Vec<Value> {
    every_page(app, &format!("/pact/3/footprints?{query}"))
        .await
        .0
}

fn ids(documents: &[Value]) -> Vec<String> {
    documents
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

fn of_product<'a>(documents: &'a [Value], iri: &str) -> Vec<&'a Value> {
    let urn = urn(iri);
    documents
        .iter()
        .filter(|d| d["productIds"] == json!([urn]))
        .collect()
}

fn active<'a>(documents: &'a [Value], iri: &str) -> &'a Value {
    let active: Vec<_> = of_product(documents, iri)
        .into_iter()
        .filter(|d| d["status"] == "Active")
        .collect();
    assert_eq!(active.len(), 1, "one active footprint of {iri}");
    active[0]
}

#[tokio::test]
async fn every_demo_footprint_validates_against_the_pact_v3_schema_on_every_page() {
    let (app, _) = demo().await;

    let whole = fetch(&app, &format!("{}/pact/3/footprints", app.base)).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.content_type, "application/json");
    assert_eq!(
        whole.next, None,
        "the demo fits in one page of the default limit"
    );
    let all = whole.body["data"].as_array().unwrap().clone();
    for iri in [BATCH_1, BATCH_2, PLYWOOD, RPLA, FLAKES, CHIPS] {
        active(&all, iri);
    }
    for document in &all {
        assert_valid(document);
        assert_eq!(document["specVersion"], "3.0.0");
    }

    // The schema is not vacuous: it refuses what PACT refuses.
    let sample = all[0].clone();
    let mut without_pcf = sample.clone();
    without_pcf.as_object_mut().unwrap().remove("pcf");
    assert!(!violations(&without_pcf).is_empty());
    let mut exponent = sample.clone();
    exponent["pcf"]["pcfExcludingBiogenicUptake"] = json!("1e-7");
    assert!(!violations(&exponent).is_empty());
    let mut bad_id = sample.clone();
    bad_id["productIds"] = json!(["https://valldaura.example/lots/x"]);
    assert!(!violations(&bad_id).is_empty(), "product ids are URNs");

    // Pages of two, following the links, give the same documents in the same order.
    let (paged, pages) = every_page(&app, "/pact/3/footprints?limit=2").await;
    assert_eq!(ids(&paged), ids(&all));
    assert_eq!(pages, all.len().div_ceil(2));
    let unique: BTreeSet<_> = ids(&all).into_iter().collect();
    assert_eq!(unique.len(), all.len(), "no version twice");

    for document in &all {
        let id = document["id"].as_str().unwrap();
        let one = fetch(&app, &format!("{}/pact/3/footprints/{id}", app.base)).await;
        assert_eq!(one.status, StatusCode::OK);
        assert_eq!(&one.body["data"], document);
        assert_valid(&one.body["data"]);
    }

    // What the documents say, for a lot and a batch of the demo.
    let plywood = active(&all, PLYWOOD);
    assert_eq!(plywood["companyName"], "Valldaura Microfactory");
    assert_eq!(plywood["productNameCompany"], "Birch plywood 12 mm");
    let pcf = &plywood["pcf"];
    assert_eq!(pcf["declaredUnitOfMeasurement"], "kilogram");
    assert_eq!(pcf["declaredUnitAmount"], "1");
    assert_eq!(pcf["productMassPerDeclaredUnit"], "1");
    assert_eq!(pcf["pcfExcludingBiogenicUptake"], "0.68");
    assert_eq!(pcf["pcfIncludingBiogenicUptake"], "0.68");
    assert_eq!(pcf["primaryDataShare"], "0", "declared as secondary");
    assert_eq!(pcf["geographyCountry"], "FI", "the lot's origin");
    assert_eq!(pcf["referencePeriodStart"], "2025-02-10T08:00:00Z");
    assert_eq!(pcf["referencePeriodEnd"], "2025-02-10T08:00:00.000001Z");
    assert_eq!(
        pcf["productOrSectorSpecificRules"][0]["ruleNames"],
        json!(["stigmergy-cradle-to-gate version 1"])
    );
    let batch = active(&all, BATCH_2);
    assert_eq!(
        batch["productNameCompany"],
        "Open Stool, recycled-PLA joints"
    );
    assert_eq!(batch["pcf"]["declaredUnitOfMeasurement"], "piece");
    assert_eq!(batch["pcf"]["geographyCountry"], "ES");
    assert_eq!(
        batch["companyIds"][0]
            .as_str()
            .map(|id| id.starts_with("urn:uuid:")),
        Some(true)
    );
    assert!(
        batch["comment"]
            .as_str()
            .unwrap()
            .contains("the mass per declared unit (given as 0)"),
        "the comment says what is not known"
    );
    let total: f64 = batch["pcf"]["pcfExcludingBiogenicUptake"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let graphql = app
        .graphql(&format!(
            r#"{{ resource(id: "{BATCH_2}") {{ footprint {{ id kgCo2ePerUnit precedingIds }} }} }}"#
        ))
        .await;
    let footprint = &graphql["data"]["resource"]["footprint"];
    assert_eq!(
        footprint["id"], batch["id"],
        "the current version: {graphql:#}"
    );
    assert_eq!(
        footprint["precedingIds"],
        batch.get("precedingPfIds").cloned().unwrap_or(json!([]))
    );
    let expected = footprint["kgCo2ePerUnit"].as_f64().unwrap();
    assert!(
        (total - expected).abs() <= 1e-12 * expected,
        "{total} vs {expected}"
    );
}

#[tokio::test]
async fn behind_a_public_url_the_next_page_link_is_on_it() {
    const PUBLIC: &str = "https://trace.example.org/open";
    let (app, _) = demo_on(
        TestApp::spawn_with(|config| config.open.public_url = Some(format!("{PUBLIC}/"))).await,
    )
    .await;
    let first = fetch(&app, &format!("{}/pact/3/footprints?limit=2", app.base)).await;
    assert_eq!(first.status, StatusCode::OK);
    let next = first.next.expect("the demo has more than two footprints");
    let path = next
        .strip_prefix(PUBLIC)
        .unwrap_or_else(|| panic!("the link is on the public URL: {next}"));
    assert!(path.starts_with("/pact/3/footprints?"), "{next}");
    // The same page, asked of the gateway itself.
    let second = fetch(&app, &format!("{}{path}", app.base)).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body["data"].as_array().unwrap().len(), 2);
    assert_ne!(second.body["data"][0]["id"], first.body["data"][0]["id"]);
}

#[tokio::test]
async fn the_pact_filters_select_footprints_and_bad_requests_are_refused() {
    let (app, report) = demo().await;
    let all = listed(&app, "").await;
    let of = |iris: &[&str]| -> Vec<String> {
        let urns: Vec<String> = iris.iter().map(|iri| urn(iri)).collect();
        all.iter()
            .filter(|d| urns.iter().any(|u| d["productIds"] == json!([u])))
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };

    let batch_1 = ids(&listed(&app, &format!("productId={}", urn(BATCH_1))).await);
    assert_eq!(batch_1, of(&[BATCH_1]));
    assert!(!batch_1.is_empty());
    let two = listed(
        &app,
        &format!(
            "productId={}&productId={}&limit=1",
            urn(PLYWOOD),
            urn(FLAKES)
        ),
    )
    .await;
    assert_eq!(ids(&two), of(&[PLYWOOD, FLAKES]));
    let shouted = urn(PLYWOOD).replacen("urn:pact:", "URN:PACT:", 1);
    assert_eq!(
        ids(&listed(&app, &format!("productId={shouted}")).await),
        of(&[PLYWOOD]),
        "urn: and the namespace in any case"
    );
    assert!(
        listed(&app, "productId=urn:gtin:4712345060507")
            .await
            .is_empty()
    );

    let recycler = organization(&report, "recycler");
    let made = listed(&app, &format!("companyId={}", recycler.id)).await;
    assert_eq!(ids(&made), of(&[FLAKES, CHIPS]));
    assert!(made.iter().all(|d| d["companyIds"] == json!([recycler.id])));

    for status in ["Active", "deprecated"] {
        let chosen = listed(&app, &format!("status={status}")).await;
        let expected: Vec<_> = all
            .iter()
            .filter(|d| d["status"].as_str().unwrap().eq_ignore_ascii_case(status))
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids(&chosen), expected, "{status}");
    }

    assert_eq!(
        ids(&listed(&app, "geography=NL").await),
        of(&[FLAKES, CHIPS]),
        "recovered in Eindhoven"
    );
    assert_eq!(ids(&listed(&app, "geography=fi").await), of(&[PLYWOOD]));
    assert!(listed(&app, "geography=Europe").await.is_empty());
    assert!(listed(&app, "classification=urn:cpc:0151").await.is_empty());

    // Every reference period ends in 2025, so every footprint is valid until 2028.
    assert_eq!(listed(&app, "validOn=2026-06-01T00:00:00Z").await, all);
    assert!(
        listed(&app, "validOn=2024-06-01T00:00:00Z")
            .await
            .is_empty()
    );
    assert_eq!(listed(&app, "validAfter=2024-06-01T00:00:00Z").await, all);
    assert!(
        listed(&app, "validAfter=2026-06-01T00:00:00Z")
            .await
            .is_empty()
    );
    assert_eq!(listed(&app, "validBefore=2030-01-01T00:00:00Z").await, all);
    assert!(
        listed(&app, "validBefore=2027-01-01T00:00:00Z")
            .await
            .is_empty()
    );

    for bad in [
        "limit=-1",
        "limit=ten",
        "status=Current",
        "productId=plywood",
        "companyId=Valldaura",
        "validOn=yesterday",
        "offset=2",
        "x-stigmergy-after=nowhere",
    ] {
        let answer = app.get(&format!("/pact/3/footprints?{bad}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}: {answer:#?}");
        assert_eq!(answer.content_type, "application/problem+json", "{bad}");
        assert_eq!(answer.body["code"], "BadRequest", "{bad}");
        assert_eq!(
            answer.body["type"], "https://stigmergy.dev/problems/bad-parameter",
            "{bad}"
        );
    }
    let malformed = app.get("/pact/3/footprints/not-a-uuid").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.content_type, "application/problem+json");
    assert_eq!(
        malformed.body["type"],
        "https://stigmergy.dev/problems/invalid-footprint-id"
    );
    let unknown = app
        .get("/pact/3/footprints/6f1c1a6e-1b7e-4a61-9a5e-2d4c8e0f9b13")
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.content_type, "application/problem+json");
    assert_eq!(unknown.body["code"], "NotFound");
}

#[tokio::test]
async fn a_footprint_issued_again_deprecates_its_predecessor_which_it_names() {
    let (app, report) = demo().await;
    let query = format!("productId={}", urn(BATCH_1));
    let before = listed(&app, &query).await;
    let replaced = active(&before, BATCH_1).clone();

    // The fabricator repairs more of the first batch: an upstream figure of its footprint changes.
    let fabricator = organization(&report, "fabricator");
    app.record_ok(
        &fabricator,
        &json!({
            "type": "BatchRepaired",
            "occurredAt": "2025-11-03T10:00:00Z",
            "payload": {
                "resource": BATCH_1,
                "parts": [ { "resource": RPLA, "quantity": { "amount": 0.3, "unit": "KGM" } } ],
                "energy": { "amount": 1.5, "unit": "KWH" },
                "description": "Reprinted a joint."
            }
        }),
    )
    .await;
    app.wait_for_views().await;

    let after = listed(&app, &query).await;
    assert_eq!(after.len(), before.len() + 1, "one version more");
    let issued = active(&after, BATCH_1);
    assert_ne!(issued["id"], replaced["id"]);
    assert_valid(issued);
    let preceding: Vec<String> = issued["precedingPfIds"]
        .as_array()
        .expect("the new version names those it replaces")
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        preceding.first(),
        replaced["id"].as_str().map(str::to_owned).as_ref(),
        "the version it replaces directly comes first"
    );
    let mut earlier: Vec<String> = ids(&before);
    earlier.sort();
    let mut named = preceding.clone();
    named.sort();
    assert_eq!(named, earlier, "every earlier version, once");
    assert_eq!(
        issued["pcf"]["referencePeriodEnd"], "2025-11-03T10:00:00.000001Z",
        "the repair is the latest event it counts"
    );
    let figure = |d: &Value| -> f64 {
        d["pcf"]["pcfExcludingBiogenicUptake"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        figure(issued) > figure(&replaced),
        "the repair adds emissions"
    );

    let id = replaced["id"].as_str().unwrap();
    let now = fetch(&app, &format!("{}/pact/3/footprints/{id}", app.base)).await;
    assert_eq!(now.status, StatusCode::OK);
    assert_eq!(now.body["data"]["status"], "Deprecated");
    assert_eq!(
        now.body["data"]["pcf"], replaced["pcf"],
        "a version never changes but for its status"
    );
    assert_valid(&now.body["data"]);
    let actives = listed(&app, &format!("{query}&status=Active")).await;
    assert_eq!(
        ids(&actives),
        vec![issued["id"].as_str().unwrap().to_owned()]
    );
}
