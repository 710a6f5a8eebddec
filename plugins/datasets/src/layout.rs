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
}

fn has_video_extension(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e))
}

/// Frame folders drop the annotation's video extension.
fn strip_extensions(splits: &mut BTreeMap<String, Vec<Video>>) {
    for v in splits.values_mut().flatten() {
        if has_video_extension(&v.path) {
            v.path.set_extension("");
        }
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
