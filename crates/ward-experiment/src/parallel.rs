//! Independent cells (robust-grid cells, reproduce seeds, folds and methods) run side by
//! side when the machine has the cores and the memory for them.
//!
//! Each cell is a whole federation on its own thread; Burn's kernels inside it share
//! rayon's global pool, so `--jobs 2` on two cores mostly helps small models (tabular
//! MLPs, logistic regression) whose kernels are too small to spread. A cell's result
//! does not depend on what runs beside it: nothing in a run is process-global (no global
//! seed), and Burn splits its work by the pool's size, not by load.

use std::sync::mpsc;

use ward_fl::EngineOptions;
use ward_models::DeviceChoice;

/// Share of the available memory that parallel cells may plan to use.
const MEMORY_SHARE: f64 = 0.5;

/// How many cells run at once: `requested` (`--jobs`), else one per core; capped by
/// memory (half of `MemAvailable` over `per_cell` bytes each), and 1 off the CPU unless
/// asked for. Returns the count and a line saying why.
pub(crate) fn cell_jobs(
    requested: Option<usize>,
    opts: EngineOptions,
    per_cell: u64,
) -> (usize, String) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(n) = requested {
        return (n.max(1), format!("{} cells at a time (--jobs)", n.max(1)));
    }
    if !matches!(opts.device, DeviceChoice::Cpu) {
        return (1, "1 cell at a time (an accelerator runs one)".into());
    }
    let by_memory = available_memory()
        .map(|avail| ((avail as f64 * MEMORY_SHARE) / per_cell.max(1) as f64).floor() as usize);
    match by_memory {
        Some(m) if m < cores => (
            m.max(1),
            format!(
                "{} cells at a time: memory for {m} (about {} MiB each, half of the available memory)",
                m.max(1),
                per_cell / (1 << 20)
            ),
        ),
        _ => (
            cores,
            format!("{cores} cells at a time (one per core; --jobs to change)"),
        ),
    }
}

/// A rough upper bound on one cell's memory: per site and at the server, a few copies of
/// the parameters (model, gradient, optimizer moments, update, control variates), plus a
/// batch's activations (input size times a width factor).
pub(crate) fn cell_bytes(params: usize, sites: usize, batch: usize, input_len: usize) -> u64 {
    const COPIES_PER_SITE: u64 = 6;
    const SERVER_COPIES: u64 = 8;
    const ACTIVATION_FACTOR: u64 = 64;
    let params = params as u64 * 4 * (COPIES_PER_SITE * sites as u64 + SERVER_COPIES);
    let activations = batch as u64 * input_len as u64 * 4 * ACTIVATION_FACTOR;
    params + activations
}

/// [`cell_bytes`] of one run of `spec` on `data` (0 parameters when the model cannot
/// be built: the run itself will then say why).
pub(crate) fn spec_cell_bytes(
    spec: &ward_core::ExperimentSpec,
    data: &ward_data::FederatedDataset,
) -> u64 {
    let params = ward_fl::model_arch(spec, data).map_or(0, |a| a.num_params());
    let input_len = data
        .image
        .map_or(data.feature_names.len(), |(shape, _)| shape.len());
    cell_bytes(params, data.sites.len(), spec.train.batch_size, input_len)
}

/// The jobs for runs of `spec` on `data`, and a line saying why (see [`cell_jobs`]).
pub(crate) fn jobs_for(
    requested: Option<usize>,
    opts: EngineOptions,
    spec: &ward_core::ExperimentSpec,
    data: &ward_data::FederatedDataset,
) -> usize {
    let (n, why) = cell_jobs(requested, opts, spec_cell_bytes(spec, data));
    tracing::info!("{why}");
    n
}

/// `MemAvailable` of `/proc/meminfo`, in bytes (None where there is none).
fn available_memory() -> Option<u64> {
    let text = fs_err::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs `f` on every item, `jobs` at a time, and returns the results in item order.
/// `done(finished)` is called on the calling thread as each result arrives (for
/// progress), with the number finished so far.
pub(crate) fn run_ordered<T, R, F>(
    items: &[T],
    jobs: usize,
    f: F,
    mut done: impl FnMut(usize),
) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let jobs = jobs.clamp(1, items.len().max(1));
    if jobs == 1 {
        return items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let r = f(item);
                done(i + 1);
                r
            })
            .collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<Option<R>> = items.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, f) = (&next, &f);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    if tx.send((i, f(item))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (finished, (i, r)) in rx.iter().enumerate() {
            out[i] = Some(r);
            done(finished + 1);
        }
    });
    out.into_iter()
        .map(|r| r.expect("every item was run: a worker that panicked re-raises its panic"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_item_order_whatever_finishes_first() {
        let items: Vec<u64> = (0..12).collect();
        for jobs in [1, 2, 5, 40] {
            let mut seen = Vec::new();
            let out = run_ordered(
                &items,
                jobs,
                |&i| {
                    // Early items sleep longest, so they finish last.
                    std::thread::sleep(std::time::Duration::from_millis(12 - i));
                    i * i
                },
                |n| seen.push(n),
            );
            assert_eq!(out, items.iter().map(|i| i * i).collect::<Vec<_>>());
            assert_eq!(seen, (1..=12).collect::<Vec<_>>());
        }
        let none: Vec<u64> = Vec::new();
        assert!(run_ordered(&none, 3, |&i| i, |_| {}).is_empty());
    }

    #[test]
    fn jobs_follow_the_request_the_device_and_memory() {
        let cpu = EngineOptions::default();
        assert_eq!(cell_jobs(Some(3), cpu, 1).0, 3);
        assert_eq!(cell_jobs(Some(0), cpu, 1).0, 1);
        // A cell larger than any machine's memory runs alone.
        let (n, why) = cell_jobs(None, cpu, u64::MAX / 4);
        assert_eq!(n, 1, "{why}");
        // ResNet-18 (11.2M parameters) over 4 sites: 11.2M x 4 B x 32 copies.
        assert_eq!(cell_bytes(11_200_000, 4, 0, 0), 11_200_000 * 4 * 32);
    }
}
