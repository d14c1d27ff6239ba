//! `adfdr config check` as a use case: probe every identity, factory, drill
//! target, location and key the way backups and drills use them, and name
//! the missing role when access is refused.

use schemars::JsonSchema;
use serde::Serialize;

use super::Engine;
use crate::factory::arm::ARM_SCOPE;
use crate::snapshot::DataKey;

/// A factory's scheduled job and its next runs, for a person to check that
/// the line means what they meant.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct JobSchedule {
    pub factory: String,
    /// backup, verify, prune or drill.
    pub job: String,
    /// The cron line as written.
    pub schedule: String,
    /// The factory's time zone (UTC unless `timezone` says otherwise).
    pub timezone: String,
    /// The next five runs, RFC 3339 in that time zone.
    pub next: Vec<String>,
}

/// Each factory's scheduled jobs with their next five runs after `now`.
pub fn schedules(
    config: &crate::config::Config,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<JobSchedule> {
    let mut out = Vec::new();
    for f in config.factories.iter().map(|f| f.get_ref()) {
        for (job, s) in f.schedules() {
            out.push(JobSchedule {
                factory: f.name.clone(),
                job: job.to_string(),
                schedule: s.expr.clone(),
                timezone: s.tz.name().to_string(),
                next: s
                    .next_runs(now, 5)
                    .into_iter()
                    .map(|t| {
                        t.with_timezone(&s.tz)
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    })
                    .collect(),
            });
        }
    }
    out
}

/// One thing probed, and how it answered.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Probe {
    pub what: String,
    pub ok: bool,
    /// What works, or what to grant or fix.
    pub detail: String,
}

struct Probes(Vec<Probe>);

