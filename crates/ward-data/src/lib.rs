//! Ward's data: federated datasets as plain `f32` matrices, ready for any model.
//!
//! - [`load`] turns the `[data]` section of an experiment file ([`DataSpec`]) into a
//!   [`FederatedDataset`]: named sites ([`SiteData`]), each with a train and a test
//!   [`Split`] of features ([`Matrix`]) and integer labels. Features are raw, not
//!   standardised.
//! - Built in, embedded in the binary: `fed-heart-disease` (UCI heart disease, four
//!   hospitals, FLamby's Fed-Heart-Disease protocol: 740 patients, 13 features) and
//!   `breast-cancer` (Breast Cancer Wisconsin, 569 patients, 30 features, partitioned into
//!   simulated sites). Any other table comes in as `dataset = "csv"`: numeric and one-hot
//!   categorical columns, a target rule, and a site column or a partition.
//! - [`partition`] spreads rows without sites over simulated ones (IID, Dirichlet label
//!   skew, quantity skew); [`train_test_split`] splits each site, stratified by label
//!   where every class has more than 2 rows.
//! - [`FederatedDataset::standardized`] standardises with training statistics only, per
//!   site or pooled ([`Standardization`]).
//!
//! Every random choice comes from a `ChaCha8Rng` seeded by `data.split-seed` or
//! `data.partition.seed`, so the same experiment file always gives the same data, bit for
//! bit, independent of the run seed.
//!
//! ```
//! use std::path::Path;
//! use ward_core::config::{DataSpec, DatasetKind};
//! use ward_data::{Standardization, load};
//!
//! let spec = DataSpec::builtin(DatasetKind::FedHeartDisease);
//! let data = load(&spec, Path::new("."))?;
//! assert_eq!(data.sites.len(), 4);
//! assert_eq!(data.sites[0].name, "Cleveland");
//! assert_eq!((data.sites[0].train.len(), data.sites[0].test.len()), (200, 104));
//! assert_eq!(data.feature_names.len(), 13);
//!
//! // Standardise each site with its own training mean and std (FLamby's federated setup).
//! let scaled = data.standardized(Standardization::PerSite);
//! let pooled = scaled.pooled_train();
//! assert_eq!(pooled.x.cols, 13);
//! assert_eq!(pooled.len(), 200 + 171 + 30 + 85);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

use ward_core::config::{DataSpec, DatasetKind};

pub mod augment;
mod builtin;
pub mod corrupt;
mod dataset;
mod error;
pub mod geometry;
pub mod image;
pub mod image_data;
mod image_files;
mod matrix;
pub mod npz;
mod partition;
pub mod readers;
mod split;
pub mod synth;
mod table;

pub use builtin::{BREAST_CANCER_FEATURES, HEART_FEATURES, HEART_SITES};
pub use dataset::{FederatedDataset, STD_EPS, SiteData, SiteSummary, Standardization};
pub use error::DataError;
pub use image::{ImageSet, ImageShape, ImageSite, ImageTask};
pub use matrix::{Matrix, Split};
pub use partition::{MAX_DRAWS, partition};
pub use split::{site_split_seed, test_size, train_test_split};

/// The synthetic scanner-shift task of `[data.synth]`: its sites as generated, or, with
/// `[data.partition]`, every generated image pooled and spread over simulated sites.
fn load_synth(spec: &DataSpec) -> Result<FederatedDataset, DataError> {
    let s = spec.synth.unwrap_or_default();
    let synth_spec = synth::SynthSpec {
        sites: s.sites,
        per_site: s.per_site,
        size: s.size,
        classes: s.classes,
        seed: s.seed,
        ..synth::SynthSpec::default()
    };
    let generated =
        synth::generate(&synth_spec).map_err(|e| DataError::spec("data.synth", e.to_string()))?;
    match &spec.partition {
        None => image_data::dataset_from_sites("synth", &generated.sites, Vec::new()),
        Some(p) => {
            let first = &generated.sites[0].train;
            let mut pool = ImageSet::empty(first.shape, first.task);
            for site in &generated.sites {
                for set in [&site.train, &site.val, &site.test] {
                    pool.extend(set)
                        .map_err(|e| DataError::spec("data.synth", e))?;
                }
            }
            image_data::partitioned("synth", &pool, p, spec.test_fraction, spec.split_seed)
        }
    }
}

/// Loads the dataset that `spec` describes, split into sites and train/test.
///
/// `base_dir` resolves a relative `data.path` (the experiment file's folder); the built-in
/// datasets ignore it. Each site is split by [`train_test_split`] with
/// `data.test-fraction` and the seed [`site_split_seed`]`(data.split-seed, site index)`.
/// Features are raw; see [`FederatedDataset::standardized`].
///
/// For `dataset = "csv"`: numeric columns first, then each categorical column's indicators
/// (`column=level`); the target rule gives the labels; sites come from `data.site-column`
/// (order of first appearance) or `[data.partition]` (`site-0`, `site-1`, ...).
/// Missing values (`data.missing-values`) drop the row, or with `missing = "impute"` are
/// filled per site from the training split (numeric: mean; categorical: most frequent
/// level, ties to the first in order, the reference level first). Rows with a missing
/// target or site are always dropped.
///
/// # Errors
/// A [`DataError`] naming the file, line and column, or the offending `data.*` key.
pub fn load(spec: &DataSpec, base_dir: &Path) -> Result<FederatedDataset, DataError> {
    match spec.dataset {
        DatasetKind::FedHeartDisease => builtin::heart(spec),
        DatasetKind::BreastCancer => builtin::breast_cancer(spec),
        DatasetKind::Synth => load_synth(spec),
        DatasetKind::Medmnist => readers::medmnist::load(spec, base_dir),
        DatasetKind::ImageFolder | DatasetKind::Nifti | DatasetKind::Dicom => {
            image_files::load(spec, base_dir)
        }
        DatasetKind::Csv => {
            let path = spec.path.as_deref().ok_or_else(|| {
                DataError::spec("data.path", "is required when data.dataset = \"csv\"")
            })?;
            let path = table::resolve(path, base_dir);
            let name = path
                .file_stem()
                .map_or_else(|| "csv".into(), |s| s.to_string_lossy().into_owned());
            let table = table::TableSpec::from_csv_spec(spec, name)?;
            let bytes = table::read_file(&path)?;
            table::load_table(&bytes, &path, &table)
        }
    }
}
