//! Which files of a deploy directory are manifests, and which file-system events are noise
//! (editors' swap and backup files, VCS metadata, our own reads).

use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode, EventKind, MetadataKind, ModifyKind, RemoveKind};

/// Deepest directory nesting read; deeper (or a symlink loop) is reported, not followed.
const MAX_DEPTH: usize = 32;

/// Names that are never manifests and never trigger a sync: hidden files and folders
/// (`.git/`, `.#lock`, `.file.swp`), backups (`file~`), vim's swap files and its `4913`
/// write test.
pub fn is_noise(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || [".swp", ".swx", ".swo"]
            .iter()
            .any(|ext| name.ends_with(ext))
        || name == "4913"
}

/// Whether a file name is a manifest: `*.yaml`, `*.yml` or `*.json`, and not noise.
pub fn is_manifest(name: &str) -> bool {
    !is_noise(name)
        && Path::new(name)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
}

/// The manifest files under a directory.
#[derive(Debug, Default)]
pub struct Scan {
    /// Paths relative to the directory, sorted.
    pub files: Vec<PathBuf>,
    /// Subdirectories that could not be read. Their files are unknown, so nothing may be
    /// pruned on this scan.
    pub errors: Vec<String>,
}

/// Lists the manifest files under `root`, recursively. Fails only when `root` itself cannot
/// be read (it is missing, or not a directory).
pub fn scan(root: &Path) -> std::io::Result<Scan> {
    let mut scan = Scan::default();
    let entries = std::fs::read_dir(root)?;
    walk(root, Path::new(""), entries, 0, &mut scan);
    scan.files.sort();
    Ok(scan)
}

fn walk(root: &Path, rel: &Path, entries: std::fs::ReadDir, depth: usize, scan: &mut Scan) {
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                scan.errors
                    .push(format!("{}: cannot read: {e}", root.join(rel).display()));
                continue;
            }
        };
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if is_noise(name) {
            continue;
        }
        let path = entry.path();
        let child = rel.join(name);
        // Follows symlinks: a link to a manifest or a folder counts as one.
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                if depth + 1 >= MAX_DEPTH {
                    scan.errors.push(format!(
                        "{}: nested deeper than {MAX_DEPTH} folders (a symlink loop?): not read",
                        path.display()
                    ));
                    continue;
                }
                match std::fs::read_dir(&path) {
                    Ok(sub) => walk(root, &child, sub, depth + 1, scan),
                    Err(e) => scan
                        .errors
                        .push(format!("{}: cannot read directory: {e}", path.display())),
                }
            }
            Ok(_) if is_manifest(name) => scan.files.push(child),
            Ok(_) => {}
            // A dangling symlink: what it pointed to is unknown, so this scan cannot prune.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && std::fs::symlink_metadata(&path).is_ok()
                    && is_manifest(name) =>
            {
                scan.errors.push(format!(
                    "{}: a symlink to nothing: not read, and nothing is pruned",
                    path.display()
                ));
            }
            // Removed between listing and looking: it is simply not there.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if is_manifest(name) => {
                scan.errors
                    .push(format!("{}: cannot read: {e}", path.display()));
            }
            Err(_) => {}
        }
    }
}

/// Whether a file-system event may change what the directory `root` (absolute) holds.
pub fn is_relevant(root: &Path, event: &notify::Event) -> bool {
    match event.kind {
        // Our own reads open and close files: only a closed write matters.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) => return false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => return false,
        _ => {}
    }
    if event.need_rescan() {
        return true;
    }
    // A folder removed or moved out may have any name (`apps.d`): it no longer exists, so its
    // kind cannot be checked; such events count unless the name is noise.
    let gone = matches!(
        event.kind,
        EventKind::Remove(RemoveKind::Folder) | EventKind::Modify(ModifyKind::Name(_))
    );
    event
        .paths
        .iter()
        .any(|p| path_is_relevant(root, p, gone && !p.exists()))
}

