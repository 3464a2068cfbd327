//! File modes set by the program itself, whatever the umask: folders it creates 0700, files
//! 0600. sled creates its own files (later too: blobs, snapshots) with the process umask's
//! mode, so opening a database sets the umask to 077 ([`private_umask`]) and [`restrict_tree`]
//! sets the modes of what is already there.

use std::fs::{File, OpenOptions};
use std::path::Path;

use super::{Result, io};

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| io(path, e))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

/// Set the process umask to 077: every file and folder created from now on (by sled, later
/// too) is closed to group and others. Process-wide; facegate holds biometric data and
/// creates nothing meant for other users.
pub fn private_umask() {
    #[cfg(unix)]
    // SAFETY: umask(2) only swaps the process file-mode mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Create `dir` and its missing parents, each created folder 0700 (existing ones are left
/// as they are).
pub fn create_dir_all(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        create_dir_all(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => set_mode(dir, 0o700),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(dir, e)),
    }
}

/// Create a new file (never an existing one) with mode 0600.
pub fn create_new_file(path: &Path) -> Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let f = o.open(path).map_err(|e| io(path, e))?;
    set_mode(path, 0o600)?;
    Ok(f)
}

/// Open a file for reading and writing, creating it 0600 when absent.
pub fn open_rw(path: &Path) -> Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let f = o.open(path).map_err(|e| io(path, e))?;
    set_mode(path, 0o600)?;
    Ok(f)
}

/// A database folder: created 0700 (parents too when missing), and the folder, its
/// sub-folders and its files set to 0700 / 0600.
pub fn restrict_tree(dir: &Path) -> Result<()> {
    private_umask();
    create_dir_all(dir)?;
    set_mode(dir, 0o700)?;
    let entries = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| io(&path, e))?;
        if kind.is_dir() {
            restrict_tree(&path)?;
        } else if kind.is_file() {
            set_mode(&path, 0o600)?;
        }
    }
    Ok(())
}

/// fsync the folder holding `path` (so a new or renamed entry survives a power loss); errors
/// are ignored (some filesystems refuse to sync a folder).
pub fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(f) = File::open(dir) {
            let _ = f.sync_all();
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn modes_are_set_whatever_the_umask() {
        let dir = std::env::temp_dir().join(format!("facegate-fsmode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // A permissive umask for this process's duration of the call (restored after).
        // SAFETY: umask is a plain syscall without memory effects.
        let old = unsafe { libc::umask(0) };
        create_dir_all(&dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/b/f"), b"x").unwrap();
        restrict_tree(&dir.join("a")).unwrap();
        // Files created after the open are private too.
        std::fs::write(dir.join("a/b/g"), b"x").unwrap();
        unsafe { libc::umask(old) };
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("a/b")), 0o700);
        assert_eq!(mode(&dir.join("a/b/f")), 0o600);
        assert_eq!(mode(&dir.join("a/b/g")), 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
