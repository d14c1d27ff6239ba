//! Jobs a command runs: through the agent when one runs on this host (it
//! holds the catalog and the factories' leases), else in this process
//! through core's job runner (ops::job): under the factory's lease, as a
//! person (user and host on the audit record), stopped by Ctrl-C or
//! SIGTERM with its record. Either way core builds the verdict, the
//! summary and the one audit record; the commands only render.

use adfdr_core::ops::contract::{Job, JobOutcome};
use adfdr_core::ops::job::{self, Actor, Observer};
use adfdr_core::ops::restore::Said;
use adfdr_core::ops::{Engine, OpError};

/// Where a job ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Through {
    Agent,
    Process,
}

impl Through {
    pub fn as_str(self) -> &'static str {
        match self {
            Through::Agent => "agent",
            Through::Process => "process",
        }
    }
}

/// Progress lines for people (a drill's restore), on a terminal only.
struct Lines {
    show: bool,
}

impl Observer for Lines {
    fn say(&self, line: &str, _said: Said) {
        if self.show {
            eprintln!("{}", crate::output::clean(line));
        }
    }
}

/// Runs `job` for `factory`: through the agent when one answers, else here.
/// `lines`: say a drill's progress on stderr (on a terminal).
pub async fn run(
    engine: &Engine,
    factory: &str,
    job: Job,
    lines: bool,
) -> Result<(JobOutcome, Through), OpError> {
    if let Some(agent) = crate::incident::agent(engine) {
        return Ok((agent.run(factory, job).await?, Through::Agent));
    }
    let observer = Lines {
        show: lines && !crate::output::quiet() && {
            use std::io::IsTerminal;
            std::io::stderr().is_terminal()
        },
    };
    let outcome = job::run_exclusive(
        engine,
        factory,
        &job,
        &Actor::person(),
        &observer,
        crate::output::stop_signal(),
    )
    .await?;
    if let Some(e) = &outcome.audit_error {
        crate::warning!(
            "the {} of {factory} is not in the audit trail: {e}",
            job.kind().name()
        );
    }
    Ok((outcome, Through::Process))
}
