//! The node agent: registers this host as a `Node` and keeps it alive.
//!
//! At start it creates the Node object if it is missing (with the `--node-label` labels),
//! takes a store lease and binds the node's lease key to it (`meta/node-leases/{node}`), then
//! reports the host (addresses, CPUs, memory, versions) and `Ready=True`. It renews the lease
//! every eighth of its TTL (at most every second), which is not a store write; the status is written again only when
//! something changed, or every `HEARTBEAT` for `lastHeartbeatTime`. A lease that ends (the
//! store lost it, or this process was paused past it) is taken again, and the node registers
//! anew. On shutdown the lease is revoked: the node goes `NotReady` at once, not after a TTL.

use std::collections::BTreeMap;
use std::time::Duration;

use nanocl_api_types::meta::ConditionStatus;
use nanocl_api_types::node::v1::{Node as NodeObject, NodeCapacity, NodeStatus};
use nanocl_api_types::Resource as _;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::controllers::node::lease_key;
use crate::controllers::write::{condition, owners};
use crate::docker::{Docker, HostInfo};
use crate::objects::api::{Api, ObjectRef};
use crate::objects::ObjectError;
use crate::store::{LeaseId, Store, StoreError};

/// How often the status is written when nothing changed (`lastHeartbeatTime`).
pub const HEARTBEAT: Duration = Duration::from_secs(300);
/// How often, by default, the agent reads its Node and lease key back, to put right what
/// someone else changed.
pub const CHECK: Duration = Duration::from_secs(30);
/// How often the agent asks Docker whether it answers: a node whose Docker is gone is
/// `Ready=False` (`DockerUnreachable`), and its replicas are placed elsewhere.
pub const DOCKER_CHECK: Duration = Duration::from_secs(2);

/// Who this node is.
#[derive(Clone, Debug)]
pub struct Config {
    /// The Node's name (`--node`).
    pub node: String,
    /// Labels set on the Node at registration (`--node-label`); others are left alone.
    pub labels: BTreeMap<String, String>,
    /// The host's addresses (`--node-address`, else the source of the default route).
    pub addresses: Vec<String>,
    /// Where this node's proxy relays the other nodes' connections to its replicas
    /// (`IP:PORT`), published in the Node's status; `None`: no relay.
    pub proxy_relay: Option<String>,
    /// The lease's TTL (`--node-ttl`).
    pub ttl: Duration,
    /// This process, for the lease key's value (`node/pid`).
    pub identity: String,
    /// How often the Node and the lease key are read back (`CHECK`).
    pub check: Duration,
}

/// Why the agent could not register.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The Node object could not be written.
    #[error("cannot register node {node}: {source}")]
    RegisterFailed {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: ObjectError,
    },
}

/// The agent of one node: what it has registered, and what it last reported.
struct Agent<S, D> {
    store: S,
    docker: D,
    config: Config,
    nodes: Api<NodeObject, S>,
    host: Option<HostInfo>,
    /// When the status was last written (`None`: to write now).
    reported: Option<Instant>,
    /// When the Node was last read back.
    checked: Instant,
    /// When Docker was last asked, and whether it answered (the last two times: one
    /// failure is not a lost engine).
    docker_checked: Option<Instant>,
    docker_failures: u32,
    /// The `Ready` this agent last wrote.
    reported_ready: Option<bool>,
}

/// Runs the agent until `shutdown`: registers, keeps the lease, reports. `registered` turns
/// true once the node's lease key exists (the controllers wait for it, so the Node controller
/// of a restarted single host never sees its own node without a lease).
pub async fn run<S: Store + Clone, D: Docker>(
    store: S,
    docker: D,
    config: Config,
    registered: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    let mut agent = Agent {
        nodes: Api::new(store.clone()),
        store,
        docker,
        config,
        host: None,
        reported: None,
        checked: Instant::now(),
        docker_checked: None,
        docker_failures: 0,
        reported_ready: None,
    };
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        let lease = tokio::select! {
            lease = agent.register() => lease,
            () = stopped(&mut shutdown) => return Ok(()),
        };
        let lease = match lease {
            Ok(lease) => {
                backoff.reset();
                lease
            }
            Err(Registration::Refused(e)) => return Err(e),
            Err(Registration::Store(e)) => {
                let delay = backoff.next_delay();
                tracing::warn!(node = %agent.config.node, error = %e, retry_in = ?delay, "cannot register the node; retrying");
                tokio::select! {
                    () = tokio::time::sleep(delay) => continue,
                    () = stopped(&mut shutdown) => return Ok(()),
                }
            }
        };
        let _ = registered.send(true);
        tracing::info!(node = %agent.config.node, "node registered");
        let ended = tokio::select! {
            () = agent.keep(lease) => true,
            () = stopped(&mut shutdown) => false,
        };
        if !ended {
            // Going away: the node is NotReady now rather than after a TTL.
            let _ = agent.store.revoke_lease(lease).await;
            return Ok(());
        }
        tracing::warn!(node = %agent.config.node, "the node's lease ended; registering again");
    }
}