fn path_is_relevant(root: &Path, path: &Path, gone: bool) -> bool {
    if path == root {
        // The directory itself was created, removed or moved.
        return true;
    }
    // The parent is watched too, for the directory's return: its other entries are not ours.
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    let mut names = rel.components().filter_map(|c| c.as_os_str().to_str());
    if names.clone().any(is_noise) {
        return false;
    }
    let Some(name) = names.next_back() else {
        return true;
    };
    // A manifest, or a folder (created, moved in or removed: its files came or went with it).
    gone || is_manifest(name) || Path::new(name).extension().is_none() || path.is_dir()
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, Event};

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn noise_is_ignored() {
        let root = Path::new("/deploy");
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        for noise in [
            "/deploy/.git/index.lock",
            "/deploy/.git/objects/ab/cdef",
            "/deploy/app/.web.yaml.swp",
            "/deploy/app/web.yaml~",
            "/deploy/app/web.yaml.swx",
            "/deploy/app/.#web.yaml",
            "/deploy/app/4913",
            "/deploy/README.md",
            "/deploy/app/web.yaml.tmp",
            "/elsewhere/web.yaml",
        ] {
            assert!(!is_relevant(root, &event(write, noise)), "{noise}");
        }
        for real in ["/deploy/web.yaml", "/deploy/a/b/c.yml", "/deploy/x.json"] {
            assert!(is_relevant(root, &event(write, real)), "{real}");
        }
        assert!(is_relevant(
            root,
            &event(EventKind::Remove(RemoveKind::Folder), "/deploy")
        ));
        assert!(is_relevant(
            root,
            &event(EventKind::Create(CreateKind::Folder), "/deploy/shop")
        ));
        assert!(is_relevant(
            root,
            &event(EventKind::Remove(RemoveKind::Folder), "/deploy/apps.d")
        ));
        assert!(is_relevant(
            root,
            &event(
                EventKind::Modify(ModifyKind::Name(notify::event::RenameMode::From)),
                "/deploy/apps.d"
            )
        ));
        assert!(!is_relevant(
            root,
            &event(
                EventKind::Modify(ModifyKind::Name(notify::event::RenameMode::From)),
                "/deploy/.git/index.lock"
            )
        ));
        assert!(!is_relevant(
            root,
            &event(
                EventKind::Access(AccessKind::Open(notify::event::AccessMode::Any)),
                "/deploy/web.yaml"
            )
        ));
        assert!(is_relevant(
            root,
            &event(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                "/deploy/web.yaml"
            )
        ));
    }

    #[test]
    fn manifest_names() {
        assert!(is_manifest("web.yaml"));
        assert!(is_manifest("web.yml"));
        assert!(is_manifest("web.json"));
        assert!(!is_manifest(".web.yaml"));
        assert!(!is_manifest("web.yaml~"));
        assert!(!is_manifest("web.txt"));
        assert!(!is_manifest("4913"));
    }

    #[test]
    fn scan_skips_hidden_folders_and_other_files() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        std::fs::create_dir_all(root.join(".git/objects"))?;
        std::fs::create_dir_all(root.join("shop/cargoes"))?;
        std::fs::write(root.join(".git/objects/x.yaml"), "")?;
        std::fs::write(root.join("shop/namespace.yaml"), "")?;
        std::fs::write(root.join("shop/cargoes/web.yml"), "")?;
        std::fs::write(root.join("shop/cargoes/.web.yml.swp"), "")?;
        std::fs::write(root.join("shop/notes.txt"), "")?;
        std::fs::write(root.join("top.json"), "")?;
        let scan = scan(root)?;
        assert_eq!(
            scan.files,
            vec![
                PathBuf::from("shop/cargoes/web.yml"),
                PathBuf::from("shop/namespace.yaml"),
                PathBuf::from("top.json"),
            ]
        );
        assert!(scan.errors.is_empty());

        // A dangling symlink is not a deleted file: the scan says it is incomplete.
        std::os::unix::fs::symlink(root.join("nowhere.yaml"), root.join("link.yaml"))?;
        let scan = super::scan(root)?;
        assert_eq!(scan.errors.len(), 1, "{:?}", scan.errors);
        assert!(scan.errors[0]
            .ends_with("link.yaml: a symlink to nothing: not read, and nothing is pruned"));
        Ok(())
    }
}
