//! Reading the local files an operator names (config, key files, secret and
//! SAS files): regular files only, opened without blocking and read up to a
//! cap. `-c /dev/urandom` or a FIFO where a key file should be is an error
//! that names the file, not a hang or an out-of-memory kill.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The config file: far larger than any real one.
pub const MAX_CONFIG: u64 = 1 << 20;
/// A secret (client secret, SAS, federated token): generous for a JWT.
pub const MAX_SECRET: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum LocalFileError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("is not a regular file ({0}); point it at a file")]
    NotRegular(&'static str),
    #[error("is larger than {max} bytes ({size}); is it the right file?")]
    TooLarge { size: u64, max: u64 },
    #[error(
        "is readable by group or others (mode {mode:o}); run: chmod 600 on it (or use a systemd credential)"
    )]
    Exposed { mode: u32 },
}

impl LocalFileError {
    /// The underlying IO error kind, where there is one.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            LocalFileError::Io(e) => Some(e.kind()),
            _ => None,
        }
    }
}

/// What kind of non-regular file it is, for the error.
fn kind_of(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Opens `path` for reading without blocking (a FIFO would otherwise wait for
/// a writer) and checks that it is a regular file no larger than `max`.
pub fn open_regular(path: &Path, max: u64) -> Result<(std::fs::File, u64), LocalFileError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(LocalFileError::NotRegular(kind_of(meta.file_type())));
    }
    if meta.len() > max {
        return Err(LocalFileError::TooLarge {
            size: meta.len(),
            max,
        });
    }
    Ok((file, meta.len()))
}

/// Reads a secret: a regular file of at most `MAX_SECRET` bytes that only
/// its owner can read, into a buffer that wipes itself.
pub fn read_private(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, LocalFileError> {
    use std::os::unix::fs::PermissionsExt;
    let (file, len) = open_regular(path, MAX_SECRET)?;
    let mode = file.metadata()?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(LocalFileError::Exposed { mode });
    }
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(len as usize));
    file.take(MAX_SECRET).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads a whole regular file of at most `max` bytes (also if it grows while read).
pub fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, LocalFileError> {
    let (file, len) = open_regular(path, max)?;
    let mut out = Vec::with_capacity(len as usize);
    file.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(LocalFileError::TooLarge {
            size: out.len() as u64,
            max,
        });
    }
    Ok(out)
}

/// Reads an overrides file (`restore --overrides`, a drill's
/// `drill_overrides`), its fill values from the environment and from
/// private secret files (`read_private`).
pub fn overrides(
    path: &std::path::Path,
) -> Result<crate::plan::overrides::Overrides, crate::plan::overrides::OverridesError> {
    use crate::plan::overrides::{Overrides, OverridesError, Sources};
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| OverridesError::File {
        path: shown.clone(),
        detail: e.to_string(),
    })?;
    let env = |name: &str| std::env::var(name).ok();
    let file = |p: &std::path::Path| read_private(p).map_err(|e| e.to_string());
    Overrides::parse_with(
        &text,
        &shown,
        &Sources {
            env: &env,
            file: &file,
        },
    )
}

/// Reads a region map (`restore --map`, a factory's `region_map`).
pub fn region_map(path: &Path) -> Result<crate::plan::region_map::RegionMap, String> {
    let bytes = read_capped(path, 1 << 20).map_err(|e| format!("{}: {e}", path.display()))?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
    crate::plan::region_map::RegionMap::parse(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("adfdr-lf-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    #[test]
    fn devices_fifos_directories_and_big_files_are_refused_at_once() {
        let dir = scratch();
        assert!(matches!(
            read_capped(Path::new("/dev/urandom"), MAX_CONFIG),
            Err(LocalFileError::NotRegular("a character device"))
        ));
        assert!(matches!(
            read_capped(&dir, MAX_CONFIG),
            Err(LocalFileError::NotRegular("a directory"))
        ));
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        // Would block forever without O_NONBLOCK: nobody writes to it.
        assert!(matches!(
            read_capped(&fifo, MAX_CONFIG),
            Err(LocalFileError::NotRegular("a FIFO"))
        ));
        let big = dir.join("big");
        std::fs::File::create(&big)
            .and_then(|f| f.set_len(3 << 30))
            .expect("sparse file");
        assert!(matches!(
            read_capped(&big, MAX_CONFIG),
            Err(LocalFileError::TooLarge { .. })
        ));
        let ok = dir.join("ok");
        std::fs::write(&ok, b"hello").expect("write");
        assert_eq!(read_capped(&ok, 5).expect("read"), b"hello");
        assert!(read_capped(&ok, 4).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
