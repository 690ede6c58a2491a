//! `stigmergy export`, the real binary run against the data directory of a running application
//! (a second process reading its embedded log and SQLite views): every event of the log as the
//! REST API serves it, every resource's document as `GET /id/{id}` serves it under the same
//! public URL, a manifest whose sizes and hashes match the files, `SHA256SUMS` checked by the
//! real `sha256sum -c`; what an existing directory, an interrupted run's leftovers and a bad
//! public URL do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stigmergy_domain::views::document::encode_segment;
use support::{TestApp, events};

const BASE: &str = "https://trace.example.org";

const STOOL: &str = "https://openstool.example/designs/open-stool";
const BATCH_1: &str = "https://valldaura.example/batches/open-stool-2025-001";
const BATCH_2: &str = "https://valldaura.example/batches/open-stool-2025-002";
const SHIPMENT: &str = "https://valldaura.example/shipments/2025-0042";
const PLYWOOD: &str = "https://valldaura.example/lots/birch-plywood-2025-014";
const FLAKES: &str = "https://preciousplastic-ehv.example/lots/pla-flakes-2025-031";

/// Runs `stigmergy export` on the app's data directory with `args`, and `env`.
async fn export(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_stigmergy"));
    command
        .arg("export")
        .arg("--data-dir")
        .arg(app.data_dir.path())
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("STIGMERGY__OPEN__PUBLIC_URL")
        .envs(env.iter().copied())
        .kill_on_drop(true);
    command.output().await.expect("stigmergy export runs")
}

fn succeeded(output: &Output) {
    assert!(
        output.status.success(),
        "the export failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn refused(output: &Output, why: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the export was not refused: {stderr}"
    );
    assert!(
        stderr.contains(why),
        "the refusal does not say {why:?}: {stderr}"
    );
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn sibling(out: &Path, suffix: &str) -> PathBuf {
    out.with_file_name(format!(
        "{}{suffix}",
        out.file_name().unwrap().to_str().unwrap()
    ))
}

fn manifest(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

/// Every file below `dir`, relative, with `/`.
fn files_below(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap();
                found.insert(relative.to_str().unwrap().replace('\\', "/"));
            }
        }
    }
    found
}

/// Every string in a JSON value that could be an IRI of a resource.
fn iri_strings(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::String(text) if text.starts_with("https://") || text.starts_with("urn:") => {
            into.insert(text.clone());
        }
        Value::Array(items) => items.iter().for_each(|item| iri_strings(item, into)),
        Value::Object(map) => map.values().for_each(|item| iri_strings(item, into)),
        _ => {}
    }
}

