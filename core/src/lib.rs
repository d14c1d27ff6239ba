//! adfdr-core: the engine every adfdr binary shares.
//!
//! Layout (docs/ARCHITECTURE.md): pure decisions (model, snapshot, plan) apart
//! from adapters behind traits (factory: `FactoryApi`, store: `BlobStore`,
//! keys, catalog); every use case in ops, which the CLI and the agent call
//! and whose inputs and outputs (ops::contract) they share. Nothing here
//! decides an exit code or prints: errors carry a kind (ops::error) and the
//! front ends map and render them.

pub mod catalog;
pub mod config;
pub mod discovery;
pub mod factory;
pub mod identity;
pub mod keys;
pub mod localfile;
pub mod model;
pub mod ops;
pub mod plan;
pub mod queue;
pub mod snapshot;
pub mod store;
pub mod telemetry;
pub mod transport;
