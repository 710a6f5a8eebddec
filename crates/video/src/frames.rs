//! Frame folders: a folder of JPEG/PNG frames named by a pattern such as `img_{:05}.jpg`
//! (Kinetics in the reference), `image_{:04}.jpg` (UCF-101) or `image_{:06}.jpg` (HMDB-51,
//! ActivityNet). Frames are counted from the folder, as the reference does.

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::VideoError;

/// A frame file-name pattern: prefix, zero-padded 1-based index, suffix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramePattern {
    prefix: String,
    width: usize,
    suffix: String,
    /// The number of the first frame (the reference's `index_bias`, 1).
    pub first: usize,
}

impl FramePattern {
    /// Parses `img_{:05}.jpg` (Python style; `{:05d}` is accepted too).
    pub fn parse(s: &str) -> Result<Self, VideoError> {
        let bad = || {
            VideoError::Invalid(format!(
                "frame pattern `{s}`: expected something like `img_{{:05}}.jpg`"
            ))
        };
        let open = s.find('{').ok_or_else(bad)?;
        let close = s[open..].find('}').ok_or_else(bad)? + open;
        let spec = s[open + 1..close]
            .trim_start_matches(':')
            .trim_end_matches('d');
        let width = if spec.is_empty() {
            0
        } else {
            spec.trim_start_matches('0').parse().map_err(|_| bad())?
        };
        Ok(Self {
            prefix: s[..open].to_string(),
            width,
            suffix: s[close + 1..].to_string(),
            first: 1,
        })
    }

    /// The file name of 0-based frame `i`.
    pub fn name(&self, i: usize) -> String {
        format!(
            "{}{:0w$}{}",
            self.prefix,
            i + self.first,
            self.suffix,
            w = self.width
        )
    }

    fn matches(&self, name: &str) -> bool {
        name.strip_prefix(&self.prefix)
            .and_then(|r| r.strip_suffix(&self.suffix))
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    }

    /// Frames in a folder: the files that match the pattern.
    pub fn count(&self, dir: &Path) -> Result<usize, VideoError> {
        let entries = std::fs::read_dir(dir).map_err(|source| VideoError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut n = 0;
        for e in entries {
            let e = e.map_err(|source| VideoError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            if self.matches(&e.file_name().to_string_lossy()) {
                n += 1;
            }
        }
        if n == 0 {
            return Err(VideoError::Invalid(format!(
                "{}: no frames named like `{}`",
                dir.display(),
                self.name(0)
            )));
        }
        Ok(n)
    }

    pub fn path(&self, dir: &Path, i: usize) -> PathBuf {
        dir.join(self.name(i))
    }
}

/// Decodes the frames `indices` (0-based) of a folder as RGB.
pub fn load(
    dir: &Path,
    pattern: &FramePattern,
    indices: &[usize],
) -> Result<Vec<RgbImage>, VideoError> {
    indices
        .iter()
        .map(|&i| {
            let path = pattern.path(dir, i);
            let bytes = std::fs::read(&path).map_err(|source| VideoError::Io {
                path: path.clone(),
                source,
            })?;
            image::load_from_memory(&bytes)
                .map(|img| img.into_rgb8())
                .map_err(|e| VideoError::Invalid(format!("{}: cannot decode: {e}", path.display())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_count_and_decode() {
        let p = FramePattern::parse("img_{:05}.jpg").unwrap();
        assert_eq!(p.name(0), "img_00001.jpg");
        assert_eq!(
            FramePattern::parse("image_{:06d}.jpg").unwrap().name(9),
            "image_000010.jpg"
        );
        assert!(FramePattern::parse("frame.jpg").is_err());
        let d = tempfile::tempdir().unwrap();
        for i in 0..3 {
            let img = RgbImage::from_pixel(8, 6, image::Rgb([i as u8 * 50, 10, 20]));
            img.save(d.path().join(p.name(i))).unwrap();
        }
        std::fs::write(d.path().join("notes.txt"), "x").unwrap();
        assert_eq!(p.count(d.path()).unwrap(), 3);
        let f = load(d.path(), &p, &[2, 0]).unwrap();
        assert_eq!(f[0].dimensions(), (8, 6));
        assert!(
            (f[0].get_pixel(3, 3)[0] as i32 - 100).abs() <= 3,
            "JPEG keeps the colour roughly"
        );
        std::fs::write(d.path().join(p.name(1)), b"\xff\xd8\xff garbage").unwrap();
        let err = load(d.path(), &p, &[1]).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}: cannot decode",
                d.path().join("img_00002.jpg").display()
            )),
            "{err}"
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(
            p.count(empty.path())
                .unwrap_err()
                .to_string()
                .contains("no frames named like `img_00001.jpg`")
        );
        assert!(
            p.count(&empty.path().join("missing"))
                .unwrap_err()
                .to_string()
                .starts_with(&empty.path().join("missing").display().to_string())
        );
    }
}
