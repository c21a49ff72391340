//! DICOM images and series via dicom-rs: Rescale Slope/Intercept, a window (from the
//! file or the caller) or a min–max/range mapping onto `[0, 1]`, MONOCHROME1 inversion.
//!
//! Pixel data decode with pure-Rust codecs only: native (uncompressed) little and big
//! endian, deflated, RLE Lossless, JPEG baseline/extended/lossless and JPEG 2000 (the
//! Rust port of OpenJPEG). Other encodings (JPEG-LS, JPEG XL, HTJ2K, MPEG/HEVC video)
//! give an error naming the transfer syntax UID and its name.
//!
//! Monochrome, single-frame images only: colour and multi-frame files are reported as
//! unsupported.

use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::{PhotometricInterpretation, PixelDecoder, VoiLutFunction};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::labels::{LabelTable, read_labels};
use super::resample::resize;
use super::{BadFile, Intensity, Loaded, Resample, Triage, list_dir};
use crate::error::DataError;
use crate::image::{ImageSet, ImageShape, ImageTask};

/// How DICOM values (after Rescale Slope/Intercept) map onto `[0, 1]`. MONOCHROME1
/// images are inverted afterwards (`1 - v`), so bright always means high values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DicomIntensity {
    /// The file's first Window Center/Width with its VOI LUT Function (LINEAR by default,
    /// LINEAR_EXACT, SIGMOID; DICOM PS3.3 C.11.2.1.2). A file without a window is an error.
    FileWindow,
    /// This window for every file (linear function, PS3.3 C.11.2.1.2.1), e.g. a CT
    /// soft-tissue window `center = 40, width = 400`.
    Window {
        /// Window Center.
        center: f64,
        /// Window Width (at least 1).
        width: f64,
    },
    /// Minimum to 0, maximum to 1, per image (per volume for a series).
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

/// One series stacked into a volume.
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

/// A decoded frame before the mapping onto `[0, 1]`.
struct Frame {
    rows: usize,
    columns: usize,
    /// Values after the modality LUT (Rescale Slope/Intercept).
    values: Vec<f32>,
    monochrome1: bool,
    window: Option<(f64, f64, VoiLutFunction)>,
    sop_instance_uid: Option<String>,
    series_instance_uid: Option<String>,
    instance_number: Option<i64>,
    position: Option<[f64; 3]>,
    orientation: Option<[f64; 6]>,
}

fn text(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| {
            s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_owned()
        })
        .filter(|s| !s.is_empty())
}

fn floats<const N: usize>(obj: &DefaultDicomObject, tag: Tag) -> Option<[f64; N]> {
    obj.get(tag)
        .and_then(|e| e.to_multi_float64().ok())
        .and_then(|v| <[f64; N]>::try_from(v).ok())
}

/// Refuses a transfer syntax whose pixel data cannot be decoded, naming it; otherwise
/// returns `"<name> (transfer syntax <uid>)"` for later messages.
fn check_transfer_syntax(path: &Path, obj: &DefaultDicomObject) -> Result<String, DataError> {
    let uid = obj.meta().transfer_syntax().trim_end_matches(['\0', ' ']);
    match TransferSyntaxRegistry.get(uid) {
        None => Err(DataError::file(
            path,
            format!("transfer syntax {uid} is not a known DICOM transfer syntax"),
        )),
        Some(ts) if !ts.can_decode_all() => Err(DataError::file(
            path,
            format!(
                "pixel data are encoded as {} (transfer syntax {uid}), which Ward cannot decode \
                 (pure-Rust codecs only: uncompressed, deflated, RLE, JPEG baseline/extended/lossless, \
                 JPEG 2000); convert the file to an uncompressed transfer syntax first \
                 (e.g. `gdcmconv --raw` or dcmtk's `dcmdjpls`)",
                ts.name()
            ),
        )),
        Some(ts) => Ok(format!("{} (transfer syntax {uid})", ts.name())),
    }
}

