//! Images read per second for each image reader (part of `ward bench cnn`).
//!
//! Inputs are written here, in a temporary folder, before timing: a MedMNIST-layout
//! `.npz` of synthetic 64x64 images (Ward's writer), PNG class folders (the `image`
//! crate), uncompressed int16 NIfTI-1 volumes (a plain NIfTI-1 header, 64x64x32, the
//! layout every NIfTI writer produces for this data type), and copies of pydicom's
//! `CT_small.dcm` (128x128 int16 CT, explicit VR little endian) where Debian's
//! python3-pydicom is installed. Each reader runs the way `ward run` calls it; the
//! median of the repeats is reported.

use std::path::Path;
use std::time::Instant;

use crate::Result;
use crate::error::Context;
use crate::say;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use ward_data::geometry::Fit;
use ward_data::geometry::VolumeGeometry;
use ward_data::readers::dicom::{DicomIntensity, DicomOptions, SpacingCheck, read_dicom_images};
use ward_data::readers::folder::{Color, FolderOptions, read_class_folders};
use ward_data::readers::medmnist::read_medmnist;
use ward_data::readers::nifti::{NiftiOptions, NiftiOutput, read_nifti};
use ward_data::readers::{BadFile, Dims, Intensity, Resample};
use ward_data::{ImageSet, ImageShape, ImageTask};

use crate::Observer;
use crate::bench::median;

const PYDICOM_CT: &str = "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm";

/// A plain NIfTI-1 single file (`.nii`): 348-byte header, 4 bytes of (empty) extension
/// flag, then int16 voxels, x fastest (NIfTI-1 standard, `nifti1.h`).
fn nifti1_int16(dims: [u16; 3], voxels: &[i16]) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    h[0..4].copy_from_slice(&348i32.to_le_bytes()); // sizeof_hdr
    let dim: [i16; 8] = [
        3,
        dims[0] as i16,
        dims[1] as i16,
        dims[2] as i16,
        1,
        1,
        1,
        1,
    ];
    for (k, d) in dim.iter().enumerate() {
        h[40 + 2 * k..42 + 2 * k].copy_from_slice(&d.to_le_bytes());
    }
    h[70..72].copy_from_slice(&4i16.to_le_bytes()); // datatype DT_INT16
    h[72..74].copy_from_slice(&16i16.to_le_bytes()); // bitpix
    for k in 0..8 {
        h[76 + 4 * k..80 + 4 * k].copy_from_slice(&1f32.to_le_bytes()); // pixdim
    }
    h[108..112].copy_from_slice(&352f32.to_le_bytes()); // vox_offset
    h[112..116].copy_from_slice(&1f32.to_le_bytes()); // scl_slope
    h[344..348].copy_from_slice(b"n+1\0"); // magic
    for v in voxels {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h
}

/// Times `read` over `repeats` runs; returns images per second (median time).
fn time_reader(
    repeats: usize,
    images: usize,
    mut read: impl FnMut() -> Result<usize>,
) -> Result<f64> {
    let got = read()?; // warm the page cache
    crate::error::ensure!(
        got == images,
        "the reader read {got} images, expected {images}"
    );
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        let n = read()?;
        times.push(t.elapsed().as_secs_f64());
        crate::error::ensure!(n == images, "the reader read {n} images, expected {images}");
    }
    Ok(images as f64 / median(times))
}

/// Side of the synthetic 2D images, in pixels.
const SIDE: usize = 64;

/// The labels of every input: two classes.
const TASK: ImageTask = ImageTask::MultiClass { classes: 2 };

/// A table row: reader, input, images, images per second (`None`: not measured).
type ReaderRow = (String, String, usize, Option<f64>);

/// Pixel `p` (row-major) of synthetic image `i`, in [0, 1].
fn pixel(i: usize, p: usize) -> f32 {
    ((i * 37 + p * 11 + (p / SIDE) * 5) % 256) as f32 / 255.0
}

/// MedMNIST `.npz`: one file under `root`, all images in train (and one in test).
fn bench_medmnist(root: &Path, images: usize, repeats: usize) -> Result<ReaderRow> {
    let shape = ImageShape::d2(1, SIDE, SIDE);
    let mut set = ImageSet::empty(shape, TASK);
    let mut px = vec![0f32; SIDE * SIDE];
    for i in 0..images {
        px.iter_mut()
            .enumerate()
            .for_each(|(p, v)| *v = pixel(i, p));
        set.push(&px, &[(i % 2) as u32], format!("{i}"));
    }
    let npz = root.join("bench.npz");
    ward_data::npz::write_medmnist(
        &npz,
        &ward_data::npz::NpzSplits {
            train: set.clone(),
            val: ImageSet::empty(shape, TASK),
            test: set.select(&[0]),
        },
    )?;
    let ips = time_reader(repeats, images + 1, || {
        let s = read_medmnist(&npz, TASK, Dims::D2)?;
        Ok(s.train.len() + s.test.len())
    })?;
    Ok((
        "medmnist .npz".into(),
        "uint8 64x64, deflate".into(),
        images,
        Some(ips),
    ))
}

