//! `[data]`: the dataset, its columns, its sites, its split and its image readers.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::*;

/// Which dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Built in: UCI heart disease, four hospitals, FLamby's Fed-Heart-Disease protocol.
    FedHeartDisease,
    /// Built in: Breast Cancer Wisconsin (Diagnostic); no sites, so it needs `[data.partition]`.
    BreastCancer,
    /// A CSV file described by the keys of `[data]`.
    Csv,
    /// MedMNIST-layout `.npz` images (`data.path`: one file, its training split
    /// partitioned by `[data.partition]` and its test split kept as the test data, or a
    /// folder of `<site>.npz` files, one site each), named by `data.medmnist` or
    /// described by `[data.images]`.
    Medmnist,
    /// Synthetic multi-site scanner-shift images generated in-process from `[data.synth]`
    /// (the same generator as `ward data synth`).
    Synth,
    /// PNG/JPEG images in class folders (`data.path/<class>/*`), or with
    /// `data.reader.site-folders = true` one folder per site (`data.path/<site>/<class>/*`).
    ImageFolder,
    /// NIfTI volumes (`.nii`, `.nii.gz`) or their slices, listed with their labels
    /// in the CSV `data.path` (`file,label`).
    Nifti,
    /// DICOM images (one file per image) or series (one folder per series), labelled by
    /// the CSV `data.path` (`file,label` or `sop_instance_uid,label`).
    Dicom,
}

impl DatasetKind {
    /// The name as written in the experiment file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FedHeartDisease => "fed-heart-disease",
            Self::BreastCancer => "breast-cancer",
            Self::Csv => "csv",
            Self::Medmnist => "medmnist",
            Self::Synth => "synth",
            Self::ImageFolder => "image-folder",
            Self::Nifti => "nifti",
            Self::Dicom => "dicom",
        }
    }

    /// Whether the dataset is read from image files by `[data.reader]`.
    pub fn uses_reader(self) -> bool {
        matches!(self, Self::ImageFolder | Self::Nifti | Self::Dicom)
    }

    /// Whether the dataset holds images (trained with `model.kind = "cnn"` or
    /// `"resnet18"`).
    pub fn is_image(self) -> bool {
        matches!(
            self,
            Self::Medmnist | Self::Synth | Self::ImageFolder | Self::Nifti | Self::Dicom
        )
    }
}

/// How rows with a missing value are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingPolicy {
    /// Drop every row with a missing value in a used column.
    #[default]
    Drop,
    /// Fill numeric columns with the training split's mean, categorical ones with its most
    /// frequent level (per site). Rows with a missing target or site are still dropped.
    Impute,
}

/// Which training statistics standardise the features of federated and local runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StandardizeKind {
    /// Each site with its own training mean and std (FLamby's protocol).
    #[default]
    PerSite,
    /// Every site with the mean and std of all sites' training rows together, as a
    /// federation computes them from per-site counts, sums and sums of squares (no row
    /// leaves its site). The pooled baseline always uses these.
    Global,
}

/// One categorical column, one-hot encoded without its reference level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CategoricalSpec {
    /// Column name in the CSV header.
    pub column: String,
    /// The reference level: it gets no indicator column.
    pub reference: String,
    /// The other levels, in the order of their indicator columns. Empty: every level seen
    /// in the file except the reference, sorted. A value outside `reference` and `levels`
    /// is an error.
    #[serde(default)]
    pub levels: Vec<String>,
}

/// How the target column becomes a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TargetSpec {
    /// Column name in the CSV header.
    pub column: String,
    /// Rule: `"> 0"`, `">= 1"`, `"< 5"`, `"<= 2"`, `"== M"`, `"!= 0"` (binary label: 1 where
    /// the rule holds), or `"class"` (integer class labels 0..k-1 as written).
    #[serde(default = "default_rule")]
    pub rule: String,
}

pub(super) fn default_rule() -> String {
    "class".into()
}

/// How rows without a site column are spread over simulated sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    /// Shuffle, then equal shares.
    Iid,
    /// Per class, site shares drawn from Dirichlet(alpha): label skew.
    Dirichlet,
    /// Site sizes drawn from Dirichlet(alpha), labels IID: quantity skew.
    Quantity,
}

/// Partitioning of a dataset that has no site column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PartitionSpec {
    /// The partitioner.
    pub kind: PartitionKind,
    /// Number of simulated sites (>= 1).
    pub sites: usize,
    /// Dirichlet concentration for `dirichlet` and `quantity` (> 0; smaller is more skewed).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Seed of the partition (fixed, independent of the run seed).
    #[serde(default = "default_split_seed")]
    pub seed: u64,
    /// Minimum rows per site; the draw is repeated (up to 100 times) until it holds.
    #[serde(default = "default_min_rows")]
    pub min_rows: usize,
}

