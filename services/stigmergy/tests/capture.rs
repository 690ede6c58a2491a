//! The capture API over HTTP, against the real application on port 0 with a fresh data
//! directory: every event type accepted, idempotency, every rule refused with the right status,
//! and bad input refused with problem+json, leaving no trace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::events::*;
use support::{Org, TestApp};

/// Three organisations: `a` does most things, `b` is another tenant, `c` a consignee.
struct Orgs {
    a: Org,
    b: Org,
    c: Org,
}

async fn app_with_orgs() -> (TestApp, Orgs) {
    let app = TestApp::spawn().await;
    let orgs = Orgs {
        a: app.organization("Workshop A").await,
        b: app.organization("Workshop B").await,
        c: app.organization("Workshop C").await,
    };
    (app, orgs)
}

fn event_ids(body: &Value) -> Vec<String> {
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_event_type_is_accepted_and_read_back_as_recorded() {
    let (app, orgs) = app_with_orgs().await;
    let chain: Vec<(&Org, Value)> = vec![
        (&orgs.a, design("stool", "CERN-OHL-S-2.0")),
        (&orgs.a, fork("stool-2", "stool", "CERN-OHL-S-2.0")),
        (&orgs.a, contribution("stool-2")),
        (&orgs.a, material("pla", 100.0, "KGM")),
        (
            &orgs.a,
            batch("batch-1", "stool-2", &[("pla", 40.0, "KGM")]),
        ),
        (
            &orgs.a,
            shipment("ship-1", &orgs.c.id, &[("batch-1", 6.0, "H87")]),
        ),
        (&orgs.c, receipt("ship-1", &[("batch-1", 6.0, "H87")])),
        (&orgs.a, repair("batch-1", "pla", 0.5)),
        (
            &orgs.c,
            recycling("batch-1", 2.0, "H87", &[("flakes", 1.2)]),
        ),
    ];
    let mut recorded = Vec::new();
    for (org, event) in &chain {
        let answer = app.record(org, event).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:#?}");
        let receipt = &answer.body["events"][0];
        assert_eq!(receipt["duplicate"], json!(false));
        recorded.push((
            org.id.clone(),
            receipt["eventId"].as_str().unwrap().to_owned(),
            receipt["position"].as_u64().unwrap(),
        ));
    }
    let positions: Vec<u64> = recorded.iter().map(|r| r.2).collect();
    assert_eq!(positions, (1..=chain.len() as u64).collect::<Vec<_>>());

    let (_, sourced_id, _) = &recorded[3];
    let retracted = app.record_ok(&orgs.a, &retraction(sourced_id)).await;
    assert_eq!(retracted["events"][0]["position"], json!(chain.len() + 1));

    for ((org_id, event_id, _), (_, submitted)) in recorded.iter().zip(&chain) {
        let stored = app.get(&format!("/v1/events/{event_id}")).await;
        assert_eq!(stored.status, StatusCode::OK);
        assert_eq!(stored.body["recordedBy"], json!(org_id));
        assert_eq!(stored.body["type"], submitted["type"]);
        assert_eq!(stored.body["schemaVersion"], json!(1));
        assert!(stored.body["recordedAt"].as_str().is_some());
        assert!(
            stored.body["subject"]
                .as_str()
                .unwrap()
                .starts_with("https://test.example/")
        );
    }
    let retraction_event = app
        .get(&format!("/v1/events/{}", event_ids(&retracted)[0]))
        .await;
    assert_eq!(
        retraction_event.body["subject"],
        json!(id("pla")),
        "a retraction is about what it retracts"
    );
}

#[tokio::test]
async fn a_retracted_lot_can_no_longer_be_consumed() {
    let (app, orgs) = app_with_orgs().await;
    app.record_ok(&orgs.a, &design("d", "MIT")).await;
    let sourced = app.record_ok(&orgs.a, &material("lot", 10.0, "KGM")).await;
    app.record_ok(&orgs.a, &retraction(&event_ids(&sourced)[0]))
        .await;
    let answer = app
        .record(&orgs.a, &batch("b", "d", &[("lot", 1.0, "KGM")]))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:#?}"
    );
    assert_eq!(answer.body["rule"], json!("unresolved-reference"));
}

