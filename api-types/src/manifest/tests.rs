//! Tests of manifest decoding: dispatch, strictness, locations, conversion and defaults.

use super::*;
use crate::cargo::v1::{ImagePullPolicy, Protocol};

fn decode(text: &str) -> Decoded {
    decode_str("m.yaml", text, &DecodeOptions::default())
}

fn errors(text: &str) -> Vec<String> {
    decode(text)
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

const CARGO: &str = "\
apiVersion: nanocl.io/v1
kind: Cargo
metadata:
  name: web
spec:
  cluster: dev
  container:
    image: busybox:1.36
    ports:
      - containerPort: 80
";

#[test]
fn decode_should_default_a_minimal_cargo() {
    let decoded = decode(CARGO);
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    let AnyObject::Cargo(cargo) = &decoded.manifests[0].object else {
        panic!("not a cargo")
    };
    assert_eq!(cargo.metadata.namespace.as_deref(), Some("global"));
    assert_eq!(cargo.spec.replicas, Some(1));
    assert_eq!(
        cargo.spec.container.image_pull_policy,
        Some(ImagePullPolicy::IfNotPresent)
    );
    let port = &cargo.spec.container.ports[0];
    assert_eq!(port.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(port.protocol, Some(Protocol::TCP));
    assert_eq!(decoded.manifests[0].pos, Pos { line: 1, column: 1 });
}

#[test]
fn unknown_field_should_be_reported_at_its_key() {
    let text = CARGO.replace("  cluster: dev\n", "  cluster: dev\n  replica: 3\n");
    assert_eq!(
        errors(&text),
        vec!["m.yaml:7:3: spec.replica: unknown field `replica` (did you mean `replicas`?), expected one of `cluster`, `replicas`, `networks`, `container`, `placement`, `update`, `revisionHistoryLimit`, `autoscale`"]
    );
}

#[test]
fn wrong_type_should_be_reported_at_the_value() {
    let text = CARGO.replace("  cluster: dev\n", "  cluster: dev\n  replicas: \"3\"\n");
    assert_eq!(
        errors(&text),
        vec!["m.yaml:7:13: spec.replicas: invalid type: string \"3\", expected an integer"]
    );
}

#[test]
fn validation_errors_should_all_be_listed_with_locations() {
    let text = "\
apiVersion: nanocl.io/v1
kind: Cargo
metadata:
  name: Web_1
spec:
  cluster: dev
  replicas: 2
  container:
    image: busybox:1.36
    env:
      1BAD: x
      GOOD: \"{{ vars.X\"
    ports:
      - containerPort: 70000
      - containerPort: 80
        hostPort: 8080
";
    assert_eq!(
        errors(text),
        vec![
            "m.yaml:4:9: metadata.name: invalid name \"Web_1\": a DNS-1123 label consists of lowercase letters, digits and '-', and starts and ends with a letter or digit (e.g. \"my-cargo\")",
            "m.yaml:11:13: spec.container.env.1BAD: invalid name \"1BAD\": letters, digits and '_', not starting with a digit",
            "m.yaml:12:13: spec.container.env.GOOD: unclosed placeholder in \"{{ vars.X\": expected \"{{ vars.NAME }}\"",
            "m.yaml:14:24: spec.container.ports[0].containerPort: must be between 1 and 65535, got 70000",
            "m.yaml:16:19: spec.container.ports[1].hostPort: a fixed host port can serve only one replica, but replicas is 2: put the replicas behind a ProxyRule listener (kind: ProxyRule, one port for all of them), remove hostPort to let Docker pick a port per replica, or set replicas to 1",
        ]
    );
}

#[test]
fn unknown_version_and_kind_should_list_what_is_served() {
    assert_eq!(
        errors("apiVersion: v1\nkind: Cargo\n"),
        vec!["m.yaml:1:13: apiVersion: unknown apiVersion \"v1\" (did you mean nanocl.io/v1?): served versions are nanocl.io/v1, nanocl.io/v1alpha1"]
    );
    assert_eq!(
        errors("apiVersion: nanocl.io/v1\nkind: cargo\n"),
        vec!["m.yaml:2:7: kind: unknown kind \"cargo\" (did you mean Cargo?) in nanocl.io/v1: served kinds are Namespace, Cluster, Network, Secret, Cargo, ProxyRule, Node, Replica"]
    );
    assert_eq!(
        errors("apiVersion: nanocl.io/v1alpha1\nkind: Nodes\n"),
        vec!["m.yaml:2:7: kind: unknown kind \"Nodes\" (did you mean Node?) in nanocl.io/v1alpha1: served kinds are Namespace, Cluster, Network, Cargo"]
    );
}

#[test]
fn a_node_should_decode_in_v1_only() {
    let decoded = decode(
        "apiVersion: nanocl.io/v1\nkind: Node\nmetadata:\n  name: host-1\n  labels: {zone: a}\nspec:\n  unschedulable: true\n",
    );
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    let object = &decoded.manifests[0].object;
    assert_eq!(object.key().to_string(), "node/host-1");
    assert_eq!(object.key().namespace, None, "nodes are cluster-scoped");
    match object {
        AnyObject::Node(node) => assert!(node.spec.unschedulable),
        other => panic!("expected a Node, got {other:?}"),
    }
    assert_eq!(
        errors("apiVersion: nanocl.io/v1alpha1\nkind: Node\nmetadata:\n  name: host-1\n"),
        vec!["m.yaml:1:13: apiVersion: kind Node is served only in nanocl.io/v1: write apiVersion: nanocl.io/v1"]
    );
    let unknown = errors(
        "apiVersion: nanocl.io/v1\nkind: Node\nmetadata:\n  name: host-1\nspec:\n  cordoned: true\n",
    );
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(
        unknown[0].starts_with("m.yaml:6:3: spec.cordoned: unknown field"),
        "{unknown:?}"
    );
}

#[test]
fn every_document_should_be_decoded_and_errors_kept_per_document() {
    let text = format!("{CARGO}---\napiVersion: nanocl.io/v1\nkind: Namespace\nmetadata:\n  name: demo\n---\n# only a comment\n---\napiVersion: nanocl.io/v1\nkind: Cluster\nmetadata:\n  name: \"../x\"\n");
    let decoded = decode(&text);
    assert_eq!(decoded.manifests.len(), 2);
    assert_eq!(decoded.manifests[1].pos.line, 11);
    let errs: Vec<String> = decoded.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("m.yaml:22:9: metadata.name: invalid name \"../x\""),
        "{errs:?}"
    );
}

#[test]
fn v1alpha1_should_convert_to_v1_and_report_flat_field_paths() {
    let text = "\
apiVersion: nanocl.io/v1alpha1
kind: Cargo
metadata:
  name: api
  namespace: demo
spec:
  cluster: dev
  image: busybox:1.36
  env: [\"A=1\", \"B={{ vars.DB }}\"]
  binds: [\"/srv/data:/data:ro\"]
  ports: [\"127.0.0.1:8080:80\"]
";
    let decoded = decode(text);
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    let AnyObject::Cargo(cargo) = &decoded.manifests[0].object else {
        panic!("not a cargo")
    };
    assert_eq!(decoded.manifests[0].version, Version::V1alpha1);
    assert_eq!(cargo.api_version, "nanocl.io/v1");
    assert_eq!(
        cargo.spec.container.env.get("B").and_then(|v| v.text()),
        Some("{{ vars.DB }}")
    );
    assert!(cargo.spec.container.volumes[0].read_only);
    assert_eq!(cargo.spec.container.ports[0].host_port, Some(8080));

    let bad = text
        .replace("busybox:1.36", "Bad Image")
        .replace("\"A=1\"", "\"NOEQUALS\"");
    assert_eq!(
        errors(&bad),
        vec!["m.yaml:9:9: spec.env[0]: expected KEY=VALUE, got \"NOEQUALS\""]
    );
    let bad = text.replace("busybox:1.36", "Bad:Image");
    let errs = errors(&bad);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("m.yaml:8:10: spec.image: invalid image reference"),
        "{errs:?}"
    );
}

#[test]
fn empty_file_and_non_mapping_documents_should_be_errors() {
    assert_eq!(
        errors(""),
        vec!["m.yaml:1:1: no objects found: the file is empty"]
    );
    assert_eq!(
        errors("# nothing\n"),
        vec!["m.yaml:1:1: no objects found: the file is empty"]
    );
    assert_eq!(
        errors("- a\n- b\n"),
        vec!["m.yaml:1:1: expected an object (a mapping with apiVersion, kind, metadata and spec), found a sequence"]
    );
}

#[test]
fn json_documents_should_decode_with_locations() {
    let text = "{\n  \"apiVersion\": \"nanocl.io/v1\",\n  \"kind\": \"Network\",\n  \"metadata\": {\"name\": \"front\"},\n  \"spec\": {\"cluster\": \"dev\", \"internal\": \"yes\"}\n}\n";
    assert_eq!(
        errors(text),
        vec!["m.yaml:5:42: spec.internal: invalid type: string \"yes\", expected a boolean"]
    );
}

#[test]
fn namespace_in_a_namespace_should_be_refused() {
    let text =
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata:\n  name: demo\n  namespace: other\n";
    assert_eq!(
        errors(text),
        vec!["m.yaml:5:14: metadata.namespace: a Namespace is not inside a namespace: remove this field"]
    );
}

fn decode_file(file: &str, text: &str) -> Vec<String> {
    decode_bytes(file, text.as_bytes(), &DecodeOptions::default())
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

const TRAILING_COMMA: &str = "{\"apiVersion\": \"nanocl.io/v1\", \"kind\": \"Namespace\",\n \"metadata\": {\"name\": \"dev\",}}\n";

#[test]
fn a_json_file_should_be_read_as_strict_json_with_its_line_and_column() {
    assert_eq!(
        decode_file("ns.json", TRAILING_COMMA),
        vec!["ns.json:2:29: invalid JSON: trailing comma"]
    );
    // The same text is valid YAML (a flow mapping), and stays accepted as YAML.
    assert_eq!(decode_file("ns.yaml", TRAILING_COMMA), Vec::<String>::new());
    assert_eq!(
        decode_file("ns.json", "{\"apiVersion\": \"nanocl.io/v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"dev\"}}"),
        Vec::<String>::new()
    );
}

#[test]
fn standard_input_that_starts_with_a_brace_should_be_strict_json() {
    assert_eq!(
        decode_file("<stdin>", &format!("  \n{TRAILING_COMMA}")),
        vec!["<stdin>:3:29: invalid JSON: trailing comma"]
    );
    assert_eq!(
        decode_file(
            "<stdin>",
            "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {name: dev,}\n"
        ),
        Vec::<String>::new(),
        "YAML on stdin stays YAML"
    );
}

#[test]
fn strict_json_should_still_report_field_errors_where_they_are() {
    let text = "{\n  \"apiVersion\": \"nanocl.io/v1\",\n  \"kind\": \"Namespace\",\n  \"metadata\": {\"name\": \"dev\", \"nmae\": 1}\n}\n";
    let errors = decode_file("ns.json", text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("ns.json:4:31: metadata.nmae: unknown field"),
        "{errors:?}"
    );
}

#[test]
fn placement_and_cluster_nodes_should_be_checked_where_they_are_written() {
    let text = CARGO.replace(
        "  cluster: dev\n",
        "  cluster: dev\n  placement:\n    maxPerNode: 0\n    nodeSelector: {\"bad key!\": a}\n",
    );
    assert_eq!(
        errors(&text),
        vec![
            "m.yaml:9:32: spec.placement.nodeSelector[\"bad key!\"]: invalid key \"bad key!\": a name of at most 63 characters made of letters, digits, '-', '_' and '.', starting and ending with a letter or digit, with an optional DNS subdomain prefix and '/'",
            "m.yaml:8:17: spec.placement.maxPerNode: must be between 1 and 1000, got 0",
        ]
    );
    let cluster = "apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {name: dev}\nspec:\n  nodes: \"zone in (a\"\n";
    let got = errors(cluster);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("m.yaml:5:10: spec.nodes: "), "{got:?}");
    let replica = "apiVersion: nanocl.io/v1alpha1\nkind: Replica\nmetadata: {name: web-0}\nspec: {cargo: web, slot: 0, node: a}\n";
    assert_eq!(
        errors(replica),
        vec!["m.yaml:1:13: apiVersion: kind Replica is served only in nanocl.io/v1: write apiVersion: nanocl.io/v1"]
    );
}

#[test]
fn update_and_autoscale_should_be_checked_where_they_are_written() {
    let text = CARGO.replace(
        "  cluster: dev\n",
        "  cluster: dev\n  update:\n    maxSurge: 0\n    maxUnavailable: \"0%\"\n    minReadySeconds: 10\n    progressDeadlineSeconds: 5\n  revisionHistoryLimit: 101\n  autoscale:\n    maxReplicas: 0\n    targetMemoryUtilizationPercent: 50\n",
    );
    assert_eq!(
        errors(&text),
        vec![
            "m.yaml:8:15: spec.update.maxSurge: maxSurge and maxUnavailable cannot both be 0: an update could never replace a replica",
            "m.yaml:11:30: spec.update.progressDeadlineSeconds: must be greater than minReadySeconds (10), got 5",
            "m.yaml:14:18: spec.autoscale.maxReplicas: required: the most replicas the autoscaler may run",
            "m.yaml:15:37: spec.autoscale.targetMemoryUtilizationPercent: is a percentage of spec.container.resources.memory, which is not set",
            "m.yaml:12:25: spec.revisionHistoryLimit: must be between 0 and 100, got 101",
        ]
    );
    let pinned = CARGO
        .replace(
            "  cluster: dev\n",
            "  cluster: dev\n  update: {strategy: RollingUpdate, maxSurge: \"150%\"}\n",
        )
        .replace(
            "containerPort: 80",
            "containerPort: 80\n        hostPort: 8080",
        );
    let got = errors(&pinned);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].starts_with("m.yaml:7:47: spec.update.maxSurge: invalid \"150%\""),
        "{got:?}"
    );
    assert!(
        got[1].contains("spec.update.strategy: a fixed hostPort cannot serve the old and the new replica side by side: use strategy Recreate"),
        "{got:?}"
    );
    let recreate = CARGO.replace(
        "  cluster: dev\n",
        "  cluster: dev\n  update: {strategy: Recreate, maxUnavailable: 1}\n",
    );
    let got = errors(&recreate);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].ends_with("spec.update.maxUnavailable: applies only to strategy RollingUpdate (Recreate replaces every replica at once)"),
        "{got:?}"
    );
}

