//! File-system helpers with the promises marshal makes about its files: directories 0700,
//! files 0600, state files never opened through a symbolic link, whole-file replacement that
//! readers never see half-done, and reads that are bounded whatever sits at the path (a FIFO, a
//! device, a huge file).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

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

/// Whether a read may follow a symbolic link at the path itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// The user's own files (a dotfile manager links `~/.claude/marshal.json`).
    Follow,
    /// marshal's state files: a link there was planted, never made by marshal.
    Refuse,
}

/// Caps on what marshal reads: every read is bounded by one of these.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
pub const MAX_AGENT_FILE_BYTES: u64 = 256 * 1024;
pub const MAX_STATE_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a whole regular file of at most `cap` bytes. `Ok(None)` when nothing is there; an
/// error (with a reason fit for a log line) for a FIFO, a device, a directory, a file over the
/// cap, or a link where `links` refuses one. Never blocks: the file is opened non-blocking, so a
/// FIFO with no writer cannot hang the caller, and it is checked before a byte is read.
pub fn read_capped(path: &Path, cap: u64, links: Links) -> Result<Option<Vec<u8>>> {
    let Some(file) = open_regular(path, links)? else { return Ok(None) };
    let meta = file.metadata().with_context(|| format!("could not inspect {}", path.display()))?;
    if meta.len() > cap {
        bail!("{} is larger than {cap} bytes: skipped", path.display());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("could not read {}", path.display()))?;
    if bytes.len() as u64 > cap {
        bail!("{} grew past {cap} bytes while being read: skipped", path.display());
    }
    Ok(Some(bytes))
}

/// Opens a regular file for reading without ever blocking (a FIFO with no writer cannot hang
/// the caller). `Ok(None)` when nothing is there; an error for anything but a regular file.
pub fn open_regular(path: &Path, links: Links) -> Result<Option<File>> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut flags = rustix::fs::OFlags::NONBLOCK;
        if links == Links::Refuse {
            flags |= rustix::fs::OFlags::NOFOLLOW;
        }
        options.custom_flags(flags.bits() as i32);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(err)
            if matches!(err.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) =>
        {
            return Ok(None)
        }
        Err(err) if is_link_refused(&err) => bail!("{} is a symbolic link: skipped", path.display()),
        Err(err) => return Err(err).with_context(|| format!("could not open {}", path.display())),
    };
    let meta = file.metadata().with_context(|| format!("could not inspect {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file (a FIFO, device or directory): skipped", path.display());
    }
    Ok(Some(file))
}

/// `O_NOFOLLOW` on a link fails with `ELOOP` (Linux, the BSDs) or `EMLINK` (FreeBSD).
fn is_link_refused(err: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        let code = err.raw_os_error();
        code == Some(rustix::io::Errno::LOOP.raw_os_error())
            || code == Some(rustix::io::Errno::MLINK.raw_os_error())
    }
    #[cfg(not(unix))]
    {
        let _ = err;
        false
    }
}

