//! DICOM images, series and multi-frame files via dicom-rs: Rescale Slope/Intercept,
//! Pixel Padding, a window or VOI LUT (from the file or the caller) or a min–max/range
//! mapping onto `[0, 1]`, MONOCHROME1 inversion, and the physical geometry of volumes.
//!
//! Pixel data decode with pure-Rust codecs only: native (uncompressed) little and big
//! endian, deflated, RLE Lossless, JPEG baseline/extended/lossless and JPEG 2000 (the
//! Rust port of OpenJPEG). Other encodings (JPEG-LS, JPEG XL, HTJ2K, MPEG/HEVC video)
//! give an error naming the transfer syntax UID and its name. Monochrome images only.
//!
//! - 2D: [`read_dicom_file`] reads one single-frame file; [`read_dicom_images`] reads
//!   labelled files.
//! - 3D: [`read_series_volume`] (a folder of single-frame slices) and
//!   [`read_file_volume`] (one file: enhanced CT/MR multi-frame with per-frame
//!   functional groups, classic multi-frame with a Grid Frame Offset Vector, or a single
//!   slice) give a [`DicomSeries`] whose [`SpatialVolume`] holds the voxels and their
//!   RAS+ affine. Slices are sorted along the slice normal and checked (shared
//!   orientation and pixel spacing, no two at one position, uniform gaps within
//!   `0.1 mm + 5 %` of the median: see [`SpacingCheck`]); [`read_dicom_series`] reads
//!   labelled series or multi-frame files and resizes them to a fixed grid.
//!
//! **Padding.** Pixels whose *stored* value equals Pixel Padding Value (0028,0120), or
//! lies between it and Pixel Padding Range Limit (0028,0121), are padding (DICOM PS3.3
//! C.7.5.1.1.2: values outside the image, e.g. the −2000 / −3024 around a CT's field of
//! view). They are left out of the min–max statistics and set to 0 in the output, black
//! whatever the photometric interpretation: PS3.3 C.7.5.1.1.2 puts the padding value at
//! the black end (the minimum for MONOCHROME2, the maximum for MONOCHROME1), and 0 is
//! black in Ward's output after MONOCHROME1 inversion.

use std::path::{Path, PathBuf};

use dicom_pixeldata::VoiLutFunction;

use super::dicom_decode::{DicomFile, Frame, VoiTable, read_file};
pub use super::dicom_geometry::SpacingCheck;
use super::dicom_geometry::stack;
use super::labels::{LabelTable, read_labels};
use super::resample::resize;
use super::{BadFile, Intensity, Loaded, Resample, Triage, list_dir};
use crate::error::DataError;
use crate::geometry::{Fit, GeometryError, SpatialVolume, VolumeGeometry};
use crate::image::{ImageSet, ImageShape, ImageTask};

/// How DICOM values (after Rescale Slope/Intercept) map onto `[0, 1]`. MONOCHROME1
/// images are inverted afterwards (`1 - v`), so bright always means high values; padded
/// pixels are 0 whatever the mapping.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DicomIntensity {
    /// The file's own VOI transform number `index` (from 0): its VOI LUT Sequence item
    /// when it has a VOI LUT Sequence (a lookup table, PS3.3 C.11.2.1.1, its output
    /// `0..=2^bits - 1` mapped onto `[0, 1]`; preferred over windows, as pydicom's
    /// `apply_voi_lut` does), otherwise its Window Center/Width pair with the VOI LUT
    /// Function (LINEAR by default, LINEAR_EXACT, SIGMOID; PS3.3 C.11.2.1.2). Enhanced
    /// multi-frame files take them per frame (Frame VOI LUT Sequence). A file without
    /// any, or with fewer than `index + 1`, is an error naming the file and the count.
    FileWindow {
        /// Which window or VOI LUT item, from 0.
        index: usize,
    },
    /// This window for every file (linear function, PS3.3 C.11.2.1.2.1), e.g. a CT
    /// soft-tissue window `center = 40, width = 400`.
    Window {
        /// Window Center.
        center: f64,
        /// Window Width (at least 1).
        width: f64,
    },
    /// Minimum to 0, maximum to 1, per image (per volume for a series), padding left out.
    MinMax,
    /// `low` to 0, `high` to 1, clamped.
    Range {
        /// Value mapped to 0.
        low: f32,
        /// Value mapped to 1.
        high: f32,
    },
}

