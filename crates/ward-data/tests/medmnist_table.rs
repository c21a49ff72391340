//! MedMNIST as published: the table of MedMNIST v2 datasets, files checked against it
//! (`data.medmnist`), and the official test split kept under a partition of the
//! training split.

use std::path::{Path, PathBuf};

use ward_core::config::{
    DataSpec, DatasetKind, ImageDataSpec, ImageTaskKind, MedmnistName, PartitionKind, PartitionSpec,
};
use ward_data::npz::{NpzSplits, write_medmnist};
use ward_data::readers::medmnist::{MEDMNIST_V2, MedmnistTask, info};
use ward_data::{ImageSet, ImageShape, ImageTask, load};

/// Split codes written into pixel 0 of every image, so a loaded row names where it
/// came from.
const TRAIN: u32 = 0;
const VAL: u32 = 1;
const TEST: u32 = 2;

/// `n` images of `shape`: image `i` of split `code` holds pixel 0 = `code`, pixel 1 =
/// `i mod 256`, pixel 2 = `i div 256` (each over 255, exact through uint8), the rest 0.5;
/// labels cycle through `0..bound` (per label for multi-label tasks).
fn split(task: ImageTask, shape: ImageShape, n: usize, code: u32) -> ImageSet {
    let mut s = ImageSet::empty(shape, task);
    let mut px = vec![128.0 / 255.0; shape.len()];
    for i in 0..n {
        px[0] = code as f32 / 255.0;
        px[1] = (i % 256) as f32 / 255.0;
        px[2] = (i / 256) as f32 / 255.0;
        let lab: Vec<u32> = (0..task.label_width())
            .map(|k| ((i * 7 + k * 3) % task.label_bound() as usize) as u32)
            .collect();
        s.push(&px, &lab, "");
    }
    s
}

/// The split code and index a loaded row (an image's pixels) was written with.
fn decode(row: &[f32]) -> (u32, usize) {
    let byte = |v: f32| (v * 255.0).round() as usize;
    (byte(row[0]) as u32, byte(row[1]) + 256 * byte(row[2]))
}

/// Writes a MedMNIST-layout file with `counts` = (train, val, test) images.
fn write(path: &Path, task: ImageTask, shape: ImageShape, counts: [usize; 3]) {
    let splits = NpzSplits {
        train: split(task, shape, counts[0], TRAIN),
        val: split(task, shape, counts[1], VAL),
        test: split(task, shape, counts[2], TEST),
    };
    write_medmnist(path, &splits).unwrap();
}

/// `[data]` naming `name`, reading `path`, optionally partitioned.
fn named(name: MedmnistName, path: PathBuf, partition: Option<PartitionSpec>) -> DataSpec {
    DataSpec {
        path: Some(path),
        medmnist: Some(name),
        partition,
        ..DataSpec::builtin(DatasetKind::Medmnist)
    }
}

/// The table follows `MedmnistName::ALL`, and its split sizes add up to the totals the
/// `medmnist` package's own descriptions state (`medmnist/info.py` 3.0.2,
/// `INFO[name]["description"]`: "NCT-CRC-HE-100K of 100,000 ... a test dataset
/// (CRC-VAL-HE-7K) of 7,180", "112,120 frontal-view X-Ray images", "10,015
/// dermatoscopic images", "109,309 valid optical coherence tomography", "5,856
/// pediatric chest X-Ray images", "1,600 retina fundus images", "780 breast ultrasound
/// images", "17,092 images", "236,386 human kidney cortex cells", "1,584 left and right
/// adrenal glands"), independent of the `n_samples` entries the table was copied from.
#[test]
fn table_rows_follow_the_names_and_add_up_to_the_published_totals() {
    for (row, name) in MEDMNIST_V2.iter().zip(MedmnistName::ALL) {
        assert_eq!(row.name, name);
        assert_eq!(info(name).name, name);
        assert_eq!(
            row.is_3d,
            name.as_str().ends_with("3d"),
            "{}",
            name.as_str()
        );
    }
    let total = |n: MedmnistName| {
        let r = info(n);
        r.train + r.val + r.test
    };
    for (name, published) in [
        (MedmnistName::Pathmnist, 107_180),
        (MedmnistName::Chestmnist, 112_120),
        (MedmnistName::Dermamnist, 10_015),
        (MedmnistName::Octmnist, 109_309),
        (MedmnistName::Pneumoniamnist, 5_856),
        (MedmnistName::Retinamnist, 1_600),
        (MedmnistName::Breastmnist, 780),
        (MedmnistName::Bloodmnist, 17_092),
        (MedmnistName::Tissuemnist, 236_386),
        (MedmnistName::Adrenalmnist3d, 1_584),
    ] {
        assert_eq!(total(name), published, "{}", name.as_str());
    }
    // PathMNIST: NCT-CRC-HE-100K split 9:1 into train and val.
    let p = info(MedmnistName::Pathmnist);
    assert_eq!(p.train + p.val, 100_000);
    // Tasks as `INFO[name]["task"]` states them; RetinaMNIST trains as 5 classes.
    let r = info(MedmnistName::Retinamnist);
    assert_eq!(r.medmnist_task, MedmnistTask::OrdinalRegression);
    assert_eq!(r.task, ImageTask::MultiClass { classes: 5 });
    assert_eq!(
        info(MedmnistName::Chestmnist).task,
        ImageTask::MultiLabel { labels: 14 }
    );
    let rgb: Vec<&str> = MEDMNIST_V2
        .iter()
        .filter(|r| r.channels == 3)
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        rgb,
        ["pathmnist", "dermamnist", "retinamnist", "bloodmnist"]
    );
}

