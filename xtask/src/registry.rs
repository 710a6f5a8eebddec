//! The one list of everything a spec can name. `plugins` prints it, sweep scripts resolve
//! against it, tests iterate it. Adding a plugin is adding a line here.

use t4v_core::{Registry, RunKind};
use t4v_sweep::selftest::Selftest;

static RUN_KINDS: &[&dyn RunKind] = &[
    &Selftest,
    &t4v_train::runs::FeaturesRun,
    &t4v_train::runs::ZeroShotRun,
    &t4v_train::runs::TrainRun,
    &t4v_train::runs::EvalRun,
    &t4v_train::runs::ProbeRun,
    &t4v_train::runs::PretrainRun,
];

pub const REGISTRY: Registry = Registry {
    run_kinds: RUN_KINDS,
    encoders: t4v_train::encoder::ENCODERS,
    heads: t4v_train::temporal::HEADS,
    inits: t4v_inits::INITS,
    datasets: t4v_datasets::DATASETS,
};
