//! Where a dataset's media are: the folders the reference's tools write (`frames/`, `videos/`),
//! and the official archives' layouts as they unpack (`UCF-101/`, HMDB-51's class folders,
//! Kinetics' `train/` and `val/` folders of clip files).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use t4v_core::{DataOptions, Media, MediaLayout};
use t4v_video::Video;

/// Extensions a video file may have, in the order they are tried.
const VIDEO_EXTENSIONS: &[&str] = &["mp4", "avi", "mkv", "webm"];

/// A layout an official archive unpacks into.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Official {
    /// The videos at their annotation paths under this folder of the root (`UCF-101/`).
    Folder(&'static str),
    /// Class folders of video files directly under the root, or under this folder of it
    /// (HMDB-51's per-class archives; `hmdb51_org/`).
    ClassFolders(&'static str),
    /// One folder per split (`train/`, `val/` or `validate/`, `test/`) of clip files named by
    /// the annotation's file name, with or without class sub-folders (Kinetics downloads).
    SplitFolders,
    /// Files named by YouTube id (`v_<id>.mp4` or `<id>.mkv`, ActivityNet's downloads) beside
    /// the annotations or one folder down; a training instance `<id>_<k>` is a segment of its
    /// video.
    YoutubeFiles,
}

/// Each video's frame folder under `frames/`: its annotation path without a video extension.
pub(crate) fn folders(splits: &BTreeMap<String, Vec<Video>>) -> BTreeMap<String, Vec<PathBuf>> {
    splits
        .iter()
        .map(|(s, vs)| {
            (
                s.clone(),
                vs.iter().map(|v| frame_folder(&v.path)).collect(),
            )
        })
        .collect()
}

/// A video's frame folder: its path without a video extension.
fn frame_folder(path: &Path) -> PathBuf {
    if has_video_extension(path) {
        path.with_extension("")
    } else {
        path.to_path_buf()
    }
}

/// A clip file's YouTube id: `v_<id>` (ActivityNet) or `<id>_<start:06>_<end:06>` (Kinetics).
fn youtube_id(stem: &str) -> &str {
    if let Some(id) = stem.strip_prefix("v_") {
        return id;
    }
    let b = stem.as_bytes();
    let n = b.len();
    if n > 14
        && b[n - 14] == b'_'
        && b[n - 7] == b'_'
        && b[n - 13..n - 7]
            .iter()
            .chain(&b[n - 6..])
            .all(u8::is_ascii_digit)
    {
        return &stem[..n - 14];
    }
    stem
}

/// Video files under `dirs` (and one level of sub-folders) by YouTube id: path from `root`.
fn index_ids(root: &Path, dirs: &[PathBuf]) -> HashMap<String, PathBuf> {
    let mut out = HashMap::new();
    for d in dirs {
        for (stem, rel) in index(root, d) {
            out.insert(youtube_id(&stem).to_string(), rel);
        }
    }
    out
}

/// The YouTube id an annotation path names: its file stem, without an ActivityNet instance's
/// `_<k>` when `instance`.
fn annotated_id(path: &Path, instance: bool) -> String {
    let stem = frame_folder(path);
    let stem = stem.file_name().unwrap_or_default().to_string_lossy();
    let stem = stem.as_ref();
    if instance
        && let Some((id, k)) = stem.rsplit_once('_')
        && !k.is_empty()
        && k.bytes().all(|b| b.is_ascii_digit())
    {
        return id.to_string();
    }
    youtube_id(stem).to_string()
}

/// A list's videos found as `o` lays them out (by YouTube id where the list gives bare ids, as
/// the reference's Kinetics and ActivityNet lists do); what was found, or `None`.
pub(crate) fn locate_list(
    root: &Path,
    o: Official,
    splits: &mut BTreeMap<String, Vec<Video>>,
) -> Option<String> {
    let dirs: Vec<PathBuf> = match o {
        Official::SplitFolders => ["train", "val", "test"]
            .iter()
            .flat_map(|s| split_folders(s))
            .map(|f| root.join(f))
            .filter(|d| d.is_dir())
            .collect(),
        Official::YoutubeFiles => vec![root.to_path_buf()],
        _ => return None,
    };
    let ids = index_ids(root, &dirs);
    let mut hits = 0;
    let total = splits.values().map(Vec::len).sum::<usize>();
    for v in splits.values_mut().flatten() {
        if let Some(rel) = ids.get(&annotated_id(&v.path, false)) {
            v.path = rel.clone();
            hits += 1;
        }
    }
    let places: Vec<String> = dirs
        .iter()
        .map(|d| match d.strip_prefix(root) {
            Ok(r) if !r.as_os_str().is_empty() => format!("{}/", r.display()),
            _ => "the root".into(),
        })
        .collect();
    (hits > 0).then(|| {
        format!(
            "clip files found by YouTube id in {} ({hits} of {total} videos)",
            places.join(", ")
        )
    })
}

fn has_video_extension(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e))
}

