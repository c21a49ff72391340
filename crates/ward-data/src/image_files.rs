//! Image-file datasets (`dataset = "image-folder"`, `"nifti"`, `"dicom"`): the
//! [`readers`](crate::readers) driven by `[data.images]` and `[data.reader]`.
//!
//! Sites: with `data.reader.site-folders` each site folder is a site; otherwise all the
//! images form one pool, spread over simulated sites by `[data.partition]`, or kept as
//! one site named after the folder or CSV. Each site is split into train and test by
//! `data.test-fraction` (stratified, seeded by `data.split-seed`). Files skipped under
//! `on-bad-file = "skip"` become the dataset's warnings, one per file with its reason,
//! and so do the readers' findings about files they read anyway (a DICOM series with
//! non-uniform slice gaps under `data.reader.spacing-check = "warn"`).

use std::path::Path;

use ward_core::config::{
    ColorKind, DataSpec, DatasetKind, Dims, FitKind, ImageDataSpec, IntensityKind, ReaderSpec,
    ResampleKind, SliceAxisKind,
};

use crate::error::DataError;
use crate::geometry::VolumeGeometry;
use crate::geometry::{Fit, Orientation, SliceAxis};
use crate::image::{ImageSet, ImageSite, ImageTask};
use crate::readers::dicom::{DicomIntensity, DicomOptions, read_dicom_images, read_dicom_series};
use crate::readers::folder::{Color, FolderOptions, read_class_folders, read_site_folders};
use crate::readers::nifti::{NiftiOptions, NiftiOutput, read_nifti};
use crate::readers::{Intensity, Loaded, Resample};
use crate::{FederatedDataset, image_data, table};

/// Loads an image-file dataset (the caller checked `spec.dataset.uses_reader()`).
pub(crate) fn load(spec: &DataSpec, base_dir: &Path) -> Result<FederatedDataset, DataError> {
    let images = spec
        .images
        .ok_or_else(|| DataError::spec("data.images", "is required for image files"))?;
    let reader = spec
        .reader
        .as_ref()
        .ok_or_else(|| DataError::spec("data.reader", "is required for image files"))?;
    let path = spec
        .path
        .as_deref()
        .ok_or_else(|| DataError::spec("data.path", "is required for image files"))?;
    let path = table::resolve(path, base_dir);
    let name = path
        .file_stem()
        .map_or_else(|| "images".into(), |s| s.to_string_lossy().into_owned());
    let task = image_data::task_of(&images);
    let (pool, warnings) = match spec.dataset {
        DatasetKind::ImageFolder => {
            let options = folder_options(reader, &images)?;
            if reader.site_folders {
                return load_site_folders(&path, &options, &images, spec, &name);
            }
            read_class_pool(&path, &options, &images)?
        }
        DatasetKind::Nifti => read_nifti_pool(&path, reader, &images, task)?,
        DatasetKind::Dicom => read_dicom_pool(&path, base_dir, reader, &images, task)?,
        other => {
            return Err(DataError::spec(
                "data.dataset",
                format!("{} is not read from image files", other.as_str()),
            ));
        }
    };
    dataset_from_pool(pool, warnings, &images, &path, &name, spec)
}

/// The images of a dataset read as one pool, and a warning per skipped file.
type Pool = (ImageSet, Vec<String>);

/// The image-folder reader options from `[data.reader]` and `[data.images]`.
fn folder_options(reader: &ReaderSpec, images: &ImageDataSpec) -> Result<FolderOptions, DataError> {
    Ok(FolderOptions {
        color: match reader.color {
            ColorKind::Grey => Color::Grey,
            ColorKind::Rgb => Color::Rgb,
        },
        height: dim_u32(reader.height, "data.reader.height")?,
        width: dim_u32(reader.width, "data.reader.width")?,
        bad_file: images.on_bad_file,
    })
}

/// An image folder of site folders: each site folder is a site, split into train and test.
fn load_site_folders(
    path: &Path,
    options: &FolderOptions,
    images: &ImageDataSpec,
    spec: &DataSpec,
    name: &str,
) -> Result<FederatedDataset, DataError> {
    let loaded = read_site_folders(path, options)?;
    check_classes(images, &loaded.data.classes, path)?;
    let warnings = skipped(&loaded);
    let mut sites = Vec::with_capacity(loaded.data.sites.len());
    for (i, (site, set)) in loaded.data.sites.into_iter().enumerate() {
        sites.push(split_site(site, &set, spec, i)?);
    }
    image_data::dataset_from_sites(name, &sites, warnings)
}