/// Why a state directory cannot be trusted with marshal's records, if it cannot.
///
/// It must be a directory owned by this user that no one else can write to, reached through no
/// link someone else owns, in a parent no one else can rename it out of, and its `subdirs` must
/// be real directories of its own: otherwise others could plant links or FIFOs, or swap files,
/// between marshal's checks. Claude Code creates the plugin's data directory with the user's
/// umask; one that others can only read (0755) is narrowed to 0700 on first use, while it holds
/// nothing but marshal's own files. One that others can write to is refused, never narrowed.
#[cfg(unix)]
pub fn untrusted_state_dir(dir: &Path, own_names: &[&str], subdirs: &[&str]) -> Option<String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let me = rustix::process::geteuid().as_raw();
    let owned = |uid: u32| uid == me || uid == 0;
    let link = match fs::symlink_metadata(dir) {
        Ok(link) => link,
        // Not there yet: created 0700 when first written (or its creation fails and says why).
        Err(err)
            if matches!(err.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) =>
        {
            return None
        }
        Err(err) => return Some(format!("unreadable ({err})")),
    };
    if link.file_type().is_symlink() && !owned(link.uid()) {
        return Some(format!("a link owned by user {}, not by this user", link.uid()));
    }
    // Anyone who can write to the parent could rename the directory (or the link) away and put
    // their own in its place; a sticky parent (like /tmp) lets them touch only their own entries.
    if let Some(parent) = dir.parent().and_then(|p| fs::metadata(p).ok()) {
        let parent_mode = parent.permissions().mode() & 0o7777;
        if parent_mode & 0o002 != 0 && parent_mode & 0o1000 == 0 {
            return Some(format!("in a parent directory anyone can write to (mode {parent_mode:o})"));
        }
    }
    let meta = match fs::metadata(dir) {
        Ok(meta) => meta,
        Err(err) => return Some(format!("unreadable ({err})")),
    };
    if !meta.is_dir() {
        return Some("not a directory".into());
    }
    if meta.uid() != me {
        return Some(format!("owned by user {}, not by this user ({me})", meta.uid()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Some(format!("writable by others (mode {mode:o}); chmod 700 it to use it"));
    }
    for sub in subdirs {
        match fs::symlink_metadata(dir.join(sub)) {
            Ok(m) if !m.is_dir() || m.uid() != me || m.permissions().mode() & 0o022 != 0 => {
                return Some(format!("holding a {sub} that is not a private directory of this user's"));
            }
            _ => {}
        }
    }
    if mode & 0o077 != 0 {
        // Readable by others: narrow it when nothing but marshal's own files is there.
        let only_ours = fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .all(|entry| entry.file_name().to_str().is_some_and(|name| own_names.contains(&name)))
        });
        if only_ours {
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        }
    }
    None
}

#[cfg(not(unix))]
pub fn untrusted_state_dir(_dir: &Path, _own_names: &[&str], _subdirs: &[&str]) -> Option<String> {
    None
}

/// Creates a new private directory under the system's temporary directory with an unguessable
/// name (mode 0700, created exclusively, so nothing planted there beforehand is reused).
pub fn private_temp_dir(prefix: &str) -> Result<std::path::PathBuf> {
    let base = std::env::temp_dir();
    for _ in 0..16 {
        let dir = base.join(format!("{prefix}-{:016x}", random_u64()));
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        match builder.create(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err).with_context(|| format!("could not create {}", dir.display())),
        }
    }
    bail!("could not create a private directory in {}", base.display())
}

/// 64 unpredictable bits, from the standard library's per-process random hash keys.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// Opens `path` for appending (and reading, so a writer can check how the file ends),
/// creating it with mode 0600.
pub fn open_append(path: &Path) -> Result<File> {
    let file = private_options()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("could not open {} for appending", path.display()))?;
    regular(file, path)
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
    let file = private_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("could not open {}", path.display()))?;
    regular(file, path)
}

/// Opens (creating, mode 0600) a file used only as a lock.
pub fn open_lock_file(path: &Path) -> Result<File> {
    open_read_write(path).context("could not open the lock file")
}

/// Creates (or truncates) a private file to write from the start, never through a link.
pub fn create_private(path: &Path) -> Result<File> {
    // Not O_TRUNC at open: a FIFO or device must be refused before anything is done to it.
    let file = private_options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    let file = regular(file, path)?;
    file.set_len(0).with_context(|| format!("could not empty {}", path.display()))?;
    Ok(file)
}

/// Replaces `path` with `bytes`: write a temp file in the same directory, flush it to disk,
/// rename it over, and flush the directory. Readers see the old content or the new one, never a
/// mix, and after a crash the file is one or the other. The temp file has a random name and is
/// created exclusively, so nothing planted in its place is written through.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let temp = dir.join(format!(".{name}.{:016x}.tmp", random_u64()));
    let written = private_options()
        .write(true)
        .create_new(true)
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

/// Removes the regular files in `dir` whose names end with one of `suffixes` (the files marshal
/// writes there) and that were last modified more than `max_age` ago; returns how many. A `dir`
/// that is a link is left alone.
pub fn remove_older_than(dir: &Path, suffixes: &[&str], max_age: std::time::Duration) -> usize {
    if fs::symlink_metadata(dir).map_or(true, |m| !m.is_dir()) {
        return 0;
    }
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let now = std::time::SystemTime::now();
    entries
        .flatten()
        .filter(|entry| {
            entry.file_name().to_str().is_some_and(|name| suffixes.iter().any(|s| name.ends_with(s)))
        })
        .filter(|entry| {
            entry.metadata().is_ok_and(|m| {
                m.is_file()
                    && m.modified().is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > max_age))
            })
        })
        .filter(|entry| fs::remove_file(entry.path()).is_ok())
        .count()
}

