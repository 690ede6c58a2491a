//! The GraphQL gateway through the running application: the queries on the demo scenario over
//! HTTP, the `recordEvents` mutation against `POST /v1/events`, and subscriptions over a real
//! WebSocket client speaking graphql-transport-ws.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::events::{self, id};
use support::{Org, TestApp};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const STOOL: &str = "https://openstool.example/designs/open-stool";
const STOOL_RPLA: &str = "https://valldaura.example/designs/open-stool-rpla";
const BATCH_1: &str = "https://valldaura.example/batches/open-stool-2025-001";
const BATCH_2: &str = "https://valldaura.example/batches/open-stool-2025-002";

async fn graphql_as(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> Value {
    let answer = app
        .post_raw(
            "/graphql",
            token,
            "application/json",
            json!({ "query": query, "variables": variables })
                .to_string()
                .into_bytes(),
        )
        .await;
    assert!(answer.status.is_success(), "{answer:#?}");
    answer.body
}

async fn graphql(app: &TestApp, query: &str, variables: Value) -> Value {
    graphql_as(app, None, query, variables).await
}

/// The data of a query that must succeed.
async fn data(app: &TestApp, query: &str, variables: Value) -> Value {
    let body = graphql(app, query, variables).await;
    assert!(body.get("errors").is_none(), "{body:#}");
    body["data"].clone()
}

/// The demo, loaded and projected.
async fn demo() -> (TestApp, stigmergy::demo::DemoReport) {
    let app = TestApp::spawn().await;
    let report = stigmergy::demo::load(&app.base, support::OPERATOR_TOKEN)
        .await
        .expect("the demo loads");
    app.wait_for_views().await;
    (app, report)
}

fn org_id(report: &stigmergy::demo::DemoReport, role: &str) -> String {
    report
        .organizations
        .iter()
        .find(|o| o.role == role)
        .unwrap()
        .id
        .clone()
}

#[tokio::test]
async fn a_resource_says_who_holds_how_much_where_it_went_and_its_lineage_nodes_carry_their_records()
 {
    let (app, report) = demo().await;
    let query = r#"query($id: String!) { resource(id: $id) {
        kind name design
        holders { organization quantity { amount unit } }
        whereabouts { holder location { name country } since inTransit }
        upstream(depth: 10) { nodes { id depth resource { kind name createdBy } } edges { from to kind amount unit } }
        footprint { version status kgCo2ePerUnit recycledContent primaryDataShare method methodVersion precedingIds }
        contributions { method shares { agent share } }
    } }"#;
    let batch = data(&app, query, json!({ "id": BATCH_1 })).await;
    let batch = &batch["resource"];
    assert_eq!(batch["kind"], "batch");
    assert_eq!(batch["design"], STOOL_RPLA);
    // 12 of the first batch's 20 stools went to the buyer, were repaired there, and some went
    // on to the recycler; 8 stayed at the fabricator.
    let whereabouts = &batch["whereabouts"];
    assert_eq!(whereabouts["inTransit"], false, "{whereabouts:#}");
    assert_eq!(
        whereabouts["holder"],
        org_id(&report, "recycler"),
        "{whereabouts:#}"
    );
    assert!(
        whereabouts["location"]["name"].is_string(),
        "{whereabouts:#}"
    );
    let holders = batch["holders"].as_array().unwrap();
    let holding = |role: &str| {
        holders
            .iter()
            .find(|h| h["organization"] == org_id(&report, role))
            .map(|h| h["quantity"]["amount"].as_f64().unwrap())
    };
    assert_eq!(holding("fabricator"), Some(8.0), "{holders:#?}");
    assert_eq!(holding("buyer"), Some(8.0), "{holders:#?}");

    let nodes = batch["upstream"]["nodes"].as_array().unwrap();
    let node = |id: &str| {
        nodes
            .iter()
            .find(|n| n["id"] == id)
            .unwrap_or_else(|| panic!("{id} upstream"))
    };
    assert_eq!(node(STOOL_RPLA)["resource"]["kind"], "design");
    assert_eq!(node(STOOL)["resource"]["name"], "Open Stool");
    assert_eq!(
        node(STOOL)["resource"]["createdBy"],
        org_id(&report, "commons")
    );
    let edges = batch["upstream"]["edges"].as_array().unwrap();
    assert!(
        edges.iter().any(|e| e["kind"] == "input"
            && e["amount"].as_f64().is_some_and(|a| a > 0.0)
            && e["unit"].is_string()),
        "edges carry the quantities that flowed: {edges:#?}"
    );
    assert_eq!(batch["footprint"]["status"], "Active");
    assert!(batch["footprint"]["kgCo2ePerUnit"].as_f64().unwrap() > 0.0);
    let shares = batch["contributions"]["shares"].as_array().unwrap();
    let total: f64 = shares.iter().map(|s| s["share"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-9, "{shares:#?}");

    // A lot made by the recycler and not shipped stays where it was made.
    let chips = data(
        &app,
        query,
        json!({ "id": "https://preciousplastic-ehv.example/lots/birch-chips-2025-032" }),
    )
    .await;
    assert_eq!(
        chips["resource"]["whereabouts"]["holder"],
        org_id(&report, "recycler")
    );
    // A design is held by no one.
    let stool = data(&app, query, json!({ "id": STOOL })).await;
    assert_eq!(stool["resource"]["whereabouts"], Value::Null);
    assert_eq!(stool["resource"]["holders"], json!([]));
}

