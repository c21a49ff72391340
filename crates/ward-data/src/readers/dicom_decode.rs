//! One DICOM file decoded into frames, before any mapping onto `[0, 1]`.
//!
//! For every frame: the stored values (masked to Bits Stored and sign-extended, as
//! dicom-rs's own LUTs do), the padding mask (Pixel Padding Value and Range Limit compare
//! with **stored** values, PS3.3 C.7.5.1.1.2), the modality values (Rescale
//! Slope/Intercept; per frame from the Pixel Value Transformation Sequence in enhanced
//! files; RT Dose's Dose Grid Scaling as the slope), the VOI transforms (windows and VOI
//! LUT tables, per frame from the Frame VOI LUT Sequence in enhanced files) and the plane
//! (per frame from the Plane Position/Orientation and Pixel Measures Sequences in
//! enhanced files; from Image Position plus the Grid Frame Offset Vector in classic
//! multi-frame files). VOI and plane problems are kept per frame and reported only by
//! the readers that need them (a 2D reader never needs a plane).

use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::mem::InMemElement;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::{
    DecodedPixelData, PhotometricInterpretation, PixelDecoder, PixelRepresentation, VoiLutFunction,
};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::dicom_geometry::Plane;
use crate::error::DataError;

/// A decoded file.
pub(crate) struct DicomFile {
    /// Rows of every frame.
    pub(crate) rows: usize,
    /// Columns of every frame.
    pub(crate) columns: usize,
    /// The frames in file order.
    pub(crate) frames: Vec<Frame>,
    /// SOP Instance UID, when present.
    pub(crate) sop_instance_uid: Option<String>,
    /// Series Instance UID, when present.
    pub(crate) series_instance_uid: Option<String>,
}

/// One frame (the only one of a single-frame file).
pub(crate) struct Frame {
    /// The file it comes from.
    pub(crate) path: PathBuf,
    /// 0-based frame number in a multi-frame file; `None` in a single-frame file.
    pub(crate) number: Option<usize>,
    /// `rows x columns` modality values (after Rescale Slope/Intercept), row-major.
    pub(crate) values: Vec<f32>,
    /// Which values are padding; empty when the file declares no Pixel Padding Value.
    pub(crate) padded: Vec<bool>,
    /// MONOCHROME1 (inverted after the mapping onto `[0, 1]`).
    pub(crate) monochrome1: bool,
    /// The file's windows and VOI LUT tables for this frame, or why they are unusable.
    pub(crate) voi: Result<Voi, String>,
    /// Where the frame sits, or why that is unknown.
    pub(crate) plane: Result<Plane, String>,
}

impl Frame {
    /// An error about this frame, naming the file (and the 1-based frame number).
    pub(crate) fn error(&self, message: impl std::fmt::Display) -> DataError {
        match self.number {
            Some(f) => DataError::file(&self.path, format!("frame {}: {message}", f + 1)),
            None => DataError::file(&self.path, message.to_string()),
        }
    }

    /// The frame in messages about a stack: the file name, or `frame N` (1-based).
    pub(crate) fn name(&self) -> String {
        match self.number {
            Some(f) => format!("frame {}", f + 1),
            None => self.path.file_name().map_or_else(
                || self.path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
        }
    }
}

/// The VOI transforms a file offers for one frame (DICOM PS3.3 C.11.2).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Voi {
    /// Window Center/Width pairs.
    pub(crate) windows: Vec<(f64, f64)>,
    /// VOI LUT Function of the windows (LINEAR when absent).
    pub(crate) function: VoiLutFunction,
    /// VOI LUT Sequence tables.
    pub(crate) luts: Vec<VoiTable>,
}

/// One VOI LUT (PS3.3 C.11.2.1.1): modality values from `first` on index `data`, values
/// below map to the first entry, values past the end to the last; the output
/// `0..=2^bits - 1` maps onto `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct VoiTable {
    first: f64,
    max: f64,
    data: Vec<f64>,
}

impl VoiTable {
    /// The table's output for modality value `x`, in `[0, 1]` (non-integer inputs take
    /// the nearest entry).
    pub(crate) fn apply(&self, x: f64) -> f32 {
        let last = (self.data.len() - 1) as f64;
        let index = (x - self.first).round().clamp(0.0, last) as usize;
        (self.data[index] / self.max).clamp(0.0, 1.0) as f32
    }
}