pub(super) fn default_alpha() -> f64 {
    0.5
}
pub(super) fn default_min_rows() -> usize {
    10
}
pub(super) fn default_split_seed() -> u64 {
    43
}
pub(super) fn default_test_fraction() -> f64 {
    0.34
}
pub(super) fn default_missing_tokens() -> Vec<String> {
    vec![String::new(), "NA".into(), "?".into()]
}

/// `[data]`: the dataset, its columns, its sites and its train/test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DataSpec {
    /// `fed-heart-disease`, `breast-cancer` or `csv`.
    pub dataset: DatasetKind,
    /// CSV path (`csv` only), relative to the experiment file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Numeric feature columns (`csv` only), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub numeric: Vec<String>,
    /// Categorical feature columns (`csv` only), one-hot after the numeric ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categorical: Vec<CategoricalSpec>,
    /// The target (`csv` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetSpec>,
    /// Column naming each row's site (`csv` only). Without it, `[data.partition]` is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_column: Option<String>,
    /// Field values that mean "missing" (`csv` only).
    #[serde(default = "default_missing_tokens")]
    pub missing_values: Vec<String>,
    /// Missing-value policy.
    #[serde(default)]
    pub missing: MissingPolicy,
    /// Share of each site's rows held out for testing, in (0, 1).
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Seed of the train/test split (fixed, independent of the run seed).
    #[serde(default = "default_split_seed")]
    pub split_seed: u64,
    /// Partitioning for data without sites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionSpec>,
    /// Feature standardisation for federated and local runs: `per-site` or `global`.
    #[serde(default)]
    pub standardize: StandardizeKind,
    /// `data.medmnist`: which MedMNIST v2 dataset the `.npz` file holds
    /// (`dataset = "medmnist"`); its task, classes, channels and split sizes come from
    /// Ward's table of MedMNIST v2, and a file that disagrees is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medmnist: Option<MedmnistName>,
    /// `[data.images]`: what image files hold (image datasets only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImageDataSpec>,
    /// `[data.synth]`: the synthetic scanner-shift generator (`dataset = "synth"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synth: Option<SynthDataSpec>,
    /// `[data.reader]`: how image files are read (`image-folder`, `nifti`, `dicom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader: Option<ReaderSpec>,
}

/// A dataset of MedMNIST v2 (Yang et al. 2023, "MedMNIST v2", Scientific Data 10:41,
/// Table 1), spelled as the `medmnist` package spells it (`medmnist/info.py`, `INFO`)
/// and as its files are named (`pathmnist.npz`, `pathmnist_64.npz`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MedmnistName {
    /// Colon pathology, 9 tissue classes, RGB.
    Pathmnist,
    /// Chest X-ray, 14 disease labels (multi-label).
    Chestmnist,
    /// Dermatoscopy, 7 classes, RGB.
    Dermamnist,
    /// Retinal OCT, 4 classes.
    Octmnist,
    /// Chest X-ray, pneumonia vs normal (binary).
    Pneumoniamnist,
    /// Fundus camera, 5 severity grades (ordinal regression, trained as multi-class), RGB.
    Retinamnist,
    /// Breast ultrasound, malignant vs normal/benign (binary).
    Breastmnist,
    /// Blood cell microscopy, 8 classes, RGB.
    Bloodmnist,
    /// Kidney cortex microscopy, 8 classes.
    Tissuemnist,
    /// Abdominal CT, axial view, 11 organs.
    Organamnist,
    /// Abdominal CT, coronal view, 11 organs.
    Organcmnist,
    /// Abdominal CT, sagittal view, 11 organs.
    Organsmnist,
    /// Abdominal CT volumes, 11 organs (3D).
    Organmnist3d,
    /// Chest CT nodules, benign vs malignant (3D, binary).
    Nodulemnist3d,
    /// Abdominal CT, adrenal mass vs normal (3D, binary).
    Adrenalmnist3d,
    /// Chest CT, 3 rib-fracture types (3D).
    Fracturemnist3d,
    /// Brain MRA vessels, aneurysm vs healthy (3D, binary).
    Vesselmnist3d,
    /// Electron microscopy synapses, excitatory vs inhibitory (3D, binary).
    Synapsemnist3d,
}

