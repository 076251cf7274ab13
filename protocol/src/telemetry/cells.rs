//! The cells a metric is counted in: one atomic per label combination
//! (counters and gauges), or samples waiting to be exported (histograms).

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use super::{Label, Labels};

/// Counts for one metric, one atomic per label combination (`N` of them,
/// `L::COUNT`). Held inline, not boxed: a node's metrics are then one block,
/// and a count touches one cache line instead of a pointer's and its
/// target's (the simulator counts for 10^5 nodes whose memory is cold).
#[derive(Debug)]
pub struct Cells<L, const N: usize> {
    cells: [AtomicU64; N],
    _labels: PhantomData<L>,
}

impl<L: Labels, const N: usize> Default for Cells<L, N> {
    fn default() -> Self {
        const {
            assert!(
                N == L::COUNT,
                "a metric's cells are one per label combination"
            )
        };
        Cells {
            cells: std::array::from_fn(|_| AtomicU64::new(0)),
            _labels: PhantomData,
        }
    }
}

impl<L: Labels, const N: usize> Cells<L, N> {
    /// Adds `n` to the cell of `labels`.
    pub fn add(&self, labels: L, n: u64) {
        self.cells[labels.cell()].fetch_add(n, Relaxed);
    }
    /// Adds one.
    pub fn incr(&self, labels: L) {
        self.add(labels, 1);
    }
    /// Takes `n` away (gauges that go down).
    pub fn sub(&self, labels: L, n: u64) {
        let cell = &self.cells[labels.cell()];
        let _ = cell.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(n)));
    }
    /// Sets the cell (gauges).
    pub fn set(&self, labels: L, v: u64) {
        self.cells[labels.cell()].store(v, Relaxed);
    }
    /// The cell's value.
    pub fn get(&self, labels: L) -> u64 {
        self.cells[labels.cell()].load(Relaxed)
    }
    /// The sum over every label.
    pub fn total(&self) -> u64 {
        self.cells.iter().map(|c| c.load(Relaxed)).sum()
    }
    fn values(&self) -> Values<L> {
        Values {
            values: self.cells.iter().map(|c| c.load(Relaxed)).collect(),
            _labels: PhantomData,
        }
    }
}

impl Cells<(), 1> {
    /// The value of a metric without labels.
    pub fn value(&self) -> u64 {
        self.get(())
    }
}

/// Samples for one histogram, per label (`N` of them, `L::COUNT`),
/// waiting to be exported.
#[derive(Debug)]
pub struct Samples<L, const N: usize> {
    cells: [Mutex<Vec<f64>>; N],
    _labels: PhantomData<L>,
}

/// Samples kept per histogram cell between two exports: an exporter that
/// never runs cannot make them grow without bound.
pub const MAX_PENDING_SAMPLES: usize = 4096;

impl<L: Labels, const N: usize> Default for Samples<L, N> {
    fn default() -> Self {
        const {
            assert!(
                N == L::COUNT,
                "a histogram's cells are one per label combination"
            )
        };
        Samples {
            cells: std::array::from_fn(|_| Mutex::new(Vec::new())),
            _labels: PhantomData,
        }
    }
}

impl<L: Labels, const N: usize> Samples<L, N> {
    /// Records one sample (dropped when [`MAX_PENDING_SAMPLES`] wait).
    pub fn record(&self, labels: L, value: f64) {
        if let Ok(mut pending) = self.cells[labels.cell()].lock() {
            if pending.len() < MAX_PENDING_SAMPLES {
                pending.push(value);
            }
        }
    }
    fn drain(&self, cell: usize) -> Vec<f64> {
        self.cells[cell]
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }
}

/// A copy of one metric's cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Values<L> {
    pub(super) values: Vec<u64>,
    _labels: PhantomData<L>,
}

impl<L: Labels> Default for Values<L> {
    fn default() -> Self {
        Values {
            values: vec![0; L::COUNT],
            _labels: PhantomData,
        }
    }
}

impl<L: Labels> Values<L> {
    /// The value for `labels`.
    pub fn get(&self, labels: L) -> u64 {
        self.values[labels.cell()]
    }
    /// The sum over every label.
    pub fn total(&self) -> u64 {
        self.values.iter().sum()
    }
}

impl Values<()> {
    /// The value of a metric without labels.
    pub fn value(&self) -> u64 {
        self.values[0]
    }
}

impl<L: Label> Values<L> {
    /// Each label value with its count, in declaration order.
    pub fn by_label(&self) -> impl Iterator<Item = (L, u64)> + '_ {
        L::ALL.iter().copied().zip(self.values.iter().copied())
    }
}

/// One cell as an exporter sees it.
#[derive(Debug)]
pub enum CellValue<'a> {
    /// A counter's or gauge's value now.
    Level(&'a AtomicU64),
    /// A histogram's samples since the last call.
    Samples(Vec<f64>),
}

/// How a set of cells shows itself to [`Telemetry::for_each`] and snapshots.
pub(super) trait Visit<L: Labels> {
    fn visit(&self, metric: usize, f: &mut dyn FnMut(usize, usize, CellValue<'_>));
    fn snapshot_values(&self) -> Values<L>;
}

impl<L: Labels, const N: usize> Visit<L> for Cells<L, N> {
    fn visit(&self, metric: usize, f: &mut dyn FnMut(usize, usize, CellValue<'_>)) {
        for (j, c) in self.cells.iter().enumerate() {
            f(metric, j, CellValue::Level(c));
        }
    }
    fn snapshot_values(&self) -> Values<L> {
        self.values()
    }
}

impl<L: Labels, const N: usize> Visit<L> for Samples<L, N> {
    fn visit(&self, metric: usize, f: &mut dyn FnMut(usize, usize, CellValue<'_>)) {
        for j in 0..self.cells.len() {
            f(metric, j, CellValue::Samples(self.drain(j)));
        }
    }
    fn snapshot_values(&self) -> Values<L> {
        Values::default()
    }
}
