//! What a new user hit (issue 12): stale output reused, edited configs resumed, a
//! target that is never true, run directories left behind, exit codes and messages.

use std::path::Path;

use crate::{json, repo, run_ok, ward};

/// Runs `ward` with `args`, expects exit code 2, and returns stderr.
fn fails_with_2(args: &[&str], extra: &[&Path]) -> String {
    let mut c = ward();
    c.args(args);
    for p in extra {
        c.arg(p);
    }
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    err
}

/// A grid directory made with one experiment is not resumed with another: every old
/// cell would be reused as if it belonged to the new one.
#[test]
fn robust_grid_refuses_an_out_dir_made_with_another_experiment() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("grid");
    let args = |lr: &'static str| {
        vec![
            "robust-grid",
            "--set",
            "federation.rounds=2",
            "--set",
            lr,
            "--defences",
            "fedavg",
            "--attacks",
            "sign-flip",
            "--out",
        ]
    };
    run_ok(ward().args(args("train.lr=0.01")).arg(&out));
    // The same grid resumes (nothing to run).
    run_ok(ward().args(args("train.lr=0.01")).arg(&out));
    let err = fails_with_2(&args("train.lr=0.02"), &[&out]);
    assert!(
        err.contains("another experiment") && err.contains("grid.key"),
        "{err}"
    );
    // A damaged log is the user's to fix, named by file and line.
    let log = out.join("grid.jsonl");
    let mut text = fs_err::read_to_string(&log).unwrap();
    text.push_str("{not json\n");
    fs_err::write(&log, text).unwrap();
    let err = fails_with_2(&args("train.lr=0.01"), &[&out]);
    assert!(
        err.contains("grid.jsonl:3") && err.contains("not a grid cell"),
        "{err}"
    );
}

/// `robust-grid` says why cells were refused or skipped.
#[test]
fn robust_grid_prints_why_cells_were_refused_or_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run_ok(
        ward()
            .args(["robust-grid", "--set", "federation.rounds=1"])
            .args([
                "--defences",
                "bulyan",
                "--attacks",
                "alie,backdoor",
                "--out",
            ])
            .arg(tmp.path().join("g")),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("none vs bulyan (f 0, defence f 1, seed 0, draw 0) refused: "),
        "{out}"
    );
    assert!(
        out.contains(
            "backdoor vs bulyan (f 1, defence f 1, seed 0, draw 0) skipped: a backdoor needs a trigger"
        ),
        "{out}"
    );
}

/// `data synth --sites 2` into a folder of 4 sites leaves 2 sites, not 4.
#[test]
fn data_synth_into_a_folder_of_more_sites_removes_the_old_sites() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let synth = |sites: &str| {
        run_ok(
            ward()
                .args(["data", "synth", "--per-site", "40", "--size", "16"])
                .args(["--sites", sites, "--out"])
                .arg(&dir),
        )
    };
    synth("4");
    assert!(dir.join("site-3.npz").exists());
    let o = synth("2");
    assert!(String::from_utf8_lossy(&o.stdout).contains("removed 4 files"));
    let mut npz: Vec<String> = fs_err::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".npz") || n.starts_with("contact_"))
        .collect();
    npz.sort();
    assert_eq!(
        npz,
        [
            "contact_site-0.png",
            "contact_site-1.png",
            "site-0.npz",
            "site-1.npz"
        ]
    );
}

/// `ward run --resume` after `config.toml` was edited would run other settings than
/// the directory records: refused.
#[test]
fn resume_after_the_config_was_edited_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    run_ok(
        ward()
            .args(["run", "--quiet", "--set", "federation.rounds=2", "--out"])
            .arg(&dir),
    );
    let cfg = dir.join("config.toml");
    let text = fs_err::read_to_string(&cfg).unwrap();
    assert!(text.contains("rounds = 2"), "{text}");
    fs_err::write(&cfg, text.replace("rounds = 2", "rounds = 4")).unwrap();
    let err = fails_with_2(&["run", "--resume"], &[&dir]);
    assert!(err.contains("config.toml changed"), "{err}");
    // Restored, the resume goes on (nothing left to do).
    fs_err::write(&cfg, text).unwrap();
    run_ok(ward().args(["run", "--quiet", "--resume"]).arg(&dir));
}

/// A metrics log cut shorter than the checkpoint says is the user's to fix (exit 2),
/// and the message speaks of the metrics log.
#[test]
fn resume_with_a_cut_short_metrics_log_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    run_ok(
        ward()
            .args(["run", "--quiet", "--set", "federation.rounds=2", "--out"])
            .arg(&dir),
    );
    let log = dir.join("metrics.jsonl");
    let text = fs_err::read_to_string(&log).unwrap();
    fs_err::write(&log, &text[..text.len() / 2]).unwrap();
    let err = fails_with_2(&["run", "--resume"], &[&dir]);
    assert!(err.contains("metrics log was cut short"), "{err}");
    assert!(!err.contains("model file"), "{err}");
}

