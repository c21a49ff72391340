//! MedMNIST-layout `.npz` files: the reader (as a researcher downloads them from
//! MedMNIST) and the writer (`ward data synth`).
//!
//! A file holds `train_images`, `train_labels`, `test_images`, `test_labels` and
//! optionally `val_images`, `val_labels`. Images are `(N, H, W)` or `(N, H, W, C)` for 2D,
//! `(N, D, H, W)` for 3D; `uint8` (divided by 255), `uint16` (divided by 65535), or
//! `float32`/`float64` already in `[0, 1]`. Labels are `(N, 1)` (or `(N,)`) class indices
//! for multi-class and binary tasks, `(N, L)` 0/1 for multi-label tasks, in any integer
//! type. The experiment states the task and the dimensionality: a file that disagrees is
//! an error naming the file, the array and the shapes — the reader never guesses.
//!
//! The archive is read with the `zip` crate (stored and deflated members, as `np.savez`
//! and `np.savez_compressed` write them) and each member with `npyz::NpyFile`. Arrays are
//! read one at a time, straight from the zip entry, so memory holds one array's raw values
//! plus the converted images. Every member is read to its end, so the zip checksum is
//! checked: a flipped byte is an error naming the file and the member, never wrong pixels.

use std::io::{Cursor, Read, Seek};
use std::path::Path;

use npyz::WriterBuilder;
use zip::ZipArchive;
use zip::result::ZipError;

use crate::error::DataError;
use crate::image::{ImageSet, ImageShape, ImageTask};

/// The three splits of a MedMNIST file (`val` is empty when the file has none).
#[derive(Debug, Clone, PartialEq)]
pub struct NpzSplits {
    /// `train_*`.
    pub train: ImageSet,
    /// `val_*` (may be empty).
    pub val: ImageSet,
    /// `test_*`.
    pub test: ImageSet,
}

fn err(path: &Path, msg: impl Into<String>) -> DataError {
    DataError::file(path, msg)
}

/// Raw values of one array, converted to `f64`-free forms we need.
enum Values {
    U8(Vec<u8>),
    U16(Vec<u16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

/// The zip member that holds array `name` (numpy's naming: `name.npy`).
fn member_name(name: &str) -> String {
    npyz::npz::file_name_from_array_name(name)
}

/// The array names in the archive (members ending in `.npy`), for messages.
fn array_names<R: Read + Seek>(archive: &ZipArchive<R>) -> Vec<String> {
    archive
        .file_names()
        .filter_map(npyz::npz::array_name_from_file_name)
        .map(str::to_owned)
        .collect()
}

/// The longest `.npy` header accepted (numpy's own reader refuses headers over 10,000
/// bytes unless told otherwise).
const MAX_NPY_HEADER: usize = 1 << 16;

/// Reads the `.npy` header (magic, version, length, dict text) of one member and returns
/// its bytes, to be handed on to `npyz`. Checks first what `npyz` would otherwise
/// overflow on: a header length past [`MAX_NPY_HEADER`] and a shape whose element count
/// (or any partial product of its dimensions) does not fit in `u64`.
fn npy_header(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let mut head = vec![0u8; 10];
    r.read_exact(&mut head[..8])?;
    if &head[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy array (bad magic)".into()));
    }
    let len = match head[6] {
        1 => {
            r.read_exact(&mut head[8..10])?;
            usize::from(u16::from_le_bytes([head[8], head[9]]))
        }
        2 | 3 => {
            head.resize(12, 0);
            r.read_exact(&mut head[8..12])?;
            u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize
        }
        v => return Err(bad(format!(".npy format version {v} is not supported"))),
    };
    if len > MAX_NPY_HEADER {
        return Err(bad(format!(
            ".npy header of {len} bytes (at most {MAX_NPY_HEADER} accepted)"
        )));
    }
    let at = head.len();
    head.resize(at + len, 0);
    r.read_exact(&mut head[at..])?;
    let text = String::from_utf8_lossy(&head[at..]);
    if let Some(dims) = shape_dims(&text)
        && dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d.max(1)))
            .is_none()
    {
        return Err(bad(format!(
            "shape {dims:?} has more elements than fit in 64 bits"
        )));
    }
    Ok(head)
}