/// Mode 0600 for a file created, never through a symbolic link at the path itself, and never
/// blocking on a FIFO planted at the path (the open fails or returns at once, and [`regular`]
/// refuses it).
fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        options.mode(0o600).custom_flags(flags.bits() as i32);
    }
    options
}

/// `file`, if it is a regular file: a state file is never a FIFO, a device or a directory.
fn regular(file: File, path: &Path) -> Result<File> {
    let meta = file.metadata().with_context(|| format!("could not inspect {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    Ok(file)
}

/// Creates a new private file with an unguessable name in `dir` (`prefix` then random hex),
/// exclusively: nothing planted beforehand is written through.
pub fn create_new_private(dir: &Path, prefix: &str) -> Result<(std::path::PathBuf, File)> {
    for _ in 0..16 {
        let path = dir.join(format!("{prefix}{:016x}", random_u64()));
        match private_options().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err).with_context(|| format!("could not create {}", path.display())),
        }
    }
    bail!("could not create a new file in {}", dir.display())
}

#[cfg(all(test, unix))]
#[allow(clippy::disallowed_methods)] // tests make FIFOs with mkfifo(1)
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
    fn bounded_reads_refuse_fifos_devices_links_and_oversized_files() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("config.json");
        assert_eq!(read_capped(&file, 10, Links::Follow).unwrap(), None, "missing is nothing");
        fs::write(&file, b"0123456789").unwrap();
        assert_eq!(read_capped(&file, 10, Links::Follow).unwrap().unwrap(), b"0123456789");
        let err = read_capped(&file, 9, Links::Follow).unwrap_err().to_string();
        assert!(err.contains("larger than 9 bytes"), "{err}");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(read_capped(&link, 10, Links::Follow).unwrap().is_some());
        assert!(read_capped(&link, 10, Links::Refuse).unwrap_err().to_string().contains("symbolic link"));
        let device = tmp.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &device).unwrap();
        assert!(read_capped(&device, 10, Links::Follow)
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
        let fifo = tmp.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert!(read_capped(&fifo, 10, Links::Follow)
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
        assert!(read_capped(tmp.path(), 10, Links::Follow).is_err(), "a directory");
    }

    #[test]
    fn writers_never_follow_a_planted_link() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let planted = tmp.path().join("ledger.jsonl");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        assert!(open_append(&planted).is_err());
        assert!(open_read_write(&planted).is_err());
        assert!(create_private(&planted).is_err());
        write_atomic(&planted, b"new").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(fs::read_to_string(&planted).unwrap(), "new", "the link itself was replaced");
    }

    #[test]
    fn a_fifo_planted_at_a_state_file_is_refused_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("logged-problems");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        // No reader: the non-blocking open fails; with one it would open, and is refused.
        assert!(create_private(&fifo).is_err());
        assert!(open_append(&fifo).is_err());
        assert!(open_read_write(&fifo).is_err());
        assert!(open_regular(&fifo, Links::Refuse).is_err());
    }

    #[test]
    fn clean_up_removes_only_its_own_old_files_and_never_through_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        let runs = tmp.path().join("runs");
        fs::create_dir(&runs).unwrap();
        for name in ["s-p-1.out", "s-p-1.err", "thesis.txt"] {
            fs::write(runs.join(name), "x").unwrap();
        }
        assert_eq!(remove_older_than(&runs, &[".out", ".err"], std::time::Duration::ZERO), 2);
        assert!(runs.join("thesis.txt").exists());
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::write(elsewhere.join("old.out"), "x").unwrap();
        let link = tmp.path().join("linked-runs");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        assert_eq!(remove_older_than(&link, &[".out"], std::time::Duration::ZERO), 0);
        assert!(elsewhere.join("old.out").exists());
    }

    #[test]
    fn private_temp_dirs_are_fresh_and_private() {
        let (a, b) = (private_temp_dir("marshal-test").unwrap(), private_temp_dir("marshal-test").unwrap());
        assert_ne!(a, b);
        assert_eq!(mode(&a), 0o700);
        fs::remove_dir(a).unwrap();
        fs::remove_dir(b).unwrap();
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
