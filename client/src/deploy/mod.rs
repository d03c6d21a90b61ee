//! The deploy directory: a folder of manifests kept applied. `nanocl watch DIR` and
//! `nanocld --deploy-dir DIR` both run this code; they differ only in the [`Transport`] (the
//! CLI's socket client, the daemon's in-process router) and in where reports go.
//!
//! A sync reads every manifest file, applies the valid ones, and prunes what left:
//! - an invalid file is reported and skipped, and the objects it produced last (remembered
//!   here, and after a restart found by their `nanocl.io/source-file` annotation) are never
//!   pruned because of it;
//! - an object defined in two files is an error naming both; neither definition is applied
//!   and the live object is left alone;
//! - objects whose file was deleted are pruned only with `prune`; otherwise a line says they
//!   were kept;
//! - a missing or empty directory prunes nothing: it is far more likely a checkout in progress
//!   or a mistake than a wish to delete everything.

pub mod files;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nanocl_api_types::manifest::{self, DecodeOptions, Manifest, ManifestError};
use nanocl_api_types::{Kind, ObjectKey, APPLYSET_LABEL};
use serde_json::Value;

use crate::apply::{apply_one, Applied};
use crate::error::Error;
use crate::remote::{self, display_key, PruneScope};
use crate::transport::Transport;

/// The annotation naming the file (relative to the deploy directory) an object came from.
pub const SOURCE_ANNOTATION: &str = "nanocl.io/source-file";

/// What to sync and how.
#[derive(Clone, Debug)]
pub struct Config {
    /// The directory, as the user gave it (used in messages).
    pub dir: PathBuf,
    /// The applyset every object is labelled with.
    pub applyset: String,
    /// Whether the applyset was named explicitly: only then may Namespace objects be pruned.
    pub explicit_applyset: bool,
    /// Delete objects whose definition disappeared.
    pub prune: bool,
    /// Namespace defaulting and enforcement.
    pub decode: DecodeOptions,
}

/// What one sync did.
#[derive(Clone, Debug, Default)]
pub struct SyncReport {
    /// Objects created.
    pub created: usize,
    /// Objects changed.
    pub configured: usize,
    /// Objects already as written.
    pub unchanged: usize,
    /// Objects deleted because their definition disappeared.
    pub pruned: usize,
    /// Files that failed to read or decode, objects defined twice, and objects the server
    /// refused.
    pub invalid: usize,
    /// Objects whose definition disappeared, left in place (no `prune`, or pruning was unsafe).
    pub kept: usize,
    /// Manifest files read.
    pub files: usize,
    /// One line per object written or pruned: `cargo/web configured`.
    pub objects: Vec<String>,
    /// Every problem, one line each (`FILE:LINE:COLUMN: field: message`).
    pub problems: Vec<String>,
    /// Things worth saying once: objects kept, prune skipped and why.
    pub notices: Vec<String>,
    /// How long the sync took.
    pub elapsed: Duration,
    /// Something is pending (an object still being deleted, a prune held back): sync again
    /// soon even without a change.
    pub again: bool,
}

impl SyncReport {
    /// The one-line summary.
    pub fn summary(&self, dir: &Path) -> String {
        let mut line = format!(
            "synced {}: {} created, {} configured, {} unchanged, {} pruned, {} invalid",
            dir.display(),
            self.created,
            self.configured,
            self.unchanged,
            self.pruned,
            self.invalid
        );
        if self.kept > 0 {
            line.push_str(&format!(", {} kept", self.kept));
        }
        line.push_str(&format!(
            " ({} file{}, {} ms)",
            self.files,
            if self.files == 1 { "" } else { "s" },
            self.elapsed.as_millis()
        ));
        line
    }

    /// Whether it wrote or deleted anything, or found a problem.
    pub fn eventful(&self) -> bool {
        self.created + self.configured + self.pruned + self.invalid > 0 || !self.notices.is_empty()
    }
}

/// Whether nanocld answers `/readyz` (its store is reachable).
async fn server_ready(api: &impl Transport) -> bool {
    api.request(hyper::Method::GET, "/readyz", None)
        .await
        .is_ok_and(|a| a.status.is_success())
}

