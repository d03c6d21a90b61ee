//! The git client nanocld builds from: the `git` program, run with no terminal, no prompt
//! and arguments it can never read as options. It reaches whatever the host's git reaches
//! (`https://`, `ssh://`, `git://`, `file://`, a local path) with the host's configuration.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

/// Why a git operation failed; the message names the URL, the ref or the path.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The repository could not be read (unreachable, not a repository, refused).
    #[error("cannot read the git repository {url}: {message}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What git said (its last lines).
        message: String,
    },
    /// The ref names no branch or tag of the repository.
    #[error("no branch or tag {reference:?} in {url}{known}")]
    UnknownRef {
        /// The URL.
        url: String,
        /// The ref asked for.
        reference: String,
        /// Some of its branches, for the message.
        known: String,
    },
    /// The commit could not be fetched.
    #[error("cannot fetch {what} from {url}: {message}")]
    Fetch {
        /// The URL.
        url: String,
        /// The ref or commit.
        what: String,
        /// What git said.
        message: String,
    },
    /// `git` could not be run at all.
    #[error("cannot run git ({program}): {message}; install git on the nanocld host")]
    Missing {
        /// The program.
        program: String,
        /// Why.
        message: String,
    },
}

/// What a ref resolved to: the commit, and what to fetch to get it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The full commit id.
    pub commit: String,
    /// The ref to fetch (a full ref name, or the commit itself).
    pub fetch: String,
}

/// How to authenticate to the repository (from a Secret). Never on a command line (other
/// users could read it in the process list): in git's environment, and in files only
/// nanocld's user can read, removed with the value.
#[derive(Default)]
pub struct Credentials {
    /// `Authorization: Basic` for http(s): username and password (or token).
    pub basic: Option<(String, String)>,
    /// An ssh private key, written to a file of mode 0600 while git runs.
    pub ssh_key: Option<tempfile::NamedTempFile>,
    /// `known_hosts` for ssh: without it, the server's key is accepted on first sight.
    pub known_hosts: Option<tempfile::NamedTempFile>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values.
        f.debug_struct("Credentials")
            .field("basic", &self.basic.is_some())
            .field("ssh_key", &self.ssh_key.is_some())
            .field("known_hosts", &self.known_hosts.is_some())
            .finish()
    }
}

impl Credentials {
    /// From a secret's keys: `username`, `password` or `token`, `ssh-privatekey`,
    /// `known_hosts`.
    pub fn from_secret(value: impl Fn(&str) -> Option<Vec<u8>>) -> std::io::Result<Credentials> {
        let text = |key: &str| value(key).map(|v| String::from_utf8_lossy(&v).trim().to_owned());
        let password = text("password").or_else(|| text("token"));
        let basic = password.map(|p| (text("username").unwrap_or_else(|| "nanocl".to_owned()), p));
        let file = |bytes: Vec<u8>| -> std::io::Result<tempfile::NamedTempFile> {
            use std::io::Write;
            // tempfile makes it 0600.
            let mut f = tempfile::Builder::new().prefix("nanocl-git-").tempfile()?;
            f.write_all(&bytes)?;
            if !bytes.ends_with(b"\n") {
                f.write_all(b"\n")?;
            }
            f.flush()?;
            Ok(f)
        };
        Ok(Credentials {
            basic,
            ssh_key: value("ssh-privatekey").map(file).transpose()?,
            known_hosts: value("known_hosts").map(file).transpose()?,
        })
    }
}

fn git(credentials: &Credentials) -> Command {
    use base64::Engine as _;
    let mut command = Command::new("git");
    command
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env("SSH_ASKPASS", "true")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let mut ssh = "ssh -o BatchMode=yes".to_owned();
    if let Some(key) = &credentials.ssh_key {
        ssh.push_str(&format!(
            " -o IdentitiesOnly=yes -i '{}'",
            key.path().display()
        ));
    }
    match &credentials.known_hosts {
        Some(hosts) => ssh.push_str(&format!(
            " -o StrictHostKeyChecking=yes -o UserKnownHostsFile='{}'",
            hosts.path().display()
        )),
        None if credentials.ssh_key.is_some() => {
            ssh.push_str(" -o StrictHostKeyChecking=accept-new");
        }
        None => {}
    }
    command.env("GIT_SSH_COMMAND", ssh);
    if let Some((user, password)) = &credentials.basic {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        // Configuration through the environment (git 2.31+), never the command line.
        command
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env(
                "GIT_CONFIG_VALUE_0",
                format!("Authorization: Basic {token}"),
            );
    }
    command
}

