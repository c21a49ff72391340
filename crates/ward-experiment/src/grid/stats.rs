//! The grid's summary (`summary.md`, `summary.csv`): per defence, attack and number of
//! compromised sites, the mean over training seeds and attacker draws with its 95%
//! Student-t interval; paired differences against FedAvg and against the unweighted
//! mean (paired by seed and draw, so the spread the seeds share cancels); the floor (the
//! best constant predictor); and each selecting defence's exclusion rates beside those
//! of a random exclusion of the same size.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Cell;

/// The best constant predictor of the grid's metric, the mean over sites of the test
/// accuracy: one class for every site.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Floor {
    /// Its mean test accuracy over the sites.
    pub accuracy: f64,
    /// The class it predicts.
    pub class: u32,
}

/// The class `c` maximising the mean over sites of `c`'s share of the site's test
/// labels; `None` when no site has a test row.
pub(super) fn constant_floor(tests: &[&[u32]]) -> Option<Floor> {
    let tests: Vec<&[u32]> = tests.iter().copied().filter(|t| !t.is_empty()).collect();
    let classes = tests.iter().flat_map(|t| t.iter().copied()).max()? + 1;
    (0..classes)
        .map(|c| {
            let share: f64 = tests
                .iter()
                .map(|t| t.iter().filter(|&&y| y == c).count() as f64 / t.len() as f64)
                .sum();
            Floor {
                accuracy: share / tests.len() as f64,
                class: c,
            }
        })
        .max_by(|a, b| {
            a.accuracy
                .total_cmp(&b.accuracy)
                .then(b.class.cmp(&a.class))
        })
}

/// A mean with its 95% Student-t interval (`None` bounds for a single value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Estimate {
    /// Replicates.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// The interval, when `n >= 2`.
    pub interval: Option<(f64, f64)>,
}

impl Estimate {
    /// The estimate of `v` (`None` when empty).
    pub(super) fn of(v: &[f64]) -> Option<Self> {
        let mean = ward_core::stats::mean(v)?;
        Some(Self {
            n: v.len(),
            mean,
            interval: ward_core::stats::t_interval(v, 0.95).map(|(_, lo, hi)| (lo, hi)),
        })
    }

    /// Whether the interval excludes 0 (a difference the replicates support).
    pub(super) fn excludes_zero(&self) -> bool {
        self.interval.is_some_and(|(lo, hi)| lo > 0.0 || hi < 0.0)
    }

    /// `0.712±0.021` (`±?` for a single value); with `signed`, `+0.012±0.010`, and `*`
    /// when the interval excludes 0.
    fn text(&self, signed: bool) -> String {
        let hw = self.interval.map_or("?".to_string(), |(lo, hi)| {
            format!("{:.3}", (hi - lo) / 2.0)
        });
        if signed {
            let star = if self.excludes_zero() { "*" } else { "" };
            format!("{:+.3}±{hw}{star}", self.mean)
        } else {
            format!("{:.3}±{hw}", self.mean)
        }
    }
}

/// Replicate key: (training seed, attacker draw).
type Rep = (u64, u64);

/// The ok cells of one table entry, by replicate, or the status that kept it empty.
enum Entry<'a> {
    Cells(BTreeMap<Rep, &'a Cell>),
    Status(String),
}

/// The grid's axes in order of appearance.
struct Axes {
    defences: Vec<String>,
    attacks: Vec<String>,
    fs: Vec<usize>,
}

fn axes(cells: &[Cell]) -> Axes {
    let mut a = Axes {
        defences: Vec::new(),
        attacks: Vec::new(),
        fs: Vec::new(),
    };
    for c in cells {
        if !a.defences.contains(&c.defence) {
            a.defences.push(c.defence.clone());
        }
        if c.attack != "none" && !a.attacks.contains(&c.attack) {
            a.attacks.push(c.attack.clone());
        }
        if c.f > 0 && !a.fs.contains(&c.f) {
            a.fs.push(c.f);
        }
    }
    a.fs.sort_unstable();
    a
}