#[tokio::test]
async fn the_same_event_is_stored_once_and_a_reused_id_with_other_content_is_refused() {
    let (app, orgs) = app_with_orgs().await;
    let event = with_id(
        material("lot", 10.0, "KGM"),
        "0191e1a4-7f43-7c4a-9d4e-1f2a3b4c5d6e",
    );

    let first = app.record(&orgs.a, &event).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = app.record(&orgs.a, &event).await;
    assert_eq!(again.status, StatusCode::OK, "all duplicates: 200");
    assert_eq!(again.body["events"][0]["duplicate"], json!(true));
    assert_eq!(
        again.body["events"][0]["position"],
        first.body["events"][0]["position"]
    );

    let mut reordered = event.clone();
    reordered["payload"]["quantity"] = json!({ "unit": "KGM", "amount": 10.0 });
    assert_eq!(
        app.record(&orgs.a, &reordered).await.status,
        StatusCode::OK,
        "same content, other spelling"
    );

    let mut changed = event.clone();
    changed["payload"]["quantity"]["amount"] = json!(11);
    let conflict = app.record(&orgs.a, &changed).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.body["rule"], json!("idempotency-conflict"));
    assert_eq!(conflict.body["errors"][0]["pointer"], json!("/eventId"));

    let by_another = app.record(&orgs.b, &event).await;
    assert_eq!(
        by_another.status,
        StatusCode::CONFLICT,
        "another organisation cannot reuse the id"
    );

    let mixed = app
        .record(&orgs.a, &json!([event, material("lot-2", 1.0, "KGM")]))
        .await;
    assert_eq!(mixed.status, StatusCode::CREATED);
    assert_eq!(mixed.body["events"][0]["duplicate"], json!(true));
    assert_eq!(mixed.body["events"][1]["duplicate"], json!(false));
    assert_eq!(app.head().await, 2);
}

/// A refusal case: what the log holds first, then the event that must be refused.
struct Refused {
    name: &'static str,
    given: fn(&Orgs) -> Vec<(char, Value)>,
    when: fn(&Orgs) -> (char, Value),
    status: StatusCode,
    rule: &'static str,
    pointer: &'static str,
}

fn org(orgs: &Orgs, who: char) -> &Org {
    match who {
        'a' => &orgs.a,
        'b' => &orgs.b,
        _ => &orgs.c,
    }
}

