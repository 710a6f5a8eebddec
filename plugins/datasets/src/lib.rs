//! The dataset plugins. Each reads its dataset's official annotations, or the reference's list
//! file and label CSV when given (`DataOptions::list`), from one folder:
//!
//! | plugin | official annotations under the root | frames pattern |
//! |---|---|---|
//! | `k400`, `k600` | `annotations/{train,validate}.csv` | `img_{:05}.jpg` |
//! | `ucf101` | `ucfTrainTestlist/` (`classInd.txt`, `trainlist0k.txt`, `testlist0k.txt`) | `image_{:04}.jpg` |
//! | `hmdb51` | `testTrainMulti_7030_splits/` | `image_{:06}.jpg` |
//! | `anet` | `activity_net.v1-3.min.json` (training = trimmed instances) | `image_{:06}.jpg` |
//! | `synthetic` | none: drawn on demand | — |
//! | `synthetic-pretrain`, `synthetic-novel` | none: the quickstart's world, drawn on demand | — |
//!
//! Media live under `<root>/frames/` (one folder per video, the annotation path without its
//! extension), `<root>/videos/` (files), or where the official archives unpack (`UCF-101/`,
//! HMDB-51's class folders, Kinetics' `train/`, `val/`; `layout.rs`); list-file paths are
//! relative to `frames/`, `videos/` or the root.

pub mod check;
mod fingerprint;
mod layout;
#[cfg(feature = "video")]
pub mod prepare;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use layout::Official;
use t4v_core::plugin::{Metric, PluginError, VideoItem};
use t4v_core::{
    DataOptions, Dataset, DatasetPlugin, FrameConvention, Media, MediaLayout, PluginInfo,
};
use t4v_video::annotations::{self, anet, hmdb, kinetics, ucf};
use t4v_video::synthetic::Combo;
use t4v_video::{Video, VideoError};

/// Every dataset plugin, in the order `plugins` lists them.
pub static DATASETS: &[&dyn DatasetPlugin] = &[
    &Kinetics400,
    &Kinetics600,
    &Ucf101,
    &Hmdb51,
    &ActivityNet,
    &Synthetic,
    &SYNTHETIC_PRETRAIN,
    &SYNTHETIC_NOVEL,
];

fn err(e: VideoError) -> PluginError {
    PluginError::Invalid(e.to_string())
}

/// A dataset read into memory: classes, videos per split, media.
pub struct Loaded {
    pub classes: Vec<String>,
    pub splits: BTreeMap<String, Vec<Video>>,
    pub media: Media,
    pub metrics: &'static [Metric],
    pub layout: MediaLayout,
    /// The annotation files (or folders of them) it was read from: part of its fingerprint.
    pub sources: Vec<PathBuf>,
    /// The fingerprint, taken once (it reads every annotation file and stats every video).
    pub fingerprint: std::sync::OnceLock<Option<String>>,
    /// Each video's folder of frames, as the `frames/` layout names it (its annotation path
    /// without a video extension), in the order of `splits`: what `prepare` writes.
    pub folders: BTreeMap<String, Vec<PathBuf>>,
}

impl Loaded {
    /// A dataset read from its official annotations, its media found under the root.
    fn official(
        opts: &DataOptions,
        sources: Vec<PathBuf>,
        classes: Vec<String>,
        mut splits: BTreeMap<String, Vec<Video>>,
        pattern: &str,
        official: &[Official],
        metrics: &'static [Metric],
    ) -> Loaded {
        let folders = layout::folders(&splits);
        let (media, layout) = layout::locate(opts, pattern, &mut splits, official);
        Loaded {
            folders,
            classes,
            splits,
            media,
            metrics,
            layout,
            sources,
            fingerprint: Default::default(),
        }
    }
}

