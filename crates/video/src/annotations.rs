//! Parsers of annotation files: the official formats of each dataset (REFERENCE.md §3.1) and the
//! reference implementation's list files and label CSVs (§3.2). Every error names the file and
//! the line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::{Video, VideoError};

fn read(path: &Path) -> Result<String, VideoError> {
    std::fs::read_to_string(path).map_err(|source| VideoError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn err(path: &Path, line: usize, message: impl Into<String>) -> VideoError {
    VideoError::Parse {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// Non-empty lines with their 1-based numbers.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// A label CSV of the reference (`id,name` header, ids 0..C−1 in order).
pub fn label_csv(path: &Path) -> Result<Vec<String>, VideoError> {
    let text = read(path)?;
    let mut names = Vec::new();
    for (n, line) in lines(&text) {
        if n == 1 && line.trim() == "id,name" {
            continue;
        }
        let (id, name) = line
            .split_once(',')
            .ok_or_else(|| err(path, n, format!("expected `id,name`, found `{line}`")))?;
        let id: usize = id
            .trim()
            .parse()
            .map_err(|_| err(path, n, format!("class id `{id}` is not a number")))?;
        if id != names.len() {
            return Err(err(
                path,
                n,
                format!("class id {id} out of order (expected {})", names.len()),
            ));
        }
        names.push(name.trim().to_string());
    }
    if names.is_empty() {
        return Err(err(path, 1, "no classes"));
    }
    Ok(names)
}

/// A list file of the reference: `<path> <num_frames> <label>` (frame folders) or
/// `<path> <label>` (video files), label 0-based. Columns are read from the right, so a path may
/// hold spaces (Kinetics' class folders: `air drumming/...`).
pub fn list_file(path: &Path, num_classes: usize) -> Result<Vec<Video>, VideoError> {
    let text = read(path)?;
    let mut out = Vec::new();
    for (n, line) in lines(&text) {
        let last = |s: &str| {
            s.trim_end()
                .rsplit_once(char::is_whitespace)
                .map(|(a, b)| (a.trim_end().to_string(), b.to_string()))
        };
        let Some((rest, label)) = last(line).filter(|(a, _)| !a.is_empty()) else {
            return Err(err(
                path,
                n,
                format!(
                    "expected 2 or 3 columns (path [frames] label), found {}",
                    line.split_whitespace().count()
                ),
            ));
        };
        let (video, frames) = match last(&rest) {
            Some((p, f)) if !p.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
                let f: u32 = f
                    .parse()
                    .map_err(|_| err(path, n, format!("frame count `{f}` is not a number")))?;
                (p, Some(f))
            }
            _ => (rest, None),
        };
        let label = label.as_str();
        let label: usize = label
            .parse()
            .map_err(|_| err(path, n, format!("label `{label}` is not a number")))?;
        if label >= num_classes {
            return Err(err(
                path,
                n,
                format!("label {label} out of range: there are {num_classes} classes"),
            ));
        }
        out.push(Video {
            span: None,
            path: PathBuf::from(video),
            label,
            frames,
            source: path.to_path_buf(),
            line: n,
        });
    }
    Ok(out)
}

/// UCF-101 `ucfTrainTestlist/`.
pub mod ucf {
    use super::*;

    /// `classInd.txt`: `<1-based id> <ClassName>`.
    pub fn class_ind(path: &Path) -> Result<Vec<String>, VideoError> {
        let text = read(path)?;
        let mut names = Vec::new();
        for (n, line) in lines(&text) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let [id, name] = cols.as_slice() else {
                return Err(err(
                    path,
                    n,
                    format!("expected `<id> <ClassName>`, found `{line}`"),
                ));
            };
            let id: usize = id
                .parse()
                .map_err(|_| err(path, n, format!("class id `{id}` is not a number")))?;
            if id != names.len() + 1 {
                return Err(err(
                    path,
                    n,
                    format!("class id {id} out of order (expected {})", names.len() + 1),
                ));
            }
            names.push(name.to_string());
        }
        Ok(names)
    }

    fn class_of(
        path: &Path,
        n: usize,
        video: &str,
        classes: &[String],
    ) -> Result<usize, VideoError> {
        let folder = video.split('/').next().unwrap_or_default();
        classes
            .iter()
            .position(|c| c == folder)
            .ok_or_else(|| err(path, n, format!("unknown class `{folder}`")))
    }

    /// `trainlist0k.txt`: `<Class>/<video>.avi <1-based id>`; the id must agree with the folder.
    pub fn train_list(path: &Path, classes: &[String]) -> Result<Vec<Video>, VideoError> {
        let text = read(path)?;
        let mut out = Vec::new();
        for (n, line) in lines(&text) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let [video, id] = cols.as_slice() else {
                return Err(err(
                    path,
                    n,
                    format!(
                        "expected `<Class>/<video>.avi <id>`, found {} column(s)",
                        cols.len()
                    ),
                ));
            };
            let id: usize = id
                .parse()
                .map_err(|_| err(path, n, format!("class id `{id}` is not a number")))?;
            if id == 0 || id > classes.len() {
                return Err(err(
                    path,
                    n,
                    format!("class id {id} out of range 1..={}", classes.len()),
                ));
            }
            let label = class_of(path, n, video, classes)?;
            if label != id - 1 {
                return Err(err(
                    path,
                    n,
                    format!("class id {id} does not match folder `{}`", classes[label]),
                ));
            }
            out.push(Video {
                span: None,
                path: PathBuf::from(video),
                label,
                frames: None,
                source: path.to_path_buf(),
                line: n,
            });
        }
        Ok(out)
    }

    /// `testlist0k.txt`: `<Class>/<video>.avi`.
    pub fn test_list(path: &Path, classes: &[String]) -> Result<Vec<Video>, VideoError> {
        let text = read(path)?;
        let mut out = Vec::new();
        for (n, line) in lines(&text) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let [video] = cols.as_slice() else {
                return Err(err(
                    path,
                    n,
                    format!(
                        "expected `<Class>/<video>.avi`, found {} columns",
                        cols.len()
                    ),
                ));
            };
            let label = class_of(path, n, video, classes)?;
            out.push(Video {
                span: None,
                path: PathBuf::from(video),
                label,
                frames: None,
                source: path.to_path_buf(),
                line: n,
            });
        }
        Ok(out)
    }
}

