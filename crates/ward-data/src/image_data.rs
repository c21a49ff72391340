//! Image datasets as [`FederatedDataset`]s: each row of a split is one image's pixels
//! (`C x D x H x W` values in `[0, 1]`), so the federation, attacks and aggregators work on
//! images unchanged.

use ward_core::config::{ImageDataSpec, ImageTaskKind, PartitionSpec};

use crate::error::DataError;
use crate::image::{ImageSet, ImageShape, ImageSite, ImageTask};
use crate::matrix::{Matrix, Split};
use crate::{FederatedDataset, SiteData};

/// The task an `[data.images]` section states.
pub fn task_of(spec: &ImageDataSpec) -> ImageTask {
    match spec.task {
        ImageTaskKind::MultiClass => ImageTask::MultiClass {
            classes: spec.classes.unwrap_or(2),
        },
        ImageTaskKind::Binary => ImageTask::Binary,
        ImageTaskKind::MultiLabel => ImageTask::MultiLabel {
            labels: spec.labels.unwrap_or(1),
        },
    }
}

/// One label per image for training: the class, or for multi-label tasks the labels as a
/// bitmask (bit `k` = label `k`).
///
/// # Errors
/// More than 32 labels (a bitmask cannot hold them).
pub fn row_labels(set: &ImageSet) -> Result<Vec<u32>, DataError> {
    match set.task {
        ImageTask::MultiLabel { labels } => {
            if labels > 32 {
                return Err(DataError::spec(
                    "data.images.labels",
                    format!("at most 32 labels are supported, got {labels}"),
                ));
            }
            Ok(set
                .labels
                .chunks(labels)
                .map(|row| {
                    row.iter()
                        .enumerate()
                        .fold(0u32, |m, (k, &v)| m | (u32::from(v != 0) << k))
                })
                .collect())
        }
        _ => Ok(set.labels.clone()),
    }
}

/// An image set as a split (rows = images).
pub fn to_split(set: &ImageSet) -> Result<Split, DataError> {
    Ok(Split {
        x: Matrix {
            rows: set.len(),
            cols: set.shape.len(),
            data: set.pixels.clone(),
        },
        y: row_labels(set)?,
    })
}

/// Number of classes a dataset of `task` reports (label bound for multi-label: 2).
fn num_classes(task: ImageTask) -> usize {
    match task {
        ImageTask::MultiClass { classes } => classes,
        ImageTask::Binary | ImageTask::MultiLabel { .. } => 2,
    }
}

/// Sites of images as a federated dataset: training images train, test images test;
/// validation images (kept for calibration and conformal prediction) are not used here.
///
/// # Errors
/// Sites with different image shapes or tasks, or a site with no training image.
pub fn dataset_from_sites(
    name: &str,
    sites: &[ImageSite],
    warnings: Vec<String>,
) -> Result<FederatedDataset, DataError> {
    let first = sites
        .first()
        .ok_or_else(|| DataError::spec("data", "the image dataset has no site"))?;
    let (shape, task) = (first.train.shape, first.train.task);
    let mut out = Vec::with_capacity(sites.len());
    for s in sites {
        for (what, set) in [("train", &s.train), ("test", &s.test)] {
            if set.shape != shape || set.task != task {
                return Err(DataError::spec(
                    "data",
                    format!(
                        "site {:?} {what} images are {} ({:?}); site {:?} has {shape} ({task:?}): every site must hold one image shape and task",
                        s.name, set.shape, set.task, first.name
                    ),
                ));
            }
        }
        if s.train.is_empty() {
            return Err(DataError::spec(
                "data",
                format!("site {:?} has no training image", s.name),
            ));
        }
        out.push(SiteData {
            name: s.name.clone(),
            train: to_split(&s.train)?,
            test: to_split(&s.test)?,
        });
    }
    Ok(FederatedDataset {
        name: name.to_string(),
        feature_names: Vec::new(),
        num_classes: num_classes(task),
        sites: out,
        warnings,
        image: Some((shape, task)),
        held_out: None,
    })
}

