//! `adfdr demo`: everything offline, nothing but the binary. It starts the
//! emulator in-process with the built-in sample factory (every resource kind),
//! reads it through adfdr's ARM client (Entra token, paging, the service's
//! rules), backs it up into two local "regions" under a generated key,
//! changes a pipeline and backs up again (diff shows the change), verifies
//! every copy, then runs a recovery drill into a scratch factory and prints
//! its report (also written as Markdown and HTML) and where everything is.

use std::path::PathBuf;
use std::sync::Arc;

use adf_emulator::kinds::Kind;
use adf_emulator::{Config, Emulator, SeedSpec};
use adfdr_core::factory::FactoryApi;
use adfdr_core::factory::arm::ArmClient;
use anyhow::Context;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::Secret;
use azure_core::http::{ClientOptions, Url};
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use serde_json::Value;

const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000000";
const RESOURCE_GROUP: &str = "rg-demo";
const FACTORY: &str = "adf-sample";

/// With --json the narrative goes to stderr and stdout carries only the
/// `adfdr.demo.v1` summary.
static NARRATIVE_TO_STDERR: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

macro_rules! say {
    ($($t:tt)*) => {
        if NARRATIVE_TO_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!($($t)*)
        } else {
            println!($($t)*)
        }
    };
}

macro_rules! say_raw {
    ($($t:tt)*) => {
        if NARRATIVE_TO_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
            eprint!($($t)*)
        } else {
            print!($($t)*)
        }
    };
}

/// `adfdr demo --json` (schema `adfdr.demo.v1`).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct DemoOutput {
    /// Where the demo left its files (config, store, reports).
    pub dir: PathBuf,
    pub config: PathBuf,
    /// The two snapshots it made (before and after a portal hot-fix).
    pub snapshots: Vec<String>,
    pub drill: adfdr_core::catalog::DrillRecord,
    pub reports: Vec<PathBuf>,
    pub passed: bool,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to put the demo's files (default: a new ./adfdr-demo, or ./adfdr-demo-N).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Where the demo writes (made now), as the user asked or a fresh one, said.
fn demo_dir(asked: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match asked {
        Some(dir) => dir,
        None => fresh_dir()?,
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("making {}", dir.display()))?;
    say!(
        "the demo's files go into {} (remove it when done)",
        dir.display()
    );
    Ok(dir)
}

/// `./adfdr-demo`, or `./adfdr-demo-2`, … : a directory under the current
/// one that nothing is in yet.
fn fresh_dir() -> anyhow::Result<PathBuf> {
    let here = std::env::current_dir().context("reading the current directory")?;
    (1..1000)
        .map(|n| {
            here.join(match n {
                1 => "adfdr-demo".to_string(),
                n => format!("adfdr-demo-{n}"),
            })
        })
        .find(|d| std::fs::symlink_metadata(d).is_err())
        .context("every adfdr-demo-N under the current directory is taken: pass --dir")
}

pub async fn run(args: Args, json: bool) -> anyhow::Result<()> {
    NARRATIVE_TO_STDERR.store(json, std::sync::atomic::Ordering::Relaxed);
    let dir = demo_dir(args.dir)?;
    let tls = adf_emulator::sample::write_test_tls(&dir.join("tls"))
        .with_context(|| format!("writing TLS files under {}", dir.display()))?;
    let factory_dir = dir.join("sample-factory");
    adf_emulator::sample::write_sample_factory(&factory_dir)
        .with_context(|| format!("writing the sample factory under {}", dir.display()))?;

    let mut config = Config::loopback(&tls.cert, &tls.key);
    config.seeds.push(SeedSpec {
        subscription: SUBSCRIPTION.into(),
        resource_group: RESOURCE_GROUP.into(),
        factory: FACTORY.into(),
        dir: factory_dir.clone(),
    });
    config.settings.page_size = 5;
    let emulator = Emulator::start(config)
        .await
        .context("starting the emulator")?;
    say!(
        "adf-emulator is answering at {} (ARM, Entra, Key Vault)",
        emulator.urls().arm
    );
    say!(
        "seeded {SUBSCRIPTION}/{RESOURCE_GROUP}/{FACTORY} from {}",
        factory_dir.display()
    );

    let arm = client(&emulator, &tls.ca)?;
    let factory_path = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.DataFactory/factories/{FACTORY}"
    );
    let factory = arm
        .get(&factory_path)
        .await
        .context("reading the factory")?;
    say!(
        "\nfactory {} in {}: system identity {}, global parameters: {}",
        factory["name"].as_str().unwrap_or_default(),
        factory["location"].as_str().unwrap_or_default(),
        factory
            .pointer("/identity/principalId")
            .and_then(Value::as_str)
            .unwrap_or("none"),
        factory
            .pointer("/properties/globalParameters")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    );
    tour(arm.as_ref(), &factory_path).await?;

    // The service's rules hold: a referenced linked service cannot be deleted.
    match arm
        .delete(&format!("{factory_path}/linkedservices/LS_KeyVault"))
        .await
    {
        Err(e) => say!(
            "\nas in Azure, deleting LS_KeyVault is refused: {}",
            e.code().unwrap_or("?")
        ),
        Ok(_) => anyhow::bail!("the emulator let a referenced linked service be deleted"),
    }
    let mut out = backups(&dir, &emulator, &tls.ca, arm.as_ref(), &factory_path).await?;
    say!("\ndemo files: {}", dir.display());
    let passed = out.passed;
    if json {
        out.dir = dir.clone();
        crate::json::emit("demo", &out);
    }
    if !passed {
        anyhow::bail!("the demo's drill failed (see its report above)");
    }
    Ok(())
}

