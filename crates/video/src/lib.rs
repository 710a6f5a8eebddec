//! Video datasets: parsers for the official annotation formats of Kinetics, UCF-101, HMDB-51 and
//! ActivityNet and for the reference implementation's list files, the evaluation protocols
//! (splits, few-shot, zero-shot), and frame sampling exactly as the reference does it.

pub mod annotations;
pub mod augment;
#[cfg(feature = "video")]
pub mod decode;
#[cfg(feature = "video")]
pub mod extract;
pub mod frames;
#[cfg(feature = "video")]
pub mod jpeg;
pub mod loader;
pub mod names;
pub mod numpy_legacy;
pub mod protocol;
pub mod sampling;
pub mod synthetic;

use std::path::PathBuf;

/// A data problem, naming the file and line at fault.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// One video (or trimmed instance) of an annotation file.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Video {
    /// Relative to the dataset root: a frame folder or a video file.
    pub path: PathBuf,
    /// 0-based class index.
    pub label: usize,
    /// Frame count given by the annotations (list files); the folder is counted when read.
    pub frames: Option<u32>,
    /// The part of the video file this instance is, in seconds (ActivityNet's trimmed training
    /// instances are segments of untrimmed videos); `None`: all of it.
    pub span: Option<[f64; 2]>,
    /// Where it came from, for error messages.
    pub source: PathBuf,
    pub line: usize,
}
