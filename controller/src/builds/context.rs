//! A build context: a directory packed into a tar file for Docker's build API, with the
//! sha256 of what it holds (paths, kinds, modes and contents, never times), so an identical
//! directory is recognised and never built twice. `.dockerignore` is honoured as the docker
//! CLI does: the daemon never reads it, the client leaves the files out.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Why a context could not be packed; the message names the path.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The directory is missing or not a directory.
    #[error("{path}: {message}")]
    NotADirectory {
        /// The path.
        path: String,
        /// Why.
        message: String,
    },
    /// The Dockerfile is not in it.
    #[error("no Dockerfile {dockerfile:?} in {dir}")]
    NoDockerfile {
        /// The Dockerfile asked for.
        dockerfile: String,
        /// The context directory.
        dir: String,
    },
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The path read or written.
        path: String,
        /// Why.
        source: io::Error,
    },
}

/// A packed context.
#[derive(Debug)]
pub struct Packed {
    /// The tar file (removed when dropped).
    pub tar: tempfile::NamedTempFile,
    /// `sha256:` and the hex digest of its content.
    pub hash: String,
    /// Files in it.
    pub files: usize,
}

/// Options of `pack`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The Dockerfile's path inside the context (checked to exist, always sent).
    pub dockerfile: String,
    /// Leave `.git` out (a checkout: the history is not the commit's content).
    pub skip_git: bool,
    /// Record every file with this modification time (a checkout: reproducible images),
    /// instead of the file's own.
    pub mtime: Option<u64>,
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Packs `dir` into a temp file; blocking (run it off the async threads).
pub fn pack(dir: &Path, options: &Options) -> Result<Packed, ContextError> {
    let meta = std::fs::metadata(dir).map_err(|e| ContextError::NotADirectory {
        path: dir.display().to_string(),
        message: if e.kind() == io::ErrorKind::NotFound {
            "no such directory".into()
        } else {
            e.to_string()
        },
    })?;
    if !meta.is_dir() {
        return Err(ContextError::NotADirectory {
            path: dir.display().to_string(),
            message: "not a directory".into(),
        });
    }
    let dockerfile_path = dir.join(&options.dockerfile);
    if !dockerfile_path.is_file() {
        return Err(ContextError::NoDockerfile {
            dockerfile: options.dockerfile.clone(),
            dir: dir.display().to_string(),
        });
    }
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => Ignore::parse(&text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ignore::default(),
        Err(e) => return Err(io_error(&dir.join(".dockerignore"))(e)),
    };
    let mut entries = Vec::new();
    walk(dir, PathBuf::new(), &ignore, options, &mut entries)?;
    let tmp = tempfile::Builder::new()
        .prefix("nanocl-context-")
        .suffix(".tar")
        .tempfile()
        .map_err(io_error(Path::new("a temp file")))?;
    let mut hasher = Sha256::new();
    let mut files = 0;
    {
        let mut builder = tar::Builder::new(io::BufWriter::new(tmp.as_file()));
        builder.mode(tar::HeaderMode::Deterministic);
        for relative in &entries {
            let full = dir.join(relative);
            let meta = std::fs::symlink_metadata(&full).map_err(io_error(&full))?;
            let name = relative.to_string_lossy().replace('\\', "/");
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                meta.permissions().mode() & 0o7777
            };
            let mtime = options.mtime.unwrap_or_else(|| {
                meta.modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs())
            });
            let mut header = tar::Header::new_gnu();
            header.set_mode(mode);
            header.set_mtime(mtime);
            header.set_uid(0);
            header.set_gid(0);
            let file_type = meta.file_type();
            if file_type.is_dir() {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                hasher.update(format!("d\0{name}\0{mode:o}\0").as_bytes());
                builder
                    .append_data(&mut header, format!("{name}/"), io::empty())
                    .map_err(io_error(&full))?;
            } else if file_type.is_symlink() {
                let target = std::fs::read_link(&full).map_err(io_error(&full))?;
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                hasher.update(format!("l\0{name}\0{}\0", target.display()).as_bytes());
                builder
                    .append_link(&mut header, &name, &target)
                    .map_err(io_error(&full))?;
            } else if file_type.is_file() {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(meta.len());
                hasher.update(format!("f\0{name}\0{mode:o}\0{}\0", meta.len()).as_bytes());
                let file = File::open(&full).map_err(io_error(&full))?;
                let reader = Hashing {
                    inner: file.take(meta.len()),
                    hasher: &mut hasher,
                };
                builder
                    .append_data(&mut header, &name, reader)
                    .map_err(io_error(&full))?;
                files += 1;
            }
            // Sockets, fifos and devices have no place in an image: left out.
        }
        let mut out = builder.into_inner().map_err(io_error(tmp.path()))?;
        out.flush().map_err(io_error(tmp.path()))?;
    }
    Ok(Packed {
        tar: tmp,
        hash: format!("sha256:{:x}", hasher.finalize()),
        files,
    })
}

