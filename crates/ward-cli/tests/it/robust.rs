//! Poisoning: attacks in `ward run`, `ward robust-grid`, FLTrust.

use std::path::{Path, PathBuf};

use crate::run::kill_and_resume;
use crate::{json, repo, run_ok, ward};

pub(crate) fn write_experiment(dir: &Path, name: &str, text: &str) -> PathBuf {
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

/// Model replacement (Bagdasaryan et al. 2020): the same backdoor by the same site,
/// boosted by total over the attacker's examples under FedAvg, plants the backdoor
/// further than the unboosted backdoor. Switzerland holds about 6% of FedAvg's weight,
/// so unboosted its backdoor is diluted (measured: success 0.007 unboosted, 0.775
/// boosted).
#[test]
fn model_replacement_beats_the_unboosted_backdoor_under_fedavg() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = |kind: &str| {
        format!(
            "[data]\ndataset = \"fed-heart-disease\"\n[train]\nlr = 0.01\n[attack]\nkind = \"{kind}\"\nsites = [\"Switzerland\"]\ntarget = 0\nrate = 0.5\ntrigger = [{{ feature = 7, value = 4.0 }}, {{ feature = 10, value = 3.0 }}]\n"
        )
    };
    let mut asr = Vec::new();
    for kind in ["backdoor", "model-replacement"] {
        let p = write_experiment(tmp.path(), kind, &exp(kind));
        run_ok(
            ward()
                .arg("run")
                .arg("--quiet")
                .arg(&p)
                .arg("--out")
                .arg(tmp.path().join(kind)),
        );
        let s = json(&tmp.path().join(kind).join("summary.json"));
        assert_eq!(s["attack"], kind);
        asr.push(s["backdoor_success_mean"].as_f64().unwrap());
    }
    assert!(asr[1] > asr[0] + 0.2, "{asr:?}");
}

#[test]
fn kill_9_and_resume_with_a_randomised_attack_is_exact() {
    kill_and_resume(&[
        "attack.kind=gaussian",
        "attack.scale=0.5",
        "attack.f=1",
        "train.lr=0.01",
    ]);
}

/// The grid runs end to end on a reduced size, writes its outputs, records skipped cells
/// with their reason, and a rerun with the same --out runs no cell again. Cells run
/// side by side (`--jobs 3`) give byte for byte the log of cells run one at a time.
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
        "sign-flip,alie,ipm,fang-trim",
        "--alie-z",
        "0",
        "--draws",
        "3",
        "--out",
    ];
    run_ok(ward().args(args).arg(&out).args(["--jobs", "3"]));
    let csv = fs_err::read_to_string(out.join("grid.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "dataset,attack,defence,fraction,f,defence_f,seed,draw,status,clean_acc,acc_drop,asr,tp,fp"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    // 3 defences x (no attack + 4 attacks at f = 1).
    assert_eq!(rows.len(), 15, "{csv}");
    for r in &rows {
        assert_eq!(r.len(), 14, "{r:?}");
        assert_eq!(r[0], "fed-heart-disease");
        // Krum takes f: configured with the cell's f (1), its clean cell too.
        assert_eq!(r[5], if r[2] == "krum" { "1" } else { "0" }, "{r:?}");
        assert_eq!(r[7], if r[1] == "none" { "0" } else { "3" }, "{r:?}");
        match r[1] {
            // ALIE with z = 0 sends the honest mean: a meaningless row.
            "alie" => assert_eq!(r[8], "skipped"),
            // Fang's trimmed-mean attack is not run against the Krum family.
            "fang-trim" if r[2] == "krum" => assert_eq!(r[8], "skipped", "{r:?}"),
            // Krum needs n >= 2f+3 = 5 updates; fed-heart-disease has 4 sites.
            _ if r[2] == "krum" => assert_eq!(r[8], "refused", "{r:?}"),
            "none" => {
                assert_eq!(r[8], "ok");
                assert_eq!(r[10], "0.000000");
            }
            _ => {
                assert_eq!(r[8], "ok", "{r:?}");
                assert_eq!(r[4], "1");
                assert!(r[9].parse::<f64>().unwrap() > 0.0);
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
    // The summary states the floor (fed-heart-disease's test sets: "disease" at every
    // site is the best constant) and the paired tables; one seed gives no interval.
    let md = fs_err::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        md.contains("**Floor** (best constant predictor: class 1"),
        "{md}"
    );
    assert!(md.contains("### Accuracy minus FedAvg's (paired)"), "{md}");
    assert!(md.contains("| krum | refused | refused |"), "{md}");
    let before = fs_err::read_to_string(out.join("grid.jsonl")).unwrap();
    let o = run_ok(ward().args(args).arg(&out));
    assert!(String::from_utf8_lossy(&o.stdout).contains("15 cells"));
    assert_eq!(
        fs_err::read_to_string(out.join("grid.jsonl")).unwrap(),
        before
    );
    let serial = tmp.path().join("serial");
    run_ok(ward().args(args).arg(&serial).args(["--jobs", "1"]));
    assert_eq!(
        fs_err::read_to_string(serial.join("grid.jsonl")).unwrap(),
        before,
        "--jobs 3 and --jobs 1 differ"
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

/// The poisoning grid on the imaging task (12 Dirichlet-partitioned sites of synthetic
/// scanner images, tiny CNN), reduced: fractions of compromised sites, an image backdoor
/// (patch trigger) and model replacement with their success rates, and sign flipping,
/// under FedAvg and the median.
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
                "backdoor,model-replacement,sign-flip",
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
    assert_eq!(rows.len(), 2 * 4, "{csv}");
    for r in &rows {
        assert_eq!(r[0], "synth");
        // model-replacement takes the patch trigger as the backdoor does.
        assert_eq!(r[8], "ok", "{r:?}");
        if r[1] == "backdoor" || r[1] == "model-replacement" {
            assert_eq!(r[4], "2", "20 % of 12 sites");
            let asr: f64 = r[11].parse().unwrap();
            assert!((0.0..=1.0).contains(&asr), "{r:?}");
        }
    }
    assert!(out.join("heatmap_synth_clean_acc.svg").exists());
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
