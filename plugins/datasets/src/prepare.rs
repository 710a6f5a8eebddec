//! `prepare` (feature `video`): a dataset's video files as the frame folders the reference
//! reads, with its list files and label CSV, so that `data` and every run read the result
//! without further options.
//!
//! Resumable by construction: a video's frames are written under `<out>/.partial/` and each
//! folder is renamed into `<out>/frames/` only when complete, so a killed `prepare` leaves
//! complete folders and scratch that the next one clears; folders already in `frames/` are not
//! made again. The manifest (`manifest.json`) records the options, every folder's frame count
//! and every failure with its reason; a rerun with other options is refused rather than mixing
//! two kinds of frames in one folder.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use t4v_core::plugin::PluginError;
use t4v_core::{Dataset, Media};
use t4v_video::extract::{self, Target};
use t4v_video::frames::FramePattern;
use t4v_video::jpeg::Encoder;

use crate::FULL;

/// One video file and the frame folders it becomes (several for ActivityNet's segments).
#[derive(Clone, Debug)]
pub struct Job {
    pub video: PathBuf,
    /// Folder under `frames/`, and the seconds of the video it holds.
    pub targets: Vec<(PathBuf, Option<[f64; 2]>)>,
}

/// What to extract and which lists to write, from a dataset's opened splits.
#[derive(Debug, Default)]
pub struct Plan {
    pub jobs: Vec<Job>,
    /// List name (`train`, `test_split2`, ...) → (folder, label) per video.
    pub lists: BTreeMap<String, Vec<(PathBuf, usize)>>,
    pub classes: Vec<String>,
    /// Annotation files under the dataset's root, copied beside the frames.
    pub annotations: Vec<PathBuf>,
    pub root: PathBuf,
}

fn invalid(m: impl Into<String>) -> PluginError {
    PluginError::Invalid(m.into())
}

impl Plan {
    /// The plan for a dataset opened once per official split (`(suffix, dataset)`: the suffix
    /// names that split's lists, empty for a dataset with one).
    pub fn of(root: &Path, opened: &[(String, &dyn Dataset)]) -> Result<Plan, PluginError> {
        let mut plan = Plan {
            root: root.to_path_buf(),
            ..Default::default()
        };
        let mut by_video: HashMap<PathBuf, usize> = HashMap::new();
        for (suffix, ds) in opened {
            let media_root = match ds.media() {
                Media::Videos { root } => root,
                Media::Frames { root, .. } => {
                    return Err(invalid(format!(
                        "{}: the dataset's media are frame folders already; prepare reads video files",
                        root.display()
                    )));
                }
                Media::Synthetic { .. } => {
                    return Err(invalid("a synthetic dataset has no videos to prepare"));
                }
            };
            if plan.classes.is_empty() {
                plan.classes = ds.class_names().to_vec();
            }
            for f in ds.annotation_files() {
                if !plan.annotations.contains(&f) {
                    plan.annotations.push(f);
                }
            }
            for split in ds.splits().into_iter().filter(|s| s != FULL) {
                let videos = ds.videos(&split)?;
                let folders = ds
                    .folders(&split)
                    .ok_or_else(|| invalid(format!("split {split}: not stored as files")))?;
                let list = plan.lists.entry(format!("{split}{suffix}")).or_default();
                for (v, folder) in videos.into_iter().zip(folders) {
                    list.push((folder.clone(), v.label));
                    let path = media_root.join(&v.path);
                    let j = *by_video.entry(path.clone()).or_insert_with(|| {
                        plan.jobs.push(Job {
                            video: path,
                            targets: Vec::new(),
                        });
                        plan.jobs.len() - 1
                    });
                    let t = &mut plan.jobs[j].targets;
                    if !t.iter().any(|(f, _)| *f == folder) {
                        t.push((folder, v.span));
                    }
                }
            }
        }
        Ok(plan)
    }