fn text(e: Option<&InMemElement>) -> Option<String> {
    e.and_then(|e| e.to_str().ok())
        .map(|s| {
            s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_owned()
        })
        .filter(|s| !s.is_empty())
}

/// The numbers of a (decimal string or binary) attribute; `None` when absent or empty.
fn numbers(e: Option<&InMemElement>, name: &str) -> Result<Option<Vec<f64>>, String> {
    let Some(e) = e else { return Ok(None) };
    // An empty (type 2) attribute is as good as absent.
    if e.to_str()
        .is_ok_and(|s| s.trim_matches(['\0', ' ']).is_empty())
    {
        return Ok(None);
    }
    let v = e
        .to_multi_float64()
        .map_err(|err| format!("{name} is not a list of numbers: {err}"))?;
    if v.is_empty() {
        return Ok(None);
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(format!("{name} {v:?} is not finite"));
    }
    Ok(Some(v))
}

/// Exactly `N` numbers, or `None` when absent.
fn fixed<const N: usize>(e: Option<&InMemElement>, name: &str) -> Result<Option<[f64; N]>, String> {
    numbers(e, name)?
        .map(|v| {
            let n = v.len();
            <[f64; N]>::try_from(v).map_err(|_| format!("{name} has {n} values, needs {N}"))
        })
        .transpose()
}

fn scalar(e: Option<&InMemElement>, name: &str) -> Result<Option<f64>, String> {
    Ok(fixed::<1>(e, name)?.map(|[v]| v))
}

/// A US-or-SS value as the Pixel Representation says (PS3.3: such values take the
/// pixel data's signedness; a reader may have parsed them with the other one).
fn us_or_ss(v: i64, signed: bool) -> i64 {
    if signed && (32768..65536).contains(&v) {
        v - 65536
    } else if !signed && (-32768..0).contains(&v) {
        v + 65536
    } else {
        v
    }
}

/// The functional groups of an enhanced multi-frame file, with the top level as the
/// fallback for classic files.
struct Groups<'a> {
    top: &'a InMemDicomObject,
    shared: Option<&'a InMemDicomObject>,
    per_frame: Option<&'a [InMemDicomObject]>,
}

impl<'a> Groups<'a> {
    fn new(obj: &'a DefaultDicomObject, frames: usize) -> Result<Self, String> {
        let top: &InMemDicomObject = obj;
        let per_frame = top
            .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
            .and_then(|e| e.items());
        if let Some(p) = per_frame
            && p.len() != frames
        {
            return Err(format!(
                "Per-frame Functional Groups Sequence has {} items for {frames} frames",
                p.len()
            ));
        }
        let shared = top
            .get(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)
            .and_then(|e| e.items())
            .and_then(<[_]>::first);
        Ok(Self {
            top,
            shared,
            per_frame,
        })
    }

    fn enhanced(&self) -> bool {
        self.per_frame.is_some()
    }

    /// `tag` for frame `f`: inside macro `seq` of the frame's per-frame functional group,
    /// else of the shared one, else at the top level.
    fn get(&self, f: usize, seq: Tag, tag: Tag) -> Option<&'a InMemElement> {
        let inside = |item: &'a InMemDicomObject| item.get(seq)?.items()?.first()?.get(tag);
        self.per_frame
            .and_then(|p| inside(&p[f]))
            .or_else(|| self.shared.and_then(inside))
            .or_else(|| self.top.get(tag))
    }
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

/// The first `count` stored values, masked to Bits Stored and sign-extended when the
/// Pixel Representation is signed.
fn stored_values(px: &DecodedPixelData<'_>, count: usize) -> Result<Vec<i64>, String> {
    let (allocated, stored) = (px.bits_allocated(), px.bits_stored());
    let signed = px.pixel_representation() == PixelRepresentation::Signed;
    let bytes = match allocated {
        8 => 1,
        16 => 2,
        32 => 4,
        _ => {
            return Err(format!(
                "{allocated} bits allocated: Ward reads 8, 16 or 32-bit pixels"
            ));
        }
    };
    if stored == 0 || stored > allocated {
        return Err(format!(
            "Bits Stored {stored} does not fit Bits Allocated {allocated}"
        ));
    }
    let data = px.data();
    if data.len() < count * bytes {
        return Err(format!(
            "pixel data hold {} bytes, but {count} samples of {bytes} bytes are declared",
            data.len()
        ));
    }
    let mask = (1u64 << stored) - 1;
    let half = 1u64 << (stored - 1);
    Ok(data
        .chunks_exact(bytes)
        .take(count)
        .map(|c| {
            let raw = match c {
                [a] => u64::from(*a),
                [a, b] => u64::from(u16::from_ne_bytes([*a, *b])),
                [a, b, d, e] => u64::from(u32::from_ne_bytes([*a, *b, *d, *e])),
                _ => 0,
            };
            let v = raw & mask;
            if signed && v >= half {
                v as i64 - (1i64 << stored)
            } else {
                v as i64
            }
        })
        .collect())
}

