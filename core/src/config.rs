//! The config file (design.md section 5, commented example in
//! systemd/adfdr.toml.example). Unknown keys are errors, and every error names
//! the file, the line and the key, so a typo never silently changes behaviour.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
pub use toml::Spanned;
use url::Url;

use crate::model::names::FactoryId;
use crate::model::names::safe_name;
use crate::plan::schedule::{Cron, Schedule, Zone};

pub const DEFAULT_PATH: &str = "/etc/adfdr/adfdr.toml";
pub const DEFAULT_ARM: &str = "https://management.azure.com";

/// Azure blob leases last 15 to 60 seconds (or forever, which a dead
/// holder would keep): `agent.lease_seconds` must be in that range.
pub const LEASE_MIN_SECONDS: u32 = 15;
pub const LEASE_MAX_SECONDS: u32 = 60;
pub const LEASE_DEFAULT_SECONDS: u32 = 30;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: crate::localfile::LocalFileError,
    },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config {path} line {line}: {message}")]
    Invalid {
        path: String,
        line: usize,
        message: String,
    },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub agent: AgentConfig,
    pub auth: AuthConfig,
    #[serde(default)]
    pub backup: BackupConfig,
    #[serde(rename = "location", default)]
    pub locations: Vec<Spanned<LocationConfig>>,
    #[serde(rename = "key", default)]
    pub keys: Vec<Spanned<KeyConfig>>,
    #[serde(rename = "factory", default)]
    pub factories: Vec<Spanned<FactoryConfig>>,
    /// Webhooks told when something needs a person (the agent sends them).
    #[serde(rename = "notify", default)]
    pub notify: Vec<Spanned<NotifyConfig>>,
    /// Where to find factories nobody listed (`[[factory]]` blocks still win).
    #[serde(rename = "discover", default)]
    pub discover: Vec<Spanned<DiscoverConfig>>,
    /// What discovered factories get, by name (`[policy.NAME]`).
    #[serde(rename = "policy", default)]
    pub policies: BTreeMap<String, PolicyConfig>,
    /// The file it came from (not a TOML key).
    #[serde(skip)]
    pub path: PathBuf,
}

/// A `[[discover]]` block: the factories it covers, found by one Resource
/// Graph query (or ARM's list per subscription), and the policy they get.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverConfig {
    /// Subscription ids, or `"*"` for every subscription the identity sees.
    pub subscriptions: Vec<String>,
    /// Resource group globs (case-insensitive) [default: all].
    #[serde(default)]
    pub resource_groups: Vec<String>,
    /// Factory name globs [default: all].
    #[serde(default)]
    pub names: Vec<String>,
    /// Tags a factory must carry (value `"*"`: any value).
    #[serde(default)]
    pub include_tags: BTreeMap<String, String>,
    /// Tags that leave a factory out (value `"*"`: any value).
    #[serde(default)]
    pub exclude_tags: BTreeMap<String, String>,
    /// The `[policy.NAME]` its factories get unless their `adfdr-policy`
    /// tag names another.
    pub policy: String,
    /// Whether a factory's `adfdr-policy` tag may shorten what is kept of
    /// snapshots taken before it was set [default: false]. Tags are the
    /// factory owner's, not the backup operator's: by default a snapshot is
    /// deleted only when this block's policy, and the policy it was taken
    /// under, would delete it too.
    #[serde(default)]
    pub policy_tag_may_shorten: bool,
}

