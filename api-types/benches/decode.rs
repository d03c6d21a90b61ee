//! Decode + default + validate throughput for a 1,000-object manifest (a mix of every kind).
//! Also writes the manifest to `target/bench/objects-1000.yaml` so `make bench` can measure the
//! CLI's peak memory on the same input.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nanocl_api_types::manifest::{decode_str, DecodeOptions};

/// 1,000 objects: 10 namespaces, 40 clusters, 150 networks, 800 cargoes.
pub fn manifest_1000() -> String {
    let mut out = String::new();
    for n in 0..10 {
        out.push_str(&format!(
            "---\napiVersion: nanocl.io/v1\nkind: Namespace\nmetadata:\n  name: ns-{n}\n"
        ));
    }
    for c in 0..40 {
        out.push_str(&format!(
            "---\napiVersion: nanocl.io/v1\nkind: Cluster\nmetadata:\n  name: cl-{c}\n  namespace: ns-{}\nspec:\n  variables:\n    DB_HOST: db-{c}.internal\n    LOG_LEVEL: info\n",
            c % 10
        ));
    }
    for i in 0..150 {
        out.push_str(&format!(
            "---\napiVersion: nanocl.io/v1\nkind: Network\nmetadata:\n  name: net-{i}\n  namespace: ns-{}\nspec:\n  cluster: cl-{}\n  internal: {}\n",
            i % 10,
            i % 40,
            i % 2 == 0
        ));
    }
    for i in 0..800 {
        out.push_str(&format!(
            r#"---
apiVersion: nanocl.io/v1
kind: Cargo
metadata:
  name: cargo-{i}
  namespace: ns-{ns}
  labels:
    app: app-{i}
    tier: backend
spec:
  cluster: cl-{cl}
  replicas: {replicas}
  networks: [net-{net}]
  container:
    image: registry.example.com/team/app-{i}:v1.{i}
    command: ["/bin/app"]
    args: ["--port", "8080", "--verbose"]
    env:
      DATABASE_URL: "postgres://{{{{ vars.DB_HOST }}}}:5432/app"
      LOG_LEVEL: "{{{{ vars.LOG_LEVEL }}}}"
      WORKERS: "4"
    ports:
      - containerPort: 8080
      - containerPort: 9090
        protocol: UDP
    volumes:
      - source: data-{i}
        target: /var/lib/app
      - source: /etc/ssl/certs
        target: /etc/ssl/certs
        readOnly: true
    resources:
      cpus: 0.5
      memory: 256Mi
    healthcheck:
      command: ["wget", "-qO-", "http://127.0.0.1:8080/healthz"]
      interval: 10s
      timeout: 2s
      retries: 3
"#,
            ns = i % 10,
            cl = (i % 10) + 10 * ((i / 10) % 4),
            replicas = 1 + i % 5,
            net = i % 150,
        ));
    }
    out
}

fn bench(c: &mut Criterion) {
    let text = manifest_1000();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join("objects-1000.yaml"), &text);
    }
    let options = DecodeOptions::default();
    let decoded = decode_str("objects-1000.yaml", &text, &options);
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors.first());
    assert_eq!(decoded.manifests.len(), 1000);

    let mut group = c.benchmark_group("manifest");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("decode_default_validate_1000_objects", |b| {
        b.iter(|| decode_str("objects-1000.yaml", black_box(&text), &options))
    });
    group.bench_function("parse_yaml_only_1000_objects", |b| {
        b.iter(|| nanocl_api_types::manifest::node::parse_stream(black_box(&text)))
    });
    group.bench_function("saphyr_events_only_1000_objects", |b| {
        b.iter(|| {
            saphyr_parser::Parser::new_from_str(black_box(&text))
                .filter(Result::is_ok)
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
