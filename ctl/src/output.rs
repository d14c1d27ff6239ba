//! Output helpers: JSON on stdout for `--json`, aligned plain text otherwise.

use adfdr_core::config::Config;
use adfdr_core::ops::OpError;

/// The CLI contract's exit code for an error of each kind (design.md section
/// 4): a usage or config problem, or a name that does not exist, is 2;
/// everything else that stops a command is 1.
pub fn exit_code(e: &OpError) -> i32 {
    use crate::exit;
    use adfdr_core::ops::Kind;
    match e.kind() {
        Kind::Usage | Kind::NotFound => exit::USAGE,
        Kind::Interrupted => exit::INTERRUPTED,
        Kind::Denied
        | Kind::Unreachable
        | Kind::Damaged
        | Kind::Conflict
        | Kind::Throttled
        | Kind::Failed => exit::FAILED,
    }
}

pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Prints rows with columns padded to their widest cell.
/// `text` safe to print to a terminal: control characters (an escape
/// sequence in a name, an author's UPN or a correlation id from an event
/// anyone can send) and bidirectional overrides shown as `\u{..}`.
pub fn clean(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if needs_escape(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn needs_escape(c: char) -> bool {
    adfdr_core::model::names::unprintable(c)
}

/// Progress off a terminal: a line at most every `every` (a journal or a
/// CI log does not need one per write), and the last one always.
pub struct Periodic {
    every: std::time::Duration,
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Periodic {
    pub fn new(every: std::time::Duration) -> Periodic {
        Periodic {
            every,
            last: std::sync::Mutex::new(None),
        }
    }

    pub fn say(&self, line: &str) {
        let mut last = self.last.lock().expect("periodic");
        if last.is_none_or(|t| t.elapsed() >= self.every) {
            eprintln!("{line}");
            *last = Some(std::time::Instant::now());
        }
    }
}

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) or
/// SIGTERM. A job or restore racing it ends where it is, recorded.
pub async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Some(_) = async { match term.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => {}
    }
}

/// `1200/3000 writes · 40/s · eta 45.0s`: where a long job is, off a
/// terminal (indicatif's bar says the same on one).
pub fn progress_line(done: u64, total: u64, elapsed: std::time::Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if done == 0 || secs < 0.001 {
        return format!("{done}/{total} writes");
    }
    let rate = done as f64 / secs;
    let left = total.saturating_sub(done) as f64 / rate;
    format!(
        "{done}/{total} writes · {rate:.0}/s · eta {}",
        adfdr_core::plan::drill::human(left.ceil())
    )
}

/// Prints a table; every cell is `clean`ed first.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let rows = &rows;
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// The configured factories a command applies to: the ones named, or every
/// one with `all`, or the only one. Unknown names are usage errors.
pub fn select_factories(
    config: &Config,
    names: &[String],
    all: bool,
) -> Result<Vec<String>, OpError> {
    let configured = config.factory_names();
    if all || (names.is_empty() && configured.len() == 1) {
        if configured.is_empty() {
            return Err(OpError::usage(format!(
                "config {} has no [[factory]]",
                config.path.display()
            )));
        }
        return Ok(configured);
    }
    if names.is_empty() {
        return Err(OpError::usage(format!(
            "name a factory or pass --all; configured: {}",
            configured.join(", ")
        )));
    }
    let known = if config.discover.is_empty() {
        "configured"
    } else {
        "configured or discovered"
    };
    names
        .iter()
        .map(|n| {
            config.factory(n).map(|f| f.name.clone()).ok_or_else(|| {
                OpError::usage(format!(
                    "unknown factory '{n}'; {known}: {}",
                    if configured.is_empty() {
                        "none".to_string()
                    } else {
                        configured.join(", ")
                    }
                ))
            })
        })
        .collect()
}

/// Resolves an optional factory name against the config (for filters).
pub fn factory_filter(config: &Config, name: Option<&str>) -> Result<Option<String>, OpError> {
    match name {
        None => Ok(None),
        Some(n) => select_factories(config, &[n.to_string()], false).map(|mut v| v.pop()),
    }
}

/// A spinner on stderr when it is a terminal (and output is for humans);
/// nothing otherwise, so logs and pipes get plain lines only.
pub fn spinner(json: bool, message: String) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if json || quiet() || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `-q`: nothing but errors (no progress, no warnings; main sends stdout to
/// /dev/null unless --json asked for it).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// `adfdr: warning: …` on stderr, unless `-q`.
#[macro_export]
macro_rules! warning {
    ($($arg:tt)*) => {
        if !$crate::output::quiet() {
            eprintln!("adfdr: warning: {}", $crate::output::clean(&format!($($arg)*)));
        }
    };
}

/// HTML-escaped text (drill reports, the history page).
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 26, item 9: off a terminal a long restore says where it is,
    /// how fast it goes and what is left.
    #[test]
    fn progress_lines_give_rate_and_eta() {
        let d = std::time::Duration::from_secs;
        assert_eq!(progress_line(0, 3000, d(0)), "0/3000 writes");
        assert_eq!(
            progress_line(1200, 3000, d(30)),
            "1200/3000 writes · 40/s · eta 45.0s"
        );
        assert_eq!(
            progress_line(300, 3000, d(60)),
            "300/3000 writes · 5/s · eta 9m"
        );
    }

    /// Issue 25, item 10: an escape sequence in an author's UPN or a
    /// correlation id (anyone who may send to the queue writes those) is
    /// shown, not played, by the terminal.
    #[test]
    fn control_characters_are_shown_not_played() {
        assert_eq!(clean("alice@contoso.com"), "alice@contoso.com");
        assert_eq!(clean("a\u{1b}]0;pwned\u{7}b"), "a\\u{1b}]0;pwned\\u{7}b");
        assert_eq!(clean("x\u{202e}y"), "x\\u{202e}y");
    }
}