impl Dataset for Loaded {
    fn media(&self) -> Media {
        self.media.clone()
    }
    fn layout(&self) -> MediaLayout {
        self.layout.clone()
    }
    fn fingerprint(&self) -> Option<String> {
        self.fingerprint
            .get_or_init(|| {
                fingerprint::of(&self.sources, &self.media, self.splits.values().flatten())
            })
            .clone()
    }
    fn class_names(&self) -> &[String] {
        &self.classes
    }
    fn folders(&self, split: &str) -> Option<Vec<PathBuf>> {
        if matches!(self.media, Media::Synthetic { .. }) {
            return None;
        }
        if split == FULL && !self.folders.contains_key(FULL) {
            let mut seen = std::collections::HashSet::new();
            return Some(
                self.splits
                    .values()
                    .flatten()
                    .zip(self.folders.values().flatten())
                    .filter(|(v, _)| seen.insert(v.path.clone()))
                    .map(|(_, f)| f.clone())
                    .collect(),
            );
        }
        self.folders.get(split).cloned()
    }
    fn annotation_files(&self) -> Vec<PathBuf> {
        self.sources.clone()
    }
    fn splits(&self) -> Vec<String> {
        let mut s: Vec<String> = self.splits.keys().cloned().collect();
        s.push(FULL.into());
        s
    }
    fn videos(&self, split: &str) -> Result<Vec<VideoItem>, PluginError> {
        if split == FULL && !self.splits.contains_key(FULL) {
            // Every video of the official splits once, in split order: the "full" evaluation of
            // the zero-shot protocols.
            let mut seen = std::collections::HashSet::new();
            return Ok(self
                .splits
                .values()
                .flatten()
                .filter(|v| seen.insert(v.path.clone()))
                .map(|v| VideoItem {
                    path: v.path.clone(),
                    label: v.label,
                    frames: v.frames,
                    span: v.span,
                })
                .collect());
        }
        let v = self.splits.get(split).ok_or_else(|| {
            PluginError::Invalid(format!(
                "no split `{split}` (splits: {})",
                self.splits().join(", ")
            ))
        })?;
        Ok(v.iter()
            .map(|v| VideoItem {
                path: v.path.clone(),
                label: v.label,
                frames: v.frames,
                span: v.span,
            })
            .collect())
    }
    fn metrics(&self) -> &'static [Metric] {
        self.metrics
    }
}

const TOP: &[Metric] = &[Metric::Top1, Metric::Top5, Metric::MeanClassAccuracy];

/// The split every dataset has: all videos of its official splits (zero-shot "full classes").
pub const FULL: &str = "full";
const MAP: &[Metric] = &[
    Metric::MeanAp,
    Metric::Top1,
    Metric::Top5,
    Metric::MeanClassAccuracy,
];

/// The media of a list file, whose paths are relative to the media folder: `<root>/frames`
/// when it exists, else video files under `<root>/videos`, else (Kinetics) clip files in the
/// split folders a download makes, found by name or by bare YouTube id as the reference's
/// lists give them, else `<root>` itself as the frames root.
fn list_media(
    opts: &DataOptions,
    pattern: &str,
    splits: &mut BTreeMap<String, Vec<Video>>,
    official: &[Official],
) -> (Media, MediaLayout) {
    let pattern = opts
        .frame_pattern
        .clone()
        .unwrap_or_else(|| pattern.to_string());
    let frames = opts.root.join("frames");
    let videos = opts.root.join("videos");
    if frames.is_dir() {
        (
            Media::Frames {
                root: frames,
                pattern,
            },
            MediaLayout::found("frames/: the list's paths are frame folders"),
        )
    } else if videos.is_dir() {
        (
            Media::Videos { root: videos },
            MediaLayout::found("videos/: the list's paths are video files"),
        )
    } else if let Some(found) = official
        .iter()
        .find_map(|o| layout::locate_list(&opts.root, *o, splits))
    {
        (
            Media::Videos {
                root: opts.root.clone(),
            },
            MediaLayout::found(found),
        )
    } else {
        (
            Media::Frames {
                root: opts.root.clone(),
                pattern,
            },
            MediaLayout::found("the root: the list's paths are frame folders"),
        )
    }
}

fn need(path: PathBuf) -> Result<PathBuf, PluginError> {
    if path.exists() {
        Ok(path)
    } else {
        Err(PluginError::File {
            path,
            message: "not found".into(),
        })
    }
}

/// The reference's list file + label CSV, as one split named `list`.
fn from_list(
    opts: &DataOptions,
    pattern: &str,
    metrics: &'static [Metric],
    official: &[Official],
) -> Result<Option<Loaded>, PluginError> {
    let Some(list) = &opts.list else {
        return Ok(None);
    };
    let labels = opts
        .labels
        .as_ref()
        .ok_or_else(|| PluginError::Invalid("--list needs --labels (the label CSV)".into()))?;
    let classes = annotations::label_csv(labels).map_err(err)?;
    let mut splits = BTreeMap::from([(
        "list".to_string(),
        annotations::list_file(list, classes.len()).map_err(err)?,
    )]);
    let folders = layout::folders(&splits);
    let (media, layout) = list_media(opts, pattern, &mut splits, official);
    Ok(Some(Loaded {
        folders,
        classes,
        splits,
        media,
        metrics,
        layout,
        sources: vec![list.clone(), labels.clone()],
        fingerprint: Default::default(),
    }))
}

