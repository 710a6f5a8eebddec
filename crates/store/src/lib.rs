//! The run store on sled: sweeps, runs, attempts, metric series and artefacts.
//!
//! Only the sweep coordinator opens the store (sled locks it to one process); workers report to
//! the coordinator. Records are JSON (readable in an export, tolerant of new fields); metric
//! series are packed binary, one key per (run, split, metric).
//!
//! Trees:
//! - `sweeps`: name → [`SweepRecord`]
//! - `runs`: run id → [`RunRecord`]; its status moves only by compare-and-swap
//! - `attempts`: run id ‖ attempt number (big-endian u32) → [`Attempt`]
//! - `metrics`: run id ‖ 0 ‖ split ‖ 0 ‖ name → packed `(step: u64, value: f64)` pairs
//! - `active`: run id → () for runs that are `running` (found fast on resume)
//!
//! Beside sled's files, `census.json` holds how many runs, finished runs and sweeps the store
//! held after its last change. sled recovers a damaged log by dropping what it cannot read,
//! without saying so; a store that opens holding less than its census is refused as damaged
//! ([`StoreError::Damaged`]) rather than read as a smaller one.

mod records;
mod series;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub use records::{
    Attempt, AttemptOutcome, Claim, ExitInfo, ExternalJob, RunRecord, RunStatus, SweepRecord,
};
pub use series::Series;
use t4v_core::RunId;

/// The on-disk layout version, stored in the `meta` tree.
const LAYOUT_VERSION: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the run store at {path} is in use by another process (is a sweep running?); \
         wait for it or point --results elsewhere"
    )]
    Locked { path: PathBuf },
    #[error("run store at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("run store at {path} has layout {found}, this build reads layout {LAYOUT_VERSION}")]
    Layout { path: PathBuf, found: String },
    #[error("run store: {0}")]
    Sled(#[from] sled::Error),
    #[error("run store: record `{key}` in tree `{tree}` is not valid: {source}")]
    Corrupt {
        tree: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the run store at {path} is damaged: it holds {found}, but held {expected} after its last \
         change (a disk fault or a partial copy; sled drops what it cannot read without saying \
         so). Nothing was changed. Re-import the latest snapshot into it (`cargo xtask import \
         <results>/store.snapshot.jsonl`), or move it aside and start from the run folders"
    )]
    Damaged {
        path: PathBuf,
        found: Census,
        expected: Census,
    },
    #[error(
        "the run store at {path} is damaged: its census {census} is unreadable ({message}); re-import the latest snapshot into it (`cargo xtask import <results>/store.snapshot.jsonl`)"
    )]
    Census {
        path: PathBuf,
        census: PathBuf,
        message: String,
    },
    #[error("no run `{0}` in the store")]
    NoRun(String),
    #[error("run id prefix `{0}` is ambiguous: several runs start with it; give more digits")]
    Ambiguous(String),
    #[error("run `{id}` cannot be claimed: it is {status}")]
    NotClaimable { id: RunId, status: RunStatus },
    #[error("writing the export: {0}")]
    Export(#[from] std::io::Error),
    #[error("import, line {line}: {message}")]
    Import { line: usize, message: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a store holds, counted: kept in `census.json` after every change. `digest` is the
/// XOR of a hash of each run's (id, status, attempts), so a run that lost its last state change
/// is noticed as well as a lost run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Census {
    pub runs: usize,
    pub done: usize,
    pub sweeps: usize,
    pub digest: u64,
}

impl Census {
    /// FNV-1a (stable across builds, unlike std's hasher) of what the digest covers.
    fn hash(id: &[u8], status: RunStatus, attempts: u32) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let attempts = attempts.to_le_bytes();
        let bytes = id
            .iter()
            .chain(&[0xff])
            .chain(status.as_str().as_bytes())
            .chain(&[0xff])
            .chain(&attempts);
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }

    fn add(&mut self, id: &[u8], status: RunStatus, attempts: u32) {
        self.digest ^= Self::hash(id, status, attempts);
        self.done += (status == RunStatus::Done) as usize;
    }

    fn remove(&mut self, id: &[u8], status: RunStatus, attempts: u32) {
        self.digest ^= Self::hash(id, status, attempts);
        self.done -= (status == RunStatus::Done) as usize;
    }
}

