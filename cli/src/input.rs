//! Manifest input: expands files and directories, reads them with a size limit, decodes every
//! document and refuses an object defined twice.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use nanocl_api_types::manifest::{self, DecodeOptions, Manifest, ManifestError};
use nanocl_api_types::ObjectKey;

use crate::args::FileArgs;

pub use nanocl_client::read::{read_limited, MAX_FILE_BYTES};

/// Everything read from the inputs.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Valid objects, in input order.
    pub manifests: Vec<Manifest>,
    /// Every problem, one line each, as printed.
    pub errors: Vec<String>,
    /// How many files were read.
    pub files: usize,
}

impl Loaded {
    /// Prints every error to stderr, then a summary saying nothing was done.
    pub fn report_errors(&self, what: &str) {
        for e in &self.errors {
            eprintln!("{e}");
        }
        let n = self.errors.len();
        eprintln!(
            "error: {n} problem{} found in the input; {what}",
            if n == 1 { "" } else { "s" }
        );
    }
}

/// The absolute directory of a manifest file (`None` for stdin).
pub fn base_dir(path: &Path) -> Option<PathBuf> {
    if path.as_os_str() == "-" {
        return None;
    }
    let absolute = std::path::absolute(path).ok()?;
    absolute.parent().map(Path::to_path_buf)
}

/// Whether a directory entry is a manifest: `*.yaml`, `*.yml` or `*.json`, not hidden.
pub fn is_manifest_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    !hidden && matches!(ext, "yaml" | "yml" | "json")
}

/// Expands the paths: files as given, directories to their manifest files (sorted, recursing
/// with `-R`, skipping hidden entries such as `.git`).
fn expand(args: &FileArgs, errors: &mut Vec<String>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in &args.files {
        if path.as_os_str() == "-" {
            out.push(path.clone());
            continue;
        }
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk(path, args.recursive, &mut out, errors),
            Ok(_) => out.push(path.clone()),
            Err(e) => errors.push(format!("{}: cannot read: {e}", path.display())),
        }
    }
    out
}

fn walk(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(format!("{}: cannot read directory: {e}", dir.display()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if path.is_dir() {
            if recursive && !hidden {
                walk(&path, recursive, out, errors);
            }
        } else if is_manifest_file(&path) {
            out.push(path);
        }
    }
}

/// Reads and decodes every input. Errors are collected, never fatal: the caller decides that
/// any error means nothing is applied.
pub fn load(args: &FileArgs, options: &DecodeOptions) -> Loaded {
    let mut loaded = Loaded::default();
    let paths = expand(args, &mut loaded.errors);
    if paths.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        loaded.errors.push("-: stdin can be read only once".into());
        return loaded;
    }
    let mut seen: HashMap<ObjectKey, (String, manifest::node::Pos)> = HashMap::new();
    for path in paths {
        loaded.files += 1;
        let name = if path.as_os_str() == "-" {
            "<stdin>".to_owned()
        } else {
            path.display().to_string()
        };
        let bytes = match read_limited(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                loaded.errors.push(e);
                continue;
            }
        };
        // A relative path in a manifest (a build context) is relative to its file.
        let options = DecodeOptions {
            base_dir: base_dir(&path),
            ..options.clone()
        };
        let decoded = manifest::decode_bytes(&name, &bytes, &options);
        loaded
            .errors
            .extend(decoded.errors.iter().map(ManifestError::to_string));
        for m in decoded.manifests {
            let key = m.object.key();
            if let Some((file, pos)) = seen.get(&key) {
                loaded.errors.push(format!(
                    "{}:{}: {key} is defined twice: first at {file}:{pos}",
                    m.file, m.pos
                ));
                continue;
            }
            seen.insert(key, (m.file.clone(), m.pos));
            loaded.manifests.push(m);
        }
    }
    if loaded.files == 0 && loaded.errors.is_empty() {
        loaded.errors.push(format!(
            "no manifest files (*.yaml, *.yml, *.json) found in {}{}",
            args.files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if args.recursive {
                ""
            } else {
                " (use -R to read subdirectories)"
            }
        ));
    }
    loaded
}
