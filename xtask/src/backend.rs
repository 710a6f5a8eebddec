//! Choosing the compute backend at run time. The CUDA build loads the driver at first use and
//! would panic inside cudarc without one, so its presence is probed before anything starts.

use anyhow::{Result, bail};

/// Backends this build can run, by `--backend` name.
pub const BACKENDS: &[&str] = &["cpu", "cuda"];

/// The default CPU backend: burn's `flex` (faster than `ndarray` on the CLIP benchmark, see
/// BENCHMARKS.md).
pub type Cpu = burn::backend::Flex;

#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;

/// Checks that `name` can run here.
pub fn check(name: &str) -> Result<()> {
    check_for(name, true)
}

/// Checks that this build has `name`, and with `here` that this machine can run it (a Slurm
/// coordinator on a login node needs the CUDA build, not a GPU).
pub fn check_for(name: &str, here: bool) -> Result<()> {
    match name {
        "cpu" => Ok(()),
        "cuda" if !cfg!(feature = "cuda") => bail!(
            "--backend cuda: this build has no CUDA support; rebuild with `--features cuda` \
             (cargo run --release -p xtask --features cuda -- ...)"
        ),
        "cuda" => {
            if !here || cuda_driver_present() {
                Ok(())
            } else {
                bail!("--backend cuda: no CUDA driver found (libcuda.so.1 cannot be loaded)")
            }
        }
        other => bail!(
            "--backend {other}: unknown backend (known: {})",
            BACKENDS.join(", ")
        ),
    }
}

fn cuda_driver_present() -> bool {
    let name = c"libcuda.so.1";
    // SAFETY: dlopen with a valid C string; the handle is closed at once.
    unsafe {
        let h = libc::dlopen(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
        if h.is_null() {
            false
        } else {
            libc::dlclose(h);
            true
        }
    }
}
