//! Path options are files: every file host-runner opens because a user
//! named it (the component, `--header @FILE`, `check --requests`,
//! `--record`) goes through here, so a FIFO, a device or a directory is
//! refused in one line instead of blocking forever or being read without
//! end, and what is read is held to a size cap before it is allocated.
//!
//! A FIFO is opened non-blocking and the opened handle is what gets checked,
//! so a path swapped for a FIFO between a check and the open cannot block
//! either. This module does not parse what it reads and does not decide the
//! caps (each caller knows what its file may hold).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::units::HumanSize;

/// Why a path option's file cannot be used; displays as one line naming the
/// file and, through `what`, the option it was given to.
#[derive(Debug)]
pub struct FileError {
    /// What the file is for, e.g. `the requests file` or `--record`.
    what: &'static str,
    path: PathBuf,
    kind: FileErrorKind,
}

/// The ways a path option's file can be wrong.
#[derive(Debug)]
pub enum FileErrorKind {
    /// It could not be opened, read or written.
    Io(io::Error),
    /// It is a directory, a FIFO, a socket or a device.
    NotAFile,
    /// It holds more than the cap (its size in bytes).
    TooLarge(u64, u64),
}

impl FileError {
    /// What went wrong, for a caller with its own messages.
    pub fn into_kind(self) -> FileErrorKind {
        self.kind
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, path) = (self.what, self.path.display());
        match &self.kind {
            FileErrorKind::Io(e) if e.kind() == io::ErrorKind::NotFound => {
                write!(f, "{what} {path}: no such file; check the path")
            }
            FileErrorKind::Io(e) => {
                write!(f, "{what} {path}: {e}; check the path and its permissions")
            }
            FileErrorKind::NotAFile => write!(
                f,
                "{what} {path} is not a regular file (a directory, a device or a pipe); pass the path of a regular file"
            ),
            FileErrorKind::TooLarge(size, cap) => write!(
                f,
                "{what} {path} is {} or more, more than the {} it may be; check the path",
                HumanSize(*size),
                HumanSize(*cap)
            ),
        }
    }
}

impl std::error::Error for FileError {}

/// Reads the regular file at `path` whole, refusing anything else and any
/// file over `cap` bytes (before reading it, and again while reading, should
/// it grow).
pub fn read_regular(path: &Path, cap: u64, what: &'static str) -> Result<Vec<u8>, FileError> {
    let error = |kind| FileError {
        what,
        path: path.to_path_buf(),
        kind,
    };
    let file = open_regular(path, what)?;
    let len = file
        .metadata()
        .map_err(|e| error(FileErrorKind::Io(e)))?
        .len();
    if len > cap {
        return Err(error(FileErrorKind::TooLarge(len, cap)));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // One byte past the cap tells a file at the cap from one past it.
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| error(FileErrorKind::Io(e)))?;
    if bytes.len() as u64 > cap {
        return Err(error(FileErrorKind::TooLarge(bytes.len() as u64, cap)));
    }
    Ok(bytes)
}

/// Opens the regular file at `path` for reading, refusing anything else
/// without blocking; for callers that read it in their own way, within a
/// cap of their own.
pub fn open_regular(path: &Path, what: &'static str) -> Result<File, FileError> {
    open(path, OpenOptions::new().read(true)).map_err(|kind| FileError {
        what,
        path: path.to_path_buf(),
        kind,
    })
}

/// [`read_regular`], as UTF-8 text.
pub fn read_regular_text(path: &Path, cap: u64, what: &'static str) -> Result<String, FileError> {
    let bytes = read_regular(path, cap, what)?;
    String::from_utf8(bytes).map_err(|_| FileError {
        what,
        path: path.to_path_buf(),
        kind: FileErrorKind::Io(io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text")),
    })
}

/// Opens the regular file at `path` for appending, creating it readable and
/// writable by its owner only (0600); an existing file is narrowed to 0600
/// too, as what is appended may be sensitive.
pub fn append_private(path: &Path, what: &'static str) -> Result<File, FileError> {
    let error = |kind| FileError {
        what,
        path: path.to_path_buf(),
        kind,
    };
    let file = open(
        path,
        OpenOptions::new().create(true).append(true).mode(0o600),
    )
    .map_err(error)?;
    let permissions = std::fs::Permissions::from_mode(0o600);
    file.set_permissions(permissions)
        .map_err(|e| error(FileErrorKind::Io(e)))?;
    Ok(file)
}

/// Opens `path` without blocking on a FIFO or a device, and keeps it only if
/// it is a regular file.
fn open(path: &Path, options: &mut OpenOptions) -> Result<File, FileErrorKind> {
    // Opening a FIFO for reading waits for a writer (and for writing, fails
    // without a reader) unless non-blocking; on a regular file the flag
    // changes nothing.
    let file = options
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::IsADirectory => FileErrorKind::NotAFile,
            // A FIFO opened for writing with no reader.
            _ if e.raw_os_error() == Some(libc::ENXIO) => FileErrorKind::NotAFile,
            _ => FileErrorKind::Io(e),
        })?;
    let metadata = file.metadata().map_err(FileErrorKind::Io)?;
    if !metadata.is_file() {
        return Err(FileErrorKind::NotAFile);
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("reprise-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn directories_devices_and_fifos_are_refused_in_one_line() {
        let fifo = scratch("fifo");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        for path in [Path::new("/tmp"), Path::new("/dev/zero"), fifo.as_path()] {
            let error = read_regular(path, 1 << 20, "the requests file").unwrap_err();
            let line = error.to_string();
            assert!(line.contains("is not a regular file") && !line.contains('\n'));
            assert!(
                matches!(error.into_kind(), FileErrorKind::NotAFile),
                "{line}"
            );
            let error = append_private(path, "--record").unwrap_err();
            assert!(matches!(error.into_kind(), FileErrorKind::NotAFile));
        }
    }

    #[test]
    fn a_file_over_the_cap_is_refused_and_one_at_the_cap_is_read() {
        let path = scratch("capped");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_regular(&path, 5, "x").unwrap(), b"12345");
        let error = read_regular(&path, 4, "the header file").unwrap_err();
        assert!(matches!(error.into_kind(), FileErrorKind::TooLarge(5, 4)));
    }

    #[test]
    fn an_appended_file_is_private_even_if_it_existed() {
        let path = scratch("private");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        append_private(&path, "--record").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
