//! Where and how an attempt ran. Recorded with every attempt; never part of a run's id, so the
//! same spec run on another machine or commit is the same run.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// `git rev-parse HEAD` of the working tree the sweep ran from, if it is a git checkout.
    pub git_commit: Option<String>,
    /// Whether tracked files had uncommitted changes.
    pub git_dirty: Option<bool>,
    pub host: String,
    pub os: String,
    /// The compute backend of the sweep (`cpu`, `cuda`).
    pub backend: String,
    /// The device leased to the attempt (`CUDA_VISIBLE_DEVICES`), if any.
    pub device: Option<String>,
    /// Versions of the project and of the libraries that determine numbers.
    pub versions: std::collections::BTreeMap<String, String>,
}

impl Provenance {
    /// Collects provenance of the current process, looking for git in `workdir`.
    pub fn collect(
        workdir: &Path,
        backend: &str,
        versions: std::collections::BTreeMap<String, String>,
    ) -> Self {
        let git = |args: &[&str]| -> Option<String> {
            let out = Command::new("git")
                .args(args)
                .current_dir(workdir)
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        let git_commit = git(&["rev-parse", "HEAD"]);
        let git_dirty = git_commit
            .as_ref()
            .and_then(|_| git(&["status", "--porcelain", "--untracked-files=no"]))
            .map(|s| !s.is_empty());
        Self {
            git_commit,
            git_dirty,
            host: hostname(),
            os: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
            backend: backend.to_string(),
            device: None,
            versions,
        }
    }
}

/// This machine's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}
