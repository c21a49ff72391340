//! [`FederatedDataset`]: sites with train/test splits, standardisation and summaries.

use serde::{Deserialize, Serialize};

use crate::{Matrix, Split};

/// The added constant in `x' = (x - mean) / (std + EPS)` (FLamby's `1e-9`).
pub const STD_EPS: f64 = 1e-9;

/// One site: its name and its training and test examples.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteData {
    /// Site name: the hospital (`Cleveland`), the site column's value, or `site-<i>`.
    pub name: String,
    /// Training examples.
    pub train: Split,
    /// Test examples.
    pub test: Split,
}

/// A dataset split over sites, each with a train and a test split.
#[derive(Debug, Clone, PartialEq)]
pub struct FederatedDataset {
    /// `fed-heart-disease`, `breast-cancer`, or the CSV file's stem.
    pub name: String,
    /// One name per feature column, in column order (empty for images: a row is an
    /// image's pixels).
    pub feature_names: Vec<String>,
    /// Number of classes; labels are `0..num_classes` (2 for binary).
    pub num_classes: usize,
    /// The sites, in a stable order (heart: Cleveland, Hungary, Switzerland, VA Long Beach;
    /// a site column: order of first appearance in the file; partitions: `site-0`, ...).
    pub sites: Vec<SiteData>,
    /// Things the user should see: dropped rows, imputed values, constant columns.
    pub warnings: Vec<String>,
    /// For image datasets: the image shape (every row of a split is one image,
    /// `C x D x H x W` values in `[0, 1]`) and the task. `None` for tables.
    pub image: Option<(crate::ImageShape, crate::ImageTask)>,
    /// When the sites' test rows together form one held-out set that is scored whole as
    /// well as per site: what it is (a MedMNIST file's test split: `"the test split of
    /// pathmnist.npz"`). `None`: only per-site scores.
    pub held_out: Option<String>,
}

/// Which training statistics [`FederatedDataset::standardized`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standardization {
    /// Each site with the mean and std of its own training rows (federated and local
    /// training in FLamby).
    PerSite,
    /// Every site with the mean and std of all sites' training rows together (pooled
    /// training in FLamby).
    Pooled,
}

/// One site at a glance, from [`FederatedDataset::describe`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteSummary {
    /// Site name.
    pub name: String,
    /// Train plus test rows.
    pub rows: usize,
    /// Training rows.
    pub train_rows: usize,
    /// Test rows.
    pub test_rows: usize,
    /// Training rows per label `0..num_classes`.
    pub train_label_counts: Vec<usize>,
    /// Test rows per label `0..num_classes`.
    pub test_label_counts: Vec<usize>,
    /// Mean of each feature over the site's train and test rows (as stored: raw for a
    /// loaded dataset). Empty site: all zero.
    pub feature_means: Vec<f64>,
}

/// Per-column training statistics.
struct ColumnStats {
    mean: Vec<f64>,
    /// Sample std (ddof 1); exactly 0 for a constant column or fewer than 2 rows.
    std: Vec<f64>,
}

impl ColumnStats {
    fn of(rows: &[&Matrix], cols: usize) -> Self {
        let n: usize = rows.iter().map(|m| m.rows).sum();
        let mut mean = vec![0.0; cols];
        let mut std = vec![0.0; cols];
        for j in 0..cols {
            let values = || rows.iter().flat_map(|m| m.iter_rows().map(move |r| r[j]));
            let mut it = values();
            let Some(first) = it.next() else { continue };
            if it.all(|v| v == first) {
                // Constant: the mean is the value itself, and the std exactly 0, with no
                // float error from summing.
                mean[j] = f64::from(first);
                continue;
            }
            let m = values().map(f64::from).sum::<f64>() / n as f64;
            mean[j] = m;
            if n >= 2 {
                let ss: f64 = values().map(|v| (f64::from(v) - m).powi(2)).sum();
                std[j] = (ss / (n - 1) as f64).sqrt();
            }
        }
        Self { mean, std }
    }

    fn apply(&self, m: &Matrix) -> Matrix {
        let mut out = m.clone();
        if m.cols == 0 {
            return out;
        }
        for row in out.data.chunks_exact_mut(m.cols) {
            for (j, v) in row.iter_mut().enumerate() {
                let centred = f64::from(*v) - self.mean[j];
                *v = if self.std[j] == 0.0 {
                    centred as f32
                } else {
                    (centred / (self.std[j] + STD_EPS)) as f32
                };
            }
        }
        out
    }

    fn warn_constant(&self, owner: &str, names: &[String], warnings: &mut Vec<String>) {
        for (j, &s) in self.std.iter().enumerate() {
            if s == 0.0 {
                let name = names.get(j).map_or("?", String::as_str);
                warnings.push(format!(
                    "{owner}: feature {name:?} has standard deviation 0 in the training rows; \
                     it is centred, not scaled"
                ));
            }
        }
    }
}

impl FederatedDataset {
    /// Number of feature columns.
    pub fn num_features(&self) -> usize {
        match self.image {
            Some((shape, _)) => shape.len(),
            None => self.feature_names.len(),
        }
    }