/// The dimensions of the `'shape': (..)` entry of a `.npy` header, when they are plain
/// integers; `None` otherwise (then `npyz` judges the header).
fn shape_dims(header: &str) -> Option<Vec<u64>> {
    let key = header
        .find("'shape'")
        .or_else(|| header.find("\"shape\""))?;
    let rest = &header[key + "'shape'".len()..];
    let open = rest.find(['(', '['])?;
    let close = rest[open..].find([')', ']'])? + open;
    rest[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<u64>().ok())
        .collect()
}

fn read_array<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    path: &Path,
    name: &str,
) -> Result<Option<(Vec<u64>, Values)>, DataError> {
    let member = member_name(name);
    let mut file = match archive.by_name(&member) {
        Ok(f) => f,
        Err(ZipError::FileNotFound) => return Ok(None),
        Err(e) => {
            return Err(err(
                path,
                format!("member {member:?} (array {name:?}) cannot be read: {e}"),
            ));
        }
    };
    let size = file.size();
    let bad = |e: std::io::Error| {
        err(
            path,
            format!("member {member:?} (array {name:?}) is truncated or corrupt: {e}"),
        )
    };
    let header = npy_header(&mut file).map_err(bad)?;
    let data_bytes = size.saturating_sub(header.len() as u64);
    let npy = npyz::NpyFile::new(Cursor::new(header).chain(&mut file)).map_err(bad)?;
    let shape = npy.shape().to_vec();
    if npy.order() == npyz::Order::Fortran && shape.len() > 1 {
        return Err(err(
            path,
            format!("array {name:?} is in Fortran order; save it in C order (numpy's default)"),
        ));
    }
    // Fixed-size dtypes only (an object array is refused by dtype below).
    if let Some(item) = npy.dtype().num_bytes() {
        let needed = npy.len().checked_mul(item as u64);
        if needed.is_none_or(|b| b > data_bytes) {
            return Err(err(
                path,
                format!(
                    "member {member:?} (array {name:?}) is truncated or corrupt: shape {shape:?} of {} needs {} bytes, the member holds {data_bytes}",
                    npy.dtype().descr(),
                    needed.map_or_else(|| "more than 2^64".into(), |b| b.to_string())
                ),
            ));
        }
    }
    let descr = npy.dtype().descr();
    let values = match descr.trim_matches('\'').trim_start_matches(['<', '|', '=']) {
        "u1" => Values::U8(npy.into_vec::<u8>().map_err(bad)?),
        "u2" => Values::U16(npy.into_vec::<u16>().map_err(bad)?),
        "f4" => Values::F32(npy.into_vec::<f32>().map_err(bad)?),
        "f8" => Values::F64(npy.into_vec::<f64>().map_err(bad)?),
        "i1" => Values::I64(
            npy.into_vec::<i8>()
                .map_err(bad)?
                .into_iter()
                .map(i64::from)
                .collect(),
        ),
        "i2" => Values::I64(
            npy.into_vec::<i16>()
                .map_err(bad)?
                .into_iter()
                .map(i64::from)
                .collect(),
        ),
        "i4" => Values::I64(
            npy.into_vec::<i32>()
                .map_err(bad)?
                .into_iter()
                .map(i64::from)
                .collect(),
        ),
        "i8" => Values::I64(npy.into_vec::<i64>().map_err(bad)?),
        "u4" => Values::I64(
            npy.into_vec::<u32>()
                .map_err(bad)?
                .into_iter()
                .map(i64::from)
                .collect(),
        ),
        "b1" => Values::I64(
            npy.into_vec::<bool>()
                .map_err(bad)?
                .into_iter()
                .map(i64::from)
                .collect(),
        ),
        other => {
            return Err(err(
                path,
                format!(
                    "array {name:?} has dtype {other:?}; images must be uint8, uint16, float32 or float64, labels integers"
                ),
            ));
        }
    };
    // Read the member to its end: the zip checksum is checked there.
    std::io::copy(&mut file, &mut std::io::sink()).map_err(bad)?;
    let n: u64 = shape.iter().product();
    let len = match &values {
        Values::U8(v) => v.len(),
        Values::U16(v) => v.len(),
        Values::F32(v) => v.len(),
        Values::F64(v) => v.len(),
        Values::I64(v) => v.len(),
    };
    if len as u64 != n {
        return Err(err(
            path,
            format!("array {name:?} holds {len} values but its shape {shape:?} needs {n}"),
        ));
    }
    Ok(Some((shape, values)))
}

