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
//! Arrays are read one at a time, straight from the zip entry, so memory holds one
//! array's raw values plus the converted images.

use std::io::{Read, Seek};
use std::path::Path;

use npyz::WriterBuilder;

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

fn read_array<R: Read + Seek>(
    archive: &mut npyz::npz::NpzArchive<R>,
    path: &Path,
    name: &str,
) -> Result<Option<(Vec<u64>, Values)>, DataError> {
    let npy = match archive.by_name(name) {
        Ok(Some(n)) => n,
        Ok(None) => return Ok(None),
        Err(e) => return Err(err(path, format!("array {name:?} cannot be read: {e}"))),
    };
    let shape = npy.shape().to_vec();
    if npy.order() == npyz::Order::Fortran && shape.len() > 1 {
        return Err(err(
            path,
            format!("array {name:?} is in Fortran order; save it in C order (numpy's default)"),
        ));
    }
    let descr = npy.dtype().descr();
    let bad = |e: std::io::Error| err(path, format!("array {name:?} is truncated or corrupt: {e}"));
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
    archive: &mut npyz::npz::NpzArchive<R>,
    path: &Path,
    split: &str,
    task: ImageTask,
    is_3d: bool,
    required: bool,
) -> Result<Option<ImageSet>, DataError> {
    let (iname, lname) = (format!("{split}_images"), format!("{split}_labels"));
    let Some((ishape, ivalues)) = read_array(archive, path, &iname)? else {
        if required {
            let names: Vec<&str> = archive.array_names().collect();
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
    let mut archive = npyz::npz::NpzArchive::new(std::io::BufReader::new(file))
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
    w: &mut npyz::npz::NpzWriter<W>,
    split: &str,
    set: &ImageSet,
) -> std::io::Result<()> {
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
    let options = zip::write::FileOptions::default();
    let mut a = w
        .array::<u8>(&format!("{split}_images"), options)?
        .default_dtype()
        .shape(&shape)
        .begin_nd()?;
    let plane = s.depth * s.height * s.width;
    for i in 0..set.len() {
        let img = set.image(i);
        for p in 0..plane {
            for ch in 0..s.channels {
                let v = img[ch * plane + p];
                a.push(&((v.clamp(0.0, 1.0) * 255.0).round() as u8))?;
            }
        }
    }
    a.finish()?;
    let width = set.task.label_width() as u64;
    let mut l = w
        .array::<u8>(&format!("{split}_labels"), options)?
        .default_dtype()
        .shape(&[n, width])
        .begin_nd()?;
    for &v in &set.labels {
        l.push(&(v.min(255) as u8))?;
    }
    l.finish()
}

/// Writes `splits` as a MedMNIST-layout `.npz` (uint8 images rounded from `[0, 1]`,
/// uint8 labels `(N, 1)` or `(N, L)`), atomically: a temporary file in the same folder,
/// renamed over `path`.
///
/// # Errors
/// [`DataError::Io`] naming the path.
pub fn write_medmnist(path: &Path, splits: &NpzSplits) -> Result<(), DataError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map_or_else(|| "out.npz".into(), |n| n.to_string_lossy())
    ));
    let io = |source: std::io::Error| DataError::Io { source };
    {
        let file = fs_err::File::create(&tmp).map_err(io)?;
        let mut w = npyz::npz::NpzWriter::new(std::io::BufWriter::new(file));
        let ctx =
            |e: std::io::Error| DataError::file(&tmp, format!("writing the .npz failed: {e}"));
        write_split(&mut w, "train", &splits.train).map_err(ctx)?;
        if !splits.val.is_empty() {
            write_split(&mut w, "val", &splits.val).map_err(ctx)?;
        }
        write_split(&mut w, "test", &splits.test).map_err(ctx)?;
        let inner = w
            .zip_writer()
            .finish()
            .map_err(|e| DataError::file(&tmp, format!("finishing the zip failed: {e}")))?;
        let file = inner
            .into_inner()
            .map_err(|e| DataError::file(&tmp, format!("flushing failed: {e}")))?;
        file.sync_all().map_err(io)?;
    }
    fs_err::rename(&tmp, path).map_err(io)?;
    Ok(())
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