    /// The site called `name`.
    pub fn site(&self, name: &str) -> Option<&SiteData> {
        self.sites.iter().find(|s| s.name == name)
    }

    /// Standardises the features with training statistics only (FLamby's protocol).
    ///
    /// `x' = (x - mean) / (std + 1e-9)` with `std` the sample standard deviation (ddof 1),
    /// computed in `f64`. [`Standardization::PerSite`]: each site's train and test rows
    /// with the mean and std of that site's training rows. [`Standardization::Pooled`]:
    /// every site's rows with the mean and std of all sites' training rows together.
    ///
    /// A column whose training std is exactly 0 (a constant column, or a single training
    /// row) is only centred, `x - mean`, never divided, and a warning naming the site (or
    /// the pooled rows) and the column is added to `warnings`.
    ///
    /// Image datasets are returned unchanged: pixels are already in `[0, 1]`.
    pub fn standardized(&self, mode: Standardization) -> FederatedDataset {
        let cols = self.num_features();
        let mut out = self.clone();
        if self.image.is_some() {
            return out;
        }
        match mode {
            Standardization::PerSite => {
                for site in &mut out.sites {
                    let stats = ColumnStats::of(&[&site.train.x], cols);
                    stats.warn_constant(
                        &format!("site {:?}", site.name),
                        &self.feature_names,
                        &mut out.warnings,
                    );
                    site.train.x = stats.apply(&site.train.x);
                    site.test.x = stats.apply(&site.test.x);
                }
            }
            Standardization::Pooled => {
                let trains: Vec<&Matrix> = self.sites.iter().map(|s| &s.train.x).collect();
                let stats = ColumnStats::of(&trains, cols);
                stats.warn_constant(
                    "pooled training rows of all sites",
                    &self.feature_names,
                    &mut out.warnings,
                );
                for site in &mut out.sites {
                    site.train.x = stats.apply(&site.train.x);
                    site.test.x = stats.apply(&site.test.x);
                }
            }
        }
        out
    }

    /// The dataset without the site called `name`, and that site (raw, as stored):
    /// leave-one-site-out. `None` when there is no such site. The held-out set
    /// (`held_out`) is dropped: the remaining sites' test rows are no longer the file's
    /// whole test split.
    pub fn without_site(&self, name: &str) -> Option<(FederatedDataset, SiteData)> {
        let at = self.sites.iter().position(|s| s.name == name)?;
        let mut rest = self.clone();
        let site = rest.sites.remove(at);
        rest.held_out = None;
        Some((rest, site))
    }

    /// A site that is not part of this (raw) dataset, standardised as a new site of it
    /// would be: [`Standardization::PerSite`] with the mean and std of the new site's own
    /// training rows (features need no labels), [`Standardization::Pooled`] with those of
    /// this dataset's training rows (the federation's statistics, as its sites were
    /// standardised by [`FederatedDataset::standardized`]). Images are returned
    /// unchanged.
    pub fn standardize_new_site(&self, site: &SiteData, mode: Standardization) -> SiteData {
        if self.image.is_some() {
            return site.clone();
        }
        let cols = self.num_features();
        let stats = match mode {
            Standardization::PerSite => ColumnStats::of(&[&site.train.x], cols),
            Standardization::Pooled => {
                let trains: Vec<&Matrix> = self.sites.iter().map(|s| &s.train.x).collect();
                ColumnStats::of(&trains, cols)
            }
        };
        let mut out = site.clone();
        out.train.x = stats.apply(&site.train.x);
        out.test.x = stats.apply(&site.test.x);
        out
    }

    /// All sites' training splits concatenated, in site order.
    pub fn pooled_train(&self) -> Split {
        let cols = self.num_features();
        let mut x = Matrix::empty(cols);
        let mut y = Vec::new();
        for s in &self.sites {
            x.data.extend_from_slice(&s.train.x.data);
            x.rows += s.train.x.rows;
            y.extend_from_slice(&s.train.y);
        }
        Split { x, y }
    }