/// Declares, once, what a `[[factory]]` block and a `[policy.NAME]` table
/// share (`Settings`: schedules, zone, targets, keep rules, drills,
/// capture), and the flat shapes serde reads each in: every key at the top
/// of its table, unknown keys refused (a typo is named with the nearest
/// key), each block's own keys beside the shared ones.
macro_rules! settings {
    (
        shared $shared:tt
        $( $shape:ident => $config:ident $own:tt )*
    ) => {
        settings!(@settings $shared);
        $( settings!(@shape $shared $shape $config $own); )*
    };
    (@settings { $( $(#[$m:meta])* $f:ident : $t:ty, )* }) => {
        /// What a factory's block and a policy share: a policy is the same
        /// settings, given to the factories it covers.
        #[derive(Clone, Debug, Default, Deserialize)]
        pub struct Settings {
            $( $(#[$m])* pub $f: $t, )*
        }
    };
    (@shape { $( $(#[$m:meta])* $f:ident : $t:ty, )* } $shape:ident $config:ident
        { $( $(#[$om:meta])* $o:ident : $ot:ty, )* }) => {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $shape {
            $( $(#[$om])* $o: $ot, )*
            $( $(#[$m])* $f: $t, )*
        }
        impl From<$shape> for $config {
            #[allow(clippy::needless_update)]
            fn from(s: $shape) -> $config {
                $config {
                    $( $o: s.$o, )*
                    settings: Settings { $( $f: s.$f, )* },
                    ..Default::default()
                }
            }
        }
    };
}

settings! {
    shared {
    backup: Option<Cron>,
    drill: Option<Cron>,
    verify: Option<Cron>,
    prune: Option<Cron>,
    /// The IANA zone the schedules and keep rules are read in [default: UTC].
    timezone: Option<Zone>,
    rpo_target: Option<DurationSpec>,
    rto_target: Option<DurationSpec>,
    #[serde(default)]
    keep: crate::plan::retention::Policy,
    drill_overrides: Option<PathBuf>,
    /// A region map (issue 28): drills restore with it into the mapped
    /// region (a region-loss drill), as `restore --map` does.
    region_map: Option<PathBuf>,
    smoke_pipeline: Option<String>,
    /// How long the smoke pipeline may run (default 10m).
    smoke_timeout: Option<DurationSpec>,
    /// What a drill leaves behind (default: delete the restored resources).
    #[serde(default)]
    drill_cleanup: DrillCleanup,
    /// Scheduled drills restore a random snapshot from this window instead
    /// of the latest (proves old snapshots still restore).
    drill_random_within: Option<DurationSpec>,
    /// How changes are captured: `listing` (the backup schedule lists the
    /// factory) or `events` (ARM's events from `queue`, seconds after each
    /// change; the listing runs at `reconcile`, and at `backup` while the
    /// queue is unreachable).
    #[serde(default)]
    capture: CaptureMode,
    /// The Storage Queue an Event Grid subscription fills with ARM's events
    /// (`https://ACCOUNT.queue.core.windows.net/NAME`).
    queue: Option<String>,
    /// The reconciliation listing while events flow [default: "0 3 * * *"].
    reconcile: Option<Cron>,
    /// How long a factory's events wait to be sealed as one snapshot
    /// [default: 2s].
    coalesce: Option<DurationSpec>,
    /// At most one listing that events ask for (an unknown kind, a name ARM
    /// never gives, a burst) in this period; the rest wait for its end
    /// [default: 10m]. Anyone who can send to the queue can ask for one.
    relist_every: Option<DurationSpec>,
    }
    FactoryShape => FactoryConfig {
        name: String,
        subscription: String,
        resource_group: String,
        factory: String,
        drill_target: Option<TargetConfig>,
        #[serde(default)]
        adopt: bool,
    }
    PolicyShape => PolicyConfig {
        drill_target: Option<TargetPattern>,
    }
}

/// `[policy.NAME]`: the settings of a `[[factory]]` block, for discovered
/// factories; the drill target is a pattern.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "PolicyShape")]
pub struct PolicyConfig {
    /// `{factory}`, `{resource_group}` and `{subscription}` are the found
    /// factory's (subscription defaults to the factory's own).
    pub drill_target: Option<TargetPattern>,
    pub settings: Settings,
}

impl std::ops::Deref for PolicyConfig {
    type Target = Settings;
    fn deref(&self) -> &Settings {
        &self.settings
    }
}

/// How a factory's changes are captured (`capture = …`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum CaptureMode {
    /// The backup schedule lists the factory (RPO: the schedule's period).
    #[default]
    Listing,
    /// ARM's events, read from a Storage Queue (RPO: seconds).
    Events,
}

/// The reconciliation listing of an event-captured factory, unless set.
pub const DEFAULT_RECONCILE: &str = "0 3 * * *";
/// How long events wait to be sealed together, unless set.
pub const DEFAULT_COALESCE: std::time::Duration = std::time::Duration::from_secs(2);
/// At most one listing events ask for in this period, unless set.
pub const DEFAULT_RELIST: std::time::Duration = std::time::Duration::from_secs(600);

/// What is wrong with a factory's or policy's capture settings, if anything.
fn capture_problem(
    capture: CaptureMode,
    queue: Option<&str>,
    reconcile: bool,
    coalesce: Option<DurationSpec>,
    relist_every: Option<DurationSpec>,
) -> Option<String> {
    match (capture, queue) {
        (CaptureMode::Events, None) => {
            return Some("capture = \"events\" needs queue = \"https://ACCOUNT.queue.core.windows.net/NAME\", the Storage Queue the Event Grid subscription fills (see `adfdr init`)".into());
        }
        (CaptureMode::Listing, Some(_)) => {
            return Some("queue is read only with capture = \"events\"".into());
        }
        (_, Some(q)) => {
            let named = |u: &url::Url| {
                u.path()
                    .trim_matches('/')
                    .rsplit('/')
                    .next()
                    .is_some_and(|n| !n.is_empty())
            };
            match url::Url::parse(q) {
                Ok(u) if u.scheme() == "https" && named(&u) => {}
                _ => {
                    return Some(format!(
                        "queue '{}' is not an https URL naming a queue (https://ACCOUNT.queue.core.windows.net/NAME)",
                        cut(q)
                    ));
                }
            }
        }
        _ => {}
    }
    if reconcile && capture != CaptureMode::Events {
        return Some("reconcile applies only with capture = \"events\"".into());
    }
    let range = std::time::Duration::from_millis(100)..=std::time::Duration::from_secs(300);
    if let Some(c) = coalesce
        && !range.contains(&c.0)
    {
        return Some("coalesce must be between 100ms and 5m".into());
    }
    let range = std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(24 * 3600);
    if let Some(r) = relist_every
        && !range.contains(&r.0)
    {
        return Some("relist_every must be between 1s and 24h".into());
    }
    None
}

/// A drill target for discovered factories, e.g. `{ resource_group =
/// "rg-dr-drills", factory = "{factory}-drill" }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetPattern {
    pub subscription: Option<String>,
    pub resource_group: String,
    pub factory: String,
    pub region: Option<String>,
}

/// What a notice is about (the `events` a `[[notify]]` takes).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyEvent {
    BackupFailed,
    BackupDegraded,
    DrillFailed,
    Damage,
    LeaseLost,
    /// A found factory's name holds another factory's history: it was given
    /// a namespace of its own.
    SourceConflict,
    /// A factory's own tag switched its backups off.
    Excluded,
}

impl NotifyEvent {
    pub fn name(self) -> &'static str {
        match self {
            NotifyEvent::BackupFailed => "backup-failed",
            NotifyEvent::BackupDegraded => "backup-degraded",
            NotifyEvent::DrillFailed => "drill-failed",
            NotifyEvent::Damage => "damage",
            NotifyEvent::LeaseLost => "lease-lost",
            NotifyEvent::SourceConflict => "source-conflict",
            NotifyEvent::Excluded => "excluded",
        }
    }
}

/// A `[[notify]]` webhook: generic JSON whose `text` field Slack and Teams
/// incoming webhooks show.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Named in logs and metrics (the URL never is: it is a secret).
    pub name: String,
    /// A file holding the webhook URL (https; http only to loopback).
    pub url_file: PathBuf,
    /// What to send [default: every event].
    pub events: Option<Vec<NotifyEvent>>,
    /// Attempts per notice, with backoff doubling from one second [default: 5].
    pub attempts: Option<u32>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    #[serde(default)]
    pub metrics: Option<String>,
    /// How long a factory's lease lasts without renewal (15 to 60 s): how
    /// soon another agent takes over a factory whose agent died.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u32,
    /// How often `[[discover]]` runs again (default 15m): a new factory is
    /// backed up within one interval.
    pub discover_every: Option<DurationSpec>,
    /// `/healthz` and `/readyz` only (no factory names), on any address:
    /// for probes that cannot reach loopback (a kubelet).
    #[serde(default)]
    pub health: Option<String>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            state_dir: default_state_dir(),
            socket: default_socket(),
            metrics: None,
            lease_seconds: default_lease_seconds(),
            discover_every: None,
            health: None,
        }
    }
}

impl AgentConfig {
    /// The rediscovery interval.
    pub fn discover_interval(&self) -> std::time::Duration {
        self.discover_every
            .map_or(std::time::Duration::from_secs(15 * 60), |d| d.0)
    }
}

fn default_lease_seconds() -> u32 {
    LEASE_DEFAULT_SECONDS
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/adfdr")
}

fn default_socket() -> PathBuf {
    PathBuf::from("/run/adfdr/adfdr.sock")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    ManagedIdentity,
    WorkloadIdentity,
    ClientSecret,
    AzureCli,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub method: AuthMethod,
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    /// Workload identity: the federated token file (else $AZURE_FEDERATED_TOKEN_FILE).
    pub token_file: Option<PathBuf>,
    #[serde(default = "default_arm")]
    pub arm_endpoint: HttpsUrl,
    pub authority_host: Option<HttpsUrl>,
    pub ca_file: Option<PathBuf>,
    /// The longest one ARM request may take, every try, every wait between
    /// them and its answer included [default: 5m].
    pub request_deadline: Option<DurationSpec>,
}

impl AuthConfig {
    pub fn request_deadline(&self) -> std::time::Duration {
        self.request_deadline
            .map_or(crate::factory::arm::REQUEST_DEADLINE, |d| d.0)
    }
}

fn default_arm() -> HttpsUrl {
    HttpsUrl(Url::parse(DEFAULT_ARM).expect("static url"))
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// A snapshot is committed once its manifest is in this many locations
    /// (default: every writable location).
    pub min_copies: Option<usize>,
    /// Concurrent ARM list calls per factory.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Concurrent factories in `backup --all`.
    #[serde(default = "default_factories")]
    pub parallel_factories: usize,
    /// The most definitions (canonical JSON, MiB) one backup holds; a
    /// bigger factory fails its backup instead of exhausting the process's
    /// memory [default: 512]. A backup takes about 1.3 bytes of memory per
    /// byte of definitions (docs/PERFORMANCE.md): size the agent's memory
    /// for parallel_factories × this.
    #[serde(default = "default_max_definitions")]
    pub max_definitions_mib: usize,
}

fn default_max_definitions() -> usize {
    512
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            min_copies: None,
            concurrency: default_concurrency(),
            parallel_factories: default_factories(),
            max_definitions_mib: default_max_definitions(),
        }
    }
}

fn default_concurrency() -> usize {
    6
}

fn default_factories() -> usize {
    2
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationConfig {
    pub name: String,
    /// `https://account.blob.core.windows.net/container` or `file:///srv/adfdr`.
    pub url: LocationUrl,
    /// Reads and verification only (an RA-GRS secondary endpoint).
    #[serde(default)]
    pub read_only: bool,
    /// A file holding a SAS token for this container, instead of Entra ID.
    pub sas_file: Option<PathBuf>,
    /// Upload every object with a time-based immutability policy of N days.
    pub immutability_days: Option<u32>,
    /// The ARM id of the storage account behind the location (an Azure
    /// container, or a directory that is a mounted blob container or share):
    /// `/subscriptions/…/resourceGroups/…/providers/Microsoft.Storage/storageAccounts/NAME`.
    /// `config check` and the agent judge its protection (Reader on the account).
    pub account: Option<String>,
}

/// `/subscriptions/S/resourceGroups/R/providers/Microsoft.Storage/storageAccounts/A`.
pub fn is_storage_account_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() == 9
        && parts[0].is_empty()
        && parts[1].eq_ignore_ascii_case("subscriptions")
        && parts[3].eq_ignore_ascii_case("resourceGroups")
        && parts[5].eq_ignore_ascii_case("providers")
        && parts[6].eq_ignore_ascii_case("Microsoft.Storage")
        && parts[7].eq_ignore_ascii_case("storageAccounts")
        && [2, 4, 8].iter().all(|&i| !parts[i].is_empty())
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub id: String,
    /// `https://vault.vault.azure.net/keys/name[/version]`
    pub keyvault: Option<HttpsUrl>,
    pub file: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub subscription: String,
    pub resource_group: String,
    pub factory: String,
    pub region: Option<String>,
}

/// A `[[factory]]` block: which factory, and its settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "FactoryShape")]
pub struct FactoryConfig {
    /// adfdr's name for it: the store namespace and the CLI argument.
    pub name: String,
    pub subscription: String,
    pub resource_group: String,
    pub factory: String,
    pub drill_target: Option<TargetConfig>,
    /// Continue this name's history with whatever factory the block names,
    /// even when the store's history is another factory's (another ARM id
    /// and createTime): for a factory restored elsewhere that takes over
    /// [default: false, such a backup is refused].
    pub adopt: bool,
    /// Where the block came from (set by discovery, never by the file).
    pub origin: Origin,
    /// Its schedules, targets, keep rules, drills and capture (a policy's,
    /// for a discovered factory).
    pub settings: Settings,
}

impl std::ops::Deref for FactoryConfig {
    type Target = Settings;
    fn deref(&self) -> &Settings {
        &self.settings
    }
}

impl std::ops::DerefMut for FactoryConfig {
    fn deref_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }
}

/// Where a factory's block came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    /// A hand-written `[[factory]]` (or a factory named on the command line).
    #[default]
    Configured,
    /// Found by a `[[discover]]` block.
    Discovered {
        /// The policy it runs under.
        policy: String,
        /// The block's own policy (the operator's choice).
        block_policy: String,
        /// The factory's `adfdr-policy` tag chose `policy`.
        by_tag: bool,
        /// The block lets a tag shorten what is kept.
        tag_may_shorten: bool,
    },
}

impl Origin {
    /// The policy note a snapshot records.
    pub fn note(&self) -> crate::snapshot::manifest::PolicyNote {
        match self {
            Origin::Configured => crate::snapshot::manifest::PolicyNote {
                name: "config".into(),
                by: "config".into(),
            },
            Origin::Discovered { policy, by_tag, .. } => crate::snapshot::manifest::PolicyNote {
                name: policy.clone(),
                by: if *by_tag { "tag" } else { "block" }.into(),
            },
        }
    }
}

pub use adfdr_contract::drill::DrillCleanup;

impl FactoryConfig {
    /// The jobs it schedules: (backup, verify, prune or drill; the cron line).
    /// With capture = "events", `reconcile` too (the listing while events flow).
    pub fn schedules(&self) -> impl Iterator<Item = (&'static str, Schedule)> + '_ {
        let zone = self.zone();
        let reconcile = self.event_queue().map(|_| self.reconcile_schedule());
        [
            ("backup", self.backup.as_ref()),
            ("reconcile", reconcile),
            ("verify", self.verify.as_ref()),
            ("prune", self.prune.as_ref()),
            ("drill", self.drill.as_ref()),
        ]
        .into_iter()
        .filter_map(move |(job, cron)| Some((job, cron?.in_zone(zone))))
    }

    /// The time zone its schedules and keep rules are read in (UTC unless set).
    pub fn zone(&self) -> Zone {
        self.timezone.unwrap_or_default()
    }

    /// A factory named on the command line (a restore target), without schedules.
    pub fn adhoc(name: &str, subscription: &str, resource_group: &str, factory: &str) -> Self {
        FactoryConfig {
            name: name.into(),
            subscription: subscription.into(),
            resource_group: resource_group.into(),
            factory: factory.into(),
            ..Default::default()
        }
    }

    /// The reconciliation listing's schedule (capture = "events").
    pub fn reconcile_schedule(&self) -> &Cron {
        static DEFAULT: std::sync::LazyLock<Cron> = std::sync::LazyLock::new(|| {
            Cron::parse(DEFAULT_RECONCILE).expect("the default parses")
        });
        self.reconcile.as_ref().unwrap_or(&DEFAULT)
    }

    /// How long its events wait to be sealed together.
    pub fn coalesce_window(&self) -> std::time::Duration {
        self.coalesce.map_or(DEFAULT_COALESCE, |d| d.0)
    }

    /// At most one listing events ask for in this period.
    pub fn relist_period(&self) -> std::time::Duration {
        self.relist_every.map_or(DEFAULT_RELIST, |d| d.0)
    }

    /// The queue its events arrive in, when it captures events.
    pub fn event_queue(&self) -> Option<&str> {
        match self.capture {
            CaptureMode::Events => self.queue.as_deref(),
            CaptureMode::Listing => None,
        }
    }

    /// Its address (checked when the config was read).
    pub fn id(&self) -> FactoryId {
        FactoryId {
            subscription: self.subscription.clone(),
            resource_group: self.resource_group.clone(),
            factory: self.factory.clone(),
        }
    }

    pub fn arm_path(&self) -> String {
        self.id().arm_path()
    }

    /// `SUBSCRIPTION/GROUP/FACTORY`, as errors name the factory.
    pub fn path_text(&self) -> String {
        self.id().to_string()
    }
}

impl TargetConfig {
    /// The drill target's address.
    pub fn id(&self) -> FactoryId {
        FactoryId {
            subscription: self.subscription.clone(),
            resource_group: self.resource_group.clone(),
            factory: self.factory.clone(),
        }
    }
}

/// An https URL (bearer tokens are only sent over TLS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpsUrl(pub Url);

impl<'de> Deserialize<'de> for HttpsUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let url = Url::parse(&text)
            .map_err(|e| serde::de::Error::custom(format!("'{}' is not a URL: {e}", cut(&text))))?;
        if url.scheme() != "https" {
            return Err(serde::de::Error::custom(format!(
                "'{}' must use https: Entra tokens are only sent over TLS",
                cut(&text)
            )));
        }
        Ok(HttpsUrl(url))
    }
}

/// A location URL: an https container URL or a `file://` directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocationUrl {
    Azure(Url),
    Dir(PathBuf),
}

impl LocationUrl {
    /// An https container URL, a `file://` URL, or a directory path (what
    /// people type first; a relative one is taken from the current
    /// directory).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with('/') || text.starts_with("./") || text.starts_with("../") || text == "."
        {
            let path = std::path::absolute(text)
                .map_err(|e| format!("'{}' is not a directory path: {e}", cut(text)))?;
            return Ok(LocationUrl::Dir(path));
        }
        let url = Url::parse(text).map_err(|e| match e {
            url::ParseError::RelativeUrlWithoutBase => format!(
                "'{}' is neither a URL nor a directory path: give https://ACCOUNT.blob.core.windows.net/CONTAINER, file:///PATH or a path starting with / or ./",
                cut(text)
            ),
            e => format!("'{}' is not a URL: {e}", cut(text)),
        })?;
        match url.scheme() {
            "https" => {
                if url.query().is_some() {
                    return Err(format!(
                        "'{}' carries a query string; put a SAS in a file and name it with sas_file, never in the config",
                        url.path()
                    ));
                }
                if url.path().trim_matches('/').is_empty() {
                    return Err(format!(
                        "'{}' names no container; use https://ACCOUNT.blob.core.windows.net/CONTAINER",
                        cut(text)
                    ));
                }
                Ok(LocationUrl::Azure(url))
            }
            "file" => url
                .to_file_path()
                .map(LocationUrl::Dir)
                .map_err(|_| format!("'{}' is not a local directory URL", cut(text))),
            other => Err(format!(
                "'{}': scheme {} is not supported; use https:// (Azure Blob) or file:// (a directory)",
                cut(text),
                cut(other)
            )),
        }
    }
}

