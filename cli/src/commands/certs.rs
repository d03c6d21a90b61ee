//! `nanocl certs init|issue`: a CA and the certificates of mutual TLS, with rcgen.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};

use crate::args::{CertRole, CertsArgs, CertsCommand, CertsInitArgs, CertsIssueArgs};
use crate::Outcome;

/// The directory of the CA and the certificates.
fn dir(args: &CertsArgs) -> PathBuf {
    args.dir
        .clone()
        .unwrap_or_else(|| crate::context::config_dir().join("pki"))
}

/// Writes `text` to `path` with `mode`, refusing to replace a file unless `force`.
fn write_new(path: &Path, text: &str, mode: u32, force: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() && !force {
        bail!(
            "{} exists; give --force to replace it (or another --dir)",
            path.display()
        );
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Valid from a minute ago (clocks differ a little) for `days`.
fn validity(params: &mut CertificateParams, days: u32) -> anyhow::Result<()> {
    if days == 0 {
        bail!("--days must be at least 1");
    }
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(i64::from(days));
    let mut serial = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut serial);
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(())
}

fn named(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn init(dir: &Path, args: &CertsInitArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    if cert_path.exists() || key_path.exists() {
        bail!(
            "a CA is already in {}: it is never replaced (every certificate it signed would stop working); give another --dir for a new one",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key = KeyPair::generate().context("cannot generate the CA's key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = named(&args.name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, args.days)?;
    let cert = params.self_signed(&key).context("cannot sign the CA")?;
    write_new(&key_path, &key.serialize_pem(), 0o600, false)?;
    write_new(&cert_path, &cert.pem(), 0o644, false)?;
    writeln!(out, "CA created: {}", cert_path.display())?;
    writeln!(
        out,
        "its key: {} (keep it safe: whoever has it can issue certificates)",
        key_path.display()
    )?;
    Ok(Outcome::Success)
}

fn issue(dir: &Path, args: &CertsIssueArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let (ca_path, ca_key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    let ca_pem = std::fs::read_to_string(&ca_path).with_context(|| {
        format!(
            "cannot read the CA {} (create one with `nanocl certs init`, or give --dir)",
            ca_path.display()
        )
    })?;
    let ca_key_pem = std::fs::read_to_string(&ca_key_path)
        .with_context(|| format!("cannot read the CA's key {}", ca_key_path.display()))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem)
        .with_context(|| format!("{}: not a PEM private key", ca_key_path.display()))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)
        .with_context(|| format!("{}: not a CA certificate", ca_path.display()))?;

    let (name, mut sans, usages, file) = match args.role {
        CertRole::Server => {
            let Some(first) = args.name.clone().or_else(|| args.sans.first().cloned()) else {
                bail!("a server certificate needs the names or IPs clients reach nanocld at: --san NAME|IP (repeatable)");
            };
            (
                first,
                args.sans.clone(),
                // nanocld shows it to other nodes' nanocld too (fetching images).
                vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ],
                "server".to_owned(),
            )
        }
        CertRole::Client => {
            let Some(user) = args.name.clone() else {
                bail!("a client certificate needs its user: `nanocl certs issue client NAME`");
            };
            if !args.sans.is_empty() {
                bail!("--san is for server certificates; a client certificate names its user only");
            }
            if user.trim().is_empty() || user.contains(['/', '\0']) || user.starts_with('.') {
                bail!("{user:?} cannot be a user name: it names the files DIR/NAME.pem too");
            }
            (
                user.clone(),
                Vec::new(),
                vec![ExtendedKeyUsagePurpose::ClientAuth],
                user,
            )
        }
    };
    if args.role == CertRole::Server {
        for local in ["127.0.0.1", "localhost"] {
            if !sans.iter().any(|s| s == local) {
                sans.push(local.to_owned());
            }
        }
    }
    let mut params = CertificateParams::new(sans.clone())
        .with_context(|| format!("--san {}: not a DNS name or an IP", sans.join(", ")))?;
    params.distinguished_name = named(&name);
    params.extended_key_usages = usages;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, args.days)?;
    let key = KeyPair::generate().context("cannot generate a key")?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("cannot sign the certificate")?;
    let (cert_path, key_path) = (
        dir.join(format!("{file}.pem")),
        dir.join(format!("{file}-key.pem")),
    );
    write_new(&key_path, &key.serialize_pem(), 0o600, args.force)?;
    write_new(&cert_path, &cert.pem(), 0o644, args.force)?;
    match args.role {
        CertRole::Server => writeln!(
            out,
            "server certificate for {}: {} (key {})",
            sans.join(", "),
            cert_path.display(),
            key_path.display()
        )?,
        CertRole::Client => writeln!(
            out,
            "client certificate of user {name:?}: {} (key {})",
            cert_path.display(),
            key_path.display()
        )?,
    }
    Ok(Outcome::Success)
}

/// Runs `nanocl certs`.
pub fn run(args: &CertsArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let dir = dir(args);
    match &args.command {
        CertsCommand::Init(init_args) => init(&dir, init_args, out),
        CertsCommand::Issue(issue_args) => issue(&dir, issue_args, out),
    }
}