#[tokio::test]
async fn a_design_shows_its_licence_fork_tree_batches_and_attribution() {
    let (app, report) = demo().await;
    let query = r#"query($id: String!) { design(id: $id) {
        id name licence version createdBy
        parent { id }
        ancestry { id name }
        forks(depth: 5) { id parent depth design { name licence } }
        batches { id kind quantity { amount unit } }
        contributions { method shares { agent share } }
    } }"#;
    let original = data(&app, query, json!({ "id": STOOL })).await;
    let original = &original["design"];
    assert_eq!(original["licence"], "CERN-OHL-S-2.0");
    assert_eq!(original["createdBy"], org_id(&report, "commons"));
    assert_eq!(original["parent"], Value::Null);
    assert_eq!(original["ancestry"], json!([]));
    assert_eq!(original["forks"][0]["id"], STOOL_RPLA);
    assert_eq!(original["forks"][0]["parent"], STOOL);
    assert_eq!(original["forks"][0]["depth"], 1);
    assert!(original["forks"][0]["design"]["licence"].is_string());
    assert_eq!(
        original["batches"],
        json!([]),
        "the batches were made from the fork"
    );
    let agents: Vec<&str> = original["contributions"]["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["agent"].as_str().unwrap())
        .collect();
    assert!(
        agents.contains(&"https://openstool.example/people/ana"),
        "{agents:?}"
    );

    let fork = data(&app, query, json!({ "id": STOOL_RPLA })).await;
    let fork = &fork["design"];
    assert_eq!(fork["parent"]["id"], STOOL);
    assert_eq!(
        fork["ancestry"],
        json!([{ "id": STOOL, "name": "Open Stool" }])
    );
    assert_eq!(fork["forks"], json!([]));
    let mut batches: Vec<&str> = fork["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    batches.sort_unstable();
    assert_eq!(batches, [BATCH_1, BATCH_2]);

    let not_a_design = data(&app, query, json!({ "id": BATCH_1 })).await;
    assert_eq!(not_a_design["design"], Value::Null);
}

#[tokio::test]
async fn an_organization_lists_what_it_designed_fabricated_holds_and_shipped() {
    let (app, report) = demo().await;
    let query = r#"query($id: String!) { organization(id: $id) {
        id name
        designed { id kind }
        fabricated { id kind }
        shipped { id kind }
        holds { id quantity { amount unit } resource { kind } }
        events(first: 100) { edges { node { type recordedBy } } }
    } }"#;
    let fabricator = data(&app, query, json!({ "id": org_id(&report, "fabricator") })).await;
    let fabricator = &fabricator["organization"];
    assert_eq!(fabricator["name"], "Valldaura Microfactory");
    let ids = |list: &Value| -> Vec<String> {
        let mut ids: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&fabricator["designed"]), [STOOL_RPLA]);
    assert_eq!(ids(&fabricator["fabricated"]), [BATCH_1, BATCH_2]);
    assert_eq!(
        ids(&fabricator["shipped"]),
        ["https://valldaura.example/shipments/2025-0042"]
    );
    let holds = fabricator["holds"].as_array().unwrap();
    let held = |id: &str| holds.iter().find(|h| h["id"] == id);
    // Of the first batch's 20 stools, 12 were shipped; the second batch's 5 never left.
    assert_eq!(
        held(BATCH_1).unwrap()["quantity"],
        json!({ "amount": 8.0, "unit": "H87" })
    );
    assert_eq!(
        held(BATCH_2).unwrap()["quantity"],
        json!({ "amount": 5.0, "unit": "H87" })
    );
    assert_eq!(held(BATCH_2).unwrap()["resource"]["kind"], "batch");
    assert!(
        held(STOOL_RPLA).is_none(),
        "a design is not held: {holds:#?}"
    );
    let events = fabricator["events"]["edges"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(
        events
            .iter()
            .all(|e| e["node"]["recordedBy"] == org_id(&report, "fabricator"))
    );

    let commons = data(&app, query, json!({ "id": org_id(&report, "commons") })).await;
    assert_eq!(ids(&commons["organization"]["designed"]), [STOOL]);
    assert_eq!(commons["organization"]["fabricated"], json!([]));

    let nobody = data(
        &app,
        query,
        json!({ "id": "urn:uuid:00000000-0000-7000-8000-000000000000" }),
    )
    .await;
    assert_eq!(nobody["organization"], Value::Null);
}

