//! `ward run`: the run directory, determinism, kill -9 and resume, config errors, examples, engines.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::{json, repo, run_ok, ward};

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
pub(crate) fn summary_sans_time(dir: &Path) -> serde_json::Value {
    let mut s = json(&dir.join("summary.json"));
    s.as_object_mut().unwrap().remove("wall_time_s");
    s
}

/// `kill -9` at several moments (the checkpoint write included), then `--resume`,
/// gives exactly the uninterrupted run's summary, metrics rows and model bytes.
pub(crate) fn kill_and_resume(strategy_sets: &[&str]) {
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
fn kill_9_and_resume_qffl_is_exact() {
    kill_and_resume(&["federation.strategy=qffl", "federation.q=1"]);
}

/// Dropout draws each fit's mask seed from the site's dropout stream, which the
/// checkpoint carries: a killed and resumed run is bit-identical.
#[test]
fn kill_9_and_resume_with_dropout_is_exact() {
    kill_and_resume(&[
        "model.kind=\"mlp\"",
        "model.hidden=[16]",
        "model.dropout=0.3",
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
