//! Where a build writes: a staging directory beside the output, swapped in only when the build is
//! complete. A failed or killed build never mixes new shards with an old manifest: the previous
//! build stays as it was, and the staging directory is removed (by the failing build, or — after
//! `kill -9` — by the next build into the same place, which says so).
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::progress::Progress;
use crate::stream::MANIFEST;

/// A build's staging directory `PARENT/.NAME.building-PID` for the output `PARENT/NAME`.
#[derive(Debug)]
pub struct Staging {
    out: PathBuf,
    dir: PathBuf,
    committed: bool,
}

impl Staging {
    /// Prepares to build into `out`: refuses an existing `out` that is not a data build (so a
    /// wrong `--out` never deletes unrelated files), removes staging and swap directories left by
    /// killed builds, and creates this build's staging directory.
    pub fn begin(out: &Path, progress: &dyn Progress) -> Result<Self> {
        if out.exists() {
            if !out.is_dir() {
                return Err(refused(out, "exists and is not a directory"));
            }
            let empty = std::fs::read_dir(out)
                .map_err(|e| DataError::io(out, e))?
                .next()
                .is_none();
            if !empty && !out.join(MANIFEST).exists() {
                return Err(refused(
                    out,
                    &format!(
                        "exists, is not empty and holds no data build (no {MANIFEST}); choose a new \
                         or empty directory, or remove it"
                    ),
                ));
            }
        }
        let (parent, name) = split(out)?;
        std::fs::create_dir_all(&parent).map_err(|e| DataError::io(&parent, e))?;
        remove_stale(out, &parent, &name, progress)?;
        let dir = parent.join(format!(".{name}.building-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        Ok(Self {
            out: out.to_path_buf(),
            dir,
            committed: false,
        })
    }

    /// Where this build writes.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Puts the finished build in place of `out` (moving a previous build aside first, and
    /// deleting it once the new one is in place).
    pub fn commit(mut self) -> Result<()> {
        let (parent, name) = split(&self.out)?;
        if self.out.exists() {
            let old = parent.join(format!(".{name}.old-{}", std::process::id()));
            std::fs::rename(&self.out, &old).map_err(|e| DataError::io(&self.out, e))?;
            std::fs::rename(&self.dir, &self.out).map_err(|e| DataError::io(&self.out, e))?;
            std::fs::remove_dir_all(&old).map_err(|e| DataError::io(&old, e))?;
        } else {
            std::fs::rename(&self.dir, &self.out).map_err(|e| DataError::io(&self.out, e))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            // A failed build: its partial output goes, the previous build stays.
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn refused(out: &Path, why: &str) -> DataError {
    DataError::io(
        out,
        std::io::Error::new(std::io::ErrorKind::AlreadyExists, why.to_string()),
    )
}

fn split(out: &Path) -> Result<(PathBuf, String)> {
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| refused(out, "needs a directory name (UTF-8) to build into"))?
        .to_string();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name))
}

/// Removes `.NAME.building-PID` and `.NAME.old-PID` directories of processes that no longer run; an
/// old build moved aside by a build killed before it put its own in place is moved back.
fn remove_stale(out: &Path, parent: &Path, name: &str, progress: &dyn Progress) -> Result<()> {
    let entries = std::fs::read_dir(parent).map_err(|e| DataError::io(parent, e))?;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let Some(rest) = file_name.strip_prefix(&format!(".{name}.")) else {
            continue;
        };
        let (kind, pid) = match rest.split_once('-') {
            Some((kind @ ("building" | "old"), pid)) => match pid.parse::<u32>() {
                Ok(pid) => (kind, pid),
                Err(_) => continue,
            },
            _ => continue,
        };
        if running(pid) {
            continue;
        }
        let path = entry.path();
        if kind == "old" && !out.exists() {
            std::fs::rename(&path, out).map_err(|e| DataError::io(&path, e))?;
            progress.message(&format!(
                "restored the previous build {} from {} (left by process {pid}, which stopped)",
                out.display(),
                path.display()
            ));
        } else {
            std::fs::remove_dir_all(&path).map_err(|e| DataError::io(&path, e))?;
            progress.message(&format!(
                "removed {} left by process {pid}, which stopped before finishing",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Whether process `pid` runs (Linux: `/proc/PID` exists). Elsewhere every process is assumed to
/// run, so nothing is removed that might still be written.
fn running(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}