/// One decoded DICOM image.
#[derive(Clone, Debug, PartialEq)]
pub struct DicomImage {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub columns: usize,
    /// `rows x columns` values in `[0, 1]`, row-major.
    pub pixels: Vec<f32>,
    /// SOP Instance UID, when present.
    pub sop_instance_uid: Option<String>,
}

/// One series stacked into a volume (see [`read_dicom_volume`]).
#[derive(Clone, Debug, PartialEq)]
pub struct DicomVolume {
    /// Slices.
    pub depth: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `depth x height x width` values in `[0, 1]`.
    pub voxels: Vec<f32>,
    /// The slice files, in volume order.
    pub files: Vec<PathBuf>,
}

/// Where one slice of a [`DicomSeries`] comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceSource {
    /// The file.
    pub path: PathBuf,
    /// The 0-based frame in a multi-frame file; `None` for a single-frame file.
    pub frame: Option<usize>,
}

/// A series or multi-frame file read as a volume placed in the patient.
#[derive(Clone, Debug, PartialEq)]
pub struct DicomSeries {
    /// Voxels in `[0, 1]`, `i` (column) fastest, then `j` (row), then `k` (slice, sorted
    /// along the slice normal `row x column`), with the RAS+ affine: the same memory
    /// layout as `depth x height x width`.
    pub volume: SpatialVolume,
    /// The source of each slice `k`.
    pub slices: Vec<SliceSource>,
    /// Findings kept as warnings (non-uniform slice gaps under [`SpacingCheck::Warn`]).
    pub warnings: Vec<String>,
}

/// The VOI LUT functions of DICOM PS3.3 C.11.2.1.2, with output range `[0, 1]`.
fn window_value(x: f64, center: f64, width: f64, function: VoiLutFunction) -> f32 {
    let y = match function {
        VoiLutFunction::Linear => {
            let (c, w) = (center - 0.5, width - 1.0);
            if x <= c - w / 2.0 {
                0.0
            } else if x > c + w / 2.0 {
                1.0
            } else {
                (x - c) / w + 0.5
            }
        }
        VoiLutFunction::LinearExact => {
            if x <= center - width / 2.0 {
                0.0
            } else if x > center + width / 2.0 {
                1.0
            } else {
                (x - center) / width + 0.5
            }
        }
        VoiLutFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - center) / width).exp()),
    };
    y.clamp(0.0, 1.0) as f32
}

fn check_intensity(intensity: DicomIntensity) -> Result<(), DataError> {
    match intensity {
        DicomIntensity::Window { center, width } if !(center.is_finite() && width >= 1.0) => {
            Err(DataError::spec(
                "dicom window",
                format!("needs a finite center and width >= 1, got center {center}, width {width}"),
            ))
        }
        DicomIntensity::Range { low, high } => Intensity::Range { low, high }.check(),
        _ => Ok(()),
    }
}

/// A frame's own VOI transform.
enum Transform<'a> {
    Window(f64, f64, VoiLutFunction),
    Table(&'a VoiTable),
}

impl Transform<'_> {
    fn apply(&self, x: f32) -> f32 {
        match self {
            Self::Window(c, w, f) => window_value(f64::from(x), *c, *w, *f),
            Self::Table(t) => t.apply(f64::from(x)),
        }
    }
}

/// VOI transform `index` of the frame (its VOI LUT Sequence item when it has a VOI LUT
/// Sequence, else its window).
fn file_transform(f: &Frame, index: usize) -> Result<Transform<'_>, DataError> {
    let voi = f
        .voi
        .as_ref()
        .map_err(|m| f.error(format!("unusable VOI LUT attributes: {m}")))?;
    if !voi.luts.is_empty() {
        return voi.luts.get(index).map(Transform::Table).ok_or_else(|| {
            f.error(format!(
                "has {} VOI LUT Sequence items: window index {index} is out of range \
                 (data.reader.window-index counts from 0)",
                voi.luts.len()
            ))
        });
    }
    if voi.windows.is_empty() {
        return Err(f.error(
            "has no Window Center/Width and no VOI LUT Sequence; pass a window or use min-max",
        ));
    }
    let &(c, w) = voi.windows.get(index).ok_or_else(|| {
        f.error(format!(
            "has {} windows (Window Center/Width): window index {index} is out of range \
             (data.reader.window-index counts from 0)",
            voi.windows.len()
        ))
    })?;
    let usable = match voi.function {
        VoiLutFunction::Linear => w >= 1.0,
        _ => w > 0.0,
    };
    if !usable {
        return Err(f.error(format!(
            "window center {c}, width {w} is not usable with the {:?} VOI LUT function",
            voi.function
        )));
    }
    Ok(Transform::Window(c, w, voi.function))
}

