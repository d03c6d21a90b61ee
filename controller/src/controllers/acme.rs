//! Certificates over ACME for the `tls` entries of ProxyRules that ask for them (`acme:
//! true`), on the leader: an http-01 order for the entry's hosts, its challenges put in the
//! rule's status (which every node's proxy answers, on any http listener), the certificate
//! and its key kept in the Secret the entry names (created and labelled by nanocl, never a
//! Secret it did not create) and renewed a third of its lifetime before it expires, 30 days
//! at most. A failure is said in the rule's status and a Warning Event, and tried again with
//! a growing delay (1 minute to 1 hour); the certificate in place keeps serving.
//!
//! ACME client: instant-acme (RFC 8555, maintained, on hyper and rustls like the rest of
//! nanocld); the account's credentials are kept in nanocld's state directory, one file per
//! ACME directory.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use nanocl_api_types::cluster::v1::Cluster as ClusterObject;
use nanocl_api_types::proxy_rule::v1::{
    AcmeCertificate, AcmeChallenge, ProxyRule as ProxyRuleObject, TlsCertificate,
};
use nanocl_api_types::secret::v1::{Secret as SecretObject, SecretSpec, SecretType};
use nanocl_api_types::Resource as _;

use super::{events, Action, ReconcileError, Shared};
use crate::docker::Docker;
use crate::objects::api::{Api, ObjectRef};
use crate::objects::status::owners;
use crate::store::Store;

/// Let's Encrypt's production directory: the default ACME server.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// The label on the Secrets nanocl keeps ACME certificates in: `namespace/rule`.
pub const ACME_LABEL: &str = "io.nanocl.acme";
/// The longest a certificate is kept before its expiry.
const RENEW_BEFORE_AT_MOST: Duration = Duration::from_secs(30 * 24 * 3600);
/// The first delay after a failed attempt; it doubles up to `RETRY_AT_MOST`.
const RETRY_FIRST: Duration = Duration::from_secs(60);
const RETRY_AT_MOST: Duration = Duration::from_secs(3600);

/// Where certificates come from (`nanocld --acme-*`).
#[derive(Clone, Debug)]
pub struct Config {
    /// The ACME server's directory URL.
    pub directory: String,
    /// A contact address for the account (expiry notices).
    pub email: Option<String>,
    /// A PEM file of the CA the ACME server's own HTTPS certificate is issued by, when it is
    /// not a public one (a private ACME server, Pebble).
    pub ca_file: Option<PathBuf>,
    /// Where the account's credentials are kept (`None`: a new account each start).
    pub state_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            directory: LETS_ENCRYPT.to_owned(),
            email: None,
            ca_file: None,
            state_dir: None,
        }
    }
}