/// The census file: the counts, and whether a change was under way when it was written (then
/// the store may hold that change too, so only fewer runs or sweeps are damage).
#[derive(serde::Serialize, serde::Deserialize)]
struct CensusFile {
    census: Census,
    changing: bool,
}

#[derive(Default)]
struct CensusState {
    now: Census,
    /// A change is written to sled but not yet flushed.
    dirty: bool,
}

impl std::fmt::Display for Census {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} runs ({} done) in {} sweeps, states {:08x}",
            self.runs,
            self.done,
            self.sweeps,
            self.digest >> 32
        )
    }
}

const CENSUS: &str = "census.json";

pub struct Store {
    path: PathBuf,
    census: std::sync::Mutex<CensusState>,
    db: sled::Db,
    sweeps: sled::Tree,
    runs: sled::Tree,
    attempts: sled::Tree,
    metrics: sled::Tree,
    active: sled::Tree,
}

fn decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        tree,
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialise")
}

fn attempt_key(id: &RunId, n: u32) -> Vec<u8> {
    let mut k = id.as_str().as_bytes().to_vec();
    k.extend_from_slice(&n.to_be_bytes());
    k
}

fn metric_key(id: &RunId, split: &str, name: &str) -> Vec<u8> {
    let mut k = id.as_str().as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(split.as_bytes());
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k
}

impl Store {
    /// Opens (or creates) the store in `dir`; a store holding less than its census is refused
    /// as damaged.
    pub fn open(dir: &Path) -> Result<Store> {
        Self::open_with(dir, true)
    }

    /// Opens the store whatever its census says, to repair it by importing an export (which
    /// counts it afresh).
    pub fn open_to_repair(dir: &Path) -> Result<Store> {
        Self::open_with(dir, false)
    }

