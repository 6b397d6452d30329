//! The on-disk cache of compiled code. Loading compiled code is `unsafe` (wasmtime trusts it to
//! be its own output), so an entry is loaded only if it carries a tag made with a key that only
//! this host holds, over the verified module hash and the exact bytes: a file planted or copied
//! under another module's name, or edited, is recompiled instead. The folder is private to the
//! host's user (0700, files 0600), the key is a random 32 bytes in `.key` (0600), and entries
//! are written under unique temporary names and renamed into place.

use crate::keys::{constant_time_eq, sha256_parts};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Header of an entry: magic, then the 32-byte tag, then the serialized component.
const MAGIC: &[u8; 8] = b"OARCWV1\n";
const TAG_CONTEXT: &str = "oar-cwasm-tag-v1";

/// An open cache folder.
#[derive(Debug)]
pub struct CodeCache {
    dir: PathBuf,
    key: [u8; 32],
}

fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

impl CodeCache {
    /// Opens (creating) the cache in `dir`, with its key.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        private_dir(dir)?;
        let key_path = dir.join(".key");
        let key = match std::fs::read(&key_path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                key
            }
            _ => {
                // A new key: entries tagged under any earlier one no longer load.
                let mut key = [0u8; 32];
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut key);
                let tmp = dir.join(format!(".key.{}.tmp", unique()));
                let mut f = create_private(&tmp)?;
                f.write_all(&key)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &key_path)?;
                key
            }
        };
        Ok(CodeCache {
            dir: dir.to_path_buf(),
            key,
        })
    }

    fn entry(&self, module_hash: &str) -> PathBuf {
        self.dir.join(format!("{module_hash}.cwasm"))
    }

    fn tag(&self, module_hash: &str, code: &[u8]) -> [u8; 32] {
        sha256_parts(&[
            TAG_CONTEXT.as_bytes(),
            &self.key,
            module_hash.as_bytes(),
            code,
        ])
    }

    /// The compiled bytes stored for `module_hash`, if an entry exists and its tag is this
    /// host's for that module and those bytes.
    pub fn load(&self, module_hash: &str) -> Option<Vec<u8>> {
        let path = self.entry(module_hash);
        let bytes = std::fs::read(&path).ok()?;
        let valid = bytes.len() > MAGIC.len() + 32 && bytes.starts_with(MAGIC) && {
            let (tag, code) = bytes[MAGIC.len()..].split_at(32);
            constant_time_eq(tag, &self.tag(module_hash, code))
        };
        if !valid {
            tracing::warn!(path = %path.display(), "ignoring a compiled-code entry this host did not write for this module");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        Some(bytes[MAGIC.len() + 32..].to_vec())
    }

    /// Stores `code` for `module_hash` (best effort: a failure only costs a recompile).
    pub fn store(&self, module_hash: &str, code: &[u8]) {
        let path = self.entry(module_hash);
        let tmp = self.dir.join(format!(".{module_hash}.{}.tmp", unique()));
        let written = create_private(&tmp).and_then(|mut f| {
            f.write_all(MAGIC)?;
            f.write_all(&self.tag(module_hash, code))?;
            f.write_all(code)?;
            f.sync_all()
        });
        if written.and_then(|()| std::fs::rename(&tmp, &path)).is_err() {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(path = %path.display(), "could not write compiled-code cache entry");
        }
    }
}

/// A name part no other writer uses at the same time.
fn unique() -> String {
    let mut r = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut r);
    format!("{}-{}", std::process::id(), hex::encode(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_loads_only_for_its_module_unaltered_and_under_this_cache_s_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CodeCache::open(dir.path()).unwrap();
        cache.store("aa", b"compiled");
        assert_eq!(cache.load("aa").as_deref(), Some(&b"compiled"[..]));
        std::fs::copy(cache.entry("aa"), cache.entry("bb")).unwrap();
        assert_eq!(cache.load("bb"), None, "copied under another name");
        assert!(!cache.entry("bb").exists(), "and removed");
        let mut bytes = std::fs::read(cache.entry("aa")).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(cache.entry("aa"), bytes).unwrap();
        assert_eq!(cache.load("aa"), None, "edited");
        cache.store("aa", b"compiled");
        std::fs::remove_file(dir.path().join(".key")).unwrap();
        let rekeyed = CodeCache::open(dir.path()).unwrap();
        assert_eq!(rekeyed.load("aa"), None, "under another key");
    }
}