#[test]
fn build_should_be_checked_where_it_is_written_and_resolved_against_the_file() {
    let text = CARGO.replace(
        "    ports:\n",
        "    build:\n      git: {url: \"-upload-pack=x\", ref: \"a..b\", path: \"../up\", poll: 10ms}\n      context: rel\n      dockerfile: /abs\n      args: {\"1X\": \"{{ vars.A\"}\n      target: \"a b\"\n      timeout: 0s\n    imagePullPolicy: Always\n    ports:\n",
    );
    assert_eq!(
        errors(&text),
        vec![
            "m.yaml:8:12: spec.container.image: give either image or build, not both: a built image is named by nanocl",
            "m.yaml:16:22: spec.container.imagePullPolicy: not with build: a built image is never pulled",
            "m.yaml:11:16: spec.container.build.context: give either git or context, not both",
            "m.yaml:10:18: spec.container.build.git.url: invalid git URL \"-upload-pack=x\"",
            "m.yaml:10:41: spec.container.build.git.ref: invalid git ref \"a..b\"",
            "m.yaml:10:55: spec.container.build.git.path: must stay inside the repository or context (no \"..\"), got \"../up\"",
            "m.yaml:10:70: spec.container.build.git.poll: must be at least 1s, got \"10ms\"",
            "m.yaml:11:16: spec.container.build.context: must be an absolute path on the nanocld host, got \"rel\" (nanocl apply resolves a relative one against the manifest's directory)",
            "m.yaml:12:19: spec.container.build.dockerfile: must be relative (to the repository or context), got \"/abs\"",
            "m.yaml:13:20: spec.container.build.args.1X: invalid name \"1X\": letters, digits and '_', not starting with a digit",
            "m.yaml:13:20: spec.container.build.args.1X: unclosed placeholder in \"{{ vars.A\": expected \"{{ vars.NAME }}\"",
            "m.yaml:14:15: spec.container.build.target: invalid stage name \"a b\"",
            "m.yaml:15:16: spec.container.build.timeout: must be more than 0",
        ]
    );
    // Relative paths resolve against the file's directory; without one they are refused.
    let relative = CARGO.replace(
        "    image: busybox:1.36\n",
        "    build: {git: {url: ../repo, path: site}}\n",
    );
    let options = DecodeOptions {
        base_dir: Some("/srv/manifests".into()),
        ..DecodeOptions::default()
    };
    let decoded = decode_str("m.yaml", &relative, &options);
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    let AnyObject::Cargo(cargo) = &decoded.manifests[0].object else {
        panic!("not a cargo")
    };
    let build = cargo.spec.container.build.as_ref().expect("build");
    assert_eq!(
        build.git.as_ref().map(|g| g.url.as_str()),
        Some("/srv/repo")
    );
    assert_eq!(cargo.spec.container.image_pull_policy, None, "never pulled");
    let got = errors(&relative);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("spec.container.build.git.url: a relative repository path \"../repo\" needs the manifest's directory"),
        "{got:?}"
    );
}