impl Probes {
    fn push(&mut self, what: String, result: Result<String, String>) {
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        self.0.push(Probe { what, ok, detail });
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

/// Every probe, in order: identity, factories (and drill targets),
/// locations, keys.
pub async fn probe(engine: &Engine) -> Vec<Probe> {
    let mut probes = Probes(Vec::new());
    identity(engine, &mut probes).await;
    for f in &engine.config.factories {
        factory(engine, f.get_ref(), &mut probes).await;
    }
    for l in &engine.replicas.locations {
        location(l, &mut probes).await;
    }
    keys(engine, &mut probes).await;
    probes.0
}

async fn identity(engine: &Engine, probes: &mut Probes) {
    let who = engine.identity.description.clone();
    let token = engine
        .identity
        .credential
        .get_token(&[ARM_SCOPE], None)
        .await;
    probes.push(
        format!("identity: {who}"),
        token
            .map(|_| "token issued for ARM".into())
            .map_err(|e| format!("no token: {}", first_line(&e.to_string()))),
    );
}

async fn factory(engine: &Engine, fc: &crate::config::FactoryConfig, probes: &mut Probes) {
    let who = engine.identity.description.clone();
    let result = match engine.arm.get(&fc.arm_path()).await {
        Ok(_) => Ok("readable".into()),
        Err(e) if matches!(e.status(), Some(401 | 403)) => Err(format!(
            "{who} may not read it (HTTP {} {}); grant 'Reader' on the factory",
            e.status().unwrap_or(0),
            e.code().unwrap_or("")
        )),
        Err(e) if e.status() == Some(404) => {
            Err("not found: check subscription, resource_group and factory".into())
        }
        Err(e) => Err(first_line(&e.to_string()).to_string()),
    };
    probes.push(
        format!(
            "factory {} ({}/{}/{})",
            fc.name, fc.subscription, fc.resource_group, fc.factory
        ),
        result,
    );
    surroundings(engine, fc, probes).await;
    // The drill's scratch factory: drills create and write it.
    if let Some(t) = &fc.drill_target {
        let path = crate::config::FactoryConfig::adhoc(
            &t.factory,
            &t.subscription,
            &t.resource_group,
            &t.factory,
        )
        .arm_path();
        let result = match engine.arm.get(&path).await {
            Ok(_) => Ok("readable; drills write here (needs 'Data Factory Contributor')".into()),
            Err(e) if e.status() == Some(404) => Ok(format!(
                "does not exist yet: the first drill creates it (needs 'Data Factory Contributor' on resource group {}); factory names are global across Azure and the API offers no availability check, so if another tenant holds '{}' the drill fails naming it: choose another drill_target name then",
                t.resource_group, t.factory
            )),
            Err(e) if matches!(e.status(), Some(401 | 403)) => Err(format!(
                "{who} may not use it (HTTP {} {}); grant 'Data Factory Contributor' on it or on resource group {}",
                e.status().unwrap_or(0),
                e.code().unwrap_or(""),
                t.resource_group
            )),
            Err(e) => Err(first_line(&e.to_string()).to_string()),
        };
        probes.push(
            format!(
                "drill target of {} ({}/{}/{})",
                fc.name, t.subscription, t.resource_group, t.factory
            ),
            result,
        );
    }
}

async fn location(l: &crate::store::Location, probes: &mut Probes) {
    let what = format!(
        "location {} ({}){}",
        l.name,
        l.store.describe(),
        if l.read_only { " read-only" } else { "" }
    );
    let result = async {
        l.store.list("v1/").await.map_err(|e| e.to_string())?;
        if l.read_only {
            return Ok("listable".to_string());
        }
        let key = format!("v1/.probe-{}", uuid::Uuid::new_v4().simple());
        l.store
            .put_new(&key, azure_core::Bytes::from_static(b"adfdr config check"))
            .await
            .map_err(|e| e.to_string())?;
        l.store.delete(&key).await.map_err(|e| e.to_string())?;
        Ok("list, write and delete work".to_string())
    }
    .await;
    probes.push(what, result);
}

async fn keys(engine: &Engine, probes: &mut Probes) {
    let dek = DataKey::generate();
    for (key, path) in &engine.keys.files {
        // The key was loaded (and its file mode checked) with the engine.
        let wrapped = key.wrap(&dek, "probe", "probe");
        let result = key
            .unwrap(&wrapped, "probe", "probe")
            .map(|_| format!("fingerprint {}", key.fingerprint()))
            .ok_or_else(|| "a wrap made with this key did not unwrap".to_string());
        probes.push(format!("key {} (file {})", key.id, path.display()), result);
    }
    for vault in &engine.keys.vaults {
        let result = match vault.wrap(&dek).await {
            Ok(w) => vault
                .unwrap(&w)
                .await
                .map(|_| "wrap and unwrap work".into())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        probes.push(
            format!("key {} (Key Vault {})", vault.id, vault.url),
            result,
        );
    }
}

/// The factory's surroundings a backup reads (diagnostic settings, locks,
/// alerts in its resource group): Reader suffices; a refusal names it.
async fn surroundings(engine: &Engine, fc: &crate::config::FactoryConfig, probes: &mut Probes) {
    use crate::model::ResourceKind;
    let base = fc.arm_path();
    let mut refused = Vec::new();
    let mut read = Vec::new();
    for kind in ResourceKind::SURROUNDINGS {
        let Some((provider, version)) = kind.extension() else {
            continue;
        };
        let at = if kind.in_resource_group() {
            crate::ops::export::resource_group_of(&base).to_string()
        } else {
            base.clone()
        };
        match engine
            .arm
            .get(&format!("{at}/{provider}?api-version={version}"))
            .await
        {
            Ok(_) => read.push(kind.label()),
            Err(e) if matches!(e.status(), Some(401 | 403)) => refused.push(format!(
                "{}/read",
                provider.trim_start_matches("providers/")
            )),
            // The factory probe already says what else is wrong.
            Err(_) => return,
        }
    }
    probes.push(
        format!("surroundings of factory {}", fc.name),
        if refused.is_empty() {
            Ok(format!("readable: {}", read.join(", ")))
        } else {
            Err(format!(
                "{} may not read {}: grant it 'Reader' on the factory and its resource group, or backups fail",
                engine.identity.description,
                refused.join(", ")
            ))
        },
    );
}

/// The storage API version posture reads with.
const STORAGE_API: &str = "2025-08-01";

/// How well each location's storage account protects the backups (Reader
/// on the account suffices): every finding of [`crate::posture`], a
/// warning per location whose account is not configured or not readable,
/// and the checks across locations.
pub async fn posture(engine: &Engine) -> Vec<crate::plan::posture::Finding> {
    use crate::config::LocationUrl;
    use crate::plan::posture::{Finding, across, assess};
    let keep_days = engine
        .config
        .factories
        .iter()
        .filter_map(|f| f.get_ref().keep.span_days())
        .max();
    let mut out = Vec::new();
    let mut placed = Vec::new();
    let warn = |location: &str, detail: String| Finding {
        location: location.to_string(),
        check: "readable".into(),
        ok: false,
        detail,
    };
    for l in &engine.config.locations {
        let l = l.get_ref();
        let Some(id) = &l.account else {
            if !matches!(l.url, LocationUrl::Dir(_)) {
                out.push(warn(
                    &l.name,
                    format!(
                        "protection not checked: set account = \"/subscriptions/…/providers/Microsoft.Storage/storageAccounts/NAME\" on location {}",
                        l.name
                    ),
                ));
            }
            continue;
        };
        let read = |path: String| async move {
            engine
                .arm
                .get(&format!("{path}?api-version={STORAGE_API}"))
                .await
        };
        let (account, blob) =
            tokio::join!(read(id.clone()), read(format!("{id}/blobServices/default")));
        match (account, blob) {
            (Ok(account), Ok(blob)) => {
                let region = account
                    .get("location")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                out.extend(assess(&l.name, &account, &blob, keep_days));
                placed.push((l.name.clone(), id.clone(), region));
            }
            (Err(e), _) | (_, Err(e)) => out.push(warn(
                &l.name,
                match e.status() {
                    Some(401 | 403) => format!(
                        "{} may not read storage account {id} (HTTP {}): grant it Reader on the account to have its protection checked",
                        engine.identity.description,
                        e.status().unwrap_or(0)
                    ),
                    _ => format!("could not read storage account {id}: {}", first_line(&e.to_string())),
                },
            )),
        }
    }
    out.extend(across(&placed));
    out
}

/// One location as `adfdr init` left it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct InitLocation {
    pub location: String,
    /// Where it is (no SAS).
    pub url: String,
    /// Made by this run (false: it was there, or is read-only).
    pub created: bool,
    /// A probe object was written, read back and deleted (read-only: listed).
    pub ready: bool,
    /// What was done, or what failed and what to do.
    pub detail: String,
}

/// One event queue as `adfdr init` left it, and its feed to make.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct InitQueue {
    pub queue: String,
    /// The queue and its poison queue exist and this identity may use them.
    pub ready: bool,
    pub detail: String,
    pub factories: Vec<String>,
    /// Per Azure subscription of those factories: the Azure CLI lines that
    /// make its system topic and the event subscription into this queue.
    pub event_grid: Vec<String>,
}

/// What `adfdr init` did, and what is still missing.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Initialized {
    pub locations: Vec<InitLocation>,
    /// The event queues of factories with capture = "events", made, and the
    /// Event Grid subscription that must fill each (init does not create
    /// it: that is a change to the subscription, for its owner).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<InitQueue>,
    /// What init cannot do itself: a location it could not make or use, and
    /// each backup account's missing protection (as `config check` says).
    pub missing: Vec<String>,
}