/// The cells of `defence` under `attack` ("none": its clean cells, with the defence f
/// its attacked cells at `f` use) at `f` compromised sites.
fn entry<'a>(cells: &'a [Cell], defence: &str, attack: &str, f: usize) -> Entry<'a> {
    let chosen: Vec<&Cell> = if attack == "none" {
        let df = cells
            .iter()
            .find(|c| c.defence == defence && c.attack != "none" && c.f == f)
            .map_or(0, |c| c.defence_f);
        cells
            .iter()
            .filter(|c| c.defence == defence && c.attack == "none" && c.defence_f == df)
            .collect()
    } else {
        cells
            .iter()
            .filter(|c| c.defence == defence && c.attack == attack && c.f == f)
            .collect()
    };
    let ok: BTreeMap<Rep, &Cell> = chosen
        .iter()
        .filter(|c| c.status == "ok")
        .map(|c| ((c.seed, c.draw), *c))
        .collect();
    if !ok.is_empty() {
        return Entry::Cells(ok);
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &chosen {
        *counts.entry(c.status.as_str()).or_default() += 1;
    }
    Entry::Status(
        counts
            .into_iter()
            .max_by_key(|&(_, n)| n)
            .map_or("not run".to_string(), |(s, _)| s.to_string()),
    )
}

/// One metric of a table entry over its replicates.
fn estimate(e: &Entry<'_>, get: impl Fn(&Cell) -> Option<f64>) -> Option<Estimate> {
    match e {
        Entry::Cells(m) => Estimate::of(&m.values().filter_map(|c| get(c)).collect::<Vec<_>>()),
        Entry::Status(_) => None,
    }
}

/// The paired difference `metric(e) - metric(base)` over the replicates both have. A
/// clean entry pairs by training seed alone (its draw is 0 on both sides).
fn paired(e: &Entry<'_>, base: &Entry<'_>, get: impl Fn(&Cell) -> Option<f64>) -> Option<Estimate> {
    let (Entry::Cells(a), Entry::Cells(b)) = (e, base) else {
        return None;
    };
    let d: Vec<f64> = a
        .iter()
        .filter_map(|(k, c)| Some(get(c)? - get(b.get(k)?)?))
        .collect();
    Estimate::of(&d)
}

/// A selecting defence's exclusions: attacker site-rounds excluded over all attacker
/// site-rounds, honest likewise, and the rate at which a random exclusion of as many
/// site-rounds would hit attackers (excluded over all site-rounds).
fn exclusion(e: &Entry<'_>) -> Option<(f64, f64, f64)> {
    let Entry::Cells(m) = e else { return None };
    let (mut tp, mut fp, mut a, mut h) = (0usize, 0usize, 0usize, 0usize);
    for c in m.values() {
        tp += c.tp?;
        fp += c.fp?;
        a += c.attacker_rounds?;
        h += c.honest_rounds?;
    }
    (a > 0 && h > 0).then(|| {
        (
            tp as f64 / a as f64,
            fp as f64 / h as f64,
            (tp + fp) as f64 / (a + h) as f64,
        )
    })
}

/// A markdown table: `defences` rows, `cols` columns, `text` per entry.
fn table(
    out: &mut String,
    defences: &[String],
    cols: &[String],
    mut text: impl FnMut(&str, &str) -> String,
) {
    let _ = writeln!(out, "| defence | {} |", cols.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(cols.len()));
    for d in defences {
        let row: Vec<String> = cols.iter().map(|a| text(d, a)).collect();
        let _ = writeln!(out, "| {d} | {} |", row.join(" | "));
    }
    out.push('\n');
}

/// One line of `summary.csv`.
pub(super) type Row = [String; 9];

/// The header of `summary.csv`.
pub(super) const CSV_HEAD: [&str; 9] = [
    "table", "f", "defence", "attack", "n", "mean", "low", "high", "status",
];

