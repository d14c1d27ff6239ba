//! `adfdr discover --dry-run`: what the `[[discover]]` blocks cover now, by
//! which policy, what they leave out and why, and which stored factories
//! are gone at the source (core's `ops::discover`). It changes nothing:
//! the agent applies discovery on its interval.

use crate::Ctx;
use crate::exit;
use adfdr_core::ops::OpError;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print what would be covered (discover never changes anything).
    #[arg(long = "dry-run", short = 'n', visible_alias = "plan")]
    plan: bool,
}

pub async fn run(ctx: &Ctx, _args: Args) -> Result<i32, OpError> {
    let engine = ctx.engine()?;
    if engine.config.discover.is_empty() {
        return Err(OpError::usage(
            "no [[discover]] block in the config: add one (systemd/adfdr.toml.example)",
        ));
    }
    let d = adfdr_core::ops::discover::discover(&engine).await?;
    if ctx.json {
        crate::json::emit("discover", &d);
        return Ok(exit::OK);
    }
    println!(
        "found {} factories in {} subscription(s) by {}",
        d.found,
        d.subscriptions.len(),
        d.source
    );
    let rows: Vec<Vec<String>> = d
        .coverage
        .covered
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.policy.clone(),
                short(&c.id),
                c.why.clone(),
            ]
        })
        .collect();
    println!("\ncovered ({}):", rows.len());
    crate::output::table(&["NAME", "POLICY", "FACTORY", "WHY"], &rows);
    for c in d.coverage.covered.iter().filter_map(|c| c.renamed.as_ref()) {
        crate::warning!("{c}");
    }
    if !d.coverage.excluded.is_empty() {
        println!("\nleft out ({}):", d.coverage.excluded.len());
        for e in &d.coverage.excluded {
            println!("  {}: {}", short(&e.id), e.why);
        }
    }
    if !d.coverage.source_gone.is_empty() {
        println!(
            "\nsource gone (snapshots kept, never pruned; restore with `adfdr restore latest --factory NAME --to …`):"
        );
        for g in &d.coverage.source_gone {
            println!("  {g}");
        }
    }
    Ok(exit::OK)
}

/// `SUB/RG/FACTORY` of an ARM id.
fn short(id: &str) -> String {
    let p: Vec<&str> = id.trim_matches('/').split('/').collect();
    match p.as_slice() {
        [_, sub, _, rg, _, _, _, name] => format!("{sub}/{rg}/{name}"),
        _ => id.to_string(),
    }
}
