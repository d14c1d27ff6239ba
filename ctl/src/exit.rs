//! Exit codes of the CLI contract (design.md section 4). Only the CLI
//! decides them: core answers outcomes and error kinds, and
//! `output::exit_code` maps a kind to one of these.

pub const OK: i32 = 0;
pub const FAILED: i32 = 1;
pub const USAGE: i32 = 2;
pub const DEGRADED: i32 = 3;
pub const CHECK_FAILED: i32 = 4;
/// The snapshots are there, but none of the keys given opens them.
pub const NO_KEY: i32 = 5;
/// Interrupted (Ctrl-C, SIGTERM): 128 + the signal, as shells report it.
pub const INTERRUPTED: i32 = 130;
/// Whoever read stdout went away (`adfdr show … | head`): 128 + SIGPIPE,
/// as a program the signal stopped reports it, without a panic message.
pub const BROKEN_PIPE: i32 = 141;