/// `summary.md` and the rows of `summary.csv`.
pub(super) fn summarise(dataset: &str, cells: &[Cell], floor: Option<Floor>) -> (String, Vec<Row>) {
    let ax = axes(cells);
    let acc = |c: &Cell| c.clean_acc;
    let asr = |c: &Cell| c.asr;
    let mut md = String::new();
    let mut rows: Vec<Row> = Vec::new();
    let _ = writeln!(md, "# Poisoning grid: {dataset}\n");
    let _ = writeln!(
        md,
        "Entries: mean over training seeds x attacker draws ± the half-width of its 95% Student-t interval (`?` for one replicate). Differences are paired by (seed, draw); `*` marks an interval that excludes 0.\n"
    );
    match floor {
        Some(fl) => {
            let _ = writeln!(
                md,
                "**Floor** (best constant predictor: class {} at every site): mean test accuracy {:.3}.\n",
                fl.class, fl.accuracy
            );
        }
        None => md.push_str("**Floor**: no test rows.\n\n"),
    }
    let clean: Vec<f64> = ax
        .defences
        .iter()
        .filter_map(|d| {
            let f0 = ax.fs.first().copied().unwrap_or(0);
            estimate(&entry(cells, d, "none", f0), acc).map(|e| e.mean)
        })
        .collect();
    if let (Some(fl), Some(low)) = (floor, clean.iter().copied().reduce(f64::min)) {
        let _ = writeln!(
            md,
            "Lowest no-attack mean: {low:.3}, {:+.3} above the floor ({}).\n",
            low - fl.accuracy,
            if low - fl.accuracy >= 0.15 {
                "at least 0.15: the grid can rank"
            } else {
                "LESS than 0.15 above the floor: differences here say little"
            }
        );
    }
    let fs: Vec<usize> = if ax.fs.is_empty() {
        vec![0]
    } else {
        ax.fs.clone()
    };
    for &f in &fs {
        let mut cols = vec!["none".to_string()];
        cols.extend(ax.attacks.iter().cloned());
        let _ = writeln!(md, "## f = {f} compromised sites\n");
        for (name, title) in [
            ("accuracy", "Mean test accuracy"),
            ("vs-fedavg", "Accuracy minus FedAvg's (paired)"),
            ("vs-mean", "Accuracy minus the unweighted mean's (paired)"),
        ] {
            let _ = writeln!(md, "### {title}\n");
            if let (Some(fl), "accuracy") = (floor, name) {
                let _ = writeln!(md, "Floor (best constant predictor): {:.3}.\n", fl.accuracy);
            }
            table(&mut md, &ax.defences, &cols, |d, a| {
                let e = entry(cells, d, a, f);
                let est = match name {
                    "accuracy" => estimate(&e, acc),
                    base => {
                        let b = if base == "vs-fedavg" {
                            "fedavg"
                        } else {
                            "mean"
                        };
                        paired(&e, &entry(cells, b, a, f), acc)
                    }
                };
                push_row(&mut rows, name, f, d, a, est, &e);
                match (est, &e) {
                    (Some(x), _) => x.text(name != "accuracy"),
                    (None, Entry::Status(s)) => s.clone(),
                    (None, Entry::Cells(_)) => "n/a".into(),
                }
            });
        }
        let backdoors: Vec<String> = ax
            .attacks
            .iter()
            .filter(|a| cells.iter().any(|c| &c.attack == *a && c.asr.is_some()))
            .cloned()
            .collect();
        if !backdoors.is_empty() {
            let _ = writeln!(
                md,
                "### Backdoor success (triggered test rows classified as the target)\n"
            );
            table(&mut md, &ax.defences, &backdoors, |d, a| {
                let e = entry(cells, d, a, f);
                let est = estimate(&e, asr);
                push_row(&mut rows, "backdoor-success", f, d, a, est, &e);
                est.map_or_else(|| "n/a".into(), |x| x.text(false))
            });
        }
        let selecting: Vec<String> = ax
            .defences
            .iter()
            .filter(|d| cells.iter().any(|c| &c.defence == *d && c.tp.is_some()))
            .cloned()
            .collect();
        if !selecting.is_empty() {
            let _ = writeln!(
                md,
                "### Exclusions: attacker rate / honest rate (random exclusion of as many site-rounds would hit attackers at the rate in brackets)\n"
            );
            table(&mut md, &selecting, &ax.attacks, |d, a| {
                exclusion(&entry(cells, d, a, f)).map_or("n/a".into(), |(t, h, r)| {
                    format!("{t:.2} / {h:.2} [{r:.2}]")
                })
            });
        }
    }
    (md, rows)
}

