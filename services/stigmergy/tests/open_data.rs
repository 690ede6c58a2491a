//! Open metadata, through the real application over HTTP: every demo item's JSON-LD document
//! expanded by a JSON-LD processor (PyLD, `$STIGMERGY_TEST_PYTHON`, which `./scripts/test`
//! installs) and carrying the views' footprint and shares; content negotiation, caching and
//! errors; a retracted resource; GS1 Digital Link paths; QR codes decoded back to the URL; and
//! the item page in a real headless Chromium driven over WebDriver (`chromedriver`,
//! `$STIGMERGY_TEST_CHROMEDRIVER`), with a screenshot under `target/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestApp, events};

const STOOL: &str = "https://openstool.example/designs/open-stool";
const STOOL_RPLA: &str = "https://valldaura.example/designs/open-stool-rpla";
const BATCH_1: &str = "https://valldaura.example/batches/open-stool-2025-001";
const BATCH_2: &str = "https://valldaura.example/batches/open-stool-2025-002";
const SHIPMENT: &str = "https://valldaura.example/shipments/2025-0042";
const PLYWOOD: &str = "https://valldaura.example/lots/birch-plywood-2025-014";
const FLAKES: &str = "https://preciousplastic-ehv.example/lots/pla-flakes-2025-031";

const STG: &str = "https://w3id.org/stigmergy/v1#";
const SCHEMA: &str = "https://schema.org/";
const PROV_DERIVED: &str = "http://www.w3.org/ns/prov#wasDerivedFrom";

/// The demo, loaded and projected.
async fn demo() -> TestApp {
    let app = TestApp::spawn().await;
    stigmergy::demo::load(&app.base, support::OPERATOR_TOKEN)
        .await
        .expect("the demo loads");
    app.wait_for_views().await;
    app
}

/// Whether the response's `Vary` names `header` (among all its values).
fn varies_by(response: &reqwest::Response, header: &str) -> bool {
    response
        .headers()
        .get_all("vary")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|name| name.trim().eq_ignore_ascii_case(header))
}

fn encode(iri: &str) -> String {
    stigmergy_domain::views::document::encode_segment(iri)
}

fn item_path(iri: &str) -> String {
    format!("/id/{}", encode(iri))
}

/// GET with an `Accept` header: status, content type, body text, headers.
async fn fetch(app: &TestApp, path: &str, accept: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(format!("{}{path}", app.base));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    request.send().await.unwrap()
}

async fn document(app: &TestApp, iri: &str) -> Value {
    let response = fetch(app, &item_path(iri), Some("application/ld+json")).await;
    assert_eq!(response.status(), StatusCode::OK, "{iri}");
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/ld+json"
    );
    response.json().await.unwrap()
}

/// Every resource the demo mentions: the lineage of its two batches, up and down.
async fn demo_resources(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for batch in [BATCH_1, BATCH_2] {
        let answer = app.graphql(&format!(
                r#"{{ resource(id: "{batch}") {{ upstream(depth: 20) {{ nodes {{ id }} }} downstream(depth: 20) {{ nodes {{ id }} }} }} }}"#
            ),
        )
        .await;
        for direction in ["upstream", "downstream"] {
            for node in answer["data"]["resource"][direction]["nodes"]
                .as_array()
                .into_iter()
                .flatten()
            {
                ids.push(node["id"].as_str().unwrap().to_owned());
            }
        }
    }
    ids.push(SHIPMENT.to_owned());
    ids.sort();
    ids.dedup();
    ids
}

/// The documents, expanded by PyLD (which fetches the `@context` from the application).
fn expand(documents: &[Value]) -> Vec<Value> {
    let python = std::env::var("STIGMERGY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import json, sys\nfrom pyld import jsonld\n\
                  docs = json.load(sys.stdin)\n\
                  json.dump([jsonld.expand(d) for d in docs], sys.stdout)\n";
    let mut child = std::process::Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} (set STIGMERGY_TEST_PYTHON): {e}"));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(serde_json::to_string(documents).unwrap().as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "PyLD could not expand the documents (is pyld installed for {python}?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The values of `property` of an expanded node.
fn values<'a>(node: &'a Value, property: &str) -> Vec<&'a Value> {
    node[property]
        .as_array()
        .map(|v| v.iter().collect())
        .unwrap_or_default()
}

