//! Long commands report their progress and their output to the observer (the `ward`
//! binary turns these into a progress bar and printed lines).

use ward_experiment::Observer;
use ward_experiment::options::{EngineArgs, ReproduceArgs};

/// Records what an observer is told.
#[derive(Default)]
struct Recorder {
    steps: Vec<(usize, usize, String)>,
    lines: Vec<String>,
}

impl Observer for Recorder {
    fn line(&mut self, line: &str) {
        self.lines.push(line.to_string());
    }

    fn step(&mut self, done: usize, total: usize, what: &str) {
        self.steps.push((done, total, what.to_string()));
    }
}

fn cpu() -> EngineArgs {
    EngineArgs {
        device: "cpu".into(),
        engine: "auto".into(),
    }
}

/// `reproduce flamby-heart` reports one step per method, in order, up to the total,
/// then prints its table.
#[test]
fn reproduce_reports_a_step_per_method_then_its_table() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ReproduceArgs {
        out: Some(tmp.path().join("t")),
        seeds: 1,
        no_search: true,
        jobs: None,
        engine: cpu(),
    };
    let mut rec = Recorder::default();
    ward_experiment::reproduce::flamby_heart(args, &mut rec).unwrap();
    let total = rec.steps[0].1;
    assert!(total >= 9, "{:?}", rec.steps);
    let done: Vec<usize> = rec.steps.iter().map(|s| s.0).collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    assert_eq!(*done.last().unwrap(), total);
    assert!(rec.steps.iter().any(|s| s.2 == "fedavg"), "{:?}", rec.steps);
    assert!(
        rec.lines.iter().any(|l| l.contains("fedprox")),
        "{:?}",
        rec.lines
    );
}