async fn text_of(app: &TestApp, path: &str, accept: &str) -> (StatusCode, String) {
    let response = app
        .client
        .get(format!("{}{path}", app.base))
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_exports_every_event_and_every_document_as_served() {
    let app = TestApp::spawn_with(|config| config.open.public_url = Some(BASE.into())).await;
    stigmergy::demo::load(&app.base, support::OPERATOR_TOKEN)
        .await
        .expect("the demo loads");
    // Beyond the demo: a lot whose IRI is too long for a file name, and a lot whose creation
    // is retracted.
    let org = app.organization("Export Tester").await;
    let long_lot = events::id(&format!("lots/{}", "long-lot-name-".repeat(16)));
    let mut long = events::material("placeholder", 4.0, "KGM");
    long["payload"]["lotId"] = json!(long_lot);
    let mistake_id = uuid::Uuid::new_v4().to_string();
    let mistake = events::with_id(events::material("lots/mistake", 2.0, "KGM"), &mistake_id);
    app.record_ok(&org, &json!([long, mistake])).await;
    app.record_ok(&org, &json!([events::retraction(&mistake_id)]))
        .await;
    app.wait_for_views().await;
    let head = app.head().await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("snapshot");
    let output = export(&app, &["--out", arg(&out), "--public-url", BASE], &[]).await;
    succeeded(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("Exported {head} events (retractions: 1)")),
        "{stdout}"
    );
    assert!(!sibling(&out, ".partial").exists());

    // events.ndjson: the whole log in order, each line what GET /v1/events/{id} answers.
    let ndjson = std::fs::read_to_string(out.join("events.ndjson")).unwrap();
    assert!(ndjson.ends_with('\n'));
    let lines: Vec<&str> = ndjson.lines().collect();
    assert_eq!(lines.len() as u64, head);
    let mut ids = BTreeSet::new();
    let mut mentioned = BTreeSet::new();
    for line in &lines {
        let event: Value = serde_json::from_str(line).unwrap();
        let id = event["eventId"].as_str().unwrap().to_owned();
        let (status, served) = text_of(&app, &format!("/v1/events/{id}"), "*/*").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(*line, served, "event {id}");
        assert!(ids.insert(id), "an event twice");
        iri_strings(&event, &mut mentioned);
    }
    let last: Value = serde_json::from_str(lines[lines.len() - 1]).unwrap();
    assert_eq!(last["type"], "EventRetracted");
    assert_eq!(last["payload"]["eventId"], mistake_id);

    // The manifest: what it reflects, and every file with its size and hash.
    let manifest = manifest(&out);
    assert_eq!(manifest["format"], "stigmergy-export");
    assert_eq!(manifest["formatVersion"], 1);
    assert_eq!(manifest["publicUrl"], BASE);
    assert_eq!(manifest["context"], format!("{BASE}/context/v1.jsonld"));
    assert_eq!(manifest["logHead"], head);
    assert_eq!(manifest["asOf"], head);
    assert_eq!(manifest["asOfEnd"], head);
    assert_eq!(manifest["counts"]["events"], head);
    assert_eq!(manifest["counts"]["retractions"], 1);
    assert_eq!(manifest["counts"]["pending"], 0);
    let entries = manifest["files"].as_array().unwrap();
    assert_eq!(manifest["counts"]["files"], entries.len());
    let mut listed = BTreeSet::new();
    let mut bytes = 0;
    for entry in entries {
        let path = entry["path"].as_str().unwrap();
        let content = std::fs::read(out.join(path)).unwrap();
        assert_eq!(entry["bytes"], content.len(), "{path}");
        assert_eq!(
            entry["sha256"],
            hex::encode(Sha256::digest(&content)),
            "{path}"
        );
        bytes += content.len();
        listed.insert(path.to_owned());
    }
    assert_eq!(manifest["counts"]["bytes"], bytes);
    let mut expected_files = listed.clone();
    expected_files.extend(["manifest.json".to_owned(), "SHA256SUMS".to_owned()]);
    assert_eq!(
        files_below(&out),
        expected_files,
        "files the manifest does not list"
    );

    // The context, as committed and served.
    let context = std::fs::read_to_string(out.join("context/v1.jsonld")).unwrap();
    assert_eq!(context, include_str!("../../../schemas/context/v1.jsonld"));
    assert_eq!(text_of(&app, "/context/v1.jsonld", "*/*").await.1, context);

    // Every resource the events mention that `/id/{id}` answers for has its document, byte for
    // byte as served; nothing else has one.
    let resources: BTreeMap<String, &Value> = entries
        .iter()
        .filter(|entry| entry["path"].as_str().unwrap().starts_with("resources/"))
        .map(|entry| (entry["iri"].as_str().unwrap().to_owned(), entry))
        .collect();
    assert_eq!(manifest["counts"]["resources"], resources.len());
    let mut served = BTreeSet::new();
    for iri in &mentioned {
        let path = format!("/id/{}", encode_segment(iri));
        let (status, body) = text_of(&app, &path, "application/ld+json").await;
        match status {
            StatusCode::OK | StatusCode::GONE => {
                let entry = resources
                    .get(iri)
                    .unwrap_or_else(|| panic!("{iri} is served but not exported"));
                let file =
                    std::fs::read_to_string(out.join(entry["path"].as_str().unwrap())).unwrap();
                assert_eq!(file, body, "the document of {iri}");
                assert_eq!(entry["url"], format!("{BASE}{path}"));
                let document: Value = serde_json::from_str(&file).unwrap();
                assert_eq!(entry["version"], document["version"]);
                assert_eq!(entry["kind"], document["kind"]);
                assert_eq!(
                    entry.get("retracted").is_some(),
                    status == StatusCode::GONE,
                    "{iri}"
                );
                assert_eq!(document["asOf"], head);
                served.insert(iri.clone());
            }
            StatusCode::NOT_FOUND => assert!(!resources.contains_key(iri), "{iri}"),
            other => panic!("GET {path}: {other}"),
        }
    }
    assert_eq!(
        resources.keys().cloned().collect::<BTreeSet<_>>(),
        served,
        "exported documents of what /id/ does not serve"
    );
    for demo_item in [STOOL, BATCH_1, BATCH_2, SHIPMENT, PLYWOOD, FLAKES] {
        let entry = resources[demo_item];
        assert_eq!(
            entry["path"],
            format!("resources/{}.jsonld", encode_segment(demo_item))
        );
    }
    let mistake_lot = events::id("lots/mistake");
    assert_eq!(resources[mistake_lot.as_str()]["retracted"], true);
    let long_path = resources[long_lot.as_str()]["path"].as_str().unwrap();
    assert!(
        long_path.starts_with("resources/sha256-") && long_path.len() <= "resources/".len() + 200,
        "{long_path}"
    );

    // SHA256SUMS: what `sha256sum -c` checks, every file but itself; it fails on a change.
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), entries.len() + 1);
    let check = support::check_sums(&out, "--strict");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&check.stdout)
            .lines()
            .filter(|line| line.ends_with(": OK"))
            .count(),
        entries.len() + 1
    );
    std::fs::write(out.join(long_path), "{}").unwrap();
    let check = support::check_sums(&out, "--quiet");
    assert!(
        !check.status.success(),
        "a changed document passed the check"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_directory_is_replaced_only_when_it_holds_an_export_and_force_is_given() {
    let app = TestApp::spawn().await;
    let org = app.organization("Export Tester").await;
    app.record_ok(&org, &json!([events::material("lots/one", 3.0, "KGM")]))
        .await;
    app.wait_for_views().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested").join("snapshot");
    let partial = sibling(&out, ".partial");

    // `[open] public_url` from the environment does as well as the flag.
    let from_env = [("STIGMERGY__OPEN__PUBLIC_URL", "https://env.example.org/")];
    succeeded(&export(&app, &["--out", arg(&out)], &from_env).await);
    let first = manifest(&out);
    assert_eq!(first["publicUrl"], "https://env.example.org");
    assert_eq!(first["counts"]["events"], 1);
    let first_bytes = std::fs::read(out.join("manifest.json")).unwrap();

    // Again without --force: refused, the first export untouched.
    let again = export(&app, &["--out", arg(&out), "--public-url", BASE], &[]).await;
    refused(&again, "already holds an export: pass --force");
    assert_eq!(
        std::fs::read(out.join("manifest.json")).unwrap(),
        first_bytes
    );
    assert!(!partial.exists());

    // What an interrupted run left is removed; with --force the new export replaces the old.
    app.record_ok(&org, &json!([events::material("lots/two", 3.0, "KGM")]))
        .await;
    app.wait_for_views().await;
    std::fs::create_dir_all(partial.join("resources")).unwrap();
    std::fs::write(partial.join(".stigmergy-export-partial"), "").unwrap();
    std::fs::write(partial.join("events.ndjson"), "{\"half\":").unwrap();
    succeeded(
        &export(
            &app,
            &["--out", arg(&out), "--public-url", BASE, "--force"],
            &[],
        )
        .await,
    );
    let second = manifest(&out);
    assert_eq!(second["counts"]["events"], 2);
    assert_eq!(second["logHead"], 2);
    assert_eq!(second["publicUrl"], BASE);
    assert!(!partial.exists());
    assert!(!sibling(&out, ".replaced").exists());
    assert_eq!(
        std::fs::read_to_string(out.join("events.ndjson"))
            .unwrap()
            .lines()
            .count(),
        2
    );

    // A working directory that is not an export's is never removed.
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("notes.txt"), "mine").unwrap();
    let blocked = export(
        &app,
        &["--out", arg(&out), "--public-url", BASE, "--force"],
        &[],
    )
    .await;
    refused(&blocked, "is not what an earlier export left");
    assert_eq!(
        std::fs::read_to_string(partial.join("notes.txt")).unwrap(),
        "mine"
    );
    std::fs::remove_dir_all(&partial).unwrap();

    // A directory holding something else is never replaced, even with --force.
    let other = dir.path().join("mine");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let refused_other = export(
        &app,
        &["--out", arg(&other), "--public-url", BASE, "--force"],
        &[],
    )
    .await;
    refused(&refused_other, "holds no stigmergy export");
    assert_eq!(
        files_below(&other),
        BTreeSet::from(["notes.txt".to_owned()])
    );

    // An empty directory is written into.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    succeeded(&export(&app, &["--out", arg(&empty), "--public-url", BASE], &[]).await);
    assert_eq!(manifest(&empty)["counts"]["events"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_bad_public_url_is_refused_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let org = app.organization("Export Tester").await;
    app.record_ok(&org, &json!([events::material("lots/one", 3.0, "KGM")]))
        .await;
    app.wait_for_views().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("snapshot");

    let missing = export(&app, &["--out", arg(&out)], &[]).await;
    refused(&missing, "needs the public base URL");
    refused(&missing, "--public-url");
    for (bad, why) in [
        ("trace.example.org", "relative URL without a base"),
        ("ftp://trace.example.org", "not http or https"),
        ("https://trace.example.org/?x=1", "query"),
        (
            "https://user:secret@trace.example.org",
            "user name or password",
        ),
    ] {
        let output = export(&app, &["--out", arg(&out), "--public-url", bad], &[]).await;
        refused(&output, "is not a usable public base URL");
        refused(&output, why);
    }
    assert!(
        files_below(dir.path()).is_empty(),
        "a refused export wrote something"
    );
    assert!(!out.exists() && !sibling(&out, ".partial").exists());
}
