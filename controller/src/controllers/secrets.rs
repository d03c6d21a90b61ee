//! Secrets in containers: a cargo's env `valueFrom` and `files` name a Secret's keys; the
//! values are read where the container is made (the node's replica runner, from its cache
//! of Secrets, opened in memory), never written into a Replica or any other object.
//!
//! The rendered Docker spec carries placeholders (`NAME=\0secret:S:K` in the env, and
//! `\0file:I:S:K:PATH` in the binds; a NUL never occurs in a real value), so its hash, and
//! so the revision, does not depend on the values; the `io.nanocl.secrets` label, a keyed
//! digest of every value used, does: a changed secret is a new revision, rolled out like
//! any change.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use nanocl_api_types::cargo::v1::{ContainerSpec as ApiContainerSpec, SecretFile, SecretKeyRef};
use nanocl_api_types::secret::v1::Secret as SecretObject;

use super::hub::Hub;
use super::plan::NotReady;
use crate::docker::ContainerSpec;
use crate::objects::api::ObjectRef;
use crate::objects::sealing;

/// Label of a container: the digest of the secret values it uses.
pub const DIGEST_LABEL: &str = "io.nanocl.secrets";

const ENV_PREFIX: &str = "\0secret:";
const FILE_PREFIX: &str = "\0file:";

/// The env value standing for a secret's key.
pub fn env_placeholder(from: &SecretKeyRef) -> String {
    format!("{ENV_PREFIX}{}:{}", from.secret, from.key)
}

/// The bind standing for secret file `i`.
pub fn file_placeholder(i: usize, f: &SecretFile) -> String {
    format!(
        "{FILE_PREFIX}{i}:{}:{}:{}",
        f.secret,
        f.key.as_deref().unwrap_or(""),
        f.path
    )
}

/// The names of the secrets `container` uses (its build's credentials included).
pub fn referenced(container: &ApiContainerSpec) -> BTreeSet<String> {
    container
        .env
        .values()
        .filter_map(|v| v.secret().map(|s| s.secret.clone()))
        .chain(container.files.iter().map(|f| f.secret.clone()))
        .chain(
            container
                .build
                .as_ref()
                .and_then(|b| b.git.as_ref())
                .and_then(|g| g.secret.clone()),
        )
        .collect()
}

fn secret(hub: &Hub, namespace: &str, name: &str) -> Option<std::sync::Arc<SecretObject>> {
    hub.get(&ObjectRef::<SecretObject>::new(Some(namespace), name))
}

/// The digest of every secret value `container` uses (`None` when it uses none), or why it
/// cannot run yet: a secret or a key that does not exist.
pub fn digest(
    hub: &Hub,
    namespace: &str,
    container: &ApiContainerSpec,
) -> Result<Option<String>, NotReady> {
    let mut material: Vec<u8> = Vec::new();
    let mut any = false;
    let missing_secret = |name: &str, used: &str| NotReady {
        reason: "SecretNotFound",
        message: format!(
            "secret {name:?} (used by {used}) does not exist in namespace {namespace:?}"
        ),
    };
    let missing_key = |name: &str, key: &str, used: &str| NotReady {
        reason: "SecretKeyNotFound",
        message: format!("secret {name:?} has no key {key:?} (used by {used})"),
    };
    for (env, value) in &container.env {
        let Some(from) = value.secret() else { continue };
        any = true;
        let used = format!("env {env}");
        let s = secret(hub, namespace, &from.secret)
            .ok_or_else(|| missing_secret(&from.secret, &used))?;
        let v = s
            .spec
            .value(&from.key)
            .ok_or_else(|| missing_key(&from.secret, &from.key, &used))?;
        material
            .extend_from_slice(format!("env\0{env}\0{}\0{}\0", from.secret, from.key).as_bytes());
        material.extend_from_slice(&v);
    }
    for f in &container.files {
        any = true;
        let used = format!("file {}", f.path);
        let s =
            secret(hub, namespace, &f.secret).ok_or_else(|| missing_secret(&f.secret, &used))?;
        material.extend_from_slice(format!("file\0{}\0{}\0", f.secret, f.path).as_bytes());
        match &f.key {
            Some(key) => {
                let v = s
                    .spec
                    .value(key)
                    .ok_or_else(|| missing_key(&f.secret, key, &used))?;
                material.extend_from_slice(&v);
            }
            None => {
                for key in s.spec.data.keys() {
                    material.extend_from_slice(key.as_bytes());
                    material.push(0);
                    material.extend_from_slice(&s.spec.value(key).unwrap_or_default());
                }
            }
        }
    }
    Ok(any.then(|| sealing::keyring().digest(&material)))
}

/// Why a container's secrets could not be put in place.
#[derive(Debug)]
pub struct Unresolved {
    /// `SecretNotFound`, `SecretKeyNotFound`, `SecretNotText` or `SecretFilesFailed`.
    pub reason: &'static str,
    /// For people (never a value).
    pub message: String,
}