/// `data.medmnist` alone is enough: task, classes, channels come from the table, and the
/// file's test split is the held-out set.
#[test]
fn a_named_file_needs_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("breastmnist.npz");
    write(
        &p,
        ImageTask::Binary,
        ImageShape::d2(1, 28, 28),
        [546, 78, 156],
    );
    let d = load(&named(MedmnistName::Breastmnist, p, None), dir.path()).unwrap();
    assert_eq!(
        d.image,
        Some((ImageShape::d2(1, 28, 28), ImageTask::Binary))
    );
    assert_eq!(d.sites.len(), 1);
    assert_eq!((d.sites[0].train.len(), d.sites[0].test.len()), (546, 156));
    assert_eq!(
        d.held_out.as_deref(),
        Some("the test split of breastmnist.npz (156 images)")
    );
}

/// A refusal case: file name, the name it is read as, the task, shape and split sizes
/// it is written with, and what the error must say.
type Case = (
    &'static str,
    MedmnistName,
    ImageTask,
    ImageShape,
    [usize; 3],
    &'static [&'static str],
);

/// A file that disagrees with the table is refused, naming the file, the key, and the
/// expected and found values.
#[test]
fn a_file_that_disagrees_with_the_table_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let grey = ImageShape::d2(1, 28, 28);
    let cases: [Case; 7] = [
        (
            "rgb.npz",
            MedmnistName::Breastmnist,
            ImageTask::Binary,
            ImageShape::d2(3, 28, 28),
            [5, 2, 2],
            &["train_images: expected 1 channel", "found 3 (3x28x28)"],
        ),
        (
            "grey.npz",
            MedmnistName::Pathmnist,
            ImageTask::MultiClass { classes: 9 },
            grey,
            [5, 2, 2],
            &["expected 3 channels", "found 1 (1x28x28)"],
        ),
        (
            "size.npz",
            MedmnistName::Breastmnist,
            ImageTask::Binary,
            ImageShape::d2(1, 30, 30),
            [5, 2, 2],
            &["expected images of 28x28, 64x64, 128x128, 224x224, found 30x30"],
        ),
        (
            "labels.npz",
            MedmnistName::Dermamnist,
            ImageTask::MultiClass { classes: 8 },
            ImageShape::d2(3, 28, 28),
            [9, 2, 2],
            &[
                "dermamnist (MedMNIST v2: multi-class, 7 classes",
                "label 7 of image 1 is outside 0..7",
            ],
        ),
        (
            "chest.npz",
            MedmnistName::Chestmnist,
            ImageTask::Binary,
            grey,
            [5, 2, 2],
            &["14 labels", "shape [5, 1]", "need (5, 14)"],
        ),
        (
            "count.npz",
            MedmnistName::Breastmnist,
            ImageTask::Binary,
            grey,
            [545, 78, 156],
            &["train split: expected 546 images (MedMNIST v2 breastmnist), found 545"],
        ),
        (
            "flat.npz",
            MedmnistName::Organmnist3d,
            ImageTask::MultiClass { classes: 11 },
            grey,
            [5, 2, 2],
            &["the experiment says 3d"],
        ),
    ];
    for (file, name, task, shape, counts, wants) in cases {
        let p = dir.path().join(file);
        write(&p, task, shape, counts);
        let e = load(&named(name, p, None), dir.path())
            .unwrap_err()
            .to_string();
        let key = format!("data.medmnist = \"{}\"", name.as_str());
        assert!(e.contains(file) && e.contains(&key), "{file}: {e}");
        for want in wants {
            assert!(e.contains(want), "{file}: {e}\nwant: {want}");
        }
    }
    // The val split is part of the release: a file without one is refused too.
    let p = dir.path().join("noval.npz");
    write(&p, ImageTask::Binary, grey, [546, 0, 156]);
    let e = load(&named(MedmnistName::Breastmnist, p, None), dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "val split: expected 78 images (MedMNIST v2 breastmnist), found 0 (no val_images array)"
        ),
        "{e}"
    );
}