macro_rules! info {
    ($name:ident, $id:literal, $summary:literal) => {
        static $name: PluginInfo = PluginInfo {
            name: $id,
            summary: $summary,
            params: &[],
        };
    };
}

info!(
    K400_INFO,
    "k400", "Kinetics-400: DeepMind CSVs (train, val) or the reference's lists; 400 classes"
);
info!(
    K600_INFO,
    "k600", "Kinetics-600: CSVs or the reference's zero-shot lists (3 splits × 160 new classes)"
);
info!(
    UCF_INFO,
    "ucf101", "UCF-101: ucfTrainTestlist (3 splits) or the reference's lists; 101 classes"
);
info!(
    HMDB_INFO,
    "hmdb51", "HMDB-51: testTrainMulti_7030_splits (3 splits) or the reference's lists; 51 classes"
);
info!(
    ANET_INFO,
    "anet",
    "ActivityNet v1.3: JSON (trimmed training instances, untrimmed val) or lists; 200 classes, mAP"
);

fn kinetics_open(opts: &DataOptions) -> Result<Box<dyn Dataset>, PluginError> {
    if let Some(l) = from_list(
        opts,
        KINETICS_FRAMES.pattern,
        TOP,
        &[Official::SplitFolders],
    )? {
        return Ok(Box::new(l));
    }
    let dir = opts.root.join("annotations");
    let train = need(dir.join("train.csv"))?;
    let (classes, train) = kinetics::csv(&train, None).map_err(err)?;
    let mut splits = BTreeMap::from([("train".to_string(), train)]);
    let mut sources = vec![dir.join("train.csv")];
    let val = dir.join("validate.csv");
    if val.exists() {
        let (_, v) = kinetics::csv(&val, Some(&classes)).map_err(err)?;
        splits.insert("val".into(), v);
        sources.push(val);
    }
    Ok(Box::new(Loaded::official(
        opts,
        sources,
        classes,
        splits,
        KINETICS_FRAMES.pattern,
        &[Official::SplitFolders],
        TOP,
    )))
}

/// The reference's Kinetics frames: 320 pixels on the shorter side ("se320"), 30 fps.
const KINETICS_FRAMES: FrameConvention = FrameConvention {
    pattern: "img_{:05}.jpg",
    short_side: 320,
    fps: Some(30.0),
    splits: 1,
};

pub struct Kinetics400;
impl DatasetPlugin for Kinetics400 {
    fn info(&self) -> &'static PluginInfo {
        &K400_INFO
    }
    fn frames(&self) -> Option<FrameConvention> {
        Some(KINETICS_FRAMES)
    }
    fn open(&self, opts: &DataOptions) -> Result<Box<dyn Dataset>, PluginError> {
        kinetics_open(opts)
    }
}

pub struct Kinetics600;
impl DatasetPlugin for Kinetics600 {
    fn info(&self) -> &'static PluginInfo {
        &K600_INFO
    }
    fn frames(&self) -> Option<FrameConvention> {
        Some(KINETICS_FRAMES)
    }
    fn open(&self, opts: &DataOptions) -> Result<Box<dyn Dataset>, PluginError> {
        kinetics_open(opts)
    }
}

pub struct Ucf101;
impl DatasetPlugin for Ucf101 {
    fn info(&self) -> &'static PluginInfo {
        &UCF_INFO
    }
    fn frames(&self) -> Option<FrameConvention> {
        Some(FrameConvention {
            pattern: "image_{:04}.jpg",
            short_side: 256,
            fps: None,
            splits: 3,
        })
    }
    fn open(&self, opts: &DataOptions) -> Result<Box<dyn Dataset>, PluginError> {
        if let Some(l) = from_list(opts, "image_{:04}.jpg", TOP, &[])? {
            return Ok(Box::new(l));
        }
        let k = opts.split.clamp(1, 3);
        let dir = opts.root.join("ucfTrainTestlist");
        let classes = ucf::class_ind(&need(dir.join("classInd.txt"))?).map_err(err)?;
        let train = ucf::train_list(&need(dir.join(format!("trainlist0{k}.txt")))?, &classes)
            .map_err(err)?;
        let test =
            ucf::test_list(&need(dir.join(format!("testlist0{k}.txt")))?, &classes).map_err(err)?;
        let splits = BTreeMap::from([("train".to_string(), train), ("test".to_string(), test)]);
        Ok(Box::new(Loaded::official(
            opts,
            vec![
                dir.join("classInd.txt"),
                dir.join(format!("trainlist0{k}.txt")),
                dir.join(format!("testlist0{k}.txt")),
            ],
            classes,
            splits,
            "image_{:04}.jpg",
            &[Official::Folder("UCF-101")],
            TOP,
        )))
    }
}

