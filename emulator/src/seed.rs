//! Reads a factory from the ADF git-integration layout (`factory/`, `pipeline/`,
//! `dataset/`, `linkedService/`, `trigger/`, `dataflow/`, `integrationRuntime/`,
//! `credential/`, `managedVirtualNetwork/<vnet>.json` and
//! `managedVirtualNetwork/<vnet>/managedPrivateEndpoint/`, `adfcdc/`).
//!
//! Resources are keyed on the `name` inside each JSON file, not on the file name;
//! files that do not end in `.json` are ignored, as ADF's git integration does.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::kinds::Kind;

#[derive(Clone, Debug)]
pub struct SeedResource {
    pub kind: Kind,
    pub parent: Option<String>,
    pub name: String,
    pub body: Value,
}

#[derive(Clone, Debug, Default)]
pub struct SeedFactory {
    /// The factory's own definition (location, identity, global parameters...).
    pub factory: Option<Value>,
    pub resources: Vec<SeedResource>,
    /// Diagnostic settings and locks on the factory (`surroundings/diagnosticSetting/`,
    /// `surroundings/lock/`: adfdr's export writes them beside the git layout).
    pub surroundings: Vec<(crate::extension::Extension, String, Value)>,
    /// Access the factory's system-assigned identity holds, in the form
    /// adfdr's export writes (`surroundings/roleAssignment/`: role GUID and
    /// scope; `surroundings/accessPolicy/`: vault id and permissions), with
    /// `{subscription}` standing for the seeded factory's subscription.
    pub role_assignments: Vec<Value>,
    pub access_policies: Vec<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot read seed folder {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("seed file {path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("seed file {path} has no string \"name\"; every ADF git file names its resource")]
    NoName { path: PathBuf },
    #[error(
        "seed folder {path} holds no factory resources (expected ADF git layout: pipeline/, dataset/, linkedService/, ...)"
    )]
    Empty { path: PathBuf },
}

fn json_files(dir: &Path) -> Result<Vec<PathBuf>, SeedError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| SeedError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| SeedError::Io {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if path.is_file() && path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_json(path: &Path) -> Result<Value, SeedError> {
    let text = std::fs::read(path).map_err(|source| SeedError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // Files saved by Windows tools may start with a UTF-8 byte order mark.
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&text);
    serde_json::from_slice(text).map_err(|source| SeedError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn named(path: &Path, body: &Value) -> Result<String, SeedError> {
    body.get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| SeedError::NoName {
            path: path.to_path_buf(),
        })
}

/// Loads a git-layout folder.
pub fn load_git_layout(root: &Path) -> Result<SeedFactory, SeedError> {
    if !root.is_dir() {
        return Err(SeedError::Io {
            path: root.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    let mut seed = SeedFactory::default();
    // ADF keeps one factory file; a second is a leftover (and adftools uses the first).
    if let Some(path) = json_files(&root.join("factory"))?.first() {
        seed.factory = Some(read_json(path)?);
    }
    for kind in Kind::ALL {
        let Some(folder) = kind.git_folder() else {
            continue;
        };
        for path in json_files(&root.join(folder))? {
            let body = read_json(&path)?;
            let name = named(&path, &body)?;
            if kind == Kind::ManagedVirtualNetwork {
                let mpe_dir = root.join(folder).join(&name).join("managedPrivateEndpoint");
                for mpe_path in json_files(&mpe_dir)? {
                    let mpe = read_json(&mpe_path)?;
                    seed.resources.push(SeedResource {
                        kind: Kind::ManagedPrivateEndpoint,
                        parent: Some(name.clone()),
                        name: named(&mpe_path, &mpe)?,
                        body: mpe,
                    });
                }
            }
            seed.resources.push(SeedResource {
                kind,
                parent: None,
                name,
                body,
            });
        }
    }
    // Private endpoints whose vnet file is missing still live under a vnet folder.
    let vnet_root = root.join("managedVirtualNetwork");
    if vnet_root.is_dir() {
        let entries = std::fs::read_dir(&vnet_root).map_err(|source| SeedError::Io {
            path: vnet_root.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let vnet = entry.file_name().to_string_lossy().to_string();
            let known = seed.resources.iter().any(|r| {
                r.kind == Kind::ManagedVirtualNetwork && r.name.eq_ignore_ascii_case(&vnet)
            });
            if entry.path().is_dir() && !known {
                seed.resources.push(SeedResource {
                    kind: Kind::ManagedVirtualNetwork,
                    parent: None,
                    name: vnet.clone(),
                    body: serde_json::json!({"name": vnet, "properties": {}}),
                });
                for mpe_path in json_files(&entry.path().join("managedPrivateEndpoint"))? {
                    let mpe = read_json(&mpe_path)?;
                    seed.resources.push(SeedResource {
                        kind: Kind::ManagedPrivateEndpoint,
                        parent: Some(vnet.clone()),
                        name: named(&mpe_path, &mpe)?,
                        body: mpe,
                    });
                }
            }
        }
    }
    load_surroundings(root, &mut seed)?;
    if seed.factory.is_none() && seed.resources.is_empty() {
        return Err(SeedError::Empty {
            path: root.to_path_buf(),
        });
    }
    // Managed VNets go before their endpoints, whatever order the folders came in.
    seed.resources
        .sort_by_key(|r| r.kind != Kind::ManagedVirtualNetwork);
    Ok(seed)
}

/// What surrounds the factory (`surroundings/`): diagnostics, locks,
/// alerts, role assignments and access policies.
fn load_surroundings(root: &Path, seed: &mut SeedFactory) -> Result<(), SeedError> {
    for ext in crate::extension::Extension::ALL {
        let Some(folder) = ext.seed_folder() else {
            continue;
        };
        for path in json_files(&root.join("surroundings").join(folder))? {
            let body = read_json(&path)?;
            let name = named(&path, &body)?;
            seed.surroundings.push((ext, name, body));
        }
    }
    for path in json_files(&root.join("surroundings").join("roleAssignment"))? {
        seed.role_assignments.push(read_json(&path)?);
    }
    for path in json_files(&root.join("surroundings").join("accessPolicy"))? {
        seed.access_policies.push(read_json(&path)?);
    }
    Ok(())
}
