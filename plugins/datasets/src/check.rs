//! Checking that a dataset is wired right: every video's media is present and readable.

use std::path::PathBuf;

use serde::Serialize;
use t4v_core::{Dataset, Media};
use t4v_video::frames::{FramePattern, load};

/// Something wrong with one video.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub reason: String,
}

/// Checks the media of one split: frame folders exist, hold frames, and their first frame
/// decodes; video files exist and are not empty. `line` is the video's position in the split.
pub fn media(
    dataset: &dyn Dataset,
    split: &str,
) -> Result<Vec<Problem>, t4v_core::plugin::PluginError> {
    let videos = dataset.videos(split)?;
    let mut out = Vec::new();
    match dataset.media() {
        Media::Frames { root, pattern } => {
            let pattern = FramePattern::parse(&pattern)
                .map_err(|e| t4v_core::plugin::PluginError::Invalid(e.to_string()))?;
            for (i, v) in videos.iter().enumerate() {
                let dir = root.join(&v.path);
                let problem = match pattern.count(&dir) {
                    Err(e) => Some(e.to_string()),
                    Ok(_) => load(&dir, &pattern, &[0]).err().map(|e| e.to_string()),
                };
                if let Some(reason) = problem {
                    // Errors lead with the path; the problem names it already.
                    let reason = reason
                        .strip_prefix(&format!("{}: ", dir.display()))
                        .map(str::to_string)
                        .unwrap_or(reason);
                    out.push(Problem {
                        file: dir,
                        line: i + 1,
                        reason,
                    });
                }
            }
        }
        Media::Videos { root } => {
            for (i, v) in videos.iter().enumerate() {
                let file = root.join(&v.path);
                match std::fs::metadata(&file) {
                    Err(e) => out.push(Problem {
                        file,
                        line: i + 1,
                        reason: e.to_string(),
                    }),
                    Ok(m) if m.len() == 0 => out.push(Problem {
                        file,
                        line: i + 1,
                        reason: "empty file".into(),
                    }),
                    #[cfg(feature = "video")]
                    Ok(_) => {
                        let read = match v.span {
                            None => t4v_video::decode::frame_count(&file)
                                .and_then(|_| t4v_video::decode::frames(&file, &[0])),
                            // A segment (ActivityNet's training instances): its own frames.
                            Some(span) => t4v_video::decode::segment(&file, span)
                                .and_then(|f| t4v_video::decode::frames(&file, &[f.start])),
                        };
                        if let Err(e) = read {
                            let reason = e.to_string();
                            let reason = reason
                                .strip_prefix(&format!("{}: ", file.display()))
                                .map(str::to_string)
                                .unwrap_or(reason);
                            out.push(Problem {
                                file,
                                line: i + 1,
                                reason,
                            });
                        }
                    }
                    #[cfg(not(feature = "video"))]
                    Ok(_) => {}
                }
            }
        }
        Media::Synthetic { .. } => {}
    }
    Ok(out)
}
