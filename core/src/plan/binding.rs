//! Whose history a namespace is (pure). A store namespace (`v1/{name}/`)
//! is bound to its source: the factory's ARM id and its `createTime`, both
//! recorded in every manifest. A factory name is not an identity: anyone
//! who may create a factory where discovery looks can create one with a
//! name that was deleted, and a history that another source joins would be
//! pruned, and restored as `latest`, in that source's favour.
//!
//! How a live factory relates to the source of a namespace's newest
//! snapshot decides whether it may write there:
//! - the same ARM id and createTime: the same factory;
//! - the same ARM id, another createTime: *re-created* at the same id, which
//!   only someone with rights on the factory's own resource group can do
//!   (most often the operator's own restore after a delete): it continues the
//!   namespace as a new generation, said in the log and a notice; retention
//!   decides per source, so the earlier factory's snapshots are never pushed
//!   out by the new one's;
//! - another ARM id, the same createTime: the factory was *moved* (ARM keeps
//!   a moved resource's properties): the same factory;
//! - another ARM id and another createTime: *another source*. It never
//!   joins: discovery gives it a namespace of its own, and a hand-written
//!   `[[factory]]` is refused unless the operator set `adopt = true`.

pub use crate::snapshot::manifest::SourceId;

/// How a live factory relates to the source a namespace holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Relation {
    Same,
    /// The same ARM id, created anew (the namespace's was created `was`).
    Recreated {
        was: String,
    },
    /// The same factory under another ARM id (`from`): moved.
    Moved {
        from: String,
    },
    /// Another factory.
    Other,
}

/// Two createTimes are the same instant however ARM spelled them (digits of
/// the fraction, `Z` or `+00:00`).
fn same_time(a: &str, b: &str) -> bool {
    match (
        crate::snapshot::parse_time(a),
        crate::snapshot::parse_time(b),
    ) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

pub fn relate(stored: &SourceId, live: &SourceId) -> Relation {
    let created_same = match (&stored.created, &live.created) {
        (Some(a), Some(b)) => Some(same_time(a, b)),
        // An older snapshot did not record it: the id alone decides.
        _ => None,
    };
    match (stored.same_id(live), created_same) {
        (true, Some(false)) => Relation::Recreated {
            was: stored.created.clone().unwrap_or_default(),
        },
        (true, _) => Relation::Same,
        (false, Some(true)) => Relation::Moved {
            from: stored.id.clone(),
        },
        (false, _) => Relation::Other,
    }
}

/// What a backup into a namespace bound to `stored` may do for `live`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on; the note (if any) is logged and told.
    Write(Option<String>),
    /// Another source: not into this namespace.
    Refuse(String),
}

/// `adopt`: the operator said this factory continues the namespace's
/// history whatever its source (a hand-written `[[factory]]` only).
pub fn verdict(namespace: &str, stored: &SourceId, live: &SourceId, adopt: bool) -> Verdict {
    match relate(stored, live) {
        Relation::Same => Verdict::Write(None),
        Relation::Moved { from } => Verdict::Write(Some(format!(
            "{namespace}: the factory moved from {from} to {} (same createTime); its history continues",
            live.id
        ))),
        Relation::Recreated { was } => Verdict::Write(Some(format!(
            "{namespace}: {} was re-created (createTime {was} → {}): a new generation of this history; the earlier factory's snapshots are kept by their own keep rules and `latest` now names the new one",
            live.id,
            live.created.as_deref().unwrap_or("?")
        ))),
        Relation::Other if adopt => Verdict::Write(Some(format!(
            "{namespace}: adopted by {} (adopt = true); the earlier source {} keeps its snapshots by their own keep rules",
            live.describe(),
            stored.describe()
        ))),
        Relation::Other => Verdict::Refuse(format!(
            "the store's history '{namespace}' belongs to {}, not to {}",
            stored.describe(),
            live.describe()
        )),
    }
}

/// The namespace suffix a source gets when its plain name is another
/// source's history: stable (the same factory gets the same name at every
/// discovery), short, and telling nothing an ARM id would not.
pub fn suffix(id: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(id.to_ascii_lowercase().as_bytes());
    crate::snapshot::manifest::hex(&h[..4])
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str =
        "/subscriptions/a/resourceGroups/rg/providers/Microsoft.DataFactory/factories/adf-x";
    const B: &str =
        "/subscriptions/b/resourceGroups/rg/providers/Microsoft.DataFactory/factories/adf-x";

    #[test]
    fn a_namespace_is_bound_to_its_id_and_create_time() {
        let t0 = Some("2024-03-01T09:12:44.0000000Z");
        let t0_other_spelling = Some("2024-03-01T09:12:44Z");
        let t1 = Some("2026-12-07T19:00:00Z");
        let stored = SourceId::new(A, t0);
        let cases = [
            (SourceId::new(&A.to_uppercase(), t0_other_spelling), "same"),
            (SourceId::new(A, None), "same"),
            (SourceId::new(A, t1), "recreated"),
            (SourceId::new(B, t0), "moved"),
            (SourceId::new(B, t1), "other"),
            (SourceId::new(B, None), "other"),
        ];
        for (live, want) in cases {
            let got = match relate(&stored, &live) {
                Relation::Same => "same",
                Relation::Recreated { .. } => "recreated",
                Relation::Moved { .. } => "moved",
                Relation::Other => "other",
            };
            assert_eq!(got, want, "{live:?}");
        }
        match verdict("adf-x", &stored, &SourceId::new(B, t1), false) {
            Verdict::Refuse(why) => assert!(
                why.contains("/subscriptions/a/") && why.contains("/subscriptions/b/"),
                "{why}"
            ),
            v => panic!("another source joined: {v:?}"),
        }
        assert!(matches!(
            verdict("adf-x", &stored, &SourceId::new(B, t1), true),
            Verdict::Write(Some(_))
        ));
        assert_eq!(
            verdict("adf-x", &stored, &SourceId::new(A, t0), false),
            Verdict::Write(None)
        );
        assert_eq!(suffix(A), suffix(&A.to_uppercase()));
        assert_ne!(suffix(A), suffix(B));
        assert_eq!(suffix(A).len(), 8);
    }
}
