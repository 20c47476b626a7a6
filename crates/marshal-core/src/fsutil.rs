//! File-system helpers with the permissions marshal promises: directories 0700, files 0600,
//! and whole-file replacement that readers never see half-done.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Creates `dir` (and parents) if needed; a directory marshal creates gets mode 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).with_context(|| format!("could not create state directory {}", dir.display()))
}

/// Opens `path` for appending (and reading, so a writer can check how the file ends),
/// creating it with mode 0600.
pub fn open_append(path: &Path) -> Result<File> {
    private_options()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("could not open {} for appending", path.display()))
}

/// Appends complete lines (`lines` ends with a newline) with one `write()`.
///
/// A crash can leave a torn last line, so the new lines start on a fresh line; and a failed
/// write (a full disk) is cut back off, leaving the file exactly as it was.
pub fn append_lines(path: &Path, lines: &[u8]) -> Result<()> {
    let mut file = open_append(path)?;
    let len_before = file.metadata().map(|m| m.len()).unwrap_or(0);
    let torn = len_before > 0 && !ends_with_newline(&file, len_before);
    let written = if torn {
        let mut buf = Vec::with_capacity(lines.len() + 1);
        buf.push(b'\n');
        buf.extend_from_slice(lines);
        file.write_all(&buf)
    } else {
        file.write_all(lines)
    };
    if let Err(err) = written {
        let _ = file.set_len(len_before);
        return Err(err).with_context(|| format!("could not append to {}", path.display()));
    }
    Ok(())
}

#[cfg(unix)]
fn ends_with_newline(file: &File, len: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let mut last = [0u8; 1];
    file.read_at(&mut last, len - 1).is_ok_and(|n| n == 1 && last[0] == b'\n')
}

#[cfg(not(unix))]
fn ends_with_newline(_file: &File, _len: u64) -> bool {
    false
}

/// Opens `path` for reading and writing in place, creating it with mode 0600.
pub fn open_read_write(path: &Path) -> Result<File> {
    private_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("could not open {}", path.display()))
}

/// Opens (creating, mode 0600) a file used only as a lock.
pub fn open_lock_file(path: &Path) -> Result<File> {
    open_read_write(path).context("could not open the lock file")
}

/// Replaces `path` with `bytes`: write a temp file in the same directory, flush it to disk,
/// rename it over, and flush the directory. Readers see the old content or the new one, never a
/// mix, and after a crash the file is one or the other.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = private_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .and_then(|()| fs::rename(&temp, path))
        .and_then(|()| sync_dir(dir));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written.with_context(|| format!("could not replace {}", path.display()))
}

/// Flushes a directory's entries (a rename) to disk; not every platform can, so best effort.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
    let _ = dir;
    Ok(())
}

/// Removes regular files in `dir` last modified more than `max_age` ago; returns how many.
pub fn remove_older_than(dir: &Path, max_age: std::time::Duration) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let now = std::time::SystemTime::now();
    entries
        .flatten()
        .filter(|entry| {
            entry.metadata().is_ok_and(|m| {
                m.is_file()
                    && m.modified().is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > max_age))
            })
        })
        .filter(|entry| fs::remove_file(entry.path()).is_ok())
        .count()
}

fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_dirs_and_files_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("ledger.jsonl");
        open_append(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        write_atomic(&dir.join("s.json"), b"{}").unwrap();
        assert_eq!(mode(&dir.join("s.json")), 0o600);
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("s.json");
        write_atomic(&file, b"one").unwrap();
        write_atomic(&file, b"two").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}
