//! NIfTI-1 volumes (`.nii`, `.nii.gz`): scaled by `scl_slope`/`scl_inter`, mapped onto
//! `[0, 1]`, returned as resized volumes or as axial slices.
//!
//! Voxels keep the file's storage order: NIfTI's `i` (fastest) becomes the width, `j` the
//! height and `k` (the slice axis) the depth. Volumes are not reoriented to a standard
//! orientation.

use std::io::Read;
use std::path::{Path, PathBuf};

use nifti::{InMemNiftiObject, NiftiObject, NiftiType, NiftiVolume, ReaderOptions};

use super::labels::read_labels;
use super::resample::resize;
use super::{BadFile, Intensity, Loaded, Resample, Triage};
use crate::error::DataError;
use crate::image::{ImageSet, ImageShape, ImageTask};

/// One volume's voxels after `scl_slope`/`scl_inter`, before any mapping to `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    /// Slices (NIfTI `k`, 1 for a 2D file).
    pub depth: usize,
    /// Rows (NIfTI `j`).
    pub height: usize,
    /// Columns (NIfTI `i`).
    pub width: usize,
    /// `depth x height x width` values, width fastest.
    pub voxels: Vec<f32>,
}

fn widen<T: nifti::DataElement + Copy + Into<f64>>(
    volume: nifti::InMemNiftiVolume,
) -> nifti::Result<Vec<f64>> {
    Ok(volume
        .into_nifti_typed_data::<T>()?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// The NIfTI object in `path`. A gzipped file (`.gz`) is decompressed whole first, so the
/// gzip trailer's CRC-32 and length are checked: the nifti crate alone stops reading at
/// the last voxel and takes a `.nii.gz` with flipped voxel bytes, or a cut trailer, as
/// valid. A gzipped header of a `.hdr`/`.img` pair goes to the nifti crate, which finds
/// the image file.
fn read_object(path: &Path) -> Result<InMemNiftiObject, String> {
    let gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    if !gz {
        return ReaderOptions::new()
            .read_file(path)
            .map_err(|e| e.to_string());
    }
    let file = fs_err::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::io::BufReader::new(file))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("gzip stream: {e}"))?;
    // Bytes 344..348 hold the magic: "ni1\0" for a header whose voxels are in a pair file.
    if bytes.get(344..348) == Some(b"ni1\0".as_slice()) {
        return ReaderOptions::new()
            .read_file(path)
            .map_err(|e| e.to_string());
    }
    InMemNiftiObject::from_reader(std::io::Cursor::new(bytes)).map_err(|e| e.to_string())
}

/// Reads one `.nii` or `.nii.gz` volume and applies `scl_slope`/`scl_inter` (a slope of
/// 0 means unscaled, as the NIfTI-1 standard says).
///
/// # Shapes
/// The result: `depth x height x width` (NIfTI `k x j x i`).
///
/// # Errors
/// [`DataError::File`] naming the file: not NIfTI-1, truncated, an unsupported data type
/// (complex, RGB, 128-bit float), more than one volume (a 4D time series), a non-finite
/// scaled value.
pub fn read_volume(path: &Path) -> Result<Volume, DataError> {
    let bad = |m: String| DataError::file(path, m);
    let object = read_object(path).map_err(|e| {
        bad(format!(
            "not a readable NIfTI-1 file (corrupt or truncated): {e}"
        ))
    })?;
    let header = object.header();
    let (slope, inter) = (header.scl_slope, header.scl_inter);
    let volume = object.into_volume();
    let dims: Vec<usize> = volume.dim().iter().map(|&d| usize::from(d)).collect();
    if dims.len() < 2 || dims.iter().skip(3).any(|&d| d > 1) {
        return Err(bad(format!(
            "dimensions {dims:?}: Ward reads 2D or 3D volumes (a 4D series must be split first)"
        )));
    }
    let (width, height, depth) = (dims[0], dims[1], dims.get(2).copied().unwrap_or(1));
    let datatype = volume.data_type();
    let raw = match datatype {
        NiftiType::Uint8 => widen::<u8>(volume),
        NiftiType::Int8 => widen::<i8>(volume),
        NiftiType::Uint16 => widen::<u16>(volume),
        NiftiType::Int16 => widen::<i16>(volume),
        NiftiType::Uint32 => widen::<u32>(volume),
        NiftiType::Int32 => widen::<i32>(volume),
        NiftiType::Float32 => widen::<f32>(volume),
        NiftiType::Float64 => widen::<f64>(volume),
        other => {
            return Err(bad(format!(
                "voxel type {other:?} is not supported (only integer and real scalar voxels)"
            )));
        }
    }
    .map_err(|e| bad(format!("voxel data cannot be read: {e}")))?;
    if raw.len() != width * height * depth {
        return Err(bad(format!(
            "holds {} voxels but its dimensions {dims:?} need {}",
            raw.len(),
            width * height * depth
        )));
    }
    let (slope, inter) = if slope == 0.0 || !slope.is_finite() {
        (1.0, 0.0)
    } else {
        (f64::from(slope), f64::from(inter))
    };
    let voxels: Vec<f32> = raw
        .into_iter()
        .map(|v| (v * slope + inter) as f32)
        .collect();
    if let Some(i) = voxels.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!(
            "voxel {i} is {} after scaling (scl_slope {slope}, scl_inter {inter})",
            voxels[i]
        )));
    }
    Ok(Volume {
        depth,
        height,
        width,
        voxels,
    })
}