pub struct Hmdb51;
impl DatasetPlugin for Hmdb51 {
    fn info(&self) -> &'static PluginInfo {
        &HMDB_INFO
    }
    fn frames(&self) -> Option<FrameConvention> {
        Some(FrameConvention {
            pattern: "image_{:06}.jpg",
            short_side: 256,
            fps: None,
            splits: 3,
        })
    }
    fn open(&self, opts: &DataOptions) -> Result<Box<dyn Dataset>, PluginError> {
        if let Some(l) = from_list(opts, "image_{:06}.jpg", TOP, &[])? {
            return Ok(Box::new(l));
        }
        let dir = need(opts.root.join("testTrainMulti_7030_splits"))?;
        let k = opts.split.clamp(1, 3);
        let suffix = format!("_test_split{k}.txt");
        let any = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(&suffix));
        if !any {
            return Err(PluginError::File {
                path: dir.join(format!("*{suffix}")),
                message: "not found".into(),
            });
        }
        let s = hmdb::split(&dir, k).map_err(err)?;
        // The reference's label CSV spells the folder names with spaces.
        let classes = s.classes.iter().map(|c| c.replace('_', " ")).collect();
        let splits = BTreeMap::from([("train".to_string(), s.train), ("test".to_string(), s.test)]);
        Ok(Box::new(Loaded::official(
            opts,
            vec![dir],
            classes,
            splits,
            "image_{:06}.jpg",
            &[Official::ClassFolders("hmdb51_org")],
            TOP,
        )))
    }
}

pub struct ActivityNet;
impl DatasetPlugin for ActivityNet {
    fn info(&self) -> &'static PluginInfo {
        &ANET_INFO
    }
    /// The reference's ActivityNet frames are at 1 fps (its instance lists count them so).
    fn frames(&self) -> Option<FrameConvention> {
        Some(FrameConvention {
            pattern: "image_{:06}.jpg",
            short_side: 256,
            fps: Some(1.0),
            splits: 1,
        })
    }
    fn open(&self, opts: &DataOptions) -> Result<Box<dyn Dataset>, PluginError> {
        if let Some(l) = from_list(opts, "image_{:06}.jpg", MAP, &[Official::YoutubeFiles])? {
            return Ok(Box::new(l));
        }
        let json = need(opts.root.join("activity_net.v1-3.min.json"))?;
        let s = anet::json(&json).map_err(err)?;
        let splits = BTreeMap::from([("train".to_string(), s.train), ("val".to_string(), s.val)]);
        Ok(Box::new(Loaded::official(
            opts,
            vec![json],
            s.classes,
            splits,
            "image_{:06}.jpg",
            &[Official::YoutubeFiles],
            MAP,
        )))
    }
}

static SYNTH_INFO: PluginInfo = PluginInfo {
    name: "synthetic",
    summary: "procedurally drawn videos of coloured shapes in motion, named by caption (48 classes); no files",
    params: &[],
};

/// The synthetic world with the default 4 × 3 × 4 = 48 classes: 24 videos per class for
/// training, 8 for testing. `DataOptions::split` seeds the drawing. Other class sets (and
/// held-out combinations, `t4v_video::synthetic::split_unseen`) go through
/// [`Synthetic::open_with`].
pub struct Synthetic;

impl Synthetic {
    pub const FRAMES: u32 = 16;
    pub const SIZE: u32 = 64;

    /// A synthetic dataset of `combos`, `train` and `test` videos per class, drawn with `seed`;
    /// `trail`: with motion trails.
    pub fn open_with(combos: Vec<Combo>, train: u64, test: u64, seed: u64, trail: bool) -> Loaded {
        let classes = combos.iter().map(Combo::caption).collect();
        let split = |start: u64, n: u64, name: &str| -> Vec<Video> {
            (0..combos.len())
                .flat_map(|c| (start..start + n).map(move |i| (c, i)))
                .map(|(c, i)| Video {
                    span: None,
                    path: PathBuf::from(format!("{c}/{i}")),
                    label: c,
                    frames: Some(Self::FRAMES),
                    source: PathBuf::from(format!("<synthetic {name}>")),
                    line: 0,
                })
                .collect()
        };
        let splits = BTreeMap::from([
            ("train".to_string(), split(0, train, "train")),
            ("test".to_string(), split(train, test, "test")),
        ]);
        Loaded {
            classes,
            splits,
            media: Media::Synthetic {
                seed,
                frames: Self::FRAMES,
                size: Self::SIZE,
                trail,
            },
            metrics: TOP,
            layout: MediaLayout::found("drawn on demand"),
            sources: Vec::new(),
            fingerprint: Default::default(),
            folders: BTreeMap::new(),
        }
    }
}

