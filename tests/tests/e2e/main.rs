//! adfdr's end-to-end tests: one binary (one link step), one module per area.
//! Everything talks to real processes on 127.0.0.1: adf-emulator (in-process
//! server, real HTTPS), Azurite and Microsoft's Python SDK.

mod azurite;
mod bad_input;
mod conformance;
mod corpus;
mod format_by_hand;
mod keyvault;
mod python_sdk;
mod recorded;
mod regions;
mod service_rules;
mod store;
mod surroundings;
mod throttling;