impl MedmnistName {
    /// Every MedMNIST v2 dataset: the twelve 2D ones, then the six 3D ones, in the
    /// order of the paper's Table 1.
    pub const ALL: [Self; 18] = [
        Self::Pathmnist,
        Self::Chestmnist,
        Self::Dermamnist,
        Self::Octmnist,
        Self::Pneumoniamnist,
        Self::Retinamnist,
        Self::Breastmnist,
        Self::Bloodmnist,
        Self::Tissuemnist,
        Self::Organamnist,
        Self::Organcmnist,
        Self::Organsmnist,
        Self::Organmnist3d,
        Self::Nodulemnist3d,
        Self::Adrenalmnist3d,
        Self::Fracturemnist3d,
        Self::Vesselmnist3d,
        Self::Synapsemnist3d,
    ];

    /// The name as written in the experiment file (and by the `medmnist` package).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pathmnist => "pathmnist",
            Self::Chestmnist => "chestmnist",
            Self::Dermamnist => "dermamnist",
            Self::Octmnist => "octmnist",
            Self::Pneumoniamnist => "pneumoniamnist",
            Self::Retinamnist => "retinamnist",
            Self::Breastmnist => "breastmnist",
            Self::Bloodmnist => "bloodmnist",
            Self::Tissuemnist => "tissuemnist",
            Self::Organamnist => "organamnist",
            Self::Organcmnist => "organcmnist",
            Self::Organsmnist => "organsmnist",
            Self::Organmnist3d => "organmnist3d",
            Self::Nodulemnist3d => "nodulemnist3d",
            Self::Adrenalmnist3d => "adrenalmnist3d",
            Self::Fracturemnist3d => "fracturemnist3d",
            Self::Vesselmnist3d => "vesselmnist3d",
            Self::Synapsemnist3d => "synapsemnist3d",
        }
    }
}

/// `[data.reader]`: the output size and reading options of the image-file readers
/// (`dataset = "image-folder"`, `"nifti"`, `"dicom"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReaderSpec {
    /// Output rows: every image is resized to `height x width`.
    pub height: usize,
    /// Output columns.
    pub width: usize,
    /// Output slices of 3D images (NIfTI volumes, DICOM series); required for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<usize>,
    /// `image-folder`: `grey` (one channel) or `rgb`.
    #[serde(default)]
    pub color: ColorKind,
    /// `image-folder`: `data.path/<site>/<class>/*` instead of `data.path/<class>/*`.
    #[serde(default)]
    pub site_folders: bool,
    /// `nifti`: one 2D image per axial slice (each with its volume's label) instead of
    /// one 3D image per volume.
    #[serde(default)]
    pub slices: bool,
    /// `dicom`: the CSV lists series folders (one 3D image each) instead of files.
    #[serde(default)]
    pub series: bool,
    /// `dicom`: the folder the CSV's `file` keys are relative to, or that is scanned
    /// for `sop_instance_uid` keys (default: the CSV's folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// `linear` (bi/trilinear) or `nearest` resizing.
    #[serde(default)]
    pub resample: ResampleKind,
    /// `nifti`: reorient every volume to these axis codes (nibabel's, e.g. `RAS`, `LPS`,
    /// `LAS`: the directions in which the voxel axes `i`, `j`, `k` increase) by axis
    /// permutation and flips, or `storage` to keep the file's order. Default `RAS`.
    #[serde(default = "default_orientation")]
    pub orientation: String,
    /// `nifti`: resample every volume to voxels of `[x, y, z]` millimetres along the
    /// (reoriented) voxel axes `i`, `j`, `k` before it is brought to the output size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spacing: Option<[f64; 3]>,
    /// `nifti`: how each volume (or slice) reaches the output size: `resize` or
    /// `crop-or-pad`.
    #[serde(default)]
    pub fit: FitKind,
    /// `nifti`: Gaussian anti-aliasing when linear resampling shrinks an axis (default
    /// `true`; nearest is never smoothed).
    #[serde(default = "default_true")]
    pub antialias: bool,
    /// `nifti` with `slices = true`: the anatomical axis the slices are normal to
    /// (default `axial`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice_axis: Option<SliceAxisKind>,
    /// `[low, high]` percentiles (0..=100) for `intensity = "percentile"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentiles: Option<[f64; 2]>,
    /// `intensity = "z-score"`: mean and std over the non-zero voxels only (zeros stay
    /// at the mean), like MONAI's `NormalizeIntensity(nonzero=True)`.
    #[serde(default)]
    pub nonzero: bool,
    /// `nifti`, `dicom`: how raw values map onto `[0, 1]`: `min-max` (per image or
    /// volume), `range` (`data.reader.range = [low, high]`), `window`
    /// (`data.reader.window = [center, width]`), for DICOM `file-window` (the file's
    /// Window Center/Width), for NIfTI `percentile` (`data.reader.percentiles`) and
    /// `z-score`.
    #[serde(default)]
    pub intensity: IntensityKind,
    /// `[center, width]` for `intensity = "window"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<[f64; 2]>,
    /// `[low, high]` for `intensity = "range"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<[f64; 2]>,
    /// `dicom`, `intensity = "file-window"`: which of the file's VOI LUT Sequence items
    /// (when it has some) or Window Center/Width pairs to apply, from 0 (the default).
    #[serde(default)]
    pub window_index: usize,
    /// `dicom` series and multi-frame files: `refuse` (default) or `warn` when the slice
    /// gaps are not uniform (a missing slice, variable spacing).
    #[serde(default)]
    pub spacing_check: SpacingCheckKind,
}