/// Maps the values of `frames` (one image, or one volume) onto `[0, 1]` in place:
/// the intensity mapping (min–max over the non-padded values of all frames), then
/// MONOCHROME1 inversion, then padded pixels to 0.
fn map_frames(frames: &mut [Frame], intensity: DicomIntensity) -> Result<(), DataError> {
    match intensity {
        DicomIntensity::FileWindow { index } => {
            for f in frames.iter_mut() {
                let mapped: Vec<f32> = {
                    let t = file_transform(f, index)?;
                    f.values.iter().map(|&v| t.apply(v)).collect()
                };
                f.values = mapped;
            }
        }
        DicomIntensity::Window { center, width } => {
            for v in frames.iter_mut().flat_map(|f| f.values.iter_mut()) {
                *v = window_value(f64::from(*v), center, width, VoiLutFunction::Linear);
            }
        }
        DicomIntensity::MinMax | DicomIntensity::Range { .. } => {
            let (low, high) = match intensity {
                DicomIntensity::Range { low, high } => (low, high),
                _ => min_max(frames)?,
            };
            let span = high - low;
            for v in frames.iter_mut().flat_map(|f| f.values.iter_mut()) {
                *v = if span > 0.0 {
                    ((*v - low) / span).clamp(0.0, 1.0)
                } else {
                    0.0
                };
            }
        }
    }
    for f in frames.iter_mut() {
        if f.monochrome1 {
            for v in &mut f.values {
                *v = 1.0 - *v;
            }
        }
        for (v, _) in f.values.iter_mut().zip(&f.padded).filter(|(_, p)| **p) {
            *v = 0.0;
        }
    }
    Ok(())
}

/// The smallest and largest non-padded values (`(0, 0)` when every pixel is padding).
fn min_max(frames: &[Frame]) -> Result<(f32, f32), DataError> {
    let (mut low, mut high) = (f32::INFINITY, f32::NEG_INFINITY);
    for f in frames {
        for (i, &v) in f.values.iter().enumerate() {
            if f.padded.get(i).copied().unwrap_or(false) {
                continue;
            }
            if !v.is_finite() {
                return Err(f.error(format!("value {v} at pixel {i} is not finite")));
            }
            low = low.min(v);
            high = high.max(v);
        }
    }
    Ok(if low <= high { (low, high) } else { (0.0, 0.0) })
}

/// Reads one single-frame monochrome DICOM file and maps it onto `[0, 1]`.
///
/// # Shapes
/// `pixels`: `rows x columns`.
///
/// # Errors
/// [`DataError::File`] naming the file: not DICOM, truncated, no pixel data, a transfer
/// syntax without a decoder here (naming its UID and name), colour, multi-frame (read
/// those with [`read_file_volume`]), [`DicomIntensity::FileWindow`] without that window
/// or VOI LUT in the file.
pub fn read_dicom_file(path: &Path, intensity: DicomIntensity) -> Result<DicomImage, DataError> {
    check_intensity(intensity)?;
    let DicomFile {
        rows,
        columns,
        mut frames,
        sop_instance_uid,
        ..
    } = read_file(path)?;
    if frames.len() != 1 {
        return Err(DataError::file(
            path,
            format!(
                "has {} frames: a multi-frame file is one 3D image (data.reader.series = true \
                 lists it as one), not a 2D image",
                frames.len()
            ),
        ));
    }
    map_frames(&mut frames, intensity)?;
    Ok(DicomImage {
        rows,
        columns,
        pixels: frames.swap_remove(0).values,
        sop_instance_uid,
    })
}

