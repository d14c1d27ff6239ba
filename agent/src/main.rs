//! adfdr-agent: the scheduled backup, verification, retention and drill service.
//! The scheduler, control socket and systemd integration arrive with the agent
//! issue; until then the binary refuses to pretend.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("adfdr-agent: not implemented yet; use `adfdr demo` to see what exists today");
    ExitCode::from(1)
}
