//! Live progress of a pull, per layer: read by the progress logger, the metrics and `berth pull`.

use super::digest::Digest;

/// What a layer of a running pull is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerState {
    /// Already unpacked by an earlier pull: not transferred.
    Exists,
    Waiting,
    Downloading,
    Done,
}

impl LayerState {
    pub fn as_str(self) -> &'static str {
        match self {
            LayerState::Exists => "exists",
            LayerState::Waiting => "waiting",
            LayerState::Downloading => "downloading",
            LayerState::Done => "done",
        }
    }
}

/// One layer's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerProgress {
    pub digest: Digest,
    pub size: u64,
    pub done: u64,
    pub state: LayerState,
}

/// Live progress of one pull, read by the progress logger and the CLI.
#[derive(Debug, Default)]
pub struct Progress {
    layers: std::sync::Mutex<Vec<LayerProgress>>,
}

/// Totals over a pull's layers that are transferred.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub layers_done: usize,
    pub layers_total: usize,
}

impl Progress {
    pub(super) fn set_layers(&self, layers: Vec<LayerProgress>) {
        *self.layers.lock().expect("progress lock") = layers;
    }

    pub(super) fn update(&self, index: usize, f: impl FnOnce(&mut LayerProgress)) {
        if let Some(layer) = self.layers.lock().expect("progress lock").get_mut(index) {
            f(layer);
        }
    }

    /// A copy of every layer's state, bottom layer first.
    pub fn layers(&self) -> Vec<LayerProgress> {
        self.layers.lock().expect("progress lock").clone()
    }

    pub fn totals(&self) -> Totals {
        let layers = self.layers.lock().expect("progress lock");
        let moving = layers.iter().filter(|l| l.state != LayerState::Exists);
        moving.fold(Totals::default(), |t, l| Totals {
            bytes_done: t.bytes_done + l.done,
            bytes_total: t.bytes_total + l.size,
            layers_done: t.layers_done + usize::from(l.state == LayerState::Done),
            layers_total: t.layers_total + 1,
        })
    }
}