/// What the DICOM reader does with a series whose slice gaps are not uniform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpacingCheckKind {
    /// The series is a bad file (an error, or skipped and listed under
    /// `on-bad-file = "skip"`).
    #[default]
    Refuse,
    /// The series is read (stacked with the mean slice step) and the finding is one of
    /// the dataset's warnings.
    Warn,
}

fn default_orientation() -> String {
    "RAS".into()
}

fn default_true() -> bool {
    true
}

/// Whether `code` is `storage` or three axis codes, one of R/L, one of A/P, one of S/I.
fn orientation_ok(code: &str) -> bool {
    if code == "storage" {
        return true;
    }
    let axis = |c: char| match c {
        'R' | 'L' => Some(0),
        'A' | 'P' => Some(1),
        'S' | 'I' => Some(2),
        _ => None,
    };
    let axes: Option<Vec<usize>> = code.chars().map(axis).collect();
    axes.is_some_and(|mut a| {
        a.sort_unstable();
        a == [0, 1, 2]
    })
}

/// How the NIfTI reader brings a volume (or slice) to the output size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FitKind {
    /// Resample to the size over the same field of view.
    #[default]
    Resize,
    /// Crop or zero-pad about the centre, keeping the voxel size.
    CropOrPad,
}

/// The anatomical axis NIfTI slices are normal to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SliceAxisKind {
    /// Normal to superior/inferior.
    #[default]
    Axial,
    /// Normal to anterior/posterior.
    Coronal,
    /// Normal to right/left.
    Sagittal,
}

/// Colour of images read from PNG/JPEG folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ColorKind {
    /// One channel (BT.709 luma).
    #[default]
    Grey,
    /// Three channels.
    Rgb,
}

/// Resizing filter of the image readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResampleKind {
    /// Bilinear (2D) or trilinear (3D).
    #[default]
    Linear,
    /// Nearest neighbour.
    Nearest,
}

/// How NIfTI/DICOM values map onto `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntensityKind {
    /// Minimum to 0, maximum to 1, per image (per volume for 3D images).
    #[default]
    MinMax,
    /// `data.reader.range = [low, high]`, clamped.
    Range,
    /// DICOM: the file's own Window Center/Width and VOI LUT Function.
    FileWindow,
    /// `data.reader.window = [center, width]` for every file (DICOM's linear window).
    Window,
    /// NIfTI: `data.reader.percentiles = [low, high]` of each volume to 0 and 1, clipped.
    Percentile,
    /// NIfTI: z-score per volume (MONAI `NormalizeIntensity`), clipped to [-3, 3] and
    /// mapped onto [0, 1] by `(z + 3) / 6`.
    ZScore,
}

/// What the labels of an image dataset mean; stated, never guessed from array shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageTaskKind {
    /// One class per image in `0..classes`.
    #[default]
    MultiClass,
    /// One 0/1 label per image.
    Binary,
    /// `labels` independent 0/1 labels per image.
    MultiLabel,
}

/// Whether images are 2D pictures or 3D volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Dims {
    /// `(N, H, W)` or `(N, H, W, C)`.
    #[default]
    #[serde(rename = "2d")]
    D2,
    /// `(N, D, H, W)`.
    #[serde(rename = "3d")]
    D3,
}

/// What to do with a file that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadFilePolicy {
    /// Stop the run, naming the file and the reason.
    #[default]
    Fail,
    /// Skip the file, and list it with the reason in the run's warnings.
    Skip,
}

/// `[data.images]`: the layout and meaning of image files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageDataSpec {
    /// `multi-class`, `binary` or `multi-label`.
    #[serde(default)]
    pub task: ImageTaskKind,
    /// Number of classes (`multi-class`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
    /// Number of labels per image (`multi-label`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<usize>,
    /// `2d` or `3d`.
    #[serde(default)]
    pub dims: Dims,
    /// `fail` or `skip` for a file that cannot be read.
    #[serde(default)]
    pub on_bad_file: BadFilePolicy,
}