/// One pool of images spread over simulated sites by `partition` (label skew on the
/// class, or on the first label for multi-label tasks), each site's images then split
/// into train and test by `test_fraction` (stratified, seeded by `split_seed`).
///
/// # Errors
/// The partitioner's or the split's errors, naming the setting.
pub fn partitioned(
    name: &str,
    pool: &ImageSet,
    partition: &PartitionSpec,
    test_fraction: f64,
    split_seed: u64,
) -> Result<FederatedDataset, DataError> {
    let y = row_labels(pool)?;
    let classes = num_classes(pool.task);
    let part_labels: Vec<u32> = match pool.task {
        ImageTask::MultiLabel { .. } => y.iter().map(|m| m & 1).collect(),
        _ => y.clone(),
    };
    let groups = crate::partition(&part_labels, classes, partition)?;
    let mut sites = Vec::with_capacity(groups.len());
    for (i, rows) in groups.iter().enumerate() {
        let site_name = format!("site-{i}");
        let labels: Vec<u32> = rows.iter().map(|&r| part_labels[r]).collect();
        let (tr, te) = crate::train_test_split(
            &labels,
            test_fraction,
            crate::site_split_seed(split_seed, i),
        );
        let pick = |idx: &[usize]| -> ImageSet {
            let rows: Vec<usize> = idx.iter().map(|&j| rows[j]).collect();
            pool.select(&rows)
        };
        let (train, test) = (pick(&tr), pick(&te));
        if train.is_empty() || test.is_empty() {
            return Err(DataError::SiteTooSmall {
                site: site_name,
                rows: rows.len(),
                train: train.len(),
                test: test.len(),
                test_fraction,
            });
        }
        sites.push(ImageSite {
            name: site_name,
            val: ImageSet::empty(pool.shape, pool.task),
            train,
            test,
        });
    }
    dataset_from_sites(name, &sites, Vec::new())
}

/// The labels a partitioner sees: the class, or for multi-label tasks the first label.
fn partition_labels(set: &ImageSet) -> Result<Vec<u32>, DataError> {
    let y = row_labels(set)?;
    Ok(match set.task {
        ImageTask::MultiLabel { .. } => y.iter().map(|m| m & 1).collect(),
        _ => y,
    })
}