#[tokio::test]
async fn the_events_connection_pages_with_cursors_and_filters() {
    let (app, report) = demo().await;
    let head = app.head().await;
    let page = r#"query($first: Int, $after: String, $filter: EventFilter) {
        events(first: $first, after: $after, filter: $filter) {
            edges { cursor node { eventId position type recordedBy subject occurredAt retracted envelope } }
            pageInfo { hasNextPage endCursor }
        } }"#;
    let all = data(&app, page, json!({ "first": 500 })).await;
    let all = all["events"]["edges"].as_array().unwrap().clone();
    assert_eq!(all.len() as u64, head, "every event, in one page");
    let cursors: Vec<u64> = all
        .iter()
        .map(|e| e["cursor"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(cursors, (1..=head).collect::<Vec<_>>(), "in log order");
    let first = &all[0]["node"];
    let rest = app
        .get(&format!(
            "/v1/events/{}",
            first["eventId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(first["envelope"], rest.body, "the envelope REST serves");

    // Pages of 4, each going on from the last one's end cursor, give the same events.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let body = data(&app, page, json!({ "first": 4, "after": after })).await;
        let edges = body["events"]["edges"].as_array().unwrap();
        assert!(edges.len() <= 4);
        paged.extend(edges.iter().map(|e| e["cursor"].clone()));
        if body["events"]["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = body["events"]["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
    }
    assert_eq!(
        paged,
        all.iter().map(|e| e["cursor"].clone()).collect::<Vec<_>>()
    );

    // Filters: each condition, and together.
    let filtered = |filter: Value| {
        let app = &app;
        async move {
            let body = data(app, page, json!({ "first": 500, "filter": filter })).await;
            body["events"]["edges"].as_array().unwrap().clone()
        }
    };
    let expected = |keep: &dyn Fn(&Value) -> bool| -> Vec<Value> {
        all.iter()
            .filter(|e| keep(&e["node"]))
            .map(|e| e["cursor"].clone())
            .collect()
    };
    let cursors_of =
        |edges: Vec<Value>| -> Vec<Value> { edges.iter().map(|e| e["cursor"].clone()).collect() };
    let fabricator = org_id(&report, "fabricator");
    let types = json!(["BatchFabricated", "ShipmentDispatched"]);
    assert_eq!(
        cursors_of(filtered(json!({ "types": types })).await),
        expected(&|n| n["type"] == "BatchFabricated" || n["type"] == "ShipmentDispatched")
    );
    assert_eq!(
        cursors_of(filtered(json!({ "recordedBy": fabricator })).await),
        expected(&|n| n["recordedBy"] == fabricator.as_str())
    );
    assert_eq!(
        cursors_of(filtered(json!({ "subject": BATCH_1 })).await),
        expected(&|n| n["subject"] == BATCH_1)
    );
    let by_fabricator_of_type =
        filtered(json!({ "types": ["BatchFabricated"], "recordedBy": fabricator })).await;
    assert_eq!(by_fabricator_of_type.len(), 2);
    let times: Vec<&str> = all
        .iter()
        .map(|e| e["node"]["occurredAt"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_unstable();
    let (from, until) = (sorted[2], sorted[sorted.len() - 2]);
    assert_eq!(
        cursors_of(filtered(json!({ "occurredFrom": from, "occurredUntil": until })).await),
        expected(&|n| {
            let at = n["occurredAt"].as_str().unwrap();
            at >= from && at < until
        })
    );

    // Refusals name what is wrong.
    let refused = graphql(&app, page, json!({ "first": 501 })).await;
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("max_page_size"),
        "{refused:#}"
    );
    let refused = graphql(&app, page, json!({ "filter": { "types": ["Nonsense"] } })).await;
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("BatchFabricated"),
        "{refused:#}"
    );
    let refused = graphql(&app, page, json!({ "after": "yesterday" })).await;
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("cursor"),
        "{refused:#}"
    );
}

#[tokio::test]
async fn search_finds_designs_resources_and_organizations_by_name() {
    let (app, _report) = demo().await;
    let query = r#"query($text: String!) { search(text: $text) { id kind name } }"#;
    let stool = data(&app, query, json!({ "text": "open STOOL" })).await;
    let mut ids: Vec<&str> = stool["search"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids.len(), 3, "{stool:#}");
    assert_eq!(ids[..2], [STOOL, STOOL_RPLA], "{stool:#}");
    assert_eq!(stool["search"][2]["name"], "Open Stool Collective");
    let lots = data(&app, query, json!({ "text": "pla" })).await;
    assert!(
        lots["search"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "materialLot"),
        "{lots:#}"
    );
    let orgs = data(&app, query, json!({ "text": "microfactory" })).await;
    assert_eq!(
        orgs["search"],
        json!([{ "id": orgs["search"][0]["id"], "kind": "organization", "name": "Valldaura Microfactory" }])
    );
    let empty = graphql(&app, query, json!({ "text": "  " })).await;
    assert!(empty["errors"].is_array());
}

const RECORD: &str = r#"mutation($events: [JSON!]!) {
    recordEvents(events: $events) { status events { eventId position duplicate } } }"#;

#[tokio::test]
async fn record_events_stores_as_rest_does_and_is_refused_with_the_same_problem() {
    let app = TestApp::spawn().await;
    let org = app.organization("Maker").await;
    let lot = events::with_id(
        events::material("lots/a", 10.0, "KGM"),
        "0191e1a4-7f43-7c4a-9d4e-000000000001",
    );
    let stored = graphql_as(&app, Some(&org.key), RECORD, json!({ "events": [lot] })).await;
    assert!(stored.get("errors").is_none(), "{stored:#}");
    assert_eq!(stored["data"]["recordEvents"]["status"], 201);
    assert_eq!(
        stored["data"]["recordEvents"]["events"][0]["duplicate"],
        false
    );
    let position = stored["data"]["recordEvents"]["events"][0]["position"]
        .as_u64()
        .unwrap();
    assert_eq!(app.head().await, position);
    // The same event again, through REST: a duplicate, as it would be through GraphQL.
    let again = app.record(&org, &json!([lot])).await;
    assert_eq!(again.status.as_u16(), 200, "{again:#?}");
    let again = graphql_as(&app, Some(&org.key), RECORD, json!({ "events": [lot] })).await;
    assert_eq!(again["data"]["recordEvents"]["status"], 200);
    assert_eq!(
        again["data"]["recordEvents"]["events"][0]["duplicate"],
        true
    );

    // Refusals: a schema violation, a broken rule (shipping what was never held), no key.
    let bad_schema = json!([lot, { "type": "MaterialSourced", "occurredAt": "2025-06-01T10:00:00Z", "payload": { "lotId": 5 } }]);
    let never_held = json!([events::shipment(
        "shipments/s",
        "urn:uuid:0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6e",
        &[("lots/never", 1.0, "KGM")]
    )]);
    for (events, status) in [(bad_schema, 422), (never_held, 422)] {
        let rest = app.record(&org, &events).await;
        assert_eq!(rest.status.as_u16(), status, "{rest:#?}");
        let answer = graphql_as(&app, Some(&org.key), RECORD, json!({ "events": events })).await;
        assert_eq!(answer["data"], Value::Null, "{answer:#}");
        let error = &answer["errors"][0];
        assert_eq!(
            error["extensions"], rest.body,
            "the same problem as REST: {answer:#}"
        );
        assert_eq!(error["message"], rest.body["detail"]);
    }
    let anonymous = graphql(&app, RECORD, json!({ "events": [lot] })).await;
    assert_eq!(
        anonymous["errors"][0]["extensions"]["status"], 401,
        "{anonymous:#}"
    );
    assert_eq!(app.head().await, position, "nothing refused was stored");
}

/// A graphql-transport-ws client.
struct Socket {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Socket {
    async fn connect(app: &TestApp, path: &str) -> Self {
        let url = format!("{}{path}", app.base.replacen("http://", "ws://", 1));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (stream, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "graphql-transport-ws"
        );
        let mut socket = Self { stream };
        socket.send(json!({ "type": "connection_init" })).await;
        assert_eq!(socket.receive().await["type"], "connection_ack");
        socket
    }

    async fn send(&mut self, message: Value) {
        self.stream
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    async fn receive(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(20), self.stream.next())
                .await
                .expect("a message within 20 s")
                .expect("the socket is open")
                .unwrap();
            match message {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    async fn subscribe(&mut self, query: &str, variables: Value) {
        self.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// The next `n` payloads of subscription "1".
    async fn next(&mut self, n: usize) -> Vec<Value> {
        let mut payloads = Vec::new();
        while payloads.len() < n {
            let message = self.receive().await;
            assert_eq!(message["type"], "next", "{message:#}");
            assert_eq!(message["id"], "1");
            payloads.push(message["payload"].clone());
        }
        payloads
    }
}

const EVENTS: &str = r#"subscription($after: String, $filter: EventFilter) {
    events(after: $after, filter: $filter) { cursor node { eventId type subject } } }"#;

async fn lots(app: &TestApp, org: &Org, from: usize, to: usize) -> Vec<String> {
    let lots: Vec<Value> = (from..to)
        .map(|n| events::material(&format!("lots/{n}"), 5.0, "KGM"))
        .collect();
    let body = app.record_ok(org, &json!(lots)).await;
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["eventId"].as_str().unwrap().to_owned())
        .collect()
}

fn event_ids(payloads: &[Value]) -> Vec<String> {
    payloads
        .iter()
        .map(|p| {
            assert!(p.get("errors").is_none(), "{p:#}");
            p["data"]["events"]["node"]["eventId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_subscriber_gets_history_then_live_events_and_resumes_after_its_cursor() {
    let app = TestApp::spawn().await;
    let org = app.organization("Maker").await;
    let history = lots(&app, &org, 0, 30).await;

    let mut socket = Socket::connect(&app, "/graphql/ws").await;
    socket.subscribe(EVENTS, json!({})).await;
    let first = socket.next(30).await;
    assert_eq!(event_ids(&first), history, "the history, in log order");

    let live = lots(&app, &org, 30, 40).await;
    let received = socket.next(10).await;
    assert_eq!(event_ids(&received), live, "then the live events");
    let cursor = received.last().unwrap()["data"]["events"]["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(cursor, app.head().await.to_string());

    // Disconnected, the subscriber misses what is recorded meanwhile, and resumes after its
    // cursor (on /graphql this time, upgraded), with a filter.
    drop(socket);
    let missed = lots(&app, &org, 40, 55).await;
    let mut socket = Socket::connect(&app, "/graphql").await;
    socket
        .subscribe(
            EVENTS,
            json!({ "after": cursor, "filter": { "types": ["MaterialSourced"] } }),
        )
        .await;
    let resumed = socket.next(15).await;
    assert_eq!(
        event_ids(&resumed),
        missed,
        "nothing missed, nothing repeated"
    );
    let later = lots(&app, &org, 55, 57).await;
    assert_eq!(event_ids(&socket.next(2).await), later);

    // A filter that does not match sees nothing of these.
    let mut other = Socket::connect(&app, "/graphql/ws").await;
    other
        .subscribe(
            EVENTS,
            json!({ "filter": { "types": ["BatchFabricated"] } }),
        )
        .await;
    let design = app
        .record_ok(&org, &json!([events::design("designs/d", "MIT")]))
        .await;
    let batch = app
        .record_ok(
            &org,
            &json!([events::batch(
                "batches/b",
                "designs/d",
                &[("lots/1", 1.0, "KGM")]
            )]),
        )
        .await;
    let got = other.next(1).await;
    assert_eq!(
        event_ids(&got),
        [batch["events"][0]["eventId"].as_str().unwrap()]
    );
    assert!(design["events"][0]["eventId"].is_string());

    // A subscription beyond the limits is refused like a query.
    let mut bomb = Socket::connect(&app, "/graphql/ws").await;
    let deep = format!(
        "subscription {{ events {{ {}cursor{} }} }}",
        "node { ".repeat(0),
        ""
    );
    bomb.subscribe(
        &deep.replace("cursor", &"__typename ".repeat(600)),
        json!({}),
    )
    .await;
    let refused = bomb.receive().await;
    assert!(
        refused.to_string().contains("max_fields") && refused["payload"]["data"].is_null(),
        "{refused:#}"
    );
}

const ANOMALIES: &str = "subscription($after: String) { anomalies(after: $after) { cursor resource node { kind detail events } } }";

#[tokio::test]
async fn the_anomalies_subscription_reports_an_anomaly_when_the_event_that_brings_it_arrives() {
    let app = TestApp::spawn().await;
    let org = app.organization("Maker").await;
    app.record_ok(&org, &json!([events::design("designs/d", "MIT")]))
        .await;
    let lot = app
        .record_ok(&org, &json!([events::material("lots/a", 10.0, "KGM")]))
        .await;
    let lot_event = lot["events"][0]["eventId"].as_str().unwrap().to_owned();
    app.record_ok(
        &org,
        &json!([events::batch(
            "batches/b",
            "designs/d",
            &[("lots/a", 2.0, "KGM")]
        )]),
    )
    .await;
    // Subscribed from now on (the history is told as the views stand when it is read).
    let mut socket = Socket::connect(&app, "/graphql/ws").await;
    socket
        .subscribe(ANOMALIES, json!({ "after": app.head().await.to_string() }))
        .await;

    // The lot turns out never to have existed: the batch made from it now has an input with
    // no footprint, which the views report.
    app.record_ok(&org, &json!([events::retraction(&lot_event)]))
        .await;
    let head = app.head().await;
    let told = socket.next(1).await;
    let edge = &told[0]["data"]["anomalies"];
    assert_eq!(edge["cursor"], head.to_string(), "{edge:#}");
    assert_eq!(edge["resource"], id("batches/b"), "{edge:#}");
    assert!(edge["node"]["kind"].is_string(), "{edge:#}");

    // Resumed before the retraction, it is told again; resumed after, not.
    let mut again = Socket::connect(&app, "/graphql/ws").await;
    again
        .subscribe(ANOMALIES, json!({ "after": (head - 1).to_string() }))
        .await;
    assert_eq!(
        again.next(1).await[0]["data"]["anomalies"]["cursor"],
        head.to_string()
    );
    let mut after = Socket::connect(&app, "/graphql/ws").await;
    after
        .subscribe(ANOMALIES, json!({ "after": head.to_string() }))
        .await;
    assert!(
        tokio::time::timeout(Duration::from_millis(500), after.receive())
            .await
            .is_err(),
        "nothing after the cursor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_events_refusals_subscriptions_and_the_lag_and_prometheus_scrapes_them()
 {
    use support::prometheus::{Prometheus, sample};
    let app = TestApp::spawn().await;
    let org = app.organization("Metrics Workshop").await;
    let batch = json!([
        events::material("lots/metrics-1", 5.0, "KGM"),
        events::material("lots/metrics-2", 5.0, "KGM"),
        events::material("lots/metrics-3", 5.0, "KGM"),
    ]);
    let recorded = app.record_ok(&org, &batch).await;
    // The same events again: duplicates.
    let ids: Vec<&str> = recorded["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|receipt| receipt["eventId"].as_str().unwrap())
        .collect();
    let mut again = batch.clone();
    for (event, id) in again.as_array_mut().unwrap().iter_mut().zip(&ids) {
        event["eventId"] = json!(id);
    }
    assert_eq!(app.record(&org, &again).await.status, 200);
    // A schema violation, and a request without a key.
    let invalid = app
        .record(&org, &json!({ "type": "MaterialSourced" }))
        .await;
    assert_eq!(invalid.status, 422, "{invalid:#?}");
    let anonymous = app
        .post_raw(
            "/v1/events",
            None,
            "application/json",
            batch.to_string().into_bytes(),
        )
        .await;
    assert_eq!(anonymous.status, 401);
    let mut socket = Socket::connect(&app, "/graphql/ws").await;
    socket.subscribe(EVENTS, json!({})).await;
    assert_eq!(socket.next(3).await.len(), 3);
    app.wait_for_views().await;

    let text = app.metrics().await;
    assert!(text.ends_with("# EOF\n"), "{text}");
    let expected = [
        (r#"stigmergy_capture_events_total{outcome="recorded"}"#, 3.0),
        (
            r#"stigmergy_capture_events_total{outcome="duplicate"}"#,
            3.0,
        ),
        (
            r#"stigmergy_capture_refusals_total{problem="schema-violation"}"#,
            1.0,
        ),
        (r#"stigmergy_capture_append_seconds_count"#, 2.0),
        (
            r#"stigmergy_http_requests_total{method="POST",route="/v1/events",status="201"}"#,
            1.0,
        ),
        (
            r#"stigmergy_http_requests_total{method="POST",route="/v1/events",status="200"}"#,
            1.0,
        ),
        (
            r#"stigmergy_http_requests_total{method="POST",route="/v1/events",status="422"}"#,
            1.0,
        ),
        (
            r#"stigmergy_http_requests_total{method="POST",route="/v1/events",status="401"}"#,
            1.0,
        ),
        (
            r#"stigmergy_http_requests_total{method="POST",route="/v1/organizations",status="201"}"#,
            1.0,
        ),
        ("stigmergy_gateway_subscriptions", 1.0),
        ("stigmergy_projector_events_total", 3.0),
        ("stigmergy_projector_position", 3.0),
        ("stigmergy_projector_lag_events", 0.0),
    ];
    for (series, value) in expected {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    // A path no route matches is counted under one label, not under its path.
    assert_eq!(app.get("/no/such/path").await.status, 404);
    let text = app.metrics().await;
    assert_eq!(
        sample(
            &text,
            r#"stigmergy_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("/no/such/path"), "{text}");

    // Prometheus itself scrapes and ingests the exposition.
    let target = app.base.trim_start_matches("http://");
    let prometheus = Prometheus::scraping(target).await;
    prometheus.wait_for(r#"up{job="stigmergy"}"#, 1.0).await;
    prometheus
        .wait_for(
            r#"stigmergy_capture_events_total{outcome="duplicate"}"#,
            3.0,
        )
        .await;
    prometheus
        .wait_for(
            r#"sum(stigmergy_http_requests_total{route="/v1/events"})"#,
            4.0,
        )
        .await;
    prometheus
        .wait_for("stigmergy_gateway_subscriptions", 1.0)
        .await;
    // The subscription's end is counted once its client has gone.
    drop(socket);
    prometheus
        .wait_for("stigmergy_gateway_subscriptions", 0.0)
        .await;
    // More events: the views apply them, and the projector's position follows the log's head.
    app.record_ok(
        &org,
        &json!([events::material("lots/metrics-4", 5.0, "KGM")]),
    )
    .await;
    app.wait_for_views().await;
    prometheus
        .wait_for("stigmergy_projector_position", 4.0)
        .await;
    prometheus
        .wait_for("stigmergy_projector_lag_events", 0.0)
        .await;
    prometheus
        .wait_for(
            r#"stigmergy_http_request_seconds_count{method="POST",route="/v1/events"}"#,
            5.0,
        )
        .await;
}
