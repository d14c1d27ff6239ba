//! `adfdr restore SNAPSHOT|latest --factory NAME --to SUB/RG/FACTORY [...]`:
//! plan first, then (with --yes, or a yes on a terminal) apply and verify.
//! Incident mode: `--store URL... --key FILE|KEYVAULT-KEY-URL` needs no
//! config file, no catalog and no agent.

use std::io::IsTerminal;
use std::path::PathBuf;

use adfdr_core::config::{AuthConfig, AuthMethod, HttpsUrl, LocationConfig, LocationUrl};
use adfdr_core::factory::arm::ArmClient;
use adfdr_core::identity;
use adfdr_core::keys::{KeyRing, VaultKey, load_key_file};
use adfdr_core::ops::restore::{self as op, TargetFactory};
use adfdr_core::ops::{OpError, exit, location};
use adfdr_core::plan::restore::{Action, Plan, PlanOptions, TriggerMode, action_word};
use adfdr_core::plan::{Overrides, Selector};
use adfdr_core::store::Replicas;
use serde_json::json;

use crate::Ctx;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Triggers {
    /// Restored triggers stay stopped.
    Stopped,
    /// Triggers started at backup time are started again.
    AsBackedUp,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Auth {
    AzureCli,
    ManagedIdentity,
    WorkloadIdentity,
    ClientSecret,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id, or `latest` (with --factory).
    snapshot: String,
    /// The factory's name in the store (its [[factory]] name).
    #[arg(long)]
    factory: Option<String>,
    /// Target factory: SUBSCRIPTION/RESOURCE_GROUP/FACTORY (or its ARM id).
    #[arg(long, value_name = "SUB/RG/FACTORY")]
    to: String,
    /// Region of a factory that must be created [default: the snapshot's].
    #[arg(long)]
    region: Option<String>,
    /// Restore only these (KIND:GLOB, repeatable); what they need comes along.
    #[arg(long, value_name = "KIND:GLOB")]
    include: Vec<String>,
    /// Leave these out (KIND:GLOB, repeatable).
    #[arg(long, value_name = "KIND:GLOB")]
    exclude: Vec<String>,
    /// Rules that set, remove or fill JSON Pointer paths (docs/OPERATIONS.md).
    #[arg(long, value_name = "FILE")]
    overrides: Option<PathBuf>,
    /// Trigger state after the restore.
    #[arg(long, value_enum, default_value = "stopped")]
    triggers: Triggers,
    /// Delete target resources that are not in the snapshot.
    #[arg(long)]
    delete_extraneous: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    plan: bool,
    /// Apply without asking.
    #[arg(long)]
    yes: bool,
    /// Override paths that match nothing, and secrets nobody fills, are errors.
    #[arg(long)]
    strict: bool,
    /// Also restore the git configuration (not wanted on a DR copy).
    #[arg(long)]
    with_git: bool,
    /// Writes in flight at once (throttling is waited out together).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,

    /// Incident mode: read snapshots from this location (repeatable; https
    /// container URL or file://), without a config file.
    #[arg(long, value_name = "URL", help_heading = "Incident mode")]
    store: Vec<String>,
    /// Incident mode: a key file or a Key Vault key URL (repeatable).
    #[arg(long, value_name = "FILE|URL", help_heading = "Incident mode")]
    key: Vec<String>,
    /// Incident mode: how to sign in.
    #[arg(
        long,
        value_enum,
        default_value = "azure-cli",
        help_heading = "Incident mode"
    )]
    auth: Auth,
    #[arg(long, help_heading = "Incident mode")]
    client_id: Option<String>,
    #[arg(long, help_heading = "Incident mode")]
    tenant_id: Option<String>,
    #[arg(long, value_name = "FILE", help_heading = "Incident mode")]
    client_secret_file: Option<PathBuf>,
    #[arg(long, value_name = "URL", help_heading = "Incident mode", default_value = adfdr_core::config::DEFAULT_ARM)]
    arm_endpoint: String,
    #[arg(long, value_name = "URL", help_heading = "Incident mode")]
    authority_host: Option<String>,
    /// Extra CA certificates (PEM) to trust.
    #[arg(long, value_name = "FILE", help_heading = "Incident mode")]
    ca_file: Option<PathBuf>,
}