/// The text of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn read_frame(path: &Path) -> Result<Frame, DataError> {
    let bad = |m: String| DataError::file(path, m);
    let obj = OpenFileOptions::new()
        .open_file(path)
        .map_err(|e| bad(format!("not a readable DICOM file: {e}")))?;
    let encoding = check_transfer_syntax(path, &obj)?;
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(bad("holds no Pixel Data (7FE0,0010): not an image".into()));
    }
    // dicom-rs codecs can panic on corrupt data (e.g. an RLE segment offset past the end):
    // such a panic becomes this file's error.
    let px = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| obj.decode_pixel_data()))
        .map_err(|p| {
            bad(format!(
                "pixel data encoded as {encoding} are corrupt (the decoder failed: {})",
                panic_message(p.as_ref())
            ))
        })?
        .map_err(|e| {
            bad(format!(
                "pixel data encoded as {encoding} cannot be decoded: {e}"
            ))
        })?;
    let photometric = px.photometric_interpretation().clone();
    if !photometric.is_monochrome() || px.samples_per_pixel() != 1 {
        return Err(bad(format!(
            "photometric interpretation {photometric} with {} samples per pixel: \
             Ward reads monochrome (MONOCHROME1/2) images only",
            px.samples_per_pixel()
        )));
    }
    if px.number_of_frames() != 1 {
        return Err(bad(format!(
            "has {} frames; Ward reads single-frame images (one file per slice)",
            px.number_of_frames()
        )));
    }
    let (rows, columns) = (px.rows() as usize, px.columns() as usize);
    let values: Vec<f32> =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| px.to_vec::<f32>()))
            .map_err(|p| {
                bad(format!(
                    "pixel data encoded as {encoding} are corrupt (the converter failed: {})",
                    panic_message(p.as_ref())
                ))
            })?
            .map_err(|e| {
                bad(format!(
                    "pixel values ({} bits allocated, {encoding}) cannot be converted: {e}",
                    px.bits_allocated()
                ))
            })?;
    if values.len() != rows * columns {
        return Err(bad(format!(
            "pixel data hold {} values, but {rows} x {columns} pixels are declared",
            values.len()
        )));
    }
    let window = match px.window() {
        Ok(Some(w)) if !w.is_empty() => {
            let f = match px.voi_lut_function() {
                Ok(Some(f)) if !f.is_empty() => f[0],
                _ => VoiLutFunction::Linear,
            };
            Some((w[0].center, w[0].width, f))
        }
        _ => None,
    };
    Ok(Frame {
        rows,
        columns,
        values,
        monochrome1: photometric == PhotometricInterpretation::Monochrome1,
        window,
        sop_instance_uid: text(&obj, tags::SOP_INSTANCE_UID),
        series_instance_uid: text(&obj, tags::SERIES_INSTANCE_UID),
        instance_number: text(&obj, tags::INSTANCE_NUMBER).and_then(|s| s.parse().ok()),
        position: floats(&obj, tags::IMAGE_POSITION_PATIENT),
        orientation: floats(&obj, tags::IMAGE_ORIENTATION_PATIENT),
    })
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

/// Maps the values of `frames` (one image, or one series) onto `[0, 1]` in place.
fn map_values(
    path: &Path,
    frames: &mut [Frame],
    intensity: DicomIntensity,
) -> Result<(), DataError> {
    let bad = |m: String| DataError::file(path, m);
    match intensity {
        DicomIntensity::FileWindow | DicomIntensity::Window { .. } => {
            for f in frames.iter_mut() {
                let (c, w, func) = match intensity {
                    DicomIntensity::Window { center, width } => {
                        (center, width, VoiLutFunction::Linear)
                    }
                    _ => f.window.ok_or_else(|| {
                        bad("has no Window Center/Width; pass a window or use min-max".into())
                    })?,
                };
                let min_width = if func == VoiLutFunction::Linear {
                    1.0
                } else {
                    0.0
                };
                if !(w >= min_width && w.is_finite() && c.is_finite()) {
                    return Err(bad(format!("window center {c}, width {w} is not usable")));
                }
                for v in &mut f.values {
                    *v = window_value(f64::from(*v), c, w, func);
                }
            }
        }
        DicomIntensity::MinMax | DicomIntensity::Range { .. } => {
            let mapping = match intensity {
                DicomIntensity::Range { low, high } => Intensity::Range { low, high },
                _ => Intensity::MinMax,
            };
            if frames.len() == 1 {
                mapping.apply(&mut frames[0].values).map_err(bad)?;
            } else {
                let mut all: Vec<f32> = frames
                    .iter()
                    .flat_map(|f| f.values.iter().copied())
                    .collect();
                mapping.apply(&mut all).map_err(bad)?;
                let mut rest = all.as_slice();
                for f in frames.iter_mut() {
                    let (head, tail) = rest.split_at(f.values.len());
                    f.values.copy_from_slice(head);
                    rest = tail;
                }
            }
        }
    }
    for f in frames.iter_mut().filter(|f| f.monochrome1) {
        for v in &mut f.values {
            *v = 1.0 - *v;
        }
    }
    Ok(())
}

/// Reads one single-frame monochrome DICOM file and maps it onto `[0, 1]`.
///
/// # Shapes
/// `pixels`: `rows x columns`.
///
/// # Errors
/// [`DataError::File`] naming the file: not DICOM, truncated, no pixel data, a transfer
/// syntax without a decoder here (naming its UID and name), colour or multi-frame,
/// [`DicomIntensity::FileWindow`] without a window in the file.
pub fn read_dicom_file(path: &Path, intensity: DicomIntensity) -> Result<DicomImage, DataError> {
    check_intensity(intensity)?;
    let mut frames = [read_frame(path)?];
    map_values(path, &mut frames, intensity)?;
    let [f] = frames;
    Ok(DicomImage {
        rows: f.rows,
        columns: f.columns,
        pixels: f.values,
        sop_instance_uid: f.sop_instance_uid,
    })
}

