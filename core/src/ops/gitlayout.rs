//! Writing a snapshot as ADF's git-integration layout (`factory/`,
//! `pipeline/`, `linkedService/`, ...), which ADF git integration and the
//! emulator's seed loader read back.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::model::ResourceKind;
use crate::snapshot::Resource;

#[derive(Debug, thiserror::Error)]
pub enum GitLayoutError {
    #[error("{path} exists and is not empty; export into a new or empty directory")]
    NotEmpty { path: String },
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// What was written, and what git layout has no place for.
#[derive(Debug, Default)]
pub struct Written {
    pub files: usize,
    pub skipped: Vec<String>,
}

/// The git file body: `name` first, then the definition's own fields.
pub fn git_body(r: &Resource) -> Value {
    let mut map = Map::new();
    map.insert("name".into(), Value::String(r.name.clone()));
    if let Value::Object(def) = &r.definition {
        for (k, v) in def {
            if k != "name" {
                map.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(map)
}

/// A name as a file name: ARM's names never hold control characters, `%`
/// or bidirectional overrides, and a name that does (from a hostile answer)
/// is percent-encoded rather than written into a file name raw (a newline
/// or an escape sequence in `ls`, a file name that reads backwards).
fn file_name(name: &str) -> std::borrow::Cow<'_, str> {
    let odd = |c: char| c == '%' || crate::model::names::unprintable(c);
    if !name.chars().any(odd) {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        if odd(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

pub fn file_for(r: &Resource) -> Option<PathBuf> {
    // A name is one path component (ARM names never hold '/'); anything else
    // has no file in the layout rather than a path out of it.
    let plain = |n: &str| !n.is_empty() && n != "." && n != ".." && !n.contains(['/', '\\', '\0']);
    if !plain(&r.name) || r.parent.as_deref().is_some_and(|p| !plain(p)) {
        return None;
    }
    let file = format!("{}.json", file_name(&r.name));
    match r.kind {
        ResourceKind::ManagedPrivateEndpoint => Some(
            PathBuf::from("managedVirtualNetwork")
                .join(r.parent.as_deref().unwrap_or("default"))
                .join("managedPrivateEndpoint")
                .join(file),
        ),
        // Not ADF git: the factory's surroundings, in a folder beside it.
        kind if kind.extension().is_some() || ResourceKind::GRANTS.contains(&kind) => {
            let folder = PathBuf::from("surroundings").join(r.kind.label());
            Some(match &r.parent {
                Some(p) => folder.join(p).join(file),
                None => folder.join(file),
            })
        }
        kind => kind
            .git_folder()
            .map(|folder| PathBuf::from(folder).join(file)),
    }
}

pub fn write(out: &Path, resources: &[Resource]) -> Result<Written, GitLayoutError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| GitLayoutError::Io { path, source }
    };
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(io(out))?;
        if entries.next().is_some() {
            return Err(GitLayoutError::NotEmpty {
                path: out.display().to_string(),
            });
        }
    }
    // Decrypted definitions: directories 0700, files 0600, never an
    // existing file overwritten.
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let mut dirs = std::fs::DirBuilder::new();
    dirs.recursive(true).mode(0o700);
    dirs.create(out).map_err(io(out))?;
    let mut written = Written::default();
    for r in resources {
        let Some(rel) = file_for(r) else {
            written.skipped.push(r.label());
            continue;
        };
        let path = out.join(rel);
        if let Some(dir) = path.parent() {
            dirs.create(dir).map_err(io(dir))?;
        }
        let mut text = serde_json::to_string_pretty(&git_body(r)).expect("json");
        text.push('\n');
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(io(&path))?;
        written.files += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 25, item 10: a name with a control character or a
    /// bidirectional override (from a hostile answer) is percent-encoded in
    /// its file name, never written raw; ordinary names are as ADF writes them.
    #[test]
    fn hostile_names_are_encoded_in_file_names() {
        assert_eq!(file_name("PL Load 2"), "PL Load 2");
        assert_eq!(file_name("PL\u{1b}[31mred"), "PL%1B[31mred");
        assert_eq!(file_name("a\nb%"), "a%0Ab%25");
        assert_eq!(file_name("x\u{202e}gnp.exe"), "x%E2%80%AEgnp.exe");
    }
}
