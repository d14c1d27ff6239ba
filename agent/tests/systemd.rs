//! The shipped unit file: `systemd-analyze verify` accepts it and
//! `systemd-analyze security --offline=true` rates it 2.0 or lower.

use std::path::Path;
use std::process::Command;

fn unit_with_this_binary(dir: &Path) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("systemd/adfdr-agent.service")).expect("unit");
    // verify checks that ExecStart exists: point it at the binary under test.
    let text = text.replace("/usr/bin/adfdr-agent", env!("CARGO_BIN_EXE_adfdr-agent"));
    std::fs::create_dir_all(dir).expect("dir");
    let path = dir.join("adfdr-agent.service");
    std::fs::write(&path, text).expect("unit");
    path
}

fn analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze runs (Debian package systemd)")
}

#[test]
fn the_unit_file_verifies_and_is_hardened() {
    let dir = std::env::temp_dir().join(format!("adfdr-unit-{}", std::process::id()));
    let unit = unit_with_this_binary(&dir);
    let unit = unit.to_str().expect("utf8");
    // (Its man: link is checked where the package is: the package test.)
    let out = analyze(&["verify", "--man=no", unit]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = analyze(&["security", "--offline=true", "--no-pager", unit]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for adfdr-agent.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no score in:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
    eprintln!("systemd-analyze security: {score}");
}

/// The control socket is reachable by the adfdr-ctl group under
/// DynamicUser= and PrivateUsers=: the group is the service's own (mapped in
/// its user namespace, owner of /run/adfdr 0750), and a bad config (exit 2)
/// is not restarted in a loop.
#[test]
fn the_unit_lets_adfdr_ctl_reach_the_socket_and_does_not_loop_on_a_bad_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("systemd/adfdr-agent.service")).expect("unit");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for want in [
        "DynamicUser=yes",
        "Group=adfdr-ctl",
        "RuntimeDirectoryMode=0750",
        "RestartPreventExitStatus=2",
        "PrivateUsers=yes",
    ] {
        assert!(lines.contains(&want), "{want} missing from the unit");
    }
    assert!(
        !lines.iter().any(|l| l.starts_with("SupplementaryGroups=")),
        "a supplementary group is not mapped under PrivateUsers="
    );
    let sysusers = std::fs::read_to_string(root.join("systemd/adfdr.sysusers")).expect("sysusers");
    assert!(
        sysusers.lines().any(|l| l.trim() == "g adfdr-ctl -"),
        "{sysusers}"
    );
}