/// The only caller of the API for rule refusals: sets up, sends, and checks the status, the rule,
/// the pointer, and that nothing was stored.
async fn check(case: &Refused) {
    let (app, orgs) = app_with_orgs().await;
    for (who, event) in (case.given)(&orgs) {
        app.record_ok(org(&orgs, who), &event).await;
    }
    let head = app.head().await;
    let (who, event) = (case.when)(&orgs);
    let answer = app.record(org(&orgs, who), &event).await;
    assert_eq!(answer.status, case.status, "{}: {answer:#?}", case.name);
    assert_eq!(
        answer.content_type, "application/problem+json",
        "{}",
        case.name
    );
    assert_eq!(
        answer.body["rule"],
        json!(case.rule),
        "{}: {answer:#?}",
        case.name
    );
    assert_eq!(
        answer.body["errors"][0]["pointer"],
        json!(case.pointer),
        "{}: {answer:#?}",
        case.name
    );
    assert!(
        answer.body["detail"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{}",
        case.name
    );
    assert_eq!(app.head().await, head, "{}: nothing is stored", case.name);
}

#[tokio::test]
async fn every_rule_is_refused_with_its_status_rule_and_pointer() {
    let cases = [
        Refused {
            name: "shipping another organisation's lot",
            given: |_| vec![('a', material("lot", 100.0, "KGM"))],
            when: |o| ('b', shipment("s", &o.c.id, &[("lot", 1.0, "KGM")])),
            status: StatusCode::FORBIDDEN,
            rule: "custody",
            pointer: "/payload/lines/0/resource",
        },
        Refused {
            name: "fabricating from another organisation's lot",
            given: |_| {
                vec![
                    ('a', material("lot", 100.0, "KGM")),
                    ('b', design("d", "MIT")),
                ]
            },
            when: |_| ('b', batch("b", "d", &[("lot", 1.0, "KGM")])),
            status: StatusCode::FORBIDDEN,
            rule: "custody",
            pointer: "/payload/inputs/0/resource",
        },
        Refused {
            name: "shipping more than is held",
            given: |_| vec![('a', material("lot", 100.0, "KGM"))],
            when: |o| {
                (
                    'a',
                    shipment("s", &o.c.id, &[("lot", 60.0, "KGM"), ("lot", 0.05, "TNE")]),
                )
            },
            status: StatusCode::CONFLICT,
            rule: "mass-balance",
            pointer: "/payload/lines/1/quantity",
        },
        Refused {
            name: "receiving a shipment addressed to someone else",
            given: |o| {
                vec![
                    ('a', material("lot", 100.0, "KGM")),
                    ('a', shipment("s", &o.c.id, &[("lot", 5.0, "KGM")])),
                ]
            },
            when: |_| ('b', receipt("s", &[("lot", 5.0, "KGM")])),
            status: StatusCode::FORBIDDEN,
            rule: "not-addressee",
            pointer: "/payload/shipmentId",
        },
        Refused {
            name: "receiving twice",
            given: |o| {
                vec![
                    ('a', material("lot", 100.0, "KGM")),
                    ('a', shipment("s", &o.c.id, &[("lot", 5.0, "KGM")])),
                    ('c', receipt("s", &[("lot", 5.0, "KGM")])),
                ]
            },
            when: |_| ('c', receipt("s", &[("lot", 5.0, "KGM")])),
            status: StatusCode::CONFLICT,
            rule: "already-received",
            pointer: "/payload/shipmentId",
        },
        Refused {
            name: "receiving more than was dispatched",
            given: |o| {
                vec![
                    ('a', material("lot", 100.0, "KGM")),
                    ('a', shipment("s", &o.c.id, &[("lot", 5.0, "KGM")])),
                ]
            },
            when: |_| ('c', receipt("s", &[("lot", 5001.0, "GRM")])),
            status: StatusCode::CONFLICT,
            rule: "mass-balance",
            pointer: "/payload/lines/0/quantity",
        },
        Refused {
            name: "receiving what was not dispatched",
            given: |o| {
                vec![
                    ('a', material("lot", 100.0, "KGM")),
                    ('a', material("other", 100.0, "KGM")),
                    ('a', shipment("s", &o.c.id, &[("lot", 5.0, "KGM")])),
                ]
            },
            when: |_| ('c', receipt("s", &[("other", 1.0, "KGM")])),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            rule: "not-in-shipment",
            pointer: "/payload/lines/0/resource",
        },
        Refused {
            name: "a batch of a design that does not exist",
            given: |_| vec![('a', material("lot", 100.0, "KGM"))],
            when: |_| ('a', batch("b", "no-such-design", &[("lot", 1.0, "KGM")])),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            rule: "unresolved-reference",
            pointer: "/payload/designId",
        },
        Refused {
            name: "shipping to an organisation that is not registered",
            given: |_| vec![('a', material("lot", 100.0, "KGM"))],
            when: |_| {
                (
                    'a',
                    shipment(
                        "s",
                        "urn:uuid:00000000-0000-7000-8000-000000000000",
                        &[("lot", 1.0, "KGM")],
                    ),
                )
            },
            status: StatusCode::UNPROCESSABLE_ENTITY,
            rule: "unresolved-reference",
            pointer: "/payload/consignee",
        },
        Refused {
            name: "a fork of a design that does not exist",
            given: |_| vec![],
            when: |_| ('a', fork("f", "nothing", "MIT")),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            rule: "unresolved-reference",
            pointer: "/payload/parentDesignId",
        },
        Refused {
            name: "a fork dropping the share-alike licence",
            given: |_| vec![('b', design("d", "CERN-OHL-S-2.0"))],
            when: |_| ('a', fork("f", "d", "CERN-OHL-P-2.0")),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            rule: "share-alike",
            pointer: "/payload/licence",
        },
        Refused {
            name: "using a material lot as a design",
            given: |_| vec![('a', material("lot", 1.0, "KGM"))],
            when: |_| ('a', batch("b", "lot", &[])),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            rule: "wrong-kind",
            pointer: "/payload/designId",
        },
        Refused {
            name: "sourcing a lot id twice",
            given: |_| vec![('a', material("lot", 1.0, "KGM"))],
            when: |_| ('b', material("lot", 1.0, "KGM")),
            status: StatusCode::CONFLICT,
            rule: "resource-exists",
            pointer: "/payload/lotId",
        },
        Refused {
            name: "consuming pieces of a lot counted in kilograms",
            given: |_| {
                vec![
                    ('a', material("lot", 10.0, "KGM")),
                    ('a', design("d", "MIT")),
                ]
            },
            when: |_| ('a', batch("b", "d", &[("lot", 1.0, "H87")])),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            rule: "unit-mismatch",
            pointer: "/payload/inputs/0/quantity/unit",
        },
        Refused {
            name: "recovering more mass than was recycled",
            given: |_| vec![('a', material("lot", 10.0, "KGM"))],
            when: |_| {
                (
                    'a',
                    recycling("lot", 2.0, "KGM", &[("flakes", 1.5), ("chips", 1.0)]),
                )
            },
            status: StatusCode::UNPROCESSABLE_ENTITY,
            rule: "output-exceeds-input",
            pointer: "/payload/outputLots",
        },
        Refused {
            name: "a contribution to another organisation's design",
            given: |_| vec![('a', design("d", "MIT"))],
            when: |_| ('b', contribution("d")),
            status: StatusCode::FORBIDDEN,
            rule: "not-maintainer",
            pointer: "/payload/target",
        },
        Refused {
            name: "a client-set recordedBy of another organisation",
            given: |_| vec![],
            when: |o| {
                let mut event = material("lot", 1.0, "KGM");
                event["recordedBy"] = json!(o.a.id);
                ('b', event)
            },
            status: StatusCode::FORBIDDEN,
            rule: "recorded-by-mismatch",
            pointer: "/recordedBy",
        },
        Refused {
            name: "a client-set subject that is not the payload's",
            given: |_| vec![],
            when: |_| {
                let mut event = material("lot", 1.0, "KGM");
                event["subject"] = json!(id("something-else"));
                ('a', event)
            },
            status: StatusCode::UNPROCESSABLE_ENTITY,
            rule: "subject-mismatch",
            pointer: "/subject",
        },
        Refused {
            name: "an event from the future",
            given: |_| vec![],
            when: |_| {
                let mut event = material("lot", 1.0, "KGM");
                event["occurredAt"] = json!("2999-01-01T00:00:00Z");
                ('a', event)
            },
            status: StatusCode::UNPROCESSABLE_ENTITY,
            rule: "occurred-in-future",
            pointer: "/occurredAt",
        },
        Refused {
            name: "retracting another organisation's event",
            given: |_| {
                vec![(
                    'a',
                    with_id(
                        material("lot", 1.0, "KGM"),
                        "0191e1a4-7f43-7c4a-9d4e-000000000001",
                    ),
                )]
            },
            when: |_| ('b', retraction("0191e1a4-7f43-7c4a-9d4e-000000000001")),
            status: StatusCode::FORBIDDEN,
            rule: "not-your-event",
            pointer: "/payload/eventId",
        },
        Refused {
            name: "retracting twice",
            given: |_| {
                vec![
                    (
                        'a',
                        with_id(
                            material("lot", 1.0, "KGM"),
                            "0191e1a4-7f43-7c4a-9d4e-000000000001",
                        ),
                    ),
                    ('a', retraction("0191e1a4-7f43-7c4a-9d4e-000000000001")),
                ]
            },
            when: |_| ('a', retraction("0191e1a4-7f43-7c4a-9d4e-000000000001")),
            status: StatusCode::CONFLICT,
            rule: "already-retracted",
            pointer: "/payload/eventId",
        },
        Refused {
            name: "retracting an event that was never recorded",
            given: |_| vec![],
            when: |_| ('a', retraction("0191e1a4-7f43-7c4a-9d4e-000000000009")),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            rule: "unresolved-reference",
            pointer: "/payload/eventId",
        },
    ];
    for case in &cases {
        check(case).await;
    }
}

#[tokio::test]
async fn a_batch_is_all_or_nothing_and_errors_point_into_it() {
    let (app, orgs) = app_with_orgs().await;
    let batch_events = json!([
        with_id(
            material("lot", 10.0, "KGM"),
            "0191e1a4-7f43-7c4a-9d4e-00000000000a"
        ),
        design("d", "MIT"),
        batch("b", "d", &[("lot", 11.0, "KGM")]),
    ]);
    let answer = app.record(&orgs.a, &batch_events).await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{answer:#?}");
    assert_eq!(
        answer.body["errors"][0]["pointer"],
        json!("/2/payload/inputs/0/quantity")
    );
    assert_eq!(app.head().await, 0);
    assert_eq!(
        app.get("/v1/events/0191e1a4-7f43-7c4a-9d4e-00000000000a")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let ndjson: String = [
        material("lot", 10.0, "KGM"),
        design("d", "MIT"),
        batch("b", "d", &[("lot", 10.0, "KGM")]),
    ]
    .iter()
    .map(|e| format!("{e}\n"))
    .collect();
    let answer = app
        .post_raw(
            "/v1/events",
            Some(&orgs.a.key),
            "application/x-ndjson",
            ndjson.into_bytes(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:#?}");
    let positions: Vec<u64> = answer.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, [1, 2, 3]);
}

/// A bad-input case: a raw request and what must come back.
struct BadInput {
    name: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    authorised: bool,
    status: StatusCode,
    problem: &'static str,
    pointer: Option<&'static str>,
}

#[tokio::test]
async fn bad_input_is_refused_with_problem_json_and_leaves_no_trace() {
    let (app, orgs) = app_with_orgs().await;
    let json = |value: Value| value.to_string().into_bytes();
    let mut wrong_type = material("lot", 1.0, "KGM");
    wrong_type["payload"]["quantity"]["amount"] = json!("ten");
    let mut unknown_field = material("lot", 1.0, "KGM");
    unknown_field["payload"]["colour"] = json!("red");
    let mut bad_iri = material("lot", 1.0, "KGM");
    bad_iri["payload"]["lotId"] = json!("http://insecure.example/lot");
    let mut long_name = material("lot", 1.0, "KGM");
    long_name["payload"]["material"] = json!("x".repeat(201));
    let mut unknown_type = material("lot", 1.0, "KGM");
    unknown_type["type"] = json!("MaterialTeleported");
    let mut server_field = material("lot", 1.0, "KGM");
    server_field["recordedAt"] = json!("2025-01-01T00:00:00Z");
    let padding = "x".repeat(1024 * 1024);
    let cases = [
        BadInput {
            name: "malformed JSON",
            content_type: "application/json",
            body: b"{\"type\": ".to_vec(),
            authorised: true,
            status: StatusCode::BAD_REQUEST,
            problem: "malformed-json",
            pointer: Some(""),
        },
        BadInput {
            name: "a wrong type",
            content_type: "application/json",
            body: json(wrong_type),
            authorised: true,
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "schema-violation",
            pointer: Some("/payload/quantity/amount"),
        },
        BadInput {
            name: "an unknown field",
            content_type: "application/json",
            body: json(unknown_field),
            authorised: true,
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "schema-violation",
            pointer: Some("/payload"),
        },
        BadInput {
            name: "an http IRI",
            content_type: "application/json",
            body: json(bad_iri),
            authorised: true,
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "schema-violation",
            pointer: Some("/payload/lotId"),
        },
        BadInput {
            name: "a name too long",
            content_type: "application/json",
            body: json(long_name),
            authorised: true,
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "schema-violation",
            pointer: Some("/payload/material"),
        },
        BadInput {
            name: "an unknown event type",
            content_type: "application/json",
            body: json(unknown_type),
            authorised: true,
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "schema-violation",
            pointer: Some("/type"),
        },
        BadInput {
            name: "a server field set by the client",
            content_type: "application/json",
            body: json(server_field),
            authorised: true,
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "schema-violation",
            pointer: Some(""),
        },
        BadInput {
            name: "an event that is not an object",
            content_type: "application/json",
            body: b"[42]".to_vec(),
            authorised: true,
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "schema-violation",
            pointer: Some("/0"),
        },
        BadInput {
            name: "a body over 1 MiB",
            content_type: "application/json",
            body: json(json!({ "padding": padding })),
            authorised: true,
            status: StatusCode::PAYLOAD_TOO_LARGE,
            problem: "body-too-large",
            pointer: None,
        },
        BadInput {
            name: "nesting 10,000 deep",
            content_type: "application/json",
            body: "[".repeat(10_000).into_bytes(),
            authorised: true,
            status: StatusCode::BAD_REQUEST,
            problem: "too-deep",
            pointer: None,
        },
        BadInput {
            name: "1,001 events",
            content_type: "application/json",
            body: json(Value::Array(vec![json!({}); 1001])),
            authorised: true,
            status: StatusCode::PAYLOAD_TOO_LARGE,
            problem: "too-many-events",
            pointer: None,
        },
        BadInput {
            name: "no events",
            content_type: "application/json",
            body: b"[]".to_vec(),
            authorised: true,
            status: StatusCode::UNPROCESSABLE_ENTITY,
            problem: "empty-batch",
            pointer: None,
        },
        BadInput {
            name: "an unsupported media type",
            content_type: "text/csv",
            body: b"a,b".to_vec(),
            authorised: true,
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            problem: "unsupported-media-type",
            pointer: None,
        },
        BadInput {
            name: "no API key",
            content_type: "application/json",
            body: json(material("lot", 1.0, "KGM")),
            authorised: false,
            status: StatusCode::UNAUTHORIZED,
            problem: "unauthorized",
            pointer: None,
        },
    ];
    for case in &cases {
        let token = case.authorised.then_some(orgs.a.key.as_str());
        let answer = app
            .post_raw("/v1/events", token, case.content_type, case.body.clone())
            .await;
        assert_eq!(answer.status, case.status, "{}: {answer:#?}", case.name);
        assert_eq!(
            answer.content_type, "application/problem+json",
            "{}",
            case.name
        );
        assert_eq!(
            answer.body["type"],
            json!(format!("https://stigmergy.dev/problems/{}", case.problem)),
            "{}: {answer:#?}",
            case.name
        );
        assert_eq!(
            answer.body["status"],
            json!(case.status.as_u16()),
            "{}",
            case.name
        );
        if let Some(pointer) = case.pointer {
            let pointers: Vec<&str> = answer.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["pointer"].as_str().unwrap())
                .collect();
            assert!(
                pointers.contains(&pointer),
                "{}: {pointer} not in {pointers:?}",
                case.name
            );
        }
    }
    let forged = app
        .post_raw(
            "/v1/events",
            Some("stg_forged"),
            "application/json",
            json(material("lot", 1.0, "KGM")),
        )
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.head().await, 0, "nothing was stored");
}

#[tokio::test]
async fn organisations_are_managed_by_the_operator_and_keys_are_shown_once() {
    let app = TestApp::spawn().await;
    let body = json!({ "name": "Fab Lab" }).to_string().into_bytes();
    let anonymous = app
        .post_raw("/v1/organizations", None, "application/json", body.clone())
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let wrong = app
        .post_raw(
            "/v1/organizations",
            Some("not-the-operator"),
            "application/json",
            body.clone(),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);

    let fab_lab = app.organization("Fab Lab").await;
    let taken = app
        .post_raw(
            "/v1/organizations",
            Some(support::OPERATOR_TOKEN),
            "application/json",
            body,
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    let empty = app
        .post_raw(
            "/v1/organizations",
            Some(support::OPERATOR_TOKEN),
            "application/json",
            br#"{"name":""}"#.to_vec(),
        )
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);

    let listing = app
        .client
        .get(format!("{}/v1/organizations", app.base))
        .bearer_auth(support::OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listing.contains(&fab_lab.id));
    assert!(!listing.contains(&fab_lab.key), "keys are never listed");
    let public = app.get(&format!("/v1/organizations/{}", fab_lab.id)).await;
    assert_eq!(public.body["name"], json!("Fab Lab"));

    let issued = app
        .post_raw(
            &format!("/v1/organizations/{}/keys", fab_lab.id),
            Some(support::OPERATOR_TOKEN),
            "application/json",
            vec![],
        )
        .await;
    assert_eq!(issued.status, StatusCode::CREATED);
    let second = Org {
        id: fab_lab.id.clone(),
        key: issued.body["apiKey"].as_str().unwrap().to_owned(),
    };
    let recorded = app.record_ok(&second, &material("lot", 1.0, "KGM")).await;
    let stored = app
        .get(&format!("/v1/events/{}", event_ids(&recorded)[0]))
        .await;
    assert_eq!(stored.body["recordedBy"], json!(fab_lab.id));
}

#[tokio::test]
async fn schemas_are_served_exactly_as_committed() {
    let app = TestApp::spawn().await;
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/events/BatchFabricated.schema.json"
    ))
    .unwrap();
    let response = app
        .client
        .get(format!("{}/v1/schemas/BatchFabricated", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/schema+json"
    );
    assert_eq!(response.text().await.unwrap(), committed);
    assert_eq!(app.get("/v1/schemas/envelope").await.status, StatusCode::OK);
    assert_eq!(
        app.get("/v1/schemas").await.body["schemas"]
            .as_array()
            .unwrap()
            .len(),
        11
    );
    let missing = app.get("/v1/schemas/Teleported").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.content_type, "application/problem+json");
}