/// Each kind the factory holds, counted and named, as read with nextLink
/// paging.
async fn tour(arm: &dyn adfdr_core::factory::FactoryApi, factory_path: &str) -> anyhow::Result<()> {
    say!("\n{:<28} {:>5}  names", "kind", "count");
    let mut total = 0;
    for kind in Kind::ALL
        .into_iter()
        .filter(|k| !matches!(k, Kind::ManagedPrivateEndpoint | Kind::GlobalParameters))
    {
        let items = arm
            .list(&format!("{factory_path}/{}", kind.segment()))
            .await
            .with_context(|| format!("listing {}", kind.label()))?;
        let mut names: Vec<String> = items.iter().map(|i| describe(kind, i)).collect();
        if kind == Kind::ManagedVirtualNetwork {
            for vnet in &items {
                let vnet = vnet["name"].as_str().unwrap_or_default();
                for mpe in arm
                    .list(&format!(
                        "{factory_path}/managedVirtualNetworks/{vnet}/managedPrivateEndpoints"
                    ))
                    .await?
                {
                    names.push(format!(
                        "{vnet}/{} (endpoint, {})",
                        mpe["name"].as_str().unwrap_or_default(),
                        mpe.pointer("/properties/connectionState/status")
                            .and_then(Value::as_str)
                            .unwrap_or("?")
                    ));
                    total += 1;
                }
            }
        }
        total += items.len();
        say!(
            "{:<28} {:>5}  {}",
            kind.label(),
            items.len(),
            names.join(", ")
        );
    }
    say!(
        "{total} resources in the factory, read with nextLink paging (5 per page); a backup also keeps the factory itself, its global parameters and what surrounds it"
    );
    Ok(())
}

/// The demo's store (two directory "regions"), break-glass key, client
/// secret and config: the same contract as /etc/adfdr/adfdr.toml.
fn write_config(
    dir: &std::path::Path,
    emulator: &Emulator,
    ca: &std::path::Path,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let store = dir.join("store");
    for region in ["weu", "neu"] {
        std::fs::create_dir_all(store.join(region))?;
    }
    let key = dir.join("breakglass.key");
    if !key.exists() {
        adfdr_core::keys::generate_key_file(&key)?;
    }
    let secret = dir.join("client-secret");
    std::fs::write(&secret, "demo-secret")?;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
    let config_path = dir.join("adfdr.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"# The demo's config: the same contract as /etc/adfdr/adfdr.toml.
[agent]
state_dir = "{state}"

[auth]
method = "client-secret"
client_id = "adfdr-demo"
tenant_id = "{tenant}"
client_secret_file = "{secret}"
arm_endpoint = "{arm}"
authority_host = "{authority}"
ca_file = "{ca}"

[[location]]
name = "weu"
url = "file://{store}/weu"

[[location]]
name = "neu"
url = "file://{store}/neu"

[[key]]
id = "breakglass"
file = "{key}"

[[factory]]
name = "sample"
subscription = "{SUBSCRIPTION}"
resource_group = "{RESOURCE_GROUP}"
factory = "{FACTORY}"
rpo_target = "30m"
rto_target = "5m"
drill_target = {{ subscription = "{SUBSCRIPTION}", resource_group = "{RESOURCE_GROUP}-drills", factory = "{FACTORY}-drill" }}
smoke_pipeline = "PL_Smoke_Vault"
drill_cleanup = "keep"
"#,
            state = dir.join("state").display(),
            tenant = emulator.tenant_id(),
            secret = secret.display(),
            arm = emulator.urls().arm,
            authority = emulator.urls().authority,
            ca = ca.display(),
            store = store.display(),
            key = key.display(),
        ),
    )?;
    Ok((config_path, store))
}

