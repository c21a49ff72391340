//! End-to-end tests of the `ward` binary (one integration-test binary for the crate).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod new_user;

fn ward() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ward"));
    c.env_remove("WARD_LOG");
    c
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run_ok(c: &mut Command) -> Output {
    let o = c.output().expect("ward starts");
    assert!(
        o.status.success(),
        "ward failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `ward run` on the default experiment with `sets` overrides (into `out`) exits with
/// code 2 and a stderr naming every one of `wants`.
fn run_fails_naming(out: &Path, case: usize, sets: &[&str], wants: &[&str]) {
    let mut c = ward();
    c.arg("run").arg("--out").arg(out);
    for s in sets {
        c.args(["--set", s]);
    }
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "case {case}: {err}");
    for w in wants {
        assert!(err.contains(w), "case {case}: {w}: {err}");
    }
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&fs_err::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn default_run_writes_the_run_directory_and_prints_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let o = run_ok(
        ward()
            .args(["run", "--quiet", "--set", "federation.rounds=2", "--out"])
            .arg(&dir),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    for site in [
        "Cleveland",
        "Hungary",
        "Switzerland",
        "VA Long Beach",
        "mean",
    ] {
        assert!(stdout.contains(site), "{stdout}");
    }
    for f in [
        "config.toml",
        "metrics.jsonl",
        "summary.json",
        "model.safetensors",
        "checkpoint.bin",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let s = json(&dir.join("summary.json"));
    assert_eq!(s["rounds"], 2);
    assert_eq!(s["strategy"], "fedavg");
    assert_eq!(s["seed"], 0);
    assert!(s["backend"].as_str().unwrap().starts_with("cpu"));
    assert!(s["ward_version"].is_string());
    assert!(s["wall_time_s"].as_f64().unwrap() > 0.0);
    let per_site = s["per_site"].as_object().unwrap();
    assert_eq!(per_site.len(), 4);
    let mean: f64 = per_site.values().map(|v| v.as_f64().unwrap()).sum::<f64>() / 4.0;
    assert!((mean - s["mean_accuracy"].as_f64().unwrap()).abs() < 1e-12);
    // 2 rounds x 4 sites.
    let metrics = fs_err::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 8);
    let first: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert_eq!(first["round"], 1);
    assert_eq!(first["site"], "Cleveland");
    assert_eq!(first["status"], "accepted");
    // The resolved config runs again as an experiment file.
    let cfg = fs_err::read_to_string(dir.join("config.toml")).unwrap();
    assert!(cfg.contains("rounds = 2"), "{cfg}");
}

#[test]
fn same_seed_gives_bit_identical_results() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let dir = tmp.path().join(name);
        run_ok(
            ward()
                .args(["run", "--quiet", "--set", "federation.rounds=3", "--out"])
                .arg(&dir),
        );
        dir
    };
    let (a, b) = (run("a"), run("b"));
    assert_eq!(
        fs_err::read(a.join("model.safetensors")).unwrap(),
        fs_err::read(b.join("model.safetensors")).unwrap()
    );
    assert_eq!(
        fs_err::read(a.join("metrics.jsonl")).unwrap(),
        fs_err::read(b.join("metrics.jsonl")).unwrap()
    );
}

/// Summary without the wall time.
fn summary_sans_time(dir: &Path) -> serde_json::Value {
    let mut s = json(&dir.join("summary.json"));
    s.as_object_mut().unwrap().remove("wall_time_s");
    s
}

/// `kill -9` at several moments (the checkpoint write included), then `--resume`,
/// gives exactly the uninterrupted run's summary, metrics rows and model bytes.
fn kill_and_resume(strategy_sets: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let mut sets: Vec<String> = vec![
        "federation.rounds=600".into(),
        "train.local-steps=10".into(),
        "name=killtest".into(),
    ];
    sets.extend(strategy_sets.iter().map(|s| s.to_string()));
    let set_args: Vec<String> = sets
        .iter()
        .flat_map(|s| ["--set".to_string(), s.clone()])
        .collect();
    let reference = tmp.path().join("reference");
    run_ok(
        ward()
            .arg("run")
            .arg("--quiet")
            .args(&set_args)
            .arg("--out")
            .arg(&reference),
    );

    // Kill moments spread over the run; several kills of one run chain.
    let schedules: [&[u64]; 3] = [&[40, 90, 160], &[250, 30], &[5, 400, 70, 120]];
    let mut interrupted = 0;
    for (n, delays) in schedules.iter().enumerate() {
        let dir = tmp.path().join(format!("killed{n}"));
        let mut first = true;
        for &ms in delays.iter() {
            let mut c = ward();
            if first {
                c.arg("run")
                    .arg("--quiet")
                    .args(&set_args)
                    .arg("--out")
                    .arg(&dir);
            } else {
                c.args(["run", "--quiet", "--resume"]).arg(&dir);
            }
            let mut child = c
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(ms));
            // SIGKILL: no chance to clean up (std's kill sends SIGKILL on Unix).
            let _ = child.kill();
            let _ = child.wait();
            if !dir.join("summary.json").exists() {
                interrupted += 1;
            }
            if dir.join("config.toml").exists() {
                first = false;
            }
        }
        if first {
            run_ok(
                ward()
                    .arg("run")
                    .arg("--quiet")
                    .args(&set_args)
                    .arg("--out")
                    .arg(&dir),
            );
        } else {
            run_ok(ward().args(["run", "--quiet", "--resume"]).arg(&dir));
        }
        assert_eq!(
            summary_sans_time(&dir),
            summary_sans_time(&reference),
            "schedule {n}"
        );
        assert_eq!(
            fs_err::read_to_string(dir.join("metrics.jsonl")).unwrap(),
            fs_err::read_to_string(reference.join("metrics.jsonl")).unwrap(),
            "schedule {n}"
        );
        assert_eq!(
            fs_err::read(dir.join("model.safetensors")).unwrap(),
            fs_err::read(reference.join("model.safetensors")).unwrap(),
            "schedule {n}"
        );
    }
    // The kills must have hit running processes, or the test proves nothing.
    assert!(
        interrupted >= 5,
        "only {interrupted} kills interrupted a run"
    );
}

#[test]
fn kill_9_and_resume_fedadam_is_exact() {
    kill_and_resume(&[
        "federation.strategy=fedadam",
        "federation.server-lr=0.01",
        "train.lr=0.01",
    ]);
}

#[test]
fn kill_9_and_resume_scaffold_is_exact() {
    kill_and_resume(&["federation.strategy=scaffold", "federation.server-lr=1.0"]);
}

#[test]
fn bad_config_fails_before_training_naming_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[data]\ndataset = \"fed-heart-disease\"\n[train]\nlearning-rate = 0.1\n",
            ":4:",
            "learning-rate",
        ),
        (
            "[data]\ndataset = \"fed-heart-disease\"\n[train]\nlr = \"fast\"\n",
            ":4:",
            "invalid type",
        ),
        (
            "[data]\ndataset = \"fed-heart-disease\"\n[train]\nlr = -1.0\n",
            ":4:",
            "train.lr",
        ),
        (
            "[data]\ndataset = \"fed-heart-disease\"\n[federation]\nstrategy = \"fedadam\"\n",
            ":3:",
            "federation.server-lr",
        ),
        (
            "[data]\ndataset = \"fed-heart-disease\"\n[federation]\nstrategy = \"fedmagic\"\n",
            ":4:",
            "fedmagic",
        ),
        ("[data\ndataset = 1\n", "bad.toml", "invalid TOML"),
    ];
    for (i, (text, line, key)) in cases.iter().enumerate() {
        let p = tmp.path().join("bad.toml");
        fs_err::write(&p, text).unwrap();
        let out = tmp.path().join(format!("out{i}"));
        let o = ward()
            .arg("run")
            .arg(&p)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "case {i}: {err}");
        assert!(
            err.contains("bad.toml") && err.contains(line) && err.contains(key),
            "case {i}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            !out.join("metrics.jsonl").exists(),
            "case {i}: training started"
        );
    }
}

#[test]
fn corrupt_csv_names_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("cohort.csv");
    fs_err::write(
        &csv,
        "age,chol,site,label\n50,200,A,1\n60,abc,A,0\n55,210,B,1\n",
    )
    .unwrap();
    let exp = tmp.path().join("exp.toml");
    fs_err::write(
        &exp,
        "[data]\ndataset = \"csv\"\npath = \"cohort.csv\"\nnumeric = [\"age\", \"chol\"]\nsite-column = \"site\"\ntarget = { column = \"label\", rule = \"class\" }\n",
    )
    .unwrap();
    let o = ward()
        .arg("run")
        .arg(&exp)
        .arg("--out")
        .arg(tmp.path().join("o"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cohort.csv") && err.contains('3') && err.contains("chol"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn resume_of_a_non_run_directory_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = ward()
        .args(["run", "--resume"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("config.toml"), "{err}");
    // Resuming on another engine would not continue bit-identically: refused.
    let other = tmp.path().join("other");
    run_ok(
        ward()
            .args(["run", "--quiet", "--set", "federation.rounds=1", "--out"])
            .arg(&other),
    );
    let o = ward()
        .args(["run", "--quiet", "--engine", "burn", "--resume"])
        .arg(&other)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cpu:native") && err.contains("--engine"),
        "{err}"
    );
    // A corrupt checkpoint is named, not a panic.
    let dir = tmp.path().join("r");
    run_ok(
        ward()
            .args(["run", "--quiet", "--set", "federation.rounds=1", "--out"])
            .arg(&dir),
    );
    fs_err::write(dir.join("checkpoint.bin"), b"WARDCKPT garbage").unwrap();
    let o = ward()
        .args(["run", "--quiet", "--resume"])
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("checkpoint.bin"), "{err}");
}