fn image_shape(
    path: &Path,
    name: &str,
    shape: &[u64],
    is_3d: bool,
) -> Result<(usize, ImageShape), DataError> {
    let s: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let got = match (is_3d, &s[..]) {
        (false, &[n, h, w]) => Some((n, ImageShape::d2(1, h, w))),
        (false, &[n, h, w, c]) if c == 1 || c == 3 => Some((n, ImageShape::d2(c, h, w))),
        (true, &[n, d, h, w]) => Some((n, ImageShape::d3(1, d, h, w))),
        (true, &[n, d, h, w, c]) if c == 1 || c == 3 => Some((n, ImageShape::d3(c, d, h, w))),
        _ => None,
    };
    match got {
        Some((n, shape)) if !shape.is_empty() => Ok((n, shape)),
        _ => Err(err(
            path,
            format!(
                "array {name:?} has shape {s:?}, but the experiment says {}: expected {}",
                if is_3d { "3d" } else { "2d" },
                if is_3d {
                    "(N, D, H, W) or (N, D, H, W, C)"
                } else {
                    "(N, H, W) or (N, H, W, C) with C = 1 or 3"
                }
            ),
        )),
    }
}

/// Converts `n` images from channels-last storage to `N x C x D x H x W` in `[0, 1]`.
fn to_pixels(
    path: &Path,
    name: &str,
    values: Values,
    n: usize,
    shape: ImageShape,
) -> Result<Vec<f32>, DataError> {
    let as_f32: Vec<f32> = match values {
        Values::U8(v) => v.into_iter().map(|b| f32::from(b) / 255.0).collect(),
        Values::U16(v) => v.into_iter().map(|b| f32::from(b) / 65535.0).collect(),
        Values::F32(v) => v,
        Values::F64(v) => v.into_iter().map(|x| x as f32).collect(),
        Values::I64(_) => {
            return Err(err(
                path,
                format!(
                    "array {name:?} holds integers other than uint8/uint16; images must be uint8, uint16 or float"
                ),
            ));
        }
    };
    if let Some(i) = as_f32.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(err(
            path,
            format!(
                "array {name:?}: value {} at flat index {i} is outside [0, 1] (float images must be scaled to [0, 1])",
                as_f32[i]
            ),
        ));
    }
    let c = shape.channels;
    if c == 1 {
        return Ok(as_f32);
    }
    // Stored channels-last (N, [D,] H, W, C): move channels first.
    let plane = shape.depth * shape.height * shape.width;
    let mut out = vec![0.0f32; n * shape.len()];
    for i in 0..n {
        let src = &as_f32[i * shape.len()..(i + 1) * shape.len()];
        let dst = &mut out[i * shape.len()..(i + 1) * shape.len()];
        for p in 0..plane {
            for ch in 0..c {
                dst[ch * plane + p] = src[p * c + ch];
            }
        }
    }
    Ok(out)
}

fn labels(
    path: &Path,
    name: &str,
    shape: &[u64],
    values: Values,
    n: usize,
    task: ImageTask,
) -> Result<Vec<u32>, DataError> {
    let width = task.label_width();
    let ok_shape = match shape {
        [m] => *m as usize == n && width == 1,
        [m, w] => *m as usize == n && *w as usize == width,
        _ => false,
    };
    if !ok_shape {
        return Err(err(
            path,
            format!(
                "array {name:?} has shape {shape:?}, but {n} images of a {} task need ({n}, {width})",
                match task {
                    ImageTask::MultiClass { .. } => "multi-class",
                    ImageTask::Binary => "binary",
                    ImageTask::MultiLabel { .. } => "multi-label",
                }
            ),
        ));
    }
    let raw: Vec<i64> = match values {
        Values::U8(v) => v.into_iter().map(i64::from).collect(),
        Values::U16(v) => v.into_iter().map(i64::from).collect(),
        Values::I64(v) => v,
        Values::F32(_) | Values::F64(_) => {
            return Err(err(
                path,
                format!("array {name:?} holds floats; labels must be integers"),
            ));
        }
    };
    let bound = i64::from(task.label_bound());
    if let Some(i) = raw.iter().position(|&l| l < 0 || l >= bound) {
        return Err(err(
            path,
            format!(
                "array {name:?}: label {} of image {} is outside 0..{bound}",
                raw[i],
                i / width
            ),
        ));
    }
    Ok(raw.into_iter().map(|l| l as u32).collect())
}

