//! The committed SDL (`schemas/graphql/schema.graphql`) is the schema the code serves: this test
//! fails when they drift apart. After changing the schema on purpose, write the file again with
//! `STIGMERGY_WRITE_SDL=1 cargo test -p stigmergy-gateway --test sdl` and commit it.

use std::path::PathBuf;

fn committed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/graphql/schema.graphql")
}

#[test]
fn the_committed_sdl_is_the_schema_the_gateway_serves() {
    let served = stigmergy_gateway::sdl();
    let path = committed();
    if std::env::var_os("STIGMERGY_WRITE_SDL").is_some() {
        std::fs::write(&path, &served).expect("schemas/graphql/schema.graphql is writable");
    }
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        written == served,
        "schemas/graphql/schema.graphql differs from the schema the gateway serves; if the change \
         is meant, run `STIGMERGY_WRITE_SDL=1 cargo test -p stigmergy-gateway --test sdl` and \
         commit the file.\n--- served ---\n{served}"
    );
}