/// Places, checks, orders and maps `frames` (all `rows x columns`) into one volume;
/// `place` (the folder or file) is named in stack-level errors.
fn build(
    place: &Path,
    frames: Vec<Frame>,
    [rows, columns]: [usize; 2],
    intensity: DicomIntensity,
    check: SpacingCheck,
) -> Result<DicomSeries, DataError> {
    let mut planes = Vec::with_capacity(frames.len());
    for f in &frames {
        let p = f
            .plane
            .clone()
            .map_err(|m| f.error(format!("cannot be placed in a volume: {m}")))?;
        planes.push(p);
    }
    let names: Vec<String> = frames.iter().map(Frame::name).collect();
    let stack = stack(&planes, &names, check).map_err(|m| DataError::file(place, m))?;
    let mut rank = vec![0; frames.len()];
    for (k, &i) in stack.order.iter().enumerate() {
        rank[i] = k;
    }
    let mut frames: Vec<(usize, Frame)> = rank.into_iter().zip(frames).collect();
    frames.sort_by_key(|(k, _)| *k);
    let mut frames: Vec<Frame> = frames.into_iter().map(|(_, f)| f).collect();
    map_frames(&mut frames, intensity)?;
    let slices = frames
        .iter()
        .map(|f| SliceSource {
            path: f.path.clone(),
            frame: f.number,
        })
        .collect();
    let dims = [columns, rows, frames.len()];
    Ok(DicomSeries {
        volume: SpatialVolume {
            dims,
            voxels: frames.into_iter().flat_map(|f| f.values).collect(),
            affine: stack.affine,
        },
        slices,
        warnings: stack
            .warnings
            .into_iter()
            .map(|w| format!("{}: {w}", place.display()))
            .collect(),
    })
}

/// Reads one series folder (single-frame slice files; hidden files, sub-folders and
/// `DICOMDIR` ignored) as a volume: slices placed by Image Position/Orientation
/// (Patient) and Pixel Spacing, checked and sorted along the slice normal (see the
/// module documentation), then mapped onto `[0, 1]` (min–max over the whole volume).
///
/// # Shapes
/// `volume.dims = [columns, rows, slices]`.
///
/// # Errors
/// [`DataError::File`] naming the folder or the slice file: no slice, unreadable or
/// multi-frame slices, slices of different sizes or series, a missing or invalid
/// position, orientation or pixel spacing, differing orientations or spacings, two
/// slices at one position, non-uniform gaps under [`SpacingCheck::Refuse`], and the
/// intensity errors of [`read_dicom_file`].
pub fn read_series_volume(
    dir: &Path,
    intensity: DicomIntensity,
    check: SpacingCheck,
) -> Result<DicomSeries, DataError> {
    check_intensity(intensity)?;
    let bad = |m: String| DataError::file(dir, m);
    if !dir.is_dir() {
        return Err(bad(
            "is not a folder (a series is a folder of DICOM files)".into()
        ));
    }
    let mut frames = Vec::new();
    let mut first: Option<(PathBuf, [usize; 2], Option<String>)> = None;
    for p in list_dir(dir)? {
        if p.is_dir() || p.file_name().is_some_and(|n| n == "DICOMDIR") {
            continue;
        }
        let file = read_file(&p)?;
        if file.frames.len() != 1 {
            return Err(DataError::file(
                &p,
                format!(
                    "has {} frames: a multi-frame file is a volume of its own; list it in \
                     the label CSV by itself",
                    file.frames.len()
                ),
            ));
        }
        let size = [file.rows, file.columns];
        match &first {
            None => first = Some((p.clone(), size, file.series_instance_uid.clone())),
            Some((q, s, uid)) => check_same_series(&p, size, &file, q, *s, uid)?,
        }
        frames.extend(file.frames);
    }
    let Some((_, size, _)) = first else {
        return Err(bad("holds no DICOM file".into()));
    };
    build(dir, frames, size, intensity, check)
}

/// A slice must match the first slice of its folder in size and series.
fn check_same_series(
    p: &Path,
    size: [usize; 2],
    file: &DicomFile,
    first: &Path,
    first_size: [usize; 2],
    first_uid: &Option<String>,
) -> Result<(), DataError> {
    if size != first_size {
        return Err(DataError::file(
            p,
            format!(
                "is {} x {}, but {} is {} x {}: slices of one series must agree",
                size[0],
                size[1],
                first.display(),
                first_size[0],
                first_size[1]
            ),
        ));
    }
    if file.series_instance_uid != *first_uid {
        return Err(DataError::file(
            p,
            format!(
                "belongs to series {:?}, but {} to {first_uid:?}: one folder per series",
                file.series_instance_uid,
                first.display(),
            ),
        ));
    }
    Ok(())
}

