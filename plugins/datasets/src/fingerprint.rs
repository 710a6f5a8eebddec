//! A dataset's fingerprint: what changes when its data does, cheap enough to take at every
//! sweep — the annotation files' bytes and, per video, whether its media are there and (video
//! files) their size. Where the dataset lives is not part of it: a moved copy is the same data.

use std::path::{Path, PathBuf};

use t4v_core::Media;
use t4v_video::Video;

fn add_file(h: &mut blake3::Hasher, path: &Path) {
    h.update(path.file_name().unwrap_or_default().as_encoded_bytes());
    match std::fs::read(path) {
        Ok(bytes) => {
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
        }
        Err(_) => {
            h.update(b"<unreadable>");
        }
    }
}

/// The fingerprint (hex, 16 digits) of `sources` (files, or folders whose files all count)
/// and the media of `videos`; `None` for media drawn on demand.
pub(crate) fn of<'a>(
    sources: &[PathBuf],
    media: &Media,
    videos: impl Iterator<Item = &'a Video>,
) -> Option<String> {
    let mut h = blake3::Hasher::new();
    for s in sources {
        if s.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(s)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for f in files {
                add_file(&mut h, &f);
            }
        } else {
            add_file(&mut h, s);
        }
    }
    let (root, files) = match media {
        Media::Frames { root, .. } => (root, false),
        Media::Videos { root } => (root, true),
        Media::Synthetic { .. } => return None,
    };
    let (mut present, mut bytes) = (0u64, 0u64);
    let mut seen = std::collections::HashSet::new();
    for v in videos.filter(|v| seen.insert(v.path.clone())) {
        let Ok(m) = std::fs::metadata(root.join(&v.path)) else {
            continue;
        };
        present += 1;
        if files {
            bytes += m.len();
        }
    }
    h.update(&present.to_le_bytes());
    h.update(&bytes.to_le_bytes());
    Some(h.finalize().to_hex()[..16].to_string())
}