/// Every path under `dir/relative` to send, sorted, directories before their contents.
fn walk(
    root: &Path,
    relative: PathBuf,
    ignore: &Ignore,
    options: &Options,
    out: &mut Vec<PathBuf>,
) -> Result<(), ContextError> {
    let dir = root.join(&relative);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map_err(io_error(&dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_error(&dir))?;
    names.sort();
    for name in names {
        let path = relative.join(&name);
        let text = path.to_string_lossy().replace('\\', "/");
        if options.skip_git && text == ".git" {
            continue;
        }
        // The Dockerfile and .dockerignore are always sent, as the docker CLI does.
        let always = text == options.dockerfile || text == ".dockerignore";
        if !always && ignore.excludes(&text) {
            // An excluded directory may still hold an exception (`!dir/keep`).
            if ignore.has_exceptions() && root.join(&path).is_dir() {
                let before = out.len();
                walk(root, path.clone(), ignore, options, out)?;
                if out.len() > before {
                    out.insert(before, path);
                }
            }
            continue;
        }
        let meta =
            std::fs::symlink_metadata(root.join(&path)).map_err(io_error(&root.join(&path)))?;
        out.push(path.clone());
        if meta.is_dir() {
            walk(root, path, ignore, options, out)?;
        }
    }
    Ok(())
}

/// A reader that hashes what it reads.
struct Hashing<'a, R> {
    inner: R,
    hasher: &'a mut Sha256,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The rules of a `.dockerignore`: patterns in order, the last match wins, `!` re-includes.
#[derive(Debug, Default)]
pub struct Ignore {
    rules: Vec<(bool, Vec<String>)>,
}

impl Ignore {
    /// Parses a `.dockerignore` (comments `#`, blank lines, `!` exceptions, `**`).
    pub fn parse(text: &str) -> Ignore {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let parts: Vec<String> = pattern
                .split('/')
                .filter(|p| !p.is_empty() && *p != ".")
                .map(str::to_owned)
                .collect();
            if !parts.is_empty() {
                rules.push((exception, parts));
            }
        }
        Ignore { rules }
    }

    fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|(exception, _)| *exception)
    }

    /// Whether `path` (relative, `/`-separated) is left out: it or a directory above it
    /// matches a rule, and no later exception matches.
    pub fn excludes(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for (exception, pattern) in &self.rules {
            let matched = (1..=parts.len()).any(|n| match_parts(pattern, &parts[..n]));
            if matched {
                excluded = !exception;
            }
        }
        excluded
    }
}

/// Whether the path components match the pattern's, `**` matching any number of them.
fn match_parts(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_parts(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((name, tail)) => {
                glob(first.as_bytes(), name.as_bytes()) && match_parts(rest, tail)
            }
            None => false,
        },
    }
}

/// `*`, `?` and `[...]` within one path component.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| glob(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && glob(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some(end) = rest.iter().position(|&c| c == b']') else {
                return name.first() == Some(&b'[') && glob(rest, &name[1..]);
            };
            let Some((&c, tail)) = name.split_first() else {
                return false;
            };
            let (negate, class) = match rest[..end].split_first() {
                Some((b'^' | b'!', class)) => (true, class),
                _ => (false, &rest[..end]),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob(&rest[end + 1..], tail)
        }
        Some((b'\\', rest)) if !rest.is_empty() => {
            name.first() == Some(&rest[0]) && glob(&rest[1..], &name[1..])
        }
        Some((&p, rest)) => name.first() == Some(&p) && glob(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, path: &str, text: &str) {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, text).expect("write");
    }

    fn names(packed: &Packed) -> Vec<String> {
        let mut archive = tar::Archive::new(File::open(packed.tar.path()).expect("open"));
        archive
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }

    #[test]
    fn dockerignore_should_match_as_docker_does() {
        let ignore = Ignore::parse("# comment\n*.log\nbuild/\n**/tmp\n!keep.log\nsecret?.txt\n");
        assert!(ignore.excludes("a.log"));
        assert!(!ignore.excludes("keep.log"), "an exception re-includes");
        assert!(ignore.excludes("build") && ignore.excludes("build/x/y"));
        assert!(ignore.excludes("a/b/tmp/c"));
        assert!(ignore.excludes("secret1.txt") && !ignore.excludes("secret10.txt"));
        assert!(!ignore.excludes("src/a.rs"));
        assert!(
            !ignore.excludes("sub/a.log"),
            "* stays within the root level"
        );
    }

    #[test]
    fn packing_should_hash_content_not_times_and_leave_out_what_is_ignored() {
        let dir = tempfile::tempdir().expect("tmp");
        write(dir.path(), "Dockerfile", "FROM scratch\n");
        write(dir.path(), "src/app.txt", "hello\n");
        write(dir.path(), "debug.log", "noise\n");
        write(dir.path(), ".dockerignore", "*.log\n");
        write(dir.path(), ".git/HEAD", "ref\n");
        let options = Options {
            dockerfile: "Dockerfile".into(),
            skip_git: true,
            mtime: None,
        };
        let first = pack(dir.path(), &options).expect("pack");
        assert_eq!(
            names(&first),
            [".dockerignore", "Dockerfile", "src/", "src/app.txt"]
        );
        assert_eq!(first.files, 3);
        // Touching a file changes nothing; changing a byte changes the hash.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        write(dir.path(), "src/app.txt", "hello\n");
        assert_eq!(pack(dir.path(), &options).expect("pack").hash, first.hash);
        write(dir.path(), "src/app.txt", "hellp\n");
        assert_ne!(pack(dir.path(), &options).expect("pack").hash, first.hash);
        // An ignored file's change is no change.
        write(dir.path(), "debug.log", "more noise\n");
        write(dir.path(), "src/app.txt", "hello\n");
        assert_eq!(pack(dir.path(), &options).expect("pack").hash, first.hash);
    }

    #[test]
    fn a_missing_directory_or_dockerfile_should_say_which() {
        let dir = tempfile::tempdir().expect("tmp");
        let options = Options {
            dockerfile: "Dockerfile".into(),
            ..Options::default()
        };
        let missing = pack(&dir.path().join("nope"), &options).expect_err("missing");
        assert!(
            missing.to_string().contains("nope: no such directory"),
            "{missing}"
        );
        let no_file = pack(dir.path(), &options).expect_err("no Dockerfile");
        assert!(
            no_file.to_string().contains("no Dockerfile \"Dockerfile\""),
            "{no_file}"
        );
    }
}
