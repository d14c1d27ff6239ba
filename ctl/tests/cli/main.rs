//! The `adfdr` binary end to end: one test binary (one link step), one module
//! per area. Everything talks to real processes on 127.0.0.1: adf-emulator
//! (ARM, managed identity, Key Vault) and Azurite (two accounts, two regions).

mod common;

mod auth;
mod corpus;
mod crash;
mod demo;
mod drill;
mod failures;
mod fleet;
mod grammar;
mod hostile;
mod integrity;
mod json;
mod oncall;
mod posture;
mod prune;
mod restore;
mod shell;
mod snapshots;