#[test]
fn every_example_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut n = 0;
    for e in fs_err::read_dir(repo().join("examples")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let out = tmp.path().join(p.file_stem().unwrap());
            // A `# test: --set k=v ...` line shrinks an image example for CI.
            let text = fs_err::read_to_string(&p).unwrap();
            let sets: Vec<String> = text
                .lines()
                .filter_map(|l| l.strip_prefix("# test: "))
                .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .collect();
            run_ok(
                ward()
                    .arg("run")
                    .arg("--quiet")
                    .arg(&p)
                    .args(&sets)
                    .arg("--out")
                    .arg(&out),
            );
            let s = json(&out.join("summary.json"));
            // Reduced image examples train a few rounds only: above chance (1/4) is
            // what they can show.
            let floor = if sets.is_empty() { 0.5 } else { 0.25 };
            assert!(
                s["mean_accuracy"].as_f64().unwrap() > floor,
                "{}: {s}",
                p.display()
            );
            n += 1;
        }
    }
    assert!(n >= 3);
}

#[test]
fn data_describe_prints_every_site() {
    let o = run_ok(ward().args(["data", "describe", "fed-heart-disease"]));
    let s = String::from_utf8_lossy(&o.stdout);
    for want in [
        "Cleveland",
        "304",
        "200",
        "104",
        "Switzerland",
        "46",
        "VA Long Beach",
        "130",
        "chol",
    ] {
        assert!(s.contains(want), "missing {want}: {s}");
    }
    let o = run_ok(
        ward()
            .args(["data", "describe"])
            .arg(repo().join("examples/breast-cancer-dirichlet.toml")),
    );
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("site-4"), "{s}");
    let o = ward()
        .args(["data", "describe", "no-such-dataset"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn burn_engine_gives_the_native_result() {
    let tmp = tempfile::tempdir().unwrap();
    let mut accs = Vec::new();
    for engine in ["native", "burn"] {
        let dir = tmp.path().join(engine);
        run_ok(
            ward()
                .args([
                    "run",
                    "--quiet",
                    "--set",
                    "federation.rounds=2",
                    "--engine",
                    engine,
                    "--out",
                ])
                .arg(&dir),
        );
        let s = json(&dir.join("summary.json"));
        accs.push((
            s["per_site"].clone(),
            s["backend"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(accs[0].1, "cpu:native");
    assert_eq!(accs[1].1, "cpu:burn-flex");
    // Same maths in f32; accuracies at a 0.5 threshold agree.
    assert_eq!(accs[0].0, accs[1].0);
}

/// `ward reproduce flamby-heart-dp` on a corner of FLamby's grid: the table has the
/// columns of flamby-heart; every DP row spent at most its target (RDP, over the 1500
/// steps each site really took) and close to it (the calibration is tight); FLamby's
/// calibration for 15 epochs spent more than it claims; the published FLamby means
/// stand beside the rows (no DP 0.712 and (0.1, 1e-4) 0.606: du Terrail et al. 2022,
/// vendored in data/flamby_heart_dp_results.csv); and the strongest privacy costs
/// accuracy against the weakest.
#[test]
fn reproduce_flamby_heart_dp_accounts_over_the_steps_taken() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dp");
    let o = run_ok(
        ward()
            .args([
                "reproduce",
                "flamby-heart-dp",
                "--seeds",
                "2",
                "--epsilons",
                "0.1,50",
                "--deltas",
                "1e-4",
                "--out",
            ])
            .arg(&dir),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("FLamby"), "{stdout}");
    let csv = fs_err::read_to_string(dir.join("table.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "method,mean,std,flamby,seed0,seed1");
    let methods: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(
        methods,
        [
            "fedavg no-dp",
            "dp-sgd clip-only no-noise",
            "dp-sgd eps=0.1 delta=1e-4",
            "dp-sgd eps=50 delta=1e-4"
        ]
    );
    let flamby: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(3).unwrap())
        .collect();
    assert_eq!(flamby, ["0.712", "", "0.606", "0.702"]);
    let rows: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(dir.join("table.json")).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for r in &rows[2..] {
        let target = r["target_epsilon"].as_f64().unwrap();
        let spent = r["epsilon_rdp"].as_f64().unwrap();
        assert!(spent <= target && spent >= 0.99 * target, "{r}");
        // PRV is the tighter accountant: at most RDP's value for the same noise.
        assert!(r["epsilon_prv"].as_f64().unwrap() <= spent, "{r}");
        let sites = r["sites"].as_array().unwrap();
        assert_eq!(sites.len(), 4);
        for s in sites {
            assert_eq!(s["steps"], 1500, "{s}");
            assert_eq!(s["flamby"]["steps_taken"], 1500, "{s}");
            assert!(s["flamby"]["planned_steps"].as_u64().unwrap() < 1500, "{s}");
        }
        assert!(r["flamby_epsilon_spent"].as_f64().unwrap() > target, "{r}");
    }
    let mean = |i: usize| rows[i]["mean"].as_f64().unwrap();
    assert!(
        mean(2) < mean(3),
        "epsilon 0.1 {} vs 50 {}",
        mean(2),
        mean(3)
    );
    assert!(rows[1]["epsilon_rdp"].is_null());
}

/// The acceptance check of the FLamby reproduction: every FLamby row within 0.03 of the
/// published mean or above it (FLamby's settings, 5 seeds), and the best of Ward's own
/// federated rows (settings chosen by CV inside the training splits) at or above Ward's
/// pooled row minus 0.01. Published means: du Terrail et al. 2022 (FLamby), as listed in
/// data/README.md.
#[test]
fn reproduce_flamby_heart_meets_the_published_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repro");
    let o = run_ok(
        ward()
            .args(["reproduce", "flamby-heart", "--out"])
            .arg(&dir),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("FLamby"), "{stdout}");
    let csv = fs_err::read_to_string(dir.join("table.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "method,mean,std,flamby,seed0,seed1,seed2,seed3,seed4"
    );
    let mut pooled = None;
    let mut best_ward_federated = f64::NEG_INFINITY;
    let mut flamby_rows = 0;
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f.len(), 9, "{l}");
        let mean: f64 = f[1].parse().unwrap();
        let seeds: Vec<f64> = f[4..].iter().map(|v| v.parse().unwrap()).collect();
        assert!((seeds.iter().sum::<f64>() / 5.0 - mean).abs() < 1e-5, "{l}");
        if !f[3].is_empty() {
            let published: f64 = f[3].parse().unwrap();
            assert!(
                mean >= published - 0.03,
                "{}: {mean} vs FLamby {published}",
                f[0]
            );
            flamby_rows += 1;
        }
        if f[0] == "pooled" {
            pooled = Some(mean);
        }
        if f[0].starts_with("ward ") {
            best_ward_federated = best_ward_federated.max(mean);
        }
    }
    assert_eq!(flamby_rows, 12);
    let pooled = pooled.unwrap();
    assert!(
        best_ward_federated >= pooled - 0.01,
        "best federated {best_ward_federated} vs pooled {pooled}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(dir.join("table.json")).unwrap()).unwrap();
    let rows = json.as_array().unwrap();
    assert!(
        rows.iter()
            .all(|r| r["config"]["federation"]["strategy"].is_string())
    );
    assert!(
        rows.iter()
            .all(|r| r["per_seed"].as_array().unwrap().len() == 5)
    );
}

/// `ward bench fl` runs end to end (the numbers of a debug build mean nothing; this only
/// keeps the command working) and prints its ratio table.
#[test]
fn bench_fl_runs_without_the_anchor() {
    let o = run_ok(ward().args(["bench", "fl", "--repeats", "1", "--no-anchor"]));
    let s = String::from_utf8_lossy(&o.stdout);
    for want in [
        "ward run (whole process)",
        "ward rounds, native kernels",
        "local step, Burn",
        "Burn rounds / native rounds",
    ] {
        assert!(s.contains(want), "missing {want}: {s}");
    }
}

/// `ward bench secagg` runs end to end on tiny sizes (the numbers of a debug build mean
/// nothing; this keeps the command working): both graphs, with and without dropouts,
/// the recovered sums within the quantisation bound.
#[test]
fn bench_secagg_runs_without_the_anchor() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("secagg.json");
    let o = run_ok(
        ward()
            .args([
                "bench",
                "secagg",
                "--n",
                "10",
                "--d",
                "2000",
                "--no-anchor",
                "--json",
            ])
            .arg(&out),
    );
    let s = String::from_utf8_lossy(&o.stdout);
    for want in ["9 / 5", "2 / 2", "Flower/ward", "no comparison in this run"] {
        assert!(s.contains(want), "missing {want}: {s}");
    }
    let rows = json(&out);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4, "2 graphs x 2 dropout rates");
    for r in rows {
        let w = &r["ward"];
        assert!(
            w["max_abs_err_sum"].as_f64().unwrap() <= w["err_bound_sum"].as_f64().unwrap(),
            "{r}"
        );
        let dropped = w["dropped"].as_u64().unwrap();
        assert_eq!(
            dropped,
            if r["case"]["drop"].as_f64().unwrap() > 0.0 {
                2
            } else {
                0
            }
        );
        // At least the masked vector: 4 bytes a value.
        assert!(w["up_bytes_per_site"].as_f64().unwrap() > 8000.0, "{r}");
    }
}

fn write_experiment(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    fs_err::write(&p, text).unwrap();
    p
}

/// A compromised site's sign-flipped, scaled update poisons FedAvg; the site is named in
/// the summary and flagged in every metrics row.
#[test]
fn sign_flip_attack_is_recorded_and_degrades_fedavg() {
    let tmp = tempfile::tempdir().unwrap();
    let base = "[data]\ndataset = \"fed-heart-disease\"\n[train]\nlr = 0.01\n";
    let clean = write_experiment(tmp.path(), "clean", base);
    let attacked = write_experiment(
        tmp.path(),
        "attacked",
        &format!(
            "{base}[attack]\nkind = \"sign-flip\"\nscale = 3.0\nsites = [\"VA Long Beach\"]\n"
        ),
    );
    run_ok(
        ward()
            .arg("run")
            .arg("--quiet")
            .arg(&clean)
            .arg("--out")
            .arg(tmp.path().join("c")),
    );
    run_ok(
        ward()
            .arg("run")
            .arg("--quiet")
            .arg(&attacked)
            .arg("--out")
            .arg(tmp.path().join("a")),
    );
    let c = json(&tmp.path().join("c/summary.json"));
    let a = json(&tmp.path().join("a/summary.json"));
    assert_eq!(a["attack"], "sign-flip");
    assert_eq!(a["compromised_sites"], serde_json::json!(["VA Long Beach"]));
    let (ca, aa) = (
        c["mean_accuracy"].as_f64().unwrap(),
        a["mean_accuracy"].as_f64().unwrap(),
    );
    assert!(aa < ca - 0.1, "attacked {aa} vs clean {ca}");
    let metrics = fs_err::read_to_string(tmp.path().join("a/metrics.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for r in &rows {
        assert_eq!(r["compromised"], r["site"] == "VA Long Beach", "{r}");
    }
    // Each round, the scaled poisoned update has the largest norm (what the audit shows
    // a person). Cosine to the aggregate does not single it out on this non-IID data:
    // Switzerland's honest update opposes the aggregate as well (seen in round 1).
    for round in rows.chunks(4) {
        let norm = |r: &serde_json::Value| r["update_norm"].as_f64().unwrap();
        let attacker = round.iter().find(|r| r["compromised"] == true).unwrap();
        assert!(
            round
                .iter()
                .all(|r| r["compromised"] == true || norm(r) < norm(attacker)),
            "{round:?}"
        );
        assert!(round.iter().all(|r| r["cosine_to_aggregate"].is_number()));
    }
}

/// A backdoor planted by two sites makes triggered test inputs (true label not the
/// target) come out as the target; the same trigger on a model trained without the
/// backdoor (one poisoned row in Switzerland) does not.
#[test]
fn backdoor_on_fed_heart_disease_triggers_the_target_label() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = |sites: &str, rate: f64| {
        format!(
            "[data]\ndataset = \"fed-heart-disease\"\n[train]\nlr = 0.01\n[attack]\nkind = \"backdoor\"\nsites = {sites}\ntarget = 0\nrate = {rate}\ntrigger = [{{ feature = 7, value = 4.0 }}, {{ feature = 10, value = 3.0 }}]\n"
        )
    };
    let strong = write_experiment(
        tmp.path(),
        "strong",
        &exp("[\"Cleveland\", \"Hungary\"]", 0.3),
    );
    let weak = write_experiment(tmp.path(), "weak", &exp("[\"Switzerland\"]", 0.01));
    run_ok(
        ward()
            .arg("run")
            .arg("--quiet")
            .arg(&strong)
            .arg("--out")
            .arg(tmp.path().join("s")),
    );
    run_ok(
        ward()
            .arg("run")
            .arg("--quiet")
            .arg(&weak)
            .arg("--out")
            .arg(tmp.path().join("w")),
    );
    let s = json(&tmp.path().join("s/summary.json"));
    let w = json(&tmp.path().join("w/summary.json"));
    let (sa, wa) = (
        s["backdoor_success_mean"].as_f64().unwrap(),
        w["backdoor_success_mean"].as_f64().unwrap(),
    );
    assert!(sa >= 0.8, "backdoor success {sa}");
    assert!(wa <= 0.2, "trigger without the backdoor: {wa}");
}

#[test]
fn kill_9_and_resume_with_a_randomised_attack_is_exact() {
    kill_and_resume(&[
        "attack.kind=gaussian",
        "attack.std=0.05",
        "attack.f=1",
        "train.lr=0.01",
    ]);
}

/// The grid runs end to end on a reduced size, writes its outputs, records skipped cells
/// with their reason, and a rerun with the same --out runs no cell again.
#[test]
fn robust_grid_runs_and_resumes_cell_by_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("grid");
    let args = [
        "robust-grid",
        "--set",
        "federation.rounds=3",
        "--defences",
        "fedavg,median,krum",
        "--attacks",
        "sign-flip,alie,ipm",
        "--out",
    ];
    run_ok(ward().args(args).arg(&out));
    let csv = fs_err::read_to_string(out.join("grid.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "dataset,attack,defence,fraction,f,seed,status,clean_acc,acc_drop,asr,tp,fp"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    // 3 defences x (no attack + 3 attacks at f = 1).
    assert_eq!(rows.len(), 12, "{csv}");
    for r in &rows {
        assert_eq!(r.len(), 12, "{r:?}");
        assert_eq!(r[0], "fed-heart-disease");
        match r[1] {
            // ALIE's z is 0 for n = 4, f = 1 (Baruch et al. 2019): a meaningless row.
            "alie" => assert_eq!(r[6], "skipped"),
            // Krum needs n >= 2f+3 = 5 updates; fed-heart-disease has 4 sites.
            _ if r[2] == "krum" => assert_eq!(r[6], "refused", "{r:?}"),
            "none" => {
                assert_eq!(r[6], "ok");
                assert_eq!(r[8], "0.000000");
            }
            _ => {
                assert_eq!(r[6], "ok", "{r:?}");
                assert_eq!(r[4], "1");
                assert!(r[7].parse::<f64>().unwrap() > 0.0);
            }
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(out.join("grid.json")).unwrap()).unwrap();
    let alie = json
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["attack"] == "alie")
        .unwrap();
    assert!(alie["reason"].as_str().unwrap().contains("z"), "{alie}");
    let krum = json
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["defence"] == "krum")
        .unwrap();
    assert!(krum["reason"].as_str().unwrap().contains("5"), "{krum}");
    assert!(out.join("heatmap_fed-heart-disease_clean_acc.svg").exists());
    let before = fs_err::read_to_string(out.join("grid.jsonl")).unwrap();
    let o = run_ok(ward().args(args).arg(&out));
    assert!(String::from_utf8_lossy(&o.stdout).contains("12 cells"));
    assert_eq!(
        fs_err::read_to_string(out.join("grid.jsonl")).unwrap(),
        before
    );
}

/// A robust rule from `[robust]` runs and is recorded; a rule whose assumption the
/// federation cannot meet stops before training with a clear error.
#[test]
fn robust_aggregator_from_the_experiment_file() {
    let tmp = tempfile::tempdir().unwrap();
    let median = write_experiment(
        tmp.path(),
        "median",
        "[data]\ndataset = \"fed-heart-disease\"\n[federation]\nrounds = 3\n[robust]\naggregator = \"median\"\n",
    );
    run_ok(
        ward()
            .arg("run")
            .arg("--quiet")
            .arg(&median)
            .arg("--out")
            .arg(tmp.path().join("m")),
    );
    assert_eq!(
        json(&tmp.path().join("m/summary.json"))["aggregator"],
        "median"
    );
    let krum = write_experiment(
        tmp.path(),
        "krum",
        "[data]\ndataset = \"fed-heart-disease\"\n[robust]\naggregator = \"krum\"\nf = 1\n",
    );
    let o = ward()
        .arg("run")
        .arg(&krum)
        .arg("--out")
        .arg(tmp.path().join("k"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("krum") && err.contains("at least 5"), "{err}");
    assert!(
        !tmp.path().join("k/metrics.jsonl").exists()
            || fs_err::read_to_string(tmp.path().join("k/metrics.jsonl"))
                .unwrap()
                .is_empty()
    );
}

/// Writes a C-order (or Fortran-order) `.npy` array with npyz.
fn write_npy<T: npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: &[u64],
    values: &[T],
    fortran: bool,
) {
    use npyz::WriterBuilder;
    let file = std::io::BufWriter::new(fs_err::File::create(path).unwrap());
    let order = if fortran {
        npyz::Order::Fortran
    } else {
        npyz::Order::C
    };
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .order(order)
        .writer(file)
        .begin_nd()
        .unwrap();
    w.extend(values.iter().copied()).unwrap();
    w.finish().unwrap();
}

fn aggregate_line(args: &[&str], file: &Path) -> serde_json::Value {
    let o = run_ok(ward().arg("aggregate").args(args).arg(file));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {stdout}");
    serde_json::from_str(lines[0]).unwrap()
}

#[test]
fn aggregate_prints_median_and_krum_checked_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    // Median of rows (1, 10), (5, -2), (3, 4): per column {1, 5, 3} -> 3 and
    // {10, -2, 4} -> 4. float32 input.
    let m = tmp.path().join("m.npy");
    write_npy::<f32>(&m, &[3, 2], &[1., 10., 5., -2., 3., 4.], false);
    let v = aggregate_line(&["--rule", "median"], &m);
    assert_eq!(
        v,
        serde_json::json!({"rule": "median", "result": [3.0, 4.0]})
    );
    // Krum, f = 1, rows 0, 1, 2, 3, 10 (d = 1, float64 input cast to float32). Scores
    // over the n - f - 2 = 2 nearest squared distances: 0 -> 1 + 4 = 5, 1 -> 1 + 1 = 2,
    // 2 -> 1 + 1 = 2, 3 -> 1 + 4 = 5, 10 -> 49 + 64 = 113. The tie 1 / 2 goes to the more
    // central (summed distances 1 -> 87, 2 -> 70): row 2.
    let k = tmp.path().join("k.npy");
    write_npy::<f64>(&k, &[5, 1], &[0., 1., 2., 3., 10.], false);
    let v = aggregate_line(&["--rule", "krum", "--f", "1"], &k);
    assert_eq!(
        v,
        serde_json::json!({"rule": "krum", "result": [2.0], "selected": [2]})
    );
    // Multi-Krum with m = 2 averages rows 1 and 2 (the two lowest scores): 1.5.
    let v = aggregate_line(&["--rule", "multi-krum", "--f", "1", "--m", "2"], &k);
    assert_eq!(
        v,
        serde_json::json!({"rule": "multi-krum", "result": [1.5], "selected": [1, 2]})
    );
}

#[test]
fn aggregate_refuses_bad_inputs_with_user_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name);
    write_npy::<f32>(&p("one_d.npy"), &[3], &[1., 2., 3.], false);
    write_npy::<f32>(&p("three_d.npy"), &[1, 2, 2], &[1., 2., 3., 4.], false);
    write_npy::<f32>(&p("fortran.npy"), &[2, 3], &[1., 2., 3., 4., 5., 6.], true);
    write_npy::<f32>(&p("nan.npy"), &[2, 2], &[1., 2., f32::NAN, 4.], false);
    write_npy::<f64>(&p("inf.npy"), &[2, 2], &[1., 2., 3., f64::INFINITY], false);
    write_npy::<i64>(&p("int.npy"), &[2, 2], &[1, 2, 3, 4], false);
    fs_err::write(p("text.npy"), "not numpy").unwrap();
    write_npy::<f32>(&p("ok.npy"), &[5, 1], &[0., 1., 2., 3., 10.], false);
    let cases: Vec<(Vec<&str>, PathBuf, &str)> = vec![
        (
            vec!["--rule", "median"],
            p("one_d.npy"),
            "expected a 2-D (n, d) array of updates, got shape (3,)",
        ),
        (
            vec!["--rule", "median"],
            p("three_d.npy"),
            "got shape (1, 2, 2)",
        ),
        (
            vec!["--rule", "median"],
            p("fortran.npy"),
            "Fortran-order arrays are not supported",
        ),
        (
            vec!["--rule", "median"],
            p("nan.npy"),
            "the value at row 1, column 0 is NaN",
        ),
        (
            vec!["--rule", "median"],
            p("inf.npy"),
            "the value at row 1, column 1 is infinite",
        ),
        (
            vec!["--rule", "median"],
            p("int.npy"),
            "dtype '<i8' is not supported: expected float32 or float64",
        ),
        (
            vec!["--rule", "median"],
            p("text.npy"),
            "not a readable .npy file",
        ),
        (vec!["--rule", "median"], p("missing.npy"), "missing.npy"),
        (
            vec!["--rule", "krum", "--f", "2"],
            p("ok.npy"),
            "krum with f = 2 needs n >= 2f+3 = 7 updates, got 5",
        ),
        (
            vec!["--rule", "krum"],
            p("ok.npy"),
            "--f: is required for krum",
        ),
        (
            vec!["--rule", "nope"],
            p("ok.npy"),
            "unknown aggregation rule \"nope\"",
        ),
        (
            vec!["--rule", "centered-clipping", "--tau=-1"],
            p("ok.npy"),
            "tau = -1: must be a number > 0",
        ),
        (
            vec!["--rule", "median", "--pre", "bucketing:0"],
            p("ok.npy"),
            "--pre: \"bucketing:0\": the bucket size must be an integer >= 1",
        ),
        (
            vec!["--rule", "fltrust"],
            p("ok.npy"),
            "needs the server's update",
        ),
    ];
    for (args, file, want) in cases {
        let o = ward()
            .arg("aggregate")
            .args(&args)
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?} {}: {stderr}",
            file.display()
        );
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(o.stdout.is_empty());
    }
}

