//! What garbage collection must keep beyond what image records reference: the content a running
//! pull writes or relies on (its claims), and the verified layers of a failed or cancelled pull,
//! kept for a grace period so that kubelet's retry reuses them instead of downloading them again.
//!
//! A pull claims every digest (blobs and snapshot chain ids) before it stores or checks it, and
//! releases its claims once its image record is written. A sweep decides and deletes while holding
//! the same lock that claims take, so a claim made after a sweep started waits for it to finish:
//! a pull never finds a snapshot present that a concurrent sweep then deletes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::digest::Digest;

#[derive(Debug, Default)]
struct Inner {
    /// Digests claimed by running pulls, with how many pulls claim each.
    claims: HashMap<Digest, usize>,
    /// Layers of failed pulls, and until when each is kept.
    kept: HashMap<Digest, Instant>,
}

/// Claims of running pulls and layers kept after failed ones; shared by the puller and sweeps.
#[derive(Debug, Default)]
pub struct Retainer {
    inner: Mutex<Inner>,
}

impl Retainer {
    /// Starts the claims of one pull; the layers it reports complete are kept for `grace` if the
    /// pull ends without [`Claim::succeeded`].
    pub fn claim(self: &Arc<Self>, grace: Duration) -> Claim {
        Claim {
            retainer: self.clone(),
            claimed: Mutex::default(),
            completed: Mutex::default(),
            grace,
            succeeded: false,
        }
    }

    /// Runs `sweep` with the set of digests it must not delete, holding the lock claims take.
    /// Kept layers whose grace has passed are forgotten first.
    pub fn sweep<T>(&self, now: Instant, sweep: impl FnOnce(&HashSet<Digest>) -> T) -> T {
        let mut inner = self.inner.lock().expect("retainer lock");
        inner.kept.retain(|_, until| *until > now);
        let protected: HashSet<Digest> = inner
            .claims
            .keys()
            .chain(inner.kept.keys())
            .cloned()
            .collect();
        sweep(&protected)
    }

    /// When the next kept layer's grace ends, if any is kept.
    pub fn next_expiry(&self) -> Option<Instant> {
        let inner = self.inner.lock().expect("retainer lock");
        inner.kept.values().min().copied()
    }
}

/// One pull's claims. Dropped (pull failed or cancelled), it keeps the completed layers for the
/// grace period and releases everything else.
pub struct Claim {
    retainer: Arc<Retainer>,
    claimed: Mutex<Vec<Digest>>,
    completed: Mutex<Vec<Digest>>,
    grace: Duration,
    succeeded: bool,
}

impl Claim {
    /// Claims `digests`: no sweep deletes them until this claim ends.
    pub fn add<'d>(&self, digests: impl IntoIterator<Item = &'d Digest>) {
        let mut inner = self.retainer.inner.lock().expect("retainer lock");
        let mut claimed = self.claimed.lock().expect("claim lock");
        for digest in digests {
            *inner.claims.entry(digest.clone()).or_default() += 1;
            claimed.push(digest.clone());
        }
    }

    /// Records a layer that was downloaded, verified and committed (its blob and chain id).
    pub fn completed<'d>(&self, digests: impl IntoIterator<Item = &'d Digest>) {
        let mut completed = self.completed.lock().expect("claim lock");
        completed.extend(digests.into_iter().cloned());
    }

    /// The pull's image record is written: nothing needs keeping.
    pub fn succeeded(mut self) {
        self.succeeded = true;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut inner = self.retainer.inner.lock().expect("retainer lock");
        if !self.succeeded {
            let until = Instant::now() + self.grace;
            let completed = std::mem::take(&mut *self.completed.lock().expect("claim lock"));
            for digest in completed {
                let entry = inner.kept.entry(digest).or_insert(until);
                *entry = (*entry).max(until);
            }
        }
        for digest in self.claimed.lock().expect("claim lock").drain(..) {
            if let Some(count) = inner.claims.get_mut(&digest) {
                *count -= 1;
                if *count == 0 {
                    inner.claims.remove(&digest);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected(r: &Retainer, now: Instant) -> HashSet<Digest> {
        r.sweep(now, |p| p.clone())
    }

    #[test]
    fn claims_protect_until_released_and_count_pulls() {
        let r = Arc::new(Retainer::default());
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let first = r.claim(Duration::from_secs(60));
        first.add([&a, &b]);
        let second = r.claim(Duration::from_secs(60));
        second.add([&a]);
        assert_eq!(
            protected(&r, Instant::now()),
            HashSet::from([a.clone(), b.clone()])
        );
        first.succeeded();
        assert_eq!(protected(&r, Instant::now()), HashSet::from([a.clone()]));
        second.succeeded();
        assert!(protected(&r, Instant::now()).is_empty());
    }

    #[test]
    fn a_failed_pull_keeps_only_its_completed_layers_for_the_grace() {
        let r = Arc::new(Retainer::default());
        let (config, layer, chain, partial) = (
            Digest::of(b"config"),
            Digest::of(b"layer"),
            Digest::of(b"chain"),
            Digest::of(b"partial"),
        );
        let claim = r.claim(Duration::from_secs(300));
        claim.add([&config, &layer, &chain, &partial]);
        claim.completed([&layer, &chain]);
        drop(claim);
        let now = Instant::now();
        assert_eq!(
            protected(&r, now),
            HashSet::from([layer.clone(), chain.clone()])
        );
        let expiry = r.next_expiry().expect("something is kept");
        assert!(expiry > now + Duration::from_secs(299), "{expiry:?}");
        assert!(protected(&r, now + Duration::from_secs(301)).is_empty());
        assert_eq!(r.next_expiry(), None, "expired layers are forgotten");
    }

    #[test]
    fn a_successful_pull_keeps_nothing() {
        let r = Arc::new(Retainer::default());
        let layer = Digest::of(b"layer");
        let claim = r.claim(Duration::from_secs(300));
        claim.add([&layer]);
        claim.completed([&layer]);
        claim.succeeded();
        assert!(protected(&r, Instant::now()).is_empty());
        assert_eq!(r.next_expiry(), None);
    }
}
