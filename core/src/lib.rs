//! adfdr-core: the engine every adfdr binary shares.
//!
//! Layout (docs/ARCHITECTURE.md): pure decisions (model, snapshot, plan) apart
//! from adapters behind traits (factory, store, catalog); use cases in ops.
//! This crate grows issue by issue; today it holds the HTTP transport and the
//! ARM client for Data Factory.

pub mod catalog;
pub mod config;
pub mod factory;
pub mod identity;
pub mod keys;
pub mod localfile;
pub mod model;
pub mod ops;
pub mod plan;
pub mod snapshot;
pub mod store;
pub mod telemetry;
pub mod transport;