/// `[data.synth]`: the synthetic multi-site scanner-shift generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SynthDataSpec {
    /// Number of sites (each with its own acquisition profile).
    #[serde(default = "default_synth_sites")]
    pub sites: usize,
    /// Images per site (train + val + test).
    #[serde(default = "default_synth_per_site")]
    pub per_site: usize,
    /// Image side in pixels.
    #[serde(default = "default_synth_size")]
    pub size: usize,
    /// Number of lesion classes.
    #[serde(default = "default_synth_classes")]
    pub classes: usize,
    /// Generator seed (fixed, independent of the run seed).
    #[serde(default)]
    pub seed: u64,
}

pub(super) fn default_synth_sites() -> usize {
    4
}
pub(super) fn default_synth_per_site() -> usize {
    600
}
pub(super) fn default_synth_size() -> usize {
    28
}
pub(super) fn default_synth_classes() -> usize {
    4
}

impl Default for SynthDataSpec {
    fn default() -> Self {
        Self {
            sites: default_synth_sites(),
            per_site: default_synth_per_site(),
            size: default_synth_size(),
            classes: default_synth_classes(),
            seed: 0,
        }
    }
}

impl DataSpec {
    /// A built-in dataset with default split settings.
    pub fn builtin(dataset: DatasetKind) -> Self {
        Self {
            dataset,
            path: None,
            numeric: Vec::new(),
            categorical: Vec::new(),
            target: None,
            site_column: None,
            missing_values: default_missing_tokens(),
            missing: MissingPolicy::Drop,
            test_fraction: default_test_fraction(),
            split_seed: default_split_seed(),
            partition: None,
            standardize: StandardizeKind::PerSite,
            medmnist: None,
            images: None,
            synth: None,
            reader: None,
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.test_fraction > 0.0 && self.test_fraction < 1.0,
            "data.test-fraction",
            || format!("must be in (0, 1), got {}", self.test_fraction),
        )?;
        let csv_only: [(&str, bool); 5] = [
            ("data.path", self.path.is_some()),
            ("data.numeric", !self.numeric.is_empty()),
            ("data.categorical", !self.categorical.is_empty()),
            ("data.target", self.target.is_some()),
            ("data.site-column", self.site_column.is_some()),
        ];
        match self.dataset {
            DatasetKind::Csv => {
                check(self.path.is_some(), "data.path", || {
                    "is required when data.dataset = \"csv\"".into()
                })?;
                check(self.target.is_some(), "data.target", || {
                    "is required when data.dataset = \"csv\"".into()
                })?;
                check(
                    !self.numeric.is_empty() || !self.categorical.is_empty(),
                    "data.numeric",
                    || "a csv dataset needs at least one numeric or categorical column".into(),
                )?;
                check(
                    self.site_column.is_some() || self.partition.is_some(),
                    "data.partition",
                    || "a csv dataset without data.site-column needs [data.partition]".into(),
                )?;
                check(
                    !(self.site_column.is_some() && self.partition.is_some()),
                    "data.partition",
                    || "give either data.site-column or [data.partition], not both".into(),
                )?;
            }
            DatasetKind::Medmnist => self.validate_medmnist()?,
            DatasetKind::Synth => {
                check(self.path.is_none(), "data.path", || {
                    "is not used by data.dataset = \"synth\" (it generates its images from [data.synth])".into()
                })?;
                check(self.images.is_none(), "data.images", || {
                    "is not used by data.dataset = \"synth\": its task is multi-class 2D with data.synth.classes".into()
                })?;
                let s = self.synth.unwrap_or_default();
                check((1..=64).contains(&s.sites), "data.synth.sites", || {
                    format!("must be in 1..=64, got {}", s.sites)
                })?;
                check(s.per_site >= 20, "data.synth.per-site", || {
                    format!(
                        "must be >= 20 (train, val and test need images), got {}",
                        s.per_site
                    )
                })?;
                check((16..=256).contains(&s.size), "data.synth.size", || {
                    format!("must be in 16..=256, got {}", s.size)
                })?;
                check((2..=8).contains(&s.classes), "data.synth.classes", || {
                    format!("must be in 2..=8, got {}", s.classes)
                })?;
            }
            kind if kind.uses_reader() => self.validate_reader(kind)?,
            builtin => {
                for (key, set) in csv_only {
                    check(!set, key, || {
                        format!(
                            "is only for data.dataset = \"csv\"; {} defines its own columns",
                            builtin.as_str()
                        )
                    })?;
                }
                if builtin == DatasetKind::BreastCancer {
                    check(self.partition.is_some(), "data.partition", || {
                        "breast-cancer has no sites: add [data.partition] (kind = \"iid\", \"dirichlet\" or \"quantity\")".into()
                    })?;
                }
                if builtin == DatasetKind::FedHeartDisease {
                    check(self.partition.is_none(), "data.partition", || {
                        "fed-heart-disease has four natural sites; remove [data.partition]".into()
                    })?;
                }
            }
        }
        if !self.dataset.is_image() {
            check(self.images.is_none(), "data.images", || {
                format!("is only for image datasets, not {}", self.dataset.as_str())
            })?;
        }
        check(
            self.medmnist.is_none() || self.dataset == DatasetKind::Medmnist,
            "data.medmnist",
            || "is only for data.dataset = \"medmnist\"".into(),
        )?;
        check(
            self.synth.is_none() || self.dataset == DatasetKind::Synth,
            "data.synth",
            || "is only for data.dataset = \"synth\"".into(),
        )?;
        check(
            self.reader.is_none() || self.dataset.uses_reader(),
            "data.reader",
            || "is only for data.dataset = \"image-folder\", \"nifti\" or \"dicom\"".into(),
        )?;
        if let Some(p) = &self.partition {
            check(p.sites >= 1, "data.partition.sites", || {
                format!("must be >= 1, got {}", p.sites)
            })?;
            positive(p.alpha, "data.partition.alpha")?;
        }
        Ok(())
    }
}

