//! `adfdr demo`: everything offline, nothing but the binary. Today it starts the
//! emulator with the sample factory and reads it back through adfdr's ARM client
//! (Entra token, paging, the service's rules); backup, drill and report steps
//! join as the snapshot, restore and drill engines land.

use std::path::PathBuf;
use std::sync::Arc;

use adf_emulator::kinds::Kind;
use adf_emulator::{Config, Emulator, SeedSpec};
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

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to put the demo's files (default: a new folder under the temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let dir = args
        .dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("adfdr-demo-{}", std::process::id())));
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
    println!(
        "adf-emulator is answering at {} (ARM, Entra, Key Vault)",
        emulator.urls().arm
    );
    println!(
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
    println!(
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
    println!("\n{:<28} {:>5}  names", "kind", "count");
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
        println!(
            "{:<28} {:>5}  {}",
            kind.label(),
            items.len(),
            names.join(", ")
        );
    }
    println!("{total} resources, read with nextLink paging (5 per page)");

    // The service's rules hold: a referenced linked service cannot be deleted.
    match arm
        .delete(&format!("{factory_path}/linkedservices/LS_KeyVault"))
        .await
    {
        Err(e) => println!(
            "\nas in Azure, deleting LS_KeyVault is refused: {}",
            e.code().unwrap_or("?")
        ),
        Ok(_) => anyhow::bail!("the emulator let a referenced linked service be deleted"),
    }
    println!(
        "\nnext: `adfdr backup`, `adfdr drill` and the drill report join this demo as they land."
    );
    println!("demo files: {}", dir.display());
    Ok(())
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

fn client(emulator: &Emulator, ca: &std::path::Path) -> anyhow::Result<ArmClient> {
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
    Ok(ArmClient::new(
        Url::parse(&emulator.urls().arm)?,
        credential,
        options,
    ))
}
