//! Explicit, static registries. Each plugin family is a plain list of descriptors; that list is
//! what `cargo xtask plugins` prints, what sweep scripts resolve names against, and what tests
//! iterate. There is no link-time registration: adding a plugin is one line in a list.

use serde::Serialize;
use serde_json::Value;

use crate::plugin::DatasetPlugin;
use crate::run_kind::RunKind;

/// The families of names a run spec may refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    RunKind,
    Encoder,
    ClassifierInit,
    Dataset,
}

impl Family {
    pub const ALL: [Family; 4] = [
        Family::RunKind,
        Family::Encoder,
        Family::ClassifierInit,
        Family::Dataset,
    ];

    /// The human name of the family, as used in error messages and `plugins` output.
    pub fn label(self) -> &'static str {
        match self {
            Family::RunKind => "run kind",
            Family::Encoder => "video encoder",
            Family::ClassifierInit => "classifier init",
            Family::Dataset => "dataset",
        }
    }

    /// The spec field that names a plugin of this family.
    pub fn spec_field(self) -> &'static str {
        match self {
            Family::RunKind => "kind",
            Family::Encoder => "model.encoder",
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

/// All plugin families, as plain lists. The command line assembles one from the static lists of
/// the plugin crates; tests assemble their own.
#[derive(Clone, Copy)]
pub struct Registry {
    pub run_kinds: &'static [&'static dyn RunKind],
    pub encoders: &'static [PluginInfo],
    pub inits: &'static [PluginInfo],
    pub datasets: &'static [&'static dyn DatasetPlugin],
}

impl Registry {
    pub fn run_kind(&self, name: &str) -> Option<&'static dyn RunKind> {
        self.run_kinds
            .iter()
            .copied()
            .find(|k| k.info().name == name)
    }

    /// The descriptors of one family.
    pub fn family(&self, family: Family) -> Vec<&PluginInfo> {
        match family {
            Family::RunKind => self.run_kinds.iter().map(|k| k.info()).collect(),
            Family::Encoder => self.encoders.iter().collect(),
            Family::ClassifierInit => self.inits.iter().collect(),
            Family::Dataset => self.datasets.iter().map(|d| d.info()).collect(),
        }
    }

    pub fn dataset(&self, name: &str) -> Option<&'static dyn DatasetPlugin> {
        self.datasets
            .iter()
            .copied()
            .find(|d| d.info().name == name)
    }

    pub fn find(&self, family: Family, name: &str) -> Option<&PluginInfo> {
        self.family(family).into_iter().find(|p| p.name == name)
    }

    /// The registry as JSON: `{family: [{name, summary, params}]}`.
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for f in Family::ALL {
            let list: Vec<Value> = self
                .family(f)
                .into_iter()
                .map(|p| {
                    let mut v = serde_json::to_value(p).expect("plugin info serialises");
                    if let Some(kind) = (f == Family::RunKind)
                        .then(|| self.run_kind(p.name))
                        .flatten()
                    {
                        v["uses"] = serde_json::to_value(kind.uses()).expect("families serialise");
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
