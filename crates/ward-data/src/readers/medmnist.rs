//! MedMNIST `.npz` files (`train_images`, `train_labels`, `val_*`, `test_*`), one site per
//! file, and the table of MedMNIST v2 datasets ([`MEDMNIST_V2`], [`info`]) that names a
//! file's task, classes, channels, sizes and split sizes ([`check_against`]). The array
//! checks live in [`crate::npz`]; this module names sites and applies the [`BadFile`]
//! policy over many files.
//!
//! ```
//! use ward_core::config::{BadFilePolicy, DataSpec, Dims as SpecDims, MedmnistName};
//! use ward_data::ImageTask;
//! use ward_data::readers::medmnist::info;
//!
//! let path = info(MedmnistName::Pathmnist);
//! assert_eq!(path.task, ImageTask::MultiClass { classes: 9 });
//! assert_eq!((path.channels, path.train, path.val, path.test), (3, 89_996, 10_004, 7_180));
//! assert_eq!(info(MedmnistName::Chestmnist).task, ImageTask::MultiLabel { labels: 14 });
//! ```

use std::path::{Path, PathBuf};

use ward_core::config::{BadFilePolicy, DataSpec, Dims as SpecDims, MedmnistName};

use super::{BadFile, Dims, Loaded, Triage};
use crate::error::DataError;
use crate::image::{ImageSite, ImageTask};
use crate::image_data;
use crate::npz::NpzSplits;
use crate::{FederatedDataset, table};

/// How the `medmnist` package states a dataset's task (`INFO[name]["task"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MedmnistTask {
    /// `"multi-class"`.
    MultiClass,
    /// `"binary-class"`.
    BinaryClass,
    /// `"multi-label, binary-class"`.
    MultiLabel,
    /// `"ordinal-regression"` (RetinaMNIST): Ward trains and scores it as multi-class, as
    /// MedMNIST's evaluator scores it.
    OrdinalRegression,
}

impl MedmnistTask {
    /// The task as the `medmnist` package writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MultiClass => "multi-class",
            Self::BinaryClass => "binary-class",
            Self::MultiLabel => "multi-label, binary-class",
            Self::OrdinalRegression => "ordinal-regression",
        }
    }
}

/// One MedMNIST v2 dataset as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MedmnistInfo {
    /// The name (`pathmnist`, ...).
    pub name: MedmnistName,
    /// The task as MedMNIST states it.
    pub medmnist_task: MedmnistTask,
    /// The task Ward trains: classes, or labels for ChestMNIST.
    pub task: ImageTask,
    /// Image channels (1 grey, 3 RGB).
    pub channels: usize,
    /// Whether images are 3D volumes (`(N, D, H, W)`, `D = H = W`).
    pub is_3d: bool,
    /// Image sides the MedMNIST+ files come in (`H = W`, and `D` for 3D).
    pub sizes: &'static [usize],
    /// Images in the official training split.
    pub train: usize,
    /// Images in the official validation split.
    pub val: usize,
    /// Images in the official test split.
    pub test: usize,
}

/// MedMNIST+ sizes of the 2D datasets (`medmnist/dataset.py`, `MedMNIST2D.available_sizes`).
const SIZES_2D: &[usize] = &[28, 64, 128, 224];
/// MedMNIST+ sizes of the 3D datasets (`medmnist/dataset.py`, `MedMNIST3D.available_sizes`).
const SIZES_3D: &[usize] = &[28, 64];

const fn row(
    name: MedmnistName,
    medmnist_task: MedmnistTask,
    outputs: usize,
    channels: usize,
    is_3d: bool,
    [train, val, test]: [usize; 3],
) -> MedmnistInfo {
    let task = match medmnist_task {
        MedmnistTask::MultiClass | MedmnistTask::OrdinalRegression => {
            ImageTask::MultiClass { classes: outputs }
        }
        MedmnistTask::BinaryClass => ImageTask::Binary,
        MedmnistTask::MultiLabel => ImageTask::MultiLabel { labels: outputs },
    };
    MedmnistInfo {
        name,
        medmnist_task,
        task,
        channels,
        is_3d,
        sizes: if is_3d { SIZES_3D } else { SIZES_2D },
        train,
        val,
        test,
    }
}

