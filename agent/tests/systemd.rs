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
    let out = analyze(&["verify", unit]);
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