/// Replaces the placeholders of `spec` (a container about to be created) with the secrets'
/// values: env values, and files written under `root/{container name}` (mode 0444 in
/// directories only the owner may list), bound read-only.
pub fn resolve(
    hub: &Hub,
    namespace: &str,
    spec: &mut ContainerSpec,
    root: &Path,
) -> Result<(), Unresolved> {
    let lookup = |name: &str, key: &str, used: &str| -> Result<Vec<u8>, Unresolved> {
        let s = secret(hub, namespace, name).ok_or_else(|| Unresolved {
            reason: "SecretNotFound",
            message: format!(
                "secret {name:?} (used by {used}) does not exist in namespace {namespace:?}"
            ),
        })?;
        s.spec.value(key).ok_or_else(|| Unresolved {
            reason: "SecretKeyNotFound",
            message: format!("secret {name:?} has no key {key:?} (used by {used})"),
        })
    };
    for entry in &mut spec.env {
        let Some((name, value)) = entry.split_once('=') else {
            continue;
        };
        let Some(reference) = value.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let Some((secret_name, key)) = reference.split_once(':') else {
            continue;
        };
        let bytes = lookup(secret_name, key, &format!("env {name}"))?;
        let text = String::from_utf8(bytes).map_err(|_| Unresolved {
            reason: "SecretNotText",
            message: format!("secret {secret_name:?} key {key:?} is not UTF-8 text, so it cannot be the value of env {name} (mount it as a file)"),
        })?;
        if text.contains('\0') {
            return Err(Unresolved {
                reason: "SecretNotText",
                message: format!("secret {secret_name:?} key {key:?} holds a NUL byte, which env {name} cannot (mount it as a file)"),
            });
        }
        *entry = format!("{name}={text}");
    }
    let dir = root.join(&spec.name);
    for bind in &mut spec.binds {
        let Some(rest) = bind.strip_prefix(FILE_PREFIX) else {
            continue;
        };
        let mut parts = rest.splitn(4, ':');
        let (Some(index), Some(secret_name), Some(key), Some(path)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let used = format!("file {path}");
        let target = dir.join(index);
        let failed = |e: std::io::Error| Unresolved {
            reason: "SecretFilesFailed",
            message: format!(
                "writing the files of secret {secret_name:?} under {}: {e}",
                target.display()
            ),
        };
        write_private_dir(root).map_err(failed)?;
        recreate_dir(&target).map_err(failed)?;
        let source: PathBuf = if key.is_empty() {
            let s = secret(hub, namespace, secret_name).ok_or_else(|| Unresolved {
                reason: "SecretNotFound",
                message: format!("secret {secret_name:?} (used by {used}) does not exist in namespace {namespace:?}"),
            })?;
            for k in s.spec.data.keys() {
                write_file(&target.join(k), &s.spec.value(k).unwrap_or_default())
                    .map_err(failed)?;
            }
            target.clone()
        } else {
            let bytes = lookup(secret_name, key, &used)?;
            let file = target.join(key);
            write_file(&file, &bytes).map_err(failed)?;
            file
        };
        *bind = format!("{}:{path}:ro", source.display());
    }
    Ok(())
}

/// `root`: made if missing, listable by its owner only (the files under it are the
/// containers' to read through their binds, nobody else's).
fn write_private_dir(root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root)?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
}

fn recreate_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444))
}

/// Removes the secret files of containers that no longer exist (`live`: the names of the
/// containers of this node).
pub fn collect_files(root: &Path, live: &BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // A container being made right now is not listed yet: its files are young.
        let young = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < std::time::Duration::from_secs(120));
        if !live.contains(&name) && !young {
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(path = %entry.path().display(), error = %e, "removing the secret files of a container that is gone failed");
            }
        }
    }
}

/// The Secret controller: seals a secret again when it was sealed with an older key than
/// the current one (after a rotation of the key file). Nothing else is done with secrets:
/// the cargoes that use one follow its changes (`Hub::related`).
pub async fn reconcile<S: crate::store::Store + Clone, D: crate::docker::Docker>(
    shared: &super::Shared<S, D>,
    key: &str,
) -> Result<crate::runtime::runner::Action, super::ReconcileError> {
    use crate::runtime::runner::Action;
    let Some(kv) = shared.store.get(key).await? else {
        return Ok(Action::AwaitChange);
    };
    if !crate::objects::needs_resealing(&kv) {
        return Ok(Action::AwaitChange);
    }
    // Not openable (a key missing from the key file) stays as it is: never lost.
    let Ok(stored) = crate::objects::decode(&kv) else {
        return Ok(Action::AwaitChange);
    };
    let bytes = crate::objects::encode(&stored.object)?;
    match shared.store.update(key, bytes, kv.mod_revision).await {
        Ok(_) => {
            tracing::info!(%key, "sealed a secret again with the current key");
            Ok(Action::AwaitChange)
        }
        // Written meanwhile (with the current key): done either way.
        Err(
            crate::store::StoreError::Conflict { .. } | crate::store::StoreError::NotFound { .. },
        ) => Ok(Action::AwaitChange),
        Err(e) => Err(e.into()),
    }
}