/// Reads one DICOM file as a volume: the frames of an enhanced multi-frame file (placed
/// by their Plane Position/Orientation and Pixel Measures functional groups, rescaled by
/// their Pixel Value Transformation and windowed by their Frame VOI LUT), of a classic
/// multi-frame file with a Grid Frame Offset Vector (e.g. RT Dose), or a single slice
/// (one slice thick: Spacing Between Slices, else Slice Thickness, else 1 mm). Frames
/// are checked and sorted like the slices of [`read_series_volume`].
///
/// # Shapes
/// `volume.dims = [columns, rows, frames]`.
///
/// # Errors
/// As [`read_series_volume`], naming the file (and the frame).
pub fn read_file_volume(
    path: &Path,
    intensity: DicomIntensity,
    check: SpacingCheck,
) -> Result<DicomSeries, DataError> {
    check_intensity(intensity)?;
    let file = read_file(path)?;
    build(
        path,
        file.frames,
        [file.rows, file.columns],
        intensity,
        check,
    )
}

/// Reads the DICOM files of one series folder as [`read_series_volume`] does (gaps
/// refused), as a `depth x height x width` block with its files.
///
/// # Shapes
/// `voxels`: `depth x height x width`, `depth` = number of files.
///
/// # Errors
/// As [`read_series_volume`].
pub fn read_dicom_volume(dir: &Path, intensity: DicomIntensity) -> Result<DicomVolume, DataError> {
    let s = read_series_volume(dir, intensity, SpacingCheck::Refuse)?;
    let [width, height, depth] = s.volume.dims;
    Ok(DicomVolume {
        depth,
        height,
        width,
        voxels: s.volume.voxels,
        files: s.slices.into_iter().map(|s| s.path).collect(),
    })
}

/// Settings of [`read_dicom_images`] and [`read_dicom_series`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DicomOptions {
    /// What the CSV's labels mean.
    pub task: ImageTask,
    /// Mapping onto `[0, 1]`.
    pub intensity: DicomIntensity,
    /// Output slices: 1 for [`read_dicom_images`], the volume depth for
    /// [`read_dicom_series`].
    pub depth: usize,
    /// Output rows.
    pub height: usize,
    /// Output columns.
    pub width: usize,
    /// Nearest or (bi/tri)linear resizing.
    pub resample: Resample,
    /// Skip (and report) or fail on a bad file.
    pub bad_file: BadFile,
    /// [`read_dicom_series`]: refuse, or read and warn about, non-uniform slice gaps.
    pub spacing_check: SpacingCheck,
    /// [`read_dicom_series`]: orientation, spacing and anti-aliasing of each volume
    /// before it is brought to the output size ([`VolumeGeometry::KEEP`]: as stacked).
    pub geometry: VolumeGeometry,
    /// [`read_dicom_series`]: resize or crop/pad to `depth x height x width`.
    pub fit: Fit,
}

impl DicomOptions {
    fn check(&self, volume: bool) -> Result<ImageShape, DataError> {
        check_intensity(self.intensity)?;
        let shape = if volume {
            ImageShape::d3(1, self.depth, self.height, self.width)
        } else {
            if self.depth != 1 {
                return Err(DataError::spec(
                    "dicom depth",
                    format!("is {} but single images need depth 1", self.depth),
                ));
            }
            ImageShape::d2(1, self.height, self.width)
        };
        if shape.is_empty() {
            return Err(DataError::spec(
                "dicom output size",
                format!("every dimension must be at least 1, got {shape}"),
            ));
        }
        Ok(shape)
    }
}

/// All files under `root`, recursively, sorted; hidden files, `DICOMDIR` and `exclude`
/// left out.
fn walk(root: &Path, exclude: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    for p in list_dir(root)? {
        if p.is_dir() {
            walk(&p, exclude, out)?;
        } else if p.file_name().is_some_and(|n| n != "DICOMDIR") && p != exclude {
            out.push(p);
        }
    }
    Ok(())
}

fn push_image(
    out: &mut ImageSet,
    image: &DicomImage,
    labels: &[u32],
    options: &DicomOptions,
    source: &Path,
) {
    let px = resize(
        &image.pixels,
        [1, image.rows, image.columns],
        [1, options.height, options.width],
        options.resample,
    );
    out.push(&px, labels, source.display().to_string());
}