/// The padded range of stored values, `[min, max]` of Pixel Padding Value and Pixel
/// Padding Range Limit (the value alone when there is no limit).
fn padding_range(top: &InMemDicomObject, signed: bool) -> Result<Option<(i64, i64)>, String> {
    let int = |tag: Tag, name: &str| -> Result<Option<i64>, String> {
        let Some(e) = top.get(tag) else {
            return Ok(None);
        };
        let v: Vec<i64> = e
            .to_multi_int()
            .map_err(|err| format!("{name} is not an integer: {err}"))?;
        Ok(v.first().map(|&v| us_or_ss(v, signed)))
    };
    let Some(value) = int(tags::PIXEL_PADDING_VALUE, "Pixel Padding Value (0028,0120)")? else {
        return Ok(None);
    };
    let limit = int(
        tags::PIXEL_PADDING_RANGE_LIMIT,
        "Pixel Padding Range Limit (0028,0121)",
    )?
    .unwrap_or(value);
    Ok(Some((value.min(limit), value.max(limit))))
}

/// One VOI LUT Sequence item.
fn voi_table(item: &InMemDicomObject, signed: bool, n: usize) -> Result<VoiTable, String> {
    let bad = |m: String| format!("VOI LUT Sequence item {n}: {m}");
    let descriptor: Vec<i64> = item
        .get(tags::LUT_DESCRIPTOR)
        .ok_or_else(|| bad("has no LUT Descriptor (0028,3002)".into()))?
        .to_multi_int()
        .map_err(|e| bad(format!("LUT Descriptor is not three integers: {e}")))?;
    let [entries, first, bits] = <[i64; 3]>::try_from(descriptor.clone())
        .map_err(|_| bad(format!("LUT Descriptor {descriptor:?} needs 3 values")))?;
    // The number of entries is unsigned, 0 meaning 65536 (PS3.3 C.11.1.1.1).
    let entries = match us_or_ss(entries, false) {
        0 => 65536,
        e => e as usize,
    };
    if !(8..=16).contains(&bits) {
        return Err(bad(format!(
            "LUT Descriptor gives {bits} bits per entry; PS3.3 allows 8 to 16"
        )));
    }
    let data: Vec<i64> = item
        .get(tags::LUT_DATA)
        .ok_or_else(|| bad("has no LUT Data (0028,3006)".into()))?
        .to_multi_int()
        .map_err(|e| bad(format!("LUT Data are not integers: {e}")))?;
    if data.len() != entries {
        return Err(bad(format!(
            "LUT Data hold {} entries, the LUT Descriptor declares {entries}",
            data.len()
        )));
    }
    Ok(VoiTable {
        first: us_or_ss(first, signed) as f64,
        max: ((1u64 << bits) - 1) as f64,
        data: data.into_iter().map(|v| v as f64).collect(),
    })
}

