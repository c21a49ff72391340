//! NIfTI-1 volumes (`.nii`, `.nii.gz`): scaled by `scl_slope`/`scl_inter`, placed in the
//! world by the header's affine (as nibabel reads it), reoriented (RAS by default),
//! optionally resampled to a voxel spacing, mapped onto `[0, 1]`, and returned as
//! volumes or as 2D slices along an anatomical axis, brought to the output size by
//! resizing or by cropping/padding (see [`crate::geometry`]).
//!
//! After reorientation the voxel axis `i` (fastest) becomes the width, `j` the height
//! and `k` the depth: for the default RAS, width runs towards the patient's right, height
//! anterior and depth superior. With `orientation: None` the file's storage order is kept.

use std::io::Read;
use std::path::{Path, PathBuf};

use nifti::{InMemNiftiObject, NiftiObject, NiftiType, NiftiVolume, ReaderOptions};

use super::labels::read_labels;
use super::{BadFile, Intensity, Loaded, Resample, Triage};
use crate::error::DataError;
use crate::geometry::{Affine, Fit, GeometryError, SliceAxis, SpatialVolume, VolumeGeometry};
use crate::image::{ImageSet, ImageShape, ImageTask};

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

/// nibabel's `fillpositive` then `quat2mat` (nibabel 5.0 `quaternions.py`): the unit
/// quaternion `(w, b, c, d)` with `w = sqrt(1 - b² - c² - d²)` (0 when that is
/// negative within float32 rounding) as a rotation matrix.
fn quaternion_rotation(b: f64, c: f64, d: f64) -> Result<[[f64; 3]; 3], String> {
    let w2 = 1.0 - (b * b + c * c + d * d);
    let w = if w2 >= 0.0 {
        w2.sqrt()
    } else if w2 >= -3.0 * f64::from(f32::EPSILON) {
        0.0
    } else {
        return Err(format!(
            "qform quaternion (b, c, d) = ({b}, {c}, {d}) is not a rotation: b² + c² + d² = {} > 1",
            1.0 - w2
        ));
    };
    let nq = w * w + b * b + c * c + d * d;
    if nq < f64::EPSILON {
        return Ok([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
    }
    let s = 2.0 / nq;
    let (x, y, z) = (b * s, c * s, d * s);
    let (wx, wy, wz) = (w * x, w * y, w * z);
    let (xx, xy, xz) = (b * x, b * y, b * z);
    let (yy, yz, zz) = (c * y, c * z, d * z);
    Ok([
        [1.0 - (yy + zz), xy - wz, xz + wy],
        [xy + wz, 1.0 - (xx + zz), yz - wx],
        [xz - wy, yz + wx, 1.0 - (xx + yy)],
    ])
}

/// The header's voxel-to-world affine, as nibabel 5.0's `Nifti1Header.get_best_affine()`
/// after loading (`nifti1.py`): the sform when `sform_code` is 1..=5, else the qform
/// (quaternion, `qfac = pixdim[0]`, a `qfac` other than -1 taken as 1) when `qform_code`
/// is 1..=5, else nibabel's fallback `shape_zoom_affine`: `diag(-pixdim[1], pixdim[2],
/// pixdim[3])` centred on the middle voxel. Codes outside 0..=5 count as 0 and negative
/// pixdims as their absolute values, as nibabel's load-time header fixes do.
///
/// # Errors
/// A message for a zero pixdim where the chosen transform needs it (nibabel would
/// silently take 1 mm), a quaternion that is not a rotation, or an unusable affine
/// (NaN, infinite, singular).
pub fn header_affine(header: &nifti::NiftiHeader, dims: [usize; 3]) -> Result<Affine, String> {
    let code_ok = |c: i16| (1..=5).contains(&c);
    let pixdim = |n: usize| f64::from(header.pixdim[n]).abs();
    // A 2D file has no extent along k: nibabel's fallback takes 1 mm there, and its
    // load-time fix turns a zero pixdim[3] into 1 for the qform.
    let flat = header.dim[0] < 3;
    let spatial = |which: &str, p3: f64| -> Result<[f64; 3], String> {
        let p = [pixdim(1), pixdim(2), p3];
        if p.iter().any(|v| *v == 0.0 || !v.is_finite()) {
            return Err(format!(
                "pixdim[1..4] = {:?}: the {which} needs non-zero, finite voxel sizes",
                &header.pixdim[1..4]
            ));
        }
        Ok(p)
    };
    let mut a: Affine = [[0.0; 4]; 4];
    a[3][3] = 1.0;
    let which = if code_ok(header.sform_code) {
        for (row, srow) in a
            .iter_mut()
            .zip([header.srow_x, header.srow_y, header.srow_z])
        {
            *row = srow.map(f64::from);
        }
        "sform"
    } else if code_ok(header.qform_code) {
        let r = quaternion_rotation(
            f64::from(header.quatern_b),
            f64::from(header.quatern_c),
            f64::from(header.quatern_d),
        )?;
        let p3 = if flat && pixdim(3) == 0.0 {
            1.0
        } else {
            pixdim(3)
        };
        let mut zoom = spatial("qform", p3)?;
        if header.pixdim[0] == -1.0 {
            zoom[2] = -zoom[2];
        }
        let offset = [header.quatern_x, header.quatern_y, header.quatern_z];
        for (row, (r, t)) in a.iter_mut().zip(r.iter().zip(offset)) {
            *row = [r[0] * zoom[0], r[1] * zoom[1], r[2] * zoom[2], f64::from(t)];
        }
        "qform"
    } else {
        let p3 = if flat { 1.0 } else { pixdim(3) };
        let zoom = spatial("fallback affine (no sform or qform code)", p3)?;
        for n in 0..3 {
            let z = if n == 0 { -zoom[0] } else { zoom[n] };
            a[n][n] = z;
            a[n][3] = -((dims[n] as f64 - 1.0) / 2.0) * z;
        }
        "fallback affine (no sform or qform code)"
    };
    crate::geometry::check_affine(&a).map_err(|e| format!("{which}: {e}"))?;
    Ok(a)
}

/// Reads one `.nii` or `.nii.gz` volume, applies `scl_slope`/`scl_inter` (a slope of
/// 0 means unscaled, as the NIfTI-1 standard says) and places it in the world with the
/// header's affine ([`header_affine`], equal to nibabel's `img.affine`).
///
/// # Shapes
/// The result keeps the file's storage order: `dims = [i, j, k]` (`k` = 1 for a 2D
/// file), voxels `i` fastest.
///
/// # Errors
/// [`DataError::File`] naming the file: not NIfTI-1, truncated, an unsupported data type
/// (complex, RGB, 128-bit float), more than one volume (a 4D time series), a non-finite
/// scaled value, an unusable affine (NaN, singular, a zero pixdim where it is needed).
pub fn read_volume(path: &Path) -> Result<SpatialVolume, DataError> {
    let bad = |m: String| DataError::file(path, m);
    let object = read_object(path).map_err(|e| {
        bad(format!(
            "not a readable NIfTI-1 file (corrupt or truncated): {e}"
        ))
    })?;
    let header = object.header().clone();
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
    let dims = [width, height, depth];
    let affine = header_affine(&header, dims).map_err(bad)?;
    SpatialVolume::new(dims, voxels, affine).map_err(|e| bad(e.to_string()))
}

/// What [`read_nifti`] makes of each volume.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NiftiOutput {
    /// One 3D image per file, brought to `depth x height x width` by `fit`.
    Volume {
        /// Output slices (voxel axis `k`).
        depth: usize,
        /// Output rows (`j`).
        height: usize,
        /// Output columns (`i`).
        width: usize,
        /// Nearest or trilinear.
        resample: Resample,
        /// Resize or crop/pad.
        fit: Fit,
    },
    /// One 2D image per slice normal to `axis` ([`SpatialVolume::slices`]), each
    /// brought to `height x width` by `fit`, each with its volume's label.
    Slices {
        /// Axial, coronal or sagittal.
        axis: SliceAxis,
        /// Output rows.
        height: usize,
        /// Output columns.
        width: usize,
        /// Nearest or bilinear.
        resample: Resample,
        /// Resize or crop/pad.
        fit: Fit,
    },
}

/// Settings of [`read_nifti`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NiftiOptions {
    /// What the CSV's labels mean.
    pub task: ImageTask,
    /// Mapping onto `[0, 1]`, per volume (also for slices).
    pub intensity: Intensity,
    /// Volumes or slices, and the output size.
    pub output: NiftiOutput,
    /// Orientation, spacing and anti-aliasing.
    pub geometry: VolumeGeometry,
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
        NiftiOutput::Slices { height, width, .. } => ImageShape::d2(1, height, width),
    }
}

