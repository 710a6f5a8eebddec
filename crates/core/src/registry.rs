//! Explicit, static registries. Each plugin family is a plain list of descriptors; that list is
//! what `cargo xtask plugins` prints, what sweep scripts resolve names against, and what tests
//! iterate. There is no link-time registration: adding a plugin is one line in a list.

use serde::Serialize;
use serde_json::Value;

use crate::plugin::{ClassifierInit, DatasetPlugin, EncoderPlugin, Need, TemporalHeadPlugin};
use crate::run_kind::RunKind;

/// The families of names a run spec may refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    RunKind,
    Encoder,
    TemporalHead,
    ClassifierInit,
    Dataset,
}

impl Family {
    pub const ALL: [Family; 5] = [
        Family::RunKind,
        Family::Encoder,
        Family::TemporalHead,
        Family::ClassifierInit,
        Family::Dataset,
    ];

    /// The human name of the family, as used in error messages and `plugins` output.
    pub fn label(self) -> &'static str {
        match self {
            Family::RunKind => "run kind",
            Family::Encoder => "video encoder",
            Family::TemporalHead => "temporal head",
            Family::ClassifierInit => "classifier init",
            Family::Dataset => "dataset",
        }
    }

    /// The spec field that names a plugin of this family.
    pub fn spec_field(self) -> &'static str {
        match self {
            Family::RunKind => "kind",
            Family::Encoder => "model.encoder",
            Family::TemporalHead => "model.temporal_head",
            Family::ClassifierInit => "classifier.init",
            Family::Dataset => "data.dataset",
        }
    }
}

/// The type of a plugin parameter; values in specs are checked against it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "choices")]
pub enum ParamType {
    Bool,
    /// A non-negative integer.
    Int,
    /// A number; integers are accepted and stored as floats, so `1` and `1.0` are one value.
    Float,
    Str,
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
}

impl ParamType {
    fn describe(&self) -> String {
        match self {
            ParamType::Bool => "a boolean".into(),
            ParamType::Int => "a non-negative integer".into(),
            ParamType::Float => "a number".into(),
            ParamType::Str => "a string".into(),
            ParamType::Choice(c) => format!("one of {}", c.join(", ")),
        }
    }

    /// Checks `value` and returns its canonical form (ints as ints, floats as floats).
    pub fn coerce(&self, value: &Value) -> Result<Value, String> {
        let bad = || {
            Err(format!(
                "expected {}, found {}",
                self.describe(),
                json_type_name(value)
            ))
        };
        match (self, value) {
            (ParamType::Bool, Value::Bool(_)) => Ok(value.clone()),
            (ParamType::Int, Value::Number(n)) => match n.as_u64() {
                Some(u) => Ok(Value::from(u)),
                None => match n.as_f64() {
                    Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => {
                        Ok(Value::from(f as u64))
                    }
                    _ => bad(),
                },
            },
            (ParamType::Float, Value::Number(n)) => match n.as_f64() {
                Some(f) if f.is_finite() => Ok(Value::from(f)),
                _ => bad(),
            },
            (ParamType::Str, Value::String(_)) => Ok(value.clone()),
            (ParamType::Choice(choices), Value::String(s)) => {
                if choices.contains(&s.as_str()) {
                    Ok(value.clone())
                } else {
                    Err(format!(
                        "`{s}` is not {}",
                        ParamType::Choice(choices).describe()
                    ))
                }
            }
            _ => bad(),
        }
    }
}

pub(crate) fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a map",
    }
}

/// One parameter of a plugin or run kind, with its default.
#[derive(Clone, Debug, Serialize)]
pub struct ParamDef {
    pub name: &'static str,
    #[serde(flatten)]
    pub ty: ParamType,
    /// The default as JSON text (a `const`-friendly form); parsed when needed.
    pub default: &'static str,
    pub doc: &'static str,
}

impl ParamDef {
    pub fn default_value(&self) -> Value {
        serde_json::from_str(self.default)
            .unwrap_or_else(|e| panic!("default of parameter `{}` is not JSON: {e}", self.name))
    }
}

/// What the registry knows about a plugin without building it.
#[derive(Clone, Debug, Serialize)]
pub struct PluginInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub params: &'static [ParamDef],
}

