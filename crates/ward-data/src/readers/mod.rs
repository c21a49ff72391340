//! Image readers: MedMNIST `.npz`, folders of PNG/JPEG images, NIfTI volumes and DICOM
//! images or series, each producing [`ImageSet`](crate::ImageSet)s (pixels in `[0, 1]`,
//! `N x C x D x H x W`).
//!
//! | reader | input | labels |
//! |---|---|---|
//! | [`medmnist::read_medmnist`], [`medmnist::read_medmnist_sites`], [`medmnist::read_named`] | MedMNIST `.npz` (train/val/test arrays); `read_named` checks a file against the MedMNIST v2 table ([`medmnist::MEDMNIST_V2`]) | in the file |
//! | [`folder::read_class_folders`], [`folder::read_site_folders`] | `root/<class>/*.png` or `root/<site>/<class>/*.png` | sorted class folder names |
//! | [`nifti::read_nifti`] | `.nii` / `.nii.gz` volumes (reoriented, optionally resampled), or their axial, coronal or sagittal slices | CSV `file,label` |
//! | [`dicom::read_dicom_images`], [`dicom::read_dicom_series`] | one DICOM file per image, or one folder per series or one multi-frame file per volume | CSV keyed by file (or series folder, or multi-frame file) or `sop_instance_uid` |
//!
//! The caller states the task ([`ImageTask`](crate::ImageTask)), the dimensionality and
//! the output size: readers never guess them from the data. Files are read one at a
//! time (one volume or series at a time), so memory holds the output plus one input.
//!
//! Every reader that reads many files takes a [`BadFile`] policy: with
//! [`BadFile::Fail`] the first corrupt, truncated or unsupported file stops the read with
//! a [`DataError`] naming the file and the reason; with
//! [`BadFile::Skip`] the file is left out **and listed** in [`Loaded::skipped`]. Nothing is
//! dropped silently.
//!
//! ```
//! use std::path::Path;
//! use ward_data::ImageTask;
//! use ward_data::readers::{BadFile, Intensity, Resample};
//! use ward_data::geometry::Fit;
//! use ward_data::geometry::VolumeGeometry;
//! use ward_data::readers::nifti::{NiftiOptions, NiftiOutput, read_nifti};
//!
//! # let dir = tempfile::tempdir()?;
//! # let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
//! # for f in ["nifti_labels.csv", "vol_a.nii", "vol_b.nii.gz", "vol_c.nii.gz"] {
//! #     fs_err::copy(fixtures.join(f), dir.path().join(f))?;
//! # }
//! # let labels_csv = dir.path().join("nifti_labels.csv");
//! // labels.csv: "file,label" rows naming .nii / .nii.gz files next to it.
//! let options = NiftiOptions {
//!     task: ImageTask::Binary,
//!     intensity: Intensity::MinMax,
//!     output: NiftiOutput::Volume {
//!         depth: 3,
//!         height: 4,
//!         width: 5,
//!         resample: Resample::Linear,
//!         fit: Fit::Resize,
//!     },
//!     // RAS, the file's own voxel size, anti-aliasing on.
//!     geometry: VolumeGeometry::default(),
//!     bad_file: BadFile::Skip,
//! };
//! let loaded = read_nifti(&labels_csv, &options)?;
//! assert_eq!(loaded.data.len(), 3);
//! // Skipped files are reported ("path: reason"), never dropped silently.
//! let report: Vec<String> = loaded.skipped.iter().map(ToString::to_string).collect();
//! assert!(report.is_empty());
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};

use crate::error::DataError;

pub mod dicom;
mod dicom_decode;
mod dicom_geometry;
pub mod folder;
mod labels;
pub mod medmnist;
pub mod nifti;
pub(crate) mod resample;

pub use resample::Resample;
pub use ward_core::config::{BadFilePolicy as BadFile, Dims};

/// A file left out under [`BadFile::Skip`], with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The file (or, for a label row that matched no file, the label CSV).
    pub path: PathBuf,
    /// Why it was left out.
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// What a reader read, the files it skipped (empty under [`BadFile::Fail`]) and what it
/// read but warns about.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded<T> {
    /// The data read.
    pub data: T,
    /// Files left out under [`BadFile::Skip`], in the order they were met.
    pub skipped: Vec<Skipped>,
    /// Findings about files that were read anyway, each naming its file (e.g. a DICOM
    /// series with non-uniform slice gaps under
    /// [`SpacingCheck::Warn`](dicom::SpacingCheck::Warn)).
    pub warnings: Vec<String>,
}

/// How far from the mean [`Intensity::ZScore`] keeps values: z-scores are clipped to
/// `[-3, 3]` and mapped linearly onto `[0, 1]` (`(z + 3) / 6`).
pub const Z_SCORE_CLIP: f64 = 3.0;