    pub fn folders(&self) -> usize {
        self.jobs.iter().map(|j| j.targets.len()).sum()
    }
}

/// How frames are written, and where.
#[derive(Clone, Debug)]
pub struct Options {
    pub out: PathBuf,
    pub jobs: usize,
    pub pattern: String,
    pub extract: extract::Options,
}

/// The manifest of a prepared folder.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub source: PathBuf,
    pub pattern: String,
    pub short_side: u32,
    pub fps: Option<f64>,
    pub quality: u8,
    /// Every complete folder: frame count and the video it came from.
    pub folders: BTreeMap<PathBuf, Folder>,
    pub failures: Vec<Failure>,
    /// List name → file, relative to the output folder; and the label CSV.
    pub lists: BTreeMap<String, PathBuf>,
    pub labels: PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Folder {
    pub frames: usize,
    pub video: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<[f64; 2]>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Failure {
    pub video: PathBuf,
    pub folders: Vec<PathBuf>,
    pub reason: String,
}

/// Progress, after each video.
#[derive(Clone, Debug)]
pub struct Tick {
    /// Videos finished (made, failed, or found done) of `total`.
    pub done: usize,
    pub total: usize,
    /// Videos found done when it started, and failed so far.
    pub skipped: usize,
    pub failed: usize,
    /// Frames written so far, and the time since the start.
    pub frames: usize,
    pub elapsed: Duration,
}

/// What a `prepare` did.
#[derive(Debug)]
pub struct Summary {
    pub manifest: Manifest,
    /// Videos extracted now, found done, failed; frames written now.
    pub made: usize,
    pub skipped: usize,
    pub failed: usize,
    pub frames: usize,
    pub elapsed: Duration,
}

pub const MANIFEST: &str = "manifest.json";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PluginError + '_ {
    move |e| PluginError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes a file whole or not at all (a temporary file renamed over it).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), PluginError> {
    if from.is_dir() {
        std::fs::create_dir_all(to).map_err(io(to))?;
        for e in std::fs::read_dir(from).map_err(io(from))? {
            let e = e.map_err(io(from))?;
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
        Ok(())
    } else {
        let bytes = std::fs::read(from).map_err(io(from))?;
        write_atomic(to, &bytes)
    }
}

/// One video's result: per target, its frame count or why it has none.
type Made = Vec<Result<usize, String>>;

fn make(
    job: &Job,
    missing: &[usize],
    scratch: &Path,
    frames_root: &Path,
    pattern: &FramePattern,
    opts: &extract::Options,
    encoder: &mut Encoder,
) -> Made {
    let tmp: Vec<PathBuf> = missing
        .iter()
        .map(|t| scratch.join(t.to_string()))
        .collect();
    let fail_all = |reason: String| missing.iter().map(|_| Err(reason.clone())).collect();
    let _ = std::fs::remove_dir_all(scratch);
    for d in &tmp {
        if let Err(e) = std::fs::create_dir_all(d) {
            return fail_all(format!("{}: {e}", d.display()));
        }
    }
    let targets: Vec<Target> = missing
        .iter()
        .zip(&tmp)
        .map(|(&t, dir)| Target {
            dir,
            span: job.targets[t].1,
        })
        .collect();
    let result = extract::extract(&job.video, &targets, pattern, opts, encoder);
    let made = match result {
        Err(e) => fail_all(e.to_string()),
        Ok(x) => missing
            .iter()
            .zip(&tmp)
            .zip(x.frames)
            .map(|((&t, dir), n)| {
                let folder = &job.targets[t].0;
                if n == 0 {
                    let s = job.targets[t].1.unwrap_or_default();
                    return Err(format!(
                        "{}: no frame in {folder:?} (segment {:.2}–{:.2} s of {} decoded frames at {:.3} fps)",
                        job.video.display(),
                        s[0],
                        s[1],
                        x.decoded,
                        x.fps
                    ));
                }
                let dest = frames_root.join(folder);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("{}: {e}", parent.display()))?;
                }
                std::fs::rename(dir, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
                Ok(n)
            })
            .collect(),
    };
    let _ = std::fs::remove_dir_all(scratch);
    made
}

