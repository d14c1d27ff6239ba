//! What every command's `--help` ends with: examples, and the exit codes it
//! can return (the contract in exit.rs; README and docs/OPERATIONS.md).

pub const BACKUP: &str = "\
Examples:
  adfdr backup                      every configured factory, now
  adfdr backup sales --force        a new snapshot even if nothing changed
  adfdr backup --json | jq .factories

Exit codes:
  0  every factory backed up (or unchanged since its last snapshot)
  1  a backup failed (the message names the factory and why)
  2  bad usage or config
  3  degraded: a location missed its copy (queued for `adfdr verify --repair`)";

pub const SNAPSHOTS: &str = "\
Examples:
  adfdr snapshots
  adfdr snapshots sales --location neu
  adfdr snapshots --store https://stneu.blob.core.windows.net/adfdr --key ./bg.key
  adfdr snapshots --store /mnt/backup          no key: what the store holds, from the headers

Exit codes:
  0  listed from every location
  1  failed
  2  bad usage or config
  3  a location could not be listed (the rest are shown)
  4  an object that is not a snapshot was found (see `adfdr verify`)
  5  snapshots are there, but none of the keys given opens them (it says which keys do)";

pub const SHOW: &str = "\
Examples:
  adfdr show latest --factory sales
  adfdr show 20261201T030000Z-1a2b3c4d --json
  adfdr show latest --factory sales --store file:///mnt/backup --key ./bg.key

Exit codes:
  0  shown
  1  failed (no location holds a readable copy)
  2  bad usage, config, or an unknown snapshot";

pub const DIFF: &str = "\
Examples:
  adfdr diff 20261130T030000Z-aaaa1111 20261201T030000Z-bbbb2222
  adfdr diff latest --factory sales --live      what changed since the backup

Exit codes:
  0  compared (differences are output, not failure)
  1  failed
  2  bad usage, config, or an unknown snapshot";

pub const EXPORT: &str = "\
Examples:
  adfdr export latest --factory sales --out ./sales-git
  adfdr export latest --factory sales --out ./sales --store file:///mnt/backup --key ./bg.key

Exit codes:
  0  written (ADF git layout, surroundings/ beside it; files 0600)
  1  failed
  2  bad usage, config, an unknown snapshot, or a non-empty --out";

pub const VERIFY: &str = "\
Examples:
  adfdr verify                         every copy in every location
  adfdr verify --read-data             also decrypt and check every resource
  adfdr verify --repair                copy what is missing from a copy that checks out
  adfdr verify --store https://stneu.blob.core.windows.net/adfdr --key ./bg.key

Exit codes:
  0  every copy is intact
  1  failed
  2  bad usage or config
  3  copies are missing (repairable)
  4  damage found (a copy does not check out, or a foreign object)";

pub const STATUS: &str = "\
Examples:
  adfdr status
  adfdr status --json | jq '.factories[] | {factory, rpo_seconds}'
  adfdr status --fleet                 every factory, configured, discovered or stored

Exit codes:
  0  every factory within its targets
  1  failed
  2  bad usage or config
  4  a factory is over its RPO target or its last job failed";

pub const PRUNE: &str = "\
Examples:
  adfdr prune --dry-run                each decision, and what would be freed
  adfdr prune

Exit codes:
  0  pruned as the keep policy says
  1  failed
  2  bad usage or config
  3  a delete failed in a location (it is tried again next time)
  4  a location holds objects that are not snapshots (left alone)";

pub const RESTORE: &str = "\
Examples:
  adfdr restore latest --factory sales --to SUB/rg-dr/adf-sales-dr --dry-run
  adfdr restore latest --factory sales --to SUB/rg-dr/adf-sales-dr --yes
  adfdr restore 20261201T030000Z-1a2b3c4d --to SUB/rg-dr/adf-sales-dr --include 'pipeline:PL_*' -y
  adfdr restore --factory sales --at 2026-12-01T09:30:00Z --to SUB/rg-dr/adf-sales-dr --dry-run
  adfdr restore --factory sales --undo 6f1c…e2 --dry-run     put back what one change set touched
  adfdr restore latest --factory sales --to SUB/rg-dr/adf-sales-dr \\
      --store https://stneu.blob.core.windows.net/adfdr --key ./bg.key --yes

Exit codes:
  0  restored and read back as planned (or --dry-run: the plan shown; --plan is the same)
  1  failed
  2  bad usage or config, or nothing applied (no --yes off a terminal, the prompt declined)
  3  restored, with skips or access to grant by hand (the report says what)
  4  restored, but the read-back differs from the snapshot
  130  interrupted (Ctrl-C, SIGTERM): says how far it got; the same command finishes it";