/// `ward data synth` writes one MedMNIST-layout file and contact sheet per site; a
/// reduced FedBN run on the same generator keeps each site's BatchNorm layers in
/// `model.<site>.safetensors`; `ward robustness` scores every corruption and severity on
/// every site with that site's model and writes the tables, plot and example sheets.
#[test]
fn synth_fedbn_run_and_robustness_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("synth");
    run_ok(
        ward()
            .args(["data", "synth", "--sites", "3", "--per-site", "60", "--out"])
            .arg(&data),
    );
    for i in 0..3 {
        assert!(data.join(format!("site-{i}.npz")).exists());
        assert!(data.join(format!("contact_site-{i}.png")).exists());
    }
    let meta = json(&data.join("synth.json"));
    assert!(meta.to_string().contains("site-2"), "{meta}");

    let run = tmp.path().join("run");
    run_ok(
        ward()
            .args(["run", "--quiet"])
            .arg(repo().join("examples/scanner-shift-fedbn.toml"))
            .args([
                "--set",
                "data.synth.per-site=80",
                "--set",
                "data.synth.sites=3",
                "--set",
                "federation.rounds=1",
                "--set",
                "model.channels=[4]",
                "--set",
                "model.hidden=[8]",
                "--out",
            ])
            .arg(&run),
    );
    for i in 0..3 {
        assert!(run.join(format!("model.site-{i}.safetensors")).exists());
    }
    let out = tmp.path().join("rob");
    run_ok(ward().arg("robustness").arg(&run).arg("--out").arg(&out));
    let csv = fs_err::read_to_string(out.join("robustness.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "site,corruption,severity,n,accuracy,auc,clean_accuracy,relative_drop"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(
        rows.len(),
        3 * 12 * 5,
        "3 sites x 12 corruptions x 5 severities"
    );
    for r in &rows {
        let f: Vec<&str> = r.split(',').collect();
        let (acc, clean, drop): (f64, f64, f64) = (
            f[4].parse().unwrap(),
            f[6].parse().unwrap(),
            f[7].parse().unwrap(),
        );
        assert!((0.0..=1.0).contains(&acc));
        assert!((drop - (clean - acc) / clean).abs() < 1e-5, "{r}");
    }
    let report = json(&out.join("robustness.json"));
    assert_eq!(
        report["sites"]["site-1"]["model"].as_str(),
        Some("model.site-1.safetensors")
    );
    assert!(
        fs_err::read_to_string(out.join("robustness.svg"))
            .unwrap()
            .contains("ghosting")
    );
    let examples = fs_err::read_dir(out.join("examples")).unwrap().count();
    assert_eq!(examples, 12 * 5);
    assert!(out.join("examples/motion_s3.png").exists());

    // A table run is refused with a clear error.
    let heart = tmp.path().join("heart");
    run_ok(
        ward()
            .args(["run", "--quiet", "--set", "federation.rounds=1", "--out"])
            .arg(&heart),
    );
    let o = ward().arg("robustness").arg(&heart).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("corrupts images"));
}