    fn open_with(dir: &Path, check: bool) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
            path: dir.to_path_buf(),
            source: sled::Error::Io(e),
        })?;
        let db = open_sled(dir)?;
        let meta = db.open_tree("meta")?;
        match meta.get("layout")? {
            None => {
                meta.insert("layout", LAYOUT_VERSION)?;
            }
            Some(v) if v.as_ref() == LAYOUT_VERSION.as_bytes() => {}
            Some(v) => {
                return Err(StoreError::Layout {
                    path: dir.to_path_buf(),
                    found: String::from_utf8_lossy(&v).into_owned(),
                });
            }
        }
        let store = Store {
            path: dir.to_path_buf(),
            census: Default::default(),
            sweeps: db.open_tree("sweeps")?,
            runs: db.open_tree("runs")?,
            attempts: db.open_tree("attempts")?,
            metrics: db.open_tree("metrics")?,
            active: db.open_tree("active")?,
            db,
        };
        let found = store.count()?;
        let census = dir.join(CENSUS);
        if check {
            match std::fs::read(&census) {
                Ok(bytes) => {
                    let file: CensusFile =
                        serde_json::from_slice(&bytes).map_err(|e| StoreError::Census {
                            path: dir.to_path_buf(),
                            census: census.clone(),
                            message: e.to_string(),
                        })?;
                    let expected = file.census;
                    let damaged = if file.changing {
                        found.runs < expected.runs || found.sweeps < expected.sweeps
                    } else {
                        found != expected
                    };
                    if damaged {
                        return Err(StoreError::Damaged {
                            path: dir.to_path_buf(),
                            found,
                            expected,
                        });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StoreError::Census {
                        path: dir.to_path_buf(),
                        census,
                        message: e.to_string(),
                    });
                }
            }
        }
        {
            let mut c = store.census.lock().expect("census lock");
            c.now = found;
            c.dirty = true;
        }
        store.flush()?;
        Ok(store)
    }

    /// Counts what the store holds.
    fn count(&self) -> Result<Census> {
        #[derive(serde::Deserialize)]
        struct State {
            status: RunStatus,
            attempts: u32,
        }
        let mut c = Census {
            sweeps: self.sweeps.len(),
            ..Default::default()
        };
        for kv in self.runs.iter() {
            let (k, v) = kv?;
            let s: State = decode("runs", &k, &v)?;
            c.runs += 1;
            c.add(&k, s.status, s.attempts);
        }
        Ok(c)
    }

    fn write_census(&self, census: Census, changing: bool) -> Result<()> {
        let path = self.path.join(CENSUS);
        let tmp = self.path.join(format!("{CENSUS}.tmp"));
        std::fs::write(&tmp, encode(&CensusFile { census, changing }))
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| StoreError::Open {
                path,
                source: sled::Error::Io(e),
            })
    }

    /// Marks the census as changing before a change reaches sled (whose background flush may
    /// write it at any moment), then applies `change` to the counts.
    fn change(&self, change: impl FnOnce(&mut Census)) -> Result<()> {
        let mut c = self.census.lock().expect("census lock");
        if !c.dirty {
            self.write_census(c.now, true)?;
            c.dirty = true;
        }
        change(&mut c.now);
        Ok(())
    }

    /// Marks the census as changing, before a write whose effect on the counts is known only
    /// once it succeeds.
    fn mark_changing(&self) -> Result<()> {
        self.change(|_| {})
    }

    /// What the store holds, as its census counts it.
    pub fn census(&self) -> Census {
        self.census.lock().expect("census lock").now
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        let mut c = self.census.lock().expect("census lock");
        if c.dirty {
            self.write_census(c.now, false)?;
            c.dirty = false;
        }
        Ok(())
    }

    // ---- sweeps ----

    pub fn sweep(&self, name: &str) -> Result<Option<SweepRecord>> {
        self.sweeps
            .get(name)?
            .map(|b| decode("sweeps", name.as_bytes(), &b))
            .transpose()
    }

    pub fn sweeps(&self) -> Result<Vec<SweepRecord>> {
        self.sweeps
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode("sweeps", &k, &v)
            })
            .collect()
    }

    /// Records a sweep and its runs: new runs are inserted as `pending`, every run gains the
    /// sweep's membership, runs the sweep no longer lists lose it. Returns the previous record.
    pub fn register_sweep(
        &self,
        sweep: SweepRecord,
        runs: &[(RunId, serde_json::Value, serde_json::Value, RunId)],
    ) -> Result<Option<SweepRecord>> {
        let previous = self.sweep(&sweep.name)?;
        let now = now_ms();
        let mut batch = sled::Batch::default();
        let mut added = Vec::new();
        for (id, spec, canonical, setting) in runs {
            let key = id.as_str().as_bytes();
            let (mut rec, is_new) = match self.runs.get(key)? {
                Some(b) => (decode::<RunRecord>("runs", key, &b)?, false),
                None => (
                    RunRecord::new(
                        id.clone(),
                        spec.clone(),
                        canonical.clone(),
                        setting.clone(),
                        now,
                    ),
                    true,
                ),
            };
            if rec.sweeps.insert(sweep.name.clone()) || is_new {
                rec.updated_ms = now;
                batch.insert(key, encode(&rec));
            }
            if is_new {
                added.push((key.to_vec(), rec.status, rec.attempts));
            }
        }
        if let Some(prev) = &previous {
            let keep: std::collections::HashSet<&RunId> = runs.iter().map(|r| &r.0).collect();
            for id in prev.runs.iter().filter(|id| !keep.contains(id)) {
                if let Some(mut rec) = self.run(id)? {
                    rec.sweeps.remove(&sweep.name);
                    batch.insert(id.as_str().as_bytes(), encode(&rec));
                }
            }
        }
        let new_sweep = previous.is_none() as usize;
        self.change(|c| {
            for (k, status, attempts) in &added {
                c.runs += 1;
                c.add(k, *status, *attempts);
            }
            c.sweeps += new_sweep;
        })?;
        self.runs.apply_batch(batch)?;
        self.sweeps.insert(sweep.name.as_bytes(), encode(&sweep))?;
        self.flush()?;
        Ok(previous)
    }

    // ---- runs ----

    pub fn run(&self, id: &RunId) -> Result<Option<RunRecord>> {
        let key = id.as_str().as_bytes();
        self.runs
            .get(key)?
            .map(|b| decode("runs", key, &b))
            .transpose()
    }

    /// A run by id or unique id prefix.
    pub fn find_run(&self, prefix: &str) -> Result<RunRecord> {
        let mut found = self
            .runs
            .scan_prefix(prefix.to_ascii_lowercase().as_bytes());
        match (found.next(), found.next()) {
            (Some(kv), None) => {
                let (k, v) = kv?;
                decode("runs", &k, &v)
            }
            (Some(_), Some(_)) => Err(StoreError::Ambiguous(prefix.to_string())),
            _ => Err(StoreError::NoRun(prefix.to_string())),
        }
    }

    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        self.runs
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode("runs", &k, &v)
            })
            .collect()
    }

    pub fn run_count(&self) -> usize {
        self.runs.len()
    }

    /// Applies `f` to a run record atomically (compare-and-swap loop); `f` may refuse.
    fn update_run<T>(
        &self,
        id: &RunId,
        mut f: impl FnMut(&mut RunRecord) -> Result<T>,
    ) -> Result<T> {
        let key = id.as_str().as_bytes();
        loop {
            let old = self
                .runs
                .get(key)?
                .ok_or_else(|| StoreError::NoRun(id.to_string()))?;
            let mut rec: RunRecord = decode("runs", key, &old)?;
            let before = (rec.status, rec.attempts);
            let out = f(&mut rec)?;
            rec.updated_ms = now_ms();
            let after = (rec.status, rec.attempts);
            if before != after {
                self.mark_changing()?;
            }
            if self
                .runs
                .compare_and_swap(key, Some(old), Some(encode(&rec)))?
                .is_ok()
            {
                if before != after {
                    self.change(|c| {
                        c.remove(key, before.0, before.1);
                        c.add(key, after.0, after.1);
                    })?;
                }
                return Ok(out);
            }
        }
    }

    /// Claims a run for a new attempt: `pending` or `failed` → `running`, atomically, so no run
    /// id is ever executed twice at once. Returns the new attempt's number.
    pub fn claim(&self, id: &RunId, owner: &str, attempt: Attempt) -> Result<u32> {
        let n = self.update_run(id, |rec| {
            if matches!(rec.status, RunStatus::Running | RunStatus::Done) {
                return Err(StoreError::NotClaimable {
                    id: id.clone(),
                    status: rec.status,
                });
            }
            rec.attempts += 1;
            rec.status = RunStatus::Running;
            rec.claim = Some(Claim {
                owner: owner.to_string(),
                attempt: rec.attempts,
                at_ms: now_ms(),
            });
            Ok(rec.attempts)
        })?;
        let attempt = Attempt { n, ..attempt };
        self.attempts.insert(attempt_key(id, n), encode(&attempt))?;
        self.active.insert(id.as_str().as_bytes(), &[])?;
        self.flush()?;
        Ok(n)
    }

    /// Ends a claimed attempt: records its outcome and moves the run to `done` (success),
    /// `failed`, or back to `pending` (interrupted: it will run again).
    pub fn finish(
        &self,
        id: &RunId,
        n: u32,
        outcome: AttemptOutcome,
        exit: Option<ExitInfo>,
        reason: Option<String>,
        stderr_tail: Vec<String>,
    ) -> Result<()> {
        let key = attempt_key(id, n);
        if let Some(b) = self.attempts.get(&key)? {
            let mut a: Attempt = decode("attempts", &key, &b)?;
            a.ended_ms = Some(now_ms());
            a.outcome = outcome;
            a.exit = exit;
            a.reason = reason.clone();
            a.stderr_tail = stderr_tail;
            self.attempts.insert(&key, encode(&a))?;
        }
        self.update_run(id, |rec| {
            rec.status = match outcome {
                AttemptOutcome::Succeeded => RunStatus::Done,
                AttemptOutcome::Failed => RunStatus::Failed,
                AttemptOutcome::Interrupted | AttemptOutcome::Running => RunStatus::Pending,
            };
            rec.claim = None;
            rec.reason = match outcome {
                AttemptOutcome::Succeeded => None,
                _ => reason.clone(),
            };
            Ok(())
        })?;
        self.active.remove(id.as_str().as_bytes())?;
        self.flush()
    }

    /// Runs left `running` by a coordinator that died. Holding the store means no other
    /// coordinator is alive, so each is marked interrupted and becomes pending again, except
    /// attempts a batch system executes (`Attempt::job`): they outlive their coordinator and
    /// are left for the next one to re-attach.
    pub fn recover_interrupted(&self) -> Result<Vec<RunId>> {
        let mut out = Vec::new();
        for (id, n) in self.active_attempts()? {
            if self.attempt(&id, n)?.is_some_and(|a| a.job.is_some()) {
                continue;
            }
            self.finish(
                &id,
                n,
                AttemptOutcome::Interrupted,
                None,
                Some("the coordinator stopped while the run was in progress".into()),
                Vec::new(),
            )?;
            out.push(id);
        }
        self.flush()?;
        Ok(out)
    }

    /// The runs `running` now, each with its current attempt's number (stale entries of the
    /// index are dropped on the way).
    pub fn active_attempts(&self) -> Result<Vec<(RunId, u32)>> {
        let mut out = Vec::new();
        for kv in self.active.iter() {
            let (k, _) = kv?;
            let id: RunId = String::from_utf8_lossy(&k)
                .parse()
                .map_err(|_| StoreError::NoRun(String::from_utf8_lossy(&k).into_owned()))?;
            match self.run(&id)? {
                Some(rec) if rec.status == RunStatus::Running => {
                    let n = rec
                        .claim
                        .as_ref()
                        .map(|c| c.attempt)
                        .unwrap_or(rec.attempts);
                    out.push((id, n));
                }
                _ => {
                    self.active.remove(&k)?;
                }
            }
        }
        Ok(out)
    }

    /// One attempt of a run.
    pub fn attempt(&self, id: &RunId, n: u32) -> Result<Option<Attempt>> {
        let key = attempt_key(id, n);
        self.attempts
            .get(&key)?
            .map(|b| decode("attempts", &key, &b))
            .transpose()
    }

    /// Records the process id and machine of an attempt's worker, as it reported them.
    pub fn set_attempt_worker(
        &self,
        id: &RunId,
        n: u32,
        pid: u32,
        node: Option<String>,
    ) -> Result<()> {
        let key = attempt_key(id, n);
        if let Some(b) = self.attempts.get(&key)? {
            let mut a: Attempt = decode("attempts", &key, &b)?;
            a.pid = Some(pid);
            a.node = node;
            self.attempts.insert(&key, encode(&a))?;
        }
        Ok(())
    }

    /// Records the fingerprint of the dataset an attempt read.
    pub fn set_attempt_data(&self, id: &RunId, n: u32, fingerprint: &str) -> Result<()> {
        let key = attempt_key(id, n);
        if let Some(b) = self.attempts.get(&key)? {
            let mut a: Attempt = decode("attempts", &key, &b)?;
            a.data = Some(fingerprint.to_string());
            self.attempts.insert(&key, encode(&a))?;
        }
        Ok(())
    }

    /// Makes a done run pending again (its data changed and the user asked for it to run
    /// again); its attempts stay.
    pub fn reopen(&self, id: &RunId, reason: &str) -> Result<()> {
        self.update_run(id, |rec| {
            if rec.status == RunStatus::Done {
                rec.status = RunStatus::Pending;
                rec.reason = Some(reason.to_string());
            }
            Ok(())
        })?;
        self.flush()
    }

    /// Records the batch system's id of an attempt's job once it accepted the submission.
    pub fn set_job_id(&self, id: &RunId, n: u32, job_id: &str) -> Result<()> {
        let key = attempt_key(id, n);
        if let Some(b) = self.attempts.get(&key)? {
            let mut a: Attempt = decode("attempts", &key, &b)?;
            if let Some(j) = &mut a.job {
                j.id = Some(job_id.to_string());
            }
            self.attempts.insert(&key, encode(&a))?;
        }
        Ok(())
    }

    /// Records an artefact path of a run.
    pub fn add_artefact(&self, id: &RunId, name: &str, path: &str) -> Result<()> {
        self.update_run(id, |rec| {
            rec.artefacts.insert(name.to_string(), path.to_string());
            Ok(())
        })
    }

    /// Sets a summary value of a run (shown by `runs`, used by reports). Non-finite values are
    /// not summaries (JSON cannot hold them): they stay in the metric series only.
    pub fn set_summary(&self, id: &RunId, name: &str, value: f64) -> Result<()> {
        if !value.is_finite() {
            return Ok(());
        }
        self.update_run(id, |rec| {
            rec.summary.insert(name.to_string(), value);
            Ok(())
        })
    }

    // ---- attempts ----

    pub fn attempts(&self, id: &RunId) -> Result<Vec<Attempt>> {
        self.attempts
            .scan_prefix(id.as_str().as_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                decode("attempts", &k, &v)
            })
            .collect()
    }

    // ---- metrics ----

    /// Adds a point to a series; a point at an existing step replaces it (a resumed run re-emits
    /// the steps it redoes).
    pub fn append_metric(
        &self,
        id: &RunId,
        split: &str,
        name: &str,
        step: u64,
        value: f64,
    ) -> Result<()> {
        self.metrics
            .update_and_fetch(metric_key(id, split, name), |old| {
                let mut s = old.map(Series::decode).unwrap_or_default();
                s.insert(step, value);
                Some(s.encode())
            })?;
        Ok(())
    }

    /// All series of a run: `(split, name) → series`.
    pub fn metrics(&self, id: &RunId) -> Result<BTreeMap<(String, String), Series>> {
        let mut prefix = id.as_str().as_bytes().to_vec();
        prefix.push(0);
        let mut out = BTreeMap::new();
        for kv in self.metrics.scan_prefix(&prefix) {
            let (k, v) = kv?;
            let rest = &k[prefix.len()..];
            let mut parts = rest.splitn(2, |b| *b == 0);
            let split = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            let name = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            out.insert((split, name), Series::decode(&v));
        }
        Ok(out)
    }

    /// Writes the whole store as JSON lines: one object per sweep, run, attempt and series,
    /// each tagged with `"type"`.
    /// Reads an export (`export_jsonl`) into this store: sweeps, runs, attempts and series,
    /// replacing records with the same keys. A line that is not a record of the export format
    /// stops the import with its line number; nothing is flushed before the whole file is read.
    pub fn import_jsonl(&self, input: impl std::io::BufRead) -> Result<usize> {
        let bad = |line: usize, m: String| StoreError::Import { line, message: m };
        let mut n = 0;
        let (mut runs, mut attempts, mut metrics) = (
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
        );
        let mut sweeps = Vec::new();
        for (i, line) in input.lines().enumerate() {
            let line = line.map_err(|e| bad(i + 1, e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            let mut v: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| bad(i + 1, e.to_string()))?;
            let kind = v["type"].as_str().unwrap_or_default().to_string();
            match kind.as_str() {
                "sweep" => {
                    let s: SweepRecord =
                        serde_json::from_value(v).map_err(|e| bad(i + 1, e.to_string()))?;
                    sweeps.push(s);
                }
                "run" => {
                    let r: RunRecord =
                        serde_json::from_value(v).map_err(|e| bad(i + 1, e.to_string()))?;
                    runs.insert(r.id.as_str().as_bytes(), encode(&r));
                }
                "attempt" => {
                    let id: RunId = v["run"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| bad(i + 1, "attempt without a `run` id".into()))?;
                    if let Some(o) = v.as_object_mut() {
                        o.remove("run");
                        o.remove("type");
                    }
                    let a: Attempt =
                        serde_json::from_value(v).map_err(|e| bad(i + 1, e.to_string()))?;
                    attempts.insert(attempt_key(&id, a.n), encode(&a));
                }
                "series" => {
                    let id: RunId = v["run"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| bad(i + 1, "series without a `run` id".into()))?;
                    let (Some(split), Some(name), Some(steps), Some(values)) = (
                        v["split"].as_str(),
                        v["name"].as_str(),
                        v["steps"].as_array(),
                        v["values"].as_array(),
                    ) else {
                        return Err(bad(i + 1, "series needs split, name, steps, values".into()));
                    };
                    let mut series = Series::default();
                    for (st, va) in steps.iter().zip(values) {
                        let x = match va {
                            serde_json::Value::String(t) => match t.as_str() {
                                "inf" => f64::INFINITY,
                                "-inf" => f64::NEG_INFINITY,
                                _ => f64::NAN,
                            },
                            other => other.as_f64().unwrap_or(f64::NAN),
                        };
                        series.insert(st.as_u64().unwrap_or(0), x);
                    }
                    metrics.insert(metric_key(&id, split, name), series.encode());
                }
                other => return Err(bad(i + 1, format!("unknown record type `{other}`"))),
            }
            n += 1;
        }
        self.mark_changing()?;
        self.runs.apply_batch(runs)?;
        self.attempts.apply_batch(attempts)?;
        self.metrics.apply_batch(metrics)?;
        for s in sweeps {
            self.sweeps.insert(s.name.as_bytes(), encode(&s))?;
        }
        let found = self.count()?;
        self.change(|c| *c = found)?;
        self.flush()?;
        Ok(n)
    }

    pub fn export_jsonl(&self, out: &mut dyn Write) -> Result<()> {
        for s in self.sweeps()? {
            let mut v = serde_json::to_value(&s).expect("records serialise");
            v["type"] = "sweep".into();
            writeln!(out, "{v}")?;
        }
        for kv in self.runs.iter() {
            let (k, b) = kv?;
            let rec: RunRecord = decode("runs", &k, &b)?;
            let mut v = serde_json::to_value(&rec).expect("records serialise");
            v["type"] = "run".into();
            writeln!(out, "{v}")?;
            for a in self.attempts(&rec.id)? {
                let mut v = serde_json::to_value(&a).expect("records serialise");
                v["type"] = "attempt".into();
                v["run"] = rec.id.as_str().into();
                writeln!(out, "{v}")?;
            }
            for ((split, name), series) in self.metrics(&rec.id)? {
                let v = serde_json::json!({
                    "type": "series", "run": rec.id, "split": split, "name": name,
                    "steps": series.steps(), "values": series.values_json(),
                });
                writeln!(out, "{v}")?;
            }
        }
        Ok(())
    }
}