/// Frame folders drop the annotation's video extension.
fn strip_extensions(splits: &mut BTreeMap<String, Vec<Video>>) {
    for v in splits.values_mut().flatten() {
        v.path = frame_folder(&v.path);
    }
}

/// Annotation paths without an extension (Kinetics) get the one the file on disk has.
fn add_extensions(root: &Path, splits: &mut BTreeMap<String, Vec<Video>>) {
    for v in splits.values_mut().flatten() {
        if has_video_extension(&v.path) {
            continue;
        }
        let name = v.path.file_name().unwrap_or_default().to_string_lossy();
        if let Some(ext) = VIDEO_EXTENSIONS.iter().find(|e| {
            root.join(v.path.with_file_name(format!("{name}.{e}")))
                .is_file()
        }) {
            v.path = v.path.with_file_name(format!("{name}.{ext}"));
        }
    }
}

/// The folders a split's clips may be in, by the names download tools give them.
fn split_folders(split: &str) -> &'static [&'static str] {
    match split {
        "train" => &["train", "training"],
        "val" => &["val", "validate", "validation", "valid"],
        "test" => &["test", "testing"],
        _ => &[],
    }
}

/// Video files under `dir` and one level of sub-folders, by file stem: path from `root`.
fn index(root: &Path, dir: &Path) -> HashMap<String, PathBuf> {
    let mut out = HashMap::new();
    let visit = |d: &Path, out: &mut HashMap<String, PathBuf>, subdirs: &mut Vec<PathBuf>| {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                subdirs.push(p);
            } else if has_video_extension(&p)
                && let (Some(stem), Ok(rel)) = (p.file_stem(), p.strip_prefix(root))
            {
                out.insert(stem.to_string_lossy().into_owned(), rel.to_path_buf());
            }
        }
    };
    let mut subdirs = Vec::new();
    visit(dir, &mut out, &mut subdirs);
    for s in subdirs {
        visit(&s, &mut out, &mut Vec::new());
    }
    out
}

