//! The parallel clip loader: worker threads decode, sample and augment clips ahead of the
//! consumer and hand out `[B, T, 3, H, W]` batches in a deterministic order.
//!
//! Every random choice of a sample (frame offsets, crop, flip) is drawn from a generator seeded
//! by (seed, epoch, video index), so a batch is the same whatever the number of workers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use image::RgbImage;

use crate::augment::{TrainAugment, eval_clip, normalize, train_clip};
use crate::frames::{FramePattern, load};
use crate::synthetic::{Combo, render_frames, rng};
use crate::{Video, VideoError, sampling};

/// Where clips come from.
pub trait ClipSource: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn label(&self, i: usize) -> usize;
    /// Frames in video `i` (counted from the folder for frame folders).
    fn frame_count(&self, i: usize) -> Result<usize, VideoError>;
    /// Decodes frames `indices` (0-based) of video `i`.
    fn frames(&self, i: usize, indices: &[usize]) -> Result<Vec<RgbImage>, VideoError>;
}

/// Videos stored as frame folders under a root.
pub struct FolderSource {
    pub root: PathBuf,
    pub videos: Vec<Video>,
    pub pattern: FramePattern,
}

impl FolderSource {
    fn dir(&self, i: usize) -> PathBuf {
        self.root.join(&self.videos[i].path)
    }
}

impl ClipSource for FolderSource {
    fn len(&self) -> usize {
        self.videos.len()
    }
    fn label(&self, i: usize) -> usize {
        self.videos[i].label
    }
    fn frame_count(&self, i: usize) -> Result<usize, VideoError> {
        let v = &self.videos[i];
        self.pattern
            .count(&self.dir(i))
            .map_err(|e| VideoError::Invalid(format!("{}:{}: {e}", v.source.display(), v.line)))
    }
    fn frames(&self, i: usize, indices: &[usize]) -> Result<Vec<RgbImage>, VideoError> {
        load(&self.dir(i), &self.pattern, indices)
    }
}

/// Videos stored as files under a root, decoded with FFmpeg (feature `video`).
#[cfg(feature = "video")]
pub struct VideoFileSource {
    pub root: PathBuf,
    pub videos: Vec<Video>,
}

#[cfg(feature = "video")]
impl ClipSource for VideoFileSource {
    fn len(&self) -> usize {
        self.videos.len()
    }
    fn label(&self, i: usize) -> usize {
        self.videos[i].label
    }
    fn frame_count(&self, i: usize) -> Result<usize, VideoError> {
        let v = &self.videos[i];
        let at = |e| VideoError::Invalid(format!("{}:{}: {e}", v.source.display(), v.line));
        let path = self.root.join(&v.path);
        match v.span {
            None => crate::decode::frame_count(&path).map_err(at),
            Some(span) => crate::decode::segment(&path, span)
                .map(|f| f.len())
                .map_err(at),
        }
    }
    fn frames(&self, i: usize, indices: &[usize]) -> Result<Vec<RgbImage>, VideoError> {
        let path = self.root.join(&self.videos[i].path);
        match self.videos[i].span {
            None => crate::decode::frames(&path, indices),
            Some(span) => {
                // A segment's frames are counted from its start.
                let start = crate::decode::segment(&path, span)?.start;
                let shifted: Vec<usize> = indices.iter().map(|k| k + start).collect();
                crate::decode::frames(&path, &shifted)
            }
        }
    }
}

/// Videos of the synthetic world: `(class, instance)` pairs over a list of combinations.
pub struct SyntheticSource {
    pub classes: Vec<Combo>,
    pub videos: Vec<(usize, u64)>,
    pub frames: usize,
    pub size: usize,
    pub seed: u64,
    /// Draw a motion trail (`synthetic::render_frames`).
    pub trail: bool,
}

impl ClipSource for SyntheticSource {
    fn len(&self) -> usize {
        self.videos.len()
    }
    fn label(&self, i: usize) -> usize {
        self.videos[i].0
    }
    fn frame_count(&self, _: usize) -> Result<usize, VideoError> {
        Ok(self.frames)
    }
    fn frames(&self, i: usize, indices: &[usize]) -> Result<Vec<RgbImage>, VideoError> {
        let (class, instance) = self.videos[i];
        if let Some(&k) = indices.iter().find(|&&k| k >= self.frames) {
            return Err(VideoError::Invalid(format!(
                "synthetic video {class}/{instance}: frame {k} of {}",
                self.frames
            )));
        }
        Ok(render_frames(
            self.classes[class],
            instance,
            self.seed,
            self.frames,
            self.size,
            self.trail,
            indices,
        ))
    }
}