impl DatasetPlugin for Synthetic {
    fn info(&self) -> &'static PluginInfo {
        &SYNTH_INFO
    }
    /// Drawn on demand: no folder.
    fn needs(&self) -> &'static [t4v_core::Need] {
        &[]
    }
    fn open(&self, opts: &DataOptions) -> Result<Box<dyn Dataset>, PluginError> {
        Ok(Box::new(Self::open_with(
            Combo::all(4, 3, 4),
            24,
            8,
            opts.split as u64,
            false,
        )))
    }
}

/// The quickstart's world: 4 shapes × 6 colours × 6 motions = 144 captions, of which
/// [`WORLD_NOVEL`] combinations (every shape, colour and motion still among the others) are held
/// out of pretraining; the downstream set is made of them alone, so a classifier built from the
/// pretrained model's text embeddings of their names has never seen those names.
pub fn world() -> (Vec<Combo>, Vec<Combo>) {
    t4v_video::synthetic::split_unseen(&Combo::all(4, 6, 6), WORLD_NOVEL, WORLD_SEED)
}

/// Combinations held out of pretraining, and the seed of their draw (fixed: both datasets of
/// the world must agree on it whatever the run's seed).
pub const WORLD_NOVEL: usize = 48;
const WORLD_SEED: u64 = 0;

/// One half of [`world`] as a dataset, with motion trails: the seen combinations (what a small
/// CLIP is pretrained on) or the novel ones (the quickstart's downstream task).
pub struct SyntheticWorld {
    info: &'static PluginInfo,
    novel: bool,
    train: u64,
    test: u64,
}

pub static SYNTHETIC_PRETRAIN: SyntheticWorld = SyntheticWorld {
    info: &PluginInfo {
        name: "synthetic-pretrain",
        summary: "caption/video pairs of the 96 seen combinations of the quickstart's world, for `pretrain` (64 train, 4 test videos each)",
        params: &[],
    },
    novel: false,
    train: 64,
    test: 4,
};

pub static SYNTHETIC_NOVEL: SyntheticWorld = SyntheticWorld {
    info: &PluginInfo {
        name: "synthetic-novel",
        summary: "the 48 combinations of the quickstart's world held out of pretraining, as a downstream task (16 train, 8 test videos each)",
        params: &[],
    },
    novel: true,
    train: 16,
    test: 8,
};

impl DatasetPlugin for SyntheticWorld {
    fn info(&self) -> &'static PluginInfo {
        self.info
    }
    /// Drawn on demand: no folder.
    fn needs(&self) -> &'static [t4v_core::Need] {
        &[]
    }
    fn open(&self, opts: &DataOptions) -> Result<Box<dyn Dataset>, PluginError> {
        let (seen, novel) = world();
        Ok(Box::new(Synthetic::open_with(
            if self.novel { novel } else { seen },
            self.train,
            self.test,
            opts.split as u64,
            true,
        )))
    }
}

/// The dataset folder: `root` if given, else `$T4V_DATA_<NAME>`, else `$T4V_DATA/<name>`.
pub fn default_root(name: &str, root: Option<&Path>) -> Option<PathBuf> {
    if let Some(r) = root {
        return Some(r.to_path_buf());
    }
    if let Ok(r) = std::env::var(format!("T4V_DATA_{}", name.to_uppercase())) {
        return Some(PathBuf::from(r));
    }
    std::env::var("T4V_DATA")
        .ok()
        .map(|d| PathBuf::from(d).join(name))
}

