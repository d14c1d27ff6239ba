//! The scheduler's state and decisions, pure: which job of which factory
//! starts when. Per-factory cron jobs (backup, verify, prune, drill), one job
//! per factory at a time, requests from the control socket before scheduled
//! runs, jobs only for factories whose lease this agent holds (checks that
//! change nothing excepted), a run missed while the host was down (or while
//! another agent held the factory) caught up once, stable jitter. Time comes
//! in as data; the daemon (daemon.rs) does the IO and hands each event to one
//! method here.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use adfdr_core::config::Config;
use adfdr_core::ops::contract::{Job, JobKind, Trigger};
use adfdr_core::plan::schedule::{Schedule, jitter};
use chrono::{DateTime, Utc};

/// One scheduled job of one factory.
#[derive(Clone, Debug)]
pub struct Scheduled {
    pub factory: String,
    pub kind: JobKind,
    pub schedule: Schedule,
    pub next: DateTime<Utc>,
    pub running: bool,
    /// When it may run (capture = "events" has two listings).
    pub gate: Gate,
}

/// When a scheduled job may run: always, or by the state of the factory's
/// event capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    Always,
    /// The reconciliation listing: while events flow.
    EventsFlowing,
    /// The backup schedule of an event-captured factory: only while its
    /// queue cannot be read (the fallback).
    EventsDown,
}

impl Scheduled {
    pub fn key(&self) -> String {
        match self.gate {
            Gate::EventsFlowing => format!("{}/reconcile", self.factory),
            _ => format!("{}/{}", self.factory, self.kind.name()),
        }
    }

    /// The job it starts.
    fn job(&self) -> Job {
        match (self.kind, self.gate) {
            (JobKind::Backup, Gate::EventsFlowing) => Job::Backup {
                force: false,
                reconcile: true,
            },
            (kind, _) => Job::scheduled(kind),
        }
    }

    /// The next run after `t`, pushed by this job's stable jitter (at most a
    /// tenth of the period, and 30 s).
    pub fn next_after(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let Some(at) = self.schedule.next_after(t) else {
            return t + chrono::Duration::days(3650);
        };
        let max = self
            .schedule
            .period_after(t)
            .map_or(Duration::ZERO, |p| (p / 10).min(Duration::from_secs(30)));
        at + chrono::Duration::from_std(jitter(&self.key(), max)).unwrap_or_default()
    }
}

/// When each job of each factory last started, as the catalog remembers.
pub type LastRun<'a> = &'a dyn Fn(&str, JobKind) -> Option<DateTime<Utc>>;

/// The jobs a config asks for, with their first run: now when a run was
/// missed (caught up once), else the next scheduled time.
pub fn plan(
    config: &Config,
    last: LastRun<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<Scheduled>, String> {
    let mut out = Vec::new();
    for f in config.factories.iter().map(|f| f.get_ref()) {
        let events = f.event_queue().is_some();
        let reconcile = events.then(|| f.reconcile_schedule().clone());
        for (kind, expr, gate) in [
            (
                JobKind::Backup,
                &f.backup,
                if events {
                    Gate::EventsDown
                } else {
                    Gate::Always
                },
            ),
            (JobKind::Backup, &reconcile, Gate::EventsFlowing),
            (JobKind::Verify, &f.verify, Gate::Always),
            (JobKind::Prune, &f.prune, Gate::Always),
            (JobKind::Drill, &f.drill, Gate::Always),
        ] {
            // Parsed when the config was read: here only put in its zone.
            let Some(cron) = expr else { continue };
            let schedule = cron.in_zone(f.zone());
            let mut job = Scheduled {
                factory: f.name.clone(),
                kind,
                schedule,
                next: now,
                running: false,
                gate,
            };
            let previous = last(&f.name, kind);
            if job.schedule.missed(previous, now) {
                tracing::info!(factory = %f.name, job = kind.name(), last_run = %previous.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into()), "a scheduled run was missed: running it now");
            } else {
                job.next = job.next_after(now);
            }
            out.push(job);
        }
    }
    Ok(out)
}

/// A job someone asked for through the control socket.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub id: String,
    pub factory: String,
    pub job: Job,
}

/// A job to start now. `id` is the request's run id; a scheduled start gets
/// its id when it is registered.
#[derive(Clone, Debug, PartialEq)]
pub struct Start {
    pub factory: String,
    pub job: Job,
    pub trigger: Trigger,
    pub id: Option<String>,
}