/// The Debian package holds what an operator needs where the unit and the
/// docs say it is: both binaries, the unit, sysusers and tmpfiles, man
/// pages (the unit's Documentation=), completions, docs, rules and the
/// dashboard; and the binaries in it run.
#[test]
fn the_debian_package_installs_what_the_unit_and_docs_point_to() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let agent = Path::new(env!("CARGO_BIN_EXE_adfdr-agent"));
    let bins = agent.parent().expect("target dir");
    if !bins.join("adfdr").exists() {
        let built = Command::new(env!("CARGO"))
            .args(["build", "-p", "adfdr"])
            .current_dir(&root)
            .status()
            .expect("cargo");
        assert!(built.success(), "building adfdr for the package");
    }
    let dir = std::env::temp_dir().join(format!("adfdr-deb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(root.join("scripts/package-deb"))
        .args([
            "--bins",
            bins.to_str().expect("utf8"),
            "--out",
            dir.to_str().expect("utf8"),
            "--fast",
        ])
        .output()
        .expect("package-deb runs");
    assert!(
        out.status.success(),
        "package-deb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let info = Command::new("dpkg-deb")
        .args(["--field", &deb, "Package", "Version"])
        .output()
        .expect("dpkg-deb");
    let info = String::from_utf8_lossy(&info.stdout).to_string();
    assert!(
        info.contains("Package: adfdr")
            && info.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))),
        "{info}"
    );
    let tree = dir.join("tree");
    let x = Command::new("dpkg-deb")
        .args(["-x", &deb, tree.to_str().expect("utf8")])
        .status()
        .expect("dpkg-deb -x");
    assert!(x.success());
    for path in [
        "usr/bin/adfdr",
        "usr/bin/adfdr-agent",
        "usr/lib/systemd/system/adfdr-agent.service",
        "usr/lib/sysusers.d/adfdr.conf",
        "usr/lib/tmpfiles.d/adfdr.conf",
        "usr/share/man/man1/adfdr.1.gz",
        "usr/share/man/man1/adfdr-restore.1.gz",
        "usr/share/bash-completion/completions/adfdr",
        "usr/share/zsh/vendor-completions/_adfdr",
        "usr/share/fish/vendor_completions.d/adfdr.fish",
        "usr/share/doc/adfdr/adfdr.toml.example",
        "usr/share/adfdr/deploy/prometheus/adfdr-rules.yml",
        "usr/share/adfdr/deploy/prometheus/render-rules",
        "usr/share/adfdr/deploy/grafana/adfdr.json",
    ] {
        assert!(tree.join(path).exists(), "the package lacks /{path}");
    }
    // Every Documentation= link of the packaged unit resolves in the package.
    let unit = std::fs::read_to_string(tree.join("usr/lib/systemd/system/adfdr-agent.service"))
        .expect("unit");
    let links: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Documentation="))
        .flat_map(str::split_whitespace)
        .collect();
    assert!(links.len() >= 2, "{links:?}");
    for link in links {
        let path = if let Some(file) = link.strip_prefix("file:") {
            file.trim_start_matches('/').to_string()
        } else if let Some(page) = link.strip_prefix("man:") {
            let (name, section) = page
                .trim_end_matches(')')
                .split_once('(')
                .expect("name(section)");
            format!("usr/share/man/man{section}/{name}.{section}.gz")
        } else {
            panic!("unexpected Documentation= link {link}");
        };
        assert!(
            tree.join(&path).exists(),
            "Documentation={link}: /{path} is not in the package"
        );
    }
    let page = Command::new("zcat")
        .arg(tree.join("usr/share/man/man1/adfdr-restore.1.gz"))
        .output()
        .expect("zcat");
    assert!(String::from_utf8_lossy(&page.stdout).contains("Exit codes"));
    for bin in ["adfdr", "adfdr-agent"] {
        let v = Command::new(tree.join("usr/bin").join(bin))
            .arg("--version")
            .output()
            .expect("runs");
        assert!(
            String::from_utf8_lossy(&v.stdout).contains(env!("CARGO_PKG_VERSION")),
            "{bin}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Containerfile builds both binaries and runs the agent as a non-root
/// user from a small runtime stage. (No container engine runs here, so this
/// checks the file against the workspace, not a built image.)
#[test]
fn the_containerfile_ships_both_binaries_as_a_non_root_user() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text =
        std::fs::read_to_string(root.join("packaging/Containerfile")).expect("Containerfile");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    let stages: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("FROM "))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    // Issue 25, item 10: bases pinned by digest, not by a moving tag.
    for s in &stages {
        let digest = lines[*s]
            .split_whitespace()
            .nth(1)
            .and_then(|image| image.split_once("@sha256:"))
            .map(|(_, d)| d);
        assert!(
            digest.is_some_and(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit())),
            "{}",
            lines[*s]
        );
    }
    let runtime = &lines[stages[1]..];
    assert!(runtime[0].contains("distroless"), "{}", runtime[0]);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cargo build --release --locked -p adfdr -p adfdr-agent"))
    );
    let copy = runtime
        .iter()
        .find(|l| l.contains("/usr/bin/"))
        .expect("the binaries are copied");
    assert!(
        copy.contains("release/adfdr ") && copy.contains("release/adfdr-agent"),
        "{copy}"
    );
    let user = runtime
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        uid != "0" && uid != "root" && uid.parse::<u32>().is_ok_and(|u| u >= 1000),
        "{user}"
    );
    assert!(
        runtime
            .iter()
            .any(|l| l.contains("ENTRYPOINT [\"/usr/bin/adfdr-agent\"]"))
    );
    // The paths it names exist in the workspace.
    for path in ["systemd/adfdr.toml.example", "deploy"] {
        assert!(root.join(path).exists(), "{path}");
    }
}

