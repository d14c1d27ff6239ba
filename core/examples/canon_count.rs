//! Canonicalizes a generated 5,000-resource factory once, for instruction
//! counts under callgrind (repeatable where wall time on a shared machine is
//! not): valgrind --tool=callgrind target/release/examples/canon_count
//! (five passes and one that counts declines; generating the input is a
//! constant part of the count). Also says how many answers the fast path declines.

use adfdr_core::model::ResourceKind;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use adfdr_core::model::raw::canonicalize_raw;

fn main() {
    let wire: Vec<(ResourceKind, Vec<u8>)> = adf_emulator::generate::factory(5000)
        .files
        .into_iter()
        .filter_map(|(path, body)| {
            let kind = ResourceKind::from_git_folder(path.split('/').next()?)?;
            Some((kind, serde_json::to_vec(&body).expect("json")))
        })
        .collect();
    let mut out = Vec::with_capacity(16 << 20);
    for _ in 0..5 {
        out.clear();
        for (kind, raw) in &wire {
            canonicalize_raw(*kind, raw, &mut out).expect("json");
        }
    }
    let declined: Vec<&(ResourceKind, Vec<u8>)> = wire
        .iter()
        .filter(|(kind, raw)| {
            adfdr_core::model::raw::canonicalize_fast(*kind, raw, &mut Vec::new()).is_none()
        })
        .collect();
    eprintln!("declined by the fast path: {}", declined.len());
    if let Some((kind, raw)) = declined.first() {
        eprintln!(
            "first: {kind:?} {}",
            String::from_utf8_lossy(&raw[..raw.len().min(600)])
        );
    }
    println!(
        "{} bytes in, {} out",
        wire.iter().map(|w| w.1.len()).sum::<usize>(),
        out.len()
    );
}
