//! adfdr-agent as systemd runs it: a child process with NOTIFY_SOCKET, the
//! emulator (ARM, managed identity) on loopback and directory locations.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use adf_emulator::Emulator;
use adfdr_core::store::fs::FsStore;
use adfdr_core::store::{BlobStore, Location, Replicas};

const SUB: &str = "11111111-2222-3333-4444-555555555555";

struct Rig {
    emu: Emulator,
    dir: PathBuf,
    config: PathBuf,
    /// Agents started, stopped when the rig goes (a failing test must not
    /// leave agents running).
    spawned: std::sync::Mutex<Vec<u32>>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let mine = self.dir.to_string_lossy().to_string();
        for pid in self.spawned.lock().map(|p| p.clone()).unwrap_or_default() {
            // Only a process that is still this rig's agent (a pid can be reused).
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&mine) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

impl Rig {
    async fn start(tag: &str) -> Rig {
        Rig::start_with(tag, |_| {}).await
    }

    async fn start_with(tag: &str, tweak: impl FnOnce(&mut adf_emulator::Config)) -> Rig {
        let emu = adfdr_tests::start_emulator(tweak).await;
        let dir = std::env::temp_dir().join(format!(
            "adfdr-agent-{tag}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(dir.join("weu")).expect("dir");
        std::fs::create_dir_all(dir.join("neu")).expect("dir");
        emu.seed(
            &format!("{SUB}/rg-prod/adf-sales"),
            &adfdr_tests::workspace_root().join("fixtures/sample-factory"),
        )
        .expect("seed");
        let key = dir.join("bg.key");
        adfdr_core::keys::generate_key_file(&key).expect("key");
        let config = dir.join("adfdr.toml");
        Rig {
            emu,
            dir,
            config,
            spawned: Default::default(),
        }
    }

    fn write_config(&self, factory_extra: &str) {
        let text = self.config_text(&self.dir.join("state"), &self.socket(), "", factory_extra);
        std::fs::write(&self.config, text).expect("config");
    }

    /// `write_config` with the metrics endpoint on a free loopback port.
    fn write_config_with_metrics(&self, factory_extra: &str) -> u16 {
        self.write_config_with_metrics_on("127.0.0.1", factory_extra)
    }

    /// The same, the metrics bound to `host` (`0.0.0.0`: every address).
    fn write_config_with_metrics_on(&self, host: &str, factory_extra: &str) -> u16 {
        let port = adfdr_tests::free_port();
        let text = self.config_text(
            &self.dir.join("state"),
            &self.socket(),
            &format!("metrics = \"{host}:{port}\""),
            factory_extra,
        );
        std::fs::write(&self.config, text).expect("config");
        port
    }

    fn config_text(
        &self,
        state: &std::path::Path,
        socket: &std::path::Path,
        agent_extra: &str,
        factory_extra: &str,
    ) -> String {
        format!(
            r#"[agent]
state_dir = "{state}"
socket = "{socket}"
{agent_extra}
[auth]
method = "managed-identity"
arm_endpoint = "{arm}"
ca_file = "{ca}"
[[location]]
name = "weu"
url = "file://{weu}"
account = "/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.Storage/storageAccounts/stadfdrweu"
[[location]]
name = "neu"
url = "file://{neu}"
[[key]]
id = "breakglass"
file = "{key}"
[[factory]]
name = "sales"
subscription = "{SUB}"
resource_group = "rg-prod"
factory = "adf-sales"
{factory_extra}
"#,
            state = state.display(),
            socket = socket.display(),
            arm = self.emu.urls().arm,
            ca = adfdr_tests::ca_pem().display(),
            weu = self.dir.join("weu").display(),
            neu = self.dir.join("neu").display(),
            key = self.dir.join("bg.key").display(),
        )
    }

    /// Starts the agent with a notify socket; returns the child and the socket.
    fn spawn(&self, extra: &[&str]) -> (Child, UnixDatagram) {
        self.spawn_with(&self.config, "agent.log", extra)
    }

    fn spawn_with(
        &self,
        config: &std::path::Path,
        log: &str,
        extra: &[&str],
    ) -> (Child, UnixDatagram) {
        let socket_path = self
            .dir
            .join(format!("notify-{}", uuid::Uuid::new_v4().simple()));
        let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let child = Command::new(env!("CARGO_BIN_EXE_adfdr-agent"))
            .args(["--config", config.to_str().expect("utf8")])
            .args(extra)
            .env("NOTIFY_SOCKET", &socket_path)
            .env("IDENTITY_ENDPOINT", &self.emu.urls().managed_identity)
            .env("IDENTITY_HEADER", self.emu.identity_header())
            .env("ADFDR_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join(log)).expect("log"))
            .spawn()
            .expect("agent starts");
        self.spawned.lock().expect("spawned").push(child.id());
        (child, socket)
    }

    /// The CLI on `config`, signing in with the emulator's managed identity.
    fn adfdr(&self, config: &std::path::Path, args: &[&str]) -> std::process::Output {
        Command::new(adfdr_cli())
            .args(["--config", config.to_str().expect("utf8")])
            .args(args)
            .env("IDENTITY_ENDPOINT", &self.emu.urls().managed_identity)
            .env("IDENTITY_HEADER", self.emu.identity_header())
            .output()
            .expect("adfdr runs")
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("adfdr.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// Committed snapshots and checkpoints in the first location.
    async fn objects(&self) -> (usize, usize) {
        let store = FsStore::new(self.dir.join("weu"));
        let list = store.list("v1/").await.expect("list");
        let manifests = list.iter().filter(|o| o.key.ends_with(".manifest")).count();
        let checkpoints = list
            .iter()
            .filter(|o| o.key.ends_with(".checkpoint"))
            .count();
        (manifests, checkpoints)
    }
}

/// Notify messages until `want` arrives (or the deadline): all messages seen.
fn wait_for(socket: &UnixDatagram, want: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let done = text.lines().any(|l| l == want);
            seen.push(text);
            if done {
                return seen;
            }
        }
    }
    seen
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

async fn until(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_backups_run_on_time_and_missed_runs_are_caught_up_once() {
    let rig = Rig::start("schedule").await;
    // Yearly: never due during the test, but never run either: caught up at start.
    rig.write_config("backup = \"0 0 1 1 *\"");
    let (mut agent, socket) = rig.spawn(&[]);
    let seen = wait_for(&socket, "READY=1", Duration::from_secs(15));
    assert!(
        seen.iter().any(|m| m.contains("READY=1")),
        "{seen:?}\n{}",
        rig.log()
    );
    until(
        "the caught-up backup",
        Duration::from_secs(20),
        async || rig.objects().await.0 == 1,
    )
    .await;
    signal(&agent, "TERM");
    assert_eq!(
        wait_exit(&mut agent, Duration::from_secs(10)),
        Some(0),
        "{}",
        rig.log()
    );
    assert!(
        rig.log().contains("a scheduled run was missed"),
        "{}",
        rig.log()
    );

    // Restarted: the run is recorded, so nothing is due until next year.
    let (mut agent, socket) = rig.spawn(&[]);
    wait_for(&socket, "READY=1", Duration::from_secs(15));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rig.objects().await, (1, 0), "no second catch-up");
    signal(&agent, "TERM");
    assert_eq!(wait_exit(&mut agent, Duration::from_secs(10)), Some(0));

    // Every two seconds: runs keep coming, an unchanged factory writes checkpoints.
    rig.write_config("backup = \"*/2 * * * * *\"");
    let (mut agent, socket) = rig.spawn(&[]);
    let seen = wait_for(&socket, "READY=1", Duration::from_secs(15));
    assert!(seen.iter().any(|m| m.contains("STATUS=1 jobs")), "{seen:?}");
    until(
        "three scheduled runs",
        Duration::from_secs(20),
        async || rig.objects().await.1 >= 3,
    )
    .await;
    assert_eq!(rig.objects().await.0, 1, "unchanged: checkpoints only");
    signal(&agent, "TERM");
    assert_eq!(
        wait_exit(&mut agent, Duration::from_secs(10)),
        Some(0),
        "{}",
        rig.log()
    );
    let catalog = adfdr_core::catalog::Catalog::open(&adfdr_core::catalog::Catalog::path_in(
        &rig.dir.join("state"),
    ))
    .expect("catalog");
    assert!(catalog.last_run("backup", "sales").expect("runs").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_before_ready() {
    let rig = Rig::start("bad").await;
    for (extra, want, code) in [
        (
            "backup = \"*/15 * * *\"",
            "backup = '*/15 * * *' has 4 fields",
            2,
        ),
        (
            "backup = \"0 3 * * *\"\ntimezone = \"Mars/Olympus\"",
            "unknown time zone 'Mars/Olympus'",
            2,
        ),
    ] {
        rig.write_config(extra);
        let (mut agent, socket) = rig.spawn(&[]);
        assert_eq!(
            wait_exit(&mut agent, Duration::from_secs(10)),
            Some(code),
            "{}",
            rig.log()
        );
        assert!(rig.log().contains(want), "{}", rig.log());
        let seen = wait_for(&socket, "READY=1", Duration::from_millis(300));
        assert!(seen.iter().all(|m| !m.contains("READY=1")), "{seen:?}");
    }
    // The socket cannot be made.
    rig.write_config("backup = \"0 3 * * *\"");
    let text = std::fs::read_to_string(&rig.config).expect("config");
    std::fs::write(
        &rig.config,
        text.replace(
            &rig.socket().display().to_string(),
            "/nonexistent-adfdr/adfdr.sock",
        ),
    )
    .expect("config");
    let (mut agent, _socket) = rig.spawn(&[]);
    assert_eq!(
        wait_exit(&mut agent, Duration::from_secs(10)),
        Some(2),
        "{}",
        rig.log()
    );
    assert!(
        rig.log()
            .contains("agent.socket /nonexistent-adfdr/adfdr.sock: cannot listen"),
        "{}",
        rig.log()
    );
    // agent.socket names a file that is not a socket: refused, left alone.
    let precious = rig.dir.join("precious.txt");
    std::fs::write(&precious, b"keep me").expect("file");
    std::fs::write(
        &rig.config,
        text.replace(
            &rig.socket().display().to_string(),
            &precious.display().to_string(),
        ),
    )
    .expect("config");
    let (mut agent, _socket) = rig.spawn(&[]);
    assert_eq!(
        wait_exit(&mut agent, Duration::from_secs(10)),
        Some(2),
        "{}",
        rig.log()
    );
    assert!(rig.log().contains("is not a socket"), "{}", rig.log());
    assert_eq!(std::fs::read(&precious).expect("still there"), b"keep me");
    // No location answers.
    rig.write_config("backup = \"0 3 * * *\"");
    let text = std::fs::read_to_string(&rig.config).expect("config");
    let missing = rig.dir.join("gone");
    std::fs::write(
        &rig.config,
        text.replace(
            &rig.dir.join("weu").display().to_string(),
            &missing.display().to_string(),
        )
        .replace(
            &rig.dir.join("neu").display().to_string(),
            &rig.dir.join("gone-too").display().to_string(),
        ),
    )
    .expect("config");
    let (mut agent, _socket) = rig.spawn(&[]);
    assert_eq!(
        wait_exit(&mut agent, Duration::from_secs(20)),
        Some(1),
        "{}",
        rig.log()
    );
    assert!(rig.log().contains("no location answered"), "{}", rig.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_keeps_the_old_config_on_error_and_sigterm_leaves_no_partial_snapshot() {
    let rig = Rig::start("signals").await;
    rig.write_config("backup = \"0 0 1 1 *\"");
    let (mut agent, socket) = rig.spawn(&[]);
    wait_for(&socket, "READY=1", Duration::from_secs(15));
    until("the first backup", Duration::from_secs(20), async || {
        rig.objects().await.0 == 1
    })
    .await;

    std::fs::write(&rig.config, "this is [not toml").expect("broken");
    signal(&agent, "HUP");
    let seen = wait_for(&socket, "READY=1", Duration::from_secs(5));
    assert!(seen.iter().any(|m| m.contains("RELOADING=1")), "{seen:?}");
    assert!(agent.try_wait().expect("wait").is_none(), "still running");
    assert!(rig.log().contains("config reload refused"), "{}", rig.log());

    rig.write_config("backup = \"*/2 * * * * *\"");
    signal(&agent, "HUP");
    wait_for(&socket, "READY=1", Duration::from_secs(5));
    until(
        "the reloaded schedule",
        Duration::from_secs(15),
        async || rig.objects().await.1 >= 2,
    )
    .await;
    assert!(rig.log().contains("config reloaded"), "{}", rig.log());
    signal(&agent, "TERM");
    assert_eq!(wait_exit(&mut agent, Duration::from_secs(10)), Some(0));

    // A slow ARM: SIGTERM lands during a backup; with no time to finish, the
    // agent abandons it and whatever is listed still verifies.
    adfdr_tests::admin(&rig.emu, "settings", serde_json::json!({"latency_ms": 150})).await;
    rig.write_config("backup = \"*/1 * * * * *\"");
    let (mut agent, socket) = rig.spawn(&["--stop-timeout", "0"]);
    wait_for(&socket, "READY=1", Duration::from_secs(15));
    until("a backup under way", Duration::from_secs(10), async || {
        rig.log().contains("\"starting\"")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&agent, "TERM");
    assert_eq!(
        wait_exit(&mut agent, Duration::from_secs(10)),
        Some(0),
        "{}",
        rig.log()
    );
    let replicas = Replicas::new(
        ["weu", "neu"]
            .iter()
            .map(|n| Location {
                name: n.to_string(),
                store: std::sync::Arc::new(FsStore::new(rig.dir.join(n)))
                    as std::sync::Arc<dyn BlobStore>,
                read_only: false,
            })
            .collect(),
    );
    let report = adfdr_core::ops::verify::verify(
        &replicas,
        &adfdr_core::ops::verify::Scope {
            factory: None,
            snapshot: None,
            location: None,
            keys: None,
            read_data: false,
            now: time::OffsetDateTime::now_utc(),
        },
    )
    .await
    .expect("verify");
    assert!(report.healthy(), "{report:?}");
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

/// `name{labels} value` lines of a Prometheus text exposition.
fn samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_metrics_endpoint_matches_the_catalog() {
    let rig = Rig::start("metrics").await;
    rig.emu.with_world(|w| {
        adf_emulator::storage::put_account(
            &mut w.storage_accounts,
            SUB,
            "rg-backup",
            "stadfdrweu",
            serde_json::json!({"sku": {"name": "Standard_GZRS"}, "kind": "StorageV2", "location": "westeurope"}),
        )
        .expect("account")
    });
    let port = rig.write_config_with_metrics(
        "backup = \"0 0 1 1 *\"\nverify = \"0 0 1 1 *\"\nrpo_target = \"30m\"",
    );
    // Two throttled answers for the first backup's export: counted, retried.
    adfdr_tests::admin(
        &rig.emu,
        "faults",
        serde_json::json!({"method": "GET", "path_contains": "/pipelines", "status": 429, "retry_after": 0, "count": 2}),
    )
    .await;
    let (mut agent, socket) = rig.spawn(&[]);
    wait_for(&socket, "READY=1", Duration::from_secs(15));
    assert!(http_get(port, "/healthz").ends_with("ok\n"));
    let mut scraped = Default::default();
    until(
        "both caught-up jobs in the metrics",
        Duration::from_secs(20),
        async || {
            scraped = samples(&http_get(port, "/metrics"));
            scraped.get("adfdr_job_runs_total{factory=\"sales\",kind=\"backup\"}") == Some(&1.0)
                && scraped.get("adfdr_job_runs_total{factory=\"sales\",kind=\"verify\"}")
                    == Some(&1.0)
        },
    )
    .await;
    signal(&agent, "TERM");
    assert_eq!(
        wait_exit(&mut agent, Duration::from_secs(10)),
        Some(0),
        "{}",
        rig.log()
    );

    let catalog = adfdr_core::catalog::Catalog::open(&adfdr_core::catalog::Catalog::path_in(
        &rig.dir.join("state"),
    ))
    .expect("catalog");
    let snapshots = catalog.snapshots(Some("sales")).expect("snapshots");
    let f = "{factory=\"sales\"}";
    assert_eq!(
        scraped[&format!("adfdr_snapshots{f}")],
        snapshots.len() as f64
    );
    assert_eq!(
        scraped[&format!("adfdr_snapshot_bytes{f}")],
        snapshots
            .iter()
            .map(|s| (s.payload_size + s.manifest_size) as f64)
            .sum::<f64>()
    );
    let created = adfdr_core::snapshot::parse_time(&snapshots[0].created)
        .expect("time")
        .unix_timestamp() as f64;
    assert_eq!(
        scraped[&format!("adfdr_last_backup_timestamp_seconds{f}")],
        created
    );
    assert!(scraped[&format!("adfdr_rpo_seconds{f}")] < 60.0);
    assert_eq!(scraped[&format!("adfdr_rpo_target_seconds{f}")], 1800.0);
    assert_eq!(
        scraped["adfdr_job_failures_total{factory=\"sales\",kind=\"backup\"}"],
        0.0
    );
    assert_eq!(scraped["adfdr_location_up{location=\"weu\"}"], 1.0);
    // The backup account's protection, as config check judges it: the
    // emulated account is geo-redundant but keeps TLS 1.0.
    assert_eq!(
        scraped["adfdr_location_posture{location=\"weu\",check=\"redundancy\"}"],
        1.0
    );
    assert_eq!(
        scraped["adfdr_location_posture{location=\"weu\",check=\"tls\"}"],
        0.0
    );
    assert_eq!(
        scraped[&format!("adfdr_factory_owned{f}")],
        1.0,
        "this agent holds the lease"
    );
    assert_eq!(
        scraped["adfdr_throttled_responses_total{service=\"arm\"}"], 2.0,
        "the two 429s were retried and counted"
    );
    assert_eq!(
        scraped["adfdr_throttled_responses_total{service=\"storage\"}"],
        0.0
    );
    let next = scraped["adfdr_next_run_timestamp_seconds{factory=\"sales\",kind=\"backup\"}"];
    assert!(next > created + 86_400.0, "next run is next year: {next}");
}

/// One HTTP/1.0 exchange on the control socket: (status, JSON body).
fn control(
    socket: &std::path::Path,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("control socket");
    let body = body.unwrap_or("");
    write!(s, "{method} {path} HTTP/1.0\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (
        status,
        serde_json::from_str(json).unwrap_or(serde_json::Value::Null),
    )
}

/// POSTs a run request (`body`) and waits for the run to be done; its record.
async fn run_now(socket: &std::path::Path, body: &str, within: Duration) -> serde_json::Value {
    let (code, reply) = control(socket, "POST", "/run", Some(body));
    assert_eq!(code, 202, "{reply}");
    let id = reply["id"].as_str().expect("run id").to_string();
    let mut run = serde_json::Value::Null;
    until(&format!("run {body}"), within, async || {
        run = control(socket, "GET", &format!("/runs/{id}"), None).1;
        run["state"] == "done"
    })
    .await;
    run
}

#[tokio::test(flavor = "multi_thread")]
async fn the_control_socket_runs_jobs_now_and_reports_them() {
    use std::os::unix::fs::PermissionsExt;
    let rig = Rig::start("control").await;
    rig.write_config("backup = \"0 0 1 1 *\"");
    let (mut agent, socket) = rig.spawn(&[]);
    wait_for(&socket, "READY=1", Duration::from_secs(15));
    let mode = std::fs::metadata(rig.socket())
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);
    until(
        "the caught-up backup",
        Duration::from_secs(20),
        async || rig.objects().await.0 == 1,
    )
    .await;

    let run = run_now(
        &rig.socket(),
        r#"{"factory": "sales", "job": "backup", "force": true}"#,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(run["outcome"]["ok"], true, "{run}");
    assert!(
        run["outcome"]["summary"]
            .as_str()
            .unwrap_or_default()
            .starts_with("snapshot "),
        "{run}"
    );
    assert_eq!(run["trigger"], "request");
    assert_eq!(rig.objects().await.0, 2, "forced: a second snapshot");

    let (code, status) = control(&rig.socket(), "GET", "/status", None);
    assert_eq!(code, 200);
    assert_eq!(status["factories"][0]["name"], "sales", "{status}");
    assert_eq!(status["factories"][0]["owned"], true, "{status}");
    assert_eq!(status["jobs"][0]["runs"], 2, "{status}");
    assert_eq!(status["locations"]["weu"], true, "{status}");
    let (code, _) = control(
        &rig.socket(),
        "POST",
        "/run",
        Some(r#"{"factory": "nope", "job": "backup"}"#),
    );
    assert_eq!(code, 404);
    let (code, _) = control(
        &rig.socket(),
        "POST",
        "/run",
        Some(r#"{"factory": "sales", "job": "defrag"}"#),
    );
    assert_eq!(code, 400);
    signal(&agent, "TERM");
    assert_eq!(
        wait_exit(&mut agent, Duration::from_secs(10)),
        Some(0),
        "{}",
        rig.log()
    );
}

/// The `adfdr` CLI next to this agent binary (built when missing).
fn adfdr_cli() -> PathBuf {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_adfdr-agent")).with_file_name("adfdr");
    if !bin.exists() {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-q", "-p", "adfdr", "--bin", "adfdr"])
            .status()
            .expect("cargo");
        assert!(status.success(), "building the adfdr CLI");
    }
    bin
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_goes_through_the_agent_while_it_runs() {
    let rig = Rig::start("cli").await;
    rig.write_config("backup = \"0 0 1 1 *\"\nrpo_target = \"30m\"");
    let cli = |args: &[&str]| rig.adfdr(&rig.config, args);
    // Without the agent: status from the catalog; never backed up is a missed target.
    let out = cli(&["status"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("agent: not running"));

    let (mut agent, socket) = rig.spawn(&[]);
    wait_for(&socket, "READY=1", Duration::from_secs(15));
    until(
        "the caught-up backup",
        Duration::from_secs(20),
        async || rig.objects().await.0 == 1,
    )
    .await;
    let out = cli(&["backup", "--force"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("sales: snapshot ") && text.contains("(run by the agent)"),
        "{text}"
    );
    assert_eq!(rig.objects().await.0, 2);
    let out = cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("agent: running") && text.contains("backup next 20"),
        "{text}"
    );
    assert!(text.contains("location weu: ok"), "{text}");
    // verify and prune also run in the agent (it owns the catalog and the lease).
    let out = cli(&["verify"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("verified 2 snapshot(s)") && text.contains("weu"),
        "{text}"
    );
    let out = cli(&["prune", "--all", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("sales: 2 snapshots") && text.contains("would free"),
        "{text}"
    );
    // Read commands work beside the agent (the store answers); a rebuild
    // says why it cannot run while the agent holds the catalog.
    let out = cli(&["snapshots"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches("sales").count(), 2, "{text}");
    let out = cli(&["catalog", "rebuild"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has the catalog open; stop it first"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs = control(&rig.socket(), "GET", "/runs", None).1;
    let jobs: Vec<&str> = runs
        .as_array()
        .expect("runs")
        .iter()
        .filter(|r| r["trigger"] == "request")
        .filter_map(|r| r["job"].as_str())
        .collect();
    assert_eq!(jobs, ["backup", "verify", "prune"], "{runs}");
    // The agent's privileged actions are in its audit trail.
    let audit = std::fs::read_to_string(rig.dir.join("state/audit.jsonl")).expect("audit trail");
    assert!(
        audit
            .lines()
            .filter(|l| l.contains("\"action\":\"backup\""))
            .count()
            >= 2,
        "{audit}"
    );
    signal(&agent, "TERM");
    assert_eq!(wait_exit(&mut agent, Duration::from_secs(10)), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_agents_never_run_a_factory_at_once_and_the_survivor_takes_over() {
    let rig = Rig::start("ha").await;
    let mut configs = Vec::new();
    for name in ["a", "b"] {
        let config = rig.dir.join(format!("{name}.toml"));
        let text = rig.config_text(
            &rig.dir.join(format!("state-{name}")),
            &rig.dir.join(format!("{name}.sock")),
            "lease_seconds = 15",
            "backup = \"*/2 * * * * *\"",
        );
        std::fs::write(&config, text).expect("config");
        configs.push(config);
    }
    let (sock_a, sock_b) = (rig.dir.join("a.sock"), rig.dir.join("b.sock"));
    let (mut a, notify_a) = rig.spawn_with(&configs[0], "a.log", &[]);
    wait_for(&notify_a, "READY=1", Duration::from_secs(15));
    until(
        "agent a holds the lease",
        Duration::from_secs(15),
        async || {
            control(&sock_a, "GET", "/status", None).1["factories"][0]["lease"] == "this agent"
        },
    )
    .await;
    let (mut b, notify_b) = rig.spawn_with(&configs[1], "b.log", &[]);
    wait_for(&notify_b, "READY=1", Duration::from_secs(15));
    let mut status_b = serde_json::Value::Null;
    until(
        "agent b sees who holds the lease",
        Duration::from_secs(15),
        async || {
            status_b = control(&sock_b, "GET", "/status", None).1;
            status_b["factories"][0]["lease"].is_string()
        },
    )
    .await;
    let who = status_b["factories"][0]["lease"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        who.contains(&format!("pid {}", a.id())),
        "b should name agent a as the holder: {who}"
    );
    // Both schedule a backup every 2 s; only a runs them.
    until("a few backups by a", Duration::from_secs(20), async || {
        control(&sock_a, "GET", "/runs", None)
            .1
            .as_array()
            .is_some_and(|r| r.iter().filter(|r| r["state"] == "done").count() >= 3)
    })
    .await;
    let runs_b = control(&sock_b, "GET", "/runs", None).1;
    assert_eq!(runs_b, serde_json::json!([]), "b ran jobs it does not hold");
    // A run asked of b is refused, naming the holder.
    let refused = run_now(
        &sock_b,
        r#"{"factory": "sales", "job": "backup"}"#,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(refused["outcome"]["ok"], false, "{refused}");
    assert!(
        refused["outcome"]["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("holds the factory's lease"),
        "{refused}"
    );
    // A check that changes nothing is answered by any agent.
    let checked = run_now(
        &sock_b,
        r#"{"factory": "sales", "job": "verify", "read_data": false}"#,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(checked["outcome"]["ok"], true, "{checked}");

    // a dies without a word; b takes over and runs the factory's jobs.
    a.kill().expect("kill a");
    a.wait().expect("reap a");
    until("b takes over", Duration::from_secs(40), async || {
        control(&sock_b, "GET", "/status", None).1["factories"][0]["lease"] == "this agent"
    })
    .await;
    until("backups by b", Duration::from_secs(20), async || {
        control(&sock_b, "GET", "/runs", None)
            .1
            .as_array()
            .is_some_and(|r| {
                r.iter().any(|r| {
                    r["state"] == "done" && r["outcome"]["ok"] == true && r["job"] == "backup"
                })
            })
    })
    .await;
    let log_b = std::fs::read_to_string(rig.dir.join("b.log")).unwrap_or_default();
    assert!(log_b.contains("lease taken"), "{log_b}");
    // The audit trail records the takeover.
    let audit = std::fs::read_to_string(rig.dir.join("state-b/audit.jsonl")).expect("audit trail");
    assert!(audit.contains("\"lease-taken\""), "{audit}");
    signal(&b, "TERM");
    assert_eq!(
        wait_exit(&mut b, Duration::from_secs(15)),
        Some(0),
        "{log_b}"
    );
    // b gave its lease up on the way out: it is free at once.
    let store = FsStore::new(rig.dir.join("weu"));
    let lease = store
        .get("v1/sales/lease", 1 << 16)
        .await
        .expect("read")
        .unwrap_or_default();
    assert!(
        lease.is_empty(),
        "lease still held: {}",
        String::from_utf8_lossy(&lease)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_missed_while_a_location_was_down_are_made_when_it_returns() {
    let rig = Rig::start("repair").await;
    let port = rig.write_config_with_metrics("backup = \"0 0 1 1 *\"");
    // One copy commits while a region is down (the default, every location,
    // would commit nothing).
    let text = std::fs::read_to_string(&rig.config).expect("config");
    std::fs::write(&rig.config, format!("{text}\n[backup]\nmin_copies = 1\n")).expect("config");
    // neu is down (its mount is gone) when the agent starts.
    let neu = rig.dir.join("neu");
    std::fs::remove_dir_all(&neu).expect("rm");
    let (mut agent, socket) = rig.spawn(&[]);
    wait_for(&socket, "READY=1", Duration::from_secs(15));
    until(
        "the degraded caught-up backup",
        Duration::from_secs(20),
        async || rig.objects().await.0 == 1,
    )
    .await;
    let metrics = samples(&http_get(port, "/metrics"));
    assert_eq!(metrics["adfdr_location_up{location=\"neu\"}"], 0.0);
    assert_eq!(
        metrics["adfdr_repairs_pending{location=\"neu\"}"], 2.0,
        "payload and manifest queued for neu"
    );
    // neu comes back; the next backup first copies what it missed.
    std::fs::create_dir_all(&neu).expect("mkdir");
    let run = run_now(
        &rig.socket(),
        r#"{"factory": "sales", "job": "backup"}"#,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(run["outcome"]["ok"], true, "{run}");
    let keys = |dir: PathBuf| async move {
        FsStore::new(dir)
            .list("v1/sales/snapshots/")
            .await
            .expect("list")
            .into_iter()
            .map(|o| o.key)
            .collect::<Vec<_>>()
    };
    let (weu_keys, neu_keys) = (keys(rig.dir.join("weu")).await, keys(neu.clone()).await);
    assert_eq!(weu_keys.len(), 2, "payload and manifest: {weu_keys:?}");
    assert_eq!(neu_keys, weu_keys, "the snapshot was copied to neu");
    let metrics = samples(&http_get(port, "/metrics"));
    assert!(
        metrics["adfdr_repaired_objects_total{location=\"neu\"}"] >= 2.0,
        "{metrics:?}"
    );
    assert_eq!(metrics["adfdr_repairs_pending{location=\"neu\"}"], 0.0);
    assert_eq!(
        metrics["adfdr_location_up{location=\"neu\"}"], 1.0,
        "neu is back"
    );
    let audit = std::fs::read_to_string(rig.dir.join("state/audit.jsonl")).expect("audit");
    assert!(audit.contains("\"action\":\"repair\""), "{audit}");
    signal(&agent, "TERM");
    assert_eq!(wait_exit(&mut agent, Duration::from_secs(10)), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_drills_run_after_the_backup_and_show_in_metrics_and_the_cli() {
    let rig = Rig::start("drill").await;
    let port = rig.write_config_with_metrics(&format!(
        "backup = \"0 0 1 1 *\"\ndrill = \"0 0 1 1 *\"\nrto_target = \"10m\"\nsmoke_pipeline = \"PL_Smoke\"\ndrill_target = {{ subscription = \"{SUB}\", resource_group = \"rg-drills\", factory = \"adf-sales-drill\" }}"
    ));
    let (mut agent, socket) = rig.spawn(&[]);
    wait_for(&socket, "READY=1", Duration::from_secs(15));
    let mut scraped = Default::default();
    until("the caught-up drill", Duration::from_secs(30), async || {
        scraped = samples(&http_get(port, "/metrics"));
        scraped.contains_key("adfdr_last_drill_passed{factory=\"sales\"}")
    })
    .await;
    let f = "{factory=\"sales\"}";
    assert_eq!(
        scraped[&format!("adfdr_last_drill_passed{f}")],
        1.0,
        "{}",
        rig.log()
    );
    assert!(scraped[&format!("adfdr_last_drill_rto_seconds{f}")] > 0.0);
    assert!(scraped[&format!("adfdr_verified_rpo_seconds{f}")] < 60.0);
    assert!(scraped.contains_key(&format!("adfdr_last_drill_timestamp_seconds{f}")));
    // The CLI's drill goes through the agent and prints the agent's report.
    let out = Command::new(adfdr_cli())
        .args([
            "--config",
            rig.config.to_str().expect("utf8"),
            "drill",
            "sales",
        ])
        .env("IDENTITY_ENDPOINT", &rig.emu.urls().managed_identity)
        .env("IDENTITY_HEADER", rig.emu.identity_header())
        .output()
        .expect("adfdr runs");
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("of sales: PASSED"), "{printed}");
    // adfdr status shows the last drill (from the agent).
    let out = Command::new(adfdr_cli())
        .args(["--config", rig.config.to_str().expect("utf8"), "status"])
        .output()
        .expect("adfdr runs");
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        table.contains("LAST DRILL") && table.contains(" PASSED (RTO "),
        "{table}"
    );
    let audit = std::fs::read_to_string(rig.dir.join("state/audit.jsonl")).expect("audit");
    assert!(
        audit.matches("\"action\":\"drill\"").count() >= 2,
        "{audit}"
    );
    signal(&agent, "TERM");
    assert_eq!(wait_exit(&mut agent, Duration::from_secs(15)), Some(0));
}

/// `GET path` with an `Accept` header: (content type, body).
fn http_get_accepting(port: u16, path: &str, accept: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    let media = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (media, body.to_string())
}

/// A query string's value, percent-encoded.
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A tool from the prometheus Debian package (scripts/setup installs it).
fn prometheus_tool(name: &str) -> std::path::PathBuf {
    let path = std::path::PathBuf::from("/usr/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: scripts/setup installs the prometheus package",
        path.display()
    );
    path
}

/// Kills a child process when dropped (a failing test leaves none behind).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The metric names an exposition declares (a histogram's series too).
fn declared(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for l in text.lines() {
        let Some((name, ty)) = l.strip_prefix("# TYPE ").and_then(|r| r.split_once(' ')) else {
            continue;
        };
        names.insert(name.to_string());
        if ty == "histogram" {
            for s in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{s}"));
            }
        }
    }
    names
}

/// Monitoring as an SRE runs it: the classic text format passes promtool's
/// checks, OpenMetrics is served to whoever asks, a real Prometheus scrapes
/// the agent and loads the shipped rules, the rules pass their unit tests,
/// and every metric the rules and the dashboard name is one the agent
/// exports.
#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_scrapes_the_agent_and_the_rules_and_dashboard_name_what_it_exports() {
    let promtool = prometheus_tool("promtool");
    let prometheus = prometheus_tool("prometheus");
    let rig = Rig::start("prometheus").await;
    // Issue 26, item 8: bound to every address, as where the scraper is
    // another machine or pod (scraped here through loopback, which every
    // address includes).
    let port = rig.write_config_with_metrics_on(
        "0.0.0.0",
        // Captured from events whose queue is out of reach (port 1): the
        // capture metrics are exported (queue down, no drift, no poison),
        // and the listings run as the schedules say.
        &format!("backup = \"0 0 1 1 *\"\nverify = \"0 0 1 1 *\"\ndrill = \"0 4 * * 0\"\nrpo_target = \"30m\"\nrto_target = \"1h\"\ndrill_target = {{ subscription = \"{SUB}\", resource_group = \"rg-drills\", factory = \"adf-sales-drill\" }}\ncapture = \"events\"\nqueue = \"https://127.0.0.1:1/adfdrweu/unreachable\""),
    );
    let (mut agent, socket) = rig.spawn(&[]);
    wait_for(&socket, "READY=1", Duration::from_secs(15));
    until(
        "the caught-up backup and drill",
        Duration::from_secs(60),
        async || {
            assert!(
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
                "{}",
                rig.log()
            );
            let scraped = samples(&http_get(port, "/metrics"));
            scraped.get("adfdr_job_runs_total{factory=\"sales\",kind=\"backup\"}") == Some(&1.0)
                && scraped.contains_key("adfdr_verified_rpo_seconds{factory=\"sales\"}")
                && scraped.get("adfdr_capture_queue_up{factory=\"sales\"}") == Some(&0.0)
        },
    )
    .await;

    let (media, classic) = http_get_accepting(port, "/metrics", "text/plain");
    assert_eq!(media, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!classic.contains("# EOF"), "{classic}");
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    {
        use std::io::Write;
        check
            .stdin
            .take()
            .expect("stdin")
            .write_all(classic.as_bytes())
            .expect("write");
    }
    let checked = check.wait_with_output().expect("promtool");
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}\n{classic}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let (media, open) = http_get_accepting(
        port,
        "/metrics",
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    );
    assert!(
        media.starts_with("application/openmetrics-text; version=1.0.0"),
        "{media}"
    );
    assert!(open.ends_with("# EOF\n"), "{open}");
    for name in [
        "adfdr_build_info",
        "adfdr_job_duration_seconds",
        "adfdr_job_last_success_timestamp_seconds",
    ] {
        assert!(
            classic.contains(&format!("# TYPE {name} ")),
            "{name}: {classic}"
        );
    }

    // Every metric the rules and the dashboard use is exported.
    let exported = declared(&classic);
    let root = adfdr_tests::workspace_root();
    for file in [
        "deploy/prometheus/adfdr-rules.yml",
        "deploy/grafana/adfdr.json",
    ] {
        let text = std::fs::read_to_string(root.join(file)).expect("shipped file");
        let mut named = std::collections::BTreeSet::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(at) = text[i..].find("adfdr_") {
            let start = i + at;
            let end = (start..bytes.len())
                .find(|&j| !(bytes[j].is_ascii_lowercase() || bytes[j] == b'_'))
                .unwrap_or(bytes.len());
            let before_ok = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
            if before_ok && !text[start..end].ends_with('_') {
                named.insert(text[start..end].to_string());
            }
            i = end;
        }
        assert!(named.len() >= 5, "{file}: {named:?}");
        let unknown: Vec<_> = named.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics the agent does not export: {unknown:?}"
        );
    }
    let tested = Command::new(&promtool)
        .args(["test", "rules", "adfdr-rules.test.yml"])
        .current_dir(root.join("deploy/prometheus"))
        .output()
        .expect("promtool");
    assert!(
        tested.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );

    // A real Prometheus scrapes the agent with the rules loaded.
    let web = adfdr_tests::free_port();
    let config = rig.dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules}\nscrape_configs:\n  - job_name: adfdr-agent\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n",
            rules = root.join("deploy/prometheus/adfdr-rules.yml").display()
        ),
    )
    .expect("config");
    let log = std::fs::File::create(rig.dir.join("prometheus.log")).expect("log");
    let _prometheus = Killed(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                rig.dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus"),
    );
    let query = |q: &str| -> serde_json::Value {
        let (_, body) = http_get_accepting(
            web,
            &format!("/api/v1/query?query={}", encoded(q)),
            "application/json",
        );
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
    };
    let prom_log = || std::fs::read_to_string(rig.dir.join("prometheus.log")).unwrap_or_default();
    let mut runs = serde_json::Value::Null;
    until(
        "Prometheus has scraped the agent",
        Duration::from_secs(60),
        async || {
            if std::net::TcpStream::connect(("127.0.0.1", web)).is_err() {
                return false;
            }
            runs = query("adfdr_job_runs_total{kind=\"backup\"}");
            runs["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        },
    )
    .await;
    let first = &runs["data"]["result"][0];
    assert_eq!(
        first["metric"]["factory"],
        "sales",
        "{runs}\n{}",
        prom_log()
    );
    assert_eq!(
        first["metric"]["job"], "adfdr-agent",
        "the scrape job's label is its own"
    );
    assert_eq!(first["value"][1], "1", "{runs}");
    // The rules' selector finds the job under kube-prometheus's name too.
    let up = query("up{job=~\"adfdr.*\"}");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    let target = query("adfdr_rpo_target_seconds");
    assert_eq!(target["data"]["result"][0]["value"][1], "1800", "{target}");
    // The counter's metadata agrees with its samples.
    let (_, meta) = http_get_accepting(
        web,
        "/api/v1/targets/metadata?match_target=%7Bjob%3D%22adfdr-agent%22%7D",
        "application/json",
    );
    let meta: serde_json::Value = serde_json::from_str(&meta).expect("metadata");
    let runs_type = meta["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["metric"] == "adfdr_job_runs" || m["metric"] == "adfdr_job_runs_total")
        .map(|m| m["type"].clone());
    assert_eq!(runs_type, Some(serde_json::json!("counter")), "{meta}");
    // Its rules are loaded and evaluate.
    let (_, rules) = http_get_accepting(web, "/api/v1/rules", "application/json");
    let rules: serde_json::Value = serde_json::from_str(&rules).expect("rules");
    let loaded: Vec<_> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["health"].clone(),
            )
        })
        .collect();
    let rules = std::fs::read_to_string(
        adfdr_tests::workspace_root().join("deploy/prometheus/adfdr-rules.yml"),
    )
    .expect("rules");
    let written = rules.matches("- alert: ").count();
    assert!(written >= 14, "{written} rules written");
    assert_eq!(loaded.len(), written, "every rule loaded: {loaded:?}");
    assert!(loaded.iter().all(|(_, h)| h == "ok"), "{loaded:?}");
    // Every query of the dashboard runs, as Grafana sends it with its
    // variables at their defaults; the fleet row counts this agent.
    dashboard_queries_run(&query);
    signal(&agent, "TERM");
    assert_eq!(
        wait_exit(&mut agent, Duration::from_secs(10)),
        Some(0),
        "{}",
        rig.log()
    );
}

/// Runs each expression of deploy/grafana/adfdr.json through `query` with
/// the dashboard's variables as Grafana fills them (`$job` the "All"
/// value, `$factory` the rig's): each must be valid PromQL the server
/// answers, and the fleet row must count the one agent and its factory.
fn dashboard_queries_run(query: &dyn Fn(&str) -> serde_json::Value) {
    let text =
        std::fs::read_to_string(adfdr_tests::workspace_root().join("deploy/grafana/adfdr.json"))
            .expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("json");
    let all = dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .find(|v| v["name"] == "job")
        .and_then(|v| v["allValue"].as_str())
        .expect("a job variable with an All value")
        .to_string();
    let mut ran = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            let filled = expr.replace("$job", &all).replace("$factory", "sales");
            let answer = query(&filled);
            assert_eq!(answer["status"], "success", "{expr}: {answer}");
            let value = |a: &serde_json::Value| a["data"]["result"][0]["value"][1].clone();
            match panel["title"].as_str() {
                Some("Factories") | Some("Agents up") => {
                    assert_eq!(value(&answer), "1", "{expr}: {answer}")
                }
                Some("Last drill failed") => assert_eq!(value(&answer), "0", "{expr}: {answer}"),
                _ => {}
            }
            ran += 1;
        }
    }
    assert!(ran >= 20, "{ran} dashboard queries");
}

/// Logs a shipper and journalctl can use: under systemd each line carries
/// its syslog priority (`journalctl -p err` filters), the audit record is
/// fields of its own (not JSON inside a string), and no field is Rust's
/// Debug text (`Some(…)`).
#[tokio::test(flavor = "multi_thread")]
async fn journald_lines_carry_priorities_and_the_audit_record_as_fields() {
    let rig = Rig::start("journald").await;
    rig.write_config("backup = \"0 0 1 1 *\"");
    let (mut agent, socket) = rig.spawn(&["--log-format", "journald"]);
    wait_for(&socket, "READY=1", Duration::from_secs(15));
    let mut audit = serde_json::Value::Null;
    until(
        "the backup's audit record",
        Duration::from_secs(20),
        async || {
            audit = rig
                .log()
                .lines()
                .filter_map(|l| l.strip_prefix("<6>"))
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["target"] == "audit" && v["action"] == "backup")
                .unwrap_or_default();
            !audit.is_null()
        },
    )
    .await;
    signal(&agent, "TERM");
    assert_eq!(
        wait_exit(&mut agent, Duration::from_secs(10)),
        Some(0),
        "{}",
        rig.log()
    );
    assert_eq!(audit["factory"], "sales", "{audit}");
    assert_eq!(audit["result"], "created", "{audit}");
    assert!(
        audit["snapshot"].as_str().is_some_and(|s| s.len() > 10),
        "{audit}"
    );
    let log = rig.log();
    for line in log.lines() {
        let (priority, rest) = line.split_at(3);
        assert!(
            ["<3>", "<4>", "<6>", "<7>"].contains(&priority),
            "every line has its priority: {line}"
        );
        let v: serde_json::Value =
            serde_json::from_str(rest).unwrap_or_else(|e| panic!("{e}: {line}"));
        let level = v["level"].as_str().unwrap_or_default();
        let want = match level {
            "ERROR" => "<3>",
            "WARN" => "<4>",
            "INFO" => "<6>",
            _ => "<7>",
        };
        assert_eq!(priority, want, "{line}");
        assert!(!rest.contains("Some("), "Debug text in a field: {line}");
    }

    // A refused config is an error-priority line (and exit 2), found by
    // journalctl -p err. JOURNAL_STREAM alone selects the format.
    let out = Command::new(env!("CARGO_BIN_EXE_adfdr-agent"))
        .args([
            "--config",
            rig.dir.join("missing.toml").to_str().expect("utf8"),
        ])
        .env("JOURNAL_STREAM", "8:12345")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let refused = err
        .lines()
        .filter_map(|l| l.strip_prefix("<3>"))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "ERROR");
    assert!(
        refused.is_some_and(|v| v["message"]
            .as_str()
            .is_some_and(|m| m.contains("config refused"))),
        "{err}"
    );
}

/// A webhook receiver on loopback: records each body; answers 503 to the
/// first `fail_first` requests, then 200.
struct Receiver {
    port: u16,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Receiver {
    fn start(fail_first: usize) -> Receiver {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (b, r) = (bodies.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                let n = r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let status = if n < fail_first {
                    "503 Service Unavailable"
                } else {
                    b.lock()
                        .expect("bodies")
                        .push(serde_json::from_slice(&body).unwrap_or_default());
                    "200 OK"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Receiver {
            port,
            bodies,
            requests,
        }
    }

    fn bodies(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().expect("bodies").clone()
    }
}

/// A degraded backup is told to every [[notify]] webhook without holding
/// the job up: a flaky receiver gets it on a retry, one that is down is
/// given up on after its attempts, and the metrics count both; the URLs,
/// being secrets, never reach the log.
#[tokio::test(flavor = "multi_thread")]
async fn a_degraded_backup_is_notified_and_a_receiver_that_is_down_holds_nothing_up() {
    use std::os::unix::fs::PermissionsExt;
    let rig = Rig::start("notify").await;
    let good = Receiver::start(0);
    let flaky = Receiver::start(1);
    let down = adfdr_tests::free_port();
    let mut extra = String::new();
    for (name, port, attempts) in [
        ("team", good.port, 3),
        ("flaky", flaky.port, 3),
        ("down", down, 3),
    ] {
        let file = rig.dir.join(format!("{name}.url"));
        std::fs::write(
            &file,
            format!("http://127.0.0.1:{port}/hook/s3cr3t-{name}\n"),
        )
        .expect("url");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        extra.push_str(&format!(
            "\n[[notify]]\nname = \"{name}\"\nurl_file = \"{}\"\nattempts = {attempts}\n",
            file.display()
        ));
    }
    let port = rig.write_config_with_metrics("backup = \"0 0 1 1 *\"");
    let text = std::fs::read_to_string(&rig.config).expect("config");
    std::fs::write(
        &rig.config,
        format!("{text}\n[backup]\nmin_copies = 1\n{extra}"),
    )
    .expect("config");
    std::fs::remove_dir_all(rig.dir.join("neu")).expect("neu down");
    let (mut agent, socket) = rig.spawn(&[]);
    wait_for(&socket, "READY=1", Duration::from_secs(15));
    until(
        "the degraded backup is done",
        Duration::from_secs(20),
        async || {
            samples(&http_get(port, "/metrics"))
                .get("adfdr_job_runs_total{factory=\"sales\",kind=\"backup\"}")
                == Some(&1.0)
        },
    )
    .await;
    // The job is done while the down receiver is still being retried.
    let scraped = samples(&http_get(port, "/metrics"));
    assert_eq!(
        scraped.get("adfdr_notifications_total{notify=\"down\",result=\"failed\"}"),
        None,
        "still retrying when the job finished: {scraped:?}"
    );
    until(
        "the team and the flaky receiver have it",
        Duration::from_secs(20),
        async || good.bodies().len() == 1 && flaky.bodies().len() == 1,
    )
    .await;
    let notice = &good.bodies()[0];
    assert_eq!(notice["schema"], "adfdr.notice.v1");
    assert_eq!(notice["event"], "backup-degraded");
    assert_eq!(notice["factory"], "sales");
    assert!(
        notice["text"]
            .as_str()
            .is_some_and(|t| t.contains("sales: backup degraded")),
        "{notice}"
    );
    assert_eq!(
        flaky.requests.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "503, then 200"
    );
    let mut metrics = Default::default();
    until(
        "the down receiver is given up on",
        Duration::from_secs(20),
        async || {
            metrics = samples(&http_get(port, "/metrics"));
            metrics.get("adfdr_notifications_total{notify=\"down\",result=\"failed\"}")
                == Some(&1.0)
        },
    )
    .await;
    assert_eq!(
        metrics["adfdr_notifications_total{notify=\"team\",result=\"sent\"}"],
        1.0
    );
    assert_eq!(
        metrics["adfdr_notifications_total{notify=\"flaky\",result=\"sent\"}"],
        1.0
    );
    signal(&agent, "TERM");
    assert_eq!(
        wait_exit(&mut agent, Duration::from_secs(10)),
        Some(0),
        "{}",
        rig.log()
    );
    let log = rig.log();
    assert!(log.contains("notice not delivered"), "{log}");
    assert!(
        !log.contains("s3cr3t"),
        "a webhook URL reached the log: {log}"
    );
}

/// Discovery in the agent: the factories a [[discover]] block finds are
/// backed up under their tag's policy without anyone listing them; one
/// created later is backed up within one interval; one deleted at the
/// source is reported as gone and keeps its snapshots.
#[tokio::test(flavor = "multi_thread")]
async fn the_agent_backs_up_what_discovery_finds_and_keeps_what_is_gone() {
    let rig = Rig::start("discovery").await;
    let fleet = "dddddddd-0000-4000-8000-00000000000d";
    let seed = |name: &str, tags: serde_json::Value| {
        rig.emu
            .seed(
                &format!("{fleet}/rg-data/{name}"),
                &adfdr_tests::workspace_root().join("fixtures/sample-factory"),
            )
            .expect("seed");
        rig.emu.with_world(|w| {
            let key = adf_emulator::state::factory_key(fleet, "rg-data", name);
            w.factories.get_mut(&key).expect("seeded").body["tags"] = tags;
        });
    };
    seed("adf-found-a", serde_json::json!({"adfdr-policy": "gold"}));
    seed("adf-found-b", serde_json::json!({}));
    let port = rig.write_config_with_metrics("backup = \"0 0 1 1 *\"");
    let text = std::fs::read_to_string(&rig.config).expect("config");
    let health = adfdr_tests::free_port();
    let text = text.replacen(
        "[auth]",
        &format!("discover_every = \"2s\"\nhealth = \"127.0.0.1:{health}\"\n[auth]"),
        1,
    );
    let receiver = Receiver::start(0);
    let url = rig.dir.join("team.url");
    std::fs::write(&url, format!("http://127.0.0.1:{}/hook\n", receiver.port)).expect("url");
    std::fs::set_permissions(&url, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    std::fs::write(
        &rig.config,
        format!(
            "{text}\n[[discover]]\nsubscriptions = [\"{fleet}\"]\nexclude_tags = {{ \"adfdr-exclude\" = \"true\" }}\npolicy = \"standard\"\n\n[policy.standard]\nbackup = \"0 0 1 1 *\"\nkeep = {{ last = 5 }}\n\n[policy.gold]\nbackup = \"0 0 1 1 *\"\nrpo_target = \"30m\"\n\n[policy.short]\nbackup = \"0 0 1 1 *\"\nkeep = {{ last = 1 }}\n\n[[notify]]\nname = \"team\"\nurl_file = \"{}\"\n",
            url.display()
        ),
    )
    .expect("config");
    let (mut agent, socket) = rig.spawn(&[]);
    wait_for(&socket, "READY=1", Duration::from_secs(15));
    keep_reading(socket);
    let snapshots = |name: &str| manifests(&rig.dir.join("weu"), name);
    // The probes a kubelet uses, on their own port.
    let live = http_get(health, "/healthz");
    assert!(live.contains(" 200 ") && live.ends_with("ok\n"), "{live}");
    let ready = http_get(health, "/readyz");
    assert!(ready.ends_with("ready\n"), "{ready}");
    assert!(
        !http_get(health, "/metrics").contains("adfdr_"),
        "the health port names no factory"
    );
    until(
        "both found factories are backed up",
        Duration::from_secs(30),
        async || {
            snapshots("adf-found-a") == 1
                && snapshots("adf-found-b") == 1
                && snapshots("sales") == 1
        },
    )
    .await;
    let metrics = samples(&http_get(port, "/metrics"));
    assert_eq!(
        metrics.get("adfdr_rpo_target_seconds{factory=\"adf-found-a\"}"),
        Some(&1800.0),
        "the gold policy (its tag) applies: {metrics:?}"
    );
    assert_eq!(
        metrics.get("adfdr_rpo_target_seconds{factory=\"adf-found-b\"}"),
        None
    );
    assert_eq!(
        metrics.get(&format!(
            "adfdr_factory_info{{factory=\"adf-found-a\",subscription=\"{fleet}\",resource_group=\"rg-data\",arm_name=\"adf-found-a\"}}"
        )),
        Some(&1.0),
        "{metrics:?}"
    );
    // Created later: backed up within an interval.
    seed("adf-found-c", serde_json::json!({}));
    until(
        "the new factory is backed up",
        Duration::from_secs(30),
        async || snapshots("adf-found-c") == 1,
    )
    .await;
    // Two more snapshots of B: the history an impostor will go after.
    for _ in 0..2 {
        let run = run_now(
            &rig.socket(),
            r#"{"factory": "adf-found-b", "job": "backup", "force": true}"#,
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(run["outcome"]["ok"], true, "{run}");
    }
    assert_eq!(snapshots("adf-found-b"), 3);
    // Deleted at the source: reported, its snapshots kept.
    rig.emu.with_world(|w| {
        w.factories.remove(&adf_emulator::state::factory_key(
            fleet,
            "rg-data",
            "adf-found-b",
        ));
    });
    until(
        "the deleted factory is reported gone",
        Duration::from_secs(30),
        async || {
            samples(&http_get(port, "/metrics")).get("adfdr_source_gone{factory=\"adf-found-b\"}")
                == Some(&1.0)
        },
    )
    .await;
    assert_eq!(snapshots("adf-found-b"), 3, "its snapshots are kept");
    taken_names_and_tags_cost_no_history(&rig, fleet, &receiver, &snapshots).await;
    signal(&agent, "TERM");
    assert_eq!(
        wait_exit(&mut agent, Duration::from_secs(10)),
        Some(0),
        "{}",
        rig.log()
    );
    assert!(rig.log().contains("source gone"), "{}", rig.log());
}

/// Issue 25, items 1 and 2, against the running agent of the discovery
/// test. The name of a deleted factory is taken by an impostor in another
/// resource group with a shorter policy by tag: it is backed up under a
/// name of its own (a notice and a log line say so) and its prune never
/// touches the victim's history. A policy tag set on a factory shortens
/// nothing the block's policy keeps; an exclusion tag is reported as one.
async fn taken_names_and_tags_cost_no_history(
    rig: &Rig,
    fleet: &str,
    receiver: &Receiver,
    snapshots: &dyn Fn(&str) -> usize,
) {
    let set_tags = |rg: &str, name: &str, tags: serde_json::Value| {
        rig.emu.with_world(|w| {
            let key = adf_emulator::state::factory_key(fleet, rg, name);
            w.factories.get_mut(&key).expect("there").body["tags"] = tags;
        });
    };
    rig.emu
        .seed(
            &format!("{fleet}/rg-other/adf-found-b"),
            &adfdr_tests::workspace_root().join("fixtures/sample-factory"),
        )
        .expect("seed");
    set_tags(
        "rg-other",
        "adf-found-b",
        serde_json::json!({"adfdr-policy": "short"}),
    );
    let impostor = format!(
        "/subscriptions/{fleet}/resourceGroups/rg-other/providers/Microsoft.DataFactory/factories/adf-found-b"
    );
    let own = format!(
        "adf-found-b-{}",
        adfdr_core::plan::binding::suffix(&impostor)
    );
    until(
        "the impostor is backed up under a name of its own",
        Duration::from_secs(30),
        async || snapshots(&own) == 1,
    )
    .await;
    until("a notice says why", Duration::from_secs(20), async || {
        receiver
            .bodies()
            .iter()
            .any(|b| b["event"] == "source-conflict")
    })
    .await;
    let notice = receiver
        .bodies()
        .into_iter()
        .find(|b| b["event"] == "source-conflict")
        .expect("notice");
    assert_eq!(notice["factory"], own.as_str(), "{notice}");
    assert!(
        notice["summary"].as_str().is_some_and(
            |t| t.contains("holds the history of") && t.contains("/resourcegroups/rg-data/")
        ),
        "{notice}"
    );
    let run = run_now(
        &rig.socket(),
        &format!(r#"{{"factory": "{own}", "job": "prune"}}"#),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(run["outcome"]["ok"], true, "{run}");
    assert_eq!(
        snapshots("adf-found-b"),
        3,
        "the victim's history is intact"
    );
    assert!(rig.log().contains("holds the history of"), "{}", rig.log());

    // A policy tag on C asks for a shorter keep: the block's still holds.
    for _ in 0..3 {
        let run = run_now(
            &rig.socket(),
            r#"{"factory": "adf-found-c", "job": "backup", "force": true}"#,
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(run["outcome"]["ok"], true, "{run}");
    }
    set_tags(
        "rg-data",
        "adf-found-c",
        serde_json::json!({"adfdr-policy": "short"}),
    );
    until("the tag is seen", Duration::from_secs(20), async || {
        let out = rig.adfdr(&rig.config, &["discover", "--plan", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["covered"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["name"] == "adf-found-c" && c["policy"] == "short")
        })
    })
    .await;
    // Two discovery intervals: the agent has applied it too.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let run = run_now(
        &rig.socket(),
        r#"{"factory": "adf-found-c", "job": "prune"}"#,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(run["outcome"]["ok"], true, "{run}");
    let decided = run["outcome"]["report"]["snapshots"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(decided.len(), 4, "{run}");
    assert!(decided.iter().all(|d| d["keep"] == true), "{run}");
    assert!(
        decided[1]["reasons"]
            .to_string()
            .contains("a policy tag does not shorten it"),
        "{run}"
    );
    assert_eq!(snapshots("adf-found-c"), 4);

    // Its owner switches it off by tag: excluded, told, not "gone".
    set_tags(
        "rg-data",
        "adf-found-c",
        serde_json::json!({"adfdr-exclude": "true"}),
    );
    until(
        "a notice says it is excluded",
        Duration::from_secs(20),
        async || {
            receiver
                .bodies()
                .iter()
                .any(|b| b["event"] == "excluded" && b["factory"] == "adf-found-c")
        },
    )
    .await;
    let out = rig.adfdr(&rig.config, &["status", "--fleet", "--json"]);
    let fleet_view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let row = fleet_view["factories"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["factory"] == "adf-found-c").cloned())
        .unwrap_or_else(|| panic!("{fleet_view:#}"));
    assert_eq!(row["excluded_by_tag"], "adfdr-exclude=true", "{row:#}");
    assert_eq!(row["source_gone"], false, "{row:#}");
    let victim = fleet_view["factories"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["factory"] == "adf-found-b").cloned())
        .unwrap_or_else(|| panic!("{fleet_view:#}"));
    assert_eq!(victim["source_gone"], true, "{victim:#}");
}

/// The fleet proof: 60 factories in three subscriptions whose tags choose
/// among three policies, three agents on one store. Every factory is backed
/// up within one schedule period under its tag's policy, shares are fair,
/// no factory is ever held by two agents at once; one agent killed, its
/// factories taken over within the lease time; one factory deleted at the
/// source, reported with its snapshots kept; one created, backed up within
/// one discovery interval.
#[tokio::test(flavor = "multi_thread")]
async fn three_agents_share_a_discovered_fleet_and_survive_the_loss_of_one() {
    use std::collections::{BTreeMap, BTreeSet};
    let rig = Rig::start("fleet").await;
    let subs = [
        "aaaaaaaa-0000-4000-8000-0000000000a1",
        "bbbbbbbb-0000-4000-8000-0000000000b2",
        "cccccccc-0000-4000-8000-0000000000c3",
    ];
    let policies = ["gold", "silver", "standard"];
    let seed = |i: usize| {
        let (sub, name) = (subs[i % 3], format!("adf-fleet-{i:02}"));
        rig.emu
            .seed(
                &format!("{sub}/rg-data/{name}"),
                &adfdr_tests::workspace_root().join("fixtures/sample-factory"),
            )
            .expect("seed");
        // Every third factory untagged: the block's policy (standard).
        if i % 3 != 2 {
            rig.emu.with_world(|w| {
                let key = adf_emulator::state::factory_key(sub, "rg-data", &name);
                w.factories.get_mut(&key).expect("seeded").body["tags"] =
                    serde_json::json!({"adfdr-policy": policies[(i / 3) % 2]});
            });
        }
        name
    };
    let mut names: Vec<String> = (0..60).map(seed).collect();
    let fleet = format!(
        "\n[[discover]]\nsubscriptions = [\"{}\", \"{}\", \"{}\"]\npolicy = \"standard\"\n\n[policy.gold]\nbackup = \"*/20 * * * * *\"\nrpo_target = \"1m\"\n\n[policy.silver]\nbackup = \"0 0 1 1 *\"\nrpo_target = \"2h\"\n\n[policy.standard]\nbackup = \"0 0 1 1 *\"\n",
        subs[0], subs[1], subs[2]
    );
    let mut agents = Vec::new();
    for name in ["a", "b", "c"] {
        let config = rig.dir.join(format!("{name}.toml"));
        let port = adfdr_tests::free_port();
        let text = rig.config_text(
            &rig.dir.join(format!("state-{name}")),
            &rig.dir.join(format!("{name}.sock")),
            &format!("lease_seconds = 15\ndiscover_every = \"5s\"\nmetrics = \"127.0.0.1:{port}\""),
            "",
        );
        std::fs::write(
            &config,
            format!("{text}\n[backup]\nparallel_factories = 8\n{fleet}"),
        )
        .expect("config");
        let (child, socket) = rig.spawn_with(&config, &format!("{name}.log"), &[]);
        wait_for(&socket, "READY=1", Duration::from_secs(15));
        keep_reading(socket);
        agents.push((child, port));
    }
    let scrape = |port: u16| samples(&http_get(port, "/metrics"));
    let owned = |m: &BTreeMap<String, f64>| -> BTreeSet<String> {
        m.iter()
            .filter(|(k, v)| k.starts_with("adfdr_factory_owned{") && **v == 1.0)
            .map(|(k, _)| {
                k.trim_start_matches("adfdr_factory_owned{factory=\"")
                    .trim_end_matches("\"}")
                    .to_string()
            })
            .collect()
    };
    let snapshots = |name: &str| manifests(&rig.dir.join("weu"), name);
    // Held by two agents at two polls in a row: a real overlap, not a
    // handover caught between two scrapes.
    let mut twice: BTreeSet<String> = BTreeSet::new();
    let mut overlaps: Vec<String> = Vec::new();
    let mut check_overlap = |sets: &[BTreeSet<String>]| {
        let mut seen = BTreeMap::<&String, usize>::new();
        for s in sets {
            for f in s {
                *seen.entry(f).or_default() += 1;
            }
        }
        let now: BTreeSet<String> = seen
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(f, _)| f.clone())
            .collect();
        overlaps.extend(now.intersection(&twice).cloned());
        twice = now;
    };
    let total = names.len() + 1; // and the hand-written "sales"
    let mut shares: Vec<BTreeSet<String>> = Vec::new();
    let mut metrics: Vec<BTreeMap<String, f64>> = Vec::new();
    until(
        "the fleet is shared and backed up",
        Duration::from_secs(150),
        async || {
            metrics = agents.iter().map(|(_, p)| scrape(*p)).collect();
            shares = metrics.iter().map(owned).collect();
            check_overlap(&shares);
            let all: BTreeSet<&String> = shares.iter().flatten().collect();
            all.len() == total && names.iter().all(|n| snapshots(n) >= 1)
        },
    )
    .await;
    for s in &shares {
        assert!(
            s.len() <= total.div_ceil(3) + 1,
            "more than a fair share: {:?}",
            shares.iter().map(BTreeSet::len).collect::<Vec<_>>()
        );
        assert!(!s.is_empty(), "an agent with no share");
    }
    // Each factory's policy, from its tag: the owner's rpo_target.
    let target = |name: &str| {
        metrics.iter().find_map(|m| {
            m.get(&format!("adfdr_rpo_target_seconds{{factory=\"{name}\"}}"))
                .copied()
        })
    };
    assert_eq!(target("adf-fleet-00"), Some(60.0), "gold");
    assert_eq!(target("adf-fleet-03"), Some(7200.0), "silver");
    assert_eq!(target("adf-fleet-02"), None, "standard");
    // Gold runs every 20 s: within one period each gold factory has more.
    let gold: Vec<&String> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 2 && (i / 3) % 2 == 0)
        .map(|(_, n)| n)
        .collect();
    until(
        "gold factories are backed up on their schedule",
        Duration::from_secs(60),
        async || {
            gold.iter().all(|n| {
                metrics = agents.iter().map(|(_, p)| scrape(*p)).collect();
                metrics.iter().any(|m| {
                    m.get(&format!(
                        "adfdr_job_runs_total{{factory=\"{n}\",kind=\"backup\"}}"
                    ))
                    .is_some_and(|r| *r >= 2.0)
                })
            })
        },
    )
    .await;

    // One agent dies without releasing anything: the others take its
    // factories once its leases expire (15 s).
    let (mut dead, _) = agents.remove(0);
    let lost = shares.remove(0);
    dead.kill().expect("kill");
    let _ = dead.wait();
    let started = std::time::Instant::now();
    until(
        "the survivors hold everything",
        Duration::from_secs(60),
        async || {
            let sets: Vec<BTreeSet<String>> =
                agents.iter().map(|(_, p)| owned(&scrape(*p))).collect();
            check_overlap(&sets);
            let held: BTreeSet<&String> = sets.iter().flatten().collect();
            lost.iter().all(|f| held.contains(f)) && held.len() == total
        },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "taken over within the lease time and a few ticks"
    );

    // Created at the source: backed up within an interval; deleted: gone,
    // its snapshots kept.
    names.push(seed(60));
    rig.emu.with_world(|w| {
        w.factories.remove(&adf_emulator::state::factory_key(
            subs[1],
            "rg-data",
            "adf-fleet-01",
        ));
    });
    until(
        "the new one backed up, the deleted one reported",
        Duration::from_secs(60),
        async || {
            let gone = agents.iter().any(|(_, p)| {
                scrape(*p).get("adfdr_source_gone{factory=\"adf-fleet-01\"}") == Some(&1.0)
            });
            gone && snapshots("adf-fleet-60") >= 1
        },
    )
    .await;
    assert!(
        snapshots("adf-fleet-01") >= 1,
        "the deleted factory's snapshots are kept"
    );
    assert!(
        overlaps.is_empty(),
        "held by two agents at once: {overlaps:?}"
    );
    for (mut child, _) in agents {
        signal(&child, "TERM");
        assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), Some(0));
    }
}

/// Inside ARM's budget: twelve factories in one subscription, backed up at
/// once by an agent against an emulator that throttles as ARM does (per
/// principal and subscription: 250 reads, then 25 a second), paged small so
/// the backups need far more than the burst. The agent's mirrored budget
/// spreads the reads: every factory is backed up and ARM never answers 429.
#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_in_one_subscription_stays_inside_arms_budget() {
    let rig = Rig::start("budget").await;
    let sub = "eeeeeeee-0000-4000-8000-00000000000e";
    for i in 0..12 {
        rig.emu
            .seed(
                &format!("{sub}/rg-data/adf-budget-{i:02}"),
                &adfdr_tests::workspace_root().join("fixtures/sample-factory"),
            )
            .expect("seed");
    }
    adfdr_tests::admin(
        &rig.emu,
        "settings",
        serde_json::json!({"throttle": "arm", "page_size": 2}),
    )
    .await;
    let port = rig.write_config_with_metrics("backup = \"0 0 1 1 *\"");
    let text = std::fs::read_to_string(&rig.config).expect("config");
    std::fs::write(
        &rig.config,
        format!("{text}\n[backup]\nparallel_factories = 12\n\n[[discover]]\nsubscriptions = [\"{sub}\"]\npolicy = \"p\"\n\n[policy.p]\nbackup = \"0 0 1 1 *\"\n"),
    )
    .expect("config");
    let (mut agent, socket) = rig.spawn(&[]);
    wait_for(&socket, "READY=1", Duration::from_secs(15));
    keep_reading(socket);
    let mut metrics = Default::default();
    until(
        "all twelve are backed up",
        Duration::from_secs(120),
        async || {
            metrics = samples(&http_get(port, "/metrics"));
            (0..12).all(|i| {
                metrics.get(&format!(
                    "adfdr_job_runs_total{{factory=\"adf-budget-{i:02}\",kind=\"backup\"}}"
                )) == Some(&1.0)
            })
        },
    )
    .await;
    let counters = rig.emu.counters();
    signal(&agent, "TERM");
    assert_eq!(
        wait_exit(&mut agent, Duration::from_secs(15)),
        Some(0),
        "{}",
        rig.log()
    );
    let gets = counters.by_op.get("reads").copied().unwrap_or_default();
    assert!(
        gets > 300,
        "the backups needed more than ARM's burst: {counters:?}"
    );
    assert_eq!(
        counters.throttled, 0,
        "ARM never answered 429 ({gets} reads): {counters:?}"
    );
    assert_eq!(
        metrics["adfdr_throttled_responses_total{service=\"arm\"}"],
        0.0
    );
    for i in 0..12 {
        assert_eq!(
            metrics[&format!(
                "adfdr_job_failures_total{{factory=\"adf-budget-{i:02}\",kind=\"backup\"}}"
            )],
            0.0
        );
    }
}

/// Keeps reading an agent's notify socket, as systemd does: a full one
/// blocks the agent's next STATUS= write.
fn keep_reading(socket: UnixDatagram) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let _ = socket.recv(&mut buf);
        }
    });
}

/// Committed snapshots of `factory` in a directory location.
fn manifests(location: &std::path::Path, factory: &str) -> usize {
    std::fs::read_dir(location.join("v1").join(factory).join("snapshots"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".manifest"))
                .count()
        })
        .unwrap_or(0)
}

/// ARM reads the emulator has answered so far (every GET and list, the
/// factory and its surroundings included).
fn arm_reads(emu: &Emulator) -> u64 {
    emu.counters().by_op.get("reads").copied().unwrap_or(0)
}

/// One ARM write as a person or tool makes it, under `correlation` (ADF
/// Studio sends one for every write of a publish).
async fn arm_write(
    emu: &Emulator,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
    who: &str,
    correlation: &str,
) -> u16 {
    let token = emu.mint_token("https://management.azure.com/", who, 3600);
    let version = if path.contains('?') {
        ""
    } else {
        "?api-version=2018-06-01"
    };
    let mut r = adfdr_tests::raw_client()
        .request(method, format!("{}{path}{version}", emu.urls().arm))
        .bearer_auth(token)
        .header("x-ms-correlation-request-id", correlation);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.expect("ARM answers").status().as_u16()
}

async fn arm_get(emu: &Emulator, path: &str) -> (u16, serde_json::Value) {
    let token = emu.mint_token("https://management.azure.com/", "reader", 3600);
    let r = adfdr_tests::raw_client()
        .get(format!("{}{path}?api-version=2018-06-01", emu.urls().arm))
        .bearer_auth(token)
        .send()
        .await
        .expect("ARM answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// The Python SDK's change (tests/python/capture_change.py).
fn python_change(rig: &Rig) -> std::process::Output {
    let urls = rig.emu.urls();
    Command::new(adfdr_tests::workspace_root().join("tools/venv/bin/python"))
        .arg(adfdr_tests::workspace_root().join("tests/python/capture_change.py"))
        .env("ADFDR_ARM", &urls.arm)
        .env("ADFDR_AUTHORITY", &urls.authority)
        .env("ADFDR_TENANT", rig.emu.tenant_id())
        .env("ADFDR_SUB", SUB)
        .env("ADFDR_RG", "rg-prod")
        .env("ADFDR_FACTORY", "adf-sales")
        .env("REQUESTS_CA_BUNDLE", adfdr_tests::ca_pem())
        .env("SSL_CERT_FILE", adfdr_tests::ca_pem())
        .output()
        .expect("python runs")
}

/// Issue 18's proofs, on one rig: a change through Microsoft's Python SDK
/// is sealed from its ARM event (Azurite's queue, fed by the emulator as
/// Event Grid would) with the SDK's identity as author; an idle factory
/// costs no ARM read; a three-write publish under one correlation id is one
/// change set, and `restore --undo` puts exactly those resources back; a
/// queue outage falls back to the listing and capture recovers.
#[tokio::test(flavor = "multi_thread")]
async fn arm_events_are_captured_with_their_author_an_idle_factory_costs_nothing_and_a_publish_is_undone()
 {
    let mut queues = adfdr_tests::AzuriteQueues::start();
    let queue = queues.url("adf-events");
    let rig = Rig::start_with("capture", |c| {
        c.events_queue = Some((queue.parse().expect("url"), Some(adfdr_tests::ca_pem())));
    })
    .await;
    let port = rig.write_config_with_metrics(&format!(
        "capture = \"events\"\nqueue = \"{queue}\"\nbackup = \"* * * * *\"\ncoalesce = \"500ms\""
    ));
    let receiver = Receiver::start(0);
    let url = rig.dir.join("team.url");
    std::fs::write(&url, format!("http://127.0.0.1:{}/hook\n", receiver.port)).expect("url");
    std::fs::set_permissions(&url, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let text = std::fs::read_to_string(&rig.config).expect("config");
    std::fs::write(
        &rig.config,
        format!(
            "{text}\n[[notify]]\nname = \"team\"\nurl_file = \"{}\"\n",
            url.display()
        ),
    )
    .expect("config");
    let cli = |args: &[&str]| rig.adfdr(&rig.config, args);
    // `adfdr init` makes the queue and its poison queue, and writes out
    // the Event Grid subscription to make.
    let out = cli(&["init", "--json"]);
    let init: serde_json::Value = serde_json::from_slice(&out.stdout).expect("init json");
    assert_eq!(init["queues"][0]["ready"], true, "{init}");
    let grid = init["queues"][0]["event_grid"].to_string();
    assert!(
        grid.contains("Microsoft.Resources.Subscriptions")
            && grid.contains("StringIn Microsoft.DataFactory"),
        "{grid}"
    );

    let (_agent, socket) = rig.spawn(&[]);
    wait_for(&socket, "READY=1", Duration::from_secs(15));
    keep_reading(socket);
    let weu = rig.dir.join("weu");
    until("the first listing", Duration::from_secs(30), async || {
        manifests(&weu, "sales") >= 1
    })
    .await;

    // 1. The Python SDK's change, sealed from its event.
    let asked = Instant::now();
    let out = tokio::task::block_in_place(|| python_change(&rig));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    until(
        "the SDK's change sealed",
        Duration::from_secs(30),
        async || manifests(&weu, "sales") >= 2,
    )
    .await;
    eprintln!(
        "the SDK's change was sealed {:?} after it was asked for",
        asked.elapsed()
    );
    let log = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["log", "sales", "--json"];
        all.extend_from_slice(args);
        let out = cli(&all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("log json")
    };
    let history = log(&["--resource", "pipeline:PL_Py"]);
    let change = &history["changes"][0];
    assert_eq!(change["resource"], "pipeline:PL_Py", "{history}");
    assert_eq!(change["effect"], "created");
    assert_eq!(
        change["event"]["author"]["app_id"], "python-sdk-app",
        "{change}"
    );
    assert_eq!(
        change["event"]["operation"],
        "Microsoft.DataFactory/factories/pipelines/write"
    );

    // 2. Idle: the queue is read, ARM is not.
    let before = arm_reads(&rig.emu);
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(
        arm_reads(&rig.emu),
        before,
        "an idle factory costs no ARM read"
    );
    // ...and its state is confirmed current all the same: the queue said
    // nothing was waiting (what `status` and the RPO metric count).
    let out = cli(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    let rpo = status["factories"][0]["rpo_seconds"].as_i64().expect("rpo");
    assert!(rpo < 10, "RPO by events: {status}");

    // 3. A publish: three writes under one correlation id.
    let f = adfdr_tests::factory_path(SUB, "rg-prod", "adf-sales");
    let (_, smoke_before) = arm_get(&rig.emu, &format!("{f}/pipelines/PL_Smoke")).await;
    let (_, py_before) = arm_get(&rig.emu, &format!("{f}/pipelines/PL_Py")).await;
    let mut smoke = smoke_before.clone();
    smoke["properties"]["description"] = "published by mistake".into();
    let wait = |s: u64| serde_json::json!({"properties": {"activities": [{"name": "w", "type": "Wait", "typeProperties": {"waitTimeInSeconds": s}}]}});
    let snapshots = manifests(&weu, "sales");
    for (path, body) in [
        (format!("{f}/pipelines/PL_Smoke"), smoke),
        (format!("{f}/pipelines/PL_Py"), wait(99)),
        (format!("{f}/pipelines/PL_New"), wait(1)),
    ] {
        let status = arm_write(
            &rig.emu,
            reqwest::Method::PUT,
            &path,
            Some(body),
            "studio-user",
            "publish-1",
        )
        .await;
        assert!(status < 300, "{path}: {status}");
    }
    until("the publish sealed", Duration::from_secs(30), async || {
        let sets = log(&["--sets"]);
        sets["change_sets"].as_array().is_some_and(|s| {
            s.iter().any(|c| {
                c["id"] == "publish-1" && c["resources"].as_object().is_some_and(|r| r.len() == 3)
            })
        })
    })
    .await;
    assert!(manifests(&weu, "sales") > snapshots);

    // 4. Undo it: exactly those three come back as they were. The
    // factory's CanNotDelete lock forbids deleting what the publish
    // created, as it does in Azure: refused before anything is written,
    // naming the lock.
    let undo = [
        "restore",
        "--undo",
        "publish-1",
        "--factory",
        "sales",
        "--yes",
        "--json",
    ];
    let out = cli(&undo);
    assert_eq!(out.status.code(), Some(2));
    let refusal = String::from_utf8_lossy(&out.stdout).to_string();
    // Issue 26, item 1: the refusal is the undo's, with the exact command.
    assert!(
        refusal.contains("lock-no-delete")
            && refusal.contains("undoing change set publish-1")
            && refusal.contains("--resource-group rg-prod")
            && refusal.contains("--resource adf-sales")
            && !refusal.contains("--delete-extraneous"),
        "{refusal}"
    );
    let lock = format!(
        "{f}/providers/Microsoft.Authorization/locks/lock-no-delete?api-version=2020-05-01"
    );
    let status = arm_write(
        &rig.emu,
        reqwest::Method::DELETE,
        &lock,
        None,
        "owner",
        "unlock",
    )
    .await;
    assert!(status < 300, "{status}");
    let out = cli(&undo);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, _) = arm_get(&rig.emu, &format!("{f}/pipelines/PL_New")).await;
    assert_eq!(status, 404, "what the publish created is deleted");
    // ...and the lock taken off for it is back: production is locked again.
    let token = rig
        .emu
        .mint_token("https://management.azure.com/", "reader", 3600);
    let lock_status = adfdr_tests::raw_client()
        .get(format!("{}{lock}", rig.emu.urls().arm))
        .bearer_auth(token)
        .send()
        .await
        .expect("ARM answers")
        .status()
        .as_u16();
    assert_eq!(lock_status, 200, "the undo put the factory's lock back");
    // Off again for the rest of this test, which deletes a pipeline.
    let status = arm_write(
        &rig.emu,
        reqwest::Method::DELETE,
        &lock,
        None,
        "owner",
        "unlock-again",
    )
    .await;
    assert!(status < 300, "{status}");
    let (_, smoke_after) = arm_get(&rig.emu, &format!("{f}/pipelines/PL_Smoke")).await;
    assert_eq!(smoke_after["properties"], smoke_before["properties"]);
    let (_, py_after) = arm_get(&rig.emu, &format!("{f}/pipelines/PL_Py")).await;
    assert_eq!(py_after["properties"], py_before["properties"]);
    let (_, others) = arm_get(&rig.emu, &format!("{f}/pipelines")).await;
    assert_eq!(
        others["value"].as_array().map(Vec::len),
        Some(6),
        "the other pipelines are untouched: {others}"
    );

    // 5. The queue goes down: the factory falls back to its listing.
    queues.stop();
    until(
        "capture reported down",
        Duration::from_secs(90),
        async || {
            samples(&http_get(port, "/metrics")).get("adfdr_capture_queue_up{factory=\"sales\"}")
                == Some(&0.0)
        },
    )
    .await;
    let status = arm_write(
        &rig.emu,
        reqwest::Method::PUT,
        &format!("{f}/pipelines/PL_Outage"),
        Some(wait(2)),
        "studio-user",
        "outage-1",
    )
    .await;
    assert!(status < 300);
    until(
        "the fallback listing sees the change",
        Duration::from_secs(90),
        async || {
            log(&["--resource", "pipeline:PL_Outage"])["changes"]
                .as_array()
                .is_some_and(|c| !c.is_empty())
        },
    )
    .await;
    let found = log(&["--resource", "pipeline:PL_Outage"]);
    assert!(
        found["changes"][0]["event"].is_null(),
        "found by the listing, not an event: {found}"
    );
    // 6. Back: capture resumes (the emulator redelivers the events it held).
    queues.restart();
    let out = cli(&["init", "--json"]);
    assert!(
        out.status.success(),
        "init makes the queue again: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    until("capture back up", Duration::from_secs(60), async || {
        samples(&http_get(port, "/metrics")).get("adfdr_capture_queue_up{factory=\"sales\"}")
            == Some(&1.0)
    })
    .await;
    let status = arm_write(
        &rig.emu,
        reqwest::Method::DELETE,
        &format!("{f}/pipelines/PL_Outage"),
        None,
        "studio-user",
        "after-1",
    )
    .await;
    assert!(status < 300);
    until(
        "the delete captured from its event",
        Duration::from_secs(30),
        async || {
            log(&["--resource", "pipeline:PL_Outage"])["changes"]
                .as_array()
                .is_some_and(|c| {
                    c.iter().any(|x| {
                        x["effect"] == "removed" && x["event"]["correlation_id"] == "after-1"
                    })
                })
        },
    )
    .await;
    let metrics = samples(&http_get(port, "/metrics"));
    assert!(
        metrics
            .get("adfdr_capture_snapshots_total{factory=\"sales\"}")
            .copied()
            .unwrap_or(0.0)
            >= 3.0,
        "{metrics:?}"
    );
    assert!(
        metrics
            .get("adfdr_capture_lag_seconds_count{factory=\"sales\"}")
            .copied()
            .unwrap_or(0.0)
            >= 5.0
    );

    // 7. Issue 25, item 5: a location refuses writes. Every window fails:
    // the RPO grows (nothing confirms the state while a change waits), a
    // notice goes out once, no event is set aside as poison; once the
    // location takes writes again the change is sealed.
    let blocked = rig.dir.join("neu/v1/sales/snapshots");
    let away = rig.dir.join("neu-snapshots-away");
    std::fs::rename(&blocked, &away).expect("away");
    std::fs::write(&blocked, b"not a directory").expect("block");
    let status = arm_write(
        &rig.emu,
        reqwest::Method::PUT,
        &format!("{f}/pipelines/PL_Stuck"),
        Some(wait(3)),
        "studio-user",
        "stuck-1",
    )
    .await;
    assert!(status < 300);
    until(
        "the RPO grows while the change waits",
        Duration::from_secs(60),
        async || {
            samples(&http_get(port, "/metrics"))
                .get("adfdr_rpo_seconds{factory=\"sales\"}")
                .is_some_and(|r| *r > 8.0)
        },
    )
    .await;
    until(
        "a notice says capture fails",
        Duration::from_secs(30),
        async || {
            receiver
                .bodies()
                .iter()
                .any(|b| b["event"] == "backup-failed" && b["factory"] == "sales")
        },
    )
    .await;
    let metrics = samples(&http_get(port, "/metrics"));
    assert_eq!(
        metrics
            .iter()
            .filter(|(k, _)| k.starts_with("adfdr_capture_poison_messages_total"))
            .map(|(_, v)| *v)
            .sum::<f64>(),
        0.0,
        "{metrics:?}"
    );
    assert!(
        metrics
            .get("adfdr_job_failures_total{factory=\"sales\",kind=\"capture\"}")
            .is_some_and(|f| *f >= 1.0),
        "{metrics:?}"
    );
    std::fs::remove_file(&blocked).expect("unblock");
    std::fs::rename(&away, &blocked).expect("back");
    until(
        "the waiting change is sealed once the location takes writes",
        Duration::from_secs(90),
        async || {
            log(&["--resource", "pipeline:PL_Stuck"])["changes"]
                .as_array()
                .is_some_and(|c| !c.is_empty())
        },
    )
    .await;
    let notices = receiver
        .bodies()
        .iter()
        .filter(|b| b["event"] == "backup-failed")
        .count();
    assert_eq!(notices, 1, "told once, not once per window");
}

/// A burst: 1,000 pipelines written as fast as ARM takes them, under ten
/// correlation ids. Capture seals them in a bounded number of snapshots,
/// every one with the event that made it (author and change set), and the
/// newest snapshot is the live factory exactly (nothing lost).
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_a_thousand_changes_is_coalesced_and_none_is_lost() {
    use futures::StreamExt;
    let queues = adfdr_tests::AzuriteQueues::start();
    let queue = queues.url("adf-burst");
    let rig = Rig::start_with("burst", |c| {
        c.events_queue = Some((queue.parse().expect("url"), Some(adfdr_tests::ca_pem())));
    })
    .await;
    rig.write_config(&format!(
        "capture = \"events\"\nqueue = \"{queue}\"\nbackup = \"0 0 1 1 *\"\ncoalesce = \"1s\"\nrelist_every = \"2s\""
    ));
    let cli = |args: &[&str]| rig.adfdr(&rig.config, args);
    let init = cli(&["init"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stdout)
    );
    let (_agent, socket) = rig.spawn(&[]);
    wait_for(&socket, "READY=1", Duration::from_secs(15));
    keep_reading(socket);
    let weu = rig.dir.join("weu");
    until("the first listing", Duration::from_secs(30), async || {
        manifests(&weu, "sales") >= 1
    })
    .await;
    let first = manifests(&weu, "sales");
    let f = adfdr_tests::factory_path(SUB, "rg-prod", "adf-sales");
    let emu = &rig.emu;
    let statuses: Vec<u16> = futures::stream::iter(0..1000)
        .map(|i| {
            let path = format!("{f}/pipelines/PL_Burst_{i:04}");
            let body = serde_json::json!({"properties": {"activities": [{"name": "w", "type": "Wait", "typeProperties": {"waitTimeInSeconds": i}}]}});
            async move {
                arm_write(emu, reqwest::Method::PUT, &path, Some(body), "burst-writer", &format!("burst-{}", i / 100)).await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s < 300), "every write taken");
    let recorded = || -> Vec<serde_json::Value> {
        let out = cli(&[
            "log",
            "sales",
            "--resource",
            "pipeline:PL_Burst_*",
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["changes"].as_array().cloned().unwrap_or_default()
    };
    until(
        "all 1,000 recorded with their author",
        Duration::from_secs(180),
        async || {
            let names: std::collections::BTreeSet<String> = recorded()
                .iter()
                .filter(|c| c["effect"] == "created")
                .filter(|c| c["event"]["author"]["object_id"] == "burst-writer")
                .filter_map(|c| c["resource"].as_str().map(str::to_string))
                .collect();
            names.len() == 1000
        },
    )
    .await;
    let changes = recorded();
    // A listing may seal a change before its event comes (a window of more
    // than a hundred reads lists instead); the event then records its
    // author in a snapshot of its own.
    let authored: std::collections::BTreeSet<&str> = changes
        .iter()
        .filter(|c| c["event"]["author"]["object_id"] == "burst-writer")
        .filter_map(|c| c["resource"].as_str())
        .collect();
    assert_eq!(
        authored.len(),
        1000,
        "every change keeps its event's author"
    );
    let sets: std::collections::BTreeSet<&str> = changes
        .iter()
        .filter_map(|c| c["event"]["correlation_id"].as_str())
        .collect();
    assert_eq!(sets.len(), 10, "{sets:?}");
    let sealed = manifests(&weu, "sales") - first;
    eprintln!("1,000 changes sealed in {sealed} snapshots");
    assert!((1..=100).contains(&sealed), "coalesced: {sealed} snapshots");
    // Nothing lost: the newest snapshot is the live factory.
    let out = cli(&["diff", "latest", "--factory", "sales", "--live", "--json"]);
    let diff: serde_json::Value = serde_json::from_slice(&out.stdout).expect("diff json");
    assert_eq!(diff["diff"]["added"], serde_json::json!([]), "{diff}");
    assert_eq!(diff["diff"]["removed"], serde_json::json!([]));
    assert_eq!(diff["diff"]["changed"], serde_json::json!({}));
    // A delete event planted in the queue (anyone who may send to it can)
    // removes nothing the service still has: the resource is read, found,
    // and the snapshot keeps it.
    let planted = serde_json::json!({
        "subject": format!("{f}/pipelines/PL_Burst_0001"),
        "eventType": "Microsoft.Resources.ResourceDeleteSuccess",
        "eventTime": adfdr_core::snapshot::rfc3339(time::OffsetDateTime::now_utc()),
        "id": "planted-delete",
        "data": {"resourceUri": format!("{f}/pipelines/PL_Burst_0001"),
                 "operationName": "Microsoft.DataFactory/factories/pipelines/delete",
                 "correlationId": "planted", "claims": {"appid": "intruder"}},
        "dataVersion": "2", "metadataVersion": "1", "topic": format!("/subscriptions/{SUB}")
    });
    let token = rig
        .emu
        .mint_token("https://storage.azure.com/", "intruder", 3600);
    let text = planted
        .to_string()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let put = adfdr_tests::raw_client()
        .post(format!("{queue}/messages"))
        .bearer_auth(token)
        .header("x-ms-version", "2021-08-06")
        .body(format!(
            "<QueueMessage><MessageText>{text}</MessageText></QueueMessage>"
        ))
        .send()
        .await
        .expect("put");
    assert!(put.status().is_success(), "{}", put.status());
    until(
        "the planted delete read and refuted",
        Duration::from_secs(30),
        async || {
            rig.log()
                .contains("a delete event names a resource the service still has")
        },
    )
    .await;
    let out = cli(&["diff", "latest", "--factory", "sales", "--live", "--json"]);
    let diff: serde_json::Value = serde_json::from_slice(&out.stdout).expect("diff json");
    assert_eq!(diff["diff"]["removed"], serde_json::json!([]), "{diff}");
    assert_eq!(diff["diff"]["added"], serde_json::json!([]), "{diff}");
    drop(queues);
}

/// Two agents read one queue: only the holder of the factory's lease
/// captures (the other hands the messages straight back), and when the
/// holder dies the survivor takes the lease and captures from then on.
#[tokio::test(flavor = "multi_thread")]
async fn only_the_lease_holder_captures_and_the_survivor_takes_over() {
    let queues = adfdr_tests::AzuriteQueues::start();
    let queue = queues.url("adf-ha");
    let rig = Rig::start_with("capture-ha", |c| {
        c.events_queue = Some((queue.parse().expect("url"), Some(adfdr_tests::ca_pem())));
    })
    .await;
    let mut configs = Vec::new();
    for name in ["a", "b"] {
        let config = rig.dir.join(format!("{name}.toml"));
        let text = rig.config_text(
            &rig.dir.join(format!("state-{name}")),
            &rig.dir.join(format!("{name}.sock")),
            "lease_seconds = 15",
            &format!("capture = \"events\"\nqueue = \"{queue}\"\nbackup = \"0 0 1 1 *\"\ncoalesce = \"500ms\""),
        );
        std::fs::write(&config, text).expect("config");
        configs.push(config);
    }
    let cli = |args: &[&str]| rig.adfdr(&configs[1], args);
    let init = cli(&["init"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stdout)
    );
    let (sock_a, sock_b) = (rig.dir.join("a.sock"), rig.dir.join("b.sock"));
    let (mut a, notify_a) = rig.spawn_with(&configs[0], "a.log", &[]);
    wait_for(&notify_a, "READY=1", Duration::from_secs(15));
    keep_reading(notify_a);
    until(
        "agent a holds the lease",
        Duration::from_secs(15),
        async || {
            control(&sock_a, "GET", "/status", None).1["factories"][0]["lease"] == "this agent"
        },
    )
    .await;
    let (_b, notify_b) = rig.spawn_with(&configs[1], "b.log", &[]);
    wait_for(&notify_b, "READY=1", Duration::from_secs(15));
    keep_reading(notify_b);
    until(
        "agent b sees the holder",
        Duration::from_secs(15),
        async || control(&sock_b, "GET", "/status", None).1["factories"][0]["lease"].is_string(),
    )
    .await;
    let weu = rig.dir.join("weu");
    until("the first listing", Duration::from_secs(30), async || {
        manifests(&weu, "sales") >= 1
    })
    .await;
    let f = adfdr_tests::factory_path(SUB, "rg-prod", "adf-sales");
    let wait = serde_json::json!({"properties": {"activities": [{"name": "w", "type": "Wait", "typeProperties": {"waitTimeInSeconds": 1}}]}});
    let captured = |corr: &'static str| {
        let cli = &cli;
        async move || {
            let out = cli(&["log", "sales", "--json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            v["changes"]
                .as_array()
                .is_some_and(|c| c.iter().any(|x| x["event"]["correlation_id"] == corr))
        }
    };
    let captures = |sock: &std::path::Path| {
        control(sock, "GET", "/runs", None)
            .1
            .as_array()
            .map(|r| {
                r.iter()
                    .filter(|r| {
                        r["job"] == "capture" && r["state"] == "done" && r["outcome"]["ok"] == true
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    for i in 0..3 {
        let path = format!("{f}/pipelines/PL_HA_{i}");
        let status = arm_write(
            &rig.emu,
            reqwest::Method::PUT,
            &path,
            Some(wait.clone()),
            "studio-user",
            ["ha-0", "ha-1", "ha-2"][i],
        )
        .await;
        assert!(status < 300);
    }
    until(
        "the holder's captures",
        Duration::from_secs(30),
        captured("ha-2"),
    )
    .await;
    assert!(captures(&sock_a) >= 1, "a captured");
    assert_eq!(
        captures(&sock_b),
        0,
        "b holds no lease and captured nothing"
    );
    // The holder dies; the survivor takes over and captures.
    let _ = a.kill();
    let _ = a.wait();
    until("b takes the lease", Duration::from_secs(60), async || {
        control(&sock_b, "GET", "/status", None).1["factories"][0]["lease"] == "this agent"
    })
    .await;
    let status = arm_write(
        &rig.emu,
        reqwest::Method::PUT,
        &format!("{f}/pipelines/PL_HA_after"),
        Some(wait),
        "studio-user",
        "ha-after",
    )
    .await;
    assert!(status < 300);
    until(
        "the survivor's capture",
        Duration::from_secs(30),
        captured("ha-after"),
    )
    .await;
    assert!(captures(&sock_b) >= 1, "b captures once it holds the lease");
    drop(queues);
}

/// The audit trail's records, parsed.
fn audit_records(rig: &Rig) -> Vec<serde_json::Value> {
    std::fs::read_to_string(rig.dir.join("state/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("an audit record is JSON"))
        .collect()
}

/// Runs `args` and returns the audit records it added.
fn audited(rig: &Rig, args: &[&str], want_code: i32) -> Vec<serde_json::Value> {
    let before = audit_records(rig).len();
    let out = rig.adfdr(&rig.config, args);
    assert_eq!(
        out.status.code(),
        Some(want_code),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    audit_records(rig).split_off(before)
}

/// Issue 27: every privileged act leaves exactly one audit record, whether
/// the CLI runs it in its own process or the agent runs it (core's job
/// runner writes it, not the front end): backup, verify --repair, prune,
/// drill and restore; a refused one (the lease held) and one stopped by
/// SIGINT too, and the interrupted job gives its lease back.
#[tokio::test(flavor = "multi_thread")]
async fn every_privileged_act_leaves_one_audit_record_from_either_front_end() {
    let rig = Rig::start("audit").await;
    rig.write_config(&format!(
        "backup = \"0 0 1 1 *\"\ndrill = \"0 0 1 1 *\"\nsmoke_pipeline = \"PL_Smoke\"\nkeep = {{ last = 1 }}\ndrill_target = {{ subscription = \"{SUB}\", resource_group = \"rg-drills\", factory = \"adf-sales-drill\" }}"
    ));
    let to = format!("{SUB}/rg-dr/adf-sales-dr");
    let acts: [(&[&str], i32, &str); 6] = [
        (&["backup", "--force"], 0, "backup"),
        (&["backup", "--force"], 0, "backup"),
        (&["verify", "--repair"], 0, "repair"),
        (&["prune", "--all"], 0, "prune"),
        (&["drill", "sales"], 0, "drill"),
        (
            &[
                "restore",
                "latest",
                "--factory",
                "sales",
                "--to",
                &to,
                "--yes",
            ],
            3,
            "restore",
        ),
    ];
    for (args, code, action) in &acts {
        let added = audited(&rig, args, *code);
        assert_eq!(added.len(), 1, "in-process {args:?}: {added:#?}");
        assert_eq!(added[0]["action"], *action, "{:#}", added[0]);
        assert_eq!(added[0]["by"], "adfdr", "{:#}", added[0]);
        assert!(added[0]["user"].is_string() && added[0]["host"].is_string());
    }

    // SIGINT in the middle of an in-process backup: one "interrupted"
    // record, exit 130, and the lease given back (the next backup runs).
    adfdr_tests::admin(&rig.emu, "settings", serde_json::json!({"latency_ms": 300})).await;
    let before = audit_records(&rig).len();
    let child = Command::new(adfdr_cli())
        .args([
            "--config",
            rig.config.to_str().expect("utf8"),
            "backup",
            "--force",
        ])
        .env("IDENTITY_ENDPOINT", &rig.emu.urls().managed_identity)
        .env("IDENTITY_HEADER", rig.emu.identity_header())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("adfdr runs");
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, "INT");
    let out = child.wait_with_output().expect("exits");
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added = audit_records(&rig).split_off(before);
    assert_eq!(added.len(), 1, "{added:#?}");
    assert_eq!(added[0]["action"], "interrupted", "{:#}", added[0]);
    assert_eq!(added[0]["job"], "backup", "{:#}", added[0]);
    adfdr_tests::admin(&rig.emu, "settings", serde_json::json!({"latency_ms": 0})).await;
    let added = audited(&rig, &["backup", "--force"], 0);
    assert_eq!(added.len(), 1, "the lease was given back: {added:#?}");

    // The same acts through the agent: one record each, by the agent.
    let (mut agent, socket) = rig.spawn(&[]);
    wait_for(&socket, "READY=1", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(1));
    for (args, code, action) in &acts[..5] {
        let added = audited(&rig, args, *code);
        assert_eq!(added.len(), 1, "through the agent {args:?}: {added:#?}");
        assert_eq!(added[0]["action"], *action, "{:#}", added[0]);
        assert_eq!(added[0]["by"], "adfdr-agent", "{:#}", added[0]);
    }
    signal(&agent, "TERM");
    assert_eq!(wait_exit(&mut agent, Duration::from_secs(15)), Some(0));

    // Refused: another holds the lease. Recorded as failed, with why.
    let replicas = Replicas::new(
        ["weu", "neu"]
            .iter()
            .map(|n| Location {
                name: n.to_string(),
                store: std::sync::Arc::new(FsStore::new(rig.dir.join(n)))
                    as std::sync::Arc<dyn BlobStore>,
                read_only: false,
            })
            .collect(),
    );
    let held = adfdr_core::ops::lease::exclusive(&replicas, "sales", 60, "test")
        .await
        .expect("the lease");
    let added = audited(&rig, &["backup", "--force"], 1);
    assert_eq!(added.len(), 1, "{added:#?}");
    assert_eq!(added[0]["action"], "failed", "{:#}", added[0]);
    assert_eq!(added[0]["job"], "backup", "{:#}", added[0]);
    held.release().await;
}