/// The issuer: its configuration, its account once it has one, and the failures it waits
/// after.
#[derive(Default)]
pub struct Acme {
    config: Config,
    account: tokio::sync::Mutex<Option<Account>>,
    /// By `rule key/secret`: consecutive failures and when to try again.
    failures: Mutex<HashMap<String, (u32, SystemTime, String)>>,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Acme {
    /// An issuer with `config`.
    pub fn new(config: Config) -> Acme {
        Acme {
            config,
            ..Acme::default()
        }
    }

    /// The account: loaded from the state directory, else registered (and saved).
    async fn account(&self) -> Result<Account, String> {
        let mut cached = self.account.lock().await;
        if let Some(account) = cached.as_ref() {
            return Ok(account.clone());
        }
        let builder = || match &self.config.ca_file {
            Some(ca) => Account::builder_with_root(ca)
                .map_err(|e| format!("the ACME CA file {}: {e}", ca.display())),
            None => Account::builder().map_err(|e| e.to_string()),
        };
        let file = self.config.state_dir.as_ref().map(|dir| {
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(self.config.directory.as_bytes());
            let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            dir.join(format!("acme-account-{hex}.json"))
        });
        let saved = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|bytes| serde_json::from_slice::<AccountCredentials>(&bytes).ok());
        let account = match saved {
            Some(credentials) => builder()?
                .from_credentials(credentials)
                .await
                .map_err(|e| format!("the saved ACME account: {e}"))?,
            None => {
                let contact: Vec<String> = self
                    .config
                    .email
                    .iter()
                    .map(|e| format!("mailto:{e}"))
                    .collect();
                let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
                let (account, credentials) = builder()?
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.config.directory.clone(),
                        None,
                    )
                    .await
                    .map_err(|e| {
                        format!("registering an account at {}: {e}", self.config.directory)
                    })?;
                if let Some(file) = &file {
                    save_credentials(file, &credentials);
                }
                account
            }
        };
        *cached = Some(account.clone());
        Ok(account)
    }

    fn failed(&self, key: &str, message: &str) -> (u32, SystemTime) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = failures.get(key).map_or(0, |(n, _, _)| *n) + 1;
        let delay = RETRY_FIRST
            .saturating_mul(1 << (count - 1).min(6))
            .min(RETRY_AT_MOST);
        let at = SystemTime::now() + delay;
        failures.insert(key.to_owned(), (count, at, message.to_owned()));
        (count, at)
    }

    fn waiting(&self, key: &str) -> Option<(SystemTime, String)> {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failures
            .get(key)
            .filter(|(_, at, _)| *at > SystemTime::now())
            .map(|(_, at, m)| (*at, m.clone()))
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// Writes `credentials` to `file`, readable by its owner only.
fn save_credentials(file: &std::path::Path, credentials: &AccountCredentials) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let Ok(json) = serde_json::to_vec(credentials) else {
        return;
    };
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)
        .and_then(|mut f| f.write_all(&json));
    if let Err(e) = written {
        tracing::warn!(file = %file.display(), error = %e, "acme: cannot save the account; a new one is registered at the next start");
    }
}

/// A certificate's names and validity, read from its PEM chain's first certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validity {
    /// DNS names (lowercase).
    pub names: Vec<String>,
    /// Not valid before.
    pub not_before: SystemTime,
    /// Not valid after.
    pub not_after: SystemTime,
}

/// Reads the first certificate of `pem`.
pub fn validity(pem: &[u8]) -> Result<Validity, String> {
    use rustls_pki_types::pem::PemObject as _;
    let der = rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .next()
        .ok_or("no certificate")?
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let time = |t: x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        u64::try_from(secs)
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
            .unwrap_or(SystemTime::UNIX_EPOCH)
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    Ok(Validity {
        names,
        not_before: time(cert.validity().not_before),
        not_after: time(cert.validity().not_after),
    })
}

/// When a certificate valid from `not_before` to `not_after` is renewed: a third of its
/// lifetime before it expires, 30 days at most.
pub fn renew_after(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    not_after - (lifetime / 3).min(RENEW_BEFORE_AT_MOST)
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// What one `tls` entry with `acme` needs now.
enum Need {
    /// Its certificate is good until `renew`.
    Valid(Validity, SystemTime),
    /// A certificate is to be obtained (why, for the log).
    Issue(String),
    /// Nothing can be done: the Secret is someone else's.
    Blocked(String),
}

/// Whether the entry's Secret holds a certificate for `hosts` that is not due for renewal.
fn need<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    namespace: &str,
    rule: &str,
    entry: &TlsCertificate,
    hosts: &[String],
) -> Need {
    let at = ObjectRef::<SecretObject>::new(Some(namespace), &entry.secret);
    let Some(secret) = shared.hub.get(&at) else {
        return Need::Issue("no certificate yet".into());
    };
    if secret.metadata.labels.get(ACME_LABEL).map(String::as_str) != Some(rule) {
        return Need::Blocked(format!(
            "secret {:?} exists and is not the one nanocl keeps this rule's ACME certificate in (label {ACME_LABEL}={rule}): name another secret, or delete it",
            entry.secret
        ));
    }
    let Some(crt) = secret.spec.value("tls.crt") else {
        return Need::Issue("the secret has no tls.crt".into());
    };
    match validity(&crt) {
        Ok(v) => {
            let missing: Vec<&String> = hosts.iter().filter(|h| !v.names.contains(h)).collect();
            let renew = renew_after(v.not_before, v.not_after);
            if !missing.is_empty() {
                Need::Issue(format!("the certificate does not name {missing:?}"))
            } else if renew <= SystemTime::now() {
                Need::Issue(format!("due for renewal since {}", rfc3339(renew)))
            } else {
                Need::Valid(v, renew)
            }
        }
        Err(e) => Need::Issue(format!("tls.crt: {e}")),
    }
}