/// Why a registration did not happen.
enum Registration {
    /// The Node object was refused (a bad `--node-label`, say): retrying will not help.
    Refused(AgentError),
    /// The store failed: retry.
    Store(StoreError),
}

impl From<StoreError> for Registration {
    fn from(e: StoreError) -> Self {
        Registration::Store(e)
    }
}

impl<S: Store + Clone, D: Docker> Agent<S, D> {
    fn at(&self) -> ObjectRef<NodeObject> {
        ObjectRef::new(None, &self.config.node)
    }

    /// Makes sure the Node exists with the configured labels, and binds its lease key to a
    /// new lease.
    async fn register(&mut self) -> Result<LeaseId, Registration> {
        let refused = |node: &str, source: ObjectError| match source {
            ObjectError::Store(e) => Registration::Store(e),
            source => Registration::Refused(AgentError::RegisterFailed {
                node: node.to_owned(),
                source,
            }),
        };
        let node = &self.config.node;
        // The lease key first, the Node second: the Node controller never sees the Node
        // without its lease key (it would mark a node that is registering lost).
        let lease = self.store.grant_lease(self.config.ttl).await?;
        let key = lease_key(node);
        let value = serde_json::to_vec(&serde_json::json!({"identity": self.config.identity}))
            .unwrap_or_default();
        // A key left by an earlier run of this node (its lease not yet expired) is replaced:
        // the node is this process now.
        loop {
            match self
                .store
                .create_with_lease(&key, value.clone(), lease)
                .await
            {
                Ok(_) => break,
                Err(StoreError::AlreadyExists { current, .. }) => {
                    match self.store.delete(&key, Some(current.mod_revision)).await {
                        Ok(_) | Err(StoreError::NotFound { .. } | StoreError::Conflict { .. }) => {}
                        Err(e) => {
                            let _ = self.store.revoke_lease(lease).await;
                            return Err(e.into());
                        }
                    }
                }
                Err(e) => {
                    let _ = self.store.revoke_lease(lease).await;
                    return Err(e.into());
                }
            }
        }
        let current = match self
            .nodes
            .get(&self.at())
            .await
            .map_err(|e| refused(node, e))
        {
            Err(e) => {
                let _ = self.store.revoke_lease(lease).await;
                return Err(e);
            }
            Ok(current) => current,
        };
        match current {
            None => {
                let mut object = NodeObject::new(
                    nanocl_api_types::V1,
                    "Node",
                    node.clone(),
                    None,
                    Default::default(),
                );
                object.metadata.labels = self.config.labels.clone();
                match self.nodes.create(&object).await {
                    Ok(_) | Err(ObjectError::Store(StoreError::AlreadyExists { .. })) => {}
                    Err(e) => {
                        let _ = self.store.revoke_lease(lease).await;
                        return Err(refused(node, e));
                    }
                }
            }
            Some(current) => {
                let missing = self
                    .config
                    .labels
                    .iter()
                    .any(|(k, v)| current.metadata.labels.get(k) != Some(v));
                if missing {
                    let mut next = current.clone();
                    next.metadata.labels.extend(self.config.labels.clone());
                    if let Err(e) = self.nodes.replace(&current, &next).await {
                        let _ = self.store.revoke_lease(lease).await;
                        return Err(refused(node, e));
                    }
                }
            }
        }
        // Reported again after every registration: a lost node is Ready again.
        self.reported = None;
        Ok(lease)
    }

    /// Whether the node's lease key is still there and this process's (someone deleting it,
    /// or another nanocld started with the same `--node`, would leave the node without it).
    async fn holds_lease_key(&self) -> bool {
        match self.store.get(&lease_key(&self.config.node)).await {
            Ok(Some(kv)) => {
                let holder: serde_json::Value =
                    serde_json::from_slice(&kv.value).unwrap_or_default();
                holder["identity"] == self.config.identity.as_str()
            }
            Ok(None) => false,
            // Unknown: the lease's own renewals say whether the store is there.
            Err(_) => true,
        }
    }

