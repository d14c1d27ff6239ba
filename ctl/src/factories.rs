//! How every command names factories (issue 26, "one grammar"): by
//! position (`adfdr backup sales`) or with `-f/--factory` (`adfdr backup
//! -f sales`), the same on every command, and configured or discovered
//! (`[[discover]]`) names alike.

use adfdr_core::ops::{Engine, OpError};

/// Commands that take several factories (backup, prune, drill).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Many {
    /// Factories: configured or discovered names (or -f/--factory NAME).
    #[arg(value_name = "FACTORY")]
    factory_names: Vec<String>,
    /// A factory, as every command takes it (repeatable); the same as
    /// naming it.
    #[arg(short = 'f', long = "factory", value_name = "FACTORY")]
    factory_flags: Vec<String>,
}

impl Many {
    /// The names given either way, each once, in the order given.
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in self.factory_names.iter().chain(&self.factory_flags) {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(n)) {
                out.push(n.clone());
            }
        }
        out
    }
}

/// Commands that take at most one factory as a filter (snapshots, verify,
/// drills, log).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct One {
    /// The factory: a configured or discovered name (or -f/--factory NAME).
    #[arg(value_name = "FACTORY")]
    factory_name: Option<String>,
    /// The factory, as every command takes it; the same as naming it.
    #[arg(short = 'f', long = "factory", value_name = "FACTORY")]
    factory_flag: Option<String>,
}

impl One {
    /// The factory given either way; both ways naming different factories
    /// is a usage error.
    pub fn name(&self) -> Result<Option<&str>, OpError> {
        match (&self.factory_name, &self.factory_flag) {
            (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b) => Err(OpError::usage(format!(
                "two factories given ('{a}' and --factory '{b}'); this command takes one"
            ))),
            (Some(a), _) => Ok(Some(a)),
            (None, b) => Ok(b.as_deref()),
        }
    }
}

/// The factories a command applies to: the ones named (configured, or
/// found by the `[[discover]]` blocks), every one with `all`, or the only
/// one. Unknown names are usage errors that list the known ones.
pub async fn select(
    engine: &mut Engine,
    names: &[String],
    all: bool,
) -> Result<Vec<String>, OpError> {
    if let Some(warning) = adfdr_core::ops::discover::include_named(engine, names).await? {
        crate::warning!("{warning}");
    }
    crate::output::select_factories(&engine.config, names, all)
}

/// A read command's factory filter, discovered names included (in
/// incident mode any name the store holds: there is no config).
pub async fn filter(engine: &mut Engine, name: Option<&str>) -> Result<Option<String>, OpError> {
    let Some(name) = name else {
        return Ok(None);
    };
    adfdr_core::ops::discover::include_named(engine, &[name.to_string()]).await?;
    crate::incident::factory(engine, Some(name))
}

/// The factory a snapshot reference is read in: `--factory` when given
/// (configured, discovered, or in incident mode the store's); for `latest`
/// without it, the configured factory when there is only one (else the
/// store's only one, which core finds).
pub async fn for_reference(
    engine: &mut Engine,
    name: Option<&str>,
    reference: &str,
) -> Result<Option<String>, OpError> {
    let named = filter(engine, name).await?;
    if named.is_some() || reference != "latest" || engine.incident {
        return Ok(named);
    }
    Ok(match engine.config.factory_names().as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct ManyCli {
        #[command(flatten)]
        f: Many,
    }

    #[derive(Parser)]
    struct OneCli {
        #[command(flatten)]
        f: One,
    }

    #[test]
    fn names_by_position_and_flag_merge_once() {
        let c = ManyCli::parse_from(["x", "sales", "-f", "hr", "--factory", "SALES"]);
        assert_eq!(c.f.names(), vec!["sales".to_string(), "hr".to_string()]);
        assert!(ManyCli::parse_from(["x"]).f.names().is_empty());
    }

    #[test]
    fn one_factory_either_way_but_not_two() {
        assert_eq!(
            OneCli::parse_from(["x", "-f", "sales"]).f.name().unwrap(),
            Some("sales")
        );
        assert_eq!(
            OneCli::parse_from(["x", "sales", "--factory", "sales"])
                .f
                .name()
                .unwrap(),
            Some("sales")
        );
        let e = OneCli::parse_from(["x", "sales", "-f", "hr"])
            .f
            .name()
            .unwrap_err();
        assert!(e.to_string().contains("two factories"), "{e}");
    }
}