#[tokio::test]
async fn health_readiness_and_unknown_routes_answer_plainly() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(app.get("/readyz").await.body["status"], json!("ready"));
    let unknown = app.get("/v2/nothing").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.content_type, "application/problem+json");
    assert_eq!(
        app.get("/v1/events/not-a-uuid").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn the_demo_loads_through_the_api_and_loading_it_again_adds_nothing() {
    let app = TestApp::spawn().await;
    let first = stigmergy::demo::load(&app.base, support::OPERATOR_TOKEN)
        .await
        .expect("the demo loads");
    assert_eq!((first.recorded, first.duplicates), (17, 0));
    let second = stigmergy::demo::load(&app.base, support::OPERATOR_TOKEN)
        .await
        .expect("the demo loads again");
    assert_eq!((second.recorded, second.duplicates), (0, 17));
    assert_eq!(app.head().await, 17);
    assert_eq!(second.organizations.len(), 4);
    assert_ne!(
        first.organizations[0].api_key, second.organizations[0].api_key,
        "a fresh key each run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_over_its_rate_is_refused_with_retry_after_and_others_go_on() {
    // Two events per second, in bursts of ten.
    let app = TestApp::spawn_with(|config| {
        config.capture.rate_limit_events_per_second = 2;
        config.capture.rate_limit_burst = 10;
        config.capture.max_events_per_request = 10;
    })
    .await;
    let busy = app.organization("Busy Workshop").await;
    let quiet = app.organization("Quiet Workshop").await;
    let lots = |prefix: &str, n: usize| -> Value {
        (0..n)
            .map(|i| material(&format!("lots/{prefix}-{i}"), 1.0, "KGM"))
            .collect()
    };
    // The whole burst at once.
    app.record_ok(&busy, &lots("busy", 10)).await;
    let head = app.head().await;

    // Three more right after: refused whole, with when to send them again; nothing recorded.
    let later = lots("later", 3);
    let answer = app
        .client
        .post(format!("{}/v1/events", app.base))
        .bearer_auth(&busy.key)
        .json(&later)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.headers()["content-type"], "application/problem+json");
    let retry_after: u64 = answer.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let problem: Value = answer.json().await.unwrap();
    assert_eq!(
        problem["type"], "https://stigmergy.dev/problems/rate-limited",
        "{problem:#}"
    );
    assert_eq!(problem["limit"], 2);
    assert_eq!(problem["burst"], 10);
    let wait = problem["retryAfterMs"].as_u64().unwrap();
    // Three events at two per second, less what came back since the burst: at most 1.5 s.
    assert!(wait > 0 && wait <= 1_500, "{problem:#}");
    assert_eq!(retry_after, wait.div_ceil(1000), "{problem:#}");
    assert_eq!(app.head().await, head, "nothing refused was recorded");

    // Another organisation has a budget of its own.
    app.record_ok(&quiet, &lots("quiet", 10)).await;

    // Sent again when told, the three are recorded.
    tokio::time::sleep(std::time::Duration::from_millis(wait + 50)).await;
    let recorded = app.record_ok(&busy, &later).await;
    assert_eq!(event_ids(&recorded).len(), 3);

    // The refusal is counted by its problem type.
    let metrics = app.metrics().await;
    assert_eq!(
        support::prometheus::sample(
            &metrics,
            r#"stigmergy_capture_refusals_total{problem="rate-limited"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_smaller_than_the_largest_request_is_refused_at_start() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = stigmergy::Config {
        data_dir: data_dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        operator_token: Some(support::OPERATOR_TOKEN.into()),
        ..stigmergy::Config::default()
    };
    config.capture.rate_limit_burst = 100;
    let Err(error) = stigmergy::Application::build(config).await else {
        panic!("the limits are refused");
    };
    let message = format!("{error:#}");
    assert!(
        message.contains(
            "rate_limit_burst (100) must be at least capture.max_events_per_request (1000)"
        ),
        "{message}"
    );
}