fn read_split<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    path: &Path,
    split: &str,
    task: ImageTask,
    is_3d: bool,
    required: bool,
) -> Result<Option<ImageSet>, DataError> {
    let (iname, lname) = (format!("{split}_images"), format!("{split}_labels"));
    let Some((ishape, ivalues)) = read_array(archive, path, &iname)? else {
        if required {
            let names = array_names(archive);
            return Err(err(
                path,
                format!(
                    "no array {iname:?}; a MedMNIST file holds train_images, train_labels, test_images, test_labels (this one: {names:?})"
                ),
            ));
        }
        return Ok(None);
    };
    let (n, shape) = image_shape(path, &iname, &ishape, is_3d)?;
    let pixels = to_pixels(path, &iname, ivalues, n, shape)?;
    let Some((lshape, lvalues)) = read_array(archive, path, &lname)? else {
        return Err(err(path, format!("{iname:?} has no matching {lname:?}")));
    };
    let labels = labels(path, &lname, &lshape, lvalues, n, task)?;
    let sources = (0..n)
        .map(|i| format!("{}:{split}[{i}]", path.display()))
        .collect();
    Ok(Some(ImageSet {
        shape,
        task,
        pixels,
        labels,
        sources,
    }))
}

/// Reads a MedMNIST-layout `.npz` file holding `task` images, 2D or 3D as stated.
///
/// # Errors
/// [`DataError::File`] naming the file and the array: missing arrays, a shape or dtype
/// that disagrees with the stated task or dimensionality, labels out of range,
/// truncated or corrupt data (including a file that is not a zip archive).
pub fn read_medmnist(path: &Path, task: ImageTask, is_3d: bool) -> Result<NpzSplits, DataError> {
    let file = fs_err::File::open(path).map_err(|source| DataError::Io { source })?;
    let mut archive = ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| err(path, format!("not a readable .npz (zip) archive: {e}")))?;
    let train = read_split(&mut archive, path, "train", task, is_3d, true)?
        .expect("required split is present");
    let test = read_split(&mut archive, path, "test", task, is_3d, true)?
        .expect("required split is present");
    let val = read_split(&mut archive, path, "val", task, is_3d, false)?
        .unwrap_or_else(|| ImageSet::empty(train.shape, task));
    for (name, s) in [("test", &test), ("val", &val)] {
        if s.shape != train.shape && !s.is_empty() {
            return Err(err(
                path,
                format!(
                    "{name}_images are {}, train_images {}",
                    s.shape, train.shape
                ),
            ));
        }
    }
    Ok(NpzSplits { train, val, test })
}

fn write_split<W: std::io::Write + Seek>(
    w: &mut zip::ZipWriter<W>,
    split: &str,
    set: &ImageSet,
) -> Result<(), String> {
    let s = set.shape;
    let n = set.len() as u64;
    let mut shape = vec![n];
    if s.is_3d() {
        shape.push(s.depth as u64);
    }
    shape.extend([s.height as u64, s.width as u64]);
    if s.channels > 1 {
        shape.push(s.channels as u64);
    }
    let options = zip::write::FileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    let e = |e: &dyn std::fmt::Display| e.to_string();
    w.start_file(member_name(&format!("{split}_images")), options)
        .map_err(|x| e(&x))?;
    let mut a = npyz::WriteOptions::<u8>::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut *w)
        .begin_nd()
        .map_err(|x| e(&x))?;
    let plane = s.depth * s.height * s.width;
    for i in 0..set.len() {
        let img = set.image(i);
        for p in 0..plane {
            for ch in 0..s.channels {
                let v = img[ch * plane + p];
                a.push(&((v.clamp(0.0, 1.0) * 255.0).round() as u8))
                    .map_err(|x| e(&x))?;
            }
        }
    }
    a.finish().map_err(|x| e(&x))?;
    let width = set.task.label_width() as u64;
    w.start_file(member_name(&format!("{split}_labels")), options)
        .map_err(|x| e(&x))?;
    let mut l = npyz::WriteOptions::<u8>::new()
        .default_dtype()
        .shape(&[n, width])
        .writer(&mut *w)
        .begin_nd()
        .map_err(|x| e(&x))?;
    for &v in &set.labels {
        l.push(&(v.min(255) as u8)).map_err(|x| e(&x))?;
    }
    l.finish().map_err(|x| e(&x))
}

