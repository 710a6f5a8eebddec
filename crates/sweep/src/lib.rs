//! Sweeps: Rhai scripts that define named sets of runs, the plan that compares them with the
//! store, and the scheduler that executes runs in worker processes.
//!
//! ```text
//! script ──[script]──▶ SweepDef ──[plan]──▶ Plan ──[scheduler]──▶ workers ──events──▶ store
//! ```

pub mod plan;
pub mod progress;
pub mod scheduler;
pub mod script;
pub mod selftest;
pub mod worker;

pub use plan::{Plan, PlanState};
pub use scheduler::{SweepOptions, SweepOutcome, WorkerCommand, unplaceable};
pub use script::{PlannedRun, ScriptError, SweepDef};