/// The MedMNIST v2 datasets, in [`MedmnistName::ALL`] order.
///
/// Sources: Yang et al. 2023, "MedMNIST v2 - A large-scale lightweight benchmark for 2D
/// and 3D biomedical image classification", *Scientific Data* 10:41, Table 1; and the
/// `medmnist` package 3.0.2 (PyPI), `medmnist/info.py` (`INFO[name]`: `task`, `label`
/// (its length is the classes or labels), `n_channels`, `n_samples`) and
/// `medmnist/dataset.py` (`available_sizes`).
pub const MEDMNIST_V2: [MedmnistInfo; 18] = {
    use MedmnistName as N;
    use MedmnistTask::{
        BinaryClass as B, MultiClass as C, MultiLabel as L, OrdinalRegression as O,
    };
    [
        row(N::Pathmnist, C, 9, 3, false, [89_996, 10_004, 7_180]),
        row(N::Chestmnist, L, 14, 1, false, [78_468, 11_219, 22_433]),
        row(N::Dermamnist, C, 7, 3, false, [7_007, 1_003, 2_005]),
        row(N::Octmnist, C, 4, 1, false, [97_477, 10_832, 1_000]),
        row(N::Pneumoniamnist, B, 2, 1, false, [4_708, 524, 624]),
        row(N::Retinamnist, O, 5, 3, false, [1_080, 120, 400]),
        row(N::Breastmnist, B, 2, 1, false, [546, 78, 156]),
        row(N::Bloodmnist, C, 8, 3, false, [11_959, 1_712, 3_421]),
        row(N::Tissuemnist, C, 8, 1, false, [165_466, 23_640, 47_280]),
        row(N::Organamnist, C, 11, 1, false, [34_561, 6_491, 17_778]),
        row(N::Organcmnist, C, 11, 1, false, [12_975, 2_392, 8_216]),
        row(N::Organsmnist, C, 11, 1, false, [13_932, 2_452, 8_827]),
        row(N::Organmnist3d, C, 11, 1, true, [971, 161, 610]),
        row(N::Nodulemnist3d, B, 2, 1, true, [1_158, 165, 310]),
        row(N::Adrenalmnist3d, B, 2, 1, true, [1_188, 98, 298]),
        row(N::Fracturemnist3d, C, 3, 1, true, [1_027, 103, 240]),
        row(N::Vesselmnist3d, B, 2, 1, true, [1_335, 191, 382]),
        row(N::Synapsemnist3d, B, 2, 1, true, [1_230, 177, 352]),
    ]
};

/// The table row of `name`.
pub fn info(name: MedmnistName) -> &'static MedmnistInfo {
    // `MEDMNIST_V2` follows the declaration order of `MedmnistName` (a test checks it).
    &MEDMNIST_V2[name as usize]
}

impl MedmnistInfo {
    /// One line for messages: `pathmnist (MedMNIST v2: multi-class, 9 classes, 3
    /// channels, 2D 28/64/128/224 px)`.
    pub fn describe(&self) -> String {
        let outputs = match self.task {
            ImageTask::MultiClass { classes } => format!("{classes} classes"),
            ImageTask::Binary => "2 classes".into(),
            ImageTask::MultiLabel { labels } => format!("{labels} labels"),
        };
        let sizes: Vec<String> = self.sizes.iter().map(ToString::to_string).collect();
        format!(
            "{} (MedMNIST v2: {}, {outputs}, {} channel{}, {} {} px)",
            self.name.as_str(),
            self.medmnist_task.as_str(),
            self.channels,
            if self.channels == 1 { "" } else { "s" },
            if self.is_3d { "3D" } else { "2D" },
            sizes.join("/")
        )
    }
}

/// The experiment-file words naming `info`: `data.medmnist = "pathmnist"`.
fn key(info: &MedmnistInfo) -> String {
    format!("data.medmnist = {:?}", info.name.as_str())
}

