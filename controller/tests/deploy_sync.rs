//! The deploy-directory sync (`nanocl_client::deploy`) against nanocld's real API router in
//! process (the daemon's transport) on the in-memory store: a model-based property test of the
//! guarantee that matters most, that a sync never loses a resource.
//!
//! Random sequences of file operations (write objects, break a file, delete a file, restart the
//! watcher) and syncs with `--prune`. After every sync:
//! - **safety**: an object that disappeared is defined by no valid file, and the file that last
//!   applied it (its `nanocl.io/source-file`) is not an invalid file;
//! - **convergence**: when every file is valid and nothing is defined twice, the live cargoes
//!   are exactly those the files define, each with its file's content.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use nanocl_client::deploy::{Config, Syncer};
use nanocl_client::transport::Transport;
use nanocl_controller::apiserver::{self, App};
use nanocl_controller::deploy::InProcess;
use nanocl_controller::store::{AnyStore, EmbeddedOptions, EmbeddedStore};
use proptest::prelude::*;
use serde_json::Value;

const FILES: usize = 3;
const CARGOES: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    /// File `file` defines these cargoes (index, revision).
    Write(usize, Vec<(usize, u8)>),
    /// File `file` becomes invalid YAML.
    Break(usize),
    /// File `file` is deleted.
    Delete(usize),
    /// A new watcher process: no memory of earlier syncs.
    Restart,
    Sync,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..FILES, prop::collection::vec((0..CARGOES, 0u8..3), 0..3)).prop_map(|(f, c)| Op::Write(f, c)),
        1 => (0..FILES).prop_map(Op::Break),
        1 => (0..FILES).prop_map(Op::Delete),
        1 => Just(Op::Restart),
        3 => Just(Op::Sync),
    ]
}

fn cargo_yaml(index: usize, rev: u8) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: c{index}, namespace: p}}\nspec:\n  cluster: dev\n  container:\n    image: busybox:stable\n    env: {{REV: \"{rev}\"}}\n"
    )
}

/// What a file holds, in the model.
#[derive(Clone, Debug)]
enum File {
    Valid(Vec<(usize, u8)>),
    Invalid,
}

async fn live_cargoes(api: &InProcess) -> BTreeMap<String, Value> {
    let answer = api
        .request(
            axum::http::Method::GET,
            "/apis/nanocl.io/v1/namespaces/p/cargoes",
            None,
        )
        .await
        .expect("list");
    let list: Value = serde_json::from_slice(&answer.body).expect("json");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                o.clone(),
            )
        })
        .collect()
}

fn write_file(dir: &Path, file: usize, content: &File) {
    let path = dir.join(format!("f{file}.yaml"));
    let text = match content {
        File::Valid(cargoes) => cargoes
            .iter()
            .map(|(i, rev)| cargo_yaml(*i, *rev))
            .collect::<Vec<_>>()
            .join("---\n"),
        File::Invalid => "kind: Cargo\nmetadata: [broken\n".to_owned(),
    };
    std::fs::write(path, text).expect("write");
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let store =
        AnyStore::Embedded(EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store"));
    apiserver::ensure_default_namespace(&store)
        .await
        .expect("global");
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let app = Arc::new(App {
        store,
        metrics: Default::default(),
        shutdown,
        store_kind: "embedded",
        docker: None,
        audit: None,
    });
    let api = InProcess::new(apiserver::router(app));
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("deploy");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(
        dir.join("base.yaml"),
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {name: p}\n---\napiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {name: dev, namespace: p}\n",
    )
    .expect("base");
    let config = Config {
        dir: dir.clone(),
        applyset: "prop".into(),
        explicit_applyset: false,
        prune: true,
        decode: Default::default(),
    };
    let mut syncer = Syncer::new(config.clone());
    let mut files: BTreeMap<usize, File> = BTreeMap::new();

    for op in ops {
        match op {
            Op::Write(f, cargoes) => {
                let empty = cargoes.is_empty();
                let content = File::Valid(cargoes);
                write_file(&dir, f, &content);
                // A file with no document is invalid: it is what a truncate-then-write looks
                // like halfway, so it must not count as "defines nothing".
                files.insert(f, if empty { File::Invalid } else { content });
            }
            Op::Break(f) => {
                write_file(&dir, f, &File::Invalid);
                files.insert(f, File::Invalid);
            }
            Op::Delete(f) => {
                let _ = std::fs::remove_file(dir.join(format!("f{f}.yaml")));
                files.remove(&f);
            }
            Op::Restart => syncer = Syncer::new(config.clone()),
            Op::Sync => {
                let before = live_cargoes(&api).await;
                let report = match syncer.sync(&api).await {
                    Ok(report) => report,
                    Err(e) => return Err(TestCaseError::fail(format!("sync failed: {e:?}"))),
                };
                let after = live_cargoes(&api).await;

                // Which valid files define each cargo, and which files are invalid.
                let mut defined: BTreeMap<String, Vec<(usize, u8)>> = BTreeMap::new();
                let mut invalid: BTreeSet<String> = BTreeSet::new();
                for (f, content) in &files {
                    match content {
                        File::Valid(cargoes) => {
                            for (i, rev) in cargoes {
                                defined.entry(format!("c{i}")).or_default().push((*f, *rev));
                            }
                        }
                        File::Invalid => {
                            invalid.insert(format!("f{f}.yaml"));
                        }
                    }
                }

                // Safety: nothing disappears that a file still defines or an invalid file may.
                for (name, object) in &before {
                    if after.contains_key(name) {
                        continue;
                    }
                    let source = object["metadata"]["annotations"]["nanocl.io/source-file"]
                        .as_str()
                        .unwrap_or("");
                    prop_assert!(
                        !defined.contains_key(name),
                        "{name} was deleted although a valid file defines it; report {report:?}"
                    );
                    prop_assert!(
                        !invalid.contains(source),
                        "{name} was deleted although its file {source} is only invalid; report {report:?}"
                    );
                }

                // Convergence when everything is valid and defined once.
                let clean = invalid.is_empty() && defined.values().all(|places| places.len() == 1);
                if clean {
                    let live: BTreeSet<&String> = after.keys().collect();
                    let wanted: BTreeSet<&String> = defined.keys().collect();
                    prop_assert_eq!(live, wanted, "report {:?}", report);
                    for (name, places) in &defined {
                        let rev = places[0].1.to_string();
                        prop_assert_eq!(
                            after[name]["spec"]["container"]["env"]["REV"].as_str(),
                            Some(rev.as_str()),
                            "{}",
                            name
                        );
                    }
                    prop_assert_eq!(report.invalid, 0);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn a_sync_never_loses_a_resource(ops in prop::collection::vec(op(), 1..16)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(run(ops))?;
    }
}