/// Obtains, renews and reports the ACME certificates of ProxyRule `key`.
pub async fn reconcile<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    key: &str,
) -> Result<Action, ReconcileError> {
    let Some(at) = ObjectRef::<ProxyRuleObject>::parse(key) else {
        return Ok(Action::AwaitChange);
    };
    let Some(rule) = shared.hub.get(&at) else {
        return Ok(Action::AwaitChange);
    };
    if rule.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let namespace = rule.metadata.namespace.clone().unwrap_or_default();
    let rule_key = format!("{namespace}/{}", rule.metadata.name);
    let vars: BTreeMap<String, String> = shared
        .hub
        .get(&ObjectRef::<ClusterObject>::new(
            Some(&namespace),
            &rule.spec.cluster,
        ))
        .map(|c| c.spec.variables.clone())
        .unwrap_or_default();
    let mut certificates = Vec::new();
    let mut next: Option<SystemTime> = None;
    let mut soonest = |t: SystemTime| {
        next = Some(next.map_or(t, |n: SystemTime| n.min(t)));
    };
    for entry in rule.spec.tls.iter().filter(|t| t.acme) {
        let rendered: Result<Vec<String>, String> = entry
            .hosts
            .iter()
            .map(|h| {
                nanocl_api_types::template::render(h, &vars)
                    .map(|h| h.to_ascii_lowercase())
                    .map_err(|e| format!("host {h:?}: {e}"))
            })
            .collect();
        let mut status = AcmeCertificate {
            secret: entry.secret.clone(),
            hosts: rendered.clone().unwrap_or_default(),
            ..AcmeCertificate::default()
        };
        let hosts = match rendered {
            Ok(h) => h,
            Err(e) => {
                status.state = "Failed".into();
                status.message = Some(e);
                certificates.push(status);
                continue;
            }
        };
        let failure_key = format!("{rule_key}/{}", entry.secret);
        match need(shared, &namespace, &rule_key, entry, &hosts) {
            Need::Valid(v, renew) => {
                status.state = "Valid".into();
                status.not_after = Some(rfc3339(v.not_after));
                status.renew_after = Some(rfc3339(renew));
                soonest(renew);
            }
            Need::Blocked(message) => {
                status.state = "Failed".into();
                status.message = Some(message);
            }
            Need::Issue(why) => {
                if let Some((at, message)) = shared.acme.waiting(&failure_key) {
                    status.state = "Failed".into();
                    status.message = Some(format!("{message}; next attempt at {}", rfc3339(at)));
                    soonest(at);
                } else {
                    tracing::info!(rule = %rule_key, secret = %entry.secret, ?hosts, %why, "acme: obtaining a certificate");
                    // Says it is being obtained (the certificates before it included).
                    status.state = "Issuing".into();
                    let mut issuing = certificates.clone();
                    issuing.push(status.clone());
                    write_status(shared, &rule, &issuing, &[]).await?;
                    match issue(shared, &rule, &issuing, &hosts).await {
                        Ok((chain, key)) => {
                            store_secret(
                                shared,
                                &namespace,
                                &rule_key,
                                &entry.secret,
                                &chain,
                                &key,
                            )
                            .await?;
                            shared.acme.succeeded(&failure_key);
                            let v = validity(chain.as_bytes()).ok();
                            let renew = v.as_ref().map(|v| renew_after(v.not_before, v.not_after));
                            status.state = "Valid".into();
                            status.not_after = v.map(|v| rfc3339(v.not_after));
                            status.renew_after = renew.map(rfc3339);
                            if let Some(r) = renew {
                                soonest(r);
                            }
                            record(
                                shared,
                                &rule,
                                false,
                                "CertificateIssued",
                                format!(
                                    "certificate for {} obtained from {} and kept in secret {:?}{}",
                                    hosts.join(", "),
                                    shared.acme.config.directory,
                                    entry.secret,
                                    status
                                        .not_after
                                        .as_deref()
                                        .map(|n| format!(", valid until {n}"))
                                        .unwrap_or_default()
                                ),
                            )
                            .await;
                        }
                        Err(message) => {
                            let (count, at) = shared.acme.failed(&failure_key, &message);
                            status.state = "Failed".into();
                            status.message = Some(format!(
                                "{message}; attempt {count}, next at {}",
                                rfc3339(at)
                            ));
                            soonest(at);
                            record(
                                shared,
                                &rule,
                                true,
                                "AcmeFailed",
                                format!(
                                    "certificate for {} not obtained: {message}",
                                    hosts.join(", ")
                                ),
                            )
                            .await;
                        }
                    }
                }
            }
        }
        certificates.push(status);
    }
    // The rule as it is now (the status just written included).
    let rule = shared.hub.get(&at).unwrap_or(rule);
    write_status(shared, &rule, &certificates, &[]).await?;
    Ok(match next {
        Some(t) => Action::Requeue(
            t.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_secs(1))
                // A timer that long is no promise: the resync comes before anyway.
                .min(Duration::from_secs(24 * 3600)),
        ),
        None => Action::AwaitChange,
    })
}

