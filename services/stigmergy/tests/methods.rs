//! The worked example of docs/methods.md through the public API: its events, read from the
//! page, are recorded over HTTP by five organisations, and the GraphQL `resource` query gives
//! exactly the footprint and the attribution shares the page works out by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use stigmergy_domain::CountryCode;
use support::{Org, TestApp};

const PAGE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/methods.md"
));

const BATCH: &str = "https://maker.example.org/batches/stools-2026-04";
const FORK: &str = "https://maker.example.org/designs/stool-oak-steel";
const TOLERANCE: f64 = 1e-9;

/// The `json` blocks of section 4, in order, with their placeholders (`<maker>`, …).
fn blocks() -> Vec<String> {
    let start = PAGE.find("\n## 4. Worked example").expect("section 4");
    let section = &PAGE[start + 1..];
    let section = section.find("\n## ").map_or(section, |end| &section[..end]);
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```json\n") {
        let body = &rest[open + "```json\n".len()..];
        let close = body.find("```").expect("a closed block");
        blocks.push(body[..close].to_owned());
        rest = &body[close + 3..];
    }
    blocks
}

async fn graphql(app: &TestApp, query: &str) -> Value {
    let answer = app
        .post_raw(
            "/graphql",
            None,
            "application/json",
            json!({ "query": query }).to_string().into_bytes(),
        )
        .await;
    assert!(answer.status.is_success(), "{answer:#?}");
    assert!(answer.body.get("errors").is_none(), "{answer:#?}");
    answer.body
}

fn close(got: &Value, want: f64, what: &str) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is a number: {got}"));
    assert!(
        (got - want).abs() <= TOLERANCE,
        "{what}: the API says {got}, docs/methods.md says {want}"
    );
}

fn shares(contributions: &Value) -> HashMap<String, f64> {
    contributions["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["agent"].as_str().unwrap().to_owned(),
                s["share"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn check_shares(got: &HashMap<String, f64>, want: &[(&str, f64)], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?}");
    for (agent, share) in want {
        let got = got
            .get(*agent)
            .unwrap_or_else(|| panic!("{what}: no share for {agent} in {got:?}"));
        assert!(
            (got - share).abs() <= TOLERANCE,
            "{what}: {agent} has {got}, not {share}"
        );
    }
    let total: f64 = got.values().sum();
    assert!(
        (total - 1.0).abs() <= TOLERANCE,
        "{what}: the shares sum to {total}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worked_example_gives_the_pages_figures_through_http_and_graphql() {
    // The page's example overrides two defaults, as an operator would in configuration.
    let app = TestApp::spawn_with(|config| {
        config.footprint.transport.road = 0.1;
        config
            .footprint
            .grid
            .by_country
            .insert(CountryCode::parse("FR").unwrap(), 0.05);
    })
    .await;
    let mut organisations: HashMap<&str, Org> = HashMap::new();
    for placeholder in ["<studio>", "<mill>", "<maker>", "<buyer>", "<cafe>"] {
        let org = app.organization(placeholder.trim_matches(['<', '>'])).await;
        organisations.insert(placeholder, org);
    }
    let blocks = blocks();
    assert_eq!(blocks.len(), 14, "the example has 14 events");
    for block in &blocks {
        let recorder = organisations
            .keys()
            .find(|p| block.contains(&format!("\"recordedBy\": \"{p}\"")))
            .copied()
            .expect("each event names who records it");
        let mut text = block.clone();
        for (placeholder, org) in &organisations {
            text = text.replace(placeholder, &org.id);
        }
        let event: Value = serde_json::from_str(&text).unwrap();
        app.record_ok(&organisations[recorder], &event).await;
    }

    let query = format!(
        r#"{{
          batch: resource(id: "{BATCH}") {{
            kind
            footprint {{ kgCo2ePerUnit declaredUnit recycledContent primaryDataShare method version status
                         breakdown {{ materials fabrication transport }} missingInputs }}
            contributions {{ method shares {{ agent share }} }}
            anomalies {{ kind }}
          }}
          fork: resource(id: "{FORK}") {{ contributions {{ shares {{ agent share }} }} }}
        }}"#
    );
    // The projector runs beside capture: wait until it has the batch's footprint.
    let mut answer = Value::Null;
    for _ in 0..200 {
        answer = graphql(&app, &query).await;
        if !answer["data"]["batch"]["footprint"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let batch = &answer["data"]["batch"];
    assert_eq!(batch["kind"], "batch", "{answer:#}");
    let footprint = &batch["footprint"];
    close(
        &footprint["kgCo2ePerUnit"],
        5.0,
        "stool footprint per piece",
    );
    close(&footprint["breakdown"]["materials"], 4.2, "materials");
    close(&footprint["breakdown"]["fabrication"], 0.65, "fabrication");
    close(&footprint["breakdown"]["transport"], 0.15, "transport");
    close(
        &footprint["recycledContent"],
        0.25,
        "recycled-content share",
    );
    close(&footprint["primaryDataShare"], 0.63, "primary-data share");
    assert_eq!(footprint["declaredUnit"], "H87");
    assert_eq!(footprint["method"], "stigmergy-cradle-to-gate");
    assert_eq!(footprint["status"], "Active");
    assert_eq!(footprint["missingInputs"], json!([]));
    assert_eq!(batch["anomalies"], json!([]));

    assert_eq!(
        batch["contributions"]["method"],
        "stigmergy-value-equation/1"
    );
    let person = |name: &str| format!("https://people.example.org/{name}");
    check_shares(
        &shares(&batch["contributions"]),
        &[
            (&person("carla"), 0.30),
            (&person("dani"), 0.20),
            (&person("eve"), 0.18),
            ("https://forest-mill.example.org", 0.15),
            (&person("ana"), 0.09),
            ("https://scrap-yard.example.org", 0.05),
            (&person("ben"), 0.03),
        ],
        "batch",
    );
    check_shares(
        &shares(&answer["data"]["fork"]["contributions"]),
        &[
            (&person("eve"), 0.6),
            (&person("ana"), 0.3),
            (&person("ben"), 0.1),
        ],
        "fork",
    );
}