/// All plugin families, as plain lists of plain types implementing their family's trait. The
/// command line assembles one from the static lists of the plugin crates; tests assemble their
/// own. Specs resolve names against it, `plugins` prints it, run kinds build from it.
#[derive(Clone, Copy)]
pub struct Registry {
    pub run_kinds: &'static [&'static dyn RunKind],
    pub encoders: &'static [&'static dyn EncoderPlugin],
    pub heads: &'static [&'static dyn TemporalHeadPlugin],
    pub inits: &'static [&'static dyn ClassifierInit],
    pub datasets: &'static [&'static dyn DatasetPlugin],
}

/// The first member of `list` whose info has `name`.
fn by_name<T: ?Sized>(
    list: &'static [&'static T],
    name: &str,
    info: impl Fn(&T) -> &'static PluginInfo,
) -> Option<&'static T> {
    list.iter().copied().find(|p| info(p).name == name)
}

impl Registry {
    pub fn run_kind(&self, name: &str) -> Option<&'static dyn RunKind> {
        by_name(self.run_kinds, name, |k| k.info())
    }

    pub fn encoder(&self, name: &str) -> Option<&'static dyn EncoderPlugin> {
        by_name(self.encoders, name, |e| e.info())
    }

    pub fn head(&self, name: &str) -> Option<&'static dyn TemporalHeadPlugin> {
        by_name(self.heads, name, |h| h.info())
    }

    pub fn init(&self, name: &str) -> Option<&'static dyn ClassifierInit> {
        by_name(self.inits, name, |i| i.info())
    }

    pub fn dataset(&self, name: &str) -> Option<&'static dyn DatasetPlugin> {
        by_name(self.datasets, name, |d| d.info())
    }

    /// The descriptors of one family.
    pub fn family(&self, family: Family) -> Vec<&'static PluginInfo> {
        match family {
            Family::RunKind => self.run_kinds.iter().map(|k| k.info()).collect(),
            Family::Encoder => self.encoders.iter().map(|e| e.info()).collect(),
            Family::TemporalHead => self.heads.iter().map(|h| h.info()).collect(),
            Family::ClassifierInit => self.inits.iter().map(|i| i.info()).collect(),
            Family::Dataset => self.datasets.iter().map(|d| d.info()).collect(),
        }
    }

    pub fn find(&self, family: Family, name: &str) -> Option<&'static PluginInfo> {
        self.family(family).into_iter().find(|p| p.name == name)
    }

    /// What a plugin declares it needs (run kinds name runs instead: [`RunKind::needs`]).
    pub fn needs(&self, family: Family, name: &str) -> &'static [Need] {
        let found = match family {
            Family::RunKind => None,
            Family::Encoder => self.encoder(name).map(|p| p.needs()),
            Family::TemporalHead => self.head(name).map(|p| p.needs()),
            Family::ClassifierInit => self.init(name).map(|p| p.needs()),
            Family::Dataset => self.dataset(name).map(|p| p.needs()),
        };
        found.unwrap_or(&[])
    }

    /// The registry as JSON: `{family: [{name, summary, params, needs}]}`; run kinds carry the
    /// families they `uses` and the runs they may consume (`consumes`) instead of `needs`.
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for f in Family::ALL {
            let list: Vec<Value> = self
                .family(f)
                .into_iter()
                .map(|p| {
                    let mut v = serde_json::to_value(p).expect("plugin info serialises");
                    match (f == Family::RunKind)
                        .then(|| self.run_kind(p.name))
                        .flatten()
                    {
                        Some(kind) => {
                            v["uses"] =
                                serde_json::to_value(kind.uses()).expect("families serialise");
                            v["consumes"] =
                                serde_json::to_value(kind.needs()).expect("names serialise");
                        }
                        None => {
                            v["needs"] = self
                                .needs(f, p.name)
                                .iter()
                                .map(
                                    |n| serde_json::json!({"name": n.name(), "what": n.describe()}),
                                )
                                .collect();
                        }
                    }
                    v
                })
                .collect();
            out.insert(
                serde_json::to_value(f)
                    .expect("family serialises")
                    .as_str()
                    .expect("family is a string")
                    .to_string(),
                Value::Array(list),
            );
        }
        Value::Object(out)
    }
}