/// Backups through the same engine the CLI uses: two directory locations, a
/// break-glass key generated on the spot, the emulator's Entra endpoint.
async fn backups(
    dir: &std::path::Path,
    emulator: &Emulator,
    ca: &std::path::Path,
    arm: &dyn FactoryApi,
    factory_path: &str,
) -> anyhow::Result<DemoOutput> {
    use adfdr_core::ops::{backup::Outcome, read, system_clock};

    let (config_path, store) = write_config(dir, emulator, ca)?;
    let config = adfdr_core::config::Config::load(&config_path)?;
    let engine = adfdr_core::ops::Engine::new(config)?;
    let fc = engine.config.factory("sample").expect("configured").clone();

    say!("\n== backup: sealed into {}/{{weu,neu}}", store.display());
    let first = match adfdr_core::ops::backup::backup(&engine, &fc, false, system_clock).await? {
        Outcome::Created { record, .. } => {
            let opened = read::open(&engine.replicas, &engine.keys, "sample", &record.id).await?;
            say!(
                "snapshot {}: {} resources ({}), {} bytes, in {}",
                record.id,
                record.resources,
                which_resources(&opened.public.counts),
                record.payload_size + record.manifest_size,
                record.locations.join(" and ")
            );
            record.id
        }
        Outcome::Unchanged { snapshot, .. } => snapshot,
    };
    match adfdr_core::ops::backup::backup(&engine, &fc, false, system_clock).await? {
        Outcome::Unchanged {
            snapshot,
            checkpoint,
            ..
        } => say!(
            "unchanged since {snapshot}: wrote only checkpoint {checkpoint} (fresh RPO, no new snapshot)"
        ),
        Outcome::Created { record, .. } => {
            say!("snapshot {} (the factory changed meanwhile)", record.id)
        }
    }

    say!("\n== a portal hot-fix: PL_Smoke gets a new description");
    let path = format!("{factory_path}/pipelines/PL_Smoke");
    let mut pipeline = arm.get(&path).await?;
    pipeline["properties"]["description"] =
        Value::String("hot-fixed in the portal at 2 a.m.".into());
    arm.put(&path, &pipeline).await?;
    let second = match adfdr_core::ops::backup::backup(&engine, &fc, false, system_clock).await? {
        Outcome::Created { record, .. } => record.id,
        Outcome::Unchanged { .. } => anyhow::bail!("a changed factory was reported unchanged"),
    };
    let a = read::open(&engine.replicas, &engine.keys, "sample", &first).await?;
    let b = read::open(&engine.replicas, &engine.keys, "sample", &second).await?;
    let (ra, _) = read::payload(&engine.replicas, &a).await?;
    let (rb, _) = read::payload(&engine.replicas, &b).await?;
    let d = adfdr_core::model::diff::diff(
        &ra,
        &rb,
        &a.manifest.trigger_states,
        &b.manifest.trigger_states,
    );
    say!("snapshot {second}; diff against {first}:");
    for line in crate::diff::changed_lines(&d, false) {
        say!("  {line}");
    }

    verify_all(&engine).await?;
    say!("\nrestorability report of {second} (what needs a human after a restore):");
    for finding in b.manifest.report.iter().take(6) {
        say!("  {}: {}", finding.resource, finding.detail);
    }

    drill(&engine, &fc, dir, &config_path, first, second).await
}

/// `verify --read-data` over the demo's store: every object digest and
/// resource hash.
async fn verify_all(engine: &adfdr_core::ops::Engine) -> anyhow::Result<()> {
    let report = adfdr_core::ops::verify::verify(
        &engine.replicas,
        &adfdr_core::ops::verify::Scope {
            factory: None,
            snapshot: None,
            location: None,
            keys: Some(&engine.keys),
            read_data: true,
            now: adfdr_core::ops::system_clock(),
        },
    )
    .await?;
    say!(
        "\n== verify --read-data: {} snapshots, every object digest and resource hash checked in {}: {}",
        report.snapshots,
        report
            .locations
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            .join(" and "),
        if report.healthy() {
            "healthy"
        } else {
            "DAMAGED"
        }
    );
    if !report.healthy() {
        anyhow::bail!("the demo's own backups did not verify");
    }
    Ok(())
}

