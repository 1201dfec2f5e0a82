//! Configuration sections owned by plugins. A modality owns `data`, a model owns `net.<name>`: each
//! declares its keys with their defaults (YAML), the command-line options that set them, and a
//! typed struct it reads them into. Core assembles the defaults from the registries and checks
//! every section when a configuration is built, so a bad key is named before anything runs.

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use crate::error::{Error, Result};

/// How a command-line option's text becomes a configuration value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    /// Read as YAML: numbers, `auto`, lists such as `[4,4,8]`.
    Value,
    /// Kept as typed, a string (`--size 0x5` would otherwise be the hexadecimal number 5).
    Word,
    /// A switch without a value: present means `true`.
    Switch,
}

/// A command-line option that sets one key of a section: `--sample-rate 16000` sets
/// `data.sample_rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// The key inside its section (`sample_rate`).
    pub key: &'static str,
    /// The long flag, without dashes (`sample-rate`).
    pub flag: &'static str,
    pub kind: OptionKind,
    /// Shown in `--help`.
    pub help: &'static str,
}

impl OptionSpec {
    pub const fn value(key: &'static str, flag: &'static str, help: &'static str) -> Self {
        Self {
            key,
            flag,
            kind: OptionKind::Value,
            help,
        }
    }

    pub const fn word(key: &'static str, flag: &'static str, help: &'static str) -> Self {
        Self {
            key,
            flag,
            kind: OptionKind::Word,
            help,
        }
    }

    pub const fn switch(key: &'static str, flag: &'static str, help: &'static str) -> Self {
        Self {
            key,
            flag,
            kind: OptionKind::Switch,
            help,
        }
    }
}

/// A plugin's typed configuration section.
pub trait Section: DeserializeOwned + 'static {
    /// Dotted path of the section in the configuration tree: `data` for a modality's loader
    /// options, `net.<model>` for a model's own settings.
    const PATH: &'static str;
    /// Every key of the section with its default, as a YAML mapping (comments welcome: they are
    /// the keys' documentation).
    const DEFAULTS: &'static str;
    /// Command-line options that set keys of this section.
    const OPTIONS: &'static [OptionSpec] = &[];

    /// Checks beyond the keys' types; errors name the full key (see [`Section::bad`]).
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// An error naming `PATH.key`.
    fn bad(key: &str, message: impl Into<String>) -> Error {
        Error::config(format!("{}.{key}", Self::PATH), message)
    }
}

/// What the registries hold of a [`Section`]: enough to assemble defaults, generate options and
/// check values without knowing the type.
#[derive(Clone, Copy)]
pub struct SectionSpec {
    pub path: &'static str,
    pub defaults: &'static str,
    pub options: &'static [OptionSpec],
    /// Parse and validate a value of the section.
    pub check: fn(&Value) -> Result<()>,
}

impl SectionSpec {
    pub const fn of<T: Section>() -> Self {
        Self {
            path: T::PATH,
            defaults: T::DEFAULTS,
            options: T::OPTIONS,
            check: check::<T>,
        }
    }

    /// The defaults as a YAML mapping.
    pub fn default_value(&self) -> Result<Value> {
        let v: Value = serde_yaml::from_str(self.defaults).map_err(|e| {
            Error::Invalid(format!(
                "the defaults of `{}` are not valid YAML: {e}",
                self.path
            ))
        })?;
        match v {
            Value::Null => Ok(Value::Mapping(Default::default())),
            Value::Mapping(_) => Ok(v),
            _ => Err(Error::Invalid(format!(
                "the defaults of `{}` are not a mapping of keys",
                self.path
            ))),
        }
    }

    /// The full dotted key an option sets (`data.sample_rate`).
    pub fn key_of(&self, option: &OptionSpec) -> String {
        format!("{}.{}", self.path, option.key)
    }
}

fn check<T: Section>(value: &Value) -> Result<()> {
    parse::<T>(value).map(|_| ())
}

/// Read a section's value into its type, then validate it. Unknown keys and bad values are errors
/// naming the full key (`net.ngp.levels`).
pub fn parse<T: Section>(value: &Value) -> Result<T> {
    let t: T = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let inner = e.path().to_string();
        let key = if inner == "." || inner.is_empty() {
            T::PATH.to_string()
        } else {
            format!("{}.{inner}", T::PATH)
        };
        Error::config(key, e.into_inner().to_string())
    })?;
    t.validate()?;
    Ok(t)
}

/// A section's defaults in its type (for a context that carries no value for it).
pub fn defaults<T: Section>() -> Result<T> {
    parse::<T>(&SectionSpec::of::<T>().default_value()?)
}

/// A section from its defaults with some keys set, each value read as YAML (`("seconds", "2")`):
/// how code and tests make one without a whole configuration. Unknown keys are errors.
pub fn with_values<T: Section>(pairs: &[(&str, &str)]) -> Result<T> {
    let mut v = SectionSpec::of::<T>().default_value()?;
    if let Some(m) = v.as_mapping_mut() {
        for (key, text) in pairs {
            let full = format!("{}.{key}", T::PATH);
            if !m.contains_key(*key) {
                return Err(Error::config(full, "unknown key"));
            }
            let value: Value = serde_yaml::from_str(text)
                .map_err(|e| Error::config(&full, format!("`{text}` is not a valid value: {e}")))?;
            m.insert(Value::String(key.to_string()), value);
        }
    }
    parse::<T>(&v)
}

/// `auto` or a number (`None` is `auto`).
pub mod auto_usize {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Word(String),
        Num(usize),
    }

    pub fn serialize<S: Serializer>(v: &Option<usize>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => Repr::Num(*n),
            None => Repr::Word("auto".into()),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Num(n) => Ok(Some(n)),
            Repr::Word(w) if w == "auto" => Ok(None),
            Repr::Word(w) => Err(serde::de::Error::custom(format!(
                "`{w}` is neither auto nor a number"
            ))),
        }
    }
}

/// `auto` (an empty list) or a list of numbers (a single number is a list of one).
pub mod auto_list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Word(String),
        Num(usize),
        List(Vec<usize>),
    }

    pub fn serialize<S: Serializer>(v: &[usize], s: S) -> Result<S::Ok, S::Error> {
        if v.is_empty() {
            Repr::Word("auto".into())
        } else {
            Repr::List(v.to_vec())
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<usize>, D::Error> {
        match Repr::deserialize(d)? {
            Repr::List(v) => Ok(v),
            Repr::Num(n) => Ok(vec![n]),
            Repr::Word(w) if w == "auto" => Ok(Vec::new()),
            Repr::Word(w) => Err(serde::de::Error::custom(format!(
                "`{w}` is neither auto nor a list of numbers"
            ))),
        }
    }
}
