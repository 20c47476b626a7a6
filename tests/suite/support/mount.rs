//! A small tmpfs mounted for one test (root only, as on this project's machines and CI), and
//! unmounted when dropped, also when the test fails.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "64k") at `path`, creating the folder.
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs failed: these fault tests need root (as in CI)");
        Tmpfs { path: path.to_path_buf() }
    }

    pub fn remount_read_only(&self) {
        let status =
            Command::new("mount").args(["-o", "remount,ro"]).arg(&self.path).status().expect("run mount");
        assert!(status.success(), "remounting read-only failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