/// The drill into the scratch factory, its report for auditors, and the
/// demo's summary.
async fn drill(
    engine: &adfdr_core::ops::Engine,
    fc: &adfdr_core::config::FactoryConfig,
    dir: &std::path::Path,
    config_path: &std::path::Path,
    first: String,
    second: String,
) -> anyhow::Result<DemoOutput> {
    use adfdr_core::ops::system_clock;
    say!(
        "\n== drill: restore {second} into {SUBSCRIPTION}/{RESOURCE_GROUP}-drills/{FACTORY}-drill, prove it, measure RTO and RPO"
    );
    let options = adfdr_core::ops::drill::Options::from_config(fc, 16);
    let report = adfdr_core::ops::drill::drill(
        engine,
        fc,
        &options,
        system_clock,
        adfdr_core::ops::restore::Progress::silent(),
    )
    .await?;
    say_raw!("{}", crate::drill::text(&report));
    let (md, html) = (dir.join("drill-report.md"), dir.join("drill-report.html"));
    std::fs::write(&md, crate::drill::markdown(&report))?;
    std::fs::write(&html, crate::drill::html(&report))?;
    say!(
        "report for auditors: {} and {}",
        md.display(),
        html.display()
    );
    say!(
        "\nexplore the store (no emulator needed): adfdr -c {} snapshots | show {second} | export {second} --out DIR | verify --read-data | drills",
        config_path.display()
    );
    Ok(DemoOutput {
        dir: PathBuf::new(),
        config: config_path.to_path_buf(),
        snapshots: vec![first.clone(), second.clone()],
        drill: report.record(),
        reports: vec![md, html],
        passed: report.passed(),
    })
}

fn describe(kind: Kind, item: &Value) -> String {
    let name = item["name"].as_str().unwrap_or_default();
    match kind {
        Kind::Trigger => format!(
            "{name} ({})",
            item.pointer("/properties/runtimeState")
                .and_then(Value::as_str)
                .unwrap_or("?")
        ),
        _ => name.to_string(),
    }
}

fn client(emulator: &Emulator, ca: &std::path::Path) -> anyhow::Result<Arc<dyn FactoryApi>> {
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = emulator.urls().authority.clone();
    let options = ClientOptions {
        transport: Some(adfdr_core::transport::transport(Some(ca))?),
        cloud: Some(Arc::new(CloudConfiguration::Custom(cloud))),
        ..Default::default()
    };
    let credential = ClientSecretCredential::new(
        emulator.tenant_id(),
        "adfdr-demo".into(),
        Secret::new("demo-secret"),
        Some(ClientSecretCredentialOptions {
            client_options: options.clone(),
        }),
    )?;
    Ok(Arc::new(ArmClient::new(
        Url::parse(&emulator.urls().arm)?,
        credential,
        options,
    )))
}

/// What a snapshot's resource count is made of, in the words the listing
/// above it used: `25 in the factory, the factory and its global
/// parameters, 7 around it: 1 lock, 2 alerts, ...` (the demo listed 25, then
/// the snapshot said 34, and nobody said which).
fn which_resources(counts: &std::collections::BTreeMap<String, usize>) -> String {
    use adfdr_core::model::ResourceKind;
    let of = |k: ResourceKind| counts.get(k.label()).copied().unwrap_or(0);
    let own = of(ResourceKind::Factory) + of(ResourceKind::GlobalParameters);
    let around: Vec<(ResourceKind, usize)> = ResourceKind::SURROUNDINGS
        .into_iter()
        .chain(ResourceKind::GRANTS)
        .map(|k| (k, of(k)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let around_total: usize = around.iter().map(|(_, n)| n).sum();
    let total: usize = counts.values().sum();
    let inside = total - own - around_total;
    format!(
        "{inside} in the factory, {own} for the factory itself and its global parameters, {around_total} around it: {}",
        around
            .iter()
            .map(|(k, n)| format!("{n} {}", k.label()))
            .collect::<Vec<_>>()
            .join(", ")
    )
}