/// A file's own splits kept apart: the training images `train` spread over simulated
/// sites by `partition` (label skew on the class, or on the first label for multi-label
/// tasks), and the test images `test` kept as the test data, never pooled into training.
///
/// Each test image goes to exactly one site: per class `c` in increasing order, the test
/// images of `c` (shuffled by one `ChaCha8Rng` seeded with `split_seed`) are cut into
/// shares proportional to the training images of `c` each site got, by largest
/// remainder (ties: lower site first); a class with no training image is shared in
/// proportion to the sites' training sizes. So a site's test split follows its label
/// skew, and all sites' test splits together are exactly `test`. A site whose shares
/// round to no test image gets an empty test split (not scored on its own) and a
/// warning. Validation images are not used.
///
/// # Errors
/// The partitioner's errors, naming the setting; a shape or task that differs between
/// `train` and `test`.
pub fn partitioned_keep_test(
    name: &str,
    train: &ImageSet,
    test: &ImageSet,
    partition: &PartitionSpec,
    split_seed: u64,
) -> Result<FederatedDataset, DataError> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;

    if (test.shape, test.task) != (train.shape, train.task) && !test.is_empty() {
        return Err(DataError::spec(
            "data",
            format!(
                "test images are {} ({:?}), training images {} ({:?})",
                test.shape, test.task, train.shape, train.task
            ),
        ));
    }
    let classes = num_classes(train.task);
    let train_y = partition_labels(train)?;
    let test_y = partition_labels(test)?;
    let groups = crate::partition(&train_y, classes, partition)?;
    let k = groups.len();
    // counts[c][s]: training images of class c at site s.
    let mut counts = vec![vec![0usize; k]; classes];
    for (s, rows) in groups.iter().enumerate() {
        for &r in rows {
            counts[train_y[r] as usize][s] += 1;
        }
    }
    let sizes: Vec<f64> = groups.iter().map(|g| g.len() as f64).collect();
    let total: f64 = sizes.iter().sum();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(split_seed);
    let mut test_rows: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (c, per_site) in counts.iter().enumerate() {
        let mut rows: Vec<usize> = (0..test_y.len())
            .filter(|&i| test_y[i] as usize == c)
            .collect();
        if rows.is_empty() {
            continue;
        }
        rows.shuffle(&mut rng);
        let n_c: usize = per_site.iter().sum();
        let shares: Vec<f64> = if n_c > 0 {
            per_site.iter().map(|&m| m as f64 / n_c as f64).collect()
        } else {
            sizes.iter().map(|&m| m / total).collect()
        };
        crate::partition::cut(
            &rows,
            &crate::partition::round_shares(rows.len(), &shares),
            &mut test_rows,
        );
    }
    let mut warnings = Vec::new();
    let mut sites = Vec::with_capacity(k);
    for (i, (rows, mut t)) in groups.iter().zip(test_rows).enumerate() {
        t.sort_unstable();
        let site_name = format!("site-{i}");
        if t.is_empty() {
            warnings.push(format!(
                "{site_name}: its shares of the test split round to no test image; it is not scored on its own (the whole test split is still scored)"
            ));
        }
        sites.push(ImageSite {
            name: site_name,
            train: train.select(rows),
            val: ImageSet::empty(train.shape, train.task),
            test: test.select(&t),
        });
    }
    dataset_from_sites(name, &sites, warnings)
}

/// Checks that `shape` is 2D or 3D as the experiment says.
pub fn check_dims(shape: ImageShape, is_3d: bool, what: &str) -> Result<(), DataError> {
    if shape.is_3d() != is_3d {
        return Err(DataError::spec(
            "data.images.dims",
            format!(
                "{what} holds {} images ({shape}), the experiment says {}",
                if shape.is_3d() { "3d" } else { "2d" },
                if is_3d { "3d" } else { "2d" }
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_label_rows_become_bitmasks() {
        let mut s = ImageSet::empty(ImageShape::d2(1, 1, 1), ImageTask::MultiLabel { labels: 3 });
        s.push(&[0.1], &[1, 0, 1], "a");
        s.push(&[0.2], &[0, 1, 0], "b");
        assert_eq!(row_labels(&s).unwrap(), vec![0b101, 0b010]);
        let split = to_split(&s).unwrap();
        assert_eq!((split.x.rows, split.x.cols), (2, 1));
    }

    #[test]
    fn partitioned_pool_keeps_every_image_once() {
        let task = ImageTask::MultiClass { classes: 3 };
        let mut pool = ImageSet::empty(ImageShape::d2(1, 2, 2), task);
        for i in 0..90u32 {
            pool.push(&[i as f32 / 90.0; 4], &[i % 3], format!("{i}"));
        }
        let spec = PartitionSpec {
            kind: ward_core::config::PartitionKind::Dirichlet,
            sites: 3,
            alpha: 1.0,
            seed: 1,
            min_rows: 10,
        };
        let d = partitioned("p", &pool, &spec, 0.25, 43).unwrap();
        assert_eq!(d.sites.len(), 3);
        let mut seen: Vec<u32> = d
            .sites
            .iter()
            .flat_map(|s| s.train.x.data.iter().chain(&s.test.x.data).step_by(4))
            .map(|v| (v * 90.0).round() as u32)
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..90).collect::<Vec<_>>());
        assert_eq!(d.image.unwrap().0, ImageShape::d2(1, 2, 2));
    }
}