/// HMDB-51 `testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt`.
pub mod hmdb {
    use super::*;

    /// Classes (folder names, sorted), and the train and test videos of `split` (1–3).
    #[derive(Debug)]
    pub struct Split {
        pub classes: Vec<String>,
        pub train: Vec<Video>,
        pub test: Vec<Video>,
    }

    pub fn split(dir: &Path, split: u32) -> Result<Split, VideoError> {
        let suffix = format!("_test_split{split}.txt");
        let entries = std::fs::read_dir(dir).map_err(|source| VideoError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
        for e in entries {
            let e = e.map_err(|source| VideoError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(class) = name.strip_suffix(&suffix) {
                files.insert(class.to_string(), e.path());
            }
        }
        if files.is_empty() {
            return Err(VideoError::Invalid(format!(
                "{}: no `*{suffix}` files",
                dir.display()
            )));
        }
        let classes: Vec<String> = files.keys().cloned().collect();
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for (label, (class, path)) in files.iter().enumerate() {
            let text = read(path)?;
            for (n, line) in lines(&text) {
                let cols: Vec<&str> = line.split_whitespace().collect();
                let [video, flag] = cols.as_slice() else {
                    return Err(err(
                        path,
                        n,
                        format!(
                            "expected `<video>.avi <0|1|2>`, found {} column(s)",
                            cols.len()
                        ),
                    ));
                };
                let v = Video {
                    span: None,
                    path: PathBuf::from(class).join(video),
                    label,
                    frames: None,
                    source: path.clone(),
                    line: n,
                };
                match *flag {
                    "1" => train.push(v),
                    "2" => test.push(v),
                    "0" => {}
                    other => {
                        return Err(err(
                            path,
                            n,
                            format!("flag `{other}` is not 0 (unused), 1 (train) or 2 (test)"),
                        ));
                    }
                }
            }
        }
        Ok(Split {
            classes,
            train,
            test,
        })
    }
}

/// Kinetics-400/600 CSVs (`label,youtube_id,time_start,time_end,split[,is_cc]`).
pub mod kinetics {
    use super::*;

    /// One clip: `<label>/<youtube_id>_<start:06>_<end:06>` (no extension: frames or a video).
    pub fn clip_name(youtube_id: &str, start: u32, end: u32) -> String {
        format!("{youtube_id}_{start:06}_{end:06}")
    }

    /// Reads a CSV. `classes` fixes the class list (e.g. from the training CSV); `None` takes the
    /// sorted labels of this file, as the reference's label files are sorted.
    pub fn csv(
        path: &Path,
        classes: Option<&[String]>,
    ) -> Result<(Vec<String>, Vec<Video>), VideoError> {
        let mut r = csv::ReaderBuilder::new()
            .from_path(path)
            .map_err(|e| VideoError::Invalid(format!("{}: {e}", path.display())))?;
        let header = r
            .headers()
            .map_err(|e| err(path, 1, e.to_string()))?
            .clone();
        let col = |name: &str| header.iter().position(|h| h.trim() == name);
        let (Some(label_c), Some(id_c), Some(s_c), Some(e_c)) = (
            col("label"),
            col("youtube_id"),
            col("time_start"),
            col("time_end"),
        ) else {
            return Err(err(
                path,
                1,
                format!(
                    "header must have label, youtube_id, time_start, time_end; found `{}`",
                    header.iter().collect::<Vec<_>>().join(",")
                ),
            ));
        };
        let mut rows = Vec::new();
        for rec in r.records() {
            let rec = rec.map_err(|e| {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                err(path, line, e.to_string())
            })?;
            let n = rec.position().map(|p| p.line() as usize).unwrap_or(0);
            let get = |c: usize| rec.get(c).unwrap_or_default().trim().to_string();
            let num = |c: usize, what: &str| -> Result<u32, VideoError> {
                let v = get(c);
                v.parse::<f64>()
                    .map(|f| f as u32)
                    .map_err(|_| err(path, n, format!("{what} `{v}` is not a number")))
            };
            rows.push((
                n,
                get(label_c),
                get(id_c),
                num(s_c, "time_start")?,
                num(e_c, "time_end")?,
            ));
        }
        let classes: Vec<String> = match classes {
            Some(c) => c.to_vec(),
            None => rows
                .iter()
                .map(|r| r.1.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        };
        let index: BTreeMap<&str, usize> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let mut videos = Vec::with_capacity(rows.len());
        for (n, label, id, s, e) in &rows {
            let l = *index
                .get(label.as_str())
                .ok_or_else(|| err(path, *n, format!("unknown class `{label}`")))?;
            videos.push(Video {
                span: None,
                path: PathBuf::from(label).join(clip_name(id, *s, *e)),
                label: l,
                frames: None,
                source: path.to_path_buf(),
                line: *n,
            });
        }
        Ok((classes, videos))
    }
}

/// ActivityNet v1.3 (`activity_net.v1-3.min.json`).
pub mod anet {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct File {
        database: BTreeMap<String, Entry>,
    }

    #[derive(Deserialize)]
    struct Entry {
        subset: String,
        #[serde(default)]
        annotations: Vec<Annotation>,
    }

    #[derive(Deserialize)]
    struct Annotation {
        label: String,
        /// Start and end in seconds.
        #[serde(default)]
        segment: Option<[f64; 2]>,
    }

    /// Classes (sorted), training *instances* (one per annotated segment, named
    /// `<youtube_id>_<k>` as in the reference's lists) and validation *videos* (labelled with
    /// their first annotation).
    #[derive(Debug)]
    pub struct Split {
        pub classes: Vec<String>,
        pub train: Vec<Video>,
        pub val: Vec<Video>,
    }

    pub fn json(path: &Path) -> Result<Split, VideoError> {
        let text = read(path)?;
        let f: File =
            serde_json::from_str(&text).map_err(|e| err(path, e.line(), e.to_string()))?;
        let classes: Vec<String> = f
            .database
            .values()
            .flat_map(|e| e.annotations.iter().map(|a| a.label.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let index: BTreeMap<&str, usize> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let (mut train, mut val) = (Vec::new(), Vec::new());
        for (id, e) in &f.database {
            match e.subset.as_str() {
                "training" => {
                    for (k, a) in e.annotations.iter().enumerate() {
                        train.push(Video {
                            span: a.segment,
                            path: PathBuf::from(format!("{id}_{k}")),
                            label: index[a.label.as_str()],
                            frames: None,
                            source: path.to_path_buf(),
                            line: 0,
                        });
                    }
                }
                "validation" => {
                    if let Some(a) = e.annotations.first() {
                        val.push(Video {
                            span: None,
                            path: PathBuf::from(id),
                            label: index[a.label.as_str()],
                            frames: None,
                            source: path.to_path_buf(),
                            line: 0,
                        });
                    }
                }
                "testing" => {}
                other => {
                    return Err(VideoError::Invalid(format!(
                        "{}: video `{id}` has subset `{other}` (expected training, validation or testing)",
                        path.display()
                    )));
                }
            }
        }
        Ok(Split {
            classes,
            train,
            val,
        })
    }
}
