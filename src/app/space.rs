//! The free-space guard: every write to the gallery or the audit log first checks that the
//! filesystems they live on keep [`RESERVE_BYTES`] free, and is refused with a clear reason
//! otherwise.
//!
//! Why before, not after: sled 0.34 does not recover from `ENOSPC` inside a running database
//! (seen: routes hanging, threads spinning, tens of thousands of empty files, RSS growing by
//! 20 MB/s). Refused early, sled never meets a full disk; reads keep working, and writes work
//! again as soon as space is freed. `statvfs` costs about a microsecond.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Free space kept in reserve on the data filesystems: writes are refused below it. sled
/// writes in segments of up to 8 MB (and a snapshot beside them), so less is not safe.
pub const RESERVE_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SpaceError {
    #[error(
        "the disk holding {path} is full: {free_mb:.1} MB free, and facegate keeps {reserve_mb} MB \
         in reserve; nothing was written. Free some space (reading keeps working)"
    )]
    Full {
        path: PathBuf,
        free_mb: f64,
        reserve_mb: u64,
    },
    #[error("cannot tell the free space at {path}: {reason}")]
    Statvfs { path: PathBuf, reason: String },
}

/// Bytes free for an unprivileged writer on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> Result<u64, SpaceError> {
    let fail = |reason: String| SpaceError::Statvfs {
        path: path.to_owned(),
        reason,
    };
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| fail(e.to_string()))?;
    // SAFETY: statvfs(3) fills the zeroed struct; the path is a valid C string.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(fail(std::io::Error::last_os_error().to_string()));
    }
    #[allow(clippy::useless_conversion)] // c_ulong / fsblkcnt_t differ by target
    Ok(u64::from(s.f_bavail).saturating_mul(u64::from(s.f_frsize)))
}

/// The paths whose filesystems must keep the reserve free.
#[derive(Debug, Clone)]
pub struct SpaceGuard {
    paths: Vec<PathBuf>,
    reserve: u64,
}

impl SpaceGuard {
    pub fn new(paths: Vec<PathBuf>, reserve: u64) -> SpaceGuard {
        SpaceGuard { paths, reserve }
    }

    pub fn reserve(&self) -> u64 {
        self.reserve
    }

    /// The guarded paths (the gallery's first).
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// `Ok` when every guarded filesystem has more than the reserve free. A path that does
    /// not exist (yet) is checked at its nearest existing parent.
    pub fn check(&self) -> Result<(), SpaceError> {
        for p in &self.paths {
            // A relative path's last ancestor is "": the working directory.
            let existing = p
                .ancestors()
                .map(|a| {
                    if a.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        a
                    }
                })
                .find(|a| a.exists())
                .unwrap_or(p);
            let free = free_bytes(existing)?;
            if free <= self.reserve {
                return Err(SpaceError::Full {
                    path: p.clone(),
                    free_mb: free as f64 / 1e6,
                    reserve_mb: self.reserve >> 20,
                });
            }
        }
        Ok(())
    }
}

/// Whether an I/O error is "no space left on device" (or over a quota).
pub fn is_no_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == std::io::ErrorKind::StorageFull
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_decides() {
        let tmp = std::env::temp_dir();
        let free = free_bytes(&tmp).unwrap();
        assert!(free > 0);
        assert!(SpaceGuard::new(vec![tmp.clone()], 0).check().is_ok());
        let e = SpaceGuard::new(vec![tmp.join("not/yet/there")], u64::MAX)
            .check()
            .unwrap_err();
        assert!(
            e.to_string().contains("full") && e.to_string().contains("not/yet/there"),
            "{e}"
        );
        // A relative path not made yet (the first `gallery add` in a fresh checkout) is checked
        // at the working directory.
        assert!(
            SpaceGuard::new(vec![PathBuf::from("no-such-dir-yet/gallery")], 0)
                .check()
                .is_ok()
        );
    }
}