/// Finds the media of `splits` under `opts.root` — `frames/`, `videos/`, then the `official`
/// layouts, then frame folders directly under the root — and rewrites the videos' paths for
/// what it found. `MediaLayout::found` is `None` when nothing matched, with the places looked.
pub(crate) fn locate(
    opts: &DataOptions,
    pattern: &str,
    splits: &mut BTreeMap<String, Vec<Video>>,
    official: &[Official],
) -> (Media, MediaLayout) {
    let root = &opts.root;
    let pattern = opts
        .frame_pattern
        .clone()
        .unwrap_or_else(|| pattern.to_string());
    let mut looked = Vec::new();
    let found = |media: Media, what: String| (media, MediaLayout::found(what));

    let frames = root.join("frames");
    if frames.is_dir() {
        strip_extensions(splits);
        return found(
            Media::Frames {
                root: frames,
                pattern: pattern.clone(),
            },
            format!("frames/: one folder of `{pattern}` per video"),
        );
    }
    looked.push(frames);
    let videos = root.join("videos");
    if videos.is_dir() {
        add_extensions(&videos, splits);
        return found(
            Media::Videos { root: videos },
            "videos/: video files at their annotation paths".into(),
        );
    }
    looked.push(videos);
    let first = splits.values().flatten().next().map(|v| v.path.clone());
    for o in official {
        match *o {
            Official::Folder(name) => {
                let dir = root.join(name);
                if dir.is_dir() {
                    add_extensions(&dir, splits);
                    return found(
                        Media::Videos { root: dir },
                        format!("{name}/: video files as the official archive unpacks"),
                    );
                }
                looked.push(dir);
            }
            Official::ClassFolders(name) => {
                let class = first
                    .as_ref()
                    .and_then(|p| p.components().next())
                    .map(|c| PathBuf::from(c.as_os_str()));
                for dir in [root.clone(), root.join(name)] {
                    if let Some(c) = &class
                        && dir.join(c).is_dir()
                        && std::fs::read_dir(dir.join(c))
                            .into_iter()
                            .flatten()
                            .flatten()
                            .any(|e| has_video_extension(&e.path()))
                    {
                        add_extensions(&dir, splits);
                        let place = if dir == *root {
                            "the root".to_string()
                        } else {
                            format!("{name}/")
                        };
                        return found(
                            Media::Videos { root: dir },
                            format!(
                                "class folders of video files under {place}, as the official archives unpack"
                            ),
                        );
                    }
                    looked
                        .push(dir.join(class.clone().unwrap_or_else(|| PathBuf::from("<class>"))));
                }
            }
            Official::YoutubeFiles => {
                let ids = index_ids(root, std::slice::from_ref(root));
                if !ids.is_empty() {
                    for (split, vs) in splits.iter_mut() {
                        for v in vs.iter_mut() {
                            let id = annotated_id(&v.path, split == "train" && v.span.is_some());
                            v.path = match ids.get(&id) {
                                Some(rel) => rel.clone(),
                                None => PathBuf::from(format!("v_{id}.mp4")),
                            };
                        }
                    }
                    return found(
                        Media::Videos { root: root.clone() },
                        "video files named by YouTube id (`v_<id>.*`) beside the annotations; training instances are segments of them".into(),
                    );
                }
                looked.push(root.join("v_<id>.mp4"));
            }
            Official::SplitFolders => {
                let mut used = Vec::new();
                for (split, vs) in splits.iter_mut() {
                    let Some(dir) = split_folders(split)
                        .iter()
                        .map(|f| root.join(f))
                        .find(|d| d.is_dir())
                    else {
                        looked.extend(split_folders(split).iter().map(|f| root.join(f)));
                        continue;
                    };
                    let files = index(root, &dir);
                    let name = dir.file_name().unwrap_or_default().to_string_lossy();
                    used.push(format!("{name}/"));
                    for v in vs.iter_mut() {
                        let stem = v.path.file_name().unwrap_or_default().to_string_lossy();
                        v.path = match files.get(stem.as_ref()) {
                            Some(rel) => rel.clone(),
                            // Where it would be: named in the problem `data` reports.
                            None => PathBuf::from(name.as_ref())
                                .join(&v.path)
                                .with_extension("mp4"),
                        };
                    }
                }
                if !used.is_empty() {
                    return found(
                        Media::Videos { root: root.clone() },
                        format!(
                            "{}: clip files by name, with or without class sub-folders",
                            used.join(", ")
                        ),
                    );
                }
            }
        }
    }
    // The reference's frames root itself given as the root.
    strip_extensions(splits);
    let media = Media::Frames {
        root: root.clone(),
        pattern: pattern.clone(),
    };
    if first.is_some_and(|p| root.join(p.with_extension("")).is_dir()) {
        return found(
            media,
            format!("frame folders of `{pattern}` directly under the root"),
        );
    }
    looked.push(root.join("<video>/"));
    (media, MediaLayout::not_found(looked))
}
