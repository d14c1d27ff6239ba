//! `adfdr init`: make each configured location and prove it works
//! (core's `ops::check::init`); print what is still missing.

use crate::Ctx;
use crate::exit;
use adfdr_core::ops::OpError;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub async fn run(ctx: &Ctx, _args: Args) -> Result<i32, OpError> {
    let engine = ctx.engine()?;
    let done = adfdr_core::ops::check::init(&engine).await;
    if ctx.json {
        crate::json::emit("init", &done);
    } else {
        for l in &done.locations {
            let state = if l.ready { "ok  " } else { "FAIL" };
            println!(
                "  {state}  location {} ({}): {}",
                l.location, l.url, l.detail
            );
        }
        for q in &done.queues {
            let state = if q.ready { "ok  " } else { "FAIL" };
            println!(
                "  {state}  event queue {} ({}): {}",
                q.queue,
                q.factories.join(", "),
                q.detail
            );
        }
        if done.missing.is_empty() {
            println!("every location is ready");
        } else {
            println!("still missing:");
            for m in &done.missing {
                println!("  - {m}");
            }
        }
    }
    Ok(
        if done.locations.iter().all(|l| l.ready) && done.queues.iter().all(|q| q.ready) {
            exit::OK
        } else {
            exit::FAILED
        },
    )
}