/// Whether a sync may prune now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PruneGate {
    /// Yes.
    Open,
    /// Not yet, and why; the next sync will.
    Wait(String),
}

/// Why a sync did not happen.
#[derive(Debug)]
pub enum SyncError {
    /// The directory does not exist (or is not a directory): nothing was applied or pruned.
    Missing(std::io::Error),
    /// nanocld was unreachable or failed: retry later. What was applied stays applied.
    Retry(Error),
}

/// The directory as one sync read it.
struct ReadFiles {
    scan: files::Scan,
    /// Each file, decoded or invalid.
    states: Vec<(PathBuf, FileState)>,
    /// Part of the tree could not be read, or a file went away meanwhile: no prune.
    incomplete: bool,
}

/// What a sync applies, and what it must not prune.
struct Planned {
    desired: Vec<Manifest>,
    produced: BTreeMap<PathBuf, Vec<ObjectKey>>,
    protected: HashSet<ObjectKey>,
    invalid_files: BTreeSet<String>,
}

/// What a sync's prune step may do.
struct Pruning {
    scope: PruneScope,
    /// Deleting is safe now: the tree was read whole, holds manifests, and the gate is open.
    safe: bool,
    gate: PruneGate,
    /// The directory holds no manifest file.
    empty: bool,
    /// The files that exist now, relative to the directory.
    present: BTreeSet<String>,
}

/// One file's contents, as last read.
enum FileState {
    Valid(Vec<Manifest>),
    Invalid,
}

/// Syncs one directory, remembering what each file produced.
#[derive(Debug)]
pub struct Syncer {
    config: Config,
    /// Objects each file produced when it was last valid.
    last_keys: BTreeMap<PathBuf, Vec<ObjectKey>>,
    /// Namespaces the directory mentioned in any sync so far: prunes may look there.
    namespaces_seen: BTreeSet<String>,
    /// Kept objects already reported, so the notice is not repeated every sync.
    announced: HashSet<ObjectKey>,
}

