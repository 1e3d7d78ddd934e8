//! Atomic writes: a temporary sibling, fsync, rename, fsync of the directory.
use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// A file being written: a temporary sibling of its target until [`AtomicFile::commit`] renames
/// it into place; dropped uncommitted, it is removed and the target is untouched.
///
/// It is created with mode 0666 less the umask (what `File::create` gives), so the committed file
/// is as readable as any other the user writes. Bytes go in through [`Write`], or a library that
/// writes only to a path writes to [`AtomicFile::path`]; a library that replaces that path with a
/// file of its own (safetensors writes a private temporary and renames it) gets its mode reset to
/// the umask's at commit.
#[derive(Debug)]
pub struct AtomicFile {
    temp: NamedTempFile,
    target: PathBuf,
    permissions: Permissions,
}

impl AtomicFile {
    /// Starts writing `target` (its directory is created if missing).
    pub fn create(target: &Path) -> io::Result<Self> {
        let dir = parent(target);
        std::fs::create_dir_all(dir)?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The mode passed to open(2); the kernel applies the umask to it.
            builder.permissions(Permissions::from_mode(0o666));
        }
        let temp = builder.tempfile_in(dir)?;
        let permissions = temp.as_file().metadata()?.permissions();
        Ok(Self {
            temp,
            target: target.to_path_buf(),
            permissions,
        })
    }

    /// The temporary file's path, for libraries that write only to a path.
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// The file the bytes go to.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes the bytes to disk, gives the file the umask's mode and renames it onto the target,
    /// then flushes the directory entry.
    pub fn commit(self) -> io::Result<()> {
        let Self {
            temp,
            target,
            permissions,
        } = self;
        // Reopened by path: a library may have replaced the file this handle was opened on.
        let written = File::open(temp.path())?;
        if written.metadata()?.permissions() != permissions {
            std::fs::set_permissions(temp.path(), permissions)?;
        }
        written.sync_all()?;
        temp.persist(&target).map_err(|e| e.error)?;
        sync_dir(parent(&target))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// Writes `bytes` to `path` atomically (see [`AtomicFile`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// Copies the contents of `src` to `dst` atomically. Unlike `std::fs::copy` the copy does not
/// inherit `src`'s mode: it gets the umask's, as every file the project writes.
pub fn copy_atomic(src: &Path, dst: &Path) -> io::Result<()> {
    let mut from = File::open(src)?;
    let mut file = AtomicFile::create(dst)?;
    io::copy(&mut from, &mut file)?;
    file.commit()
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename in `dir` durable (a no-op where directories cannot be opened, as on Windows).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// The mode `File::create` gives under this process's umask (tests run under any umask).
    fn plain_mode(dir: &Path) -> u32 {
        let probe = dir.join("probe");
        File::create(&probe).unwrap();
        mode(&probe)
    }

    #[test]
    fn a_write_replaces_the_whole_file_with_the_mode_file_create_gives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), plain_mode(dir.path()));
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.json"], "no temporary file is left behind");
    }

    #[test]
    fn an_uncommitted_file_leaves_the_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        write_atomic(&path, b"old").unwrap();
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"half").unwrap();
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_file_a_library_replaced_at_the_path_gets_the_umask_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        let file = AtomicFile::create(&path).unwrap();
        // What safetensors does: its own private temporary, renamed onto the path it was given.
        let private = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
        std::fs::write(private.path(), b"weights").unwrap();
        assert_eq!(mode(private.path()), 0o600);
        private.persist(file.path()).unwrap();
        file.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"weights");
        assert_eq!(mode(&path), plain_mode(dir.path()));
    }

    #[test]
    fn a_copy_takes_the_umask_mode_not_the_source_mode() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("private.json");
        std::fs::write(&src, b"{}").unwrap();
        std::fs::set_permissions(&src, Permissions::from_mode(0o600)).unwrap();
        let dst = dir.path().join("copy.json");
        copy_atomic(&src, &dst).unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), b"{}");
        assert_eq!(mode(&dst), plain_mode(dir.path()));
    }
}
