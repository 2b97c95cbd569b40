//! The image service the CRI layer calls: pulls (identical concurrent pulls merged into one,
//! cancelled when every caller has gone), listing, lookup, removal with garbage collection, and
//! filesystem usage. A pull that fails or is cancelled is followed by a sweep, so that nothing it
//! stored stays unreferenced but its verified layers, which are collected after their grace
//! (`collector.rs`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{RwLock, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::archive::ArchiveError;
use super::archive::export::{self, ExportError, Format};
use super::collector::Collector;
pub use super::collector::SnapshotUsers;
use super::pull::{LayerState, Progress, PullError, Puller};
use super::push::{BlobProgress, PushError, Pushed, Pusher};
use super::reference::ImageRef;
use super::registry::Credentials;
use super::store::{ImageRecord, ImageStore, ImageStoreError, Swept};
use crate::error::{Classify, Kind};

/// How often a running pull logs its progress.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// How long after the last running pull ends the allocator's free memory goes back to the system
/// (once the answers are sent and the unpack threads have let go of their buffers).
const TRIM_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("pull {image}: {source}")]
    Pull {
        image: String,
        source: Arc<PullError>,
    },
    #[error("push {image}: {source}")]
    Push {
        image: String,
        source: Box<PushError>,
    },
    #[error("{spec}: no such image")]
    NotFound { spec: String },
    #[error("tag {target}: the new name needs a tag, not a digest")]
    TagDigest { target: String },
    #[error(transparent)]
    Store(#[from] ImageStoreError),
    #[error(transparent)]
    Archive(Box<ArchiveError>),
    #[error(transparent)]
    Export(#[from] ExportError),
}

impl From<ArchiveError> for ImageError {
    fn from(e: ArchiveError) -> ImageError {
        ImageError::Archive(Box::new(e))
    }
}

impl Classify for ImageError {
    fn kind(&self) -> Kind {
        match self {
            ImageError::Pull { source, .. } => source.kind(),
            ImageError::Push { source, .. } => source.kind(),
            ImageError::NotFound { .. } => Kind::NotFound,
            ImageError::TagDigest { .. } => Kind::InvalidArgument,
            ImageError::Store(e) => e.kind(),
            ImageError::Archive(e) => e.kind(),
            ImageError::Export(e) => e.kind(),
        }
    }
}

type Outcome = Option<Result<ImageRecord, Arc<PullError>>>;

/// One pull in flight, shared by every caller that asked for the same reference.
struct Flight {
    /// Tells this flight apart from a later one for the same image.
    id: u64,
    done: watch::Receiver<Outcome>,
    waiters: AtomicUsize,
    cancel: CancellationToken,
    progress: Arc<Progress>,
}

static FLIGHT_IDS: AtomicU64 = AtomicU64::new(0);

type Flights = Arc<Mutex<HashMap<String, Arc<Flight>>>>;

pub struct ImageService {
    puller: Puller,
    pusher: Pusher,
    images: Arc<ImageStore>,
    /// Pulls, pushes, exports and builds hold it shared; removal and every garbage collection
    /// (also the sweeps after a failed pull, see `collector.rs`) hold it exclusively, so a sweep
    /// never sees a committed snapshot whose image record is not written yet.
    gc_lock: Arc<RwLock<()>>,
    flights: Flights,
    collector: Arc<Collector>,
}

impl ImageService {
    pub fn new(puller: Puller, pusher: Pusher) -> ImageService {
        let gc_lock = Arc::new(RwLock::new(()));
        ImageService {
            images: puller.images.clone(),
            collector: Arc::new(Collector::new(
                puller.images.clone(),
                puller.retainer.clone(),
                gc_lock.clone(),
            )),
            puller,
            pusher,
            gc_lock,
            flights: Arc::default(),
        }
    }

    /// Tells the service who else holds snapshots (containers' rootfs), so garbage collection
    /// keeps them. Set once, before the first sweep.
    pub fn set_snapshot_users(&self, users: SnapshotUsers) {
        let _ = self.collector.snapshot_users.set(users);
    }

    /// Removes leftovers of pulls interrupted by a crash, and content no image or container
    /// uses. Call at startup, before any pull.
    pub async fn sweep_leftovers(&self) -> Result<Swept, ImageError> {
        let _exclusive = self.gc_lock.write().await;
        let images = &self.images;
        let recovered = super::flush::recover(images)?;
        if recovered.flushed > 0 {
            tracing::info!(
                marks = recovered.flushed,
                "flushed pulled content the last berthd left unflushed"
            );
        }
        if recovered.images + recovered.snapshots + recovered.blobs > 0 {
            tracing::warn!(
                images = recovered.images,
                snapshots = recovered.snapshots,
                blobs = recovered.blobs,
                "removed pulled content the machine went down before flushing"
            );
        }
        let ingest = images
            .content
            .clear_ingest()
            .map_err(ImageStoreError::from)?;
        let orphans = images
            .snapshots
            .sweep_orphans()
            .map_err(ImageStoreError::from)?;
        let swept = self.collector.collect()?;
        if ingest + orphans + swept.blobs + swept.snapshots > 0 {
            tracing::info!(
                ingest,
                orphans,
                blobs = swept.blobs,
                snapshots = swept.snapshots,
                "removed leftovers of interrupted pulls"
            );
        }
        Ok(swept)
    }

    /// Deletes the blobs and snapshots nothing uses (no image, container, pull or build cache
    /// entry), waiting for running builds to end first.
    pub async fn collect(&self) -> Result<Swept, ImageError> {
        let _exclusive = self.gc_lock.write().await;
        Ok(self.collector.collect()?)
    }

    /// Keeps garbage collection away (a build holds it while its layers have no image yet).
    pub async fn hold_gc(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.gc_lock.clone().read_owned().await
    }

    /// Free space pulls, imports and builds leave on the data filesystem.
    pub fn disk_reserve(&self) -> crate::image::unpack::DiskReserve {
        self.puller.settings.disk_reserve
    }

    pub fn store(&self) -> &ImageStore {
        &self.images
    }

    /// Pulls `image`, joining an identical pull already running. If every caller of a pull
    /// goes away (deadline passed, client disconnected), the pull is cancelled and its partial
    /// work removed.
    pub async fn pull(
        &self,
        image: &ImageRef,
        creds: Option<Credentials>,
    ) -> Result<ImageRecord, ImageError> {
        let key = image.to_string();
        let flight = {
            let mut flights = self.flights.lock().expect("flights lock");
            let flight = flights
                .entry(key.clone())
                .or_insert_with(|| self.start(image.clone(), creds))
                .clone();
            flight.waiters.fetch_add(1, Ordering::SeqCst);
            flight
        };
        let _waiter = Waiter {
            flight: flight.clone(),
            flights: self.flights.clone(),
            key: key.clone(),
        };
        let mut done = flight.done.clone();
        let outcome = done
            .wait_for(Option::is_some)
            .await
            .map(|v| v.clone().expect("waited for Some"));
        match outcome {
            Ok(result) => result.map_err(|source| ImageError::Pull { image: key, source }),
            // The task was aborted under us; only possible if we were the last waiter.
            Err(_) => Err(ImageError::Pull {
                image: key,
                source: Arc::new(PullError::Cancelled),
            }),
        }
    }

    /// Progress of the pull of `image` if one is running.
    pub fn progress(&self, image: &ImageRef) -> Option<Arc<Progress>> {
        let flights = self.flights.lock().expect("flights lock");
        flights.get(&image.to_string()).map(|f| f.progress.clone())
    }

    fn start(&self, image: ImageRef, creds: Option<Credentials>) -> Arc<Flight> {
        let (tx, rx) = watch::channel(None);
        let progress = Arc::new(Progress::default());
        let puller = self.puller.clone();
        let gc_lock = self.gc_lock.clone();
        let flights = self.flights.clone();
        let collector = self.collector.clone();
        let task_progress = progress.clone();
        let cancel = CancellationToken::new();
        let cancelled = cancel.clone();
        let id = FLIGHT_IDS.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(
            async move {
                let key = image.to_string();
                let started = Instant::now();
                let pull = async {
                    let _shared = gc_lock.read().await;
                    let pull = puller.pull(&image, creds.as_ref(), &task_progress);
                    log_progress(&key, started, &task_progress, pull).await
                };
                // Cancelling drops the pull future: its unpackers stop and remove their staging
                // dirs, its claims end, and the sweep below removes what it stored.
                let result = tokio::select! {
                    result = pull => result,
                    () = cancelled.cancelled() => Err(PullError::Cancelled),
                };
                record_pull(&result, started, &task_progress);
                {
                    let mut flights = flights.lock().expect("flights lock");
                    if flights.get(&key).is_some_and(|f| f.id == id) {
                        flights.remove(&key);
                    }
                }
                if result.is_err() {
                    collector.after_failure(&key);
                }
                // Whatever it stored, even a failed pull's finished layers, is flushed now.
                puller.images.request_flush();
                let _ = tx.send(Some(result.map_err(Arc::new)));
                trim_when_idle(flights);
            }
            // Traced as part of the RPC that started it.
            .instrument(tracing::Span::current()),
        );
        Arc::new(Flight {
            id,
            done: rx,
            waiters: AtomicUsize::new(0),
            cancel,
            progress,
        })
    }

    /// Finds `spec` and lists the blobs a push of it sends, for progress; then
    /// [`ImageService::push`] with that list.
    pub fn push_plan(
        &self,
        spec: &str,
    ) -> Result<(ImageRecord, Vec<Arc<BlobProgress>>), ImageError> {
        let record = self
            .images
            .lookup(spec)?
            .ok_or_else(|| ImageError::NotFound {
                spec: spec.to_string(),
            })?;
        let plan = self
            .pusher
            .plan(&record)
            .map_err(|source| ImageError::Push {
                image: spec.to_string(),
                source: Box::new(source),
            })?;
        Ok((record, plan))
    }

    /// Pushes a stored image to `dest`: only the blobs the registry lacks, then its manifest.
    /// Holds the garbage-collection lock shared, so the blobs stay while they are read.
    pub async fn push(
        &self,
        record: &ImageRecord,
        dest: &ImageRef,
        creds: Option<&Credentials>,
        plan: &[Arc<BlobProgress>],
    ) -> Result<Pushed, ImageError> {
        let _shared = self.gc_lock.read().await;
        let pushed = self.pusher.push(record, dest, creds, plan).await;
        pushed.map_err(|source| ImageError::Push {
            image: dest.to_string(),
            source: Box::new(source),
        })
    }

    /// Gives the image `source` names the tag `target` (moved from any image that had it).
    pub fn tag(&self, source: &str, target: &ImageRef) -> Result<ImageRecord, ImageError> {
        let Some(mut record) = self.images.lookup(source)? else {
            return Err(ImageError::NotFound {
                spec: source.to_string(),
            });
        };
        let tag = match (target.digest(), target.repo_tag()) {
            (None, Some(tag)) => tag,
            _ => {
                return Err(ImageError::TagDigest {
                    target: target.to_string(),
                });
            }
        };
        if !record.repo_tags.contains(&tag) {
            record.repo_tags.push(tag);
        }
        Ok(self.images.add(record)?)
    }

    pub fn list(&self, filter: Option<&str>) -> Result<Vec<ImageRecord>, ImageError> {
        Ok(match filter {
            Some(spec) => self.images.lookup(spec)?.into_iter().collect(),
            None => self.images.list()?,
        })
    }

    pub fn status(&self, spec: &str) -> Result<Option<ImageRecord>, ImageError> {
        Ok(self.images.lookup(spec)?)
    }

    /// Removes the image `spec` names with all its tags and digests, then frees what no other
    /// image uses. Removing an unknown image is not an error.
    pub async fn remove(&self, spec: &str) -> Result<Option<Swept>, ImageError> {
        let _exclusive = self.gc_lock.write().await;
        let Some(record) = self.images.lookup(spec)? else {
            return Ok(None);
        };
        self.images.remove(&record.id)?;
        let swept = self.collector.collect()?;
        tracing::info!(image = %record.id, blobs = swept.blobs, snapshots = swept.snapshots, "image removed");
        Ok(Some(swept))
    }

    /// Imports every image of the archive (OCI layout or docker archive) at `path`. Runs to its
    /// end even if the caller goes away; on failure no image is recorded and what it stored is
    /// collected again.
    pub async fn import(&self, path: &Path) -> Result<Vec<ImageRecord>, ImageError> {
        let puller = self.puller.clone();
        let gc_lock = self.gc_lock.clone();
        let path = path.to_path_buf();
        let task = tokio::spawn(async move {
            let _shared = gc_lock.read().await;
            super::archive::import::import(&puller, &path).await
        });
        let result = task
            .await
            .map_err(|e| ArchiveError::Invalid(format!("import stopped: {e}")))
            .and_then(|r| r);
        if let Err(error) = &result {
            tracing::info!(%error, "import failed; removing what it stored");
            self.collector.after_failure("import");
        }
        let records = result?;
        for r in &records {
            tracing::info!(image = %r.id, names = ?r.repo_tags, "image imported");
        }
        Ok(records)
    }

    /// Looks up the images `specs` name and checks their blobs are stored. The returned job
    /// writes the archive; garbage collection waits until it is dropped.
    pub async fn export(&self, specs: &[String], format: Format) -> Result<ExportJob, ImageError> {
        let guard = self.gc_lock.clone().read_owned().await;
        let mut records: Vec<ImageRecord> = Vec::new();
        for spec in specs {
            let record = self
                .images
                .lookup(spec)?
                .ok_or_else(|| ImageError::NotFound { spec: spec.clone() })?;
            if !records.iter().any(|r| r.id == record.id) {
                records.push(record);
            }
        }
        export::check(&self.images.content, &records)?;
        Ok(ExportJob {
            content: self.images.content.clone(),
            records,
            format,
            _guard: guard,
        })
    }

    /// (bytes, inodes) used by image content and snapshots.
    pub fn usage(&self) -> Result<(u64, u64), ImageError> {
        let (snap_bytes, snap_inodes) = self
            .images
            .snapshots
            .usage()
            .map_err(ImageStoreError::from)?;
        let blobs = self.images.content.list().map_err(ImageStoreError::from)?;
        let blob_bytes: u64 = blobs
            .iter()
            .filter_map(|d| self.images.content.size(d))
            .sum();
        Ok((snap_bytes + blob_bytes, snap_inodes + blobs.len() as u64))
    }
}

/// A pull moves hundreds of MiB through short-lived buffers on several threads; glibc keeps what
/// they freed in its arenas. Once no pull runs, that memory goes back to the system.
fn trim_when_idle(flights: Flights) {
    tokio::spawn(async move {
        tokio::time::sleep(TRIM_DELAY).await;
        if flights.lock().expect("flights lock").is_empty() {
            let _ = tokio::task::spawn_blocking(crate::sys::malloc::trim).await;
        }
    });
}

/// An export checked and ready to write.
pub struct ExportJob {
    content: super::content::ContentStore,
    records: Vec<ImageRecord>,
    format: Format,
    _guard: tokio::sync::OwnedRwLockReadGuard<()>,
}

impl ExportJob {
    /// Writes the archive (blocking I/O: run it on a blocking thread).
    pub fn write(self, out: impl std::io::Write) -> Result<(), ImageError> {
        Ok(export::write(
            &self.content,
            &self.records,
            self.format,
            out,
        )?)
    }
}

/// Records a finished pull in the metrics: its result, duration, bytes and layers.
fn record_pull(result: &Result<ImageRecord, PullError>, started: Instant, progress: &Progress) {
    let outcome = match result {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("{:?}", e.kind()),
    };
    let layers = progress.layers();
    let reused = layers
        .iter()
        .filter(|l| l.state == LayerState::Exists)
        .count() as u64;
    crate::telemetry::metrics().record_pull(
        &outcome,
        started.elapsed().as_secs_f64(),
        progress.totals().bytes_done,
        layers.len() as u64 - reused,
        reused,
    );
}

/// Runs a pull, logging its progress every few seconds and once at the end.
async fn log_progress<F>(image: &str, started: Instant, progress: &Progress, pull: F) -> F::Output
where
    F: std::future::Future<Output = Result<ImageRecord, PullError>>,
{
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + PROGRESS_INTERVAL,
        PROGRESS_INTERVAL,
    );
    tokio::pin!(pull);
    let result = loop {
        tokio::select! {
            result = &mut pull => break result,
            _ = ticker.tick() => {
                let t = progress.totals();
                let secs = started.elapsed().as_secs_f64().max(0.001);
                tracing::info!(
                    image,
                    bytes_done = t.bytes_done,
                    bytes_total = t.bytes_total,
                    layers_done = t.layers_done,
                    layers_total = t.layers_total,
                    rate_mib_s = format!("{:.1}", t.bytes_done as f64 / secs / 1048576.0),
                    "pulling"
                );
            }
        }
    };
    let t = progress.totals();
    match &result {
        Ok(record) => tracing::info!(
            image,
            id = %record.id,
            bytes = t.bytes_done,
            layers = t.layers_done,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "pulled"
        ),
        Err(e) => tracing::debug!(image, error = %e, "pull failed"),
    }
    result
}

/// A caller waiting on a flight; the last one to leave an unfinished flight cancels it.
struct Waiter {
    flight: Arc<Flight>,
    flights: Flights,
    key: String,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().expect("flights lock");
        let last = self.flight.waiters.fetch_sub(1, Ordering::SeqCst) == 1;
        if last && self.flight.done.borrow().is_none() {
            self.flight.cancel.cancel();
            if flights
                .get(&self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                flights.remove(&self.key);
            }
            tracing::info!(image = %self.key, "pull cancelled: no caller is waiting any more");
        }
    }
}
