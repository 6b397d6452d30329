//! A value recomputed at most once per interval. The public module list reads every stored
//! bundle and checks it (hashing each component, 18 MB for a Python module), and a register page
//! walks the audit log from its start: without this, an unauthenticated flood of page views
//! would make every request redo that work.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the public module list and register pages are served before they are read again.
pub const MODULES_TTL: Duration = Duration::from_secs(10);

/// A value computed at most once per `ttl` (and once at a time), or again after [`Fresh::forget`].
pub struct Fresh<T> {
    ttl: Duration,
    slot: Mutex<Option<(Instant, Arc<T>)>>,
    computing: Mutex<()>,
}

impl<T> Default for Fresh<T> {
    fn default() -> Self {
        Fresh::new(MODULES_TTL)
    }
}

impl<T> Fresh<T> {
    /// Empty, with a time to live.
    pub fn new(ttl: Duration) -> Self {
        Fresh {
            ttl,
            slot: Mutex::new(None),
            computing: Mutex::new(()),
        }
    }

    fn current(&self) -> Option<Arc<T>> {
        let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref()
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// The value, computed by `compute` if it is older than the time to live. Callers that
    /// arrive while it is computed wait for it rather than compute it again.
    pub fn get_or<E>(&self, compute: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E> {
        if let Some(v) = self.current() {
            return Ok(v);
        }
        let _one = self.computing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = self.current() {
            return Ok(v);
        }
        let v = Arc::new(compute()?);
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), v.clone()));
        Ok(v)
    }

    /// Drops the value (something it shows changed).
    pub fn forget(&self) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_flood_of_readers_computes_once_until_it_expires_or_is_forgotten() {
        let fresh = Fresh::new(Duration::from_secs(60));
        let computed = AtomicUsize::new(0);
        let compute = || -> Result<usize, ()> { Ok(computed.fetch_add(1, Ordering::SeqCst)) };
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| {
                    for _ in 0..100 {
                        fresh.get_or(compute).unwrap();
                    }
                });
            }
        });
        assert_eq!(computed.load(Ordering::SeqCst), 1);
        fresh.forget();
        assert_eq!(*fresh.get_or(compute).unwrap(), 1);
        let expired = Fresh::new(Duration::ZERO);
        expired.get_or(compute).unwrap();
        expired.get_or(compute).unwrap();
        assert_eq!(computed.load(Ordering::SeqCst), 4);
    }
}