#[test]
fn scanner_shift_reproduction_writes_both_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ss");
    run_ok(
        ward()
            .args(["reproduce", "scanner-shift", "--seeds", "1", "--sites", "3"])
            .args([
                "--per-site",
                "60",
                "--rounds",
                "1",
                "--channels",
                "4",
                "--hidden",
                "8",
            ])
            .arg("--out")
            .arg(&out),
    );
    let table = fs_err::read_to_string(out.join("table.csv")).unwrap();
    let methods: Vec<&str> = table
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(
        methods,
        [
            "local site-0",
            "local site-1",
            "local site-2",
            "fedavg",
            "fedprox",
            "fedbn",
            "pooled"
        ]
    );
    assert!(table.starts_with("method,mean,std,flamby,seed0"));
    let cross = fs_err::read_to_string(out.join("cross_site.csv")).unwrap();
    assert_eq!(cross.lines().count(), 1 + 3 * 3);
    assert!(cross.contains("site-1,site-2,"));
}

/// The poisoning grid on the imaging task (12 Dirichlet-partitioned sites of synthetic
/// scanner images, tiny CNN), reduced: fractions of compromised sites, an image backdoor
/// (patch trigger) with its success rate, and sign flipping, under FedAvg and the median.
#[test]
fn robust_grid_on_the_imaging_task() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("grid");
    run_ok(
        ward()
            .arg("robust-grid")
            .arg(repo().join("examples/synth-12-sites-backdoor.toml"))
            .args([
                "--set",
                "data.synth.per-site=200",
                "--set",
                "data.partition.min-rows=20",
                "--set",
                "federation.rounds=2",
                "--set",
                "model.channels=[4]",
                "--set",
                "model.hidden=[8]",
                "--fractions",
                "0,0.2",
                "--attacks",
                "backdoor,sign-flip",
                "--defences",
                "fedavg,median",
                "--out",
            ])
            .arg(&out),
    );
    let csv = fs_err::read_to_string(out.join("grid.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 2 * 3, "{csv}");
    for r in &rows {
        assert_eq!(r[0], "synth");
        assert_eq!(r[6], "ok", "{r:?}");
        if r[1] == "backdoor" {
            assert_eq!(r[4], "2", "20 % of 12 sites");
            let asr: f64 = r[9].parse().unwrap();
            assert!((0.0..=1.0).contains(&asr), "{r:?}");
        }
    }
    assert!(out.join("heatmap_synth_clean_acc.svg").exists());
}

/// `ward run` on hospital files: pydicom's DICOM test files (Debian's python3-pydicom)
/// across two simulated sites, a tiny CNN; the truncated file is skipped and named in
/// summary.json's `data_warnings`, and under `on-bad-file = "fail"` it stops the run
/// with a user error naming it.
#[test]
fn run_on_dicom_files_reports_skipped_files() {
    let pydicom = Path::new("/usr/lib/python3/dist-packages/pydicom/data/test_files");
    assert!(
        pydicom.is_dir(),
        "needs Debian's python3-pydicom test files (apt-get install python3-pydicom)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut csv = String::from("file,label\n");
    // 24 readable images: 12 CT (label 0) and 12 MR (label 1), plus the truncated file.
    for i in 0..12 {
        fs_err::copy(
            pydicom.join("CT_small.dcm"),
            tmp.path().join(format!("ct{i}.dcm")),
        )
        .unwrap();
        fs_err::copy(
            pydicom.join("MR_small.dcm"),
            tmp.path().join(format!("mr{i}.dcm")),
        )
        .unwrap();
        csv.push_str(&format!("ct{i}.dcm,0\nmr{i}.dcm,1\n"));
    }
    fs_err::copy(pydicom.join("MR_truncated.dcm"), tmp.path().join("bad.dcm")).unwrap();
    csv.push_str("bad.dcm,1\n");
    fs_err::write(tmp.path().join("labels.csv"), csv).unwrap();
    let exp = write_experiment(
        tmp.path(),
        "dicom",
        "name = \"dicom\"\n[data]\ndataset = \"dicom\"\npath = \"labels.csv\"\n\
         partition = { kind = \"iid\", sites = 2 }\n\
         images = { task = \"binary\", on-bad-file = \"skip\" }\n\
         reader = { height = 16, width = 16 }\n\
         [model]\nkind = \"cnn\"\nchannels = [4]\nhidden = [8]\nnorm = \"group\"\ngroups = 2\n\
         [train]\noptimizer = \"adam\"\nlr = 0.01\nbatch-size = 4\nlocal-steps = 5\n\
         [federation]\nrounds = 2\n",
    );
    let run = tmp.path().join("run");
    run_ok(
        ward()
            .args(["run", "--quiet"])
            .arg(&exp)
            .arg("--out")
            .arg(&run),
    );
    let s = json(&run.join("summary.json"));
    assert_eq!(s["per_site"].as_object().unwrap().len(), 2, "{s}");
    let warnings = s["data_warnings"].as_array().expect("data_warnings");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].as_str().unwrap().contains("bad.dcm"),
        "{warnings:?}"
    );

    let strict = fs_err::read_to_string(&exp)
        .unwrap()
        .replace(", on-bad-file = \"skip\"", "");
    let exp = write_experiment(tmp.path(), "strict", &strict);
    let o = ward()
        .args(["run", "--quiet"])
        .arg(&exp)
        .arg("--out")
        .arg(tmp.path().join("run2"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.dcm"), "{err}");
}

fn privacy_json(args: &[&str]) -> serde_json::Value {
    let o = run_ok(ward().arg("privacy").args(args));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    serde_json::from_str(stdout.trim()).unwrap()
}

#[test]
fn privacy_calculator_prints_opacus_reference_values() {
    let setting = ["--q", "0.04", "--steps", "2250", "--delta", "1e-5"];
    // Opacus 1.5.4 test_rdp_accountant: sigma 1.5, q 0.04, 2250 steps, delta 1e-5 ->
    // 7.32911117143 (Balle et al. 2020 conversion); Mironov's conversion 8.0738.
    let mut args = vec!["epsilon", "--sigma", "1.5"];
    args.extend(setting);
    let r = privacy_json(&args);
    assert!(
        (r["epsilon"].as_f64().unwrap() - 7.32911117143).abs() < 1e-6,
        "{r}"
    );
    assert!(
        (r["epsilon_mironov"].as_f64().unwrap() - 8.073848277).abs() < 1e-6,
        "{r}"
    );
    assert_eq!(r["accountant"], "rdp");
    assert!(r["bound"].as_str().unwrap().contains("Balle"), "{r}");
    assert_eq!(r["sigma"], 1.5);
    assert_eq!(r["q"], 0.04);
    assert_eq!(r["steps"], 2250);
    assert_eq!(r["delta"], 1e-5);
    // PRV upper estimate at 2249 steps: Opacus 1.5.4 test_prv_accountant 6.777395712.
    let r = privacy_json(&[
        "epsilon",
        "--sigma",
        "1.5",
        "--q",
        "0.04",
        "--steps",
        "2249",
        "--delta",
        "1e-5",
        "--accountant",
        "prv",
    ]);
    assert!(
        (r["epsilon"].as_f64().unwrap() - 6.777395712).abs() < 1e-4,
        "{r}"
    );
    assert_eq!(r["accountant"], "prv");
    assert!(r["bound"].as_str().unwrap().contains("upper"), "{r}");
    assert!(r["prv_estimate"].as_f64().unwrap() < r["epsilon"].as_f64().unwrap());
    // The inverse: the smallest sigma reaching Opacus's epsilon is 1.5 to 1e-4.
    let mut args = vec!["sigma", "--epsilon", "7.32911117143"];
    args.extend(setting);
    let r = privacy_json(&args);
    assert!((r["sigma"].as_f64().unwrap() - 1.5).abs() <= 1e-4, "{r}");
    assert!(r["epsilon"].as_f64().unwrap() <= 7.32911117143, "{r}");
    assert_eq!(r["target_epsilon"], 7.32911117143);
    // Opacus 1.5.4 test_get_noise_multiplier_prv_steps: eps 8 over 2000 steps -> 1.2915.
    let r = privacy_json(&[
        "sigma",
        "--epsilon",
        "8",
        "--q",
        "0.04",
        "--steps",
        "2000",
        "--delta",
        "1e-5",
        "--accountant",
        "prv",
    ]);
    assert!((r["sigma"].as_f64().unwrap() - 1.2910).abs() < 5e-4, "{r}");
    // --help states the default accountant.
    let o = run_ok(ward().args(["privacy", "epsilon", "--help"]));
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("[default: rdp]"), "{help}");
}

#[test]
fn privacy_calculator_refuses_bad_arguments_with_exit_code_2() {
    let cases: [(&[&str], &str); 7] = [
        (
            &[
                "epsilon", "--sigma", "0", "--q", "0.1", "--steps", "10", "--delta", "1e-5",
            ],
            "--sigma",
        ),
        (
            &[
                "epsilon", "--sigma", "1", "--q", "1.5", "--steps", "10", "--delta", "1e-5",
            ],
            "--q",
        ),
        (
            &[
                "epsilon", "--sigma", "1", "--q", "0.1", "--steps", "0", "--delta", "1e-5",
            ],
            "--steps",
        ),
        (
            &[
                "epsilon", "--sigma", "1", "--q", "0.1", "--steps", "10", "--delta", "1",
            ],
            "--delta",
        ),
        (
            &[
                "epsilon", "--sigma", "x", "--q", "0.1", "--steps", "10", "--delta", "1e-5",
            ],
            "--sigma",
        ),
        (
            &[
                "sigma",
                "--epsilon",
                "1",
                "--q",
                "0.1",
                "--steps",
                "10",
                "--delta",
                "1e-5",
                "--accountant",
                "gdp",
            ],
            "--accountant",
        ),
        (
            &[
                "sigma",
                "--epsilon",
                "0.01",
                "--q",
                "0.1",
                "--steps",
                "10",
                "--delta",
                "1e-5",
            ],
            "unreachable",
        ),
    ];
    for (i, (args, needle)) in cases.iter().enumerate() {
        let o = ward().arg("privacy").args(*args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "case {i}: {err}");
        assert!(err.contains(needle), "case {i}: {err}");
        assert!(o.stdout.is_empty(), "case {i}");
    }
}

/// FLTrust in `ward run`: the server trains on a root sample of 50 training rows drawn
/// from the sites (recorded in the summary, removed from the sites); Cleveland, the
/// largest hospital, flips the sign of its update, which then points away from the
/// server's, so its trust score is 0 in every one of the 15 rounds. (A flipping VA Long
/// Beach or Switzerland is not excluded every round: on this non-IID data their honest
/// updates often oppose the server's already, so the flipped ones agree with it.)
#[test]
fn fltrust_gives_a_sign_flip_attacker_zero_trust() {
    let tmp = tempfile::tempdir().unwrap();
    let attack = "[attack]\nkind = \"sign-flip\"\nscale = 3.0\nsites = [\"Cleveland\"]\n";
    let base = "[data]\ndataset = \"fed-heart-disease\"\n[train]\nlr = 0.01\n";
    let ft = write_experiment(
        tmp.path(),
        "fltrust",
        &format!("{base}[robust]\naggregator = \"fltrust\"\nroot-samples = 50\n{attack}"),
    );
    run_ok(
        ward()
            .arg("run")
            .arg("--quiet")
            .arg(&ft)
            .arg("--out")
            .arg(tmp.path().join("ft")),
    );
    let s = json(&tmp.path().join("ft/summary.json"));
    assert_eq!(s["aggregator"], "fltrust");
    let root = s["root_sample"].as_object().unwrap();
    let taken: usize = root.values().map(|v| v.as_array().unwrap().len()).sum();
    assert_eq!(taken, 50, "{root:?}");
    let metrics = fs_err::read_to_string(tmp.path().join("ft/metrics.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 15 * 4);
    // Training rows per site (fed-heart-disease's split: 200, 171, 30, 85) less the
    // rows moved to the server: no row is used twice.
    let full = [
        ("Cleveland", 200),
        ("Hungary", 171),
        ("Switzerland", 30),
        ("VA Long Beach", 85),
    ];
    for r in &rows {
        let site = r["site"].as_str().unwrap();
        let n = full.iter().find(|(s, _)| *s == site).unwrap().1;
        let moved = root.get(site).map_or(0, |v| v.as_array().unwrap().len());
        assert_eq!(
            r["num_examples"].as_u64().unwrap() as usize,
            n - moved,
            "{r}"
        );
        let w = r["aggregation_weight"].as_f64().unwrap();
        if r["compromised"] == true {
            assert_eq!(w, 0.0, "the attacker got weight: {r}");
        }
    }
    // The honest sites carry all the weight each round (or, in a round where no update
    // agrees with the server, nobody does).
    for round in rows.chunks(4) {
        let honest: f64 = round
            .iter()
            .filter(|r| r["compromised"] == false)
            .map(|r| r["aggregation_weight"].as_f64().unwrap())
            .sum();
        assert!((honest - 1.0).abs() < 1e-9 || honest == 0.0, "{round:?}");
    }
}

#[test]
fn kill_9_and_resume_with_fltrust_is_exact() {
    kill_and_resume(&[
        "robust.aggregator=fltrust",
        "robust.root-samples=40",
        "train.lr=0.01",
    ]);
}

/// DP-SGD at the sites and adaptive central DP at the server: their random streams,
/// steps and clip norm are checkpointed, so `kill -9` and `--resume` give exactly the
/// uninterrupted run (issue 6).
#[test]
fn kill_9_and_resume_with_dp_is_exact() {
    kill_and_resume(&[
        "privacy.dp-sgd.clip=1.1",
        "privacy.dp-sgd.noise-multiplier=1.0",
        "privacy.dp-sgd.delta=0.001",
        "privacy.central.clip=0.1",
        "privacy.central.adaptive=true",
        "privacy.central.noise-multiplier=0.5",
        "privacy.central.count-noise=1.0",
        "privacy.central.delta=0.001",
        "train.lr=0.01",
    ]);
}

/// `ward aggregate` with the clustering and filtering rules, on inputs checked by hand
/// in their unit tests (dnc.rs, flame.rs, clipped_clustering.rs).
#[test]
fn aggregate_runs_dnc_flame_signguard_and_clipped_clustering() {
    let tmp = tempfile::tempdir().unwrap();
    // DnC, f = 1: rows (0, 0), (1, 0), (-1, 0), (0, 10); the last scores highest along
    // the top singular direction (0, 1) and is dropped: mean (0, 0).
    let d = tmp.path().join("d.npy");
    write_npy::<f32>(&d, &[4, 2], &[0., 0., 1., 0., -1., 0., 0., 10.], false);
    let v = aggregate_line(&["--rule", "dnc", "--f", "1", "--seed", "3"], &d);
    assert_eq!(
        v,
        serde_json::json!({"rule": "dnc", "result": [0.0, 0.0], "selected": [0, 1, 2]})
    );
    // FLAME without noise: the cluster is {0, 1, 2} (see flame.rs).
    let f = tmp.path().join("f.npy");
    write_npy::<f32>(
        &f,
        &[5, 2],
        &[1., 0., 1., 0.1, 2., 0.1, 1., -0.1, 0., 3.],
        false,
    );
    let v = aggregate_line(&["--rule", "flame", "--lambda", "0", "--seed", "1"], &f);
    assert_eq!(v["selected"], serde_json::json!([0, 1, 2]));
    // With noise the result moves, the selection does not.
    let w = aggregate_line(&["--rule", "flame", "--seed", "1"], &f);
    assert_eq!(w["selected"], serde_json::json!([0, 1, 2]));
    assert_ne!(w["result"], v["result"]);
    // Clipped clustering: {0, 1, 2} against (-8, 0).
    let c = tmp.path().join("c.npy");
    write_npy::<f32>(&c, &[4, 2], &[1., 0.1, 2., 0., 1., -0.1, -8., 0.], false);
    let v = aggregate_line(&["--rule", "clipped-clustering"], &c);
    assert_eq!(v["selected"], serde_json::json!([0, 1, 2]));
    // SignGuard drops the update 20 times longer than the median (d = 1: 1, 1.1, 0.9, 20).
    let s = tmp.path().join("s.npy");
    write_npy::<f32>(&s, &[4, 1], &[1., 1.1, 0.9, 20.], false);
    let v = aggregate_line(&["--rule", "signguard"], &s);
    assert_eq!(v["selected"], serde_json::json!([0, 1, 2]));
    // Options a rule does not take are refused.
    let o = ward()
        .args(["aggregate", "--rule", "signguard", "--lambda", "0.1"])
        .arg(&s)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("--lambda: is not an option of aggregator \"signguard\"")
    );
}

/// The DP-SGD run of the privacy-report tests: 2 of 4 sites a round, 5 local steps.
const DP_RUN_SETS: [&str; 12] = [
    "--set",
    "federation.rounds=6",
    "--set",
    "federation.sites-per-round=2",
    "--set",
    "train.local-steps=5",
    "--set",
    "privacy.dp-sgd.clip=1.1",
    "--set",
    "privacy.dp-sgd.noise-multiplier=1.3",
    "--set",
    "privacy.dp-sgd.delta=0.001",
];

/// Issue 6: the privacy report records each site's mechanism settings and the steps it
/// really ran: with 2 of 4 sites sampled per round, a site runs 5 local steps in each
/// round it was sampled (counted from metrics.jsonl), not 5 x rounds.
#[test]
fn dp_run_reports_the_steps_each_site_really_ran() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("dp");
    let o = run_ok(
        ward()
            .args(["run", "--quiet"])
            .args(DP_RUN_SETS)
            .arg("--out")
            .arg(&out),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("record-level DP-SGD"), "{stdout}");
    let p = json(&out.join("privacy.json"));
    let s = json(&out.join("summary.json"));
    assert_eq!(s["privacy"], p);
    let rl = &p["record_level"];
    assert_eq!(rl["clip"], 1.1);
    assert_eq!(rl["sampling"], "poisson");
    let metrics = fs_err::read_to_string(out.join("metrics.jsonl")).unwrap();
    let sites = rl["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 4);
    let mut total = 0;
    for site in sites {
        let name = site["site"].as_str().unwrap();
        let ran = metrics
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["site"] == name && r["status"] != "idle")
            .count() as u64;
        assert_eq!(site["steps"].as_u64().unwrap(), 5 * ran, "{name}");
        total += ran;
        assert_eq!(site["noise_multiplier"], 1.3);
        let q = 4.0 / site["training_rows"].as_f64().unwrap();
        assert!((site["sample_rate"].as_f64().unwrap() - q).abs() < 1e-12);
    }
    assert_eq!(total, 12, "2 sites x 6 rounds");
    // The federation's record-level epsilon is the max over sites, never a sum, for
    // both accountants.
    for acc in ["rdp", "prv"] {
        let per: Vec<f64> = sites
            .iter()
            .map(|s| s["epsilon"][acc].as_f64().unwrap())
            .collect();
        assert!(per.iter().all(|&e| e > 0.0), "{acc}: {per:?}");
        let max = per.iter().copied().fold(0.0, f64::max);
        assert_eq!(rl["epsilon"][acc].as_f64().unwrap(), max, "{acc}");
    }

    // A budget below the full run's epsilon stops the run before a round would exceed
    // it; every site stays within it.
    let budget = 0.6 * rl["epsilon"]["rdp"].as_f64().unwrap();
    let out2 = tmp.path().join("budget");
    let o = run_ok(
        ward()
            .args(["run", "--quiet"])
            .args(DP_RUN_SETS)
            .args(["--set", &format!("privacy.dp-sgd.budget={budget}")])
            .arg("--out")
            .arg(&out2),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    let p = json(&out2.join("privacy.json"));
    let run = p["rounds_run"].as_u64().unwrap();
    assert!(run < 6, "{p}");
    assert!(
        p["stopped_by_budget"]
            .as_str()
            .unwrap()
            .contains("privacy budget"),
        "{p}"
    );
    assert!(stdout.contains("stopped: privacy budget"), "{stdout}");
    for s in p["record_level"]["sites"].as_array().unwrap() {
        assert!(s["epsilon"]["rdp"].as_f64().unwrap() <= budget, "{s}");
    }
    assert_eq!(
        json(&out2.join("summary.json"))["rounds"].as_u64().unwrap(),
        run
    );
}

/// Issue 6: DP-SGD is refused with BatchNorm, central DP with robust rules, both with
/// user errors naming the key.
#[test]
fn dp_with_batch_norm_or_robust_rules_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 2] = [
        (
            &[
                "privacy.central.clip=1.0",
                "privacy.central.noise-multiplier=1.0",
                "robust.aggregator=\"median\"",
            ],
            "privacy.central",
        ),
        (
            &[
                "privacy.dp-sgd.clip=1.0",
                "privacy.dp-sgd.noise-multiplier=1.0",
                "privacy.dp-sgd.target-epsilon=1.0",
            ],
            "exactly one of noise-multiplier and target-epsilon",
        ),
    ];
    for (i, (sets, want)) in cases.iter().enumerate() {
        run_fails_naming(&tmp.path().join(format!("o{i}")), i, sets, &[*want]);
    }
    let o = ward()
        .arg("run")
        .arg(repo().join("examples/scanner-shift-fedbn.toml"))
        .args(["--set", "federation.strategy=\"fedavg\""])
        .args([
            "--set",
            "privacy.dp-sgd.clip=1.0",
            "--set",
            "privacy.dp-sgd.noise-multiplier=1.0",
        ])
        .arg("--out")
        .arg(tmp.path().join("bn"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("BatchNorm") && err.contains("privacy.dp-sgd"),
        "{err}"
    );
}

/// Issue 6: adaptive central DP records its clip norms, the site sampling rate (2 of 4
/// sites per round: q = 0.5) and the rounds it released; its site-level epsilon grows
/// with the rounds.
#[test]
fn central_dp_reports_site_level_epsilon() {
    let tmp = tempfile::tempdir().unwrap();
    let mut eps = Vec::new();
    for rounds in [2, 4] {
        let out = tmp.path().join(format!("c{rounds}"));
        run_ok(
            ward()
                .args(["run", "--quiet"])
                .args(["--set", &format!("federation.rounds={rounds}")])
                .args([
                    "--set",
                    "federation.sites-per-round=2",
                    "--set",
                    "train.local-steps=5",
                ])
                .args([
                    "--set",
                    "privacy.central.clip=0.01",
                    "--set",
                    "privacy.central.adaptive=true",
                ])
                .args(["--set", "privacy.central.noise-multiplier=1.0"])
                .args(["--set", "privacy.central.count-noise=1.0"])
                .arg("--out")
                .arg(&out),
        );
        let p = json(&out.join("privacy.json"));
        let sl = &p["site_level"];
        assert_eq!(sl["rounds"].as_u64().unwrap(), rounds);
        assert_eq!(sl["site_sample_rate"], 0.5);
        assert_eq!(sl["initial_clip"], 0.01);
        // z_sum = (1 - 1/4)^(-1/2) (Andrew et al. 2021's split).
        assert!((sl["sum_noise_multiplier"].as_f64().unwrap() - 1.154_700_5).abs() < 1e-6);
        eps.push(sl["epsilon"]["rdp"].as_f64().unwrap());
    }
    assert!(eps[1] > eps[0] && eps[0] > 0.0, "{eps:?}");
}

/// `ward privacy audit` on `run`: the audit.csv rows as (attack, scope) -> columns.
fn audit_rows(
    run: &Path,
    out: &Path,
    shadows: &str,
) -> (Vec<String>, Vec<Vec<String>>, serde_json::Value) {
    run_ok(
        ward()
            .args(["privacy", "audit"])
            .arg(run)
            .args(["--shadows", shadows, "--out"])
            .arg(out),
    );
    let csv = fs_err::read_to_string(out.join("audit.csv")).unwrap();
    let mut lines = csv.lines();
    let head: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    (head, rows, json(&out.join("audit.json")))
}

fn cell<'a>(head: &[String], row: &'a [String], col: &str) -> &'a str {
    let i = head
        .iter()
        .position(|h| h == col)
        .unwrap_or_else(|| panic!("no column {col}"));
    &row[i]
}

