//! The views through the public API: events recorded over HTTP are projected, and the GraphQL
//! `resource` query gives their timeline and lineage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::TestApp;

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
    answer.body
}

#[tokio::test]
async fn the_demo_batch_made_from_recycled_flakes_traces_back_to_the_first_batch() {
    let app = TestApp::spawn().await;
    stigmergy::demo::load(&app.base, support::OPERATOR_TOKEN)
        .await
        .expect("the demo loads");
    let query = r#"{ resource(id: "https://valldaura.example/batches/open-stool-2025-002") {
        id
        timeline { type role }
        upstream(depth: 10) { nodes { id depth } edges { from to kind amount unit } truncated }
    } }"#;
    // The projector follows the log; wait until it has applied the demo.
    let mut body = Value::Null;
    for _ in 0..200 {
        body = graphql(&app, query).await;
        if body["data"]["resource"]["upstream"]["nodes"]
            .as_array()
            .is_some_and(|n| n.len() >= 6)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resource = &body["data"]["resource"];
    assert_eq!(
        resource["timeline"],
        json!([{ "type": "BatchFabricated", "role": "created" }]),
        "{body:#}"
    );
    let depth_of = |id: &str| {
        resource["upstream"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .map(|n| n["depth"].as_u64().unwrap())
    };
    assert_eq!(
        depth_of("https://preciousplastic-ehv.example/lots/pla-flakes-2025-031"),
        Some(1)
    );
    assert_eq!(
        depth_of("https://valldaura.example/lots/birch-plywood-2025-014"),
        Some(1)
    );
    assert_eq!(
        depth_of("https://valldaura.example/designs/open-stool-rpla"),
        Some(1)
    );
    assert_eq!(
        depth_of("https://valldaura.example/batches/open-stool-2025-001"),
        Some(2),
        "recycled into the flakes"
    );
    assert_eq!(
        depth_of("https://openstool.example/designs/open-stool"),
        Some(2),
        "the fork's parent"
    );
    assert_eq!(
        depth_of("https://valldaura.example/lots/rpla-filament-2025-007"),
        Some(3)
    );
    let flakes_edge = resource["upstream"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["from"] == "https://preciousplastic-ehv.example/lots/pla-flakes-2025-031")
        .cloned()
        .unwrap();
    assert_eq!(flakes_edge["kind"], "input");
    assert_eq!(flakes_edge["amount"], 2.2);
    assert_eq!(flakes_edge["unit"], "KGM");
    assert_eq!(resource["upstream"]["truncated"], false);

    let unknown = graphql(
        &app,
        r#"{ resource(id: "https://nowhere.example/x") { id } }"#,
    )
    .await;
    assert_eq!(unknown["data"]["resource"], Value::Null);
    let too_deep = graphql(&app, r#"{ resource(id: "https://valldaura.example/batches/open-stool-2025-002") { upstream(depth: 51) { truncated } } }"#).await;
    assert!(
        too_deep["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 50")
    );
    let not_an_iri = graphql(&app, r#"{ resource(id: "http://insecure") { id } }"#).await;
    assert!(
        not_an_iri["errors"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
    );
}

#[tokio::test]
async fn get_graphql_serves_graphiql_pointed_at_the_endpoint() {
    let app = TestApp::spawn().await;
    let page = app
        .client
        .get(format!("{}/graphql", app.base))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(page.status().is_success());
    let content_type = page.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = page.text().await.unwrap();
    assert!(html.contains("graphiql"), "a GraphiQL page");
    assert!(html.contains("/graphql"), "pointed at the endpoint");
}
