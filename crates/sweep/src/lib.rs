//! Sweeps: Rhai scripts that define named sets of runs, the plan that compares them with the
//! store, and the scheduler that executes runs in worker processes (local or under Slurm).
//!
//! ```text
//! script ──[script]──▶ SweepDef ──[plan]──▶ Plan ──[scheduler]──▶ executor ──▶ workers
//!                                                     ▲                   (local / slurm)
//!                                                     └──────── events ◀────────┘
//! ```

mod attempt;
pub mod interrupt;
mod local;
pub mod plan;
pub mod progress;
pub mod scheduler;
pub mod script;
pub mod selftest;
pub mod slurm;
pub mod worker;

pub use attempt::{events_file, job_file, stderr_file};
pub use plan::{Plan, PlanState};
pub use scheduler::{ExecutorChoice, SweepOptions, SweepOutcome, WorkerCommand, unplaceable};
pub use script::{PlannedRun, ScriptError, SweepDef};