/// What a restore runs with: from the config, or from the flags alone.
struct Kit {
    /// The newest snapshot of the factory the catalog saw committed (not in
    /// incident mode): how a rollback in the store is noticed.
    known_newest: Option<String>,
    replicas: Replicas,
    keys: KeyRing,
    arm: ArmClient,
    identity: String,
    audit_dir: PathBuf,
    factory: Option<String>,
}

fn https(flag: &str, text: &str) -> Result<HttpsUrl, OpError> {
    let url = url::Url::parse(text)
        .map_err(|e| OpError::Usage(format!("{flag} {text:?} is not a URL: {e}")))?;
    if url.scheme() != "https" {
        return Err(OpError::Usage(format!(
            "{flag} {text:?} must use https: Entra tokens are only sent over TLS"
        )));
    }
    Ok(HttpsUrl(url))
}

fn incident_kit(args: &Args) -> Result<Kit, OpError> {
    if args.key.is_empty() {
        return Err(OpError::Usage(
            "incident mode (--store) needs --key FILE or --key https://VAULT/keys/NAME".into(),
        ));
    }
    let auth = AuthConfig {
        method: match args.auth {
            Auth::AzureCli => AuthMethod::AzureCli,
            Auth::ManagedIdentity => AuthMethod::ManagedIdentity,
            Auth::WorkloadIdentity => AuthMethod::WorkloadIdentity,
            Auth::ClientSecret => AuthMethod::ClientSecret,
        },
        client_id: args.client_id.clone(),
        tenant_id: args.tenant_id.clone(),
        client_secret_file: args.client_secret_file.clone(),
        token_file: None,
        arm_endpoint: https("--arm-endpoint", &args.arm_endpoint)?,
        authority_host: args
            .authority_host
            .as_deref()
            .map(|a| https("--authority-host", a))
            .transpose()?,
        ca_file: args.ca_file.clone(),
    };
    let options = identity::client_options(&auth)?;
    let id = identity::build(&auth, &options)?;
    let arm = ArmClient::new(
        auth.arm_endpoint.0.clone(),
        id.credential.clone(),
        options.clone(),
    );
    let mut locations = Vec::new();
    for (i, url) in args.store.iter().enumerate() {
        let url = LocationUrl::parse(url).map_err(|e| OpError::Usage(format!("--store {e}")))?;
        // Incident mode only reads.
        let config = LocationConfig {
            name: format!("store{}", i + 1),
            url,
            read_only: true,
            sas_file: None,
            immutability_days: None,
        };
        locations.push(location(&config, &id, &options)?);
    }
    let mut keys = KeyRing::default();
    for (i, k) in args.key.iter().enumerate() {
        let key_id = format!("key{}", i + 1);
        if k.starts_with("https://") {
            let url = https("--key", k)?;
            keys.vaults
                .push(VaultKey::new(&key_id, &url.0, &id, &options)?);
        } else {
            let path = PathBuf::from(k);
            keys.files.push((load_key_file(&key_id, &path)?, path));
        }
    }
    let audit_dir = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("adfdr");
    Ok(Kit {
        known_newest: None,
        replicas: Replicas::new(locations),
        keys,
        arm,
        identity: id.description,
        audit_dir,
        factory: args.factory.clone(),
    })
}