/// What [`read_nifti`] makes of each volume.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NiftiOutput {
    /// One 3D image per file, resized to `depth x height x width`.
    Volume {
        /// Output slices.
        depth: usize,
        /// Output rows.
        height: usize,
        /// Output columns.
        width: usize,
        /// Nearest or trilinear.
        resample: Resample,
    },
    /// One 2D image per axial slice (NIfTI `k`), each resized to `height x width`, each
    /// with its volume's label.
    AxialSlices {
        /// Output rows.
        height: usize,
        /// Output columns.
        width: usize,
        /// Nearest or bilinear.
        resample: Resample,
    },
}

/// Settings of [`read_nifti`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NiftiOptions {
    /// What the CSV's labels mean.
    pub task: ImageTask,
    /// Mapping onto `[0, 1]`; [`Intensity::MinMax`] is per volume (also for slices).
    pub intensity: Intensity,
    /// Volumes or axial slices, and the output size.
    pub output: NiftiOutput,
    /// Skip (and report) or fail on a bad file.
    pub bad_file: BadFile,
}

fn shape_of(output: NiftiOutput) -> ImageShape {
    match output {
        NiftiOutput::Volume {
            depth,
            height,
            width,
            ..
        } => ImageShape::d3(1, depth, height, width),
        NiftiOutput::AxialSlices { height, width, .. } => ImageShape::d2(1, height, width),
    }
}

fn read_one(
    path: &Path,
    labels: &[u32],
    options: &NiftiOptions,
    out: &mut ImageSet,
) -> Result<(), DataError> {
    let mut v = read_volume(path)?;
    options
        .intensity
        .apply(&mut v.voxels)
        .map_err(|m| DataError::file(path, m))?;
    let from = [v.depth, v.height, v.width];
    match options.output {
        NiftiOutput::Volume {
            depth,
            height,
            width,
            resample,
        } => {
            let px = resize(&v.voxels, from, [depth, height, width], resample);
            out.push(&px, labels, path.display().to_string());
        }
        NiftiOutput::AxialSlices {
            height,
            width,
            resample,
        } => {
            let plane = v.height * v.width;
            for (k, slice) in v.voxels.chunks_exact(plane).enumerate() {
                let px = resize(slice, [1, v.height, v.width], [1, height, width], resample);
                out.push(&px, labels, format!("{}:k={k}", path.display()));
            }
        }
    }
    Ok(())
}

/// Reads the volumes listed in a label CSV (`file,label`; files relative to the CSV's
/// folder), one at a time.
///
/// Each volume is scaled by `scl_slope`/`scl_inter` ([`read_volume`]), mapped onto
/// `[0, 1]` by `options.intensity`, then resized (volumes) or cut into axial slices.
///
/// # Shapes
/// Volumes: `N x 1 x depth x height x width`; slices: `(N * slices) x 1 x 1 x height x
/// width`, in CSV order, slices in `k` order.
///
/// # Errors
/// The label CSV's errors (missing columns, bad labels, naming line and column); under
/// [`BadFile::Fail`] the first bad volume's [`DataError::File`] (see [`read_volume`]);
/// under [`BadFile::Skip`] bad volumes are listed in [`Loaded::skipped`].
pub fn read_nifti(
    labels_csv: &Path,
    options: &NiftiOptions,
) -> Result<Loaded<ImageSet>, DataError> {
    options.intensity.check()?;
    let shape = shape_of(options.output);
    if shape.is_empty() {
        return Err(DataError::spec(
            "nifti output size",
            format!("every output dimension must be at least 1, got {shape}"),
        ));
    }
    let table = read_labels(labels_csv, options.task, &["file"])?;
    let mut out = ImageSet::empty(shape, options.task);
    let mut triage = Triage::new(options.bad_file);
    for row in &table.rows {
        let path: PathBuf = table.base_dir().join(&row.key);
        let result = read_one(&path, &row.labels, options, &mut out);
        triage.check(&path, result)?;
    }
    Ok(triage.finish(out))
}
