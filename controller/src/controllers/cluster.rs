//! The Cluster controller: each cluster's default Docker network, removed after the cluster's
//! cargoes and networks are gone.

use std::time::Duration;

use nanocl_api_types::cluster::v1::ClusterStatus;

use super::hub::in_cluster;
use super::plan::{default_network_name, labels};
use super::subnets::{self, Assigned, Exhausted};
use super::write::{self, condition};
use super::{in_use, OwnerFilter, ReconcileError, Shared, FINALIZER};
use crate::docker::{Docker, DockerError, NetworkSpec};
use crate::objects::api::Api;
use crate::objects::api::ObjectRef;
use crate::runtime::finalizer::{finalizer, Event};
use crate::runtime::runner::Action;
use crate::store::Store;
use nanocl_api_types::cargo::v1::Cargo as CargoObject;
use nanocl_api_types::cluster::v1::Cluster as ClusterObject;
use nanocl_api_types::network::v1::Network as NetworkObject;
use nanocl_api_types::AnyObject;
use nanocl_api_types::Resource as _;

/// Reconciles one Cluster (`clusters/{ns}/{name}`).
pub async fn reconcile<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    key: &str,
) -> Result<Action, ReconcileError> {
    let Some(cluster) = shared.hub.get_key::<ClusterObject>(key) else {
        return Ok(Action::AwaitChange);
    };
    let api = Api::new(shared.store.clone());
    finalizer(&api, FINALIZER, cluster, |event| {
        reconcile_event(shared, event)
    })
    .await
}

