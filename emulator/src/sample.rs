//! Built-in material for demos and offline rehearsals: the sample factory
//! (fixtures/sample-factory, every resource kind) and the throwaway test TLS
//! certificate (fixtures/tls, public on purpose: never trust it outside tests).

use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};

static SAMPLE_FACTORY: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../fixtures/sample-factory");
static TEST_TLS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../fixtures/tls");

/// Writes the sample factory's git layout into `dir`.
pub fn write_sample_factory(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    SAMPLE_FACTORY.extract(dir)
}

/// Paths of the test certificate, key and CA written by [`write_test_tls`].
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Writes the test certificate (for 127.0.0.1 and localhost), its key and its CA into `dir`.
pub fn write_test_tls(dir: &Path) -> std::io::Result<TlsFiles> {
    std::fs::create_dir_all(dir)?;
    for name in ["server.pem", "server.key", "ca.pem"] {
        let file = TEST_TLS.get_file(name).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("embedded {name} missing"),
            )
        })?;
        std::fs::write(dir.join(name), file.contents())?;
    }
    Ok(TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        ca: dir.join("ca.pem"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Kind;

    #[test]
    fn sample_factory_covers_every_kind_without_dangling_references() {
        let dir = std::env::temp_dir().join(format!("adf-sample-{}", std::process::id()));
        write_sample_factory(&dir).expect("write");
        let seed = crate::seed::load_git_layout(&dir).expect("load");
        let mut world = crate::World::default();
        let warnings = world
            .seed("s", "rg", "adf-sample", seed.clone(), "t")
            .expect("seed");
        assert!(warnings.is_empty(), "{warnings:?}");
        for kind in Kind::ALL {
            if kind.git_folder().is_some() || kind == Kind::ManagedPrivateEndpoint {
                assert!(
                    seed.resources.iter().any(|r| r.kind == kind),
                    "sample lacks {kind:?}"
                );
            }
        }
        assert!(
            seed.factory
                .as_ref()
                .is_some_and(|f| f.pointer("/properties/globalParameters").is_some())
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
