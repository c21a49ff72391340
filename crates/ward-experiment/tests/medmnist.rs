//! MedMNIST as published, end to end: a file named by `data.medmnist` whose training
//! split is partitioned keeps its official test split, and the run scores that split
//! whole (`summary.held_out`) with MedMNIST's AUC.

use std::path::Path;

use ward_data::npz::{NpzSplits, write_medmnist};
use ward_data::{ImageSet, ImageShape, ImageTask};
use ward_experiment::{EngineOptions, Experiment, Quiet};

/// `n` RGB 28x28 images of 5 classes (label `i * 7 mod 5`) whose pixels carry a little of
/// their class, so the scores differ between images.
fn split(n: usize, salt: usize) -> ImageSet {
    let task = ImageTask::MultiClass { classes: 5 };
    let shape = ImageShape::d2(3, 28, 28);
    let mut s = ImageSet::empty(shape, task);
    for i in 0..n {
        let label = (i * 7 % 5) as u32;
        let px: Vec<f32> = (0..shape.len())
            .map(|p| ((p * 13 + i * 31 + salt + 40 * label as usize) % 256) as f32 / 255.0)
            .collect();
        s.push(&px, &[label], "");
    }
    s
}

/// Writes RetinaMNIST's official split sizes (MedMNIST v2 Table 1: 1,080 / 120 / 400).
fn write_retina(path: &Path) {
    let splits = NpzSplits {
        train: split(1_080, 0),
        val: split(120, 1),
        test: split(400, 2),
    };
    write_medmnist(path, &splits).unwrap();
}

/// One FedAvg round of a small CNN on a RetinaMNIST-layout file over 4 Dirichlet sites:
/// the sites' test splits are the 400 official test images (none of them trains), the
/// run reports a macro one-vs-rest AUC per site and for the whole test split, and the
/// whole split's accuracy is the test-size-weighted mean of the sites' accuracies (every
/// site scores with the global model, so the two must agree).
#[test]
fn a_partitioned_medmnist_run_scores_the_official_test_split_whole() {
    let dir = tempfile::tempdir().unwrap();
    let npz = dir.path().join("retinamnist.npz");
    write_retina(&npz);
    let toml = dir.path().join("retina.toml");
    fs_err::write(
        &toml,
        "name = \"retina\"\n\
         [data]\ndataset = \"medmnist\"\npath = \"retinamnist.npz\"\nmedmnist = \"retinamnist\"\n\
         partition = { kind = \"dirichlet\", sites = 4, alpha = 1.0, seed = 3, min-rows = 40 }\n\
         [model]\nkind = \"cnn\"\nchannels = [4]\nhidden = []\n\
         [train]\nbatch-size = 32\nlocal-steps = 2\n\
         [federation]\nrounds = 1\n",
    )
    .unwrap();
    let exp = Experiment::load(&toml, &[]).unwrap();
    let tests: Vec<usize> = exp.data().sites.iter().map(|s| s.test.len()).collect();
    assert_eq!(tests.iter().sum::<usize>(), 400, "{tests:?}");
    let train: usize = exp.data().sites.iter().map(|s| s.train.len()).sum();
    assert_eq!(train, 1_080);

    let out = exp
        .prepare(EngineOptions::default())
        .unwrap()
        .run(&mut Quiet)
        .unwrap();
    let s = &out.summary;
    let h = s
        .held_out
        .as_ref()
        .expect("a MedMNIST file has a held-out set");
    assert_eq!(h.what, "the test split of retinamnist.npz (400 images)");
    assert_eq!(h.n, 400);
    let auc = h.auc.expect("every class is in the test split");
    assert!((0.0..=1.0).contains(&auc), "{auc}");
    // Multi-class runs report AUC per site too (before: binary runs only).
    assert!(!s.per_site_auc.is_empty(), "{:?}", s.per_site_auc);
    let weighted: f64 = exp
        .data()
        .sites
        .iter()
        .filter_map(|site| {
            s.per_site
                .get(&site.name)
                .map(|a| a * site.test.len() as f64)
        })
        .sum::<f64>()
        / 400.0;
    assert!(
        (weighted - h.accuracy).abs() < 1e-12,
        "{weighted} vs {}",
        h.accuracy
    );
    let json = serde_json::to_value(s).unwrap();
    assert_eq!(json["held_out"]["n"], 400);
}