/// `adfdr init`: make each configured location (a private directory, a
/// container) if it is not there, prove each writable one can write, read
/// back and delete a probe object, and say what is still missing. Running it
/// again changes nothing that is already right.
pub async fn init(engine: &Engine) -> Initialized {
    let mut locations = Vec::new();
    let mut missing = Vec::new();
    for l in &engine.replicas.locations {
        let url = l.store.describe();
        let done = init_one(l).await;
        let (created, ready, detail) = match done {
            Ok((created, detail)) => (created, true, detail),
            Err((created, detail)) => {
                missing.push(format!("location {}: {detail}", l.name));
                (created, false, detail)
            }
        };
        locations.push(InitLocation {
            location: l.name.clone(),
            url,
            created,
            ready,
            detail,
        });
    }
    for f in posture(engine).await.into_iter().filter(|f| !f.ok) {
        missing.push(format!("location {} {}: {}", f.location, f.check, f.detail));
    }
    let queues = init_queues(engine).await;
    for q in &queues {
        if !q.ready {
            missing.push(format!("event queue {}: {}", q.queue, q.detail));
        }
        missing.push(format!(
            "the Event Grid subscription into {} (ARM's events for {}): {}",
            q.queue,
            q.factories.join(", "),
            q.event_grid.join(" && ")
        ));
    }
    Initialized {
        locations,
        queues,
        missing,
    }
}