/// The control behind the random-membership rows: a target that learned nothing (one
/// step at lr 1e-12, so it is its initialisation) cannot tell members from non-members
/// when membership is a fair coin: every `-rand` AUC is within 0.1 of 0.5 (about 5
/// standard errors with 740 rows).
#[test]
fn privacy_audit_random_membership_finds_nothing_in_an_untrained_model() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("untrained");
    run_ok(
        ward()
            .args(["run", "--quiet", "--set", "federation.rounds=1"])
            .args(["--set", "train.local-steps=1", "--set", "train.lr=1e-12"])
            .arg("--out")
            .arg(&run),
    );
    let (head, rows, report) = audit_rows(&run, &tmp.path().join("audit"), "4");
    let rand: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| {
            cell(&head, r, "attack").ends_with("-rand") && cell(&head, r, "scope") == "overall"
        })
        .collect();
    assert_eq!(rand.len(), 3, "{rows:?}");
    for r in rand {
        let auc: f64 = cell(&head, r, "auc").parse().unwrap();
        assert!((auc - 0.5).abs() < 0.1, "{r:?}");
    }
    assert!(report["notes"].to_string().contains("fair coin"));
}

#[test]
fn privacy_audit_measures_more_leakage_on_an_overfit_run() {
    let tmp = tempfile::tempdir().unwrap();
    let va = [
        "--set",
        "federation.strategy=\"local\"",
        "--set",
        "federation.local-site=\"VA Long Beach\"",
    ];
    // One small site (VA Long Beach: 85 training, 45 test rows) trained alone: a short,
    // heavily regularised logistic regression against an MLP trained to overfit (Adam,
    // 5 rounds x 300 local steps).
    let short = tmp.path().join("short");
    run_ok(
        ward()
            .args(["run", "--quiet", "--set", "federation.rounds=1"])
            .args([
                "--set",
                "train.local-steps=5",
                "--set",
                "train.weight-decay=0.5",
            ])
            .args(va)
            .arg("--out")
            .arg(&short),
    );
    let overfit = tmp.path().join("overfit");
    run_ok(
        ward()
            .args(["run", "--quiet", "--set", "model.kind=\"mlp\""])
            .args([
                "--set",
                "model.hidden=[64]",
                "--set",
                "train.optimizer=\"adam\"",
            ])
            .args(["--set", "train.lr=0.01", "--set", "train.local-steps=300"])
            .args(["--set", "federation.rounds=5"])
            .args(va)
            .arg("--out")
            .arg(&overfit),
    );
    let (head, rows, report) = audit_rows(&overfit, &tmp.path().join("a1"), "4");
    for col in [
        "attack",
        "scope",
        "members",
        "non_members",
        "auc",
        "tpr_at_fpr_0.001",
        "fp_allowed_at_fpr_0.001",
        "tpr_at_fpr_0.01",
        "fp_allowed_at_fpr_0.01",
        "epsilon_lower_bound",
        "delta",
        "accountant_epsilon",
    ] {
        assert!(head.iter().any(|h| h == col), "{col} missing from {head:?}");
    }
    // 6 attacks (3 on the run, 3 on the random-membership run) x (overall + the one
    // site that trained).
    assert_eq!(rows.len(), 12, "{rows:?}");
    let mut overall = std::collections::BTreeMap::new();
    for r in &rows {
        if cell(&head, r, "attack").ends_with("-rand") {
            // Members by a fair coin over the site's 130 rows.
            let m: usize = cell(&head, r, "members").parse().unwrap();
            let n: usize = cell(&head, r, "non_members").parse().unwrap();
            assert_eq!(m + n, 130, "{r:?}");
            assert!(m > 30 && n > 30, "{r:?}");
            if cell(&head, r, "scope") == "overall" {
                overall.insert(
                    cell(&head, r, "attack").to_string(),
                    cell(&head, r, "auc").parse::<f64>().unwrap(),
                );
            }
            continue;
        }
        let auc: f64 = cell(&head, r, "auc").parse().unwrap();
        assert!((0.0..=1.0).contains(&auc), "{r:?}");
        let eps: f64 = cell(&head, r, "epsilon_lower_bound").parse().unwrap();
        assert!(eps >= 0.0 && eps.is_finite(), "{r:?}");
        // No privacy mechanism: no accountant epsilon.
        assert_eq!(cell(&head, r, "accountant_epsilon"), "", "{r:?}");
        assert_eq!(cell(&head, r, "members"), "85", "{r:?}");
        assert_eq!(cell(&head, r, "non_members"), "45", "{r:?}");
        // floor(0.01 x 45) = 0 false positives allowed at 1 % FPR.
        assert_eq!(cell(&head, r, "fp_allowed_at_fpr_0.01"), "0");
        if cell(&head, r, "scope") == "overall" {
            overall.insert(cell(&head, r, "attack").to_string(), auc);
        }
    }
    assert_eq!(
        overall.keys().cloned().collect::<Vec<_>>(),
        [
            "confidence-rand",
            "lira-offline",
            "lira-offline-rand",
            "lira-online",
            "lira-online-rand",
            "loss"
        ]
    );
    // With membership drawn at random the overfit model's leak still shows (the AUC's
    // standard error with 64 x 66 rows is about 0.05).
    assert!(overall["confidence-rand"] > 0.6, "{overall:?}");
    assert!(report["accountant"].is_null());
    assert_eq!(report["shadow_seeds"].as_array().unwrap().len(), 4);
    assert!(
        report["notes"]
            .to_string()
            .contains("no privacy mechanism: accountant epsilon n/a")
    );
    let examples = fs_err::read_to_string(tmp.path().join("a1/audit_examples.csv")).unwrap();
    assert_eq!(
        examples.lines().next().unwrap(),
        "site,split,row,member,loss,confidence,lira_online,lira_offline"
    );
    assert_eq!(examples.lines().count(), 1 + 130);

    let (h2, rows2, _) = audit_rows(&short, &short.join("audit"), "0");
    assert_eq!(rows2.len(), 2, "the loss attack only: {rows2:?}");
    let short_auc: f64 = cell(&h2, &rows2[0], "auc").parse().unwrap();
    assert_eq!(cell(&h2, &rows2[0], "scope"), "overall");
    // The overfit model leaks membership clearly more than the short regularised one
    // (the AUC's standard error with 85 x 45 rows is about 0.05).
    assert!(
        overall["loss"] > short_auc + 0.08,
        "overfit loss-attack AUC {} vs short {short_auc}",
        overall["loss"]
    );

    // A federated run audits every site's rows: fed-heart-disease's 740.
    let fed = tmp.path().join("fed");
    run_ok(
        ward()
            .args(["run", "--quiet", "--set", "federation.rounds=1", "--out"])
            .arg(&fed),
    );
    let (h3, rows3, _) = audit_rows(&fed, &fed.join("audit"), "0");
    assert_eq!(rows3.len(), 5, "overall + 4 sites: {rows3:?}");
    let m: usize = cell(&h3, &rows3[0], "members").parse().unwrap();
    let n: usize = cell(&h3, &rows3[0], "non_members").parse().unwrap();
    assert_eq!(m + n, 740);
    assert_eq!(
        cell(&h3, &rows3[0], "fp_allowed_at_fpr_0.01"),
        (n / 100).to_string()
    );
    // With an accountant's report beside it (the layout of privacy.json), each row
    // shows the record-level epsilon of its site (the tighter accountant), the
    // federation's where a site has none of its own, and the bound uses its delta.
    fs_err::write(
        fed.join("privacy.json"),
        r#"{"record_level": {"delta": 0.001, "epsilon": {"rdp": 7.3, "prv": 6.8},
            "sites": [{"site": "Cleveland", "epsilon": {"rdp": 5.0, "prv": 4.5}}]}}"#,
    )
    .unwrap();
    let (h4, rows4, rep4) = audit_rows(&fed, &fed.join("audit2"), "0");
    let eps: Vec<(&str, &str)> = rows4
        .iter()
        .map(|r| (cell(&h4, r, "scope"), cell(&h4, r, "accountant_epsilon")))
        .collect();
    assert_eq!(eps[0], ("overall", "6.800000"));
    assert_eq!(eps[1], ("Cleveland", "4.500000"));
    assert_eq!(eps[2], ("Hungary", "6.800000"));
    assert_eq!(cell(&h4, &rows4[0], "delta"), "0.001");
    assert_eq!(rep4["delta_source"], "the run's accountant");

    // Bad flags are the user's error.
    let o = ward()
        .args(["privacy", "audit"])
        .arg(&short)
        .args(["--shadows", "3"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--shadows"));
    let o = ward()
        .args(["privacy", "audit"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("config.toml"));
}

/// Secure aggregation in `ward run` (issue: "Secure aggregation ... the coordinator
/// never sees an individual site's update"): the default fed-heart-disease run with
/// `[privacy.secagg]` ends within 0.01 of the plain run's mean accuracy (the reference:
/// the same run without it, made here), and its summary reports the protocol; with one
/// dropout a round, every round has three survivors; too many dropouts and rules that
/// need each update are user errors naming the key.
#[test]
fn secagg_run_matches_fedavg_and_reports_the_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    run_ok(ward().args(["run", "--quiet", "--out"]).arg(&plain));
    let secure = tmp.path().join("secure");
    let o = run_ok(
        ward()
            .args(["run", "--set", "privacy.secagg.dropout=0", "--out"])
            .arg(&secure),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("secure aggregation (SecAgg+, complete graph, threshold 3"),
        "{stdout}"
    );
    let a = json(&plain.join("summary.json"))["mean_accuracy"]
        .as_f64()
        .unwrap();
    let s = json(&secure.join("summary.json"));
    let b = s["mean_accuracy"].as_f64().unwrap();
    assert!((a - b).abs() <= 0.01, "plain {a}, secure {b}");
    let sa = &s["privacy"]["secure_aggregation"];
    assert!(
        sa["protocol"]
            .as_str()
            .unwrap()
            .starts_with("SecAgg+ (Bell et al. 2020")
    );
    assert_eq!(sa["graph"], "complete");
    // SecAggParams::majority(3) = floor(4 / 2) + 1 = 3; Quantizer::default: clip 8,
    // 22 bits; stochastic rounding: bound = 4 sites x 2 x 8 / (2^22 - 1).
    assert_eq!(sa["threshold"], 3);
    assert_eq!(sa["clip"], 8.0);
    assert_eq!(sa["bits"], 22);
    let bound = 4.0 * 16.0 / f64::from((1u32 << 22) - 1);
    assert!((sa["quantisation_error_bound"].as_f64().unwrap() - bound).abs() < 1e-15);
    let rounds = sa["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 15);
    for r in rounds {
        assert_eq!(r["survivors"].as_array().unwrap().len(), 4);
        assert!(r["up_bytes"]["Cleveland"].as_u64().unwrap() > 0);
    }
    assert_eq!(json(&secure.join("privacy.json")), s["privacy"]);
    // The server saw no update: no norms or cosines in the round records.
    let metrics = fs_err::read_to_string(secure.join("metrics.jsonl")).unwrap();
    assert!(!metrics.contains("update_norm") && !metrics.contains("cosine"));

    // One of four sites drops each round: three survivors, one dropped record a round.
    let dropped = tmp.path().join("dropped");
    run_ok(
        ward()
            .args([
                "run",
                "--quiet",
                "--set",
                "privacy.secagg.dropout=0.25",
                "--out",
            ])
            .arg(&dropped),
    );
    let sa = &json(&dropped.join("privacy.json"))["secure_aggregation"];
    for r in sa["rounds"].as_array().unwrap() {
        assert_eq!(r["survivors"].as_array().unwrap().len(), 3, "{r}");
        assert_eq!(r["dropped"].as_array().unwrap().len(), 1, "{r}");
    }
    let metrics = fs_err::read_to_string(dropped.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.matches("\"dropped\"").count(), 15);

    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["privacy.secagg.dropout=0.75"],
            &[
                "privacy.secagg: round 1",
                "too many dropouts",
                "0 = Cleveland",
            ],
        ),
        (
            &["privacy.secagg.dropout=0", "robust.aggregator=\"median\""],
            &["privacy.secagg", "robust.aggregator = \"median\""],
        ),
        (
            &[
                "privacy.secagg.dropout=0",
                "privacy.central.clip=1.0",
                "privacy.central.noise-multiplier=1.0",
            ],
            &["privacy.secagg", "[privacy.central]"],
        ),
        (
            &["privacy.secagg.bits=31"],
            &["privacy.secagg", "bits = 31", "at most 30 bits for 4 sites"],
        ),
    ];
    for (i, (sets, wants)) in cases.iter().enumerate() {
        run_fails_naming(&tmp.path().join(format!("bad{i}")), i, sets, wants);
    }
}

/// Keys, masks and dropouts come from the run seed, the round and the site, and the
/// rounds' records are checkpointed: `kill -9` and `--resume` give exactly the
/// uninterrupted secure run (summary with its secure_aggregation section, metrics rows,
/// model bytes).
#[test]
fn kill_9_and_resume_with_secagg_is_exact() {
    // 200 rounds (the later --set wins): a secure round costs ~8 ms in debug builds.
    kill_and_resume(&[
        "federation.rounds=200",
        "privacy.secagg.dropout=0.25",
        "privacy.secagg.clip=1.0",
    ]);
}