impl DataSpec {
    /// Checks `data.path`, `data.medmnist` or `[data.images]`, and
    /// `data.test-fraction` of a MedMNIST dataset.
    fn validate_medmnist(&self) -> Result<(), ConfigError> {
        check(self.path.is_some(), "data.path", || {
            "is required when data.dataset = \"medmnist\": a .npz file or a folder of <site>.npz files".into()
        })?;
        match (self.medmnist, self.images) {
            (Some(name), Some(_)) => {
                return Err(ConfigError::new(
                    "data.images",
                    format!(
                        "is not used with data.medmnist = \"{}\": task, classes, channels and dims come from the MedMNIST v2 table; remove [data.images], or remove data.medmnist for a file that is not a MedMNIST release",
                        name.as_str()
                    ),
                ));
            }
            (None, None) => {
                return Err(ConfigError::new(
                    "data.images",
                    "is required when data.dataset = \"medmnist\" has no data.medmnist: name the dataset (e.g. medmnist = \"pathmnist\") or state task (multi-class, binary, multi-label), classes or labels, and dims (2d, 3d)",
                ));
            }
            (None, Some(images)) => images.validate()?,
            (Some(_), None) => {}
        }
        check(
            self.test_fraction == default_test_fraction(),
            "data.test-fraction",
            || {
                format!(
                    "is not used by data.dataset = \"medmnist\" (got {}): the file's own test split is the test data; remove data.test-fraction",
                    self.test_fraction
                )
            },
        )
    }

    /// Checks `[data.images]` and `[data.reader]` of an image-file dataset.
    pub(super) fn validate_reader(&self, kind: DatasetKind) -> Result<(), ConfigError> {
        let name = kind.as_str();
        let what = match kind {
            DatasetKind::ImageFolder => "the folder of class (or site) folders",
            _ => "the label CSV",
        };
        check(self.path.is_some(), "data.path", || {
            format!("is required when data.dataset = \"{name}\": {what}")
        })?;
        let images = self.images.ok_or_else(|| {
            ConfigError::new(
                "data.images",
                format!("is required when data.dataset = \"{name}\": state task, classes or labels, and dims"),
            )
        })?;
        images.validate()?;
        let r = self.reader.as_ref().ok_or_else(|| {
            ConfigError::new(
                "data.reader",
                format!("is required when data.dataset = \"{name}\": at least height and width"),
            )
        })?;
        r.validate_size()?;
        r.validate_kind_keys(kind)?;
        r.validate_dims(kind, &images)?;
        if kind == DatasetKind::ImageFolder {
            r.validate_image_folder(&images)?;
        }
        r.validate_intensity(kind)?;
        r.validate_geometry(kind)?;
        r.validate_dicom_keys(kind)?;
        check(
            !(r.site_folders && self.partition.is_some()),
            "data.partition",
            || "site folders already give the sites; remove [data.partition]".into(),
        )
    }
}

impl ReaderSpec {
    /// Checks `height` and `width` are in 1..=4096.
    fn validate_size(&self) -> Result<(), ConfigError> {
        check(
            (1..=4096).contains(&self.height),
            "data.reader.height",
            || format!("must be in 1..=4096, got {}", self.height),
        )?;
        check(
            (1..=4096).contains(&self.width),
            "data.reader.width",
            || format!("must be in 1..=4096, got {}", self.width),
        )
    }