impl Syncer {
    /// A syncer that has not synced yet.
    pub fn new(config: Config) -> Syncer {
        Syncer {
            config,
            last_keys: BTreeMap::new(),
            namespaces_seen: BTreeSet::new(),
            announced: HashSet::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn file_name(&self, rel: &Path) -> String {
        self.config.dir.join(rel).display().to_string()
    }

    /// Reads the directory and makes nanocld match it.
    pub async fn sync(&mut self, api: &impl Transport) -> Result<SyncReport, SyncError> {
        self.sync_guarded(api, || PruneGate::Open).await
    }

    /// [`sync`](Self::sync), asking `gate` just before pruning whether pruning is safe now (the
    /// watcher says no when files changed during the sync: the next sync prunes).
    pub async fn sync_guarded(
        &mut self,
        api: &impl Transport,
        gate: impl Fn() -> PruneGate,
    ) -> Result<SyncReport, SyncError> {
        let started = Instant::now();
        let mut report = SyncReport::default();
        let ReadFiles {
            scan,
            states,
            incomplete,
        } = self.read_files(&mut report)?;
        let planned = self.desired_objects(states, &mut report);
        // What the set holds now.
        let members = remote::applyset_list(api, &self.config.applyset)
            .await
            .map_err(SyncError::Retry)?;
        self.apply_desired(api, &planned.desired, &members, &mut report)
            .await?;
        // Asked once, after everything was applied: did files change meanwhile?
        let gate = if incomplete || scan.files.is_empty() {
            PruneGate::Open
        } else {
            gate()
        };
        let pruning = Pruning {
            scope: self.prune_scope(&planned),
            safe: !incomplete && !scan.files.is_empty() && gate == PruneGate::Open,
            gate,
            empty: scan.files.is_empty(),
            present: scan
                .files
                .iter()
                .map(|rel| rel.to_string_lossy().into_owned())
                .collect(),
        };
        self.prune_or_keep(api, &members, &planned, &pruning, &mut report)
            .await?;
        self.remember(pruning.scope, &planned.desired, planned.produced);
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// Scans the directory and decodes every file on its own. `incomplete`: part of the tree
    /// could not be read, or a file went away meanwhile, so nothing may be pruned.
    fn read_files(&self, report: &mut SyncReport) -> Result<ReadFiles, SyncError> {
        let scan = files::scan(&self.config.dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => {
                SyncError::Missing(e)
            }
            _ => SyncError::Retry(Error::Io {
                what: format!("cannot read {}", self.config.dir.display()),
                source: e,
            }),
        })?;
        let mut incomplete = !scan.errors.is_empty();
        report.problems.extend(scan.errors.iter().cloned());
        report.files = scan.files.len();

        // Read and decode every file.
        let mut states: Vec<(PathBuf, FileState)> = Vec::new();
        for rel in &scan.files {
            let name = self.file_name(rel);
            let bytes = match crate::read::read_limited(&self.config.dir.join(rel)) {
                Ok(bytes) => bytes,
                Err(_) if !self.config.dir.join(rel).exists() => {
                    // Deleted since the scan: the next event brings another sync.
                    incomplete = true;
                    continue;
                }
                Err(e) => {
                    report.problems.push(e);
                    report.invalid += 1;
                    states.push((rel.clone(), FileState::Invalid));
                    continue;
                }
            };
            let options = manifest::DecodeOptions {
                base_dir: std::path::absolute(self.config.dir.join(rel))
                    .ok()
                    .and_then(|p| p.parent().map(std::path::Path::to_path_buf)),
                ..self.config.decode.clone()
            };
            let decoded = manifest::decode_bytes(&name, &bytes, &options);
            if decoded.errors.is_empty() {
                states.push((rel.clone(), FileState::Valid(decoded.manifests)));
            } else {
                report
                    .problems
                    .extend(decoded.errors.iter().map(ManifestError::to_string));
                report.problems.push(format!(
                    "{name}: skipped: its objects are left as they are until it is fixed"
                ));
                report.invalid += 1;
                states.push((rel.clone(), FileState::Invalid));
            }
        }

        Ok(ReadFiles {
            scan,
            states,
            incomplete,
        })
    }

    /// The objects to apply, labelled and annotated, in apply order; what each file
    /// produced; and what must not be pruned (duplicates, what invalid files last produced).
    fn desired_objects(
        &self,
        states: Vec<(PathBuf, FileState)>,
        report: &mut SyncReport,
    ) -> Planned {
        // An object defined twice, in one file or two, is applied from neither.
        let mut defined: HashMap<ObjectKey, Vec<(String, manifest::node::Pos)>> = HashMap::new();
        for (_, state) in &states {
            if let FileState::Valid(manifests) = state {
                for m in manifests {
                    defined
                        .entry(m.object.key())
                        .or_default()
                        .push((m.file.clone(), m.pos));
                }
            }
        }
        let mut protected: HashSet<ObjectKey> = HashSet::new();
        let mut duplicates: Vec<_> = defined.iter().filter(|(_, at)| at.len() > 1).collect();
        duplicates.sort_by(|a, b| a.1.cmp(b.1));
        for (key, at) in duplicates {
            let places: Vec<String> = at.iter().map(|(f, p)| format!("{f}:{p}")).collect();
            report.problems.push(format!(
                "{}: {key} is defined more than once, also at {}: neither definition is applied",
                places[0],
                places[1..].join(", ")
            ));
            report.invalid += 1;
            protected.insert(key.clone());
        }

        // The desired objects, labelled and annotated, in apply order.
        let invalid_files: BTreeSet<String> = states
            .iter()
            .filter(|(_, s)| matches!(s, FileState::Invalid))
            .map(|(rel, _)| rel.to_string_lossy().into_owned())
            .collect();
        let mut desired: Vec<Manifest> = Vec::new();
        let mut produced: BTreeMap<PathBuf, Vec<ObjectKey>> = BTreeMap::new();
        // What invalid files produced when they were last valid stays untouched, whatever the
        // order of the files.
        let mut held: HashMap<ObjectKey, String> = HashMap::new();
        for (rel, state) in &states {
            if let (FileState::Invalid, Some(keys)) = (state, self.last_keys.get(rel)) {
                for key in keys {
                    held.insert(key.clone(), self.file_name(rel));
                }
                produced.insert(rel.clone(), keys.clone());
            }
        }
        for (rel, state) in states {
            match state {
                FileState::Valid(manifests) => {
                    produced.insert(
                        rel.clone(),
                        manifests.iter().map(|m| m.object.key()).collect(),
                    );
                    for mut m in manifests {
                        if protected.contains(&m.object.key()) {
                            continue;
                        }
                        if let Some(other) = held.get(&m.object.key()) {
                            report.problems.push(format!(
                                "{}:{}: {} is also defined by {other}, which is invalid: not applied until it is fixed",
                                m.file,
                                m.pos,
                                m.object.key()
                            ));
                            report.invalid += 1;
                            continue;
                        }
                        let meta = m.object.metadata_mut();
                        meta.labels
                            .insert(APPLYSET_LABEL.to_owned(), self.config.applyset.clone());
                        meta.annotations.insert(
                            SOURCE_ANNOTATION.to_owned(),
                            rel.to_string_lossy().into_owned(),
                        );
                        desired.push(m);
                    }
                }
                FileState::Invalid => {}
            }
        }
        protected.extend(held.into_keys());
        desired.sort_by_key(|m| m.object.kind());

        Planned {
            desired,
            produced,
            protected,
            invalid_files,
        }
    }

    /// Creates or updates each desired object that differs from its live copy.
    async fn apply_desired(
        &self,
        api: &impl Transport,
        desired: &[Manifest],
        members: &[Value],
        report: &mut SyncReport,
    ) -> Result<(), SyncError> {
        let live: HashMap<ObjectKey, &Value> = members
            .iter()
            .filter_map(|v| Some((remote::key_of(v)?, v)))
            .collect();
        for m in desired {
            let key = m.object.key();
            if live
                .get(&key)
                .is_some_and(|v| !v["metadata"]["deletionTimestamp"].is_null())
            {
                // Being deleted (pruned, or deleted by hand): an update would not stop that.
                // It is created again by a sync once it is gone.
                report.notices.push(format!(
                    "{} is being deleted; it is created again once it is gone",
                    display_key(&key)
                ));
                report.again = true;
                continue;
            }
            let unchanged = live.get(&key).is_some_and(|v| {
                remote::desired(&m.object, Some(v)).is_ok_and(|d| {
                    remote::without_server_fields(&d) == remote::without_server_fields(v)
                })
            });
            let result = if unchanged {
                Ok(Applied::Unchanged)
            } else {
                apply_one(api, m, false).await
            };
            match result {
                Ok(applied) => {
                    match applied {
                        Applied::Created => report.created += 1,
                        Applied::Configured => report.configured += 1,
                        Applied::Unchanged => report.unchanged += 1,
                    }
                    if applied != Applied::Unchanged {
                        report
                            .objects
                            .push(format!("{} {}", display_key(&key), applied.word()));
                    }
                }
                // A 5xx for this object while nanocld is ready is this object's problem: one
                // object the server keeps failing must not hold the whole directory back.
                Err(e) if e.is_unavailable() && !server_ready(api).await => {
                    return Err(SyncError::Retry(e))
                }
                Err(e) => {
                    report.problems.push(format!(
                        "{}:{}: {}: {}",
                        m.file,
                        m.pos,
                        display_key(&key),
                        format!("{e:#}").replace('\n', "\n  ")
                    ));
                    report.invalid += 1;
                }
            }
        }

        Ok(())
    }

    /// Where a prune may look: what the directory mentions now or mentioned before.
    fn prune_scope(&self, planned: &Planned) -> PruneScope {
        let objects: Vec<_> = planned.desired.iter().map(|m| &m.object).collect();
        let mut scope = PruneScope::of(&objects, None, self.config.explicit_applyset);
        for keys in planned.produced.values() {
            scope
                .namespaces
                .extend(keys.iter().filter_map(|k| k.namespace.clone()));
        }
        scope
            .namespaces
            .extend(self.namespaces_seen.iter().cloned());
        scope
    }

    /// Prunes the set's live members that no file defines, or says once why each is kept.
    async fn prune_or_keep(
        &mut self,
        api: &impl Transport,
        members: &[Value],
        planned: &Planned,
        pruning: &Pruning,
        report: &mut SyncReport,
    ) -> Result<(), SyncError> {
        let (scope, safe, gate, present) = (
            &pruning.scope,
            pruning.safe,
            &pruning.gate,
            &pruning.present,
        );
        let (wanted, protected, invalid_files): (HashSet<ObjectKey>, _, _) = (
            planned.desired.iter().map(|m| m.object.key()).collect(),
            &planned.protected,
            &planned.invalid_files,
        );
        let mut kept_now = HashSet::new();
        for member in members {
            let Some(key) = remote::key_of(member) else {
                continue;
            };
            if wanted.contains(&key) || protected.contains(&key) {
                continue;
            }
            let source = member["metadata"]["annotations"][SOURCE_ANNOTATION].as_str();
            if !scope.contains(&key) {
                // Not ours to prune (a Namespace without an explicit applyset, or a namespace
                // the directory no longer mentions), but if it came from a deploy directory,
                // say so once.
                if source.is_some() && self.announced.insert(key.clone()) {
                    report.notices.push(format!(
                        "{} kept: no file defines it any more, and {}; delete it yourself if it should go",
                        display_key(&key),
                        if key.kind == Kind::Namespace {
                            "Namespace objects are pruned only with an explicit --applyset"
                        } else {
                            "its namespace is not mentioned by the directory any more"
                        }
                    ));
                }
                kept_now.insert(key.clone());
                continue;
            }
            if source.is_some_and(|s| invalid_files.contains(s)) {
                continue;
            }
            let why = match source {
                Some(s) if present.contains(s) => {
                    format!("no longer in {}", self.file_name(Path::new(s)))
                }
                Some(s) => format!("its file {} was deleted", self.file_name(Path::new(s))),
                None => "no file defines it".to_owned(),
            };
            if self.config.prune && safe {
                match remote::delete(api, &key, false).await {
                    Ok(()) => {
                        report.pruned += 1;
                        report
                            .objects
                            .push(format!("{} pruned ({why})", display_key(&key)));
                    }
                    Err(e) if e.is_unavailable() => return Err(SyncError::Retry(e)),
                    Err(e) => {
                        report.problems.push(format!("error: {e:#}"));
                        report.invalid += 1;
                    }
                }
                continue;
            }
            if self.config.prune && *gate != PruneGate::Open {
                report.again = true;
            }
            report.kept += 1;
            kept_now.insert(key.clone());
            if self.announced.insert(key.clone()) {
                let advice = if !self.config.prune {
                    "run with --prune to delete it".to_owned()
                } else if let PruneGate::Wait(why) = gate {
                    format!("not pruned yet: {why}")
                } else if pruning.empty {
                    format!(
                        "{} holds no manifest, so nothing is pruned",
                        self.config.dir.display()
                    )
                } else {
                    "some of the directory could not be read, so nothing is pruned".to_owned()
                };
                report
                    .notices
                    .push(format!("{} kept: {why}; {advice}", display_key(&key)));
            }
        }
        self.announced.retain(|k| kept_now.contains(k));
        Ok(())
    }

    /// Remembers, for the next syncs, the namespaces mentioned and what each file produced.
    fn remember(
        &mut self,
        scope: PruneScope,
        desired: &[Manifest],
        produced: BTreeMap<PathBuf, Vec<ObjectKey>>,
    ) {
        self.namespaces_seen.extend(scope.namespaces);
        self.namespaces_seen.extend(
            desired
                .iter()
                .filter(|m| m.object.kind() == Kind::Namespace)
                .map(|m| m.object.key().name),
        );
        self.last_keys = produced;
    }
}