/// Writes `splits` as a MedMNIST-layout `.npz` (uint8 images rounded from `[0, 1]`,
/// uint8 labels `(N, 1)` or `(N, L)`, deflated members), atomically with
/// [`ward_core::fsutil::write_atomic`]: a temporary file in the same folder, synced,
/// renamed over `path`.
///
/// # Errors
/// [`DataError::Io`] naming the path, or [`DataError::File`] when the archive cannot be
/// built.
pub fn write_medmnist(path: &Path, splits: &NpzSplits) -> Result<(), DataError> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let ctx = |e: String| DataError::file(path, format!("writing the .npz failed: {e}"));
    write_split(&mut w, "train", &splits.train).map_err(ctx)?;
    if !splits.val.is_empty() {
        write_split(&mut w, "val", &splits.val).map_err(ctx)?;
    }
    write_split(&mut w, "test", &splits.test).map_err(ctx)?;
    let bytes = w
        .finish()
        .map_err(|e| DataError::file(path, format!("finishing the zip failed: {e}")))?
        .into_inner();
    ward_core::fsutil::write_atomic(path, &bytes).map_err(|source| DataError::Io { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(task: ImageTask, shape: ImageShape, n: usize) -> ImageSet {
        let mut s = ImageSet::empty(shape, task);
        for i in 0..n {
            let px: Vec<f32> = (0..shape.len())
                .map(|p| ((i * 31 + p * 7) % 256) as f32 / 255.0)
                .collect();
            let lab: Vec<u32> = (0..task.label_width())
                .map(|k| ((i + k) % task.label_bound() as usize) as u32)
                .collect();
            s.push(&px, &lab, "");
        }
        s.sources.clear();
        s
    }

    #[test]
    fn round_trip_2d_rgb_and_multi_label() {
        let dir = tempfile::tempdir().unwrap();
        for (task, shape, is_3d) in [
            (
                ImageTask::MultiClass { classes: 4 },
                ImageShape::d2(1, 5, 6),
                false,
            ),
            (
                ImageTask::MultiLabel { labels: 3 },
                ImageShape::d2(3, 4, 4),
                false,
            ),
            (ImageTask::Binary, ImageShape::d3(1, 3, 4, 5), true),
        ] {
            let splits = NpzSplits {
                train: set(task, shape, 7),
                val: ImageSet::empty(shape, task),
                test: set(task, shape, 3),
            };
            let p = dir.path().join("x.npz");
            write_medmnist(&p, &splits).unwrap();
            let mut back = read_medmnist(&p, task, is_3d).unwrap();
            for s in [&mut back.train, &mut back.test] {
                s.sources.clear();
            }
            assert_eq!(back.train.labels, splits.train.labels);
            assert_eq!(back.train.shape, shape);
            for (a, b) in back.train.pixels.iter().zip(&splits.train.pixels) {
                assert!((a - b).abs() < 0.5 / 255.0 + 1e-6);
            }
            assert!(back.val.is_empty());
        }
    }

    #[test]
    fn wrong_task_dims_and_corrupt_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.npz");
        let task = ImageTask::MultiClass { classes: 4 };
        let shape = ImageShape::d2(1, 4, 4);
        let splits = NpzSplits {
            train: set(task, shape, 5),
            val: ImageSet::empty(shape, task),
            test: set(task, shape, 2),
        };
        write_medmnist(&p, &splits).unwrap();
        let e = read_medmnist(&p, task, true).unwrap_err().to_string();
        assert!(
            e.contains("m.npz") && e.contains("train_images") && e.contains("3d"),
            "{e}"
        );
        let e = read_medmnist(&p, ImageTask::MultiLabel { labels: 2 }, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("train_labels") && e.contains("(5, 2)"), "{e}");
        let e = read_medmnist(&p, ImageTask::MultiClass { classes: 2 }, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside 0..2"), "{e}");
        // Truncated: half the bytes.
        let bytes = fs_err::read(&p).unwrap();
        let t = dir.path().join("t.npz");
        fs_err::write(&t, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_medmnist(&t, task, false).unwrap_err().to_string();
        assert!(e.contains("t.npz"), "{e}");
        fs_err::write(&t, b"not a zip at all").unwrap();
        let e = read_medmnist(&t, task, false).unwrap_err().to_string();
        assert!(e.contains("t.npz") && e.contains("zip"), "{e}");
    }

    /// The `.npy` bytes of a `u8` array.
    fn npy_u8(shape: &[u64], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = npyz::WriteOptions::<u8>::new()
            .default_dtype()
            .shape(shape)
            .writer(&mut out)
            .begin_nd()
            .unwrap();
        w.extend(data.iter().copied()).unwrap();
        w.finish().unwrap();
        out
    }

    /// A zip archive of `members`, each stored or deflated as `method` says.
    fn zip_of(members: &[(&str, Vec<u8>)], method: zip::CompressionMethod) -> Vec<u8> {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::FileOptions::default().compression_method(method);
        for (name, bytes) in members {
            z.start_file(*name, options).unwrap();
            z.write_all(bytes).unwrap();
        }
        z.finish().unwrap().into_inner()
    }

    /// Train 5 and test 2 images of 4 x 4, pixel `k` of the flat train array = `k`.
    fn members() -> Vec<(&'static str, Vec<u8>)> {
        let px: Vec<u8> = (0..80).collect();
        vec![
            ("train_images.npy", npy_u8(&[5, 4, 4], &px)),
            ("train_labels.npy", npy_u8(&[5, 1], &[0, 1, 2, 3, 0])),
            ("test_images.npy", npy_u8(&[2, 4, 4], &px[..32])),
            ("test_labels.npy", npy_u8(&[2, 1], &[1, 0])),
        ]
    }

    const TASK: ImageTask = ImageTask::MultiClass { classes: 4 };

    /// Writes `bytes` as `<dir>/<name>`, reads it, and returns the error message (or
    /// panics with the result if it read).
    fn read_err(dir: &Path, name: &str, bytes: &[u8]) -> String {
        let p = dir.join(name);
        fs_err::write(&p, bytes).unwrap();
        match read_medmnist(&p, TASK, false) {
            Ok(s) => panic!("{name} read: {:?}", s.train.labels),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn stored_and_deflated_members_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        for (name, method) in [
            ("stored.npz", zip::CompressionMethod::Stored),
            ("deflated.npz", zip::CompressionMethod::Deflated),
        ] {
            let p = dir.path().join(name);
            fs_err::write(&p, zip_of(&members(), method)).unwrap();
            let s = read_medmnist(&p, TASK, false).unwrap();
            assert_eq!(s.train.labels, vec![0, 1, 2, 3, 0], "{name}");
            assert_eq!(s.test.labels, vec![1, 0], "{name}");
            assert!(s.val.is_empty());
            for (k, &v) in s.train.pixels.iter().enumerate() {
                assert_eq!(v, k as f32 / 255.0, "{name} pixel {k}");
            }
        }
    }

    /// Corrupt or cut-short archives and members: an error naming the file and, where
    /// one is at fault, the member; never a panic, never wrong pixels.
    #[test]
    fn corrupt_and_truncated_npz_name_the_file_and_member() {
        let dir = tempfile::tempdir().unwrap();
        let stored = zip_of(&members(), zip::CompressionMethod::Stored);
        let named = |e: &str, file: &str, member: &str| {
            assert!(e.contains(file) && e.contains(member), "{e}");
        };

        // One flipped pixel byte in a stored member: the zip checksum catches it.
        let magic = stored.windows(6).position(|w| w == b"\x93NUMPY").unwrap();
        let header = 10 + usize::from(u16::from_le_bytes([stored[magic + 8], stored[magic + 9]]));
        let mut flipped = stored.clone();
        flipped[magic + header + 5] ^= 0x40;
        let e = read_err(dir.path(), "flip.npz", &flipped);
        named(&e, "flip.npz", "\"train_images.npy\"");
        assert!(e.contains("checksum"), "{e}");

        // A member holding fewer bytes than its shape needs (in a valid zip).
        let mut m = members();
        let keep = m[0].1.len() - 70;
        m[0].1.truncate(keep);
        let e = read_err(
            dir.path(),
            "short.npz",
            &zip_of(&m, zip::CompressionMethod::Deflated),
        );
        named(&e, "short.npz", "\"train_images.npy\"");
        assert!(e.contains("needs 80 bytes, the member holds 10"), "{e}");

        // A shape whose element count overflows 64 bits.
        let text =
            "{'descr': '|u1', 'fortran_order': False, 'shape': (4294967296, 4294967296, 2), }";
        let mut huge = b"\x93NUMPY\x01\x00".to_vec();
        huge.extend_from_slice(&(text.len() as u16).to_le_bytes());
        huge.extend_from_slice(text.as_bytes());
        let mut m = members();
        m[0].1 = huge;
        let e = read_err(
            dir.path(),
            "huge.npz",
            &zip_of(&m, zip::CompressionMethod::Stored),
        );
        named(&e, "huge.npz", "\"train_images.npy\"");
        assert!(e.contains("more elements than fit in 64 bits"), "{e}");

        // A member that is not a .npy array.
        let mut m = members();
        m[1].1 = b"PK not an array".to_vec();
        let e = read_err(
            dir.path(),
            "magic.npz",
            &zip_of(&m, zip::CompressionMethod::Stored),
        );
        named(&e, "magic.npz", "\"train_labels.npy\"");
        assert!(e.contains("bad magic"), "{e}");

        // Flipped bytes inside a deflated member's compressed data.
        let deflated = zip_of(&members(), zip::CompressionMethod::Deflated);
        let data_at = 30
            + usize::from(u16::from_le_bytes([deflated[26], deflated[27]]))
            + usize::from(u16::from_le_bytes([deflated[28], deflated[29]]));
        for k in 0..8 {
            let mut b = deflated.clone();
            b[data_at + 2 + k] ^= 0xff;
            let e = read_err(dir.path(), "inflate.npz", &b);
            named(&e, "inflate.npz", "\"train_images.npy\"");
        }

        // The archive cut short anywhere: the zip directory is gone or points past the
        // end; the error names the file.
        for cut in (0..stored.len()).step_by(7) {
            let e = read_err(dir.path(), "cut.npz", &stored[..cut]);
            assert!(e.contains("cut.npz"), "{cut}: {e}");
        }
    }

    /// A file written by numpy (`np.savez_compressed`, MedMNIST's keys, uint8 images,
    /// int64 labels (N, 1)) reads back with the values numpy wrote.
    #[test]
    fn reads_a_file_written_by_numpy() {
        let py = ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|p| {
                std::process::Command::new(p)
                    .args(["-c", "import numpy"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .expect("a python3 with numpy is needed: apt-get install python3-numpy");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("np.npz");
        let script = format!(
            "import numpy as np\n\
             x = (np.arange(5*4*3) % 256).astype(np.uint8).reshape(5, 4, 3)\n\
             y = np.array([[0],[2],[1],[2],[0]], dtype=np.int64)\n\
             np.savez_compressed({:?}, train_images=x, train_labels=y, val_images=x[:2], val_labels=y[:2], test_images=x[2:], test_labels=y[2:])\n",
            p.display().to_string()
        );
        let o = std::process::Command::new(py)
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let s = read_medmnist(&p, ImageTask::MultiClass { classes: 3 }, false).unwrap();
        assert_eq!(s.train.shape, ImageShape::d2(1, 4, 3));
        assert_eq!(s.train.labels, vec![0, 2, 1, 2, 0]);
        assert_eq!((s.val.len(), s.test.len()), (2, 3));
        // Pixel k of the flat array is (k mod 256) / 255.
        assert_eq!(s.train.pixels[13], 13.0 / 255.0);
        assert_eq!(s.test.pixels[0], 24.0 / 255.0);
    }

    /// The synthetic generator's files (written by `synth::write`) read back exactly.
    #[test]
    fn reads_the_synthetic_generator_files() {
        let spec = crate::synth::SynthSpec {
            sites: 1,
            per_site: 40,
            ..crate::synth::SynthSpec::default()
        };
        let g = crate::synth::generate(&spec).unwrap();
        let dir = tempfile::tempdir().unwrap();
        crate::synth::write(dir.path(), &g).unwrap();
        let s = read_medmnist(&dir.path().join("site-0.npz"), g.task, false).unwrap();
        assert_eq!(s.train.labels, g.sites[0].train.labels);
        for (a, b) in s.train.pixels.iter().zip(&g.sites[0].train.pixels) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