pub const RESTORES: &str = "\
Examples:
  adfdr restores                       every restore this host ran, newest first
  adfdr restores sales --last 5
  adfdr restores --incident            the ones run in incident mode (no config)

Exit codes:
  0  listed
  1  the audit trail could not be read
  2  bad usage or config";

pub const DRILL: &str = "\
Examples:
  adfdr drill sales                    restore into the scratch factory, prove it, measure
  adfdr drill --json

Exit codes:
  0  the drill passed (RTO and RPO within target)
  1  failed to run
  2  bad usage or config
  4  the drill failed or missed a target (the report says which check)";

pub const DRILLS: &str = "\
Examples:
  adfdr drills sales
  adfdr drills --html drills.html       a page with RTO and RPO against targets over time

Exit codes:
  0  listed
  1  failed
  2  bad usage or config";

pub const LOG: &str = "\
Examples:
  adfdr log sales                                   every recorded change, who made it, its snapshot
  adfdr log sales --resource 'pipeline:PL_*' --since 2026-12-01T00:00:00Z
  adfdr log sales --sets                            one line per change set (a publish is one)
  adfdr restore --undo CHANGE_SET --factory sales --dry-run

Exit codes:
  0  listed
  1  failed
  2  bad usage or config, or an unknown factory
  3  a snapshot's manifest did not open (its changes are missing from the list)";

pub const KEY: &str = "\
Examples:
  adfdr key generate --out /etc/adfdr/credentials/breakglass.key
  adfdr key list                       each key's fingerprint, and which snapshots it opens
  adfdr key list --store /mnt/backup --key ./bg.key

Exit codes:
  0  done
  1  failed
  2  bad usage (the file exists, the directory is not private)
  3  list: a location could not be listed, or a manifest did not read
  5  list: snapshots that no key at hand opens (it says which keys do)";

pub const CONFIG: &str = "\
Examples:
  adfdr config check --offline         the file, key files, each job's next five runs
  adfdr config check                   and probe every identity, factory, location and key

Exit codes:
  0  valid, and every probe answered
  1  a probe failed (the message names the role that is missing)
  2  the config is invalid";

pub const CATALOG: &str = "\
Examples:
  adfdr catalog rebuild

Exit codes:
  0  rebuilt from every location
  1  failed
  2  bad usage or config
  3  a location could not be listed";

pub const COMPLETIONS: &str = "\
Examples:
  adfdr completions bash > /etc/bash_completion.d/adfdr
  adfdr completions zsh > \"${fpath[1]}/_adfdr\"
  adfdr completions fish > ~/.config/fish/completions/adfdr.fish

Exit codes:
  0  written to stdout
  2  bad usage";

pub const MAN: &str = "\
Examples:
  adfdr man --out /usr/share/man/man1

Exit codes:
  0  adfdr.1 and one page per command written
  1  the directory could not be written
  2  bad usage";

pub const INIT: &str = "\
Examples:
  adfdr init                           make each location, prove it can write, read, delete

Exit codes:
  0  every location is ready
  1  a location could not be made or used (the message says what is missing)
  2  bad usage or config";

pub const DEMO: &str = "\
Examples:
  adfdr demo                           in a new directory under the current one
  adfdr demo --dir /tmp/adfdr-demo

Exit codes:
  0  the demo ran end to end
  1  a step failed";

pub const TOP: &str = "\
Examples:
  adfdr config check                   is the config right, and may the identity do its job?
  adfdr backup && adfdr snapshots
  adfdr restore latest --factory sales --to SUB/rg-dr/adf-sales-dr --dry-run

Exit codes (every command): 0 ok · 1 failed · 2 bad usage or config, or a restore that applied
nothing · 3 done but degraded · 4 a check failed · 5 snapshots there that no key given opens ·
130 interrupted (Ctrl-C, SIGTERM) · 141 the reader of stdout went away (| head).
`adfdr COMMAND --help` lists a command's own.";

pub const DISCOVER: &str = "\
Examples:
  adfdr discover --dry-run                what is covered, by which policy, what is left out and why
  adfdr discover --dry-run --json | jq '.covered[] | {name, policy}'

Exit codes:
  0  discovered (left-out and gone factories are output, not failure)
  1  the query failed (the message says what the identity lacks)
  2  bad usage or config (no [[discover]] block)";