/// Reads labelled single-frame DICOM images, one file at a time.
///
/// The label CSV has a `label` column and either `file` (paths relative to `root`;
/// exactly the listed files are read) or `sop_instance_uid` (every file under `root` is
/// read, recursively, and matched by its SOP Instance UID; hidden files, `DICOMDIR` and
/// the CSV itself are not read). Each image is mapped onto `[0, 1]` (see
/// [`DicomIntensity`]) and resized to `height x width`.
///
/// # Shapes
/// `N x 1 x 1 x height x width`.
///
/// # Errors
/// The CSV's errors (naming line and column) and unusable settings; under
/// [`BadFile::Fail`] the first bad file (see [`read_dicom_file`]), a scanned file whose
/// UID has no label row, or a UID row matching no file; under [`BadFile::Skip`] these
/// are listed in [`Loaded::skipped`].
pub fn read_dicom_images(
    root: &Path,
    labels_csv: &Path,
    options: &DicomOptions,
) -> Result<Loaded<ImageSet>, DataError> {
    let shape = options.check(false)?;
    let table = read_labels(labels_csv, options.task, &["file", "sop_instance_uid"])?;
    let mut out = ImageSet::empty(shape, options.task);
    let mut triage = Triage::new(options.bad_file);
    if table.key_column == "file" {
        for row in &table.rows {
            let path = root.join(&row.key);
            if let Some(image) = triage.check(&path, read_dicom_file(&path, options.intensity))? {
                push_image(&mut out, &image, &row.labels, options, &path);
            }
        }
        return Ok(triage.finish(out));
    }
    let index = table.index();
    let mut used = vec![false; table.rows.len()];
    let mut files = Vec::new();
    walk(root, labels_csv, &mut files)?;
    for path in files {
        let read = read_dicom_file(&path, options.intensity).and_then(|image| {
            let uid = image.sop_instance_uid.clone().unwrap_or_default();
            match index.get(uid.as_str()) {
                Some(&i) => Ok((image, i)),
                None => Err(DataError::file(
                    &path,
                    format!(
                        "SOP Instance UID {uid:?} has no row in {}",
                        table.path.display()
                    ),
                )),
            }
        });
        if let Some((image, i)) = triage.check(&path, read)? {
            if std::mem::replace(&mut used[i], true) {
                return Err(DataError::file(
                    &path,
                    format!(
                        "SOP Instance UID {:?} (line {}) is shared by two files",
                        table.rows[i].key, table.rows[i].line
                    ),
                ));
            }
            push_image(&mut out, &image, &table.rows[i].labels, options, &path);
        }
    }
    unmatched_rows(&table, &used, &mut triage)?;
    Ok(triage.finish(out))
}

/// Label rows that matched no file are bad entries too.
fn unmatched_rows(table: &LabelTable, used: &[bool], triage: &mut Triage) -> Result<(), DataError> {
    for (row, _) in table.rows.iter().zip(used).filter(|(_, u)| !**u) {
        let e = DataError::BadValue {
            path: table.path.clone(),
            line: row.line,
            column: table.key_column.clone(),
            message: format!("{:?} matches no readable DICOM file", row.key),
        };
        triage.check::<()>(&table.path, Err(e))?;
    }
    Ok(())
}

/// Reorients and resamples a stacked volume as `options.geometry` says, then brings it to
/// the output size by `options.fit` (padding with 0, the black of the `[0, 1]` values).
fn place(v: SpatialVolume, options: &DicomOptions) -> Result<SpatialVolume, GeometryError> {
    let g = options.geometry;
    let mut v = v;
    if let Some(o) = g.orientation {
        v = v.reoriented(o)?;
    }
    if let Some(s) = g.spacing {
        v = v.resampled(s, options.resample, g.antialias)?;
    }
    v.fit(
        [options.width, options.height, options.depth],
        options.fit,
        options.resample,
        g.antialias,
        0.0,
    )
}

