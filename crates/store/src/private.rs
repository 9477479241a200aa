//! Files and folders only their owner may read: the data folder (0700), the SQLite database
//! with its WAL and shared memory, and generated secrets (0600).

use std::path::Path;

/// Creates `dir` (and its parents) if needed and makes it private to its owner.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tighten(dir, 0o700);
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Makes `file` private to its owner (0600): creates it empty first when `create` and it does
/// not exist, so that the program opening it next never makes it readable by others.
pub fn private_file(file: &Path, create: bool) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if create {
            match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        match std::fs::metadata(file) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                tighten(file, 0o600);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, create);
        Ok(())
    }
}

/// Narrows an existing folder's or file's mode. Not fatal when it cannot (a volume owned by
/// another user, as with a random UID in a container): the start goes on and says so.
#[cfg(unix)]
fn tighten(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot make it private to its owner ({mode:o}); others may read it");
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn folders_and_files_become_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("db");
        private_file(&file, true).unwrap();
        assert_eq!(mode(&file), 0o600);
        // An existing file left readable by an older release is tightened.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        private_file(&file, true).unwrap();
        assert_eq!((mode(&dir), mode(&file)), (0o700, 0o600));
        // A file that does not exist and is not to be created is no error.
        private_file(&dir.join("absent"), false).unwrap();
        assert!(!dir.join("absent").exists());
    }
}
