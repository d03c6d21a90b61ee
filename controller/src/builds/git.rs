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

fn git() -> Command {
    let mut command = Command::new("git");
    command
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env("SSH_ASKPASS", "true")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .kill_on_drop(true);
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
pub async fn resolve(url: &str, reference: Option<&str>) -> Result<Resolved, GitError> {
    let mut command = git();
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
pub async fn fetch(url: &str, resolved: &Resolved, dir: &Path) -> Result<String, GitError> {
    let fetch_error = |message: String| GitError::Fetch {
        url: url.to_owned(),
        what: resolved.fetch.clone(),
        message,
    };
    let step = |args: &[&str]| {
        let mut command = git();
        command.arg("-C").arg(dir).args(args);
        command
    };
    let mut init = git();
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
        let main = rev(repo.path(), "main");
        let first = rev(repo.path(), "v1^{commit}");
        let head = resolve(&url, None).await.expect("HEAD");
        assert_eq!(head.commit, main);
        assert_eq!(
            resolve(&url, Some("main")).await.expect("main").commit,
            main
        );
        let tag = resolve(&url, Some("v1")).await.expect("tag");
        assert_eq!(tag.commit, first, "an annotated tag resolves to its commit");
        assert_eq!(
            resolve(&url, Some("other")).await.expect("other").commit,
            rev(repo.path(), "other")
        );
        let unknown = resolve(&url, Some("nope")).await.expect_err("unknown");
        let text = unknown.to_string();
        assert!(text.contains("\"nope\"") && text.contains(&url), "{text}");
        assert!(text.contains("main"), "names a branch: {text}");
        let missing = resolve("/nonexistent/repo", None)
            .await
            .expect_err("missing");
        assert!(
            missing.to_string().contains("/nonexistent/repo"),
            "{missing}"
        );

        // A tip, shallowly; then a commit that is no tip (the tag's, by id).
        let out = tempfile::tempdir().expect("tmp");
        let got = fetch(&url, &tag, &out.path().join("a"))
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
        let got = fetch(&file_url, &by_id, &out.path().join("b"))
            .await
            .expect("by id");
        assert_eq!(got, first);
    }
}