/// The explicit `[data.images]` route still reads a non-standard file (any split sizes).
#[test]
fn a_described_file_is_not_held_to_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mine.npz");
    write(
        &p,
        ImageTask::MultiClass { classes: 3 },
        ImageShape::d2(1, 30, 30),
        [40, 0, 12],
    );
    let spec = DataSpec {
        path: Some(p),
        images: Some(ImageDataSpec {
            task: ImageTaskKind::MultiClass,
            classes: Some(3),
            labels: None,
            dims: ward_core::config::Dims::D2,
            on_bad_file: ward_core::config::BadFilePolicy::Fail,
        }),
        ..DataSpec::builtin(DatasetKind::Medmnist)
    };
    let d = load(&spec, dir.path()).unwrap();
    assert_eq!((d.sites[0].train.len(), d.sites[0].test.len()), (40, 12));
}

/// Acceptance test (issue 14, item 5): a MedMNIST-layout file with RetinaMNIST's official
/// splits (1,080 / 120 / 400 RGB 28x28 images, 5 classes; MedMNIST v2 Table 1) keeps its
/// test split under a Dirichlet partition of its training split: every official test
/// image is in exactly one site's test split (so every one is scored), no test or val
/// image is in any site's training data, every training image is in exactly one site's
/// training data, and each site's test images per class follow its share of the class's
/// training images (largest remainder: within one image).
#[test]
fn official_test_split_is_kept_under_a_dirichlet_partition() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("retinamnist.npz");
    let task = ImageTask::MultiClass { classes: 5 };
    write(&p, task, ImageShape::d2(3, 28, 28), [1_080, 120, 400]);
    let partition = PartitionSpec {
        kind: PartitionKind::Dirichlet,
        sites: 5,
        alpha: 0.5,
        seed: 1,
        min_rows: 20,
    };
    let d = load(
        &named(MedmnistName::Retinamnist, p, Some(partition)),
        dir.path(),
    )
    .unwrap();
    assert_eq!(d.sites.len(), 5);
    let mut train_ids = Vec::new();
    let mut test_ids = Vec::new();
    for s in &d.sites {
        for row in s.train.x.iter_rows() {
            let (code, i) = decode(row);
            assert_eq!(
                code, TRAIN,
                "{}: a val or test image in the training data",
                s.name
            );
            train_ids.push(i);
        }
        for row in s.test.x.iter_rows() {
            let (code, i) = decode(row);
            assert_eq!(code, TEST, "{}: a non-test image in the test data", s.name);
            test_ids.push(i);
        }
    }
    train_ids.sort_unstable();
    test_ids.sort_unstable();
    assert_eq!(train_ids, (0..1_080).collect::<Vec<_>>());
    assert_eq!(test_ids, (0..400).collect::<Vec<_>>());
    assert_eq!(
        d.held_out.as_deref(),
        Some("the test split of retinamnist.npz (400 images)")
    );
    // Labels cycle i * 7 mod 5: 80 test images of each class.
    for c in 0..5u32 {
        let n_c: usize = d
            .sites
            .iter()
            .map(|s| s.train.y.iter().filter(|&&y| y == c).count())
            .sum();
        for s in &d.sites {
            let train_c = s.train.y.iter().filter(|&&y| y == c).count();
            let test_c = s.test.y.iter().filter(|&&y| y == c).count();
            let exact = 80.0 * train_c as f64 / n_c as f64;
            assert!(
                (test_c as f64 - exact).abs() < 1.0,
                "{} class {c}: {test_c} test images for a share of {exact}",
                s.name
            );
        }
    }
}