    /// Per site: rows, train and test rows, label counts of each split and the feature
    /// means over train and test rows together.
    pub fn describe(&self) -> Vec<SiteSummary> {
        let cols = self.num_features();
        self.sites
            .iter()
            .map(|s| {
                let rows = s.train.len() + s.test.len();
                let mut sums = vec![0.0f64; cols];
                for r in s.train.x.iter_rows().chain(s.test.x.iter_rows()) {
                    for (acc, &v) in sums.iter_mut().zip(r) {
                        *acc += f64::from(v);
                    }
                }
                let feature_means = sums
                    .into_iter()
                    .map(|v| if rows == 0 { 0.0 } else { v / rows as f64 })
                    .collect();
                SiteSummary {
                    name: s.name.clone(),
                    rows,
                    train_rows: s.train.len(),
                    test_rows: s.test.len(),
                    train_label_counts: s.train.label_counts(self.num_classes),
                    test_label_counts: s.test.label_counts(self.num_classes),
                    feature_means,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(rows: usize, data: &[f32], y: &[u32]) -> Split {
        Split {
            x: Matrix::new(rows, data.len() / rows.max(1), data.to_vec()).unwrap(),
            y: y.to_vec(),
        }
    }

    /// Two sites, two features; numbers chosen to check by hand.
    fn tiny() -> FederatedDataset {
        FederatedDataset {
            name: "tiny".into(),
            feature_names: vec!["a".into(), "b".into()],
            num_classes: 2,
            image: None,
            held_out: None,
            sites: vec![
                SiteData {
                    name: "s0".into(),
                    // a: 1, 3 (mean 2, sample std sqrt(2)); b: 5, 5 (constant)
                    train: split(2, &[1., 5., 3., 5.], &[0, 1]),
                    test: split(1, &[4., 7.], &[1]),
                },
                SiteData {
                    name: "s1".into(),
                    // a: 10, 12, 14 (mean 12, sample std 2); b: 0, 1, 2 (mean 1, std 1)
                    train: split(3, &[10., 0., 12., 1., 14., 2.], &[1, 1, 0]),
                    test: split(1, &[16., 3.], &[0]),
                },
            ],
            warnings: vec![],
        }
    }

    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() < 1e-5
    }

    #[test]
    fn a_left_out_site_is_standardised_as_a_new_site() {
        let d = tiny();
        let (rest, s1) = d.without_site("s1").unwrap();
        assert_eq!(rest.sites.len(), 1);
        assert_eq!(rest.sites[0].name, "s0");
        assert_eq!(s1.name, "s1");
        assert!(d.without_site("nowhere").is_none());
        // Per site: its own training statistics, as if it had been in the federation.
        let own = rest.standardize_new_site(&s1, Standardization::PerSite);
        assert_eq!(&own, &d.standardized(Standardization::PerSite).sites[1]);
        // Pooled: the remaining sites' statistics only (s0's a: mean 2, std sqrt(2)).
        let pooled = rest.standardize_new_site(&s1, Standardization::Pooled);
        assert!(close(pooled.test.x.row(0)[0], (16.0 - 2.0) / 2f64.sqrt()));
        // b is constant at s0: centred only.
        assert!(close(pooled.test.x.row(0)[1], 3.0 - 5.0));
    }

    #[test]
    fn per_site_uses_each_sites_training_rows() {
        let d = tiny().standardized(Standardization::PerSite);
        let s0 = &d.sites[0];
        let r2 = 2f64.sqrt();
        assert!(close(s0.train.x.row(0)[0], -1.0 / r2));
        assert!(close(s0.train.x.row(1)[0], 1.0 / r2));
        // Test row with the training stats: (4 - 2) / sqrt(2).
        assert!(close(s0.test.x.row(0)[0], 2.0 / r2));
        // Constant b: centred only, (5 - 5) = 0 and test (7 - 5) = 2, not divided.
        assert_eq!(s0.train.x.row(0)[1], 0.0);
        assert_eq!(s0.test.x.row(0)[1], 2.0);
        let s1 = &d.sites[1];
        assert!(close(s1.test.x.row(0)[0], 2.0)); // (16 - 12) / 2
        assert!(close(s1.test.x.row(0)[1], 2.0)); // (3 - 1) / 1
        assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
        assert!(d.warnings[0].contains("\"s0\"") && d.warnings[0].contains("\"b\""));
    }

    #[test]
    fn pooled_uses_all_training_rows_together() {
        // Pooled a: 1, 3, 10, 12, 14: mean 8, sample var (49+25+4+16+36)/4 = 32.5.
        // Pooled b: 5, 5, 0, 1, 2: mean 2.6, sample var (5.76*2+6.76+2.56+0.36)/4 = 5.3.
        let d = tiny().standardized(Standardization::Pooled);
        let sa = 32.5f64.sqrt();
        let sb = 5.3f64.sqrt();
        assert!(close(d.sites[0].train.x.row(0)[0], (1.0 - 8.0) / sa));
        assert!(close(d.sites[0].test.x.row(0)[1], (7.0 - 2.6) / sb));
        assert!(close(d.sites[1].test.x.row(0)[0], (16.0 - 8.0) / sa));
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn pooled_train_and_describe() {
        let d = tiny();
        let p = d.pooled_train();
        assert_eq!(p.x.rows, 5);
        assert_eq!(p.y, vec![0, 1, 1, 1, 0]);
        assert_eq!(p.x.row(2), &[10., 0.]);
        let s = d.describe();
        assert_eq!(s[0].rows, 3);
        assert_eq!(s[0].train_label_counts, vec![1, 1]);
        assert_eq!(s[1].test_label_counts, vec![1, 0]);
        // s0 means over train+test: a (1+3+4)/3, b (5+5+7)/3.
        assert!((s[0].feature_means[0] - 8.0 / 3.0).abs() < 1e-12);
        assert!((s[0].feature_means[1] - 17.0 / 3.0).abs() < 1e-12);
    }
}
