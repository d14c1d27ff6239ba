//! The seal pipeline on one core: canonicalize ARM answers, encode the payload
//! (canonical JSON + SHA-256 per resource), zstd, AES-256-GCM and the object
//! digest; from the answers' bytes (what a backup does) and, for comparison,
//! from value trees already parsed (what it did before). Input: a generated 5,000-resource factory (adf_emulator::generate).
//! Target (design.md section 7): at least 300 MB/s of JSON.
//! Run: cargo bench -p adfdr-core --bench seal

use adfdr_core::model::raw::canonicalize_raw;
use adfdr_core::model::{ResourceKind, canonicalize, canonicalize_owned};
use adfdr_core::snapshot::DataKey;
use adfdr_core::snapshot::manifest::{Resource, assemble, encode_answer, encode_payload};
use adfdr_core::snapshot::object::{Header, ObjectType, seal};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn answers() -> Vec<(ResourceKind, String, serde_json::Value)> {
    adf_emulator::generate::factory(5000)
        .files
        .into_iter()
        .filter_map(|(path, body)| {
            let kind = ResourceKind::from_git_folder(path.split('/').next()?)?;
            let name = body["name"].as_str()?.to_string();
            let mut answer = body;
            answer["id"] = format!("/subscriptions/s/resourceGroups/r/providers/Microsoft.DataFactory/factories/f/x/{name}").into();
            answer["etag"] = "\"0000\"".into();
            Some((kind, name, answer))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let input = answers();
    let bytes: usize = input
        .iter()
        .map(|(_, _, v)| serde_json::to_vec(v).expect("json").len())
        .sum();
    eprintln!("input: {} resources, {} bytes of JSON", input.len(), bytes);
    let key = DataKey::generate();
    let mut group = c.benchmark_group("seal");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(20);
    // The backup path: each answer's bytes as ARM sent them (one item of a
    // list page) → canonical bytes + references (model::raw) → payload line
    // + SHA-256 → restorability partial → zstd → AES-256-GCM → digest.
    let wire: Vec<(ResourceKind, Vec<u8>)> = input
        .iter()
        .map(|(kind, _, v)| (*kind, serde_json::to_vec(v).expect("json")))
        .collect();
    group.bench_function(
        "bytes: canonicalize+encode+report+zstd+aes-gcm+sha256",
        |b| {
            b.iter(|| {
                let mut items = Vec::with_capacity(wire.len());
                let mut partials = Vec::with_capacity(wire.len());
                for (kind, raw) in &wire {
                    let (encoded, partial, _) = encode_answer(*kind, None, raw)
                        .expect("json")
                        .expect("named");
                    items.push(encoded);
                    partials.push(partial);
                }
                let (plain, _) = assemble(items);
                (
                    partials.len(),
                    seal(
                        Header::new(ObjectType::Payload, "f", "s", "t"),
                        &plain,
                        &key,
                    )
                    .len(),
                )
            })
        },
    );
    // design.md's seal pipeline: canonicalize, frame each payload line
    // (`{"kind":..,"name":..,"definition":..}`), SHA-256 per resource, zstd,
    // AES-GCM, object digest. What "bytes" adds on top is the restorability
    // report's per-resource analysis and the sort into snapshot order.
    group.bench_function("design: canonicalize+frame+sha256+zstd+aes-gcm", |b| {
        use sha2::Digest;
        let mut definition = Vec::new();
        b.iter(|| {
            let mut plain = Vec::with_capacity(bytes);
            let mut hashes = Vec::with_capacity(wire.len());
            for (kind, raw) in &wire {
                definition.clear();
                let scan = canonicalize_raw(*kind, raw, &mut definition).expect("json");
                hashes.push(sha2::Sha256::digest(&definition));
                plain.extend_from_slice(b"{\"kind\":");
                serde_json::to_writer(&mut plain, kind).expect("kind");
                plain.extend_from_slice(b",\"name\":");
                serde_json::to_writer(&mut plain, &scan.name).expect("name");
                plain.extend_from_slice(b",\"definition\":");
                plain.extend_from_slice(&definition);
                plain.extend_from_slice(b"}\n");
            }
            (
                hashes.len(),
                seal(
                    Header::new(ObjectType::Payload, "f", "s", "t"),
                    &plain,
                    &key,
                )
                .len(),
            )
        })
    });
    group.bench_function("stage: bytes canonicalize only", |b| {
        let mut out = Vec::with_capacity(bytes);
        b.iter(|| {
            out.clear();
            for (kind, raw) in &wire {
                canonicalize_raw(*kind, raw, &mut out).expect("json");
            }
            out.len()
        })
    });
    group.bench_function("trees: canonicalize+encode+zstd+aes-gcm+sha256", |b| {
        // Export owns the answers it canonicalizes (parsed off the wire): the
        // copy that stands in for them is made outside the timed part.
        b.iter_batched(
            || input.clone(),
            |input| {
                let mut resources: Vec<Resource> = input
                    .into_iter()
                    .map(|(kind, name, answer)| Resource {
                        kind,
                        parent: None,
                        name,
                        definition: canonicalize_owned(kind, answer),
                    })
                    .collect();
                let (plain, _) = encode_payload(&mut resources);
                seal(
                    Header::new(ObjectType::Payload, "f", "s", "t"),
                    &plain,
                    &key,
                )
            },
            BatchSize::LargeInput,
        )
    });
    let canonical: Vec<Resource> = input
        .iter()
        .map(|(kind, name, answer)| Resource {
            kind: *kind,
            parent: None,
            name: name.clone(),
            definition: canonicalize(*kind, answer),
        })
        .collect();
    group.bench_function("stage: canonicalize (clone, strip)", |b| {
        b.iter(|| {
            input
                .iter()
                .map(|(kind, _, answer)| canonicalize(*kind, answer))
                .collect::<Vec<_>>()
        })
    });
    group.bench_function("stage: encode (canonical bytes + sha256 each)", |b| {
        b.iter(|| encode_payload(&mut canonical.clone()).0.len())
    });
    group.bench_function("stage: canonical bytes only", |b| {
        b.iter(|| {
            canonical
                .iter()
                .map(|r| adfdr_core::model::canonical_bytes(&r.definition).len())
                .sum::<usize>()
        })
    });
    let blobs: Vec<Vec<u8>> = canonical
        .iter()
        .map(|r| adfdr_core::model::canonical_bytes(&r.definition))
        .collect();
    group.bench_function("stage: sha256 only", |b| {
        use sha2::Digest;
        b.iter(|| {
            blobs
                .iter()
                .map(|x| sha2::Sha256::digest(x)[0] as usize)
                .sum::<usize>()
        })
    });
    group.bench_function("stage: sort by key", |b| {
        b.iter(|| {
            let mut v = canonical.clone();
            v.sort_by_key(Resource::key);
            v.len()
        })
    });
    let (plain, _) = encode_payload(&mut canonical.clone());
    for level in [1, 2, 3] {
        group.bench_function(format!("stage: zstd level {level}"), |b| {
            b.iter(|| zstd::bulk::compress(&plain, level).expect("zstd").len())
        });
        eprintln!(
            "zstd level {level}: {} -> {} bytes",
            plain.len(),
            zstd::bulk::compress(&plain, level).expect("zstd").len()
        );
    }
    group.bench_function("stage: seal (zstd + aes-gcm + sha256)", |b| {
        b.iter(|| {
            seal(
                Header::new(ObjectType::Payload, "f", "s", "t"),
                &plain,
                &key,
            )
            .len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
