//! The committed JSON Schemas in `manifests/schemas/` must match the types.
//! `make schemas` (NANOCL_UPDATE_SCHEMAS=1) rewrites them.

use std::path::PathBuf;

fn manifests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

#[test]
fn committed_schemas_should_match_the_types() {
    let update = std::env::var_os("NANOCL_UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    let mut documents = nanocl_api_types::schema::all();
    documents.push((
        "openapi.json".to_owned(),
        nanocl_api_types::schema::openapi(),
    ));
    for (relative, schema) in documents {
        let path = manifests_dir().join(&relative);
        let fresh = serde_json::to_string_pretty(&schema).expect("schema serializes") + "\n";
        if update {
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(&path, &fresh).expect("write schema");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == fresh => {}
            Ok(_) => stale.push(format!("{relative} differs")),
            Err(e) => stale.push(format!("{relative}: {e}")),
        }
    }
    assert!(
        stale.is_empty(),
        "manifests/ is out of date; run `make schemas` and commit the result:\n  {}",
        stale.join("\n  ")
    );
}

#[test]
fn schemas_should_carry_doc_comments_and_be_strict() {
    let schema = nanocl_api_types::schema::schema(
        nanocl_api_types::Version::V1,
        nanocl_api_types::Kind::Cargo,
    )
    .expect("Cargo is served in v1");
    let text = schema.to_string();
    assert!(text.contains("How many containers to run (0 to 1000, default 1)."));
    assert_eq!(schema["properties"]["kind"]["const"], "Cargo");
    assert_eq!(schema["properties"]["apiVersion"]["const"], "nanocl.io/v1");
    assert_eq!(schema["additionalProperties"], false);
}
