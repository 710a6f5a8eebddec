//! Slurm options: `results/slurm.toml`, overridden by the command line.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::SlurmError;

/// What every job array of a sweep asks Slurm for. Unset fields are left to the cluster's
/// defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--qos`.
    pub qos: Option<String>,
    /// `--time` of each task (Slurm's formats, `24:00:00`, `2-00:00:00`); `sweep --timeout`
    /// overrides it.
    pub time: Option<String>,
    /// `--mem` of each task (`64G`).
    pub mem: Option<String>,
    /// `--cpus-per-task`; default: a CPU run's data-parallel peers (one compute thread each).
    pub cpus_per_task: Option<u32>,
    /// GPUs per task (`--gres=gpu:N`); default: the run's devices (`model.devices`, else
    /// `--devices-per-run`) with `--backend cuda`, none on the CPU.
    pub gpus_per_run: Option<u32>,
    /// A GPU type for the request (`--gres=gpu:<type>:N`), as the cluster names it.
    pub gpu_type: Option<String>,
    /// Further `sbatch` arguments, as given (`["--constraint=a100", "--exclusive"]`).
    #[serde(default)]
    pub sbatch_args: Vec<String>,
}

impl SlurmConfig {
    /// The config file's name in the results folder.
    pub const FILE: &'static str = "slurm.toml";

    pub fn path(results: &Path) -> PathBuf {
        results.join(Self::FILE)
    }

    /// `results/slurm.toml`, or the defaults when there is none.
    pub fn load(results: &Path) -> Result<SlurmConfig, SlurmError> {
        let path = Self::path(results);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(SlurmError::Io { path, source }),
        };
        toml::from_str(&text).map_err(|e| SlurmError::Config {
            path,
            message: e.to_string(),
        })
    }

    /// `self` with what `over` sets taking precedence; `sbatch_args` of both, `over`'s last
    /// (sbatch lets a later argument win).
    pub fn overridden_by(mut self, over: SlurmConfig) -> SlurmConfig {
        fn take<T>(a: &mut Option<T>, b: Option<T>) {
            if b.is_some() {
                *a = b;
            }
        }
        take(&mut self.partition, over.partition);
        take(&mut self.account, over.account);
        take(&mut self.qos, over.qos);
        take(&mut self.time, over.time);
        take(&mut self.mem, over.mem);
        take(&mut self.cpus_per_task, over.cpus_per_task);
        take(&mut self.gpus_per_run, over.gpus_per_run);
        take(&mut self.gpu_type, over.gpu_type);
        self.sbatch_args.extend(over.sbatch_args);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_reads_and_the_command_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            SlurmConfig::load(dir.path()).unwrap(),
            SlurmConfig::default()
        );
        std::fs::write(
            SlurmConfig::path(dir.path()),
            "partition = \"gpu\"\naccount = \"vision\"\ntime = \"4:00:00\"\n\
             sbatch_args = [\"--constraint=a100\"]\n",
        )
        .unwrap();
        let file = SlurmConfig::load(dir.path()).unwrap();
        assert_eq!(file.partition.as_deref(), Some("gpu"));
        let cli = SlurmConfig {
            partition: Some("debug".into()),
            sbatch_args: vec!["--exclusive".into()],
            ..Default::default()
        };
        let c = file.overridden_by(cli);
        assert_eq!(c.partition.as_deref(), Some("debug"));
        assert_eq!(c.account.as_deref(), Some("vision"));
        assert_eq!(c.time.as_deref(), Some("4:00:00"));
        assert_eq!(c.sbatch_args, ["--constraint=a100", "--exclusive"]);
    }

    #[test]
    fn a_wrong_key_is_named_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(SlurmConfig::path(dir.path()), "partiton = \"gpu\"\n").unwrap();
        let e = SlurmConfig::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("slurm.toml") && e.contains("partiton"), "{e}");
    }
}