impl<'de> Deserialize<'de> for LocationUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        LocationUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}

pub use crate::plan::duration::DurationSpec;

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let read = |source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        };
        let bytes =
            crate::localfile::read_capped(path, crate::localfile::MAX_CONFIG).map_err(read)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            read(crate::localfile::LocalFileError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "is not UTF-8 text",
            )))
        })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: shown.clone(),
            message: describe_toml_error(&e, text),
        })?;
        config.path = path.to_path_buf();
        config.validate(text)?;
        Ok(config)
    }

    fn validate(&self, text: &str) -> Result<(), ConfigError> {
        let invalid = |span: std::ops::Range<usize>, message: String| ConfigError::Invalid {
            path: self.path.display().to_string(),
            line: line_of(text, span.start),
            message,
        };
        let whole = |message: String| ConfigError::Parse {
            path: self.path.display().to_string(),
            message,
        };
        self.validate_locations(&invalid, &whole)?;
        self.validate_keys(&invalid, &whole)?;
        self.validate_factories(&invalid)?;
        self.validate_notify(&invalid)?;
        self.validate_discover(&invalid, &whole)
    }

    fn validate_discover(
        &self,
        invalid: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
        whole: &dyn Fn(String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        for (name, p) in &self.policies {
            if !safe_name(name) {
                return Err(whole(format!(
                    "[policy.{}]: a policy name may only use letters, digits, '-', '_' and '.'",
                    cut(name)
                )));
            }
            // Schedules and the time zone were checked as they were read.
            if let Some(problem) = capture_problem(
                p.capture,
                p.queue.as_deref(),
                p.reconcile.is_some(),
                p.coalesce,
                p.relist_every,
            ) {
                return Err(whole(format!("[policy.{name}]: {problem}")));
            }
            if p.drill.is_some() && p.drill_target.is_none() {
                return Err(whole(format!(
                    "[policy.{name}]: drill needs drill_target = {{ resource_group = \"…\", factory = \"{{factory}}-drill\" }}"
                )));
            }
        }
        for d in &self.discover {
            let c = d.get_ref();
            if c.subscriptions.is_empty() {
                return Err(invalid(d.span(), "[[discover]]: subscriptions is empty: list ids, or \"*\" for every subscription the identity sees".into()));
            }
            if !self.policies.contains_key(&c.policy) {
                return Err(invalid(
                    d.span(),
                    format!(
                        "[[discover]]: policy '{}' is not defined: add [policy.{}]",
                        cut(&c.policy),
                        cut(&c.policy)
                    ),
                ));
            }
            for g in c.resource_groups.iter().chain(&c.names) {
                globset::Glob::new(g).map_err(|e| {
                    invalid(
                        d.span(),
                        format!("[[discover]]: '{}' is not a glob: {e}", cut(g)),
                    )
                })?;
            }
        }
        Ok(())
    }

    fn validate_notify(
        &self,
        invalid: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let mut names = BTreeMap::new();
        for n in &self.notify {
            let c = n.get_ref();
            if !safe_name(&c.name) || names.insert(c.name.clone(), ()).is_some() {
                return Err(invalid(
                    n.span(),
                    format!(
                        "notify name '{}' must be unique and use only letters, digits, '-', '_' and '.'",
                        cut(&c.name)
                    ),
                ));
            }
            if c.attempts == Some(0) {
                return Err(invalid(
                    n.span(),
                    format!("notify '{}': attempts must be 1 or more", c.name),
                ));
            }
        }
        Ok(())
    }

    fn validate_locations(
        &self,
        invalid: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
        whole: &dyn Fn(String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        if self.locations.is_empty() {
            return Err(whole(
                "no [[location]]: add two or more, in different regions".into(),
            ));
        }
        validate_agent(self, whole)?;
        let mut names = BTreeMap::new();
        let mut places: BTreeMap<String, String> = BTreeMap::new();
        for l in &self.locations {
            if !safe_name(&l.get_ref().name) {
                return Err(invalid(
                    l.span(),
                    format!(
                        "location name '{}' may only use letters, digits, '-', '_' and '.'",
                        cut(&l.get_ref().name)
                    ),
                ));
            }
            if names.insert(l.get_ref().name.clone(), ()).is_some() {
                return Err(invalid(
                    l.span(),
                    format!("location name '{}' is used twice", l.get_ref().name),
                ));
            }
            let here = place(&l.get_ref().url);
            if let Some(first) = places.insert(here.clone(), l.get_ref().name.clone()) {
                return Err(invalid(
                    l.span(),
                    format!(
                        "location '{}' is the same place as location {first} ({here}): one copy would count twice; give each location its own container or directory",
                        l.get_ref().name
                    ),
                ));
            }
            if let Some(id) = &l.get_ref().account
                && !is_storage_account_id(id)
            {
                return Err(invalid(
                    l.span(),
                    format!(
                        "location '{}': account = '{}' must be the ARM id of the location's storage account, /subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Storage/storageAccounts/NAME",
                        l.get_ref().name,
                        cut(id)
                    ),
                ));
            }
            if l.get_ref().sas_file.is_some() && matches!(l.get_ref().url, LocationUrl::Dir(_)) {
                return Err(invalid(
                    l.span(),
                    format!(
                        "location '{}': sas_file applies to Azure locations only",
                        l.get_ref().name
                    ),
                ));
            }
        }
        let writable = self
            .locations
            .iter()
            .filter(|l| !l.get_ref().read_only)
            .count();
        if writable == 0 {
            return Err(whole(
                "every [[location]] is read_only: at least one must be writable".into(),
            ));
        }
        if let Some(min) = self.backup.min_copies
            && (min == 0 || min > writable)
        {
            return Err(whole(format!(
                "backup.min_copies = {min}, but there are {writable} writable locations; use 1..={writable}"
            )));
        }
        Ok(())
    }

    fn validate_keys(
        &self,
        invalid: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
        whole: &dyn Fn(String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        if self.keys.is_empty() {
            return Err(whole(
                "no [[key]]: add a Key Vault key and an offline break-glass key file (adfdr key generate)".into(),
            ));
        }
        let mut ids = BTreeMap::new();
        for k in &self.keys {
            let key = k.get_ref();
            if !safe_name(&key.id) {
                return Err(invalid(
                    k.span(),
                    format!(
                        "key id '{}' may only use letters, digits, '-', '_' and '.'",
                        cut(&key.id)
                    ),
                ));
            }
            if ids.insert(key.id.clone(), ()).is_some() {
                return Err(invalid(
                    k.span(),
                    format!("key id '{}' is used twice", key.id),
                ));
            }
            match (&key.keyvault, &key.file) {
                (Some(url), None) => {
                    if parse_key_url(&url.0).is_none() {
                        return Err(invalid(
                            k.span(),
                            format!(
                                "key '{}': keyvault must look like https://VAULT.vault.azure.net/keys/NAME[/VERSION], got {}",
                                key.id,
                                cut(url.0.as_str())
                            ),
                        ));
                    }
                }
                (None, Some(_)) => {}
                _ => {
                    return Err(invalid(
                        k.span(),
                        format!(
                            "key '{}' needs exactly one of keyvault = \"…\" or file = \"…\"",
                            key.id
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_factories(
        &self,
        invalid: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let mut fnames = BTreeMap::new();
        for f in &self.factories {
            let fc = f.get_ref();
            if !safe_name(&fc.name) {
                return Err(invalid(
                    f.span(),
                    format!(
                        "factory name '{}' may only use letters, digits, '-', '_' and '.'",
                        cut(&fc.name)
                    ),
                ));
            }
            if fnames.insert(fc.name.to_lowercase(), ()).is_some() {
                return Err(invalid(
                    f.span(),
                    format!("factory name '{}' is used twice", fc.name),
                ));
            }
            crate::model::names::factory_path(&fc.subscription, &fc.resource_group, &fc.factory)
                .map_err(|e| {
                    invalid(
                        f.span(),
                        format!("factory '{}': {}", fc.name, cut_quoted(&e)),
                    )
                })?;
            if let Some(t) = &fc.drill_target {
                crate::model::names::factory_path(&t.subscription, &t.resource_group, &t.factory)
                    .map_err(|e| {
                    invalid(
                        f.span(),
                        format!("factory '{}': drill_target: {}", fc.name, cut_quoted(&e)),
                    )
                })?;
            }

            if let Some(t) = &fc.drill_target
                && t.subscription.eq_ignore_ascii_case(&fc.subscription)
                && t.resource_group.eq_ignore_ascii_case(&fc.resource_group)
                && t.factory.eq_ignore_ascii_case(&fc.factory)
            {
                return Err(invalid(
                    f.span(),
                    format!(
                        "factory '{}': drill_target is the source factory itself; a drill must never touch the source",
                        fc.name
                    ),
                ));
            }
            if let Some(problem) = capture_problem(
                fc.capture,
                fc.queue.as_deref(),
                fc.reconcile.is_some(),
                fc.coalesce,
                fc.relist_every,
            ) {
                return Err(invalid(
                    f.span(),
                    format!("factory '{}': {problem}", fc.name),
                ));
            }
            if fc.drill.is_some() && fc.drill_target.is_none() {
                return Err(invalid(
                    f.span(),
                    format!(
                        "factory '{}': drill = … needs drill_target = {{ subscription = \"…\", resource_group = \"…\", factory = \"…\" }}, the scratch factory drills restore into",
                        fc.name
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn factory(&self, name: &str) -> Option<&FactoryConfig> {
        self.factories
            .iter()
            .map(Spanned::get_ref)
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The event queues of factories with capture = "events", each with the
    /// factories read from it (their URLs were checked when the config
    /// loaded; a trailing slash names the same queue).
    pub fn event_queues(&self) -> BTreeMap<url::Url, Vec<&FactoryConfig>> {
        let mut out: BTreeMap<url::Url, Vec<&FactoryConfig>> = BTreeMap::new();
        for f in self.factories.iter().map(Spanned::get_ref) {
            if let Some(q) = f.event_queue()
                && let Ok(url) = q.trim_end_matches('/').parse()
            {
                out.entry(url).or_default().push(f);
            }
        }
        out
    }

    pub fn factory_names(&self) -> Vec<String> {
        self.factories
            .iter()
            .map(|f| f.get_ref().name.clone())
            .collect()
    }

    /// The number of manifest copies that commit a snapshot.
    pub fn min_copies(&self) -> usize {
        let writable = self
            .locations
            .iter()
            .filter(|l| !l.get_ref().read_only)
            .count();
        self.backup.min_copies.unwrap_or(writable)
    }
}

/// `https://vault/keys/NAME[/VERSION]` -> (vault URL, name, version).
/// The agent's and the backup's own settings: listening addresses (parsed
/// here, once: what `config check` accepts is what the agent binds), the
/// definitions cap and the lease period.
fn validate_agent(
    config: &Config,
    whole: &dyn Fn(String) -> ConfigError,
) -> Result<(), ConfigError> {
    // The agent's listening addresses are parsed here, once: what
    // `config check` accepts is what the agent binds.
    for (key, addr) in [
        ("metrics", &config.agent.metrics),
        ("health", &config.agent.health),
    ] {
        if let Some(a) = addr
            && a.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(whole(format!(
                "agent.{key} = '{}' is not an address like 127.0.0.1:9464 (IP:PORT; [::1]:9464 for IPv6)",
                cut(a)
            )));
        }
    }
    if config.backup.max_definitions_mib == 0 {
        return Err(whole(
            "backup.max_definitions_mib = 0 would refuse every backup: give the most MiB of definitions one backup may hold".into(),
        ));
    }
    let (lo, hi) = (LEASE_MIN_SECONDS, LEASE_MAX_SECONDS);
    if !(lo..=hi).contains(&config.agent.lease_seconds) {
        return Err(whole(format!(
            "agent.lease_seconds = {}: Azure blob leases last {lo} to {hi} seconds; pick one in that range",
            config.agent.lease_seconds
        )));
    }
    Ok(())
}

pub fn parse_key_url(url: &Url) -> Option<(String, String, Option<String>)> {
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["keys", name] => Some((vault_of(url), name.to_string(), None)),
        ["keys", name, version] => {
            Some((vault_of(url), name.to_string(), Some(version.to_string())))
        }
        _ => None,
    }
}

fn vault_of(url: &Url) -> String {
    let mut vault = url.clone();
    vault.set_path("/");
    vault.set_query(None);
    vault.to_string()
}

pub use crate::plan::duration::cut;

/// serde's "unknown field `X`, expected one of `a`, `b`, …" (or "unknown
/// variant"), told as a person would: the nearest known name first, then
/// every name it takes, whole.
fn suggest(message: &str) -> Option<String> {
    let (what, rest) = ["unknown field `", "unknown variant `"]
        .iter()
        .find_map(|p| message.strip_prefix(p).map(|r| (*p, r)))?;
    let (given, rest) = rest.split_once('`')?;
    let list = rest.split_once("expected").map(|(_, l)| l)?;
    // The names are the back-quoted words after "expected".
    let known: Vec<&str> = list.split('`').skip(1).step_by(2).collect();
    if known.is_empty() {
        return None;
    }
    let nearest = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(given, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min();
    let noun = if what.contains("field") {
        "key"
    } else {
        "value"
    };
    let mut out = format!("unknown {noun} `{given}`");
    if let Some((_, k)) = nearest {
        out.push_str(&format!(": did you mean `{k}`?"));
    }
    let mut known = known;
    known.sort_unstable();
    known.dedup();
    out.push_str(&format!(" (it takes: {})", known.join(", ")));
    Some(out)
}

/// A naming-rule message with any long quoted value cut short.
fn cut_quoted(message: &str) -> String {
    if message.len() <= 200 {
        message.to_string()
    } else {
        cut(message)
    }
}

/// Where a location's data lives, to tell two names for one place: the
/// resolved directory, or the container URL without case or slashes.
fn place(url: &LocationUrl) -> String {
    match url {
        LocationUrl::Dir(path) => {
            let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| {
                // Not there yet: resolve `.` and `..` by hand.
                let mut out = PathBuf::new();
                for c in path.components() {
                    match c {
                        std::path::Component::ParentDir => {
                            out.pop();
                        }
                        std::path::Component::CurDir => {}
                        c => out.push(c),
                    }
                }
                out
            });
            format!("file://{}", resolved.display())
        }
        LocationUrl::Azure(u) => format!(
            "https://{}{}",
            u.host_str().unwrap_or("").to_ascii_lowercase(),
            u.path().trim_end_matches('/').to_ascii_lowercase()
        ),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// toml's message with its line. The offending source line is not echoed:
/// it might hold something secret.
fn describe_toml_error(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim();
    let message = match suggest(message) {
        Some(better) => better,
        None => cut_quoted(message),
    };
    match e.span() {
        Some(span) => match key_before(text, span.start) {
            // A value refused as it was read (a schedule, a time zone):
            // the key it was given to, as people wrote it.
            Some(key) if !message.starts_with(key) => {
                format!("line {}: {key} = {message}", line_of(text, span.start))
            }
            _ => format!("line {}: {message}", line_of(text, span.start)),
        },
        None => message,
    }
}

/// The key a value at `offset` is given to (`backup` in `backup = "…"`).
fn key_before(text: &str, offset: usize) -> Option<&str> {
    let before = text.get(..offset)?;
    let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    let key = line.trim_end().strip_suffix('=')?.trim_end();
    let start = key
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    Some(&key[start..]).filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[agent]
state_dir = "/var/lib/adfdr"

[auth]
method = "managed-identity"

[[location]]
name = "weu"
url = "https://adfdrweu.blob.core.windows.net/adfdr"
[[location]]
name = "neu"
url = "file:///srv/adfdr"

[[key]]
id = "kv"
keyvault = "https://contoso-kv.vault.azure.net/keys/adfdr-kek"
[[key]]
id = "breakglass"
file = "/etc/adfdr/breakglass.key"

[[factory]]
name = "sales-prod"
subscription = "00000000-0000-0000-0000-000000000000"
resource_group = "rg-sales"
factory = "adf-sales-prod"
backup = "*/15 * * * *"
rpo_target = "30m"
keep = { last = 10, daily = 14 }
"#;

    /// Issue 26, item 4: a typo gets the nearest key and the whole list,
    /// not a message cut inside it.
    #[test]
    fn a_typo_gets_the_nearest_key_and_every_key_it_takes() {
        let text = GOOD.replace("rpo_target = \"30m\"", "rpo_taget = \"30m\"");
        let e = Config::parse(&text, Path::new("t.toml")).expect_err("typo");
        let m = e.to_string();
        assert!(
            m.contains("unknown key `rpo_taget`: did you mean `rpo_target`?"),
            "{m}"
        );
        assert!(
            m.contains("smoke_pipeline") && m.contains("drill_cleanup") && !m.contains("bytes)"),
            "{m}"
        );
        let text = GOOD.replace(
            "method = \"managed-identity\"",
            "method = \"managed-identiy\"",
        );
        let m = Config::parse(&text, Path::new("t.toml"))
            .expect_err("typo")
            .to_string();
        assert!(m.contains("did you mean `managed-identity`?"), "{m}");
        let text = GOOD.replace("rpo_target = \"30m\"", "zzzzzz = 1");
        let m = Config::parse(&text, Path::new("t.toml"))
            .expect_err("unknown")
            .to_string();
        assert!(m.contains("unknown key `zzzzzz` (it takes:"), "{m}");
    }

    /// Issue 25, item 10: the agent's addresses are checked with the
    /// config, so `config check` refuses what the agent would not bind.
    #[test]
    fn listening_addresses_are_parsed_with_the_config() {
        let with = |agent: &str| {
            let text = GOOD.replacen("[agent]\n", &format!("[agent]\n{agent}\n"), 1);
            Config::parse(&text, Path::new("t.toml"))
        };
        assert!(with("metrics = \"0.0.0.0:9464\"").is_ok());
        assert!(with("health = \"[::1]:8080\"").is_ok());
        let e = with("metrics = \"localhost:9464\"").expect_err("not an address");
        assert!(e.to_string().contains("agent.metrics"), "{e}");
        assert!(with("health = \"8080\"").is_err());
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/adfdr/adfdr.toml"))
    }

    #[test]
    fn the_design_example_parses() {
        let c = parse(GOOD).expect("parse");
        assert_eq!(c.locations.len(), 2);
        assert_eq!(c.min_copies(), 2);
        assert_eq!(
            c.auth.arm_endpoint.0.as_str(),
            "https://management.azure.com/"
        );
        let f = c.factory("SALES-prod").expect("factory");
        assert_eq!(
            f.rpo_target,
            Some(DurationSpec(std::time::Duration::from_secs(1800)))
        );
        assert_eq!(f.keep.last, Some(10));
        assert!(f.arm_path().ends_with("/factories/adf-sales-prod"));
    }

    #[test]
    fn errors_name_the_key_and_the_line() {
        let typo = GOOD.replace("rpo_target", "rpo_targte");
        let e = parse(&typo).unwrap_err().to_string();
        assert!(e.contains("rpo_targte") && e.contains("line 28"), "{e}");

        let bad_duration = GOOD.replace("\"30m\"", "\"half an hour\"");
        let e = parse(&bad_duration).unwrap_err().to_string();
        assert!(e.contains("line 28") && e.contains("not a duration"), "{e}");

        let http = GOOD.replace("https://adfdrweu", "http://adfdrweu");
        let e = parse(&http).unwrap_err().to_string();
        assert!(e.contains("line 10") && e.contains("scheme http"), "{e}");

        let both = GOOD.replace(
            "file = \"/etc/adfdr/breakglass.key\"",
            "file = \"/k\"\nkeyvault = \"https://v.vault.azure.net/keys/k\"",
        );
        let e = parse(&both).unwrap_err().to_string();
        assert!(e.contains("line 18") && e.contains("exactly one"), "{e}");

        let sas = GOOD.replace(
            "blob.core.windows.net/adfdr",
            "blob.core.windows.net/adfdr?sig=SECRET",
        );
        let e = parse(&sas).unwrap_err().to_string();
        assert!(e.contains("sas_file") && !e.contains("SECRET"), "{e}");

        let e = parse("[auth]\nmethod = \"password\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("password"), "{e}");
    }

    #[test]
    fn one_place_under_two_names_and_long_values_are_refused_briefly() {
        let twice = GOOD.replace(
            "file:///srv/adfdr",
            "https://ADFDRWEU.blob.core.windows.net/adfdr/",
        );
        let e = parse(&twice).unwrap_err().to_string();
        assert!(e.contains("same place as location weu"), "{e}");
        let huge = "x".repeat(10 << 20);
        let long = GOOD.replace("name = \"sales-prod\"", &format!("name = \"{huge}\""));
        let e = parse(&long).unwrap_err().to_string();
        assert!(
            e.len() < 400 && e.contains("bytes)"),
            "{} bytes: {}",
            e.len(),
            &e[..200.min(e.len())]
        );
        let query = GOOD.replace("factory = \"adf-sales-prod\"", "factory = \"f?x=1\"");
        let e = parse(&query).unwrap_err().to_string();
        assert!(e.contains("Data Factory's rules"), "{e}");
    }

    #[test]
    fn bad_schedules_and_time_zones_are_named_with_their_key_and_line() {
        // Issue 27: parsed once, as the config is read (a Cron, a Zone),
        // so the error points at the very line of the value.
        let cron = GOOD.replace("\"*/15 * * * *\"", "\"*/15 * * *\"");
        let e = parse(&cron).unwrap_err().to_string();
        assert!(
            e.contains("line 27: backup = '*/15 * * *' has 4 fields"),
            "{e}"
        );
        let tz = format!("{GOOD}timezone = \"Europe/Atlantis\"\n");
        let e = parse(&tz).unwrap_err().to_string();
        assert!(
            e.contains("line 30: timezone = unknown time zone 'Europe/Atlantis'"),
            "{e}"
        );
        let policy = format!("{GOOD}\n[policy.gold]\nbackup = \"@reboot\"\n");
        let e = parse(&policy).unwrap_err().to_string();
        assert!(
            e.contains("line 32: backup = '@reboot': @reboot has no time"),
            "{e}"
        );
        let ok = format!(
            "{GOOD}timezone = \"Europe/Amsterdam\"\ndrill = \"0 3 * * SUN\"\ndrill_target = {{ subscription = \"00000000-0000-0000-0000-000000000000\", resource_group = \"rg-dr\", factory = \"adf-drill\" }}\n"
        );
        parse(&ok).expect("a valid zone and drill schedule");
        let e = parse(&format!("{GOOD}drill = \"0 3 * * SUN\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs drill_target"), "{e}");
    }

    #[test]
    fn drills_never_target_the_source() {
        let same = format!(
            "{GOOD}drill_target = {{ subscription = \"00000000-0000-0000-0000-000000000000\", resource_group = \"RG-SALES\", factory = \"adf-sales-prod\" }}\n"
        );
        let e = parse(&same).unwrap_err().to_string();
        assert!(e.contains("source factory itself"), "{e}");
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/adfdr.toml.example");
        let c = Config::load(&path).expect("systemd/adfdr.toml.example parses and validates");
        assert_eq!(c.locations.len(), 2);
        assert_eq!(c.keys.len(), 2);
        assert!(
            c.factory("sales-prod")
                .is_some_and(|f| f.drill_target.is_some())
        );
    }

    #[test]
    fn durations() {
        assert_eq!(DurationSpec::parse("1h30m").expect("d").0.as_secs(), 5400);
        assert_eq!(
            DurationSpec::parse("1s500ms").expect("d").0.as_millis(),
            1500
        );
        assert!(DurationSpec::parse("5mx").is_err());
        assert!(DurationSpec::parse("30").is_err());
        assert!(DurationSpec::parse("0s").is_err());
        assert!(DurationSpec::parse("5x").is_err());
    }
}