/// Opens dataset `name` (official split `split`) where the environment says it is
/// (`T4V_DATA_<NAME>`, else `$T4V_DATA/<name>`), as runs read it.
pub fn open_named(name: &str, split: u32) -> Result<Box<dyn Dataset>, PluginError> {
    let plugin = DATASETS
        .iter()
        .find(|d| d.info().name == name)
        .ok_or_else(|| PluginError::Invalid(format!("no dataset plugin `{name}`")))?;
    let root = if !plugin.needs_root() {
        PathBuf::new()
    } else {
        let root = default_root(name, None).ok_or_else(|| {
            PluginError::Invalid(format!(
                "where is dataset {name}? set T4V_DATA (or T4V_DATA_{})",
                name.to_uppercase()
            ))
        })?;
        if !root.exists() {
            return Err(PluginError::Invalid(format!(
                "dataset {name} not found at {}",
                root.display()
            )));
        }
        root
    };
    plugin.open(&DataOptions {
        root,
        split,
        ..Default::default()
    })
}

/// The videos of one split, with their position in it (for error messages).
pub fn videos(dataset: &dyn Dataset, split: &str) -> Result<Vec<Video>, PluginError> {
    Ok(dataset
        .videos(split)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| Video {
            path: v.path,
            label: v.label,
            frames: v.frames,
            span: v.span,
            source: PathBuf::from(format!("<{split}>")),
            line: i + 1,
        })
        .collect())
}

/// The clip source of one split, for the loader.
pub fn source(
    dataset: &dyn Dataset,
    split: &str,
) -> Result<std::sync::Arc<dyn t4v_video::loader::ClipSource>, PluginError> {
    source_of(dataset, videos(dataset, split)?)
}

/// The clip source of some videos of a dataset (e.g. a few-shot subset).
pub fn source_of(
    dataset: &dyn Dataset,
    videos: Vec<Video>,
) -> Result<std::sync::Arc<dyn t4v_video::loader::ClipSource>, PluginError> {
    use t4v_video::loader::{FolderSource, SyntheticSource};
    Ok(match dataset.media() {
        Media::Frames { root, pattern } => std::sync::Arc::new(FolderSource {
            root,
            videos,
            pattern: t4v_video::frames::FramePattern::parse(&pattern).map_err(err)?,
        }),
        Media::Synthetic {
            seed,
            frames,
            size,
            trail,
        } => {
            let combos = synthetic_combos(dataset.class_names())?;
            let pairs = videos
                .iter()
                .map(|v| {
                    let instance = v
                        .path
                        .file_name()
                        .and_then(|s| s.to_str())
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    (v.label, instance)
                })
                .collect();
            std::sync::Arc::new(SyntheticSource {
                classes: combos,
                videos: pairs,
                frames: frames as usize,
                size: size as usize,
                seed,
                trail,
            })
        }
        #[cfg(feature = "video")]
        Media::Videos { root } => {
            std::sync::Arc::new(t4v_video::loader::VideoFileSource { root, videos })
        }
        #[cfg(not(feature = "video"))]
        Media::Videos { root } => {
            return Err(PluginError::Invalid(format!(
                "{}: video files need the `video` feature (FFmpeg); extract frames or rebuild with --features video",
                root.display()
            )));
        }
    })
}

/// The combinations behind synthetic class captions.
fn synthetic_combos(names: &[String]) -> Result<Vec<Combo>, PluginError> {
    let all = Combo::all(usize::MAX, usize::MAX, usize::MAX);
    names
        .iter()
        .map(|n| {
            all.iter()
                .copied()
                .find(|c| &c.caption() == n)
                .ok_or_else(|| PluginError::Invalid(format!("`{n}` is not a synthetic caption")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use t4v_video::loader::{LoaderConfig, Mode, OnError, epoch};

    #[test]
    fn the_synthetic_dataset_feeds_the_loader() {
        let ds = Synthetic.open(&DataOptions::default()).unwrap();
        let src = source(ds.as_ref(), "test").unwrap();
        assert_eq!(src.len(), 48 * 8);
        // `full`: every video of the official splits once.
        assert!(ds.splits().contains(&FULL.to_string()));
        let full = ds.videos(FULL).unwrap();
        assert_eq!(full.len(), 48 * (24 + 8));
        let unique: std::collections::HashSet<_> = full.iter().map(|v| &v.path).collect();
        assert_eq!(unique.len(), full.len());
        let cfg = LoaderConfig {
            batch: 8,
            frames: 8,
            mode: Mode::Eval {
                resize: 64,
                size: 56,
            },
            workers: 2,
            prefetch: 8,
            seed: 0,
            shuffle: false,
            drop_last: false,
            on_error: OnError::Fail,
        };
        let b = epoch(src, cfg, 0).next().unwrap().unwrap();
        assert_eq!(b.shape, [8, 8, 3, 56, 56]);
        assert_eq!(b.labels, vec![0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