/// Writes the rule's ACME status, and the generation it was acted on, when they differ.
async fn write_status<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    rule: &ProxyRuleObject,
    certificates: &[AcmeCertificate],
    challenges: &[AcmeChallenge],
) -> Result<(), ReconcileError> {
    let current = rule.status.clone().unwrap_or_default();
    let generation = rule.metadata.generation;
    if current.certificates == certificates
        && current.challenges == challenges
        && current.observed_generation == generation
    {
        return Ok(());
    }
    let patch = serde_json::json!({
        "observedGeneration": generation,
        "certificates": certificates,
        "challenges": challenges,
    });
    let mut patch = patch;
    if let Some(o) = patch.as_object_mut() {
        o.retain(|_, v| !v.as_array().is_some_and(Vec::is_empty));
    }
    let api: Api<ProxyRuleObject, S> = Api::new(shared.store.clone());
    match api
        .patch_status(rule, &owners::PROXY_RULE_ACME, &patch)
        .await
    {
        Ok(()) => Ok(()),
        Err(crate::objects::ObjectError::Store(crate::store::StoreError::NotFound { .. })) => {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

async fn record<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    rule: &ProxyRuleObject,
    warning: bool,
    reason: &str,
    message: String,
) {
    if warning {
        tracing::warn!(rule = %rule.metadata.name, reason, %message, "acme");
    }
    events::record(
        &shared.store,
        &ProxyRuleObject::clone(rule).into_any(),
        warning,
        reason,
        message,
    )
    .await;
}

/// One order for `hosts`: each pending authorization's http-01 challenge published in the
/// rule's status, answered by the proxies, then the certificate. The chain and the key, PEM.
async fn issue<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    rule: &ProxyRuleObject,
    certificates: &[AcmeCertificate],
    hosts: &[String],
) -> Result<(String, String), String> {
    let account = shared.acme.account().await?;
    let identifiers: Vec<Identifier> = hosts.iter().map(|h| Identifier::Dns(h.clone())).collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| format!("new order at {}: {e}", shared.acme.config.directory))?;
    let mut challenges: Vec<AcmeChallenge> = Vec::new();
    let mut ready: Vec<String> = Vec::new();
    {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(|e| format!("authorization: {e}"))?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(format!(
                        "authorization for {} is {other:?}",
                        authorization.identifier()
                    ))
                }
            }
            let name = authorization.identifier().to_string();
            let mut challenge = authorization
                .challenge(ChallengeType::Http01)
                .ok_or_else(|| format!("the ACME server offers no http-01 challenge for {name}"))?;
            challenges.push(AcmeChallenge {
                token: challenge.token.clone(),
                key_authorization: challenge.key_authorization().as_str().to_owned(),
            });
            // Published, and in the caches (every node's proxy reads its own) before the
            // server is told to check.
            let current = shared
                .hub
                .get(&ObjectRef::<ProxyRuleObject>::of(rule))
                .map_or_else(|| rule.clone(), |r| ProxyRuleObject::clone(&r));
            write_status(shared, &current, certificates, &challenges)
                .await
                .map_err(|e| format!("publishing the challenge: {e}"))?;
            let token = challenges
                .last()
                .map(|c| c.token.clone())
                .unwrap_or_default();
            published(shared, rule, &token).await;
            challenge
                .set_ready()
                .await
                .map_err(|e| format!("challenge for {name}: {e}"))?;
            ready.push(name);
        }
    }
    let status = order
        .poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(90)))
        .await
        .map_err(|e| {
            format!(
                "waiting for the ACME server to check {}: {e}",
                ready.join(", ")
            )
        })?;
    if status != OrderStatus::Ready {
        return Err(why_invalid(&mut order, status).await);
    }
    let key = order
        .finalize()
        .await
        .map_err(|e| format!("finalizing the order: {e}"))?;
    let chain = order
        .poll_certificate(&RetryPolicy::new().timeout(Duration::from_secs(90)))
        .await
        .map_err(|e| format!("downloading the certificate: {e}"))?;
    Ok((chain, key))
}

