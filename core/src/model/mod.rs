//! The factory model, pure: resource kinds, canonical JSON and content hashes,
//! and the references between resources. No IO here.

pub mod canonical;
pub mod diff;
pub mod kind;
pub mod references;
pub mod restorability;

pub use canonical::{ContentHash, canonical_bytes, canonicalize, content_hash};
pub use kind::ResourceKind;
pub use references::{Reference, references};