/// Sorts a series' frames along the slice normal (Image Position/Orientation Patient),
/// or by Instance Number when positions are missing.
fn sort_series(
    dir: &Path,
    frames: Vec<(PathBuf, Frame)>,
) -> Result<Vec<(PathBuf, Frame)>, DataError> {
    let bad = |m: String| DataError::file(dir, m);
    let by_position = frames
        .iter()
        .all(|(_, f)| f.position.is_some() && f.orientation.is_some());
    let keys: Vec<f64> = if by_position {
        let o = frames[0].1.orientation.unwrap_or_default();
        let normal = [
            o[1] * o[5] - o[2] * o[4],
            o[2] * o[3] - o[0] * o[5],
            o[0] * o[4] - o[1] * o[3],
        ];
        frames
            .iter()
            .map(|(_, f)| {
                let p = f.position.unwrap_or_default();
                p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2]
            })
            .collect()
    } else if frames.iter().all(|(_, f)| f.instance_number.is_some()) {
        frames
            .iter()
            .map(|(_, f)| f.instance_number.unwrap_or_default() as f64)
            .collect()
    } else {
        return Err(bad(
            "cannot order the slices: some files lack both Image Position/Orientation (Patient) and Instance Number"
                .into(),
        ));
    };
    let mut order: Vec<usize> = (0..frames.len()).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    if let Some(w) = order.windows(2).find(|w| keys[w[0]] == keys[w[1]]) {
        return Err(bad(format!(
            "{} and {} are at the same slice position ({}); is this one series?",
            frames[w[0]].0.display(),
            frames[w[1]].0.display(),
            keys[w[0]]
        )));
    }
    let mut keyed: Vec<(f64, (PathBuf, Frame))> = keys.into_iter().zip(frames).collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(keyed.into_iter().map(|(_, f)| f).collect())
}

/// Reads the DICOM files of one series folder (not recursing; hidden files and
/// `DICOMDIR` ignored), orders them along the slice normal (Image Position/Orientation
/// Patient; Instance Number when positions are missing) and stacks them.
///
/// # Shapes
/// `voxels`: `depth x height x width`, `depth` = number of files.
///
/// # Errors
/// [`DataError::File`] naming the bad slice file (see [`read_dicom_file`]) or the folder:
/// empty, slices of different sizes or series, slices that cannot be ordered.
pub fn read_dicom_volume(dir: &Path, intensity: DicomIntensity) -> Result<DicomVolume, DataError> {
    check_intensity(intensity)?;
    let bad = |m: String| DataError::file(dir, m);
    if !dir.is_dir() {
        return Err(bad(
            "is not a folder (a series is a folder of DICOM files)".into()
        ));
    }
    let mut frames = Vec::new();
    for p in list_dir(dir)? {
        if p.is_dir() || p.file_name().is_some_and(|n| n == "DICOMDIR") {
            continue;
        }
        let f = read_frame(&p)?;
        frames.push((p, f));
    }
    let Some((first_path, first)) = frames.first() else {
        return Err(bad("holds no DICOM file".into()));
    };
    for (p, f) in &frames[1..] {
        if (f.rows, f.columns) != (first.rows, first.columns) {
            return Err(DataError::file(
                p,
                format!(
                    "is {} x {}, but {} is {} x {}: slices of one series must agree",
                    f.rows,
                    f.columns,
                    first_path.display(),
                    first.rows,
                    first.columns
                ),
            ));
        }
        if f.series_instance_uid != first.series_instance_uid {
            return Err(DataError::file(
                p,
                format!(
                    "belongs to series {:?}, but {} to {:?}: one folder per series",
                    f.series_instance_uid,
                    first_path.display(),
                    first.series_instance_uid
                ),
            ));
        }
    }
    let frames = sort_series(dir, frames)?;
    let (height, width) = (frames[0].1.rows, frames[0].1.columns);
    let mut only: Vec<Frame> = Vec::with_capacity(frames.len());
    let mut files = Vec::with_capacity(frames.len());
    for (p, f) in frames {
        files.push(p);
        only.push(f);
    }
    map_values(dir, &mut only, intensity)?;
    let voxels = only.into_iter().flat_map(|f| f.values).collect();
    Ok(DicomVolume {
        depth: files.len(),
        height,
        width,
        voxels,
        files,
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

/// Reads labelled DICOM series, one folder per series, one series at a time.
///
/// The label CSV has `file` (series folders relative to `root`) and `label`. Each
/// series is stacked by [`read_dicom_volume`] (so [`DicomIntensity::MinMax`] is per
/// volume) and resized to `depth x height x width`.
///
/// # Shapes
/// `N x 1 x depth x height x width`.
///
/// # Errors
/// The CSV's errors; under [`BadFile::Fail`] the first bad series (naming the folder or
/// the slice file and the reason); under [`BadFile::Skip`] bad series are listed in
/// [`Loaded::skipped`] with their folder.
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
        let dir = root.join(&row.key);
        if let Some(v) = triage.check(&dir, read_dicom_volume(&dir, options.intensity))? {
            let px = resize(
                &v.voxels,
                [v.depth, v.height, v.width],
                [options.depth, options.height, options.width],
                options.resample,
            );
            out.push(&px, &row.labels, dir.display().to_string());
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
}
