//! The committed schemas under `schemas/` are exactly the ones generated from the types.
//! Run with `STIGMERGY_BLESS=1` to rewrite them after changing a type.

use std::path::PathBuf;

use stigmergy_domain::schema::schema_files;

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

#[test]
fn committed_schemas_match_the_generated_ones() {
    let bless = std::env::var_os("STIGMERGY_BLESS").is_some();
    let mut stale = Vec::new();
    for (path, schema) in schema_files() {
        let file = schemas_dir().join(&path);
        let generated = format!(
            "{}\n",
            serde_json::to_string_pretty(&schema).expect("schema serialises")
        );
        let committed = std::fs::read_to_string(&file).unwrap_or_default();
        if committed != generated {
            if bless {
                std::fs::create_dir_all(file.parent().expect("schema files live in a folder"))
                    .expect("create the schemas folder");
                std::fs::write(&file, generated).expect("write the schema");
            } else {
                stale.push(path);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "these committed schemas differ from the generated ones: {stale:?}; \
         run `STIGMERGY_BLESS=1 cargo test -p stigmergy-domain --test schemas` to rewrite them"
    );
}