fn config_kit(ctx: &Ctx, args: &Args) -> Result<Kit, OpError> {
    if !args.key.is_empty() {
        return Err(OpError::Usage(
            "--key is for incident mode (with --store); with a config, keys come from [[key]]"
                .into(),
        ));
    }
    let engine = ctx.engine()?;
    let factory = crate::output::factory_filter(&engine.config, args.factory.as_deref())?;
    let known_newest =
        factory
            .as_deref()
            .and_then(|f| match crate::agent::Agent::find(&engine.config) {
                Some(agent) => agent
                    .call("GET", "/status", None)
                    .ok()
                    .and_then(|(_, s)| s["newest_snapshot"][f].as_str().map(str::to_string)),
                None => engine
                    .catalog()
                    .ok()
                    .and_then(|c| c.latest_snapshot(f).ok().flatten())
                    .map(|r| r.id),
            });
    Ok(Kit {
        known_newest,
        audit_dir: engine.config.agent.state_dir.clone(),
        identity: engine.identity.description.clone(),
        replicas: engine.replicas,
        keys: engine.keys,
        arm: engine.arm,
        factory,
    })
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<i32, OpError> {
    let target = TargetFactory::parse(&args.to).map_err(OpError::Usage)?;
    let selectors = |list: &[String]| {
        list.iter()
            .map(|s| {
                Selector::parse(s).map_err(|e| OpError::Usage(format!("--include/--exclude {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let options = PlanOptions {
        include: selectors(&args.include)?,
        exclude: selectors(&args.exclude)?,
        triggers: match args.triggers {
            Triggers::Stopped => TriggerMode::Stopped,
            Triggers::AsBackedUp => TriggerMode::AsBackedUp,
        },
        delete_extraneous: args.delete_extraneous,
        strict: args.strict,
        with_git: args.with_git,
        region: args.region.clone(),
        placeholder_secrets: false,
    };
    let overrides = args
        .overrides
        .as_deref()
        .map(Overrides::load)
        .transpose()
        .map_err(|e| OpError::Usage(e.to_string()))?;
    let kit = if args.store.is_empty() {
        config_kit(ctx, &args)?
    } else {
        incident_kit(&args)?
    };
    if args.snapshot == "latest" && kit.factory.is_none() {
        return Err(OpError::Usage(
            "`latest` needs --factory NAME (the factory's name in the store)".into(),
        ));
    }
    let started = time::OffsetDateTime::now_utc();
    let clock = std::time::Instant::now();
    // Hold the snapshot while it is in use, so a prune elsewhere keeps it
    // (best effort: incident mode reads only and cannot write a hold).
    let (factory, id) = adfdr_core::ops::read::resolve(
        &kit.replicas,
        &kit.keys,
        &args.snapshot,
        kit.factory.as_deref(),
    )
    .await?;
    if args.snapshot == "latest"
        && let Some(known) = &kit.known_newest
    {
        let (listed, failed) = adfdr_core::ops::read::list(&kit.replicas, Some(&factory)).await;
        if failed.is_empty() && adfdr_core::ops::read::vanished_newest(known, &listed) {
            eprintln!(
                "adfdr: warning: snapshot {known} of {factory} was committed and no location holds it (deleted behind adfdr's back?); `latest` is {id}, the newest the store still holds. Run `adfdr verify`."
            );
        }
    }
    let held = adfdr_core::ops::prune::hold(
        &kit.replicas,
        &factory,
        &id,
        &format!(
            "restore to {} by {}@{}",
            target.describe(),
            whoami(),
            hostname()
        ),
        started,
    )
    .await;
    let result = restore(
        ctx,
        &args,
        &kit,
        &target,
        &options,
        overrides.as_ref(),
        &factory,
        &id,
        started,
        clock,
    )
    .await;
    adfdr_core::ops::prune::release(&kit.replicas, &held).await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn restore(
    ctx: &Ctx,
    args: &Args,
    kit: &Kit,
    target: &TargetFactory,
    options: &PlanOptions,
    overrides: Option<&Overrides>,
    factory: &str,
    id: &str,
    started: time::OffsetDateTime,
    clock: std::time::Instant,
) -> Result<i32, OpError> {
    let spinner = crate::output::spinner(ctx.json, "reading the snapshot and the target".into());
    let prepared = op::prepare(
        &kit.replicas,
        &kit.keys,
        &kit.arm,
        &kit.identity,
        id,
        Some(factory),
        target,
        overrides,
        options,
        args.concurrency,
    )
    .await;
    if let Some(s) = &spinner {
        s.finish_and_clear();
    }
    let mut prepared = prepared?;
    for (location, why) in &prepared.skipped_locations {
        eprintln!(
            "adfdr: warning: skipped location {location}: {why}; read the snapshot from {}",
            prepared.payload_location
        );
    }
    let plan = &prepared.plan;
    let head = json!({
        "snapshot": {"factory": prepared.opened.factory, "id": prepared.opened.id, "location": prepared.payload_location},
        "target": target,
        "target_exists": prepared.target_existed,
    });
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let apply = !args.plan && (args.yes || (interactive && !ctx.json && confirm(&prepared, plan)));
    if !apply {
        if ctx.json {
            crate::output::json(&json!({"plan": plan, "applied": false, "source": head}));
        } else {
            print_plan(&prepared, plan);
            if !args.plan {
                println!(
                    "not applied: pass --yes to apply{}",
                    if interactive {
                        ""
                    } else {
                        " (stdin is not a terminal)"
                    }
                );
            }
        }
        return Ok(exit::OK);
    }
    if !ctx.json && !interactive {
        print_plan(&prepared, plan);
    }
    let applying = std::time::Instant::now();
    let bar = (!ctx.json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(plan.writes() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}")
                .expect("template"),
        );
        bar
    });
    let quiet_lines = ctx.json;
    let progress = |line: &str| match &bar {
        Some(b) => {
            b.inc(1);
            b.set_message(line.to_string());
        }
        None if !quiet_lines => eprintln!("{line}"),
        None => {}
    };
    let applied = op::apply(
        &kit.arm,
        &kit.identity,
        target,
        plan,
        args.concurrency,
        &progress,
    )
    .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    prepared.timings.apply_ms = applying.elapsed().as_millis();
    let verifying = std::time::Instant::now();
    let expected_started = op::started_after(plan, &prepared.target_triggers);
    // A read-back that fails (faults, throttling) must not hide what was
    // written: the summary and the audit record come on every path.
    let (mismatches, verify_error) = match op::verify(
        &kit.arm,
        target,
        &kit.identity,
        plan,
        &expected_started,
        args.concurrency,
    )
    .await
    {
        Ok((m, _)) => (m, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    prepared.timings.verify_ms = verifying.elapsed().as_millis();
    let code = if !applied.failures.is_empty() || verify_error.is_some() {
        exit::FAILED
    } else if !mismatches.is_empty() {
        exit::CHECK_FAILED
    } else if !plan.skipped.is_empty() {
        exit::DEGRADED
    } else {
        exit::OK
    };
    let outcome = match code {
        exit::OK => "restored",
        exit::DEGRADED => "restored-with-skips",
        exit::CHECK_FAILED => "verify-failed",
        _ => "failed",
    };
    let record = json!({
        "time": adfdr_core::snapshot::rfc3339(started),
        "action": "restore",
        "who": {"identity": kit.identity, "user": whoami(), "host": hostname()},
        "what": {"factory": prepared.opened.factory, "snapshot": prepared.opened.id},
        "from": {"location": prepared.payload_location, "skipped": prepared.skipped_locations.iter().map(|(l, _)| l).collect::<Vec<_>>()},
        "to": target.describe(),
        "options": {"include": args.include, "exclude": args.exclude, "triggers": options.triggers, "delete_extraneous": args.delete_extraneous, "overrides": args.overrides},
        "result": {"outcome": outcome, "written": applied.written, "deleted": applied.deleted, "stopped": applied.stopped, "started": applied.started, "skipped": plan.skipped.len(), "failures": applied.failures.len(), "mismatches": mismatches.len(), "read_back_error": verify_error},
        "seconds": clock.elapsed().as_secs_f64(),
    });
    let audit = op::audit(&kit.audit_dir, &record);
    if let Err(e) = &audit {
        eprintln!(
            "adfdr: warning: could not write the audit trail in {}: {e}",
            kit.audit_dir.display()
        );
    }
    tracing::info!(target: "audit", record = %record, "restore");
    if ctx.json {
        crate::output::json(&json!({
            "source": head, "plan": plan, "applied": applied, "mismatches": mismatches,
            "read_back_error": verify_error,
            "timings": prepared.timings, "outcome": outcome,
            "audit": audit.as_ref().ok(),
        }));
    } else {
        for f in &applied.failures {
            println!("FAILED {}: {}", f.what, f.error);
        }
        for m in &mismatches {
            println!("MISMATCH {}: {}", m.resource, m.detail);
        }
        if let Some(e) = &verify_error {
            println!("READ-BACK FAILED (what was written is not verified): {e}");
        }
        let t = &prepared.timings;
        println!(
            "{outcome}: {}@{} into {}: {} written, {} deleted, {} triggers stopped, {} started, {} skipped; {} checked after",
            prepared.opened.factory,
            prepared.opened.id,
            target.describe(),
            applied.written,
            applied.deleted,
            applied.stopped,
            applied.started,
            plan.skipped.len(),
            plan.expected.len() + 1,
        );
        println!(
            "phases: fetch {} ms · decrypt {} ms · plan {} ms · apply {} ms · verify {} ms",
            t.fetch_ms, t.decrypt_ms, t.plan_ms, t.apply_ms, t.verify_ms
        );
        if let Ok(path) = &audit {
            println!("audit: {}", path.display());
        }
    }
    Ok(code)
}

fn confirm(prepared: &op::Prepared, plan: &Plan) -> bool {
    use std::io::Write;
    print_plan(prepared, plan);
    if plan.is_noop() {
        return true;
    }
    eprint!("apply this plan to {}? [y/N] ", prepared.target.describe());
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
}

fn print_plan(prepared: &op::Prepared, plan: &Plan) {
    println!(
        "restore {}@{} (read from {}) into {}",
        prepared.opened.factory,
        prepared.opened.id,
        prepared.payload_location,
        prepared.target.describe()
    );
    println!(
        "factory: {}{}",
        action_word(plan.factory.action),
        match plan.factory.action {
            Action::Create => format!(" in {}", plan.factory.region),
            _ => String::new(),
        }
    );
    for note in &plan.factory.notes {
        println!("  note: {note}");
    }
    if !plan.stop_triggers.is_empty() {
        println!("stop triggers first: {}", plan.stop_triggers.join(", "));
    }
    let creates = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Create)
        .count();
    println!(
        "create {creates} · update {} · unchanged {} · skip {} · delete {} · keep extraneous {}",
        plan.steps.len() - creates,
        plan.unchanged.len(),
        plan.skipped.len(),
        plan.delete.len(),
        plan.extraneous_kept.len()
    );
    const SHOWN: usize = 40;
    for s in plan.steps.iter().take(SHOWN) {
        println!("  {:<6} {}", action_word(s.action), s.label);
        for c in &s.changes {
            println!("         {c}");
        }
    }
    if plan.steps.len() > SHOWN {
        println!(
            "  ... and {} more (--json lists every one)",
            plan.steps.len() - SHOWN
        );
    }
    for d in plan.delete.iter().take(SHOWN) {
        println!("  delete {}", d.label);
    }
    for s in &plan.skipped {
        println!("  SKIP   {}: {}", s.label, s.reason);
    }
    for k in plan.extraneous_kept.iter().take(SHOWN) {
        println!("  keep   {}: {}", k.label, k.reason);
    }
    if !plan.start_triggers.is_empty() {
        println!("start triggers after: {}", plan.start_triggers.join(", "));
    }
    for u in &plan.unstartable {
        println!("  not started: {}: {}", u.label, u.reason);
    }
    let missing = plan.secrets.iter().filter(|s| !s.filled).count();
    if !plan.secrets.is_empty() {
        println!(
            "secrets: {} need values, {} filled by overrides, {missing} missing",
            plan.secrets.len(),
            plan.secrets.len() - missing
        );
    }
    for w in &plan.warnings {
        println!("  warning: {w}");
    }
    println!(
        "{} writes; longest dependency chain: {} resources",
        plan.writes(),
        plan.depth
    );
}

fn whoami() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .map(|m| format!("uid {}", m.uid()))
                .unwrap_or_else(|_| "unknown".into())
        })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