fn csv_experiment(dir: &Path, rule: &str) -> std::path::PathBuf {
    let csv = repo().join("data/heart_disease_uci.csv");
    let path = dir.join("never.toml");
    fs_err::write(
        &path,
        format!(
            "name = \"never\"\n[data]\ndataset = \"csv\"\npath = {:?}\nnumeric = [\"age\", \"trestbps\"]\nsite-column = \"dataset\"\ntarget = {{ column = \"num\", rule = {rule:?} }}\n",
            csv.display().to_string()
        ),
    )
    .unwrap();
    path
}

/// A binary target rule that no row satisfies gives one class: refused (it trained and
/// reported accuracy 1.000), and no run directory is left behind.
#[test]
fn a_target_rule_that_is_never_true_is_refused_before_the_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = csv_experiment(tmp.path(), "> 100");
    let out = tmp.path().join("run");
    let err = fails_with_2(&["run", "--quiet", "--out"], &[&out, &exp]);
    assert!(
        err.contains("data.target")
            && err.contains("single class")
            && !err.contains("shape mismatch"),
        "{err}"
    );
    assert!(!out.exists(), "the failed run left {}", out.display());
    // The same file with a rule that holds for some rows runs.
    let exp = csv_experiment(tmp.path(), "> 0");
    run_ok(
        ward()
            .args(["run", "--quiet", "--set", "federation.rounds=1", "--out"])
            .arg(&out)
            .arg(&exp),
    );
}

/// Errors found after parsing (here the federation's check of sites per round) leave
/// no run directory with only config.toml in it.
#[test]
fn errors_after_parsing_leave_no_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let err = fails_with_2(
        &["run", "--set", "federation.sites-per-round=9", "--out"],
        &[&out],
    );
    assert!(err.contains("sites-per-round"), "{err}");
    assert!(!out.exists());
}

/// `--out` that is a file, or cannot be created, is the user's mistake.
#[test]
fn out_that_is_a_file_or_unwritable_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    fs_err::write(&file, "x").unwrap();
    let err = fails_with_2(&["run", "--quiet", "--out"], &[&file]);
    assert!(err.contains("is a file"), "{err}");
    let under_file = file.join("run");
    let err = fails_with_2(&["run", "--quiet", "--out"], &[&under_file]);
    assert!(err.contains("--out"), "{err}");
    let err = fails_with_2(
        &[
            "robust-grid",
            "--defences",
            "fedavg",
            "--attacks",
            "sign-flip",
            "--out",
        ],
        &[&file],
    );
    assert!(err.contains("is a file"), "{err}");
}

/// `ward privacy audit` on a directory without its model says so, exit 2.
#[test]
fn privacy_audit_without_a_model_file_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    run_ok(
        ward()
            .args(["run", "--quiet", "--set", "federation.rounds=1", "--out"])
            .arg(&dir),
    );
    fs_err::remove_file(dir.join("model.safetensors")).unwrap();
    let err = fails_with_2(&["privacy", "audit", "--shadows", "0"], &[&dir]);
    assert!(
        err.contains("model.safetensors") && err.contains("no trained model"),
        "{err}"
    );
}

/// Without privacy.json (and summary.json's copy), the audit still knows the run had
/// DP-SGD and uses its delta, read from config.toml.
#[test]
fn privacy_audit_reads_the_mechanism_from_the_config_when_privacy_json_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dp");
    run_ok(
        ward()
            .args(["run", "--quiet", "--set", "federation.rounds=2", "--out"])
            .arg(&dir)
            .arg(repo().join("examples/fed-heart-disease-dp.toml")),
    );
    let delta = json(&dir.join("privacy.json"))["record_level"]["delta"]
        .as_f64()
        .unwrap();
    fs_err::remove_file(dir.join("privacy.json")).unwrap();
    fs_err::remove_file(dir.join("summary.json")).unwrap();
    let out = tmp.path().join("audit");
    let o = run_ok(
        ward()
            .args(["privacy", "audit", "--shadows", "0"])
            .arg(&dir)
            .arg("--out")
            .arg(&out),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!stdout.contains("no privacy mechanism"), "{stdout}");
    assert!(
        stdout.contains("privacy.json") && stdout.contains("unknown"),
        "{stdout}"
    );
    let report = json(&out.join("audit.json"));
    assert_eq!(report["delta"].as_f64(), Some(delta), "{report}");
}

/// `--tau -1` reaches the rule's check instead of clap's "unexpected argument".
#[test]
fn a_negative_tau_parses_and_is_refused_by_the_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let npy = tmp.path().join("u.npy");
    crate::aggregate::write_npy(&npy, &[3, 2], &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], false);
    let err = fails_with_2(
        &["aggregate", "--rule", "centered-clipping", "--tau", "-1"],
        &[&npy],
    );
    assert!(err.contains("tau"), "{err}");
    assert!(!err.contains("unexpected argument"), "{err}");
}