/// A request that cannot run here, with why.
#[derive(Clone, Debug, PartialEq)]
pub struct Refused {
    pub id: String,
    pub why: String,
}

#[derive(Debug, Default)]
pub struct Scheduler {
    jobs: Vec<Scheduled>,
    /// Factories whose lease this agent holds.
    owned: BTreeSet<String>,
    /// Factories with a job running (at most one each).
    busy: BTreeSet<String>,
    /// Requests waiting for their factory to be free (or its lease known).
    pending: VecDeque<Request>,
    /// Event-captured factories whose queue cannot be read now.
    events_down: BTreeSet<String>,
}

impl Scheduler {
    pub fn new(jobs: Vec<Scheduled>) -> Scheduler {
        Scheduler {
            jobs,
            ..Default::default()
        }
    }

    pub fn jobs(&self) -> &[Scheduled] {
        &self.jobs
    }

    pub fn busy(&self) -> &BTreeSet<String> {
        &self.busy
    }

    pub fn request(&mut self, r: Request) {
        self.pending.push_back(r);
    }

    /// Whether this agent holds `factory`'s lease.
    pub fn owns(&self, factory: &str) -> bool {
        self.owned.contains(factory)
    }

    /// `factory`'s event queue can (or cannot) be read: its fallback
    /// listing stops (or starts), its reconciliation the other way round.
    /// True when that changed the factory's state.
    pub fn events(&mut self, factory: &str, flowing: bool) -> bool {
        if flowing {
            self.events_down.remove(factory)
        } else {
            self.events_down.insert(factory.to_string())
        }
    }

    fn open(&self, job: &Scheduled) -> bool {
        match job.gate {
            Gate::Always => true,
            Gate::EventsFlowing => !self.events_down.contains(&job.factory),
            Gate::EventsDown => self.events_down.contains(&job.factory),
        }
    }

    /// What starts at `now`: requests first, then scheduled jobs that are
    /// due. `holders` names who holds the lease of factories this agent
    /// does not own (absent: not known yet, so a request waits).
    pub fn due(
        &mut self,
        now: DateTime<Utc>,
        holders: &BTreeMap<String, String>,
    ) -> (Vec<Start>, Vec<Refused>) {
        let (mut starts, refused) = self.take_requests(holders);
        let open: Vec<bool> = self.jobs.iter().map(|j| self.open(j)).collect();
        for (job, open) in self.jobs.iter_mut().zip(open) {
            // A closed gate keeps the job due: it runs as soon as the gate
            // opens (a listing at once when the queue goes down, a
            // reconciliation at once when it comes back).
            if job.running
                || job.next > now
                || !open
                || self.busy.contains(&job.factory)
                || !self.owned.contains(&job.factory)
            {
                continue;
            }
            job.running = true;
            self.busy.insert(job.factory.clone());
            starts.push(Start {
                factory: job.factory.clone(),
                job: job.job(),
                trigger: Trigger::Schedule,
                id: None,
            });
        }
        (starts, refused)
    }

    fn take_requests(&mut self, holders: &BTreeMap<String, String>) -> (Vec<Start>, Vec<Refused>) {
        let mut starts = Vec::new();
        let mut refused = Vec::new();
        let mut waiting = VecDeque::new();
        while let Some(r) = self.pending.pop_front() {
            if !self.owned.contains(&r.factory) && !r.job.changes_nothing() {
                match holders.get(&r.factory) {
                    None => waiting.push_back(r),
                    Some(who) => refused.push(Refused {
                        id: r.id,
                        why: format!(
                            "factory '{}' is run by {who} (it holds the factory's lease); ask there, or wait for its lease to expire",
                            r.factory
                        ),
                    }),
                }
                continue;
            }
            if self.busy.contains(&r.factory) {
                waiting.push_back(r);
                continue;
            }
            self.busy.insert(r.factory.clone());
            let kind = r.job.kind();
            let reconcile = matches!(
                r.job,
                Job::Backup {
                    reconcile: true,
                    ..
                }
            );
            if let Some(job) = self.jobs.iter_mut().find(|j| {
                j.factory == r.factory
                    && j.kind == kind
                    && (j.gate == Gate::EventsFlowing) == reconcile
            }) {
                job.running = true;
            }
            starts.push(Start {
                factory: r.factory,
                job: r.job,
                trigger: Trigger::Request,
                id: Some(r.id),
            });
        }
        self.pending = waiting;
        (starts, refused)
    }

