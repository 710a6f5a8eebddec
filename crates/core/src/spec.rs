//! The run specification and its identity.
//!
//! A run is identified by the hash of its *canonical* spec: the resolved spec with every value
//! that equals its default left out, keys sorted, numbers in their shortest round-trip form.
//! Hence reordering keys, writing `5e-5` as `0.00005`, or spelling out a default never changes
//! an id, and adding a new field with a default later leaves every existing id as it was.
//! (Changing a *default value* is therefore a breaking change of the store: bump `ID_DOMAIN`.)

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::registry::{Family, Registry, json_type_name};

/// Domain separator of run ids; changing it re-addresses every run.
const ID_DOMAIN: &str = "text4vis-rs/run/v1";

/// A content-addressed run id: 16 hex digits of BLAKE3 over the canonical spec.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    pub const LEN: usize = 16;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn of(domain: &str, canonical: &Value) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(domain.as_bytes());
        h.update(b"\n");
        h.update(canonical.to_string().as_bytes());
        RunId(h.finalize().to_hex()[..Self::LEN].to_string())
    }
}

impl TryFrom<String> for RunId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.len() == Self::LEN && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(RunId(s.to_ascii_lowercase()))
        } else {
            Err(format!("`{s}` is not a run id (16 hex digits)"))
        }
    }
}

impl std::str::FromStr for RunId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RunId::try_from(s.to_string())
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything that determines a run. Every field defaults to the reference recipe
/// (Text4Vis, REFERENCE.md §1.2–1.7); a sweep script states only what it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSpec {
    /// The run kind (`selftest`, `train`, `eval`, ...): what the worker does.
    pub kind: String,
    /// Seed of everything random in the run; the reference seeds with 1024. In sweeps, seeds are
    /// a reserved axis that reports aggregate over.
    pub seed: u64,
    pub model: ModelSpec,
    pub classifier: ClassifierSpec,
    pub data: DataSpec,
    pub optim: OptimSpec,
    pub eval: EvalSpec,
    /// Parameters of the run kind, checked against its declared list.
    pub params: BTreeMap<String, Value>,
    /// Runs whose artefacts this one consumes, by role (`features`, `pretrained`, ...).
    pub needs: BTreeMap<String, RunId>,
}

impl Default for RunSpec {
    fn default() -> Self {
        Self {
            kind: "train".into(),
            seed: 1024,
            model: ModelSpec::default(),
            classifier: ClassifierSpec::default(),
            data: DataSpec::default(),
            optim: OptimSpec::default(),
            eval: EvalSpec::default(),
            params: BTreeMap::new(),
            needs: BTreeMap::new(),
        }
    }
}

/// Floating-point types a run can compute in (`model.precision`).
pub const PRECISIONS: &[&str] = &["f32", "bf16", "f16"];

/// The video encoder: CLIP backbone, frames, temporal head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSpec {
    /// Video-encoder plugin.
    pub encoder: String,
    /// CLIP checkpoint: a Hugging Face model id or a folder in HF layout.
    pub backbone: String,
    /// Frames per clip (T): 8, 16 or 32 in the paper.
    pub frames: u32,
    /// `transf` (6-layer temporal transformer, general setting) or `mean` (few-shot configs).
    pub temporal_head: String,
    /// Input side in pixels (224; 336 for ViT-L/14-336).
    pub input_size: u32,
    /// Floating-point type of the computation: `f32`, or `bf16` / `f16` on CUDA.
    pub precision: String,
    /// Data-parallel peers of a training run (`train`, `probe`, `pretrain`): GPUs leased to it
    /// on CUDA, compute threads on the CPU; 0 = the sweep's `--devices-per-run`. How a run
    /// executes, not what it computes (the result is one device's at the same global batch):
    /// not part of its id.
    pub devices: u32,
    /// Gradient checkpointing (burn's balanced strategy): activations of the cheap operations
    /// (the linears' and LayerNorms' outputs) are recomputed in the backward pass instead of
    /// kept, so long clips of large backbones fit one GPU; the same loss and gradients, so not
    /// part of the run's id either.
    pub checkpointing: bool,
}

/// Spec fields that say how a run executes, not what it computes: left out of its id, so
/// changing them reuses the run.
pub const EXECUTION_FIELDS: &[(&str, &str)] = &[("model", "devices"), ("model", "checkpointing")];

impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            encoder: "clip".into(),
            backbone: "openai/clip-vit-base-patch32".into(),
            frames: 8,
            temporal_head: "transf".into(),
            input_size: 224,
            precision: "f32".into(),
            devices: 0,
            checkpointing: false,
        }
    }
}

/// Where the classifier W comes from and whether it is trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifierSpec {
    /// Classifier-init plugin: `text` (the paper's default), `lda`, `random`, ...
    pub init: String,
    /// W is frozen in every released config.
    pub frozen: bool,
    /// Prompt template for text inits.
    pub template: String,
    /// Text inits: average the 28-template ensemble of the reference (commented out there)
    /// instead of `template`.
    pub ensemble: bool,
    /// Text inits: `ApplyEyeMakeup` → `apply eye makeup` before prompting (the reference feeds
    /// names verbatim).
    pub normalize_names: bool,
    /// `lda`: shrinkage of the within-class covariance (scikit-learn's `lsqr` solver).
    pub shrinkage: f64,
    /// `text-bert`: the sentence encoder, a Hugging Face model id or a folder in HF layout.
    pub text_model: String,
}

impl Default for ClassifierSpec {
    fn default() -> Self {
        Self {
            init: "text".into(),
            frozen: true,
            template: "a video of a person {}.".into(),
            ensemble: false,
            normalize_names: false,
            shrinkage: 0.1,
            text_model: "sentence-transformers/all-MiniLM-L6-v2".into(),
        }
    }
}

/// Dataset and protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSpec {
    /// Dataset plugin: `k400`, `k600`, `ucf101`, `hmdb51`, `anet`, `synthetic`.
    pub dataset: String,
    /// Official split (1–3 for UCF-101 and HMDB-51).
    pub split: u32,
    /// `general`, `few-shot` or `zero-shot`.
    pub protocol: String,
    /// K videos per class in the few-shot protocol (0 = all).
    pub shots: u32,
    /// What a video that cannot be read does to the run: `fail` it (naming the file), or be
    /// `skip`ped, counted and listed (real Kinetics copies always hold some broken files).
    pub on_error: OnError,
}

/// `data.on_error`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    #[default]
    Fail,
    Skip,
}

impl Default for DataSpec {
    fn default() -> Self {
        Self {
            dataset: "k400".into(),
            split: 1,
            protocol: "general".into(),
            shots: 0,
            on_error: OnError::Fail,
        }
    }
}

/// The optimisation recipe (REFERENCE.md §1.6–1.7).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimSpec {
    /// Base learning rate of the head; the visual encoder and logit scale get `lr × clip_ratio`.
    pub lr: f64,
    pub clip_ratio: f64,
    /// AdamW weight decay, applied to all parameters as in the reference.
    pub weight_decay: f64,
    pub beta1: f64,
    /// 0.999 at the reference's HEAD (0.98 in the code that produced its released logs).
    pub beta2: f64,
    pub eps: f64,
    pub epochs: u32,
    pub warmup_epochs: u32,
    /// Global batch; reached by gradient accumulation when it does not fit.
    pub batch_size: u32,
    /// The schedule is stepped at iteration 0 and every this many iterations.
    pub lr_update_every: u32,
}

impl Default for OptimSpec {
    fn default() -> Self {
        Self {
            lr: 5e-5,
            clip_ratio: 0.1,
            weight_decay: 0.2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            epochs: 30,
            warmup_epochs: 5,
            batch_size: 256,
            lr_update_every: 10,
        }
    }
}

/// Evaluation: how often, and which views.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSpec {
    /// Validate every this many epochs (1 for K400, 5 for the others in the reference).
    pub every: u32,
    /// Spatial crops per clip at test time (1, or 3 for multi-view).
    pub crops: u32,
    /// Temporal clips at test time (1, or 4 for multi-view).
    pub clips: u32,
}

impl Default for EvalSpec {
    fn default() -> Self {
        Self {
            every: 1,
            crops: 1,
            clips: 1,
        }
    }
}

/// What identifies a run: its canonical spec, the id it hashes to, and its setting's id.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    pub canonical: Value,
    pub id: RunId,
    pub setting: RunId,
}

