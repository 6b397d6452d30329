//! A release folder written as one step: its files go into a fresh sibling folder, which is
//! renamed into place only once everything in it was written (and, by the caller, signed or
//! verified). The folder then holds a whole release or does not exist. The host publishing a
//! release and `oar fetch` receiving one both write through here.

use std::path::{Path, PathBuf};

/// Why a folder was not written: its own I/O, or the caller's filling of it.
#[derive(Debug)]
pub enum StagedError<E> {
    /// Creating, checking or renaming the folder failed (the target holds files, a full disk).
    Io(std::io::Error),
    /// The caller's `fill` failed; nothing was put in place.
    Fill(E),
}

/// Fills `dir` as one step: `fill` writes into a fresh hidden folder beside it, which is renamed
/// to `dir` only if `fill` succeeds; otherwise it is removed. `dir` must not exist, or be an
/// empty folder (which is replaced).
pub fn write_whole<T, E>(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<T, E>,
) -> Result<T, StagedError<E>> {
    if dir.file_name().is_none() {
        return Err(StagedError::Io(std::io::Error::other(format!(
            "{} is not a folder name",
            dir.display()
        ))));
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(StagedError::Io)?;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(StagedError::Io)?
            .next()
            .is_some()
    {
        return Err(StagedError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!(
                "{} already holds files; choose a new folder for the release",
                dir.display()
            ),
        )));
    }
    let staging = tempfile::Builder::new()
        .prefix(".oar-partial-")
        .tempdir_in(&parent)
        .map_err(StagedError::Io)?;
    // On failure the staging folder is dropped, and so removed.
    let out = fill(staging.path()).map_err(StagedError::Fill)?;
    if dir.exists() {
        std::fs::remove_dir(dir).map_err(StagedError::Io)?;
    }
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, dir) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(StagedError::Io(e));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_put_in_place_whole_or_not_at_all() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("release");
        let failed: Result<(), _> = write_whole(&dir, |staging| {
            std::fs::write(staging.join("a"), b"1").unwrap();
            Err("no")
        });
        assert!(matches!(failed, Err(StagedError::Fill("no"))));
        assert_eq!(
            std::fs::read_dir(root.path()).unwrap().count(),
            0,
            "nothing left"
        );
        write_whole::<_, ()>(&dir, |staging| {
            std::fs::write(staging.join("a"), b"1").map_err(|_| ())
        })
        .unwrap();
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"1");
        let again = write_whole::<_, ()>(&dir, |_| Ok(()));
        assert!(
            matches!(again, Err(StagedError::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists)
        );
    }
}