/// Checks the splits read from `path` against the table row `info`: every split's
/// channels and image side (one of `info.sizes`, square, cubic for 3D), and with
/// `whole_release` the number of images in train, val and test.
///
/// # Errors
/// [`DataError::File`] naming the file, `data.medmnist`, the array and the expected
/// and found values.
pub fn check_against(
    path: &Path,
    info: &MedmnistInfo,
    splits: &NpzSplits,
    whole_release: bool,
) -> Result<(), DataError> {
    let bad = |msg: String| DataError::file(path, format!("{}: {msg}", key(info)));
    for (split, set) in [
        ("train", &splits.train),
        ("val", &splits.val),
        ("test", &splits.test),
    ] {
        if set.is_empty() {
            continue;
        }
        let s = set.shape;
        if s.channels != info.channels {
            return Err(bad(format!(
                "{split}_images: expected {} channel{} ({}), found {} ({})",
                info.channels,
                if info.channels == 1 { "" } else { "s" },
                info.describe(),
                s.channels,
                s
            )));
        }
        let sides_ok = s.height == s.width
            && (!info.is_3d || s.depth == s.height)
            && info.sizes.contains(&s.height);
        if !sides_ok {
            let want: Vec<String> = info
                .sizes
                .iter()
                .map(|&n| {
                    if info.is_3d {
                        format!("{n}x{n}x{n}")
                    } else {
                        format!("{n}x{n}")
                    }
                })
                .collect();
            let found = if info.is_3d {
                format!("{}x{}x{}", s.depth, s.height, s.width)
            } else {
                format!("{}x{}", s.height, s.width)
            };
            return Err(bad(format!(
                "{split}_images: expected images of {}, found {found}",
                want.join(", ")
            )));
        }
    }
    if whole_release {
        for (split, set, want) in [
            ("train", &splits.train, info.train),
            ("val", &splits.val, info.val),
            ("test", &splits.test, info.test),
        ] {
            if set.len() != want {
                return Err(bad(format!(
                    "{split} split: expected {want} images (MedMNIST v2 {}), found {}{}",
                    info.name.as_str(),
                    set.len(),
                    if set.is_empty() && split == "val" {
                        " (no val_images array)"
                    } else {
                        ""
                    }
                )));
            }
        }
    }
    Ok(())
}

/// Reads the `.npz` file `path` as MedMNIST v2 dataset `info` says it is: its task and
/// dimensionality from the table, then [`check_against`] (with `whole_release`: the
/// split sizes too).
///
/// # Errors
/// [`DataError::File`] naming the file and `data.medmnist`: the reader's errors (a
/// label shape or value the table's task does not allow, a shape of the wrong
/// dimensionality, corrupt data) and [`check_against`]'s.
pub fn read_named(
    path: &Path,
    info: &MedmnistInfo,
    whole_release: bool,
) -> Result<NpzSplits, DataError> {
    let splits = crate::npz::read_medmnist(path, info.task, info.is_3d).map_err(|e| match e {
        DataError::File { path, message } => DataError::File {
            message: format!("{} ({}): {message}", key(info), info.describe()),
            path,
        },
        e => e,
    })?;
    check_against(path, info, &splits, whole_release)?;
    Ok(splits)
}

fn site_name(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "medmnist".into(), |s| s.to_string_lossy().into_owned())
}