fn push_row(
    rows: &mut Vec<Row>,
    table: &str,
    f: usize,
    defence: &str,
    attack: &str,
    est: Option<Estimate>,
    e: &Entry<'_>,
) {
    let num = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    rows.push([
        table.into(),
        f.to_string(),
        defence.into(),
        attack.into(),
        est.map_or("0".into(), |x| x.n.to_string()),
        num(est.map(|x| x.mean)),
        num(est.and_then(|x| x.interval.map(|i| i.0))),
        num(est.and_then(|x| x.interval.map(|i| i.1))),
        match e {
            Entry::Cells(_) => "ok".into(),
            Entry::Status(s) => s.clone(),
        },
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(attack: &str, defence: &str, f: usize, seed: u64, draw: u64, acc: f64) -> Cell {
        Cell {
            dataset: "d".into(),
            attack: attack.into(),
            defence: defence.into(),
            fraction: 0.0,
            f,
            defence_f: 0,
            seed,
            draw,
            status: "ok".into(),
            clean_acc: Some(acc),
            acc_drop: None,
            asr: None,
            tp: None,
            fp: None,
            attacker_rounds: None,
            honest_rounds: None,
            reason: String::new(),
            compromised: Vec::new(),
        }
    }

    /// Two sites with test labels [0, 0, 1] and [1, 1, 1, 0]: class 0 scores
    /// (2/3 + 1/4) / 2 = 0.4583, class 1 (1/3 + 3/4) / 2 = 0.5417.
    #[test]
    fn floor_by_hand() {
        let f = constant_floor(&[&[0, 0, 1], &[1, 1, 1, 0], &[]]).unwrap();
        assert_eq!(f.class, 1);
        assert!((f.accuracy - (1.0 / 3.0 + 0.75) / 2.0).abs() < 1e-12);
        assert_eq!(constant_floor(&[&[]]), None);
    }

    /// Paired differences cancel what seeds share: defence scores 0.80, 0.60, 0.70 and
    /// fedavg 0.78, 0.58, 0.68 (seed effects far larger than the gap) give a difference
    /// of exactly +0.02 each time, an interval of width 0 that excludes 0; the unpaired
    /// intervals overlap widely.
    #[test]
    fn paired_differences_by_hand() {
        let mut cells = Vec::new();
        for (seed, (a, b)) in [(0.80, 0.78), (0.60, 0.58), (0.70, 0.68)]
            .iter()
            .enumerate()
        {
            cells.push(cell("ipm", "median", 1, seed as u64, 0, *a));
            cells.push(cell("ipm", "fedavg", 1, seed as u64, 0, *b));
        }
        let e = entry(&cells, "median", "ipm", 1);
        let b = entry(&cells, "fedavg", "ipm", 1);
        let d = paired(&e, &b, |c| c.clean_acc).unwrap();
        assert_eq!(d.n, 3);
        assert!((d.mean - 0.02).abs() < 1e-12);
        let (lo, hi) = d.interval.unwrap();
        assert!((lo - 0.02).abs() < 1e-9 && (hi - 0.02).abs() < 1e-9);
        assert!(d.excludes_zero());
        let m = estimate(&e, |c| c.clean_acc).unwrap();
        assert!(m.interval.unwrap().0 <= 0.78, "{m:?}");
        // The table says so.
        let (md, rows) = summarise("d", &cells, None);
        assert!(md.contains("+0.020±0.000*"), "{md}");
        let r = rows
            .iter()
            .find(|r| r[0] == "vs-fedavg" && r[2] == "median" && r[3] == "ipm")
            .unwrap();
        assert_eq!(r[4], "3");
    }

    /// Exclusion rates: 6 attacker site-rounds of which 3 excluded, 18 honest of which
    /// 3 excluded: rates 0.50 and 0.17; a random exclusion of those 6 of 24 hits
    /// attackers at 0.25.
    #[test]
    fn exclusion_rates_beside_random() {
        let mut c = cell("sign-flip", "krum", 1, 0, 0, 0.7);
        c.tp = Some(3);
        c.fp = Some(3);
        c.attacker_rounds = Some(6);
        c.honest_rounds = Some(18);
        let cells = vec![c];
        let (t, h, r) = exclusion(&entry(&cells, "krum", "sign-flip", 1)).unwrap();
        assert_eq!((t, r), (0.5, 0.25));
        assert!((h - 1.0 / 6.0).abs() < 1e-12);
    }

    /// A refused entry shows its status, not a number.
    #[test]
    fn empty_entries_show_their_status() {
        let mut c = cell("ipm", "krum", 1, 0, 0, 0.0);
        c.status = "refused".into();
        c.clean_acc = None;
        let (md, _) = summarise("d", &[c], None);
        assert!(md.contains("| krum | not run | refused |"), "{md}");
    }
}