    /// Checks that keys meant for one reader kind are only set for that kind, and that
    /// image-folder leaves `resample` at its default.
    fn validate_kind_keys(&self, kind: DatasetKind) -> Result<(), ConfigError> {
        let only = |set: bool, key: &str, for_kind: DatasetKind| {
            check(!set || kind == for_kind, key, || {
                format!("is only for data.dataset = \"{}\"", for_kind.as_str())
            })
        };
        only(
            self.site_folders,
            "data.reader.site-folders",
            DatasetKind::ImageFolder,
        )?;
        only(
            self.color != ColorKind::Grey,
            "data.reader.color",
            DatasetKind::ImageFolder,
        )?;
        only(self.slices, "data.reader.slices", DatasetKind::Nifti)?;
        only(self.series, "data.reader.series", DatasetKind::Dicom)?;
        only(self.root.is_some(), "data.reader.root", DatasetKind::Dicom)?;
        check(
            kind != DatasetKind::ImageFolder || self.resample == ResampleKind::Linear,
            "data.reader.resample",
            || {
                "is not used by image-folder: PNG/JPEG images are always resized bilinearly (resample is for nifti and dicom)".into()
            },
        )
    }

    /// Checks `data.images.dims` matches what the reader gives (3D for nifti volumes and
    /// dicom series), and `depth` is set exactly for 3D images.
    fn validate_dims(&self, kind: DatasetKind, images: &ImageDataSpec) -> Result<(), ConfigError> {
        let name = kind.as_str();
        let is_3d = match kind {
            DatasetKind::Nifti => !self.slices,
            DatasetKind::Dicom => self.series,
            _ => false,
        };
        check(
            (images.dims == Dims::D3) == is_3d,
            "data.images.dims",
            || {
                format!(
                    "must be \"{}\": {name} with these reader settings gives {} images",
                    if is_3d { "3d" } else { "2d" },
                    if is_3d { "3D" } else { "2D" }
                )
            },
        )?;
        if is_3d {
            check(
                self.depth.is_some_and(|d| (1..=1024).contains(&d)),
                "data.reader.depth",
                || "is required for 3D images, in 1..=1024".into(),
            )
        } else {
            check(self.depth.is_none(), "data.reader.depth", || {
                "is only for 3D images (nifti volumes, dicom series)".into()
            })
        }
    }

    /// Checks the image-folder rules: a multi-class task and no intensity settings.
    fn validate_image_folder(&self, images: &ImageDataSpec) -> Result<(), ConfigError> {
        check(
            images.task == ImageTaskKind::MultiClass,
            "data.images.task",
            || "image-folder labels come from the class folders: use task = \"multi-class\"".into(),
        )?;
        check(
            self.intensity == IntensityKind::MinMax
                && self.range.is_none()
                && self.window.is_none(),
            "data.reader.intensity",
            || "is not used by image-folder (8-bit images map to [0, 1] by /255)".into(),
        )
    }

    /// Checks `intensity` against `range` and `window`, and which kinds each intensity
    /// mapping is for.
    fn validate_intensity(&self, kind: DatasetKind) -> Result<(), ConfigError> {
        match self.intensity {
            IntensityKind::Range => {
                let ok = self
                    .range
                    .is_some_and(|[lo, hi]| lo.is_finite() && hi.is_finite() && lo < hi);
                check(ok, "data.reader.range", || {
                    "intensity = \"range\" needs range = [low, high] with finite low < high".into()
                })?;
            }
            IntensityKind::Window => {
                let ok = self
                    .window
                    .is_some_and(|[c, w]| c.is_finite() && w.is_finite() && w >= 1.0);
                check(ok, "data.reader.window", || {
                    "intensity = \"window\" needs window = [center, width] with width >= 1".into()
                })?;
            }
            IntensityKind::FileWindow => {
                check(kind == DatasetKind::Dicom, "data.reader.intensity", || {
                    "\"file-window\" is only for dicom".into()
                })?
            }
            IntensityKind::Percentile => {
                let ok = self
                    .percentiles
                    .is_some_and(|[lo, hi]| 0.0 <= lo && lo < hi && hi <= 100.0);
                check(ok, "data.reader.percentiles", || {
                    "intensity = \"percentile\" needs percentiles = [low, high] with 0 <= low < high <= 100"
                        .into()
                })?;
            }
            IntensityKind::MinMax | IntensityKind::ZScore => {}
        }
        check(
            !matches!(
                self.intensity,
                IntensityKind::Percentile | IntensityKind::ZScore
            ) || kind == DatasetKind::Nifti,
            "data.reader.intensity",
            || "\"percentile\" and \"z-score\" are only for nifti".into(),
        )?;
        check(
            self.percentiles.is_none() || self.intensity == IntensityKind::Percentile,
            "data.reader.percentiles",
            || "is only for intensity = \"percentile\"".into(),
        )?;
        check(
            !self.nonzero || self.intensity == IntensityKind::ZScore,
            "data.reader.nonzero",
            || "is only for intensity = \"z-score\"".into(),
        )?;
        check(
            self.range.is_none() || self.intensity == IntensityKind::Range,
            "data.reader.range",
            || "is only for intensity = \"range\"".into(),
        )?;
        check(
            self.window.is_none() || self.intensity == IntensityKind::Window,
            "data.reader.window",
            || "is only for intensity = \"window\"".into(),
        )?;
        check(
            self.intensity != IntensityKind::Window
                || matches!(kind, DatasetKind::Dicom | DatasetKind::Nifti),
            "data.reader.intensity",
            || "\"window\" is only for nifti and dicom".into(),
        )
    }