/// An image folder of class folders, read as one pool.
fn read_class_pool(
    path: &Path,
    options: &FolderOptions,
    images: &ImageDataSpec,
) -> Result<Pool, DataError> {
    let loaded = read_class_folders(path, options)?;
    check_classes(images, &loaded.data.classes, path)?;
    let warnings = skipped(&loaded);
    Ok((loaded.data.images, warnings))
}

/// The NIfTI files of the label CSV at `path`, read as one pool of slices or volumes.
fn read_nifti_pool(
    path: &Path,
    reader: &ReaderSpec,
    images: &ImageDataSpec,
    task: ImageTask,
) -> Result<Pool, DataError> {
    let resample = resample(reader.resample);
    let fit = fit_of(reader);
    let output = if reader.slices {
        NiftiOutput::Slices {
            axis: match reader.slice_axis.unwrap_or_default() {
                SliceAxisKind::Axial => SliceAxis::Axial,
                SliceAxisKind::Coronal => SliceAxis::Coronal,
                SliceAxisKind::Sagittal => SliceAxis::Sagittal,
            },
            height: reader.height,
            width: reader.width,
            resample,
            fit,
        }
    } else {
        NiftiOutput::Volume {
            depth: depth(reader)?,
            height: reader.height,
            width: reader.width,
            resample,
            fit,
        }
    };
    let options = NiftiOptions {
        task,
        intensity: intensity(reader)?,
        output,
        geometry: geometry_of(reader)?,
        bad_file: images.on_bad_file,
    };
    let loaded = read_nifti(path, &options)?;
    let warnings = skipped(&loaded);
    Ok((loaded.data, warnings))
}

/// `data.reader.fit`.
fn fit_of(reader: &ReaderSpec) -> Fit {
    match reader.fit {
        FitKind::Resize => Fit::Resize,
        FitKind::CropOrPad => Fit::CropOrPad,
    }
}

/// `data.reader.orientation`, `spacing` and `antialias`.
fn geometry_of(reader: &ReaderSpec) -> Result<VolumeGeometry, DataError> {
    let orientation = match reader.orientation.as_str() {
        "storage" => None,
        code => Some(
            code.parse::<Orientation>()
                .map_err(|e| DataError::spec("data.reader.orientation", e.to_string()))?,
        ),
    };
    Ok(VolumeGeometry {
        orientation,
        spacing: reader.spacing,
        antialias: reader.antialias,
    })
}

/// The DICOM files (or series) of the label CSV at `path`, read as one pool; file names
/// are relative to `data.reader.root`, by default the CSV's folder.
fn read_dicom_pool(
    path: &Path,
    base_dir: &Path,
    reader: &ReaderSpec,
    images: &ImageDataSpec,
    task: ImageTask,
) -> Result<Pool, DataError> {
    let root = reader.root.as_deref().map_or_else(
        || path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        |r| table::resolve(r, base_dir),
    );
    let options = DicomOptions {
        task,
        intensity: dicom_intensity(reader)?,
        depth: if reader.series { depth(reader)? } else { 1 },
        height: reader.height,
        width: reader.width,
        resample: resample(reader.resample),
        bad_file: images.on_bad_file,
        spacing_check: reader.spacing_check,
        geometry: geometry_of(reader)?,
        fit: fit_of(reader),
    };
    let loaded = if reader.series {
        read_dicom_series(&root, path, &options)?
    } else {
        read_dicom_images(&root, path, &options)?
    };
    let warnings = skipped(&loaded);
    Ok((loaded.data, warnings))
}

/// The dataset from one pool of images: checked, then spread over sites by
/// `[data.partition]` or kept as one site named `name`.
fn dataset_from_pool(
    pool: ImageSet,
    warnings: Vec<String>,
    images: &ImageDataSpec,
    path: &Path,
    name: &str,
    spec: &DataSpec,
) -> Result<FederatedDataset, DataError> {
    image_data::check_dims(
        pool.shape,
        images.dims == Dims::D3,
        &path.display().to_string(),
    )?;
    if pool.is_empty() {
        return Err(DataError::file(
            path,
            format!("no readable image ({} skipped)", warnings.len()),
        ));
    }
    match &spec.partition {
        Some(p) => {
            let mut d =
                image_data::partitioned(name, &pool, p, spec.test_fraction, spec.split_seed)?;
            d.warnings = warnings;
            Ok(d)
        }
        None => {
            let site = split_site(name.to_owned(), &pool, spec, 0)?;
            image_data::dataset_from_sites(name, &[site], warnings)
        }
    }
}

