//! `adfdr`: the control CLI. One module per subcommand; the engine lives in
//! adfdr-core. Exit codes (design contract): 0 ok, 1 failed, 2 bad usage or
//! config, 3 done but degraded, 4 a check failed.

mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "adfdr",
    version,
    about = "Backup, restore and recovery drills for Azure Data Factory"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Offline showcase: starts adf-emulator in-process with the built-in sample
    /// factory and walks it through the same client stack the agent uses.
    Demo(demo::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("adfdr: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