    /// Checks the NIfTI geometry keys: their values, and that they are set only for
    /// nifti (`slice-axis` only with `slices = true`).
    fn validate_geometry(&self, kind: DatasetKind) -> Result<(), ConfigError> {
        check(
            orientation_ok(&self.orientation),
            "data.reader.orientation",
            || {
                format!(
                    "{:?} is not \"storage\" or three axis letters, one of R/L, one of A/P, one of S/I (e.g. \"RAS\", \"LPS\")",
                    self.orientation
                )
            },
        )?;
        if let Some(s) = self.spacing {
            check(
                s.iter().all(|v| v.is_finite() && *v > 0.0),
                "data.reader.spacing",
                || format!("every value must be finite and > 0 mm, got {s:?}"),
            )?;
        }
        // Volumes placed in the world: NIfTI files and DICOM series (or multi-frame files).
        let placed = kind == DatasetKind::Nifti || (kind == DatasetKind::Dicom && self.series);
        let volumes = |set: bool, key: &str| {
            check(!set || placed, key, || {
                "is only for data.dataset = \"nifti\", or \"dicom\" with series = true".into()
            })
        };
        volumes(self.orientation != "RAS", "data.reader.orientation")?;
        volumes(self.spacing.is_some(), "data.reader.spacing")?;
        volumes(self.fit != FitKind::Resize, "data.reader.fit")?;
        volumes(!self.antialias, "data.reader.antialias")?;
        check(
            self.slice_axis.is_none() || (self.slices && kind == DatasetKind::Nifti),
            "data.reader.slice-axis",
            || "is only for data.dataset = \"nifti\" with slices = true".into(),
        )
    }
}

impl ReaderSpec {
    /// Checks `window-index` (only with `intensity = "file-window"`) and `spacing-check`
    /// (only for DICOM series, which include multi-frame files).
    fn validate_dicom_keys(&self, kind: DatasetKind) -> Result<(), ConfigError> {
        check(
            self.window_index == 0 || self.intensity == IntensityKind::FileWindow,
            "data.reader.window-index",
            || "is only for intensity = \"file-window\"".into(),
        )?;
        check(
            self.spacing_check == SpacingCheckKind::Refuse
                || (kind == DatasetKind::Dicom && self.series),
            "data.reader.spacing-check",
            || "is only for data.dataset = \"dicom\" with series = true".into(),
        )
    }
}

impl ImageDataSpec {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        match self.task {
            ImageTaskKind::MultiClass => {
                check(
                    self.classes.is_some_and(|c| c >= 2),
                    "data.images.classes",
                    || "a multi-class task needs classes >= 2".into(),
                )?;
                check(self.labels.is_none(), "data.images.labels", || {
                    "is only for task = \"multi-label\"".into()
                })
            }
            ImageTaskKind::Binary => {
                check(
                    self.classes.is_none_or(|c| c == 2),
                    "data.images.classes",
                    || "a binary task has 2 classes".into(),
                )?;
                check(self.labels.is_none(), "data.images.labels", || {
                    "is only for task = \"multi-label\"".into()
                })
            }
            ImageTaskKind::MultiLabel => {
                check(
                    self.labels.is_some_and(|l| l >= 1),
                    "data.images.labels",
                    || "a multi-label task needs labels >= 1".into(),
                )?;
                check(self.classes.is_none(), "data.images.classes", || {
                    "is only for multi-class and binary tasks".into()
                })
            }
        }
    }
}