/// One site's images split into train and test, stratified by label (by the first label
/// of a multi-label task).
fn split_site(
    name: String,
    set: &ImageSet,
    spec: &DataSpec,
    index: usize,
) -> Result<ImageSite, DataError> {
    let y = image_data::row_labels(set)?;
    let strata: Vec<u32> = match set.task {
        ImageTask::MultiLabel { .. } => y.iter().map(|m| m & 1).collect(),
        _ => y,
    };
    let (tr, te) = crate::train_test_split(
        &strata,
        spec.test_fraction,
        crate::site_split_seed(spec.split_seed, index),
    );
    if tr.is_empty() || te.is_empty() {
        return Err(DataError::SiteTooSmall {
            site: name,
            rows: set.len(),
            train: tr.len(),
            test: te.len(),
            test_fraction: spec.test_fraction,
        });
    }
    Ok(ImageSite {
        name,
        train: set.select(&tr),
        val: ImageSet::empty(set.shape, set.task),
        test: set.select(&te),
    })
}

/// Every skipped file as a warning line `skipped <path>: <reason>`, then the reader's
/// warnings about files it read (`<path>: <finding>`).
fn skipped<T>(loaded: &Loaded<T>) -> Vec<String> {
    loaded
        .skipped
        .iter()
        .map(|s| format!("skipped {s}"))
        .chain(loaded.warnings.iter().cloned())
        .collect()
}

/// The class folders must be as many as `data.images.classes` states.
fn check_classes(images: &ImageDataSpec, found: &[String], root: &Path) -> Result<(), DataError> {
    match images.classes {
        Some(c) if c != found.len() => Err(DataError::file(
            root,
            format!(
                "holds {} class folders {found:?}, data.images.classes says {c}",
                found.len()
            ),
        )),
        _ => Ok(()),
    }
}

fn dim_u32(v: usize, key: &str) -> Result<u32, DataError> {
    u32::try_from(v).map_err(|_| DataError::spec(key, format!("{v} is too large")))
}

fn depth(reader: &ReaderSpec) -> Result<usize, DataError> {
    reader
        .depth
        .ok_or_else(|| DataError::spec("data.reader.depth", "is required for 3D images"))
}

fn resample(kind: ResampleKind) -> Resample {
    match kind {
        ResampleKind::Linear => Resample::Linear,
        ResampleKind::Nearest => Resample::Nearest,
    }
}

fn range(reader: &ReaderSpec) -> Result<(f32, f32), DataError> {
    let [low, high] = reader.range.ok_or_else(|| {
        DataError::spec("data.reader.range", "is required for intensity = \"range\"")
    })?;
    Ok((low as f32, high as f32))
}

fn window(reader: &ReaderSpec) -> Result<(f64, f64), DataError> {
    let [center, width] = reader.window.ok_or_else(|| {
        DataError::spec(
            "data.reader.window",
            "is required for intensity = \"window\"",
        )
    })?;
    Ok((center, width))
}

/// The NIfTI intensity mapping.
fn intensity(reader: &ReaderSpec) -> Result<Intensity, DataError> {
    match reader.intensity {
        IntensityKind::MinMax => Ok(Intensity::MinMax),
        IntensityKind::Range => {
            let (low, high) = range(reader)?;
            Ok(Intensity::Range { low, high })
        }
        IntensityKind::Window => {
            let (center, width) = window(reader)?;
            Ok(Intensity::Window { center, width })
        }
        IntensityKind::Percentile => {
            let [low, high] = reader.percentiles.ok_or_else(|| {
                DataError::spec(
                    "data.reader.percentiles",
                    "is required for intensity = \"percentile\"",
                )
            })?;
            Ok(Intensity::Percentile {
                low: low as f32,
                high: high as f32,
            })
        }
        IntensityKind::ZScore => Ok(Intensity::ZScore {
            nonzero: reader.nonzero,
        }),
        IntensityKind::FileWindow => Err(DataError::spec(
            "data.reader.intensity",
            "\"file-window\" is only for dicom",
        )),
    }
}

fn dicom_intensity(reader: &ReaderSpec) -> Result<DicomIntensity, DataError> {
    match reader.intensity {
        IntensityKind::MinMax => Ok(DicomIntensity::MinMax),
        IntensityKind::Range => {
            let (low, high) = range(reader)?;
            Ok(DicomIntensity::Range { low, high })
        }
        IntensityKind::FileWindow => Ok(DicomIntensity::FileWindow {
            index: reader.window_index,
        }),
        IntensityKind::Window => {
            let (center, width) = window(reader)?;
            Ok(DicomIntensity::Window { center, width })
        }
        IntensityKind::Percentile | IntensityKind::ZScore => Err(DataError::spec(
            "data.reader.intensity",
            "\"percentile\" and \"z-score\" are only for nifti",
        )),
    }
}