#[test]
fn every_shape_error_should_be_listed_with_a_hint_and_no_rust_type_name() {
    let text = "\
apiVersion: nanocl.io/v1
kind: Cargo
metadata:
  name: web
spec:
  cluster: dev
  replicas: many
  command: [sh]
  container:
    image: busybox:1.36
    enviroment: {A: b}
    ports:
      - \"80:80\"
    imagePullPolicy: Sometimes
    healthcheck: {command: sh, retries: 3}
";
    assert_eq!(
        errors(text),
        vec![
            "m.yaml:7:13: spec.replicas: invalid type: string \"many\", expected an integer",
            "m.yaml:8:3: spec.command: unknown field `command` (did you mean `spec.container.command`?), expected one of `cluster`, `replicas`, `networks`, `container`, `placement`, `update`, `revisionHistoryLimit`, `autoscale`",
            "m.yaml:11:5: spec.container.enviroment: unknown field `enviroment` (did you mean `env`?), expected one of `image`, `build`, `imagePullPolicy`, `command`, `args`, `env`, `files`, `ports`, `volumes`, `workingDir`, `user`, `labels`, `resources`, `healthcheck`, `privileged`, `capAdd`, `devices`, `hostPid`, `hostIpc`",
            "m.yaml:13:9: spec.container.ports[0]: invalid type: string \"80:80\", expected a mapping with containerPort, hostPort, hostIP, protocol",
            "m.yaml:14:22: spec.container.imagePullPolicy: unknown value `Sometimes`, expected one of `IfNotPresent`, `Always`, `Never`",
            "m.yaml:15:28: spec.container.healthcheck.command: invalid type: string \"sh\", expected a list (of a string)",
        ]
    );
    // A document serde accepts is never refused by the walk: the example manifests decode.
    assert!(decode(CARGO).errors.is_empty());
}

#[test]
fn ranges_should_be_listed_with_shape_errors() {
    let text = CARGO
        .replace("  cluster: dev\n", "  cluster: dev\n  replica: 3\n")
        .replace("containerPort: 80", "containerPort: 70000");
    assert_eq!(
        errors(&text),
        vec![
            "m.yaml:7:3: spec.replica: unknown field `replica` (did you mean `replicas`?), expected one of `cluster`, `replicas`, `networks`, `container`, `placement`, `update`, `revisionHistoryLimit`, `autoscale`",
            "m.yaml:11:24: spec.container.ports[0].containerPort: must be between 1 and 65535, got 70000",
        ]
    );
}