/// Reads labelled DICOM volumes, one at a time.
///
/// The label CSV has `file` and `label`; each `file` (relative to `root`) is either a
/// series folder, read by [`read_series_volume`], or a file, read by
/// [`read_file_volume`] (an enhanced or classic multi-frame file: one 3D image per
/// file). Each volume is mapped onto `[0, 1]` as a whole (so [`DicomIntensity::MinMax`]
/// is per volume) and resized to `depth x height x width` (voxel `k, j, i` order, the
/// slices sorted along the slice normal).
///
/// # Shapes
/// `N x 1 x depth x height x width`.
///
/// # Errors
/// The CSV's errors; under [`BadFile::Fail`] the first bad series (naming the folder or
/// the file and the reason); under [`BadFile::Skip`] bad series are listed in
/// [`Loaded::skipped`] with their folder or file. Non-uniform slice gaps under
/// [`SpacingCheck::Warn`] are listed in [`Loaded::warnings`].
pub fn read_dicom_series(
    root: &Path,
    labels_csv: &Path,
    options: &DicomOptions,
) -> Result<Loaded<ImageSet>, DataError> {
    let shape = options.check(true)?;
    let table = read_labels(labels_csv, options.task, &["file"])?;
    let mut out = ImageSet::empty(shape, options.task);
    let mut triage = Triage::new(options.bad_file);
    for row in &table.rows {
        let path = root.join(&row.key);
        let read = if path.is_dir() {
            read_series_volume(&path, options.intensity, options.spacing_check)
        } else {
            read_file_volume(&path, options.intensity, options.spacing_check)
        };
        let placed = read.and_then(|s| {
            let v = place(s.volume, options).map_err(|e| DataError::file(&path, e.to_string()))?;
            Ok((v, s.warnings))
        });
        if let Some((v, warnings)) = triage.check(&path, placed)? {
            out.push(&v.voxels, &row.labels, path.display().to_string());
            triage.warnings.extend(warnings);
        }
    }
    Ok(triage.finish(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_window_follows_ps3_3() {
        // PS3.3 C.11.2.1.2.1 with c = 600, w = 1600: x <= 599.5 - 799.5 -> 0,
        // x > 599.5 + 799.5 -> 1, else (x - 599.5) / 1599 + 0.5.
        assert_eq!(
            window_value(-200.0, 600.0, 1600.0, VoiLutFunction::Linear),
            0.0
        );
        assert_eq!(
            window_value(1400.0, 600.0, 1600.0, VoiLutFunction::Linear),
            1.0
        );
        let v = window_value(905.0, 600.0, 1600.0, VoiLutFunction::Linear);
        assert!((f64::from(v) - ((905.0 - 599.5) / 1599.0 + 0.5)).abs() < 1e-6);
        let s = window_value(600.0, 600.0, 1600.0, VoiLutFunction::Sigmoid);
        assert!((s - 0.5).abs() < 1e-6);
        let e = window_value(200.0, 600.0, 1600.0, VoiLutFunction::LinearExact);
        assert!((e - 0.25).abs() < 1e-6);
    }

    fn frame(values: Vec<f32>, padded: Vec<bool>, monochrome1: bool) -> Frame {
        Frame {
            path: PathBuf::from("x.dcm"),
            number: None,
            values,
            padded,
            monochrome1,
            voi: Err("no VOI".into()),
            plane: Err("no plane".into()),
        }
    }

    #[test]
    fn padding_is_black_after_inversion_and_out_of_min_max() {
        // Values 0 and 100 around padding at -3024: min-max over 0..100, then
        // MONOCHROME1 inversion, then padding to 0 (black).
        let mut f = [frame(
            vec![-3024.0, 0.0, 25.0, 100.0],
            vec![true, false, false, false],
            true,
        )];
        map_frames(&mut f, DicomIntensity::MinMax).unwrap();
        assert_eq!(f[0].values, vec![0.0, 1.0, 0.75, 0.0]);
        // Every pixel padding: a constant (0) image, not NaN.
        let mut f = [frame(vec![5.0, 5.0], vec![true, true], false)];
        map_frames(&mut f, DicomIntensity::MinMax).unwrap();
        assert_eq!(f[0].values, vec![0.0, 0.0]);
        // The frame's VOI problem is reported only when a file window is asked for.
        let mut f = [frame(vec![1.0], vec![], false)];
        let e = map_frames(&mut f, DicomIntensity::FileWindow { index: 0 })
            .unwrap_err()
            .to_string();
        assert_eq!(e, "x.dcm: unusable VOI LUT attributes: no VOI");
    }
}