    /// Renews `lease` and reports the node, until the lease ends (or its key went).
    async fn keep(&mut self, lease: LeaseId) {
        let every = crate::runtime::leader::renew_period(self.config.ttl);
        let mut renewed = Instant::now();
        let mut key_checked = Instant::now();
        loop {
            if !self.report().await {
                // The Node was deleted (`nanocl delete node`): register it again.
                tracing::warn!(node = %self.config.node, "the node's object was deleted; registering again");
                let _ = self.store.revoke_lease(lease).await;
                return;
            }
            tokio::time::sleep(every).await;
            if key_checked.elapsed() >= self.config.check {
                key_checked = Instant::now();
                if !self.holds_lease_key().await {
                    tracing::warn!(node = %self.config.node, "the node's lease key is gone or another process's");
                    let _ = self.store.revoke_lease(lease).await;
                    return;
                }
            }
            // A failed renewal is tried again at once (every 200 ms) until the TTL has passed
            // since the last one: etcd between leaders answers "unavailable" for a moment.
            loop {
                // At most a second per try: one held by a dying etcd member is sent again.
                let renewal =
                    tokio::time::timeout(Duration::from_secs(1), self.store.keep_alive(lease))
                        .await
                        .unwrap_or(Err(StoreError::DeadlineExceeded {
                            op: "keep alive",
                            after: Duration::from_secs(1),
                        }));
                match renewal {
                    Ok(()) => {
                        renewed = Instant::now();
                        break;
                    }
                    Err(StoreError::LeaseNotFound { .. }) => return,
                    Err(e) => {
                        tracing::warn!(node = %self.config.node, error = %e, "cannot renew the node's lease");
                        if renewed.elapsed() >= self.config.ttl {
                            // The store has expired it by now, or will have when it answers.
                            let _ = self.store.revoke_lease(lease).await;
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
    }

    /// Writes the node's status when it changed (or the heartbeat is due). Docker being
    /// unreachable leaves the host's figures out, not the node unregistered. `false` when the
    /// Node is found deleted.
    async fn report(&mut self) -> bool {
        if self
            .docker_checked
            .is_none_or(|at| at.elapsed() >= DOCKER_CHECK)
        {
            self.docker_checked = Some(Instant::now());
            match self.docker.host_info().await {
                Ok(info) => {
                    if self.docker_failures >= 2 {
                        tracing::info!(node = %self.config.node, "Docker answers again");
                    }
                    self.docker_failures = 0;
                    self.host = Some(info);
                }
                Err(e) => {
                    self.docker_failures = self.docker_failures.saturating_add(1);
                    if self.docker_failures == 2 {
                        tracing::warn!(node = %self.config.node, error = %e, "Docker does not answer: the node is NotReady until it does");
                    }
                }
            }
        }
        let docker_ok = self.host.is_some() && self.docker_failures < 2;
        let due = self.reported.is_none_or(|at| at.elapsed() >= HEARTBEAT)
            || self.reported_ready != Some(docker_ok);
        if !due && self.checked.elapsed() < self.config.check {
            return true;
        }
        self.checked = Instant::now();
        let current = match self.nodes.get(&self.at()).await {
            Ok(Some(node)) => node,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the node to report its status");
                return true;
            }
        };
        let previous = current.status.clone().unwrap_or_default().conditions;
        let was_ready = previous
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True);
        if !due && was_ready == docker_ok {
            return true;
        }
        let (reason, message) = match &self.host {
            Some(h) if docker_ok => (
                "NodeReady",
                format!("nanocld is running and renewing its lease; Docker {}", h.version),
            ),
            _ => (
                "DockerUnreachable",
                "nanocld is running but its Docker engine does not answer; replicas are placed on other nodes".to_owned(),
            ),
        };
        let status = NodeStatus {
            addresses: self.config.addresses.clone(),
            proxy_relay: self.config.proxy_relay.clone(),
            capacity: self.host.as_ref().map(|h| NodeCapacity {
                cpus: h.cpus,
                memory_bytes: h.memory_bytes,
            }),
            docker_version: self.host.as_ref().map(|h| h.version.clone()),
            nanocl_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            last_heartbeat_time: Some(crate::objects::now()),
            conditions: vec![condition(
                "Ready",
                docker_ok,
                reason,
                message,
                current.metadata.generation,
                &previous,
            )],
        };
        let patch = serde_json::to_value(&status).unwrap_or_default();
        match self
            .nodes
            .patch_status(&current, &owners::NODE_AGENT, &patch)
            .await
        {
            Ok(()) => {
                if was_ready != docker_ok {
                    let message = if docker_ok {
                        format!("node {} is ready", self.config.node)
                    } else {
                        format!("node {}'s Docker engine does not answer", self.config.node)
                    };
                    crate::controllers::events::record(
                        &self.store,
                        &current.clone().into_any(),
                        !docker_ok,
                        reason,
                        message,
                    )
                    .await;
                }
                self.reported = Some(Instant::now());
                self.reported_ready = Some(docker_ok);
            }
            Err(e) => tracing::warn!(error = %e, "cannot write the node's status"),
        }
        true
    }
}

/// Resolves once `shutdown` is true.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|v| *v).await;
}

/// The host's primary address: the source address of its default route (found by
/// "connecting" a UDP socket, which sends nothing), or none.
pub fn primary_address() -> Vec<String> {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0")
        // TEST-NET-1 (RFC 5737): routed like any address, never used.
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr());
    match probe {
        Ok(addr) if !addr.ip().is_unspecified() => vec![addr.ip().to_string()],
        _ => Vec::new(),
    }
}