/// How raw intensities (NIfTI voxels after `scl_slope`/`scl_inter`, DICOM values after
/// Rescale Slope/Intercept) map onto `[0, 1]`.
///
/// Every mapping ends in `[0, 1]`, the range [`ImageSet`](crate::ImageSet) promises and
/// that augmentation, acquisition-shift corruptions, attacks and `.npz` export rely on;
/// [`Intensity::ZScore`] therefore clips and rescales its z-scores (stated there).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Intensity {
    /// Minimum to 0, maximum to 1, per volume (per image for 2D files). A constant
    /// volume maps to 0.
    MinMax,
    /// `low` to 0 and `high` to 1, linearly, clamped (e.g. a CT range in Hounsfield units).
    Range {
        /// Value mapped to 0.
        low: f32,
        /// Value mapped to 1 (greater than `low`).
        high: f32,
    },
    /// A CT/MR display window, DICOM's linear VOI function (PS3.3 C.11.2.1.2.1):
    /// values up to `center - 0.5 - (width - 1) / 2` map to 0, values above
    /// `center - 0.5 + (width - 1) / 2` to 1, linearly between; e.g. `center = 40,
    /// width = 400` for CT soft tissue.
    Window {
        /// Window center.
        center: f64,
        /// Window width (at least 1).
        width: f64,
    },
    /// The `low` and `high` percentiles of the volume (numpy's default `"linear"`
    /// percentile) map to 0 and 1, values outside them clipped (MONAI's
    /// `ScaleIntensityRangePercentiles(lower, upper, 0, 1, clip=True)`). Equal
    /// percentiles map everything to 0.
    Percentile {
        /// Lower percentile, in `[0, 100)`.
        low: f32,
        /// Upper percentile, in `(low, 100]`.
        high: f32,
    },
    /// Z-score per volume, like MONAI's `NormalizeIntensity`: `(v - mean) / std` with
    /// the population standard deviation (1 when it is 0); with `nonzero`, mean and std
    /// come from the non-zero voxels and zero voxels keep z = 0 (MONAI's
    /// `nonzero=True`). The z-scores are then clipped to `[-3, 3]` and mapped onto
    /// `[0, 1]` by `(z + 3) / 6` ([`Z_SCORE_CLIP`]), so the mean lands at 0.5.
    ZScore {
        /// Statistics over the non-zero voxels only.
        nonzero: bool,
    },
}

impl Intensity {
    /// Checks the setting (a `Range` needs finite `low < high`, a `Window` a finite
    /// center and width >= 1, `Percentile` `0 <= low < high <= 100`).
    pub(crate) fn check(self) -> Result<(), DataError> {
        match self {
            Self::Range { low, high } if !(low.is_finite() && high.is_finite() && low < high) => {
                Err(DataError::spec(
                    "intensity range",
                    format!("needs finite low < high, got low = {low}, high = {high}"),
                ))
            }
            Self::Window { center, width }
                if !(center.is_finite() && width >= 1.0 && width.is_finite()) =>
            {
                Err(DataError::spec(
                    "intensity window",
                    format!(
                        "needs a finite center and width >= 1, got center {center}, width {width}"
                    ),
                ))
            }
            Self::Percentile { low, high } if !(0.0 <= low && low < high && high <= 100.0) => {
                Err(DataError::spec(
                    "intensity percentiles",
                    format!("need 0 <= low < high <= 100, got low = {low}, high = {high}"),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Maps `values` in place onto `[0, 1]`.
    ///
    /// # Errors
    /// A message when a value is NaN or infinite.
    pub(crate) fn apply(self, values: &mut [f32]) -> Result<(), String> {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "value {} at flat index {i} is not finite",
                values[i]
            ));
        }
        let (low, high) = match self {
            Self::MinMax => values
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                }),
            Self::Range { low, high } => (low, high),
            Self::Percentile { low, high } => {
                let mut copy = values.to_vec();
                (
                    percentile(&mut copy, f64::from(low)) as f32,
                    percentile(&mut copy, f64::from(high)) as f32,
                )
            }
            Self::Window { center, width } => {
                let (c, w) = (center - 0.5, width - 1.0);
                for v in values.iter_mut() {
                    let x = f64::from(*v);
                    *v = if x <= c - w / 2.0 {
                        0.0
                    } else if x > c + w / 2.0 {
                        1.0
                    } else {
                        ((x - c) / w + 0.5).clamp(0.0, 1.0) as f32
                    };
                }
                return Ok(());
            }
            Self::ZScore { nonzero } => {
                z_score(values, nonzero);
                return Ok(());
            }
        };
        let span = high - low;
        for v in values.iter_mut() {
            *v = if span > 0.0 {
                ((*v - low) / span).clamp(0.0, 1.0)
            } else {
                0.0
            };
        }
        Ok(())
    }
}