/// sled drops its file lock from a background thread once the last handle goes, so a store this
/// process has just closed can read as locked for a moment: the lock is retried for up to 3 s
/// before it is reported as held by another process.
fn open_sled(dir: &Path) -> Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let r = sled::Config::new().path(dir).open().map_err(|e| match e {
            sled::Error::Io(io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("lock") =>
            {
                StoreError::Locked {
                    path: dir.to_path_buf(),
                }
            }
            e => StoreError::Open {
                path: dir.to_path_buf(),
                source: e,
            },
        });
        match r {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use t4v_core::Provenance;

    fn id(n: u8) -> RunId {
        format!("{:016x}", n).parse().unwrap()
    }

    fn sweep(name: &str, runs: &[RunId]) -> SweepRecord {
        SweepRecord {
            name: name.into(),
            script_path: "x.rhai".into(),
            script: "".into(),
            script_hash: "h".into(),
            runs: runs.to_vec(),
            reports: vec![],
            created_ms: 0,
            updated_ms: 0,
            revision: 1,
        }
    }

    fn entry(n: u8) -> (RunId, serde_json::Value, serde_json::Value, RunId) {
        (
            id(n),
            json!({"kind": "selftest"}),
            json!({"kind": "selftest"}),
            id(200),
        )
    }

    #[test]
    fn claim_is_exclusive_and_outcomes_move_status() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .register_sweep(sweep("a", &[id(1)]), &[entry(1)])
            .unwrap();
        let n = store
            .claim(&id(1), "me", Attempt::starting(Provenance::default()))
            .unwrap();
        assert_eq!(n, 1);
        assert!(matches!(
            store.claim(&id(1), "other", Attempt::starting(Provenance::default())),
            Err(StoreError::NotClaimable {
                status: RunStatus::Running,
                ..
            })
        ));
        store
            .finish(
                &id(1),
                n,
                AttemptOutcome::Failed,
                None,
                Some("boom".into()),
                vec!["x".into()],
            )
            .unwrap();
        let r = store.run(&id(1)).unwrap().unwrap();
        assert_eq!(
            (r.status, r.reason.as_deref()),
            (RunStatus::Failed, Some("boom"))
        );
        let n2 = store
            .claim(&id(1), "me", Attempt::starting(Provenance::default()))
            .unwrap();
        assert_eq!(n2, 2);
        store
            .finish(&id(1), n2, AttemptOutcome::Succeeded, None, None, vec![])
            .unwrap();
        assert!(
            store
                .claim(&id(1), "me", Attempt::starting(Provenance::default()))
                .is_err()
        );
        let attempts = store.attempts(&id(1)).unwrap();
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[0].stderr_tail, vec!["x".to_string()]);
    }

    #[test]
    fn an_export_imports_into_an_equal_store() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(&dir.path().join("a")).unwrap();
        a.register_sweep(sweep("s", &[id(1), id(2)]), &[entry(1), entry(2)])
            .unwrap();
        let n = a
            .claim(&id(1), "me", Attempt::starting(Provenance::default()))
            .unwrap();
        a.append_metric(&id(1), "train", "loss", 1, 0.5).unwrap();
        a.append_metric(&id(1), "train", "loss", 2, f64::NAN)
            .unwrap();
        a.set_summary(&id(1), "test/top1", 71.5).unwrap();
        a.finish(&id(1), n, AttemptOutcome::Succeeded, None, None, vec![])
            .unwrap();
        let mut first = Vec::new();
        a.export_jsonl(&mut first).unwrap();
        let b = Store::open(&dir.path().join("b")).unwrap();
        let records = b.import_jsonl(first.as_slice()).unwrap();
        assert_eq!(records, 1 + 2 + 1 + 1, "sweep, runs, attempt, series");
        let mut second = Vec::new();
        b.export_jsonl(&mut second).unwrap();
        assert_eq!(
            String::from_utf8(first).unwrap(),
            String::from_utf8(second).unwrap()
        );
        let err = b
            .import_jsonl("{\"type\": \"run\"}\n".as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("import, line 1: missing field"), "{err}");
    }

    #[test]
    fn concurrent_claims_give_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
        store
            .register_sweep(sweep("a", &[id(1)]), &[entry(1)])
            .unwrap();
        let winners: usize = (0..8)
            .map(|t| {
                let s = store.clone();
                std::thread::spawn(move || {
                    s.claim(
                        &id(1),
                        &format!("w{t}"),
                        Attempt::starting(Provenance::default()),
                    )
                    .is_ok() as usize
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(winners, 1);
    }

    #[test]
    fn interrupted_runs_recover_and_data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .register_sweep(sweep("a", &[id(1), id(2)]), &[entry(1), entry(2)])
                .unwrap();
            store
                .claim(&id(1), "me", Attempt::starting(Provenance::default()))
                .unwrap();
            store
                .append_metric(&id(1), "train", "loss", 0, 1.0)
                .unwrap();
            store
                .append_metric(&id(1), "train", "loss", 1, 0.5)
                .unwrap();
            store.flush().unwrap();
            assert!(matches!(
                Store::open(dir.path()),
                Err(StoreError::Locked { .. })
            ));
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.recover_interrupted().unwrap(), vec![id(1)]);
        let r = store.run(&id(1)).unwrap().unwrap();
        assert_eq!(r.status, RunStatus::Pending);
        assert_eq!(
            store.attempts(&id(1)).unwrap()[0].outcome,
            AttemptOutcome::Interrupted
        );
        let m = store.metrics(&id(1)).unwrap();
        assert_eq!(
            m[&("train".to_string(), "loss".to_string())].points(),
            &[(0, 1.0), (1, 0.5)]
        );
        assert!(store.recover_interrupted().unwrap().is_empty());
    }

    #[test]
    fn sweeps_share_runs_and_removal_drops_membership() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .register_sweep(sweep("a", &[id(1), id(2)]), &[entry(1), entry(2)])
            .unwrap();
        store
            .register_sweep(sweep("b", &[id(2)]), &[entry(2)])
            .unwrap();
        assert_eq!(store.run_count(), 2);
        let r2 = store.run(&id(2)).unwrap().unwrap();
        assert_eq!(r2.sweeps.iter().collect::<Vec<_>>(), vec!["a", "b"]);
        let prev = store
            .register_sweep(sweep("a", &[id(1)]), &[entry(1)])
            .unwrap()
            .unwrap();
        assert_eq!(prev.runs, vec![id(1), id(2)]);
        let r2 = store.run(&id(2)).unwrap().unwrap();
        assert_eq!(r2.sweeps.iter().collect::<Vec<_>>(), vec!["b"]);
        let mut out = Vec::new();
        store.export_jsonl(&mut out).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.iter().filter(|l| l["type"] == "run").count(), 2);
        assert_eq!(lines.iter().filter(|l| l["type"] == "sweep").count(), 2);
        assert!(
            store
                .find_run("00000000000000")
                .unwrap_err()
                .to_string()
                .contains("ambiguous")
        );
    }
}