/// Reads one volume and puts it where `geometry` says, then maps its intensities: the
/// volume [`read_nifti`] cuts to size.
///
/// # Errors
/// [`read_volume`]'s, and a [`DataError::File`] when the geometry cannot be applied.
pub fn prepare_volume(
    path: &Path,
    geometry: &VolumeGeometry,
    resample: Resample,
    intensity: Intensity,
) -> Result<SpatialVolume, DataError> {
    let geo = |e: GeometryError| DataError::file(path, e.to_string());
    let mut v = read_volume(path)?;
    if let Some(o) = geometry.orientation {
        v = v.reoriented(o).map_err(geo)?;
    }
    if let Some(s) = geometry.spacing {
        v = v.resampled(s, resample, geometry.antialias).map_err(geo)?;
    }
    intensity
        .apply(&mut v.voxels)
        .map_err(|m| DataError::file(path, m))?;
    Ok(v)
}

fn read_one(
    path: &Path,
    labels: &[u32],
    options: &NiftiOptions,
    out: &mut ImageSet,
) -> Result<(), DataError> {
    let geo = |e: GeometryError| DataError::file(path, e.to_string());
    let antialias = options.geometry.antialias;
    match options.output {
        NiftiOutput::Volume {
            depth,
            height,
            width,
            resample,
            fit,
        } => {
            let v = prepare_volume(path, &options.geometry, resample, options.intensity)?;
            let v = v
                .fit([width, height, depth], fit, resample, antialias, 0.0)
                .map_err(geo)?;
            out.push(&v.voxels, labels, path.display().to_string());
        }
        NiftiOutput::Slices {
            axis,
            height,
            width,
            resample,
            fit,
        } => {
            let v = prepare_volume(path, &options.geometry, resample, options.intensity)?;
            for (n, slice) in v.slices(axis).map_err(geo)?.into_iter().enumerate() {
                let s = slice
                    .fit([width, height, 1], fit, resample, antialias, 0.0)
                    .map_err(geo)?;
                out.push(
                    &s.voxels,
                    labels,
                    format!("{}:{}={n}", path.display(), axis.as_str()),
                );
            }
        }
    }
    Ok(())
}

/// Reads the volumes listed in a label CSV (`file,label`; files relative to the CSV's
/// folder), one at a time.
///
/// Each volume is read ([`read_volume`]: `scl_slope`/`scl_inter`, the header's
/// affine), reoriented and resampled by `options.geometry`, mapped onto `[0, 1]` by
/// `options.intensity` (per volume), then brought to the output size (volumes) or cut
/// into slices that are each brought to it; padding is 0.
///
/// # Shapes
/// Volumes: `N x 1 x depth x height x width`; slices: `(N * slices) x 1 x 1 x height x
/// width`, in CSV order, slices in increasing index along the slicing axis.
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
    if let Some(s) = options.geometry.spacing
        && s.iter().any(|v| !(v.is_finite() && *v > 0.0))
    {
        return Err(DataError::spec(
            "nifti spacing",
            format!("every value must be finite and > 0 mm, got {s:?}"),
        ));
    }
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
