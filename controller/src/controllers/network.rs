//! The Network controller: the Docker network `{network}.{cluster}.{namespace}`; removal waits
//! until the containers on it are gone.

use std::collections::BTreeMap;
use std::time::Duration;

use nanocl_api_types::network::v1::NetworkStatus;

use super::plan::{labels, network_name};
use super::subnets::{self, Assigned};
use super::write::{self, condition};
use super::{in_use, OwnerFilter, ReconcileError, Shared, FINALIZER};
use crate::docker::{Docker, DockerError, NetworkSpec};
use crate::objects::api::Api;
use crate::objects::api::ObjectRef;
use crate::runtime::finalizer::{finalizer, Event};
use crate::runtime::runner::Action;
use crate::store::Store;
use nanocl_api_types::cluster::v1::Cluster as ClusterObject;
use nanocl_api_types::network::v1::Network as NetworkObject;
use nanocl_api_types::Resource as _;

/// Reconciles one Network (`networks/{ns}/{name}`).
pub async fn reconcile<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    key: &str,
) -> Result<Action, ReconcileError> {
    let Some(network) = shared.hub.get_key::<NetworkObject>(key) else {
        return Ok(Action::AwaitChange);
    };
    let api = Api::new(shared.store.clone());
    finalizer(&api, FINALIZER, network, |event| {
        reconcile_event(shared, event)
    })
    .await
}

/// `Apply` converges Docker toward the network; `Cleanup` removes what it owns (`AwaitChange`
/// when done, which releases the finalizer).
async fn reconcile_event<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    event: Event<NetworkObject>,
) -> Result<Action, ReconcileError> {
    let (network, deleting) = event.into_parts();
    let network: &NetworkObject = &network;
    let object = network.clone().into_any();
    let namespace = network.metadata.namespace.clone().unwrap_or_default();
    let name = network.metadata.name.clone();
    let cluster = network.spec.cluster.clone();
    let docker_name = network_name(&name, &cluster, &namespace);
    let ours = OwnerFilter::instance(&shared.instance)
        .namespace(&namespace)
        .network(&name)
        .labels();
    let previous = network.status.clone().unwrap_or_default();
    let owner = ObjectRef::<NetworkObject>::of(network).store_key();
    let generation = network.metadata.generation;
    let status_of =
        |ready: bool, reason: &str, message: String, id: Option<String>| NetworkStatus {
            observed_generation: generation,
            network_id: id,
            subnet: None,
            conditions: vec![
                condition(
                    "Ready",
                    ready,
                    reason,
                    message.clone(),
                    generation,
                    &previous.conditions,
                ),
                condition(
                    "Degraded",
                    !ready && reason != "WaitingForContainers" && reason != "ClusterNotFound",
                    if ready { "AsExpected" } else { reason },
                    if ready { String::new() } else { message },
                    generation,
                    &previous.conditions,
                ),
            ],
        };
    if deleting {
        for n in shared.docker.list_networks(&ours).await? {
            if let Err(e) = shared.docker.remove_network(&n.id).await {
                if in_use(&e) {
                    let status = status_of(
                        false,
                        "WaitingForContainers",
                        format!("{docker_name} still has containers attached"),
                        Some(n.id.clone()),
                    );
                    save(shared, &object, &status).await?;
                    return Ok(Action::Requeue(Duration::from_secs(1)));
                }
                return Err(e.into());
            }
        }
        subnets::release(&shared.store, &owner).await?;
        return Ok(Action::AwaitChange);
    }
    if shared
        .hub
        .get(&ObjectRef::<ClusterObject>::new(Some(&namespace), &cluster))
        .is_none()
    {
        let status = status_of(
            false,
            "ClusterNotFound",
            format!("cluster {cluster:?} does not exist in namespace {namespace:?} (yet)"),
            None,
        );
        save(shared, &object, &status).await?;
        return Ok(Action::AwaitChange);
    }
    let existing = shared
        .docker
        .list_networks(&ours)
        .await?
        .into_iter()
        .find(|n| n.name == docker_name);
    let mut next = Action::AwaitChange;
    let status = match existing {
        Some(n) => {
            let mut status = status_of(
                true,
                "NetworkReady",
                format!("Docker network {docker_name} exists"),
                Some(n.id),
            );
            status.subnet =
                subnets::adopt_existing(shared.pool, &shared.store, &owner, &n.subnets).await?;
            status
        }
        None => {
            let explicit = network.spec.subnet.as_deref();
            let subnet =
                match subnets::assign(shared.pool, &shared.store, &shared.docker, &owner, explicit)
                    .await?
                {
                    Assigned::Subnet(s) => s,
                    Assigned::Exhausted(e) => {
                        let message = e.to_string();
                        super::events::record(
                            &shared.store,
                            &object,
                            true,
                            "AddressPoolExhausted",
                            message.clone(),
                        )
                        .await;
                        let status = status_of(false, "AddressPoolExhausted", message, None);
                        save(shared, &object, &status).await?;
                        return Ok(Action::Requeue(super::cluster::EXHAUSTED_RETRY));
                    }
                };
            let labels_map = BTreeMap::from([
                (labels::MANAGED.to_owned(), "true".to_owned()),
                (labels::NAMESPACE.to_owned(), namespace.clone()),
                (labels::CLUSTER.to_owned(), cluster.clone()),
                (labels::NETWORK.to_owned(), name.clone()),
                (labels::INSTANCE.to_owned(), shared.instance.clone()),
            ]);
            let spec = NetworkSpec {
                name: docker_name.clone(),
                driver: network
                    .spec
                    .driver
                    .clone()
                    .unwrap_or_else(|| "bridge".into()),
                internal: network.spec.internal,
                subnet: Some(subnet.clone()),
                labels: labels_map,
            };
            let created = shared.docker.create_network(&spec).await;
            if created.is_err() && explicit.is_none() {
                // Docker refused it (a subnet another nanocld took meanwhile, say): the claim
                // goes, and the retry claims a subnet Docker does not hold.
                subnets::release(&shared.store, &owner).await?;
            }
            match created {
                Ok(id) => {
                    super::events::record(&shared.store, &object, false, "NetworkCreated", format!("created Docker network {docker_name} ({subnet})")).await;
                    let mut status = status_of(true, "NetworkReady", format!("Docker network {docker_name} created"), Some(id));
                    status.subnet = Some(subnet);
                    status
                }
                Err(DockerError::NameConflict { .. }) => status_of(
                    false,
                    "NameConflict",
                    format!("a Docker network named {docker_name} exists and is not managed by nanocl; it is left alone"),
                    None,
                ),
                Err(e @ DockerError::AddressPoolsExhausted { .. }) => {
                    next = Action::Requeue(super::cluster::EXHAUSTED_RETRY);
                    status_of(false, "AddressPoolsExhausted", e.to_string(), None)
                }
                Err(DockerError::RequestFailed { message, .. }) => status_of(false, "CreateFailed", message, None),
                Err(e) => return Err(e.into()),
            }
        }
    };
    save(shared, &object, &status).await?;
    Ok(next)
}

/// Writes the Network controller's part of the status.
async fn save<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    object: &nanocl_api_types::AnyObject,
    status: &NetworkStatus,
) -> Result<(), ReconcileError> {
    write::patch_status(
        &shared.store,
        object,
        &write::owners::NETWORK,
        serde_json::to_value(status).unwrap_or_default(),
    )
    .await?;
    Ok(())
}
