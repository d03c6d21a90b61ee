//! What the subresources that read a cargo's containers share (`log`, `exec`, `usage`): the
//! cargo must exist, then this nanocld's Docker and the cargo's containers on it.

use nanocl_api_types::{Kind, ObjectKey};

use super::objects::{self, Stored};
use super::path::Target;
use super::status::ApiError;
use super::App;
use crate::controllers::owner::OwnerFilter;
use crate::docker::{Container, Docker, Engine};
use crate::store::Store;

/// The stored cargo `name` of `target`'s namespace: `what` (`logs are served`) names the
/// subresource when the path is of another kind.
pub async fn require<S: Store>(
    app: &App<S>,
    target: &Target,
    name: &str,
    what: &str,
) -> Result<(ObjectKey, Stored), ApiError> {
    if target.kind != Kind::Cargo {
        return Err(ApiError::not_found(format!("{what} for cargoes only")));
    }
    let namespace = target.namespace.clone().unwrap_or_default();
    let key = ObjectKey {
        kind: Kind::Cargo,
        namespace: Some(namespace.clone()),
        name: name.to_owned(),
    };
    match objects::read(&app.store, &key).await? {
        Some(stored) => Ok((key, stored)),
        None => Err(ApiError::not_found(format!(
            "cargo {name:?} not found in namespace {namespace:?}"
        ))),
    }
}

/// This nanocld's Docker, the label filter of cargo `key`'s containers and those containers
/// (any state); `doing` (`logs come from`) says what Docker was needed for.
pub async fn containers<S: Store>(
    app: &App<S>,
    key: &ObjectKey,
    doing: &str,
) -> Result<(Engine, Vec<String>, Vec<Container>), ApiError> {
    let docker = Engine::connect().await.map_err(|e| {
        ApiError::unavailable(format!("{doing} Docker, which is not reachable: {e}"))
    })?;
    let instance = crate::controllers::instance_id(&app.store).await?;
    let filter = OwnerFilter::instance(&instance)
        .namespace(key.namespace.as_deref().unwrap_or_default())
        .cargo(&key.name)
        .labels();
    let listed = docker
        .list_containers(&filter)
        .await
        .map_err(|e| ApiError::unavailable(format!("listing the replicas failed: {e}")))?;
    Ok((docker, filter, listed))
}