/// Extracts every video of `plan` into `opts.out` and writes its manifest, lists, label CSV and
/// a copy of the annotations; `tick` is called after each video.
pub fn run(
    plan: &Plan,
    opts: &Options,
    mut tick: impl FnMut(&Tick),
) -> Result<Summary, PluginError> {
    let start = Instant::now();
    let pattern = FramePattern::parse(&opts.pattern).map_err(|e| invalid(e.to_string()))?;
    let out = &opts.out;
    let frames_root = out.join("frames");
    let scratch_root = out.join(".partial");
    let manifest_path = out.join(MANIFEST);
    let before: Option<Manifest> = match std::fs::read(&manifest_path) {
        Ok(b) => Some(serde_json::from_slice(&b).map_err(|e| PluginError::File {
            path: manifest_path.clone(),
            message: e.to_string(),
        })?),
        Err(_) => None,
    };
    if let Some(m) = &before {
        let now = (&opts.pattern, opts.extract.short_side, opts.extract.fps);
        let then = (&m.pattern, m.short_side, m.fps);
        if now != then {
            return Err(PluginError::File {
                path: manifest_path.clone(),
                message: format!(
                    "prepared with pattern {}, short side {}, fps {}; now asked for {}, {}, {}: use another --out (or delete this one)",
                    m.pattern,
                    m.short_side,
                    fps_name(m.fps),
                    opts.pattern,
                    opts.extract.short_side,
                    fps_name(opts.extract.fps)
                ),
            });
        }
    }
    std::fs::create_dir_all(&frames_root).map_err(io(&frames_root))?;
    // One `prepare` per output at a time (the lock goes with the process, killed or not).
    let lock_path = out.join(".prepare.lock");
    let lock = std::fs::File::create(&lock_path).map_err(io(&lock_path))?;
    if let Err(e) = lock.try_lock() {
        return Err(PluginError::File {
            path: lock_path,
            message: match e {
                std::fs::TryLockError::WouldBlock => {
                    "another prepare is writing to this folder".into()
                }
                std::fs::TryLockError::Error(e) => e.to_string(),
            },
        });
    }
    // Scratch of a killed run: incomplete by construction.
    if scratch_root.exists() {
        std::fs::remove_dir_all(&scratch_root).map_err(io(&scratch_root))?;
    }
    std::fs::create_dir_all(&scratch_root).map_err(io(&scratch_root))?;

    let mut manifest = Manifest {
        source: plan.root.clone(),
        pattern: opts.pattern.clone(),
        short_side: opts.extract.short_side,
        fps: opts.extract.fps,
        quality: opts.extract.quality,
        ..Default::default()
    };
    let known = before.map(|m| m.folders).unwrap_or_default();
    // Folders already complete are kept (their count from the last manifest, else counted).
    let mut todo: Vec<(usize, Vec<usize>)> = Vec::new();
    for (j, job) in plan.jobs.iter().enumerate() {
        let mut missing = Vec::new();
        for (t, (folder, span)) in job.targets.iter().enumerate() {
            let dir = frames_root.join(folder);
            if dir.is_dir() {
                let frames = match known.get(folder) {
                    Some(f) => f.frames,
                    None => pattern.count(&dir).map_err(|e| invalid(e.to_string()))?,
                };
                manifest.folders.insert(
                    folder.clone(),
                    Folder {
                        frames,
                        video: job.video.clone(),
                        span: *span,
                    },
                );
            } else {
                missing.push(t);
            }
        }
        if !missing.is_empty() {
            todo.push((j, missing));
        }
    }
    let skipped = plan.jobs.len() - todo.len();
    let mut progress = Tick {
        done: skipped,
        total: plan.jobs.len(),
        skipped,
        failed: 0,
        frames: 0,
        elapsed: start.elapsed(),
    };
    tick(&progress);

    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Made)>();
    let workers = opts.jobs.max(1).min(todo.len().max(1));
    let mut made = 0;
    let result: Result<(), PluginError> = std::thread::scope(|s| {
        for w in 0..workers {
            let tx = tx.clone();
            let (todo, next, plan, pattern) = (&todo, &next, plan, &pattern);
            let scratch = scratch_root.join(w.to_string());
            let frames_root = &frames_root;
            let xopts = &opts.extract;
            s.spawn(move || {
                let mut encoder = match Encoder::new(xopts.quality) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = tx.send((usize::MAX, vec![Err(e.to_string())]));
                        return;
                    }
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((j, missing)) = todo.get(i) else {
                        break;
                    };
                    let r = make(
                        &plan.jobs[*j],
                        missing,
                        &scratch,
                        frames_root,
                        pattern,
                        xopts,
                        &mut encoder,
                    );
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, results) in rx {
            let Some((j, missing)) = todo.get(i) else {
                return Err(invalid(
                    results
                        .into_iter()
                        .find_map(Result::err)
                        .unwrap_or_default(),
                ));
            };
            let job = &plan.jobs[*j];
            let mut failed = Vec::new();
            let mut reason = String::new();
            for (&t, r) in missing.iter().zip(results) {
                let (folder, span) = &job.targets[t];
                match r {
                    Ok(n) => {
                        progress.frames += n;
                        manifest.folders.insert(
                            folder.clone(),
                            Folder {
                                frames: n,
                                video: job.video.clone(),
                                span: *span,
                            },
                        );
                    }
                    Err(e) => {
                        failed.push(folder.clone());
                        reason = e;
                    }
                }
            }
            if failed.is_empty() {
                made += 1;
            } else {
                progress.failed += 1;
                manifest.failures.push(Failure {
                    video: job.video.clone(),
                    folders: failed,
                    reason,
                });
            }
            progress.done += 1;
            progress.elapsed = start.elapsed();
            tick(&progress);
        }
        Ok(())
    });
    result?;
    std::fs::remove_dir_all(&scratch_root).map_err(io(&scratch_root))?;

    // The reference's list files: `<folder> <frames> <label>`, for the folders that exist.
    let lists_dir = out.join("lists");
    for (name, videos) in &plan.lists {
        let mut text = String::new();
        for (folder, label) in videos {
            if let Some(f) = manifest.folders.get(folder) {
                text.push_str(&format!("{} {} {label}\n", folder.display(), f.frames));
            }
        }
        let rel = PathBuf::from("lists").join(format!("{name}.txt"));
        write_atomic(&out.join(&rel), text.as_bytes())?;
        manifest.lists.insert(name.clone(), rel);
    }
    let mut csv = String::from("id,name\n");
    for (i, c) in plan.classes.iter().enumerate() {
        csv.push_str(&format!("{i},{c}\n"));
    }
    write_atomic(&lists_dir.join("labels.csv"), csv.as_bytes())?;
    manifest.labels = PathBuf::from("lists/labels.csv");
    // The official annotations beside `frames/`: the dataset opens from the output as it is.
    for a in &plan.annotations {
        if let Ok(rel) = a.strip_prefix(&plan.root) {
            copy_tree(a, &out.join(rel))?;
        }
    }
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| invalid(e.to_string()))?;
    write_atomic(&manifest_path, &json)?;
    Ok(Summary {
        made,
        skipped,
        failed: progress.failed,
        frames: progress.frames,
        elapsed: start.elapsed(),
        manifest,
    })
}

/// A frame rate as the options spell it: a number, or `native`.
pub fn fps_name(fps: Option<f64>) -> String {
    fps.map_or("native".into(), |f| f.to_string())
}