fn number(node: &Value, property: &str) -> f64 {
    values(node, property)
        .first()
        .and_then(|v| v["@value"].as_f64())
        .unwrap_or_else(|| panic!("no number {property} in {node:#}"))
}

fn ids(nodes: &[&Value]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| n["@id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_demo_items_json_ld_expands_and_carries_the_views_footprint_and_shares() {
    let app = demo().await;
    let resources = demo_resources(&app).await;
    assert_eq!(resources.len(), 9, "{resources:?}");
    let mut documents = Vec::new();
    for iri in &resources {
        documents.push(document(&app, iri).await);
    }
    let expanded = expand(&documents);
    assert_eq!(expanded.len(), resources.len());
    let by_id: BTreeMap<&str, &Value> = expanded
        .iter()
        .map(|nodes| {
            let node = &nodes[0];
            (node["@id"].as_str().unwrap(), node)
        })
        .collect();
    for iri in &resources {
        assert!(
            by_id.contains_key(iri.as_str()),
            "{iri} expands to its own @id"
        );
    }

    // The batch: what GraphQL says of it is what the expanded document says.
    let views = app
        .graphql(&format!(
            r#"{{ resource(id: "{BATCH_1}") {{
                footprint {{ kgCo2ePerUnit recycledContent primaryDataShare version }}
                contributions {{ method shares {{ agent share }} }}
                timeline {{ eventId }}
            }} }}"#
        ))
        .await;
    let views = &views["data"]["resource"];
    let batch = by_id[BATCH_1];
    assert!(
        values(batch, "@type").contains(&&json!(format!("{SCHEMA}IndividualProduct"))),
        "{batch:#}"
    );
    let footprint = values(batch, &format!("{STG}footprint"))[0];
    let total = number(footprint, &format!("{STG}pcfExcludingBiogenicUptake"));
    let expected = views["footprint"]["kgCo2ePerUnit"].as_f64().unwrap();
    assert!(
        (total - expected).abs() < 1e-9,
        "{total} against {expected}"
    );
    assert!(total > 0.0);
    assert_eq!(
        values(footprint, &format!("{STG}declaredUnitOfMeasurement"))[0]["@value"],
        "piece"
    );
    let primary = number(footprint, &format!("{STG}primaryDataShare"));
    let expected_primary = views["footprint"]["primaryDataShare"].as_f64().unwrap() * 100.0;
    assert!((primary - expected_primary).abs() < 1e-9);
    let recycled = number(batch, &format!("{STG}recycledContentShare"));
    assert!((recycled - views["footprint"]["recycledContent"].as_f64().unwrap()).abs() < 1e-9);
    assert_eq!(
        number(footprint, &format!("{STG}footprintVersion")),
        views["footprint"]["version"].as_f64().unwrap()
    );

    let contributions = values(batch, &format!("{STG}contributions"))[0];
    assert_eq!(
        values(contributions, &format!("{STG}method"))[0]["@value"],
        views["contributions"]["method"]
    );
    let mut shares: BTreeMap<String, f64> = BTreeMap::new();
    for share in values(contributions, &format!("{STG}shares")) {
        let agent = values(share, &format!("{STG}agent"))[0]["@id"]
            .as_str()
            .unwrap();
        shares.insert(agent.to_owned(), number(share, &format!("{STG}share")));
    }
    let expected_shares: BTreeMap<String, f64> = views["contributions"]["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["agent"].as_str().unwrap().to_owned(),
                s["share"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shares.len(), expected_shares.len());
    for (agent, share) in &expected_shares {
        assert!((shares[agent] - share).abs() < 1e-9, "{agent}");
    }
    assert!((shares.values().sum::<f64>() - 1.0).abs() < 1e-9);

    let history = &values(batch, &format!("{STG}history"))[0]["@list"];
    let timeline: Vec<String> = views["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("urn:uuid:{}", e["eventId"].as_str().unwrap()))
        .collect();
    let steps: Vec<&Value> = history.as_array().unwrap().iter().collect();
    assert_eq!(ids(&steps), timeline, "the history is the timeline");
    assert!(steps.iter().any(|step| {
        values(step, "https://ref.gs1.org/epcis/bizStep")
            .iter()
            .any(|v| v["@id"] == "https://ref.gs1.org/cbv/BizStep-shipping")
    }));

    // Lineage links, up (PROV-O) and down (its reverse).
    assert!(ids(&values(batch, PROV_DERIVED)).contains(&PLYWOOD.to_owned()));
    let made_from_it: Vec<&Value> = batch["@reverse"][PROV_DERIVED]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert!(ids(&made_from_it).contains(&FLAKES.to_owned()));
    // The design's licence, on the batch's design and on the design itself.
    let design = values(batch, &format!("{SCHEMA}isBasedOn"))[0];
    assert_eq!(
        values(design, &format!("{SCHEMA}license"))[0]["@id"],
        "https://spdx.org/licenses/CERN-OHL-S-2.0"
    );
    assert_eq!(
        values(by_id[STOOL], &format!("{SCHEMA}license"))[0]["@id"],
        "https://spdx.org/licenses/CERN-OHL-S-2.0"
    );
    // The fork ancestry: the fork's parent, and for the batch its design's parent.
    let ancestry = |iri: &str| -> Vec<String> {
        let list = &values(by_id[iri], &format!("{STG}forkAncestry"))[0]["@list"];
        ids(&list.as_array().unwrap().iter().collect::<Vec<_>>())
    };
    assert_eq!(ancestry(STOOL_RPLA), [STOOL]);
    assert_eq!(ancestry(BATCH_1), [STOOL]);
    assert!(by_id[STOOL].get(format!("{STG}forkAncestry")).is_none());
    // Every document says which version of it this is.
    for document in &documents {
        assert!(document["version"].as_str().unwrap().starts_with("sha256:"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_id_url_negotiates_caches_and_refuses_clearly() {
    let app = demo().await;
    let path = item_path(BATCH_1);
    let kind = |response: &reqwest::Response| {
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    for (accept, expected) in [
        (None, "application/ld+json"),
        (Some("*/*"), "application/ld+json"),
        (Some("application/json"), "application/json"),
        (Some(browser), "text/html; charset=utf-8"),
        (
            Some("application/ld+json;q=0.5, text/html"),
            "text/html; charset=utf-8",
        ),
    ] {
        let response = fetch(&app, &path, accept).await;
        assert_eq!(response.status(), StatusCode::OK, "{accept:?}");
        assert_eq!(kind(&response), expected, "{accept:?}");
        assert!(varies_by(&response, "accept"), "{accept:?}");
    }
    let html = fetch(&app, &format!("{path}?format=html"), None).await;
    assert_eq!(kind(&html), "text/html; charset=utf-8");

    // The same document unencoded, and its ETag answered with 304.
    let unencoded = fetch(&app, &format!("/id/{BATCH_1}"), None).await;
    assert_eq!(unencoded.status(), StatusCode::OK);
    let etag = unencoded.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = unencoded.json().await.unwrap();
    assert_eq!(body["id"], BATCH_1);
    let again = app
        .client
        .get(format!("{}{path}", app.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // Refusals, as problem+json.
    for (path, accept, status, kind_of) in [
        (
            item_path("https://nobody.example/x"),
            None,
            404,
            "not-found",
        ),
        ("/id/not%20an%20iri".to_owned(), None, 400, "bad-id"),
        (path.clone(), Some("image/png"), 406, "not-acceptable"),
        (format!("{path}?format=pdf"), None, 400, "bad-parameter"),
        (format!("{path}?colour=red"), None, 400, "bad-parameter"),
        (format!("{path}/qr?format=gif"), None, 400, "bad-parameter"),
        (
            format!("{}/qr", item_path("https://nobody.example/x")),
            None,
            404,
            "not-found",
        ),
    ] {
        let response = fetch(&app, &path, accept).await;
        assert_eq!(response.status().as_u16(), status, "{path} {accept:?}");
        if !kind_of.is_empty() {
            assert_eq!(kind(&response), "application/problem+json", "{path}");
            let problem: Value = response.json().await.unwrap();
            assert!(
                problem["type"].as_str().unwrap().ends_with(kind_of),
                "{path}: {problem:#}"
            );
        }
    }
    // Compressed for a client that accepts gzip, to the same bytes, with the same validator.
    for (path, accept) in [
        (path.clone(), "application/ld+json"),
        (path.clone(), browser),
        ("/context/v1.jsonld".to_owned(), "application/ld+json"),
        ("/pact/3/footprints?limit=3".to_owned(), "application/json"),
    ] {
        let plain = fetch(&app, &path, Some(accept)).await;
        let plain_etag = plain.headers().get("etag").cloned();
        let plain = plain.bytes().await.unwrap();
        let gzipped = app
            .client
            .get(format!("{}{path}", app.base))
            .header("accept", accept)
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(gzipped.status(), StatusCode::OK, "{path}");
        assert_eq!(gzipped.headers()["content-encoding"], "gzip", "{path}");
        assert!(varies_by(&gzipped, "accept-encoding"), "{path}");
        assert_eq!(gzipped.headers().get("etag").cloned(), plain_etag, "{path}");
        let compressed = gzipped.bytes().await.unwrap();
        assert!(
            compressed.len() * 2 < plain.len(),
            "{path}: {} bytes gzipped, {} plain",
            compressed.len(),
            plain.len()
        );
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, plain, "{path}");
    }

    let context = fetch(&app, "/context/v1.jsonld", None).await;
    assert_eq!(kind(&context), "application/ld+json");
    let committed: Value =
        serde_json::from_str(include_str!("../../../schemas/context/v1.jsonld")).unwrap();
    assert_eq!(context.json::<Value>().await.unwrap(), committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retracted_resource_says_so_and_gs1_digital_links_resolve() {
    let app = TestApp::spawn().await;
    let org = app.organization("Lot Maker").await;
    let lot = "https://id.gs1.org/01/09506000134352/10/LOT42";
    let sourced_id = uuid::Uuid::new_v4().to_string();
    let mut sourced = events::with_id(events::material("lot-42", 12.0, "KGM"), &sourced_id);
    sourced["payload"]["lotId"] = json!(lot);
    app.record_ok(&org, &json!([sourced])).await;
    app.wait_for_views().await;

    // The Digital Link path redirects to the item; the query string goes along.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .get(format!(
            "{}/01/09506000134352/10/LOT42?format=html",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        location,
        format!("{}{}?format=html", app.base, item_path(lot))
    );
    let followed = fetch(&app, "/01/09506000134352/10/LOT42", None).await;
    assert_eq!(followed.status(), StatusCode::OK);
    assert_eq!(followed.json::<Value>().await.unwrap()["id"], lot);
    for (path, status) in [
        ("/01/09506000134353/10/LOT42", 400),
        ("/01/95060001343/10/LOT42", 400),
        ("/01/09506000134352/10/LOT43", 404),
    ] {
        assert_eq!(
            fetch(&app, path, None).await.status().as_u16(),
            status,
            "{path}"
        );
    }

    // Retracted: 410, and the document and the page say why.
    let retraction = events::retraction(&sourced_id);
    app.record_ok(&org, &json!([retraction])).await;
    app.wait_for_views().await;
    let response = fetch(&app, &item_path(lot), None).await;
    assert_eq!(response.status(), StatusCode::GONE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["retraction"]["retractedEvent"],
        format!("urn:uuid:{sourced_id}")
    );
    let page = fetch(&app, &item_path(lot), Some("text/html")).await;
    assert_eq!(page.status(), StatusCode::GONE);
    assert!(page.text().await.unwrap().contains("id=\"retracted\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_codes_decode_to_the_item_url() {
    let app = demo().await;
    let url = format!("{}{}", app.base, item_path(BATCH_1));
    let png = fetch(
        &app,
        &format!("{}/qr", item_path(BATCH_1)),
        Some("image/png"),
    )
    .await;
    assert_eq!(png.headers()["content-type"], "image/png");
    let bytes = png.bytes().await.unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    let (width, height) = (frame.width as usize, frame.height as usize);
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| pixels[y * width + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1);
    let (_, content) = grids[0].decode().unwrap();
    assert_eq!(content, url);

    let svg = fetch(&app, &format!("{}/qr", item_path(BATCH_1)), None).await;
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().contains("<svg"));
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    process: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Driver {
    fn start() -> Self {
        let binary =
            std::env::var("STIGMERGY_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut process = std::process::Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary} (set STIGMERGY_TEST_CHROMEDRIVER): {e}")
            });
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self {
                    process,
                    url: format!("http://127.0.0.1:{port}"),
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = process.kill();
        let _ = process.wait();
        panic!("{binary} did not listen");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_item_page_renders_the_journey_the_chart_and_the_contributors_in_a_real_browser() {
    let app = demo().await;
    let views = app.graphql(&format!(
            r#"{{ resource(id: "{BATCH_1}") {{ timeline {{ eventId }} contributions {{ shares {{ agent share }} }} }} }}"#
        ),
    )
    .await;
    let timeline = views["data"]["resource"]["timeline"]
        .as_array()
        .unwrap()
        .len();
    let shares = views["data"]["resource"]["contributions"]["shares"]
        .as_array()
        .unwrap()
        .len();

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let chromium =
        std::env::var("STIGMERGY_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                "--window-size=412,915",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let browser =
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("a WebDriver session in Chromium");

    // As a phone that scanned the label: the browser's own Accept header asks for HTML.
    let url = format!("{}{}", app.base, item_path(BATCH_1));
    browser.goto(&url).await.unwrap();
    let check = async {
        use fantoccini::Locator;
        let heading = browser.find(Locator::Css("h1")).await?.text().await?;
        assert!(heading.contains("Open Stool"), "{heading}");

        let steps = browser.find_all(Locator::Css("#journey li")).await?;
        assert_eq!(steps.len(), timeline, "one journey step per event");
        for step in &steps {
            let (_, _, width, height) = step.rectangle().await?;
            assert!(width > 100.0 && height > 10.0, "each step is laid out");
        }
        let journey = browser.find(Locator::Css("#journey")).await?.text().await?;
        assert!(journey.contains("Fabricated") && journey.contains("Shipped"), "{journey}");

        let bars = browser.find_all(Locator::Css("#footprint-chart rect.bar")).await?;
        assert_eq!(bars.len(), 3, "materials, fabrication, transport");
        let (_, _, materials, _) = bars[0].rectangle().await?;
        let (_, _, fabrication, _) = bars[1].rectangle().await?;
        assert!(materials > fabrication && fabrication > 0.0, "{materials} {fabrication}");

        let rows = browser.find_all(Locator::Css("#contributors tr")).await?;
        assert_eq!(rows.len(), shares);
        let first = rows[0].text().await?;
        assert!(first.contains("Carla Puig") && first.contains('%'), "{first}");

        let fits: Value = browser
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth",
                vec![],
            )
            .await?;
        assert_eq!(fits, json!(true), "no sideways scrolling on a 412 px wide phone");
        let qr: Value = browser
            .execute(
                "const qr = document.querySelector('header img'); return qr.complete && qr.naturalWidth > 0",
                vec![],
            )
            .await?;
        assert_eq!(qr, json!(true), "the QR code loads");

        browser.set_window_size(412, 2600).await?;
        let screenshot = browser.screenshot().await?;
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("open-data");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("item-page.png"), screenshot).unwrap();
        eprintln!("screenshot: {}", dir.join("item-page.png").display());
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    browser.close().await.unwrap();
    check.unwrap();
}