/// The windows and VOI LUT tables of frame `f`.
fn voi(g: &Groups<'_>, f: usize, signed: bool) -> Result<Voi, String> {
    let seq = tags::FRAME_VOILUT_SEQUENCE;
    let centers = numbers(
        g.get(f, seq, tags::WINDOW_CENTER),
        "Window Center (0028,1050)",
    )?
    .unwrap_or_default();
    let widths = numbers(
        g.get(f, seq, tags::WINDOW_WIDTH),
        "Window Width (0028,1051)",
    )?
    .unwrap_or_default();
    if centers.len() != widths.len() {
        return Err(format!(
            "Window Center has {} values but Window Width {}",
            centers.len(),
            widths.len()
        ));
    }
    let function = match text(g.get(f, seq, tags::VOILUT_FUNCTION)).as_deref() {
        None | Some("LINEAR") => VoiLutFunction::Linear,
        Some("LINEAR_EXACT") => VoiLutFunction::LinearExact,
        Some("SIGMOID") => VoiLutFunction::Sigmoid,
        Some(other) => {
            return Err(format!(
                "VOI LUT Function {other:?} is not LINEAR, LINEAR_EXACT or SIGMOID"
            ));
        }
    };
    let luts = match g.get(f, seq, tags::VOILUT_SEQUENCE).and_then(|e| e.items()) {
        Some(items) => items
            .iter()
            .enumerate()
            .map(|(n, item)| voi_table(item, signed, n))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    Ok(Voi {
        windows: centers.into_iter().zip(widths).collect(),
        function,
        luts,
    })
}

/// The plane of frame `f` of `frames`; `offsets` is the classic multi-frame Grid Frame
/// Offset Vector.
fn plane(
    g: &Groups<'_>,
    f: usize,
    frames: usize,
    offsets: &Result<Option<Vec<f64>>, String>,
) -> Result<Plane, String> {
    let position = fixed::<3>(
        g.get(
            f,
            tags::PLANE_POSITION_SEQUENCE,
            tags::IMAGE_POSITION_PATIENT,
        ),
        "Image Position (Patient) (0020,0032)",
    )?
    .ok_or("has no Image Position (Patient) (0020,0032)")?;
    let orientation = fixed::<6>(
        g.get(
            f,
            tags::PLANE_ORIENTATION_SEQUENCE,
            tags::IMAGE_ORIENTATION_PATIENT,
        ),
        "Image Orientation (Patient) (0020,0037)",
    )?
    .ok_or("has no Image Orientation (Patient) (0020,0037)")?;
    let measures = tags::PIXEL_MEASURES_SEQUENCE;
    let spacing = fixed::<2>(
        g.get(f, measures, tags::PIXEL_SPACING),
        "Pixel Spacing (0028,0030)",
    )?
    .ok_or("has no Pixel Spacing (0028,0030)")?;
    let thickness = match scalar(
        g.get(f, measures, tags::SPACING_BETWEEN_SLICES),
        "Spacing Between Slices (0018,0088)",
    )? {
        Some(t) => Some(t),
        None => scalar(
            g.get(f, measures, tags::SLICE_THICKNESS),
            "Slice Thickness (0018,0050)",
        )?,
    };
    let mut plane = Plane::new(position, orientation, spacing, thickness)?;
    if frames > 1 && !g.enhanced() {
        // PS3.3 C.8.8.3.2: offsets along the normal from the first frame's plane (the
        // first offset is 0, or the first frame's own coordinate).
        let offsets = offsets.clone()?.ok_or(
            "is a multi-frame file without per-frame positions (no Per-frame Functional \
             Groups Sequence, no Grid Frame Offset Vector): its frames cannot be placed",
        )?;
        if offsets.len() != frames {
            return Err(format!(
                "Grid Frame Offset Vector has {} values for {frames} frames",
                offsets.len()
            ));
        }
        let (d, n) = (offsets[f] - offsets[0], plane.normal());
        for (p, n) in plane.position.iter_mut().zip(n) {
            *p += d * n;
        }
    }
    Ok(plane)
}

/// Opens and decodes one file (dicom-rs codecs can panic on corrupt data: such a panic
/// becomes this file's error).
fn open(path: &Path) -> Result<(DefaultDicomObject, DecodedPixelData<'static>), DataError> {
    let bad = |m: String| DataError::file(path, m);
    let obj = OpenFileOptions::new()
        .open_file(path)
        .map_err(|e| bad(format!("not a readable DICOM file: {e}")))?;
    let encoding = check_transfer_syntax(path, &obj)?;
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(bad("holds no Pixel Data (7FE0,0010): not an image".into()));
    }
    let px = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        obj.decode_pixel_data().map(|p| p.to_owned())
    }))
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
    Ok((obj, px))
}