/// deploy/k8s/ passes kubernetes-validate --strict (a field the API does
/// not know fails it, shown by a broken copy), and its ConfigMap holds a
/// config adfdr accepts, with the probes' port where agent.health listens.
#[test]
fn the_kubernetes_manifests_validate_and_carry_a_valid_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let validate = root.join("tools/venv/bin/kubernetes-validate");
    assert!(
        validate.exists(),
        "{} is missing: scripts/setup installs it",
        validate.display()
    );
    let manifest = root.join("deploy/k8s/adfdr.yaml");
    let out = Command::new(&validate)
        .args(["--strict"])
        .arg(&manifest)
        .output()
        .expect("runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for kind in [
        "statefulset",
        "serviceaccount",
        "configmap",
        "poddisruptionbudget",
        "networkpolicy",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind}/")),
            "{kind}: {text}"
        );
    }
    let yaml = std::fs::read_to_string(&manifest).expect("manifest");
    let dir = std::env::temp_dir().join(format!("adfdr-k8s-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let broken = dir.join("broken.yaml");
    std::fs::write(
        &broken,
        yaml.replace("podManagementPolicy:", "podManagmentPolicy:"),
    )
    .expect("write");
    let out = Command::new(&validate)
        .args(["--strict"])
        .arg(&broken)
        .output()
        .expect("runs");
    assert!(
        !out.status.success(),
        "a misspelt field must fail the check"
    );
    // The ConfigMap's adfdr.toml, as the agent reads it.
    let start = yaml
        .find("  adfdr.toml: |\n")
        .expect("the config in the ConfigMap")
        + "  adfdr.toml: |\n".len();
    let config: String = yaml[start..]
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let parsed = adfdr_core::config::Config::parse(&config, Path::new("configmap/adfdr.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{config}"));
    assert_eq!(parsed.agent.health.as_deref(), Some("0.0.0.0:8080"));
    assert!(yaml.contains("containerPort: 8080") && yaml.contains("path: /readyz"));
    assert!(yaml.contains("readOnlyRootFilesystem: true") && yaml.contains("runAsNonRoot: true"));
    // Issue 25, item 10: no API token in the pod, state that outlives it,
    // ingress from Prometheus only, no 443 into private ranges or IMDS.
    assert!(
        !yaml.contains("automountServiceAccountToken: true"),
        "{yaml}"
    );
    assert!(
        yaml.contains("volumeClaimTemplates:") && !yaml.contains("name: state\n          emptyDir")
    );
    let policy = &yaml[yaml.find("kind: NetworkPolicy").expect("a NetworkPolicy")..];
    assert!(
        policy.contains("app.kubernetes.io/name: prometheus") && !policy.contains("port: 8080")
    );
    assert!(policy.contains("169.254.0.0/16") && policy.contains("10.0.0.0/8"));
    // The memory limit is derived from the backup limits (50 MiB idle and
    // 1.3 bytes per byte of definitions per backup at once).
    let limit_mib = 512.0;
    let derived = 50.0
        + parsed.backup.parallel_factories as f64 * 1.3 * parsed.backup.max_definitions_mib as f64;
    assert!(
        yaml.contains("memory: 512Mi") && derived <= limit_mib,
        "{derived}"
    );
    let metrics: std::net::SocketAddr = parsed
        .agent
        .metrics
        .as_deref()
        .expect("metrics")
        .parse()
        .expect("addr");
    assert!(policy.contains(&format!("port: {}", metrics.port())));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 26, item 8: the kube-prometheus objects (deploy/k8s/
/// adfdr-monitoring.yaml) pass the Prometheus Operator's CRD schemas,
/// strictly (a misspelt field fails, shown by a broken copy); its
/// ServiceMonitor selects the Service adfdr.yaml labels, on the port the
/// NetworkPolicy opens; its PrometheusRule is exactly what render-rules
/// writes from the shipped rules; any job selector renders rules promtool
/// accepts; and every alert's runbook link names a heading of
/// docs/OPERATIONS.md.
#[test]
fn the_kube_prometheus_objects_validate_and_carry_the_shipped_rules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("tools/venv/bin/python");
    assert!(python.exists(), "scripts/setup installs tools/venv");
    let manifest = root.join("deploy/k8s/adfdr-monitoring.yaml");
    let validate = |path: &Path| {
        let out = Command::new(&python)
            .arg(root.join("tools/dev/validate-crd.py"))
            .arg("--crd")
            .arg(root.join("fixtures/crds/monitoring.coreos.com_servicemonitors.yaml"))
            .arg("--crd")
            .arg(root.join("fixtures/crds/monitoring.coreos.com_prometheusrules.yaml"))
            .arg(path)
            .output()
            .expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, text) = validate(&manifest);
    assert!(ok, "{text}");
    for kind in ["servicemonitor/adfdr-agent", "prometheusrule/adfdr"] {
        assert!(
            text.contains(&format!("passed for resource {kind}")),
            "{text}"
        );
    }
    let yaml = std::fs::read_to_string(&manifest).expect("manifest");
    let dir = std::env::temp_dir().join(format!("adfdr-kp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for (from, to) in [
        ("scrapeTimeout:", "scrapeTimout:"),
        ("          for: 5m", "          for: 5 minutes"),
    ] {
        let broken = dir.join("broken.yaml");
        std::fs::write(&broken, yaml.replacen(from, to, 1)).expect("write");
        let (ok, text) = validate(&broken);
        assert!(!ok, "{to} must fail the check: {text}");
    }

    // What it selects is there: the Service's label, the metrics port the
    // NetworkPolicy admits Prometheus to.
    let app = std::fs::read_to_string(root.join("deploy/k8s/adfdr.yaml")).expect("manifest");
    let service = &app[app.find("kind: Service\n").expect("a Service")..];
    let service = &service[..service.find("---").unwrap_or(service.len())];
    assert!(
        service.contains("  labels:\n    app.kubernetes.io/name: adfdr-agent")
            && service.contains("- name: metrics\n      port: 9464"),
        "{service}"
    );
    assert!(yaml.contains("- port: metrics"), "{yaml}");

    // The PrometheusRule is render-rules --kube's output, byte for byte.
    let render = |args: &[&str]| {
        let out = Command::new("python3")
            .arg(root.join("deploy/prometheus/render-rules"))
            .args(args)
            .output()
            .expect("render-rules runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    };
    let rule = &yaml[yaml
        .find("# adfdr's alert rules for kube-prometheus")
        .expect("the rules")..];
    assert_eq!(
        rule,
        render(&["--kube"]),
        "re-render: deploy/prometheus/render-rules --kube"
    );

    // Another job selector and runbook address: rules promtool accepts,
    // with them in.
    let rules = dir.join("rules.yml");
    std::fs::write(
        &rules,
        render(&[
            "--job-selector",
            "job=\"adfdr-prod\",cluster=\"weu\"",
            "--runbook-base",
            "https://wiki.example/adfdr",
        ]),
    )
    .expect("write");
    let out = Command::new("/usr/bin/promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool (scripts/setup installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let rendered = std::fs::read_to_string(&rules).expect("rules");
    assert!(
        rendered.contains("up{job=\"adfdr-prod\",cluster=\"weu\"} == 0"),
        "{rendered}"
    );
    assert!(!rendered.contains("example.invalid"), "{rendered}");

    // Every alert links a runbook heading that exists.
    let shipped =
        std::fs::read_to_string(root.join("deploy/prometheus/adfdr-rules.yml")).expect("rules");
    let operations = std::fs::read_to_string(root.join("docs/OPERATIONS.md")).expect("docs");
    let anchors: Vec<String> = operations
        .lines()
        .filter(|l| l.starts_with("##"))
        .map(|l| l.trim_start_matches('#').trim())
        .map(|h| {
            h.to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect();
    let alerts: Vec<&str> = shipped
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    let links: Vec<&str> = shipped
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook_url: "))
        .collect();
    assert_eq!(alerts.len(), links.len(), "every alert has a runbook_url");
    for (alert, link) in alerts.iter().zip(&links) {
        let anchor = link
            .split_once("OPERATIONS.md#")
            .expect("into OPERATIONS.md")
            .1;
        assert_eq!(anchor, alert.to_lowercase(), "{alert}");
        assert!(
            anchors.iter().any(|a| a == anchor),
            "docs/OPERATIONS.md has no #### {alert}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
