//! The `selftest` run kind: a run that sleeps, reports a metric series, and succeeds, fails,
//! panics, aborts, reports a NaN loss or hangs on request. It checks an installation or a
//! cluster without models or data, and it is what the engine's own tests drive.

use std::time::Duration;

use t4v_core::{Job, ParamDef, ParamType, PluginInfo, Registry, Reporter, RunError, RunKind};

pub struct Selftest;

pub const OUTCOMES: &[&str] = &["succeed", "fail", "panic", "abort", "nan", "hang"];

static INFO: PluginInfo = PluginInfo {
    name: "selftest",
    summary: "sleeps, reports train/loss and val/top1 per epoch, then ends as `outcome` asks",
    params: &[
        ParamDef {
            name: "outcome",
            ty: ParamType::Choice(OUTCOMES),
            default: "\"succeed\"",
            doc: "how the run ends: succeed, fail (an error), panic, abort (SIGABRT), nan (a NaN loss), hang (never ends)",
        },
        ParamDef {
            name: "epochs",
            ty: ParamType::Int,
            default: "5",
            doc: "points in each metric series",
        },
        ParamDef {
            name: "sleep_ms",
            ty: ParamType::Int,
            default: "200",
            doc: "total sleep, spread over the epochs",
        },
        ParamDef {
            name: "fail_attempts",
            ty: ParamType::Int,
            default: "0",
            doc: "fail this many attempts before following `outcome` (a flaky run, for --retry-failed)",
        },
        ParamDef {
            name: "difficulty",
            ty: ParamType::Float,
            default: "1.0",
            doc: "scales the final loss; gives settings different metrics",
        },
    ],
};

/// Deterministic noise in [−0.5, 0.5) per (seed, epoch).
fn noise(seed: u64, i: u64) -> f64 {
    t4v_core::SplitMix64::new(seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))).unit() - 0.5
}

impl RunKind for Selftest {
    fn info(&self) -> &'static PluginInfo {
        &INFO
    }

    fn needs(&self) -> &'static [&'static str] {
        &["input"]
    }

    fn execute(
        &self,
        job: &Job,
        _registry: &Registry,
        reporter: &mut Reporter,
    ) -> Result<(), RunError> {
        let outcome = job.param_str("outcome")?;
        let epochs = job.param_u64("epochs")?.max(1);
        let sleep = Duration::from_millis(job.param_u64("sleep_ms")? / epochs);
        let difficulty = job.param_f64("difficulty")?;
        if job.attempt as u64 <= job.param_u64("fail_attempts")? {
            return Err(RunError::Failed(format!(
                "selftest asked to fail attempt {} of the first {}",
                job.attempt,
                job.param_u64("fail_attempts")?
            )));
        }
        if let Some(input) = job.needs.get("input") {
            let file = input.artefacts.get("result").ok_or_else(|| {
                RunError::Failed(format!(
                    "dependency {} reported no `result` artefact",
                    input.id
                ))
            })?;
            std::fs::read(file).map_err(|source| RunError::Io {
                context: format!(
                    "reading the artefact of dependency {} at {}",
                    input.id,
                    file.display()
                ),
                source,
            })?;
            reporter.log(format!("read the result of {}", input.id));
        }
        for epoch in 0..epochs {
            std::thread::sleep(sleep);
            let t = (epoch + 1) as f64 / epochs as f64;
            let loss = difficulty * (2.0 - 1.5 * t) + 0.05 * noise(job.spec.seed, epoch);
            if outcome == "nan" && epoch + 1 == epochs.div_ceil(2) {
                reporter.metric("train", "loss", epoch, f64::NAN);
                // A diverged run would go on; the coordinator must stop it.
                loop {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            reporter.metric("train", "loss", epoch, loss);
            let top1 = (100.0 * (1.0 - (-3.0 * t / difficulty).exp())
                + 2.0 * noise(job.spec.seed ^ 1, epoch))
            .clamp(0.0, 100.0);
            reporter.metric("val", "top1", epoch, top1);
            reporter.progress(epoch + 1, epochs);
        }
        match outcome {
            "fail" => return Err(RunError::Failed("selftest asked to fail".into())),
            "panic" => panic!("selftest asked to panic"),
            "abort" => {
                eprintln!("selftest asked to abort");
                std::process::abort()
            }
            "hang" => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
            _ => {}
        }
        std::fs::create_dir_all(&job.run_dir).map_err(|source| RunError::Io {
            context: format!("creating {}", job.run_dir.display()),
            source,
        })?;
        let result = job.run_dir.join("result.json");
        let body = serde_json::json!({"id": job.id, "seed": job.spec.seed, "attempt": job.attempt});
        std::fs::write(&result, body.to_string()).map_err(|source| RunError::Io {
            context: format!("writing {}", result.display()),
            source,
        })?;
        reporter.artefact("result", &result.to_string_lossy());
        let final_top1 = 100.0 * (1.0 - (-3.0 / difficulty).exp());
        reporter.summary("test/top1", final_top1);
        Ok(())
    }
}
