//! The host system facegate runs on (not the door hardware, which is [`crate::hw`]): which
//! processes hold a device or file open, whether a folder can be written, how much disk space
//! is left, and the systemd notification protocol ([`systemd`]). Everything here only reads
//! (a writability test creates and removes one empty file), except the notifications.

pub mod systemd;

use std::path::{Path, PathBuf};

/// A process holding a file open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// The process name (`/proc/<pid>/comm`), empty when unreadable.
    pub name: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name.is_empty() {
            write!(f, "pid {}", self.pid)
        } else {
            write!(f, "{} (pid {})", self.name, self.pid)
        }
    }
}

/// The processes (other than this one) that have `path` open, found through the
/// `/proc/<pid>/fd` links. Processes of other users are only visible to root; the list may
/// therefore be empty although someone holds the file.
pub fn holders(path: &Path) -> Vec<Holder> {
    holders_of(path, true)
}

/// [`holders`], optionally including this process.
pub(crate) fn holders_of(path: &Path, skip_self: bool) -> Vec<Holder> {
    let Ok(target) = std::fs::canonicalize(path) else {
        return Vec::new();
    };
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in procs.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if skip_self && pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .filter_map(Result::ok)
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == target));
        if holds {
            let name = std::fs::read_to_string(entry.path().join("comm"))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default();
            found.push(Holder { pid, name });
        }
    }
    found.sort_by_key(|h| h.pid);
    found
}

/// "facegate (pid 812), facegate (pid 990)", or a note that none could be seen.
pub fn describe_holders(holders: &[Holder]) -> String {
    if holders.is_empty() {
        "a process this user cannot see (run the check as root to name it)".into()
    } else {
        holders
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether files can be created in `dir`: one empty file is created and removed again.
pub fn check_writable_dir(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".facegate-write-test-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(f) => {
            drop(f);
            std::fs::remove_file(&probe)
                .map_err(|e| format!("created {} but cannot remove it: {e}", probe.display()))
        }
        Err(e) => Err(format!("cannot create files in {}: {e}", dir.display())),
    }
}

/// Where `path` will be written: the path itself when it exists, else its nearest existing
/// ancestor (the folder that would have to allow creating it). `None` when nothing exists
/// (a relative path in a vanished working directory).
pub fn nearest_existing(path: &Path) -> Option<PathBuf> {
    let mut p = if path.is_relative() {
        std::env::current_dir().ok()?.join(path)
    } else {
        path.to_owned()
    };
    loop {
        if p.exists() {
            return Some(p);
        }
        if !p.pop() {
            return None;
        }
    }
}

/// Free and total bytes of the file system holding `path` (which must exist), as an
/// unprivileged user sees them (`f_bavail`).
pub fn disk_space(path: &Path) -> Result<(u64, u64), String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{}: path holds a NUL byte", path.display()))?;
    // SAFETY: statvfs fills the zeroed structure it is given; `c` is a valid C string that
    // lives for the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(format!(
            "{}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    let unit = st.f_frsize as u64;
    Ok((
        (st.f_bavail as u64).saturating_mul(unit),
        (st.f_blocks as u64).saturating_mul(unit),
    ))
}

/// Below this much free space the doctor warns (the gallery, the audit log and sled's
/// write-ahead segments all grow on this disk).
pub const LOW_DISK_BYTES: u64 = 1 << 30;
/// Below this much free space writes are about to fail.
pub const FULL_DISK_BYTES: u64 = 64 << 20;

/// How worrying `free` bytes are: `Ok(())`, or `Err(true)` when writes are about to fail and
/// `Err(false)` when it is only low.
pub fn judge_free_space(free: u64) -> Result<(), bool> {
    if free < FULL_DISK_BYTES {
        Err(true)
    } else if free < LOW_DISK_BYTES {
        Err(false)
    } else {
        Ok(())
    }
}

/// Bytes in a short human form: "812 MB", "3.4 GB", "5.2 MB", "700 B" (powers of 1000).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.0} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("facegate-host-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_file_held_open_names_this_process_only_when_asked() {
        let dir = tmpdir("holders");
        let path = dir.join("db");
        let f = std::fs::File::create(&path).unwrap();
        let me = std::process::id();
        let all = holders_of(&path, false);
        assert!(all.iter().any(|h| h.pid == me), "{all:?}");
        assert!(!holders(&path).iter().any(|h| h.pid == me));
        drop(f);
        assert!(!holders_of(&path, false).iter().any(|h| h.pid == me));
        assert!(holders(&dir.join("missing")).is_empty());
        let h = Holder {
            pid: 812,
            name: "facegate".into(),
        };
        assert_eq!(describe_holders(&[h]), "facegate (pid 812)");
        assert!(describe_holders(&[]).contains("as root"));
    }

    #[test]
    fn writable_folders_and_the_nearest_existing_one() {
        let dir = tmpdir("writable");
        check_writable_dir(&dir).unwrap();
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "test file removed"
        );
        let e = check_writable_dir(&dir.join("nope")).unwrap_err();
        assert!(e.contains("nope"), "{e}");
        assert_eq!(nearest_existing(&dir.join("a/b/c")), Some(dir.clone()));
        assert_eq!(nearest_existing(&dir), Some(dir.clone()));
    }

    #[test]
    fn free_space_is_judged_and_printed() {
        let (free, total) = disk_space(&std::env::temp_dir()).unwrap();
        assert!(total > 0 && free <= total, "{free} {total}");
        assert!(disk_space(Path::new("/no/such/dir")).is_err());
        assert_eq!(judge_free_space(5 << 30), Ok(()));
        assert_eq!(judge_free_space(500 << 20), Err(false));
        assert_eq!(judge_free_space(10 << 20), Err(true));
        assert_eq!(human_bytes(700), "700 B");
        assert_eq!(human_bytes(5_200_000), "5.2 MB");
        assert_eq!(human_bytes(812_000_000), "812 MB");
        assert_eq!(human_bytes(3_400_000_000), "3.4 GB");
    }
}