/// Reads and decodes one DICOM file (any number of frames).
///
/// # Errors
/// [`DataError::File`] naming the file: not DICOM, truncated, no pixel data, an encoding
/// without a decoder here, colour, a Modality LUT Sequence, unusable rescale or padding
/// attributes.
pub(crate) fn read_file(path: &Path) -> Result<DicomFile, DataError> {
    let bad = |m: String| DataError::file(path, m);
    let (obj, px) = open(path)?;
    let photometric = px.photometric_interpretation().clone();
    if !photometric.is_monochrome() || px.samples_per_pixel() != 1 {
        return Err(bad(format!(
            "photometric interpretation {photometric} with {} samples per pixel: \
             Ward reads monochrome (MONOCHROME1/2) images only",
            px.samples_per_pixel()
        )));
    }
    if obj.get(tags::MODALITY_LUT_SEQUENCE).is_some() {
        return Err(bad(
            "has a Modality LUT Sequence (0028,3000), which Ward does not apply (it applies \
             Rescale Slope/Intercept only)"
                .into(),
        ));
    }
    let (rows, columns) = (px.rows() as usize, px.columns() as usize);
    let n = px.number_of_frames() as usize;
    if rows == 0 || columns == 0 || n == 0 {
        return Err(bad(format!(
            "declares {rows} rows, {columns} columns and {n} frames: no pixels"
        )));
    }
    let signed = px.pixel_representation() == PixelRepresentation::Signed;
    let stored = stored_values(&px, n * rows * columns).map_err(bad)?;
    let g = Groups::new(&obj, n).map_err(bad)?;
    let padding = padding_range(g.top, signed).map_err(bad)?;
    let offsets = numbers(
        g.top.get(tags::GRID_FRAME_OFFSET_VECTOR),
        "Grid Frame Offset Vector (3004,000C)",
    );
    let dose_scaling = scalar(
        g.top.get(tags::DOSE_GRID_SCALING),
        "Dose Grid Scaling (3004,000E)",
    )
    .map_err(bad)?;
    let mut frames = Vec::with_capacity(n);
    for (f, stored) in stored.chunks_exact(rows * columns).enumerate() {
        let number = (n > 1).then_some(f);
        let frame_bad = |m: String| match number {
            Some(f) => bad(format!("frame {}: {m}", f + 1)),
            None => bad(m),
        };
        let pvt = tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE;
        let slope = scalar(
            g.get(f, pvt, tags::RESCALE_SLOPE),
            "Rescale Slope (0028,1053)",
        )
        .map_err(frame_bad)?
        .or(dose_scaling)
        .unwrap_or(1.0);
        let intercept = scalar(
            g.get(f, pvt, tags::RESCALE_INTERCEPT),
            "Rescale Intercept (0028,1052)",
        )
        .map_err(frame_bad)?
        .unwrap_or(0.0);
        frames.push(Frame {
            path: path.to_path_buf(),
            number,
            values: stored
                .iter()
                .map(|&s| (s as f64 * slope + intercept) as f32)
                .collect(),
            padded: padding.map_or_else(Vec::new, |(lo, hi)| {
                stored.iter().map(|s| (lo..=hi).contains(s)).collect()
            }),
            monochrome1: photometric == PhotometricInterpretation::Monochrome1,
            voi: voi(&g, f, signed),
            plane: plane(&g, f, n, &offsets),
        });
    }
    let top_text = |tag| text(g.top.get(tag));
    Ok(DicomFile {
        rows,
        columns,
        frames,
        sop_instance_uid: top_text(tags::SOP_INSTANCE_UID),
        series_instance_uid: top_text(tags::SERIES_INSTANCE_UID),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voi_table_clamps_and_scales_by_its_bits() {
        // PS3.3 C.11.2.1.1: inputs below the first mapped value take the first entry,
        // inputs past the end the last; 8-bit output over 255.
        let t = VoiTable {
            first: -10.0,
            max: 255.0,
            data: vec![0.0, 51.0, 255.0],
        };
        assert_eq!(
            [-100.0, -10.0, -9.0, -8.0, 50.0].map(|x| t.apply(x)),
            [0.0, 0.0, 0.2, 1.0, 1.0]
        );
    }

    #[test]
    fn us_or_ss_follows_the_pixel_representation() {
        assert_eq!(us_or_ss(63536, true), -2000);
        assert_eq!(us_or_ss(-2000, true), -2000);
        assert_eq!(us_or_ss(-2000, false), 63536);
        assert_eq!(us_or_ss(1000, false), 1000);
    }
}