/// `Apply` converges Docker toward the cluster; `Cleanup` removes what it owns (`AwaitChange`
/// when done, which releases the finalizer).
async fn reconcile_event<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    event: Event<ClusterObject>,
) -> Result<Action, ReconcileError> {
    let (cluster, deleting) = event.into_parts();
    let cluster: &ClusterObject = &cluster;
    let object = cluster.clone().into_any();
    let namespace = cluster.metadata.namespace.clone().unwrap_or_default();
    let name = cluster.metadata.name.clone();
    let docker_name = default_network_name(&name, &namespace);
    let ours = OwnerFilter::instance(&shared.instance)
        .namespace(&namespace)
        .cluster(&name)
        .labels();
    let previous = cluster.status.clone().unwrap_or_default().conditions;
    if deleting {
        let children = !in_cluster(shared.hub.cache::<CargoObject>(), &namespace, &name).is_empty()
            || !in_cluster(shared.hub.cache::<NetworkObject>(), &namespace, &name).is_empty();
        if children {
            return Ok(Action::Requeue(Duration::from_secs(1)));
        }
        for n in shared.docker.list_networks(&ours).await? {
            if n.name == docker_name && !n.labels.contains_key(labels::NETWORK) {
                if let Err(e) = shared.docker.remove_network(&n.id).await {
                    if in_use(&e) {
                        return Ok(Action::Requeue(Duration::from_secs(1)));
                    }
                    return Err(e.into());
                }
            }
        }
        subnets::release(
            &shared.store,
            &ObjectRef::<ClusterObject>::of(cluster).store_key(),
        )
        .await?;
        return Ok(Action::AwaitChange);
    }
    let owner = ObjectRef::<ClusterObject>::of(cluster).store_key();
    let existing = shared
        .docker
        .list_networks(&ours)
        .await?
        .into_iter()
        .find(|n| n.name == docker_name);
    let exists = existing.is_some();
    let subnet = match &existing {
        Some(n) => subnets::adopt_existing(shared.pool, &shared.store, &owner, &n.subnets).await?,
        None => {
            match subnets::assign(shared.pool, &shared.store, &shared.docker, &owner, None).await? {
                Assigned::Subnet(s) => Some(s),
                Assigned::Exhausted(e) => return exhausted(shared, cluster, &object, e).await,
            }
        }
    };
    let outcome = if exists {
        Ok(())
    } else {
        let mut labels_map = std::collections::BTreeMap::new();
        labels_map.insert(labels::MANAGED.to_owned(), "true".to_owned());
        labels_map.insert(labels::NAMESPACE.to_owned(), namespace.clone());
        labels_map.insert(labels::CLUSTER.to_owned(), name.clone());
        labels_map.insert(labels::INSTANCE.to_owned(), shared.instance.clone());
        shared
            .docker
            .create_network(&NetworkSpec {
                name: docker_name.clone(),
                driver: "bridge".into(),
                internal: false,
                subnet: subnet.clone(),
                labels: labels_map,
            })
            .await
            .map(|_| ())
    };
    if outcome.is_err() && !exists {
        // Docker refused it (a subnet another nanocld took meanwhile, say): the claim goes,
        // and the retry claims a subnet Docker does not hold.
        subnets::release(&shared.store, &owner).await?;
    }
    if outcome.is_ok() && !exists {
        super::events::record(
            &shared.store,
            &object,
            false,
            "NetworkCreated",
            format!("created default network {docker_name}"),
        )
        .await;
    }
    let (ready, reason, message) = match outcome {
        Ok(()) => (true, "NetworkReady", format!("default network {docker_name} exists")),
        Err(DockerError::NameConflict { .. }) => (
            false,
            "NameConflict",
            format!("a Docker network named {docker_name} exists and is not managed by nanocl; it is left alone"),
        ),
        Err(e @ DockerError::AddressPoolsExhausted { .. }) => {
            let message = format!("{e}; remove unused Docker networks or give dockerd more default-address-pools");
            super::events::record(&shared.store, &object, true, "AddressPoolsExhausted", message.clone()).await;
            (false, "AddressPoolsExhausted", message)
        }
        Err(e) => return Err(e.into()),
    };
    // Out of address pools: try again later (a network elsewhere may be removed meanwhile).
    let next = if reason == "AddressPoolsExhausted" {
        Action::Requeue(Duration::from_secs(30))
    } else {
        Action::AwaitChange
    };
    let status = ClusterStatus {
        observed_generation: cluster.metadata.generation,
        subnet: subnet.filter(|_| ready),
        conditions: vec![
            condition(
                "Ready",
                ready,
                reason,
                message.clone(),
                cluster.metadata.generation,
                &previous,
            ),
            condition(
                "Degraded",
                !ready,
                if ready { "AsExpected" } else { reason },
                if ready { String::new() } else { message },
                cluster.metadata.generation,
                &previous,
            ),
        ],
    };
    write::patch_status(
        &shared.store,
        &object,
        &write::owners::CLUSTER,
        serde_json::to_value(&status).unwrap_or_default(),
    )
    .await?;
    Ok(next)
}

/// The pool has no subnet for the cluster's network: `Ready=False` with reason
/// `AddressPoolExhausted` and what to do, one Event, and a slow retry (a network removed
/// elsewhere frees one), not a hot loop.
async fn exhausted<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    cluster: &ClusterObject,
    object: &AnyObject,
    e: Exhausted,
) -> Result<Action, ReconcileError> {
    let previous = cluster.status.clone().unwrap_or_default().conditions;
    let message = e.to_string();
    super::events::record(
        &shared.store,
        object,
        true,
        "AddressPoolExhausted",
        message.clone(),
    )
    .await;
    let generation = cluster.metadata.generation;
    let status = ClusterStatus {
        observed_generation: generation,
        subnet: None,
        conditions: vec![
            condition(
                "Ready",
                false,
                "AddressPoolExhausted",
                message.clone(),
                generation,
                &previous,
            ),
            condition(
                "Degraded",
                true,
                "AddressPoolExhausted",
                message,
                generation,
                &previous,
            ),
        ],
    };
    write::patch_status(
        &shared.store,
        object,
        &write::owners::CLUSTER,
        serde_json::to_value(&status).unwrap_or_default(),
    )
    .await?;
    Ok(Action::Requeue(EXHAUSTED_RETRY))
}

/// How soon a cluster or network whose pool ran out looks again.
pub const EXHAUSTED_RETRY: Duration = Duration::from_secs(60);