/// Waits (5 s at most) until this node's cache has the rule's challenge `token`, and a
/// moment more for the other nodes'.
async fn published<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    rule: &ProxyRuleObject,
    token: &str,
) {
    let at = ObjectRef::<ProxyRuleObject>::of(rule);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        let seen = shared.hub.get(&at).is_some_and(|r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.challenges.iter().any(|c| c.token == token))
        });
        if seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Why an order did not become ready: the ACME server's word on each challenge.
async fn why_invalid(order: &mut instant_acme::Order, status: OrderStatus) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authorization)) = authorizations.next().await {
        let name = authorization.identifier().to_string();
        for c in &authorization.challenges {
            if let Some(problem) = &c.error {
                reasons.push(format!(
                    "{name}: {}",
                    problem
                        .detail
                        .clone()
                        .unwrap_or_else(|| problem.to_string())
                ));
            }
        }
    }
    if reasons.is_empty() {
        format!("the order is {status:?}")
    } else {
        format!("the order is {status:?}: {}", reasons.join("; "))
    }
}

/// Creates or updates the Secret `name` with the certificate, labelled as the rule's.
async fn store_secret<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    namespace: &str,
    rule_key: &str,
    name: &str,
    chain: &str,
    key: &str,
) -> Result<(), ReconcileError> {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let data: BTreeMap<String, String> = [
        ("tls.crt".to_owned(), b64(chain)),
        ("tls.key".to_owned(), b64(key)),
    ]
    .into();
    let api: Api<SecretObject, S> = Api::new(shared.store.clone());
    let at = ObjectRef::<SecretObject>::new(Some(namespace), name);
    match api.get(&at).await? {
        Some(current) => {
            let mut next = current.clone();
            next.spec.data = data;
            next.spec.type_ = Some(SecretType::Tls);
            api.replace(&current, &next).await?;
        }
        None => {
            let mut secret = SecretObject::new(
                nanocl_api_types::V1,
                "Secret",
                name,
                Some(namespace),
                SecretSpec {
                    type_: Some(SecretType::Tls),
                    data,
                    ..SecretSpec::default()
                },
            );
            secret
                .metadata
                .labels
                .insert(ACME_LABEL.to_owned(), rule_key.to_owned());
            api.create(&secret).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_should_be_renewed_a_third_of_its_life_before_expiry_and_30_days_at_most() {
        let day = Duration::from_secs(24 * 3600);
        let start = SystemTime::UNIX_EPOCH + 1000 * day;
        // Let's Encrypt's 90 days: 30 days before.
        assert_eq!(renew_after(start, start + 90 * day), start + 60 * day);
        // A short-lived one (6 days): 2 days before.
        assert_eq!(renew_after(start, start + 6 * day), start + 4 * day);
        // Five years: still 30 days before.
        assert_eq!(renew_after(start, start + 1825 * day), start + 1795 * day);
    }

    #[test]
    fn a_certificate_should_be_read_for_its_names_and_validity() {
        let key = rcgen::KeyPair::generate().expect("a key");
        let cert = rcgen::CertificateParams::new(vec!["Shop.Example.com".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("a certificate");
        let v = validity(cert.pem().as_bytes()).expect("read");
        assert_eq!(v.names, ["shop.example.com"]);
        assert!(v.not_after > v.not_before);
        assert!(validity(b"nothing").is_err());
    }
}