/// numpy's `np.percentile(values, p)` with the default `"linear"` method: the value at
/// position `p / 100 * (n - 1)` of the sorted values, interpolated between neighbours.
/// `values` is reordered (partially sorted) and must be finite; empty gives 0.
fn percentile(values: &mut [f32], p: f64) -> f64 {
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    let h = p / 100.0 * (n - 1) as f64;
    let lo = (h.floor() as usize).min(n - 1);
    let (_, &mut a, rest) = values.select_nth_unstable_by(lo, f32::total_cmp);
    let a = f64::from(a);
    let t = h - lo as f64;
    if t == 0.0 || rest.is_empty() {
        return a;
    }
    let b = f64::from(rest.iter().copied().fold(f32::INFINITY, f32::min));
    a + (b - a) * t
}

/// Z-scores clipped to [`Z_SCORE_CLIP`] and mapped onto `[0, 1]` (see
/// [`Intensity::ZScore`]).
fn z_score(values: &mut [f32], nonzero: bool) {
    let used = |v: f32| !nonzero || v != 0.0;
    let (n, sum) = values
        .iter()
        .filter(|&&v| used(v))
        .fold((0usize, 0.0f64), |(n, s), &v| (n + 1, s + f64::from(v)));
    let (mean, std) = if n == 0 {
        (0.0, 1.0)
    } else {
        let mean = sum / n as f64;
        let var = values
            .iter()
            .filter(|&&v| used(v))
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        let std = var.sqrt();
        (mean, if std > 0.0 { std } else { 1.0 })
    };
    for v in values.iter_mut() {
        let z = if used(*v) {
            (f64::from(*v) - mean) / std
        } else {
            0.0
        };
        *v = ((z.clamp(-Z_SCORE_CLIP, Z_SCORE_CLIP) + Z_SCORE_CLIP) / (2.0 * Z_SCORE_CLIP)) as f32;
    }
}

/// Applies a [`BadFile`] policy, collecting the skipped files.
pub(crate) struct Triage {
    policy: BadFile,
    pub(crate) skipped: Vec<Skipped>,
    /// Warnings about files that were read.
    pub(crate) warnings: Vec<String>,
}

impl Triage {
    pub(crate) fn new(policy: BadFile) -> Self {
        Self {
            policy,
            skipped: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// `Ok(Some(v))` for a good file, `Ok(None)` for a skipped one, the error under
    /// [`BadFile::Fail`].
    pub(crate) fn check<T>(
        &mut self,
        path: &Path,
        result: Result<T, DataError>,
    ) -> Result<Option<T>, DataError> {
        match result {
            Ok(v) => Ok(Some(v)),
            Err(e) => match self.policy {
                BadFile::Fail => Err(e),
                BadFile::Skip => {
                    self.skipped.push(Skipped {
                        path: path.to_path_buf(),
                        reason: reason_of(&e),
                    });
                    Ok(None)
                }
            },
        }
    }

    pub(crate) fn finish<T>(self, data: T) -> Loaded<T> {
        Loaded {
            data,
            skipped: self.skipped,
            warnings: self.warnings,
        }
    }
}

/// The reason part of an error (without the path, which [`Skipped`] holds).
fn reason_of(e: &DataError) -> String {
    match e {
        DataError::File { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// The files in `dir` (not recursing), sorted by name, hidden files (`.name`) left out.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for entry in fs_err::read_dir(dir).map_err(|source| DataError::Io { source })? {
        let entry = entry.map_err(|e| DataError::file(dir, format!("cannot list: {e}")))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_and_range() {
        let mut v = vec![-10.0, 0.0, 30.0];
        Intensity::MinMax.apply(&mut v).unwrap();
        assert_eq!(v, vec![0.0, 0.25, 1.0]);
        let mut v = vec![-2000.0, -1000.0, 0.0, 500.0];
        Intensity::Range {
            low: -1000.0,
            high: 0.0,
        }
        .apply(&mut v)
        .unwrap();
        assert_eq!(v, vec![0.0, 0.0, 1.0, 1.0]);
        let mut constant = vec![7.0; 3];
        Intensity::MinMax.apply(&mut constant).unwrap();
        assert_eq!(constant, vec![0.0; 3]);
        let mut nan = vec![1.0, f32::NAN];
        assert!(
            Intensity::MinMax
                .apply(&mut nan)
                .unwrap_err()
                .contains("index 1")
        );
        let e = Intensity::Range {
            low: 1.0,
            high: 1.0,
        }
        .check()
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "intensity range: needs finite low < high, got low = 1, high = 1"
        );
    }
}