/// Where the meaning of a MedMNIST file's arrays comes from.
#[derive(Debug, Clone, Copy)]
enum Described {
    /// `data.medmnist`: the table row.
    Named(&'static MedmnistInfo),
    /// `[data.images]`: the task and dimensionality as stated.
    Stated { task: ImageTask, is_3d: bool },
}

impl Described {
    fn read(self, path: &Path, whole_release: bool) -> Result<NpzSplits, DataError> {
        match self {
            Self::Named(info) => read_named(path, info, whole_release),
            Self::Stated { task, is_3d } => crate::npz::read_medmnist(path, task, is_3d),
        }
    }
}

/// `dataset = "medmnist"`: one file as one site with its own splits, or its training
/// split spread over sites by `[data.partition]` with its test split kept as the test
/// data ([`image_data::partitioned_keep_test`]); either way the file's test split is
/// the dataset's held-out set. Or a folder of `<site>.npz` files, one site each.
pub(crate) fn load(spec: &DataSpec, base_dir: &Path) -> Result<FederatedDataset, DataError> {
    let (described, on_bad_file) = match (spec.medmnist, spec.images) {
        (Some(name), _) => (Described::Named(info(name)), BadFilePolicy::Fail),
        (None, Some(images)) => (
            Described::Stated {
                task: image_data::task_of(&images),
                is_3d: images.dims == SpecDims::D3,
            },
            images.on_bad_file,
        ),
        (None, None) => {
            return Err(DataError::spec(
                "data.images",
                "is required for medmnist without data.medmnist",
            ));
        }
    };
    let path = spec
        .path
        .as_deref()
        .ok_or_else(|| DataError::spec("data.path", "is required for medmnist"))?;
    let path = table::resolve(path, base_dir);
    if path.is_dir() {
        if spec.partition.is_some() {
            return Err(DataError::spec(
                "data.partition",
                "a folder of <site>.npz files already has its sites; remove [data.partition]",
            ));
        }
        return load_folder(&path, described, on_bad_file);
    }
    let s = described.read(&path, true)?;
    let name = site_name(&path);
    let file = path
        .file_name()
        .map_or_else(|| name.clone(), |f| f.to_string_lossy().into_owned());
    let held_out = format!("the test split of {file} ({} images)", s.test.len());
    let mut data = match &spec.partition {
        None => image_data::dataset_from_sites(
            &name,
            &[ImageSite {
                name: name.clone(),
                train: s.train,
                val: s.val,
                test: s.test,
            }],
            Vec::new(),
        )?,
        Some(p) => image_data::partitioned_keep_test(&name, &s.train, &s.test, p, spec.split_seed)?,
    };
    data.held_out = Some(held_out);
    Ok(data)
}

/// A folder of `<site>.npz` files, one site each, in file-name order. Each file holds a
/// part of a dataset, so a named dataset's split sizes are not checked.
fn load_folder(
    path: &Path,
    described: Described,
    on_bad_file: BadFilePolicy,
) -> Result<FederatedDataset, DataError> {
    let mut files: Vec<_> = fs_err::read_dir(path)
        .map_err(|source| DataError::Io { source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "npz"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError::file(path, "the folder holds no .npz file"));
    }
    let mut sites = Vec::new();
    let mut warnings = Vec::new();
    for f in &files {
        match described.read(f, false) {
            Ok(s) => sites.push(ImageSite {
                name: site_name(f),
                train: s.train,
                val: s.val,
                test: s.test,
            }),
            Err(e) if on_bad_file == BadFilePolicy::Skip => {
                warnings.push(format!("skipped: {e}"));
            }
            Err(e) => return Err(e),
        }
    }
    if sites.is_empty() {
        return Err(DataError::file(
            path,
            format!("no readable .npz file: {warnings:?}"),
        ));
    }
    image_data::dataset_from_sites(&site_name(path), &sites, warnings)
}

/// Reads one MedMNIST `.npz` file as a site named after the file stem.
///
/// Images are uint8 `(N, H, W)` or `(N, H, W, 3)` for [`Dims::D2`], `(N, D, H, W)` for
/// [`Dims::D3`] (divided by 255); labels `(N, 1)` class indices, or `(N, L)` 0/1 for
/// [`ImageTask::MultiLabel`]. A missing `val` split gives an empty `val` set.
///
/// # Shapes
/// Each split's pixels: `N x C x D x H x W` (`D = 1` for 2D).
///
/// # Errors
/// [`DataError::File`] naming the file and array: not a zip archive, truncated data,
/// missing arrays, shapes that disagree with `task` or `dims` (quoting the shape), a
/// label out of range (naming the image index).
pub fn read_medmnist(path: &Path, task: ImageTask, dims: Dims) -> Result<ImageSite, DataError> {
    let s = crate::npz::read_medmnist(path, task, dims == Dims::D3)?;
    Ok(ImageSite {
        name: site_name(path),
        train: s.train,
        val: s.val,
        test: s.test,
    })
}

/// Reads several MedMNIST `.npz` files, one site each, in the given order.
///
/// # Errors
/// Under [`BadFile::Fail`], the first file's error (see [`read_medmnist`]); under
/// [`BadFile::Skip`] bad files are listed in [`Loaded::skipped`]. Files whose image
/// shapes differ from the first good file's are bad files too.
pub fn read_medmnist_sites(
    paths: &[PathBuf],
    task: ImageTask,
    dims: Dims,
    bad_file: BadFile,
) -> Result<Loaded<Vec<ImageSite>>, DataError> {
    let mut triage = Triage::new(bad_file);
    let mut sites: Vec<ImageSite> = Vec::new();
    for path in paths {
        let read = read_medmnist(path, task, dims).and_then(|site| match sites.first() {
            Some(first) if first.train.shape != site.train.shape => Err(DataError::file(
                path,
                format!(
                    "images are {}, but {} has {}",
                    site.train.shape, first.name, first.train.shape
                ),
            )),
            _ => Ok(site),
        });
        if let Some(site) = triage.check(path, read)? {
            sites.push(site);
        }
    }
    Ok(triage.finish(sites))
}