    /// When the next scheduled job this agent may start is due.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.jobs
            .iter()
            .filter(|j| {
                !j.running
                    && self.open(j)
                    && !self.busy.contains(&j.factory)
                    && self.owned.contains(&j.factory)
            })
            .map(|j| j.next)
            .min()
    }

    /// A job of `factory` finished at `now`.
    pub fn finished(&mut self, factory: &str, kind: JobKind, now: DateTime<Utc>) {
        self.busy.remove(factory);
        if let Some(job) = self
            .jobs
            .iter_mut()
            .find(|j| j.factory == factory && j.kind == kind && j.running)
        {
            job.running = false;
            job.next = job.next_after(now);
        }
        // A listing is a listing: another schedule of the same kind that
        // is due (an event-captured factory's fallback after its
        // reconciliation) need not run again right after it.
        for job in self
            .jobs
            .iter_mut()
            .filter(|j| j.factory == factory && j.kind == kind && !j.running && j.next <= now)
        {
            job.next = job.next_after(now);
        }
    }

    /// This agent took `factory`'s lease: run once what its last holder may
    /// have missed.
    pub fn gained(&mut self, factory: &str, now: DateTime<Utc>, last: LastRun<'_>) {
        self.owned.insert(factory.to_string());
        for job in self
            .jobs
            .iter_mut()
            .filter(|j| j.factory == factory && !j.running)
        {
            if job.schedule.missed(last(factory, job.kind), now) {
                tracing::info!(%factory, job = job.kind.name(), "a scheduled run may have been missed: running it now");
                job.next = now;
            }
        }
    }

    /// This agent lost `factory`'s lease; its running job (if any) must be
    /// abandoned: true when one was running.
    pub fn lost(&mut self, factory: &str, now: DateTime<Utc>) -> bool {
        self.owned.remove(factory);
        let was_busy = self.busy.remove(factory);
        for job in self
            .jobs
            .iter_mut()
            .filter(|j| j.factory == factory && j.running)
        {
            job.running = false;
            job.next = job.next_after(now);
        }
        was_busy
    }

    /// A reloaded config: its jobs, keeping the next run and the running
    /// state of every job whose schedule did not change.
    pub fn reload(&mut self, jobs: Vec<Scheduled>) {
        let old: BTreeMap<(String, JobKind, String), (DateTime<Utc>, bool)> = self
            .jobs
            .iter()
            .map(|j| {
                (
                    (j.factory.clone(), j.kind, j.schedule.expr.clone()),
                    (j.next, j.running),
                )
            })
            .collect();
        self.jobs = jobs
            .into_iter()
            .map(|mut j| {
                if let Some((next, running)) =
                    old.get(&(j.factory.clone(), j.kind, j.schedule.expr.clone()))
                {
                    j.next = *next;
                    j.running = *running;
                }
                j
            })
            .collect();
    }

    /// One line for systemd's STATUS=.
    pub fn status_line(&self) -> String {
        let running: Vec<String> = self
            .jobs
            .iter()
            .filter(|j| j.running)
            .map(Scheduled::key)
            .collect();
        let next = self
            .jobs
            .iter()
            .filter(|j| !j.running)
            .min_by_key(|j| j.next);
        format!(
            "{} jobs; running: {}; next: {}",
            self.jobs.len(),
            if running.is_empty() {
                "none".into()
            } else {
                running.join(", ")
            },
            next.map_or("none".into(), |j| format!(
                "{} at {}",
                j.key(),
                j.next.format("%Y-%m-%dT%H:%M:%SZ")
            ))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adfdr_core::ops::contract::VerifyOptions;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn job(factory: &str, kind: JobKind, expr: &str, next: &str) -> Scheduled {
        Scheduled {
            factory: factory.into(),
            kind,
            schedule: Schedule::parse(expr, None).expect("cron"),
            next: at(next),
            running: false,
            gate: Gate::Always,
        }
    }

    /// capture = "events": the backup schedule runs only while the queue
    /// is down (at once when it goes down, if due), the reconciliation
    /// only while it is up, and each starts the job its gate names.
    #[test]
    fn an_event_captured_factory_lists_on_backup_only_while_its_queue_is_down() {
        let gated = |kind, expr: &str, gate| Scheduled {
            gate,
            ..job("a", kind, expr, "2026-12-01T10:00:00Z")
        };
        let mut s = Scheduler::new(vec![
            gated(JobKind::Backup, "*/15 * * * *", Gate::EventsDown),
            Scheduled {
                next: at("2026-12-02T03:00:00Z"),
                ..gated(JobKind::Backup, "0 3 * * *", Gate::EventsFlowing)
            },
        ]);
        s.gained("a", at("2026-12-01T09:59:00Z"), &|_, _| {
            Some(at("2026-12-01T09:59:00Z"))
        });
        let (starts, _) = s.due(at("2026-12-01T10:30:00Z"), &no_holders());
        assert!(starts.is_empty(), "events flow: no listing");
        assert_eq!(s.next_wake(), Some(at("2026-12-02T03:00:00Z")));
        s.events("a", false);
        let (starts, _) = s.due(at("2026-12-01T10:30:00Z"), &no_holders());
        assert_eq!(
            names(&starts),
            ["a/backup"],
            "down: the due listing at once"
        );
        assert_eq!(
            starts[0].job,
            Job::Backup {
                force: false,
                reconcile: false
            }
        );
        s.finished("a", JobKind::Backup, at("2026-12-01T10:31:00Z"));
        s.events("a", true);
        let (starts, _) = s.due(at("2026-12-02T03:00:10Z"), &no_holders());
        assert_eq!(
            starts[0].job,
            Job::Backup {
                force: false,
                reconcile: true
            }
        );
        s.finished("a", JobKind::Backup, at("2026-12-02T03:01:00Z"));
        let reconcile = s
            .jobs()
            .iter()
            .find(|j| j.key() == "a/reconcile")
            .expect("job");
        assert!(reconcile.next > at("2026-12-03T02:59:00Z") && !reconcile.running);
    }

    fn names(starts: &[Start]) -> Vec<String> {
        starts
            .iter()
            .map(|s| format!("{}/{}", s.factory, s.job.kind().name()))
            .collect()
    }

    fn no_holders() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// A table of (now, owned factories, expected starts): one job per
    /// factory at a time, only for owned factories, only when due.
    #[test]
    fn due_starts_what_is_due_for_owned_factories_one_job_each() {
        let mut s = Scheduler::new(vec![
            job("a", JobKind::Backup, "*/15 * * * *", "2026-12-01T10:00:00Z"),
            job("a", JobKind::Verify, "0 4 * * *", "2026-12-01T10:00:00Z"),
            job("b", JobKind::Backup, "*/15 * * * *", "2026-12-01T10:15:00Z"),
            job("c", JobKind::Backup, "*/15 * * * *", "2026-12-01T10:00:00Z"),
        ]);
        let last: LastRun<'_> = &|_, _| Some(at("2026-12-01T09:59:00Z"));
        s.gained("a", at("2026-12-01T09:59:30Z"), last);
        s.gained("b", at("2026-12-01T09:59:30Z"), last);
        for (now, want) in [
            ("2026-12-01T09:59:59Z", vec![]),
            // a: backup starts, its verify waits for it; c is not owned.
            ("2026-12-01T10:00:00Z", vec!["a/backup"]),
            ("2026-12-01T10:05:00Z", vec![]),
        ] {
            let (starts, refused) = s.due(at(now), &no_holders());
            assert_eq!(names(&starts), want, "at {now}");
            assert!(refused.is_empty());
        }
        s.finished("a", JobKind::Backup, at("2026-12-01T10:06:00Z"));
        let (starts, _) = s.due(at("2026-12-01T10:06:00Z"), &no_holders());
        assert_eq!(names(&starts), ["a/verify"], "the verify that waited");
        let (starts, _) = s.due(at("2026-12-01T10:15:05Z"), &no_holders());
        assert_eq!(names(&starts), ["b/backup"], "a is busy with its verify");
        let next = s
            .jobs()
            .iter()
            .find(|j| j.key() == "a/backup")
            .expect("job")
            .next;
        assert!(
            next >= at("2026-12-01T10:15:00Z") && next <= at("2026-12-01T10:15:30Z"),
            "{next}"
        );
    }

    #[test]
    fn requests_go_first_wait_for_a_busy_factory_and_are_refused_elsewhere() {
        let mut s = Scheduler::new(vec![job(
            "a",
            JobKind::Backup,
            "0 3 * * *",
            "2026-12-01T03:00:00Z",
        )]);
        let none: LastRun<'_> = &|_, _| Some(at("2026-12-01T03:00:00Z"));
        s.gained("a", at("2026-12-01T03:00:01Z"), none);
        let req = |id: &str, factory: &str, job: Job| Request {
            id: id.into(),
            factory: factory.into(),
            job,
        };
        s.request(req(
            "r1",
            "a",
            Job::Backup {
                force: true,
                reconcile: false,
            },
        ));
        s.request(req("r2", "a", Job::Prune { dry_run: false }));
        // b is held by another agent: a change is refused, a check is not.
        s.request(req(
            "r3",
            "b",
            Job::Backup {
                force: false,
                reconcile: false,
            },
        ));
        s.request(req("r4", "b", Job::Verify(VerifyOptions::default())));
        // c: its holder is not known yet: the request waits.
        s.request(req(
            "r5",
            "c",
            Job::Backup {
                force: false,
                reconcile: false,
            },
        ));
        let holders = BTreeMap::from([("b".to_string(), "the agent on host h2".to_string())]);
        let (starts, refused) = s.due(at("2026-12-01T03:00:02Z"), &holders);
        assert_eq!(names(&starts), ["a/backup", "b/verify"]);
        assert_eq!(starts[0].id.as_deref(), Some("r1"));
        assert_eq!(starts[0].trigger, Trigger::Request);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].id, "r3");
        assert!(
            refused[0].why.contains("the agent on host h2"),
            "{:?}",
            refused[0]
        );
        s.finished("a", JobKind::Backup, at("2026-12-01T03:01:00Z"));
        let (starts, refused) = s.due(at("2026-12-01T03:01:00Z"), &holders);
        assert_eq!(names(&starts), ["a/prune"], "r2 waited for a");
        assert!(refused.is_empty(), "r5 still waits for c's holder");
        let holders = BTreeMap::from([("c".to_string(), "another process".to_string())]);
        let (_, refused) = s.due(at("2026-12-01T03:02:00Z"), &holders);
        assert_eq!(
            refused.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["r5"]
        );
    }

    #[test]
    fn a_lease_gained_catches_up_and_a_lease_lost_abandons() {
        let mut s = Scheduler::new(vec![job(
            "a",
            JobKind::Backup,
            "0 * * * *",
            "2026-12-01T11:00:00Z",
        )]);
        // Its last run was two hours ago: one run was missed.
        let last: LastRun<'_> = &|_, _| Some(at("2026-12-01T08:00:00Z"));
        s.gained("a", at("2026-12-01T10:30:00Z"), last);
        assert_eq!(s.next_wake(), Some(at("2026-12-01T10:30:00Z")));
        let (starts, _) = s.due(at("2026-12-01T10:30:00Z"), &no_holders());
        assert_eq!(names(&starts), ["a/backup"]);
        assert!(s.lost("a", at("2026-12-01T10:31:00Z")), "a job was running");
        assert!(s.busy().is_empty());
        assert_eq!(s.next_wake(), None, "not owned: nothing to wake for");
        let (starts, _) = s.due(at("2026-12-01T11:00:00Z"), &no_holders());
        assert!(starts.is_empty(), "never runs a factory it does not hold");
    }

    #[test]
    fn a_reload_keeps_the_state_of_unchanged_jobs() {
        let mut s = Scheduler::new(vec![
            job("a", JobKind::Backup, "0 * * * *", "2026-12-01T11:00:00Z"),
            job("a", JobKind::Verify, "0 4 * * *", "2026-12-02T04:00:00Z"),
        ]);
        s.reload(vec![
            job("a", JobKind::Backup, "0 * * * *", "2026-12-01T10:07:00Z"),
            job("a", JobKind::Verify, "0 5 * * *", "2026-12-02T05:00:00Z"),
        ]);
        let next: Vec<String> = s.jobs().iter().map(|j| j.next.to_rfc3339()).collect();
        assert_eq!(
            next,
            ["2026-12-01T11:00:00+00:00", "2026-12-02T05:00:00+00:00"]
        );
        assert!(
            s.status_line()
                .starts_with("2 jobs; running: none; next: a/backup at 2026-12-01T11:00:00Z")
        );
    }
}