/// Makes each event queue and its poison queue; writes out the Event Grid
/// subscription each needs (ARM's events of the factories' subscriptions,
/// filtered to Microsoft.DataFactory, into the queue).
async fn init_queues(engine: &Engine) -> Vec<InitQueue> {
    use crate::queue::{EventQueue, QueueClient};
    let mut out = Vec::new();
    for (url, factories) in engine.config.event_queues() {
        let queue = url.to_string();
        let client = |u: url::Url| {
            QueueClient::new(
                u,
                engine.identity.credential.clone(),
                engine.options.clone(),
            )
        };
        let poison = crate::queue::poison_url(&url);
        let made = async {
            client(url.clone())
                .create()
                .await
                .map_err(|e| e.to_string())?;
            let p = poison.clone()?;
            client(p).create().await.map_err(|e| e.to_string())
        }
        .await;
        let (ready, detail) = match made {
            Ok(()) => (true, "the queue and its poison queue exist".to_string()),
            Err(e) => (
                false,
                format!(
                    "{e}; grant {} 'Storage Queue Data Contributor' on the queue's storage account",
                    engine.identity.description
                ),
            ),
        };
        out.push(InitQueue {
            event_grid: event_grid_lines(&url, &factories),
            queue,
            ready,
            detail,
            factories: factories.iter().map(|f| f.name.clone()).collect(),
        });
    }
    out
}

/// The Azure CLI lines that feed `queue` with ARM's events of each
/// factory's subscription (a system topic of type
/// Microsoft.Resources.Subscriptions, one event subscription into the
/// queue, only Microsoft.DataFactory's write, delete and action successes).
fn event_grid_lines(queue: &url::Url, factories: &[&crate::config::FactoryConfig]) -> Vec<String> {
    let host = queue.host_str().unwrap_or_default();
    let path = queue.path().trim_matches('/');
    let name = path.rsplit('/').next().unwrap_or(path);
    let account = host.split('.').next().unwrap_or(host);
    let subs: std::collections::BTreeSet<&str> =
        factories.iter().map(|f| f.subscription.as_str()).collect();
    let mut out = Vec::new();
    for sub in subs {
        let topic = format!("adfdr-arm-{}", &sub[..sub.len().min(8)]);
        out.push(format!(
            "az eventgrid system-topic create --subscription {sub} -g RG --name {topic} --location global --topic-type Microsoft.Resources.Subscriptions --source /subscriptions/{sub}"
        ));
        out.push(format!(
            "az eventgrid system-topic event-subscription create --subscription {sub} -g RG --system-topic-name {topic} --name adfdr-capture --endpoint-type storagequeue --endpoint $(az storage account show -n {account} --query id -o tsv)/queueservices/default/queues/{name} --included-event-types Microsoft.Resources.ResourceWriteSuccess Microsoft.Resources.ResourceDeleteSuccess Microsoft.Resources.ResourceActionSuccess --advanced-filter data.resourceProvider StringIn Microsoft.DataFactory --event-delivery-schema eventgridschema"
        ));
    }
    out
}

/// Makes and probes one location: (made it, what was done), or (made it,
/// what failed).
async fn init_one(l: &crate::store::Location) -> Result<(bool, String), (bool, String)> {
    if l.read_only {
        return l
            .store
            .list("v1/")
            .await
            .map(|_| {
                (
                    false,
                    "read-only: listable; not made or written".to_string(),
                )
            })
            .map_err(|e| (false, e.to_string()));
    }
    let created = l.store.create().await.map_err(|e| (false, e.to_string()))?;
    let fail = |e: String| (created, e);
    let key = format!("v1/.probe-{}", uuid::Uuid::new_v4().simple());
    let body = format!("adfdr init {key}").into_bytes();
    l.store
        .put_new(&key, body.clone().into())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let read = l.store.get(&key, 1 << 10).await;
    let deleted = l.store.delete(&key).await;
    match read {
        Ok(Some(back)) if back == body => {}
        Ok(_) => {
            return Err(fail(format!(
                "the probe {key} did not read back as written"
            )));
        }
        Err(e) => return Err(fail(e.to_string())),
    }
    deleted.map_err(|e| fail(e.to_string()))?;
    let made = if created { "made; " } else { "was there; " };
    Ok((created, format!("{made}write, read and delete work")))
}
