//! nanocl's own address pool against the real dockerd: 300 clusters on one host all get a
//! Docker network, each with its own subnet from the pool (Docker's default pools hold ~31);
//! a pool that runs out says so on the status; deleting gives the subnets back.

use std::collections::HashSet;
use std::time::Duration;

use nanocl_e2e::docker::{docker, Scope};
use nanocl_e2e::{stderr, stdout, Daemon, StoreKind};

/// Whether `done` holds within `limit` (looked at every 500 ms).
fn within(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs `nanocl ARGS`, which must succeed.
fn succeed(d: &Daemon, args: &[&str]) {
    let out = d.nanocl(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "nanocl {args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

fn apply(d: &Daemon, name: &str, yaml: &str) {
    let file = d.dir.path().join(name);
    std::fs::write(&file, yaml).expect("write manifest");
    succeed(d, &["apply", "-f", &file.display().to_string()]);
}

fn clusters(ns: &str, names: impl Iterator<Item = String>) -> String {
    let mut yaml = format!("apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n");
    for name in names {
        yaml.push_str(&format!(
            "---\napiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: {name}, namespace: {ns}}}\n"
        ));
    }
    yaml
}

fn listed(d: &Daemon, ns: &str) -> Vec<serde_json::Value> {
    let out = d.nanocl(&["-n", ns, "get", "clusters", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    list["items"].as_array().cloned().unwrap_or_default()
}

fn ready(cluster: &serde_json::Value) -> Option<String> {
    cluster["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| {
            Some(format!(
                "{}/{}",
                c["status"].as_str()?,
                c["reason"].as_str()?
            ))
        })
}

/// The subnets of this test's Docker networks, by name.
fn docker_subnets(scope: &Scope) -> Vec<(String, String)> {
    let ids = docker(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("label={}", scope.label()),
    ]);
    let ids: Vec<&str> = ids.lines().collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut args = vec![
        "network",
        "inspect",
        "-f",
        "{{.Name}} {{range .IPAM.Config}}{{.Subnet}}{{end}}",
    ];
    args.extend(ids);
    docker(&args)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, s)| (n.to_owned(), s.to_owned()))
        .collect()
}

#[test]
fn three_hundred_clusters_should_each_get_a_network_of_their_own_from_the_pool() {
    let scope = Scope::new("pool300");
    // A range of its own, so tests beside it (on the default pool) are not in its way.
    let d = Daemon::start_with(StoreKind::Embedded, &["--network-pool", "10.224.0.0/15/24"]);
    apply(
        &d,
        "clusters.yaml",
        &clusters(&scope.ns, (0..300).map(|i| format!("c{i}"))),
    );
    let mut last = String::new();
    let all_ready = within(Duration::from_secs(600), || {
        let items = listed(&d, &scope.ns);
        let ready_count = items
            .iter()
            .filter(|c| ready(c).as_deref() == Some("True/NetworkReady"))
            .count();
        last = format!(
            "{ready_count}/300 ready; e.g. {:?}",
            items
                .iter()
                .find_map(|c| ready(c).filter(|r| r != "True/NetworkReady"))
        );
        ready_count == 300
    });
    assert!(all_ready, "every cluster gets its network: {last}");
    let items = listed(&d, &scope.ns);
    let subnets: HashSet<String> = items
        .iter()
        .filter_map(|c| c["status"]["subnet"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(subnets.len(), 300, "300 distinct subnets in the statuses");
    assert!(
        subnets
            .iter()
            .all(|s| s.starts_with("10.224.") || s.starts_with("10.225."))
            && subnets.iter().all(|s| s.ends_with("/24")),
        "all from the pool: {subnets:?}"
    );
    let in_docker = docker_subnets(&scope);
    assert_eq!(in_docker.len(), 300, "300 Docker networks");
    let docker_set: HashSet<String> = in_docker.iter().map(|(_, s)| s.clone()).collect();
    assert_eq!(
        docker_set, subnets,
        "Docker holds exactly the subnets the statuses say"
    );

    succeed(
        &d,
        &["delete", "ns", &scope.ns, "--wait", "--timeout", "600s"],
    );
    assert!(docker_subnets(&scope).is_empty(), "every network removed");
}

#[test]
fn a_pool_that_runs_out_should_say_so_and_give_subnets_back_on_delete() {
    let scope = Scope::new("poolout");
    // Two /29s.
    let d = Daemon::start_with(StoreKind::Embedded, &["--network-pool", "10.226.0.0/28/29"]);
    apply(
        &d,
        "two.yaml",
        &clusters(&scope.ns, ["a", "b"].into_iter().map(str::to_owned)),
    );
    assert!(
        within(Duration::from_secs(60), || listed(&d, &scope.ns)
            .iter()
            .filter(|c| ready(c).as_deref() == Some("True/NetworkReady"))
            .count()
            == 2),
        "two clusters fit: {:?}",
        listed(&d, &scope.ns).iter().map(ready).collect::<Vec<_>>()
    );
    apply(
        &d,
        "three.yaml",
        &clusters(&scope.ns, ["a", "b", "c"].into_iter().map(str::to_owned)),
    );
    let mut message = String::new();
    assert!(
        within(Duration::from_secs(60), || {
            let c = listed(&d, &scope.ns)
                .into_iter()
                .find(|c| c["metadata"]["name"] == "c");
            let c = c.unwrap_or_default();
            message = c["status"]["conditions"][0]["message"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            ready(&c).as_deref() == Some("False/AddressPoolExhausted")
        }),
        "the third is refused with a reason: {message}"
    );
    assert!(
        message.contains("the network pool 10.226.0.0/28/29 has no free subnet")
            && message.contains("--network-pool"),
        "{message}"
    );
    assert_eq!(docker_subnets(&scope).len(), 2, "no network for the third");
    // A cargo of that cluster names it, and why its network is missing.
    apply(
        &d,
        "cargo.yaml",
        &format!(
            "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web, namespace: {}}}\nspec:\n  cluster: c\n  container: {{image: {}, command: [sleep, \"60\"]}}\n",
            scope.ns,
            nanocl_e2e::test_image()
        ),
    );
    let mut said = String::new();
    assert!(
        within(Duration::from_secs(60), || {
            let out = d.nanocl(&["-n", &scope.ns, "get", "cargo", "web", "-o", "json"]);
            let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            said = c["status"]["conditions"][0]["message"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            said.contains("the network of cluster c") && said.contains("AddressPoolExhausted")
        }),
        "the cargo names its cluster: {said}"
    );
    succeed(&d, &["-n", &scope.ns, "delete", "cargo", "web", "--wait"]);
    // The subnet of a deleted cluster is free again.
    succeed(&d, &["-n", &scope.ns, "delete", "cluster", "a", "--wait"]);
    succeed(&d, &["-n", &scope.ns, "delete", "cluster", "c", "--wait"]);
    apply(
        &d,
        "again.yaml",
        &clusters(&scope.ns, ["b", "d"].into_iter().map(str::to_owned)),
    );
    assert!(
        within(Duration::from_secs(60), || listed(&d, &scope.ns)
            .iter()
            .any(|c| c["metadata"]["name"] == "d"
                && ready(c).as_deref() == Some("True/NetworkReady"))),
        "a new cluster gets the freed subnet: {:?}",
        listed(&d, &scope.ns)
            .iter()
            .map(|c| (c["metadata"]["name"].clone(), ready(c)))
            .collect::<Vec<_>>()
    );
    succeed(
        &d,
        &["delete", "ns", &scope.ns, "--wait", "--timeout", "60s"],
    );
}
