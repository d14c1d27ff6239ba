//! The factory model, pure: resource kinds, canonical JSON and content hashes,
//! and the references between resources. No IO here.

pub mod canonical;
pub mod diff;
pub mod kind;
pub mod names;
pub mod raw;
pub mod references;
pub mod resource;
pub mod restorability;

pub use canonical::{
    ContentHash, canonical_bytes, canonicalize, canonicalize_owned, content_hash, write_canonical,
};
pub use kind::ResourceKind;
pub use references::{Reference, references};
pub use resource::Resource;