/// A spec that cannot be resolved. Messages name the field (`optim.lr`) at fault.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("field `{path}`: {message}")]
    Field { path: String, message: String },
    #[error("field `{field}`: unknown {family} `{name}` (known: {known})")]
    UnknownPlugin {
        field: &'static str,
        family: &'static str,
        name: String,
        known: String,
    },
    #[error("field `params.{name}`: run kind `{kind}` has no such parameter (known: {known})")]
    UnknownParam {
        kind: String,
        name: String,
        known: String,
    },
    #[error("field `needs.{name}`: run kind `{kind}` consumes no `{name}` (known: {known})")]
    UnknownNeed {
        kind: String,
        name: String,
        known: String,
    },
    #[error("a spec must be a map, found {0}")]
    NotAMap(&'static str),
}

fn known(names: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = names.into_iter().map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        "none yet".into()
    } else {
        v.join(", ")
    }
}

impl RunSpec {
    /// Parses and checks a spec given as JSON (from a sweep script or a file): types, plugin
    /// names of the families the kind uses, and kind parameters (defaults filled in).
    pub fn resolve(value: &Value, registry: &Registry) -> Result<RunSpec, SpecError> {
        if !value.is_object() {
            return Err(SpecError::NotAMap(json_type_name(value)));
        }
        let mut spec: RunSpec =
            serde_path_to_error::deserialize(value).map_err(|e| SpecError::Field {
                path: match e.path().to_string() {
                    p if p == "." => "<spec>".into(),
                    p => p,
                },
                message: e.inner().to_string(),
            })?;
        if !PRECISIONS.contains(&spec.model.precision.as_str()) {
            return Err(SpecError::Field {
                path: "model.precision".into(),
                message: format!(
                    "unknown precision `{}` (known: {})",
                    spec.model.precision,
                    PRECISIONS.join(", ")
                ),
            });
        }
        let kind = registry
            .run_kind(&spec.kind)
            .ok_or_else(|| SpecError::UnknownPlugin {
                field: Family::RunKind.spec_field(),
                family: Family::RunKind.label(),
                name: spec.kind.clone(),
                known: known(registry.run_kinds.iter().map(|k| k.info().name)),
            })?;
        for family in kind.uses() {
            let name = spec.plugin_name(*family);
            if registry.find(*family, name).is_none() {
                return Err(SpecError::UnknownPlugin {
                    field: family.spec_field(),
                    family: family.label(),
                    name: name.to_string(),
                    known: known(registry.family(*family).iter().map(|p| p.name)),
                });
            }
        }
        let info = kind.info();
        let mut params = BTreeMap::new();
        for (name, v) in &spec.params {
            let def = info.params.iter().find(|p| p.name == name).ok_or_else(|| {
                SpecError::UnknownParam {
                    kind: spec.kind.clone(),
                    name: name.clone(),
                    known: known(info.params.iter().map(|p| p.name)),
                }
            })?;
            let v = def.ty.coerce(v).map_err(|message| SpecError::Field {
                path: format!("params.{name}"),
                message,
            })?;
            params.insert(name.clone(), v);
        }
        for def in info.params {
            params
                .entry(def.name.to_string())
                .or_insert_with(|| def.default_value());
        }
        spec.params = params;
        for name in spec.needs.keys() {
            if !kind.needs().contains(&name.as_str()) {
                return Err(SpecError::UnknownNeed {
                    kind: spec.kind.clone(),
                    name: name.clone(),
                    known: known(kind.needs()),
                });
            }
        }
        Ok(spec)
    }

    /// The plugin name a spec gives for a family.
    pub fn plugin_name(&self, family: Family) -> &str {
        match family {
            Family::RunKind => &self.kind,
            Family::Encoder => &self.model.encoder,
            Family::TemporalHead => &self.model.temporal_head,
            Family::ClassifierInit => &self.classifier.init,
            Family::Dataset => &self.data.dataset,
        }
    }

