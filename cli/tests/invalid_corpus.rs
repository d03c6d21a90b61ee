//! The bad-input corpus: every manifest under `tests/fixtures/invalid/` is refused by
//! `nanocl apply --dry-run=client` with exactly the messages and locations in its `.err` file,
//! and nothing is printed as applied. `NANOCL_UPDATE_FIXTURES=1` rewrites the `.err` files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/invalid")
}

fn nanocl(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nanocl"))
        .args(args)
        .current_dir(dir)
        .env_remove("NANOCL_HOST")
        .output()
        .expect("nanocl runs")
}

#[test]
fn every_invalid_manifest_should_be_refused_with_its_expected_errors() {
    let dir = corpus_dir();
    let update = std::env::var_os("NANOCL_UPDATE_FIXTURES").is_some();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.ends_with(".err"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 30,
        "the corpus has only {} manifests",
        names.len()
    );
    let mut failures = Vec::new();
    for name in &names {
        let out = nanocl(&dir, &["apply", "--dry-run=client", "-f", name]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let expected_path = dir.join(format!("{name}.err"));
        if update {
            std::fs::write(&expected_path, &stderr).expect("write .err");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if out.status.code() != Some(1) {
            failures.push(format!("{name}: exit {:?}, expected 1", out.status.code()));
        }
        if !out.stdout.is_empty() {
            failures.push(format!(
                "{name}: printed to stdout: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        if stderr != expected {
            failures.push(format!(
                "{name}:\n--- expected\n{expected}--- got\n{stderr}"
            ));
        }
        assert!(
            stderr.ends_with("nothing was applied\n"),
            "{name}: the summary must say nothing was applied:\n{stderr}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn one_bad_file_among_good_ones_should_apply_nothing_and_list_every_error() {
    let dir = corpus_dir();
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/getting-started");
    let examples = examples.to_str().expect("utf-8 path");
    let out = nanocl(
        &dir,
        &[
            "apply",
            "--dry-run=client",
            "-f",
            examples,
            "-f",
            "bad-env-names.yaml",
            "-f",
            "bad-volumes.yaml",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing may be reported as applied");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("bad-env-names.yaml:"))
            .count(),
        2
    );
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("bad-volumes.yaml:"))
            .count(),
        4
    );
    assert!(
        stderr.ends_with("error: 6 problems found in the input; nothing was applied\n"),
        "{stderr}"
    );
}

#[test]
fn a_10_mib_document_should_be_refused_at_the_size_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from(
        "apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata:\n  name: dev\nspec:\n  variables:\n",
    );
    let mut i = 0;
    while text.len() < 10 * 1024 * 1024 {
        text.push_str(&format!("    VAR_{i}: {}\n", "x".repeat(100)));
        i += 1;
    }
    std::fs::write(dir.path().join("huge.yaml"), &text).expect("write");
    let out = nanocl(
        dir.path(),
        &["apply", "--dry-run=client", "-f", "huge.yaml"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "huge.yaml:1:1: document is larger than the 3 MiB limit\nerror: 1 problem found in the input; nothing was applied\n"
    );
}

#[test]
fn a_file_over_32_mib_should_be_refused_before_reading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = std::fs::File::create(dir.path().join("big.yaml")).expect("create");
    file.set_len(33 * 1024 * 1024).expect("sparse file");
    let out = nanocl(dir.path(), &["apply", "--dry-run=client", "-f", "big.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "big.yaml: file is larger than the 32 MiB limit\nerror: 1 problem found in the input; nothing was applied\n"
    );
}