/// The last few lines git printed on stderr, for a message.
fn last_lines(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // git's own verdicts say why (e.g. "detected dubious ownership" before a generic "could
    // not read"); the last lines otherwise.
    let verdicts: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("fatal:") || l.starts_with("error:"))
        .take(3)
        .collect();
    if !verdicts.is_empty() {
        return verdicts.join("; ");
    }
    let start = lines.len().saturating_sub(3);
    lines[start..].join("; ")
}

async fn run(mut command: Command) -> Result<std::process::Output, GitError> {
    command.output().await.map_err(|e| GitError::Missing {
        program: "git".into(),
        message: e.to_string(),
    })
}

/// Whether `s` is a full commit id.
pub fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Resolves `reference` (a branch, a tag, a full ref name or a commit id; the remote's HEAD
/// when `None`) at `url` to a commit, asking the remote (`git ls-remote`).
pub async fn resolve(
    url: &str,
    reference: Option<&str>,
    credentials: &Credentials,
) -> Result<Resolved, GitError> {
    let mut command = git(credentials);
    command.args(["ls-remote", "--", url]);
    let out = run(command).await?;
    if !out.status.success() {
        return Err(GitError::Unreachable {
            url: url.to_owned(),
            message: last_lines(&out.stderr),
        });
    }
    let listing = String::from_utf8_lossy(&out.stdout);
    let refs: Vec<(&str, &str)> = listing.lines().filter_map(|l| l.split_once('\t')).collect();
    let find = |name: &str| refs.iter().find(|(_, r)| *r == name).map(|(c, _)| *c);
    let found = match reference {
        None => find("HEAD").map(|c| (c, "HEAD".to_owned())),
        Some(r) if is_commit(r) => Some((r, r.to_owned())),
        Some(r) => {
            let heads = format!("refs/heads/{r}");
            let tags = format!("refs/tags/{r}");
            // An annotated tag's commit is its peeled entry.
            find(&heads)
                .map(|c| (c, heads.clone()))
                .or_else(|| find(&format!("{tags}^{{}}")).map(|c| (c, tags.clone())))
                .or_else(|| find(&tags).map(|c| (c, tags.clone())))
                .or_else(|| find(r).map(|c| (c, r.to_owned())))
        }
    };
    match found {
        Some((commit, fetch)) => Ok(Resolved {
            commit: commit.to_owned(),
            fetch,
        }),
        None => {
            let branches: Vec<&str> = refs
                .iter()
                .filter_map(|(_, r)| r.strip_prefix("refs/heads/"))
                .take(5)
                .collect();
            let known = if branches.is_empty() {
                " (it has no branches: is it empty?)".to_owned()
            } else {
                format!(" (its branches include {})", branches.join(", "))
            };
            Err(GitError::UnknownRef {
                url: url.to_owned(),
                reference: reference.unwrap_or("HEAD").to_owned(),
                known,
            })
        }
    }
}

/// Fetches `resolved` from `url` into a new repository at `dir` (only that commit, no
/// history where the server allows it) and checks it out; answers the commit checked out.
pub async fn fetch(
    url: &str,
    resolved: &Resolved,
    dir: &Path,
    credentials: &Credentials,
) -> Result<String, GitError> {
    let fetch_error = |message: String| GitError::Fetch {
        url: url.to_owned(),
        what: resolved.fetch.clone(),
        message,
    };
    let step = |args: &[&str]| {
        let mut command = git(credentials);
        command.arg("-C").arg(dir).args(args);
        command
    };
    let mut init = git(credentials);
    init.args(["init", "-q", "--"]).arg(dir);
    let out = run(init).await?;
    if !out.status.success() {
        return Err(fetch_error(last_lines(&out.stderr)));
    }
    let shallow = run(step(&[
        "fetch",
        "-q",
        "--depth",
        "1",
        "--no-tags",
        "--",
        url,
        &resolved.fetch,
    ]))
    .await?;
    if !shallow.status.success() {
        if !is_commit(&resolved.fetch) {
            return Err(fetch_error(last_lines(&shallow.stderr)));
        }
        // A commit that is no branch tip, from a server that only serves tips: every
        // branch and tag, then the commit among them.
        let full = run(step(&[
            "fetch",
            "-q",
            "--",
            url,
            "+refs/heads/*:refs/remotes/origin/*",
            "+refs/tags/*:refs/tags/*",
        ]))
        .await?;
        if !full.status.success() {
            return Err(fetch_error(last_lines(&full.stderr)));
        }
    }
    let target = if shallow.status.success() {
        "FETCH_HEAD"
    } else {
        resolved.fetch.as_str()
    };
    let checkout = run(step(&[
        "-c",
        "advice.detachedHead=false",
        "checkout",
        "-q",
        "--detach",
        target,
        "--",
    ]))
    .await?;
    if !checkout.status.success() {
        return Err(fetch_error(last_lines(&checkout.stderr)));
    }
    let head = run(step(&["rev-parse", "HEAD"])).await?;
    if !head.status.success() {
        return Err(fetch_error(last_lines(&head.stderr)));
    }
    Ok(String::from_utf8_lossy(&head.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, script: &str) {
        let ok = std::process::Command::new("sh")
            .args(["-ec", script])
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .status()
            .expect("sh")
            .success();
        assert!(ok, "{script}");
    }

    fn rev(dir: &Path, what: &str) -> String {
        let out = std::process::Command::new("git")
            .args(["rev-parse", what])
            .current_dir(dir)
            .output()
            .expect("git");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    #[tokio::test]
    async fn refs_should_resolve_and_fetch_with_clear_errors() {
        let repo = tempfile::tempdir().expect("tmp");
        sh(
            repo.path(),
            "git init -q -b main . && echo one > f && git add f && git commit -qm one \
             && git tag -a v1 -m v1 && echo two > f && git commit -qam two \
             && git checkout -qb other && echo three > f && git commit -qam three \
             && git checkout -q main",
        );
        let url = repo.path().display().to_string();
        let none = Credentials::default();
        let main = rev(repo.path(), "main");
        let first = rev(repo.path(), "v1^{commit}");
        let head = resolve(&url, None, &none).await.expect("HEAD");
        assert_eq!(head.commit, main);
        assert_eq!(
            resolve(&url, Some("main"), &none)
                .await
                .expect("main")
                .commit,
            main
        );
        let tag = resolve(&url, Some("v1"), &none).await.expect("tag");
        assert_eq!(tag.commit, first, "an annotated tag resolves to its commit");
        assert_eq!(
            resolve(&url, Some("other"), &none)
                .await
                .expect("other")
                .commit,
            rev(repo.path(), "other")
        );
        let unknown = resolve(&url, Some("nope"), &none)
            .await
            .expect_err("unknown");
        let text = unknown.to_string();
        assert!(text.contains("\"nope\"") && text.contains(&url), "{text}");
        assert!(text.contains("main"), "names a branch: {text}");
        let missing = resolve("/nonexistent/repo", None, &none)
            .await
            .expect_err("missing");
        assert!(
            missing.to_string().contains("/nonexistent/repo"),
            "{missing}"
        );

        // A tip, shallowly; then a commit that is no tip (the tag's, by id).
        let out = tempfile::tempdir().expect("tmp");
        let got = fetch(&url, &tag, &out.path().join("a"), &none)
            .await
            .expect("fetch");
        assert_eq!(got, first);
        assert_eq!(
            std::fs::read_to_string(out.path().join("a/f")).expect("f"),
            "one\n"
        );
        let by_id = Resolved {
            commit: first.clone(),
            fetch: first.clone(),
        };
        let file_url = format!("file://{url}");
        let got = fetch(&file_url, &by_id, &out.path().join("b"), &none)
            .await
            .expect("by id");
        assert_eq!(got, first);
    }
}