/// PNG class folders under `root`.
fn bench_png_folders(root: &Path, images: usize, repeats: usize) -> Result<ReaderRow> {
    let folders = root.join("png");
    for i in 0..images {
        let class = folders.join(format!("class{}", i % 2));
        fs_err::create_dir_all(&class)?;
        let img = image::GrayImage::from_fn(SIDE as u32, SIDE as u32, |x, y| {
            image::Luma([(pixel(i, y as usize * SIDE + x as usize) * 255.0) as u8])
        });
        img.save(class.join(format!("{i:05}.png")))
            .with_context(|| format!("writing PNG {i}"))?;
    }
    let options = FolderOptions {
        color: Color::Grey,
        height: SIDE as u32,
        width: SIDE as u32,
        bad_file: BadFile::Fail,
    };
    let ips = time_reader(repeats, images, || {
        Ok(read_class_folders(&folders, &options)?.data.images.len())
    })?;
    Ok((
        "image folder".into(),
        "PNG grey 64x64".into(),
        images,
        Some(ips),
    ))
}

/// NIfTI volumes under `root`: fewer files (each is 32 slices).
fn bench_nifti(root: &Path, images: usize, repeats: usize) -> Result<ReaderRow> {
    let volumes = images.div_ceil(32).max(2);
    let nii = root.join("nii");
    fs_err::create_dir_all(&nii)?;
    let mut rows = Vec::new();
    let (nx, ny, nz) = (64u16, 64u16, 32u16);
    for v in 0..volumes {
        let voxels: Vec<i16> = (0..usize::from(nx) * usize::from(ny) * usize::from(nz))
            .map(|p| ((p * 7 + v * 13) % 2000) as i16 - 1000)
            .collect();
        let name = format!("vol{v:04}.nii");
        fs_err::write(nii.join(&name), nifti1_int16([nx, ny, nz], &voxels))?;
        rows.push([name, (v % 2).to_string()]);
    }
    let labels = nii.join("labels.csv");
    ward_report::write_csv_atomic(&labels, &["file", "label"], rows)?;
    let options = NiftiOptions {
        task: TASK,
        intensity: Intensity::MinMax,
        output: NiftiOutput::Volume {
            depth: 32,
            height: 64,
            width: 64,
            resample: Resample::Linear,
            fit: Fit::Resize,
        },
        geometry: VolumeGeometry::default(),
        bad_file: BadFile::Fail,
    };
    let ips = time_reader(repeats, volumes, || {
        Ok(read_nifti(&labels, &options)?.data.len())
    })?;
    Ok((
        "NIfTI".into(),
        "int16 64x64x32 volumes".into(),
        volumes,
        Some(ips),
    ))
}

/// DICOM under `root`: copies of pydicom's CT_small.dcm, or a row saying it is not
/// installed.
fn bench_dicom(root: &Path, images: usize, repeats: usize) -> Result<ReaderRow> {
    let ct = Path::new(PYDICOM_CT);
    if !ct.exists() {
        return Ok((
            "DICOM".into(),
            format!("{PYDICOM_CT} not installed"),
            0,
            None,
        ));
    }
    let dcm = root.join("dcm");
    fs_err::create_dir_all(&dcm)?;
    let mut rows = Vec::new();
    for i in 0..images {
        let name = format!("{i:05}.dcm");
        fs_err::copy(ct, dcm.join(&name))?;
        rows.push([name, (i % 2).to_string()]);
    }
    let labels = dcm.join("labels.csv");
    ward_report::write_csv_atomic(&labels, &["file", "label"], rows)?;
    let options = DicomOptions {
        task: TASK,
        intensity: DicomIntensity::Window {
            center: 40.0,
            width: 400.0,
        },
        depth: 1,
        height: 128,
        width: 128,
        resample: Resample::Linear,
        bad_file: BadFile::Fail,
        spacing_check: SpacingCheck::Refuse,
        geometry: ward_data::geometry::VolumeGeometry::KEEP,
        fit: ward_data::geometry::Fit::Resize,
    };
    let ips = time_reader(repeats, images, || {
        Ok(read_dicom_images(&dcm, &labels, &options)?.data.len())
    })?;
    Ok((
        "DICOM".into(),
        "CT_small.dcm 128x128 int16".into(),
        images,
        Some(ips),
    ))
}

/// Prints the title and the table of the readers.
fn print_table(rows: Vec<ReaderRow>, repeats: usize, obs: &mut dyn Observer) {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(vec!["reader", "input", "images", "images/s"]);
    for (reader, input, n, ips) in rows {
        table.add_row(vec![
            reader,
            input,
            n.to_string(),
            ips.map_or("-".into(), |v| format!("{v:.0}")),
        ]);
    }
    say(
        obs,
        format!(
            "Image readers: images decoded, scaled to [0, 1] and labelled per second (median of {repeats})"
        ),
    );
    say(obs, table.to_string());
}

/// Writes the inputs for `images` images per reader, times each reader, prints the table.
pub fn bench_readers(images: usize, repeats: usize, obs: &mut dyn Observer) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let rows = vec![
        bench_medmnist(root, images, repeats)?,
        bench_png_folders(root, images, repeats)?,
        bench_nifti(root, images, repeats)?,
        bench_dicom(root, images, repeats)?,
    ];
    print_table(rows, repeats, obs);
    Ok(())
}