/// Training or single-view evaluation.
#[derive(Clone, Debug)]
pub enum Mode {
    /// TSN sampling and the training augmentation.
    Train(TrainAugment),
    /// Segment starts, resize `resize` and centre crop `size`.
    Eval { resize: u32, size: u32 },
}

/// What to do with a sample that cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Stop with the error (naming the file): the default, no silent data loss.
    Fail,
    /// Skip it and count it; the count is reported with the batches.
    Skip,
}

#[derive(Clone, Debug)]
pub struct LoaderConfig {
    pub batch: usize,
    /// Frames per clip (T).
    pub frames: usize,
    pub mode: Mode,
    pub workers: usize,
    /// Samples decoded ahead of the consumer.
    pub prefetch: usize,
    pub seed: u64,
    pub shuffle: bool,
    pub drop_last: bool,
    pub on_error: OnError,
}

/// One batch: pixels `[B, T, 3, S, S]` flattened, and labels.
#[derive(Debug)]
pub struct Batch {
    pub pixels: Vec<f32>,
    pub shape: [usize; 5],
    pub labels: Vec<usize>,
    /// Source indices of the samples.
    pub indices: Vec<usize>,
}

/// Loads, samples and augments sample `i` into normalised floats.
pub fn load_sample(
    source: &dyn ClipSource,
    i: usize,
    cfg: &LoaderConfig,
    epoch: u64,
) -> Result<Vec<f32>, VideoError> {
    let mut rng = rng(cfg.seed
        ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (i as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
    let n = source.frame_count(i)?;
    let (indices, clip) = match &cfg.mode {
        Mode::Train(aug) => {
            let idx = sampling::train(n, cfg.frames, |k| rng.below(k));
            let frames = source.frames(i, &idx)?;
            (idx, train_clip(frames, aug, &mut rng))
        }
        Mode::Eval { resize, size } => {
            let idx = sampling::val(n, cfg.frames);
            let frames = source.frames(i, &idx)?;
            (idx, eval_clip(&frames, *resize, *size))
        }
    };
    debug_assert_eq!(indices.len(), cfg.frames);
    let mut out = Vec::new();
    normalize(&clip, &mut out);
    Ok(out)
}

/// The views of multi-view testing ("T × crops × clips"): for each of `clips` temporal clips
/// (the reference's linspace starts) and each of `crops` spatial crops (1: centre; 3: left,
/// right, centre), one normalised clip `[T, 3, S, S]`. Features of the views are averaged
/// before normalising, downstream.
pub fn multi_view(
    source: &dyn ClipSource,
    i: usize,
    frames: usize,
    clips: usize,
    crops: usize,
    resize: u32,
    size: u32,
) -> Result<Vec<Vec<f32>>, VideoError> {
    let n = source.frame_count(i)?;
    let mut views = Vec::with_capacity(clips * crops);
    for idx in sampling::test(n, frames, clips) {
        let decoded = source.frames(i, &idx)?;
        let spatial: Vec<Vec<RgbImage>> = match crops {
            1 => vec![eval_clip(&decoded, resize, size)],
            3 => crate::augment::three_crops(&decoded, resize, size).into(),
            other => {
                return Err(VideoError::Invalid(format!(
                    "{other} crops: multi-view takes 1 or 3"
                )));
            }
        };
        for clip in spatial {
            let mut out = Vec::new();
            normalize(&clip, &mut out);
            views.push(out);
        }
    }
    Ok(views)
}

struct Shared {
    source: Arc<dyn ClipSource>,
    cfg: LoaderConfig,
    epoch: u64,
    order: Vec<usize>,
    next: AtomicUsize,
    /// Positions the consumer has taken; workers stay within `prefetch` of it.
    consumed: Mutex<usize>,
    wake: Condvar,
    stop: AtomicBool,
}

/// The batches of one epoch, in order.
pub struct Epoch {
    shared: Arc<Shared>,
    rx: Receiver<(usize, Result<Vec<f32>, VideoError>)>,
    workers: Vec<JoinHandle<()>>,
    pending: BTreeMap<usize, Result<Vec<f32>, VideoError>>,
    pos: usize,
    /// Samples skipped so far under [`OnError::Skip`], with the reason.
    pub skipped: Vec<(usize, String)>,
    failed: bool,
}

/// Starts the workers of epoch `epoch`.
pub fn epoch(source: Arc<dyn ClipSource>, cfg: LoaderConfig, epoch: u64) -> Epoch {
    epoch_from(source, cfg, epoch, 0)
}

/// Starts epoch `epoch` at position `start` of its order (a run resumed mid-epoch, `start` from
/// [`Epoch::position`]): the batches that follow are those an epoch started at 0 yields after
/// reaching `start`, since the order and every sample's augmentation depend only on the seed,
/// the epoch and the sample.
pub fn epoch_from(
    source: Arc<dyn ClipSource>,
    cfg: LoaderConfig,
    epoch: u64,
    start: usize,
) -> Epoch {
    let n = source.len();
    let start = start.min(n);
    let mut order: Vec<usize> = (0..n).collect();
    if cfg.shuffle {
        let mut rng = rng(cfg
            .seed
            .wrapping_add(epoch.wrapping_mul(0x2545_F491_4F6C_DD1D)));
        rng.shuffle(&mut order);
    }
    let workers = cfg.workers.max(1);
    let (tx, rx): (SyncSender<_>, _) = sync_channel(cfg.prefetch.max(cfg.batch));
    let shared = Arc::new(Shared {
        source,
        cfg,
        epoch,
        order,
        next: AtomicUsize::new(start),
        consumed: Mutex::new(start),
        wake: Condvar::new(),
        stop: AtomicBool::new(false),
    });
    let handles = (0..workers)
        .map(|_| {
            let s = shared.clone();
            let tx = tx.clone();
            std::thread::spawn(move || worker(&s, &tx))
        })
        .collect();
    Epoch {
        shared,
        rx,
        workers: handles,
        pending: BTreeMap::new(),
        pos: start,
        skipped: Vec::new(),
        failed: false,
    }
}

fn worker(s: &Shared, tx: &SyncSender<(usize, Result<Vec<f32>, VideoError>)>) {
    let window = s.cfg.prefetch.max(s.cfg.batch) * 2;
    loop {
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        let pos = s.next.fetch_add(1, Ordering::Relaxed);
        if pos >= s.order.len() {
            return;
        }
        {
            let mut consumed = s.consumed.lock().expect("loader lock");
            while pos >= *consumed + window && !s.stop.load(Ordering::Relaxed) {
                consumed = s.wake.wait(consumed).expect("loader lock");
            }
        }
        let i = s.order[pos];
        let r = load_sample(s.source.as_ref(), i, &s.cfg, s.epoch);
        if tx.send((pos, r)).is_err() {
            return;
        }
    }
}

impl Epoch {
    /// Positions of the epoch's order consumed so far (skipped samples included): where
    /// [`epoch_from`] continues.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, pos: usize) -> Option<Result<Vec<f32>, VideoError>> {
        while !self.pending.contains_key(&pos) {
            match self.rx.recv() {
                Ok((p, r)) => {
                    self.pending.insert(p, r);
                }
                Err(_) => return None,
            }
        }
        let r = self.pending.remove(&pos);
        *self.shared.consumed.lock().expect("loader lock") = pos + 1;
        self.shared.wake.notify_all();
        r
    }
}

impl Iterator for Epoch {
    type Item = Result<Batch, VideoError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let shared = self.shared.clone();
        let cfg = &shared.cfg;
        let (b, n) = (cfg.batch.max(1), shared.order.len());
        let mut pixels: Vec<f32> = Vec::new();
        let (mut labels, mut indices) = (Vec::new(), Vec::new());
        while labels.len() < b && self.pos < n {
            let pos = self.pos;
            self.pos += 1;
            let i = shared.order[pos];
            match self.take(pos)? {
                Ok(p) => {
                    if pixels.is_empty() {
                        pixels.reserve_exact(p.len() * b);
                    }
                    pixels.extend(p);
                    labels.push(shared.source.label(i));
                    indices.push(i);
                }
                Err(e) if cfg.on_error == OnError::Skip => self.skipped.push((i, e.to_string())),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        if labels.is_empty() || (cfg.drop_last && labels.len() < b) {
            return None;
        }
        let size = match &cfg.mode {
            Mode::Train(a) => a.size,
            Mode::Eval { size, .. } => *size,
        } as usize;
        Some(Ok(Batch {
            shape: [labels.len(), cfg.frames, 3, size, size],
            pixels,
            labels,
            indices,
        }))
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
        // Unblock workers waiting to send.
        while self.rx.try_recv().is_ok() {}
        for w in self.workers.drain(..) {
            while !w.is_finished() {
                while self.rx.try_recv().is_ok() {}
                std::thread::yield_now();
            }
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(videos: usize) -> Arc<dyn ClipSource> {
        let classes = Combo::all(2, 2, 2);
        Arc::new(SyntheticSource {
            videos: (0..videos).map(|i| (i % classes.len(), i as u64)).collect(),
            classes,
            frames: 12,
            size: 40,
            seed: 5,
            trail: false,
        })
    }

    fn cfg(workers: usize) -> LoaderConfig {
        LoaderConfig {
            batch: 4,
            frames: 3,
            mode: Mode::Train(TrainAugment {
                resize: 40,
                size: 32,
                ..Default::default()
            }),
            workers,
            prefetch: 4,
            seed: 9,
            shuffle: true,
            drop_last: false,
            on_error: OnError::Fail,
        }
    }

    #[test]
    fn batches_are_deterministic_whatever_the_workers() {
        let a: Vec<Batch> = epoch(synthetic(10), cfg(1), 0)
            .map(|b| b.unwrap())
            .collect();
        let b: Vec<Batch> = epoch(synthetic(10), cfg(3), 0)
            .map(|b| b.unwrap())
            .collect();
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].shape, [4, 3, 3, 32, 32]);
        assert_eq!(a[2].shape[0], 2);
        assert_eq!(a[0].pixels.len(), 4 * 3 * 3 * 32 * 32);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.indices, y.indices);
            assert_eq!(x.pixels, y.pixels);
        }
        let mut seen: Vec<usize> = a.iter().flat_map(|b| b.indices.clone()).collect();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        let other: Vec<usize> = epoch(synthetic(10), cfg(2), 1)
            .flat_map(|b| b.unwrap().indices)
            .collect();
        assert_ne!(
            other,
            a.iter().flat_map(|b| b.indices.clone()).collect::<Vec<_>>(),
            "epochs reshuffle"
        );
        // Dropping an epoch early stops its workers.
        let mut e = epoch(synthetic(40), cfg(2), 0);
        assert!(e.next().is_some());
        drop(e);
    }

    #[test]
    fn an_epoch_resumed_at_a_position_yields_the_rest_of_the_same_epoch() {
        let whole: Vec<Batch> = epoch(synthetic(10), cfg(2), 3)
            .map(|b| b.unwrap())
            .collect();
        let mut first = epoch(synthetic(10), cfg(2), 3);
        first.next().unwrap().unwrap();
        assert_eq!(first.position(), 4);
        let rest: Vec<Batch> = epoch_from(synthetic(10), cfg(1), 3, first.position())
            .map(|b| b.unwrap())
            .collect();
        assert_eq!(rest.len(), whole.len() - 1);
        for (x, y) in whole[1..].iter().zip(&rest) {
            assert_eq!(x.indices, y.indices);
            assert_eq!(x.pixels, y.pixels, "same augmentation");
        }
        assert_eq!(epoch_from(synthetic(10), cfg(1), 3, 10).count(), 0);
    }

    #[test]
    fn multi_view_gives_clips_times_crops() {
        let src = synthetic(2);
        let v = multi_view(src.as_ref(), 1, 4, 2, 3, 40, 32).unwrap();
        assert_eq!(v.len(), 6);
        assert!(v.iter().all(|x| x.len() == 4 * 3 * 32 * 32));
        assert_ne!(v[0], v[1], "left and right crops differ");
        assert_eq!(
            multi_view(src.as_ref(), 1, 4, 1, 1, 40, 32).unwrap().len(),
            1
        );
    }

    #[test]
    fn unreadable_samples_fail_or_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        let pattern = FramePattern::parse("img_{:05}.jpg").unwrap();
        let mut videos = Vec::new();
        for (k, name) in ["a", "b", "c"].iter().enumerate() {
            let dir = d.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            if *name != "b" {
                for f in 0..4 {
                    RgbImage::from_pixel(48, 40, image::Rgb([f * 60, 0, 0]))
                        .save(dir.join(pattern.name(f as usize)))
                        .unwrap();
                }
            }
            videos.push(Video {
                span: None,
                path: name.into(),
                label: k,
                frames: None,
                source: "list.txt".into(),
                line: k + 1,
            });
        }
        let source: Arc<dyn ClipSource> = Arc::new(FolderSource {
            root: d.path().into(),
            videos,
            pattern,
        });
        let mut c = cfg(2);
        c.shuffle = false;
        c.mode = Mode::Eval {
            resize: 40,
            size: 32,
        };
        let r: Vec<_> = epoch(source.clone(), c.clone(), 0).collect();
        let err = r.into_iter().find_map(|b| b.err()).unwrap().to_string();
        assert!(
            err.starts_with("list.txt:2: ") && err.contains("no frames named like `img_00001.jpg`"),
            "{err}"
        );
        c.on_error = OnError::Skip;
        let mut e = epoch(source, c, 0);
        let b = e.next().unwrap().unwrap();
        assert_eq!(b.labels, vec![0, 2]);
        assert_eq!(e.skipped.len(), 1);
        assert_eq!(e.skipped[0].0, 1);
    }
}