    /// The canonical form: the resolved spec minus every value equal to its default (`kind` and
    /// `seed` always kept). Parameter defaults come from the run kind in `registry`.
    pub fn canonical(&self, registry: &Registry) -> Value {
        static DEFAULTS: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
        let defaults = DEFAULTS
            .get_or_init(|| serde_json::to_value(RunSpec::default()).expect("specs serialise"));
        let mut full = serde_json::to_value(self).expect("specs serialise");
        for (section, field) in EXECUTION_FIELDS {
            if let Some(m) = full.get_mut(*section).and_then(Value::as_object_mut) {
                m.remove(*field);
            }
        }
        let mut out = strip_defaults(&full, defaults).unwrap_or_else(|| Value::Object(Map::new()));
        let obj = out.as_object_mut().expect("a spec is a map");
        obj.insert("kind".into(), Value::from(self.kind.clone()));
        obj.insert("seed".into(), Value::from(self.seed));
        let param_defaults: BTreeMap<&str, Value> = registry
            .run_kind(&self.kind)
            .map(|k| {
                k.info()
                    .params
                    .iter()
                    .map(|p| (p.name, p.default_value()))
                    .collect()
            })
            .unwrap_or_default();
        let params: Map<String, Value> = self
            .params
            .iter()
            .filter(|(k, v)| param_defaults.get(k.as_str()) != Some(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if params.is_empty() {
            obj.remove("params");
        } else {
            obj.insert("params".into(), Value::Object(params));
        }
        out
    }

    /// The run's id.
    pub fn id(&self, registry: &Registry) -> RunId {
        self.identity(registry).id
    }

    /// The id of the run's *setting*: the canonical spec without its seed. Runs that differ only
    /// in seed share it; reports aggregate over it.
    pub fn setting_id(&self, registry: &Registry) -> RunId {
        self.identity(registry).setting
    }

    /// Canonical form, id and setting id, computed together.
    pub fn identity(&self, registry: &Registry) -> Identity {
        let canonical = self.canonical(registry);
        let id = RunId::of(ID_DOMAIN, &canonical);
        let mut c = canonical.clone();
        c.as_object_mut().expect("a spec is a map").remove("seed");
        Identity {
            canonical,
            id,
            setting: RunId::of(ID_DOMAIN, &c),
        }
    }
}

/// `full` minus the entries equal to `defaults`, recursively through maps; `None` if nothing is
/// left.
fn strip_defaults(full: &Value, defaults: &Value) -> Option<Value> {
    match (full, defaults) {
        (Value::Object(f), Value::Object(d)) => {
            let mut out = Map::new();
            for (k, v) in f {
                match d.get(k) {
                    Some(dv) => {
                        if let Some(kept) = strip_defaults(v, dv) {
                            out.insert(k.clone(), kept);
                        }
                    }
                    None => {
                        if !is_empty(v) {
                            out.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        _ if same_value(full, defaults) => None,
        _ => Some(full.clone()),
    }
}

fn is_empty(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.is_empty())
}

/// Equality that treats `1` and `1.0` as one number.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Reporter;
    use crate::registry::{ParamDef, ParamType, PluginInfo};
    use crate::run_kind::{Job, RunError, RunKind};
    use serde_json::json;

    struct Probe;
    static PROBE: PluginInfo = PluginInfo {
        name: "probe",
        summary: "test kind",
        params: &[
            ParamDef {
                name: "steps",
                ty: ParamType::Int,
                default: "10",
                doc: "",
            },
            ParamDef {
                name: "scale",
                ty: ParamType::Float,
                default: "1.0",
                doc: "",
            },
            ParamDef {
                name: "mode",
                ty: ParamType::Choice(&["a", "b"]),
                default: "\"a\"",
                doc: "",
            },
        ],
    };
    impl RunKind for Probe {
        fn info(&self) -> &'static PluginInfo {
            &PROBE
        }
        fn uses(&self) -> &'static [Family] {
            &[Family::Dataset]
        }
        fn needs(&self) -> &'static [&'static str] {
            &["features"]
        }
        fn execute(&self, _: &Job, _: &Registry, _: &mut Reporter) -> Result<(), RunError> {
            Ok(())
        }
    }
    struct K400;
    static K400_INFO: PluginInfo = PluginInfo {
        name: "k400",
        summary: "",
        params: &[],
    };
    impl crate::plugin::DatasetPlugin for K400 {
        fn info(&self) -> &'static PluginInfo {
            &K400_INFO
        }
        fn open(
            &self,
            _: &crate::plugin::DataOptions,
        ) -> Result<Box<dyn crate::plugin::Dataset>, crate::plugin::PluginError> {
            Err(crate::plugin::PluginError::Invalid("not in tests".into()))
        }
    }
    const REG: Registry = Registry {
        run_kinds: &[&Probe],
        encoders: &[],
        heads: &[],
        inits: &[],
        datasets: &[&K400],
    };

    fn id(v: Value) -> RunId {
        RunSpec::resolve(&v, &REG).unwrap().id(&REG)
    }

    #[test]
    fn execution_fields_do_not_change_the_id() {
        let base = id(json!({"kind": "probe"}));
        assert_eq!(id(json!({"kind": "probe", "model": {"devices": 4}})), base);
        assert_eq!(
            id(json!({"kind": "probe", "model": {"checkpointing": true}})),
            base
        );
        assert_ne!(id(json!({"kind": "probe", "model": {"frames": 16}})), base);
    }

    #[test]
    fn key_order_float_format_and_defaults_do_not_change_the_id() {
        let a = id(
            json!({"kind": "probe", "optim": {"lr": 1e-5, "epochs": 10}, "params": {"steps": 3}}),
        );
        let b: Value = serde_json::from_str(
            r#"{"params": {"steps": 3.0, "scale": 1}, "optim": {"epochs": 10, "lr": 0.00001,
                "weight_decay": 0.2}, "seed": 1024, "kind": "probe", "data": {"dataset": "k400"}}"#,
        )
        .unwrap();
        assert_eq!(a, id(b));
        assert_ne!(
            a,
            id(
                json!({"kind": "probe", "optim": {"lr": 2e-5, "epochs": 10}, "params": {"steps": 3}})
            )
        );
        assert_ne!(
            a,
            id(
                json!({"kind": "probe", "seed": 1, "optim": {"lr": 1e-5, "epochs": 10}, "params": {"steps": 3}})
            )
        );
    }

    #[test]
    fn the_id_is_stable_across_versions() {
        // Pinned: a change here re-addresses every stored run.
        let spec =
            RunSpec::resolve(&json!({"kind": "probe", "params": {"mode": "b"}}), &REG).unwrap();
        assert_eq!(
            spec.canonical(&REG).to_string(),
            r#"{"kind":"probe","params":{"mode":"b"},"seed":1024}"#
        );
        assert_eq!(spec.id(&REG).as_str().len(), 16);
        assert_eq!(
            spec.id(&REG),
            id(json!({"params": {"mode": "b"}, "kind": "probe"}))
        );
    }

    #[test]
    fn seeds_share_a_setting() {
        let a = RunSpec::resolve(&json!({"kind": "probe", "seed": 0}), &REG).unwrap();
        let b = RunSpec::resolve(&json!({"kind": "probe", "seed": 1}), &REG).unwrap();
        assert_ne!(a.id(&REG), b.id(&REG));
        assert_eq!(a.setting_id(&REG), b.setting_id(&REG));
    }

    #[test]
    fn errors_name_the_field() {
        let err = |v: Value| RunSpec::resolve(&v, &REG).unwrap_err().to_string();
        assert!(
            err(json!({"kind": "probe", "optim": {"lr": "fast"}}))
                .starts_with("field `optim.lr`: invalid type: string")
        );
        assert!(err(json!({"kind": "probe", "optim": {"lrr": 1}})).contains("unknown field `lrr`"));
        assert_eq!(
            err(json!({"kind": "trian"})),
            "field `kind`: unknown run kind `trian` (known: probe)"
        );
        assert_eq!(
            err(json!({"kind": "probe", "data": {"dataset": "k700"}})),
            "field `data.dataset`: unknown dataset `k700` (known: k400)"
        );
        assert!(
            err(json!({"kind": "probe", "params": {"step": 1}}))
                .starts_with("field `params.step`: run kind `probe` has no such parameter")
        );
        assert_eq!(
            err(json!({"kind": "probe", "params": {"mode": "c"}})),
            "field `params.mode`: `c` is not one of a, b"
        );
        assert_eq!(
            err(json!({"kind": "probe", "params": {"steps": -1}})),
            "field `params.steps`: expected a non-negative integer, found an integer"
        );
        assert!(
            err(json!({"kind": "probe", "needs": {"model": "0123456789abcdef"}}))
                .starts_with("field `needs.model`")
        );
        assert!(
            err(json!({"kind": "probe", "needs": {"features": "xyz"}})).contains("not a run id")
        );
        assert_eq!(
            err(json!({"kind": "probe", "model": {"precision": "fp8"}})),
            "field `model.precision`: unknown precision `fp8` (known: f32, bf16, f16)"
        );
    }

    #[test]
    fn params_are_filled_with_defaults() {
        let s = RunSpec::resolve(&json!({"kind": "probe", "params": {"scale": 2}}), &REG).unwrap();
        assert_eq!(s.params["steps"], json!(10));
        assert_eq!(s.params["scale"], json!(2.0));
        assert_eq!(s.params["mode"], json!("a"));
    }
}
