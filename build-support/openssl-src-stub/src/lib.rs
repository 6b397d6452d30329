//! A stand-in for `openssl-src` with the API `openssl-sys` calls in vendored mode. OAR never
//! vendors OpenSSL: it links the system library. If a build reaches [`Build::build`], it stops
//! with what to do instead.

use std::path::{Path, PathBuf};

/// What `openssl-sys` asks for in vendored mode.
#[derive(Debug, Default)]
pub struct Build {
    openssl_dir: Option<PathBuf>,
}

/// Where a vendored build would have put its output (never produced here).
#[derive(Debug)]
pub struct Artifacts {
    include_dir: PathBuf,
    lib_dir: PathBuf,
}

impl Build {
    /// A build description.
    pub fn new() -> Build {
        Build::default()
    }

    /// Sets the OpenSSL configuration folder (ignored).
    pub fn openssl_dir<P: AsRef<Path>>(&mut self, path: P) -> &mut Build {
        self.openssl_dir = Some(path.as_ref().to_path_buf());
        self
    }

    /// Stops the build: OAR links the system OpenSSL.
    pub fn build(&mut self) -> Artifacts {
        panic!(
            "OAR links the system OpenSSL and does not build OpenSSL from source: install \
             libssl-dev and pkg-config (`.ci/run` does) and keep OPENSSL_NO_VENDOR=1 (set in \
             .cargo/config.toml)"
        )
    }
}

impl Artifacts {
    /// Headers folder.
    pub fn include_dir(&self) -> &Path {
        &self.include_dir
    }

    /// Libraries folder.
    pub fn lib_dir(&self) -> &Path {
        &self.lib_dir
    }
}
