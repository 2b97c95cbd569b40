//! The sweeps that follow a failed or cancelled pull or import, and those that collect the
//! layers a failed pull kept once their grace ends. They take the garbage-collection lock
//! exclusively, like removal does, so they never delete what a running build, push, export or
//! pull (each holding it shared) is using; and they never wait for it, so neither a holder that
//! waits on this pull nor the pulls queued behind a waiting writer can be held up: a sweep that
//! finds the lock held tries again shortly.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::RwLock;

use super::digest::Digest;
use super::retain::Retainer;
use super::store::{ImageStore, ImageStoreError, Swept};

/// How long a sweep that found the garbage-collection lock held waits before trying again.
const RETRY: Duration = Duration::from_millis(500);

/// Reports the snapshot chain ids (and blobs) something outside the image store still uses:
/// containers' rootfs, the build cache.
pub type SnapshotUsers = Box<dyn Fn() -> HashSet<Digest> + Send + Sync>;

/// Garbage collection that keeps what running pulls claim, the layers of failed pulls within
/// their grace, and the snapshots containers use.
pub(super) struct Collector {
    pub(super) images: Arc<ImageStore>,
    pub(super) retainer: Arc<Retainer>,
    pub(super) snapshot_users: OnceLock<SnapshotUsers>,
    /// The image service's lock: shared by pulls, pushes, exports and builds.
    pub(super) gc_lock: Arc<RwLock<()>>,
    /// A sweep is waiting for the lock; it covers any failure that ends meanwhile.
    waiting: AtomicBool,
}

impl Collector {
    pub(super) fn new(
        images: Arc<ImageStore>,
        retainer: Arc<Retainer>,
        gc_lock: Arc<RwLock<()>>,
    ) -> Self {
        Collector {
            images,
            retainer,
            snapshot_users: OnceLock::new(),
            gc_lock,
            waiting: AtomicBool::new(false),
        }
    }

    /// Sweeps; the caller holds the garbage-collection lock exclusively.
    pub(super) fn collect(&self) -> Result<Swept, ImageStoreError> {
        let mut keep = self.snapshot_users.get().map(|f| f()).unwrap_or_default();
        self.retainer.sweep(Instant::now(), |protected| {
            keep.extend(protected.iter().cloned());
            self.images.collect_garbage(&keep)
        })
    }

    /// After a failed or cancelled pull (or import), which no longer holds the lock: removes
    /// what it left that nothing references (but its verified layers), and collects those once
    /// their grace has passed.
    pub(super) fn after_failure(self: &Arc<Self>, what: &str) {
        self.sweep_when_free(what);
        self.collect_when_grace_ends();
    }

    /// Sweeps now if nothing holds the lock, else from a task that tries again every [`RETRY`].
    fn sweep_when_free(self: &Arc<Self>, what: &str) {
        if let Ok(_exclusive) = self.gc_lock.try_write() {
            report(what, self.collect());
            return;
        }
        if self.waiting.swap(true, Ordering::AcqRel) {
            return;
        }
        let collector = self.clone();
        let what = what.to_string();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RETRY).await;
                if let Ok(_exclusive) = collector.gc_lock.try_write() {
                    // Cleared first: a failure that ends while this sweep runs starts its own.
                    collector.waiting.store(false, Ordering::Release);
                    report(&what, collector.collect());
                    return;
                }
            }
        });
    }

    /// Sweeps again when the next kept layer's grace ends (and then for the next one).
    fn collect_when_grace_ends(self: &Arc<Self>) {
        let Some(at) = self.retainer.next_expiry() else {
            return;
        };
        let collector = self.clone();
        tokio::spawn(async move {
            // A little after the grace, so the sweep's clock is surely past it.
            let at = tokio::time::Instant::from_std(at) + Duration::from_millis(10);
            tokio::time::sleep_until(at).await;
            collector.sweep_when_free("the layers of failed pulls after their grace");
            if collector
                .retainer
                .next_expiry()
                .is_some_and(|next| next > at.into_std())
            {
                collector.collect_when_grace_ends();
            }
        });
    }
}

fn report(what: &str, result: Result<Swept, ImageStoreError>) {
    match result {
        Ok(swept) if swept.blobs + swept.snapshots > 0 => tracing::info!(
            what,
            blobs = swept.blobs,
            snapshots = swept.snapshots,
            "collected what a failed pull or import left"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(what, error = %e, "collect what a failed pull or import left"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collector(dir: &std::path::Path) -> Arc<Collector> {
        let images = Arc::new(ImageStore::open_for_tests(dir));
        let lock = Arc::new(RwLock::new(()));
        Arc::new(Collector::new(images, Arc::default(), lock))
    }

    #[tokio::test]
    async fn a_failed_pull_sweeps_only_once_no_build_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let c = collector(dir.path());
        // A layer a running build made and has no image for yet: only its shared hold keeps it.
        let layer = Digest::of(b"build layer");
        c.images.content.put(&layer, b"build layer").unwrap();
        let build = c.gc_lock.clone().read_owned().await;

        c.after_failure("busybox");
        tokio::time::sleep(RETRY * 3).await;
        assert!(c.images.content.contains(&layer), "swept under a build");
        // Pulls still get the lock shared while the sweep waits: it does not queue as a writer.
        let pull = tokio::time::timeout(RETRY, c.gc_lock.read()).await;
        assert!(pull.is_ok(), "a pull waits behind the sweep");
        drop(pull);

        drop(build);
        tokio::time::sleep(RETRY * 3).await;
        assert!(
            !c.images.content.contains(&layer),
            "not swept after the build"
        );
        assert!(!c.waiting.load(Ordering::Acquire));
    }

    #[tokio::test]
    async fn with_the_lock_free_the_sweep_is_done_before_the_failure_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let c = collector(dir.path());
        let blob = Digest::of(b"left by the pull");
        c.images.content.put(&blob, b"left by the pull").unwrap();
        c.after_failure("busybox");
        assert!(!c.images.content.contains(&blob));
    }
}
