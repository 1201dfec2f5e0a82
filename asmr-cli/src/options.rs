//! `fit` options generated from the registries: `train.*` options from core, the modality's own
//! (`data.*`) and every model's (`net.<model>.*`). A plugin declares its options with its
//! configuration section; nothing here names one.

use asmr_core::config::{OptionKind, OptionSpec, TRAIN_OPTIONS};
use asmr_core::models::models;
use asmr_core::registry::{find_modality, modalities};
use asmr_core::Modality;
use clap::{Arg, ArgAction, ArgMatches};

/// One generated option: the full key it sets and its spec.
#[derive(Debug, Clone)]
pub struct Generated {
    pub key: String,
    pub spec: OptionSpec,
    pub heading: String,
}

/// The options `fit MODALITY` takes beyond the fixed ones.
pub fn fit_options(modality: Option<&Modality>) -> Vec<Generated> {
    let mut out: Vec<Generated> = TRAIN_OPTIONS
        .iter()
        .map(|spec| Generated {
            key: format!("train.{}", spec.key),
            spec: *spec,
            heading: "Training options".into(),
        })
        .collect();
    if let Some(m) = modality {
        out.extend(m.config.options.iter().map(|spec| Generated {
            key: m.config.key_of(spec),
            spec: *spec,
            heading: format!("Options of {} inputs", m.name),
        }));
    }
    for entry in models() {
        if let Some(section) = &entry.config {
            out.extend(section.options.iter().map(|spec| Generated {
                key: section.key_of(spec),
                spec: *spec,
                heading: "Model options".into(),
            }));
        }
    }
    out
}

/// The clap arguments of generated options.
pub fn args(options: &[Generated]) -> Vec<Arg> {
    options
        .iter()
        .map(|g| {
            let arg = Arg::new(g.key.clone())
                .long(g.spec.flag)
                .help(format!("{} [--set {}]", g.spec.help, g.key))
                .help_heading(g.heading.clone());
            match g.spec.kind {
                OptionKind::Switch => arg.action(ArgAction::SetTrue),
                OptionKind::Value | OptionKind::Word => arg
                    .action(ArgAction::Set)
                    .value_name(g.spec.key.to_uppercase()),
            }
        })
        .collect()
}

/// The generated options given on the command line, in the form config assembly takes.
pub fn given(options: &[Generated], matches: &ArgMatches) -> Vec<(String, OptionKind, String)> {
    options
        .iter()
        .filter_map(|g| match g.spec.kind {
            OptionKind::Switch => matches
                .get_flag(&g.key)
                .then(|| (g.key.clone(), g.spec.kind, String::new())),
            _ => matches
                .get_one::<String>(&g.key)
                .map(|v| (g.key.clone(), g.spec.kind, v.clone())),
        })
        .collect()
}

/// The modality a `fit` command line names: the first word after `fit` that is not an option or
/// an option's value. `switches` are the flags that take no value.
pub fn modality_in(args: &[String], switches: &[&str]) -> Option<&'static Modality> {
    let fit = args.iter().position(|a| a == "fit")?;
    let mut rest = args[fit + 1..].iter();
    while let Some(a) = rest.next() {
        if a == "--" {
            return rest.next().and_then(|m| find_modality(m).ok());
        }
        if let Some(flag) = a.strip_prefix("--") {
            if !flag.contains('=') && !switches.contains(&flag) {
                rest.next();
            }
            continue;
        }
        if a.starts_with('-') {
            continue;
        }
        return find_modality(a).ok();
    }
    None
}

/// The modalities whose inputs take `--flag`, for a message about a flag given to another one.
pub fn modalities_with_flag(flag: &str) -> Vec<&'static str> {
    modalities()
        .into_iter()
        .filter(|m| m.config.options.iter().any(|o| o.flag == flag))
        .map(|m| m.name)
        .collect()
}
