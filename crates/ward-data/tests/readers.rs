//! Image readers on real files: fixtures written by `tests/fixtures/make_fixtures.py`
//! (numpy, nibabel; expected values are that script's formulas) and pydicom's test
//! files (expected values from pydicom 2.3.1, quoted at each test).

use std::path::{Path, PathBuf};

use ward_data::geometry::VolumeGeometry;
use ward_data::geometry::{Fit, SliceAxis};
use ward_data::readers::dicom::{
    DicomIntensity, DicomOptions, SpacingCheck, read_dicom_file, read_dicom_images,
    read_dicom_series, read_dicom_volume,
};
use ward_data::readers::folder::{Color, FolderOptions, read_class_folders, read_site_folders};
use ward_data::readers::medmnist::{read_medmnist, read_medmnist_sites};
use ward_data::readers::nifti::{NiftiOptions, NiftiOutput, read_nifti, read_volume};
use ward_data::readers::{BadFile, Dims, Intensity, Resample};
use ward_data::{DataError, ImageShape, ImageTask};

mod common;
use common::{fixture, pydicom_file};

/// The fixture script's pixel formula, `/ 255`.
fn medmnist_px(i: usize, d: usize, h: usize, w: usize, c: usize) -> f32 {
    ((37 * i + 5 * h + 11 * w + 3 * d + 101 * c) % 256) as f32 / 255.0
}

fn close(a: f32, b: f64) -> bool {
    (f64::from(a) - b).abs() < 1e-5
}

fn copy_to(dir: &Path, from: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    fs_err::copy(from, &to).unwrap();
    to
}

fn truncate_copy(dir: &Path, from: &Path, name: &str, keep: usize) -> PathBuf {
    let bytes = fs_err::read(from).unwrap();
    let to = dir.join(name);
    fs_err::write(&to, &bytes[..keep.min(bytes.len())]).unwrap();
    to
}

// ---------------------------------------------------------------- MedMNIST

#[test]
fn medmnist_2d_values_and_labels() {
    let site = read_medmnist(
        &fixture("medmnist_2d.npz"),
        ImageTask::MultiClass { classes: 3 },
        Dims::D2,
    )
    .unwrap();
    assert_eq!(site.name, "medmnist_2d");
    assert_eq!(site.train.shape, ImageShape::d2(1, 4, 5));
    assert_eq!(site.train.labels, vec![0, 2, 1]);
    assert_eq!(site.val.labels, vec![1, 0]);
    assert_eq!(site.test.labels, vec![2, 2]);
    for i in 0..3 {
        for h in 0..4 {
            for w in 0..5 {
                assert_eq!(site.train.image(i)[h * 5 + w], medmnist_px(i, 0, h, w, 0));
            }
        }
    }
    assert_eq!(site.val.image(1)[2 * 5 + 3], medmnist_px(1, 0, 2, 3, 0));
}

#[test]
fn medmnist_rgb_channels_first_and_missing_val() {
    let site = read_medmnist(&fixture("medmnist_rgb.npz"), ImageTask::Binary, Dims::D2).unwrap();
    assert_eq!(site.train.shape, ImageShape::d2(3, 4, 5));
    assert!(site.val.is_empty());
    let img = site.train.image(1);
    for c in 0..3 {
        assert_eq!(img[c * 20 + 5 + 1], medmnist_px(1, 0, 1, 1, c));
    }
}

#[test]
fn medmnist_3d_and_multilabel() {
    let site = read_medmnist(
        &fixture("medmnist_3d.npz"),
        ImageTask::MultiClass { classes: 2 },
        Dims::D3,
    )
    .unwrap();
    assert_eq!(site.train.shape, ImageShape::d3(1, 3, 4, 5));
    assert_eq!(
        site.train.image(1)[2 * 20 + 5 + 4],
        medmnist_px(1, 2, 1, 4, 0)
    );
    let ml = read_medmnist(
        &fixture("medmnist_multilabel.npz"),
        ImageTask::MultiLabel { labels: 4 },
        Dims::D2,
    )
    .unwrap();
    assert_eq!(ml.train.labels, vec![1, 0, 0, 1, 0, 1, 1, 0]);
    assert_eq!(ml.test.label(0), &[1, 1, 1, 1]);
}

#[test]
fn medmnist_disagreeing_files_are_named_errors() {
    let msg = |r: Result<_, DataError>| r.unwrap_err().to_string();
    // 3D file stated as 2D: names file, array and shape.
    let e = msg(read_medmnist(
        &fixture("medmnist_3d.npz"),
        ImageTask::MultiClass { classes: 2 },
        Dims::D2,
    ));
    assert!(
        e.contains("medmnist_3d.npz") && e.contains("train_images") && e.contains("[2, 3, 4, 5]"),
        "{e}"
    );
    // Multi-label file stated as multi-class.
    let e = msg(read_medmnist(
        &fixture("medmnist_multilabel.npz"),
        ImageTask::MultiClass { classes: 4 },
        Dims::D2,
    ));
    assert!(
        e.contains("train_labels") && e.contains("[2, 4]") && e.contains("multi-class"),
        "{e}"
    );
    // Label 3 of train image 1 with 3 classes.
    let e = msg(read_medmnist(
        &fixture("medmnist_bad_label.npz"),
        ImageTask::MultiClass { classes: 3 },
        Dims::D2,
    ));
    assert!(
        e.contains("label 3 of image 1") && e.contains("0..3"),
        "{e}"
    );
    // 3 images, 2 labels.
    let e = msg(read_medmnist(
        &fixture("medmnist_wrong_shape.npz"),
        ImageTask::MultiClass { classes: 2 },
        Dims::D2,
    ));
    assert!(
        e.contains("medmnist_wrong_shape.npz")
            && e.contains("train_labels")
            && e.contains("[2, 1]"),
        "{e}"
    );
}

#[test]
fn medmnist_corrupt_files_and_bad_file_policies() {
    let dir = tempfile::tempdir().unwrap();
    let good = copy_to(dir.path(), &fixture("medmnist_2d.npz"), "a.npz");
    let truncated = truncate_copy(dir.path(), &good, "b.npz", 900);
    let garbage = dir.path().join("c.npz");
    fs_err::write(&garbage, b"this is not a zip archive").unwrap();
    let task = ImageTask::MultiClass { classes: 3 };
    for bad in [&truncated, &garbage] {
        let e = read_medmnist(bad, task, Dims::D2).unwrap_err().to_string();
        assert!(e.contains(&bad.display().to_string()), "{e}");
    }
    let paths = vec![good.clone(), truncated.clone(), garbage.clone()];
    let loaded = read_medmnist_sites(&paths, task, Dims::D2, BadFile::Skip).unwrap();
    assert_eq!(loaded.data.len(), 1);
    assert_eq!(loaded.data[0].name, "a");
    let skipped: Vec<&PathBuf> = loaded.skipped.iter().map(|s| &s.path).collect();
    assert_eq!(skipped, vec![&truncated, &garbage]);
    assert!(
        loaded.skipped[1].reason.contains("zip"),
        "{}",
        loaded.skipped[1]
    );
    let e = read_medmnist_sites(&paths, task, Dims::D2, BadFile::Fail).unwrap_err();
    assert!(e.to_string().contains("b.npz"), "{e}");
}

// ---------------------------------------------------------------- NIfTI

/// The fixture script's raw voxel at NIfTI (i, j, k), and its flat index in D x H x W.
fn raw_voxel(x: usize, y: usize, z: usize) -> (f64, usize) {
    ((x + 10 * y + 100 * z) as f64, z * 20 + y * 5 + x)
}

/// The flat index, in the RAS volume, of the fixture's storage voxel (x, y, z): the
/// fixtures have no sform or qform, so nibabel's fallback affine `diag(-1, 1, 1)` makes
/// them LAS, and RAS flips `i`.
fn ras_index(x: usize, y: usize, z: usize) -> usize {
    raw_voxel(4 - x, y, z).1
}

#[test]
fn nifti_volumes_apply_scl_slope_and_inter() {
    // vol_a.nii: int16, scl_slope 2, scl_inter -10; nibabel reads voxel (1, 2, 0) as 32
    // and (4, 3, 2) as 458 (make_fixtures.py prints them).
    let a = read_volume(&fixture("vol_a.nii")).unwrap();
    assert_eq!((a.depth(), a.height(), a.width()), (3, 4, 5));
    for (x, y, z) in [(1, 2, 0), (4, 3, 2), (0, 0, 0), (3, 1, 1)] {
        let (raw, at) = raw_voxel(x, y, z);
        assert!(close(a.voxels[at], raw * 2.0 - 10.0));
    }
    assert!(close(a.voxels[raw_voxel(1, 2, 0).1], 32.0));
    // nibabel 5.0: vol_a.nii's affine (no sform or qform code) is shape_zoom_affine.
    assert_eq!(
        a.affine,
        [
            [-1.0, 0.0, 0.0, 2.0],
            [0.0, 1.0, 0.0, -1.5],
            [0.0, 0.0, 1.0, -1.0],
            [0.0, 0.0, 0.0, 1.0]
        ]
    );
    // vol_b.nii.gz: uint16, slope 0.5, inter 1 (nibabel: 11.5 at (1, 2, 0)).
    let b = read_volume(&fixture("vol_b.nii.gz")).unwrap();
    assert!(close(b.voxels[raw_voxel(1, 2, 0).1], 11.5));
    // vol_c.nii.gz: float32, slope 0 = unscaled (nibabel: 21 at (1, 2, 0)).
    let c = read_volume(&fixture("vol_c.nii.gz")).unwrap();
    assert!(close(c.voxels[raw_voxel(1, 2, 0).1], 21.0));
}

#[test]
fn nifti_dataset_volumes_and_slices() {
    let options = NiftiOptions {
        task: ImageTask::Binary,
        intensity: Intensity::MinMax,
        output: NiftiOutput::Volume {
            depth: 3,
            height: 4,
            width: 5,
            resample: Resample::Linear,
            fit: Fit::Resize,
        },
        geometry: VolumeGeometry::default(),
        bad_file: BadFile::Fail,
    };
    let loaded = read_nifti(&fixture("nifti_labels.csv"), &options).unwrap();
    let set = &loaded.data;
    assert_eq!(set.len(), 3);
    assert_eq!(set.labels, vec![1, 0, 1]);
    // vol_a spans -10 (voxel 0) ..= 458 (voxel (4, 3, 2)): min-max per volume, in RAS.
    let (raw, _) = raw_voxel(1, 2, 0);
    assert!(close(
        set.image(0)[ras_index(1, 2, 0)],
        (raw * 2.0 - 10.0 + 10.0) / 468.0
    ));
    assert_eq!(set.image(0)[ras_index(0, 0, 0)], 0.0);
    assert_eq!(set.image(0)[ras_index(4, 3, 2)], 1.0);
    // orientation "storage": the file's order.
    let storage = NiftiOptions {
        geometry: VolumeGeometry {
            orientation: None,
            ..VolumeGeometry::default()
        },
        ..options
    };
    let kept = read_nifti(&fixture("nifti_labels.csv"), &storage).unwrap();
    assert_eq!(kept.data.image(0)[0], 0.0);
    assert_eq!(kept.data.image(0)[59], 1.0);

    let slices = NiftiOptions {
        output: NiftiOutput::Slices {
            axis: SliceAxis::Axial,
            height: 4,
            width: 5,
            resample: Resample::Nearest,
            fit: Fit::Resize,
        },
        intensity: Intensity::Range {
            low: 0.0,
            high: 500.0,
        },
        ..options
    };
    let loaded = read_nifti(&fixture("nifti_labels.csv"), &slices).unwrap();
    assert_eq!(loaded.data.len(), 9);
    assert_eq!(loaded.data.shape, ImageShape::d2(1, 4, 5));
    assert_eq!(loaded.data.labels, vec![1, 1, 1, 0, 0, 0, 1, 1, 1]);
    // vol_a axial slice 2 (k = 2, superior-most), storage voxel (0, 0): 200 * 2 - 10 =
    // 390 -> 390 / 500, at RAS column 4.
    assert!(close(loaded.data.image(2)[4], 390.0 / 500.0));
    assert!(loaded.data.sources[2].ends_with("vol_a.nii:axial=2"));
    // Sagittal slices: one per R/L position (5), each S x A = 3 x 4, cropped/padded to
    // 4 x 5 (rows: one zero row after; columns: one zero column after, MONAI symmetric).
    let sagittal = NiftiOptions {
        output: NiftiOutput::Slices {
            axis: SliceAxis::Sagittal,
            height: 4,
            width: 5,
            resample: Resample::Nearest,
            fit: Fit::CropOrPad,
        },
        ..slices
    };
    let loaded = read_nifti(&fixture("nifti_labels.csv"), &sagittal).unwrap();
    assert_eq!(loaded.data.len(), 15);
    // Slice 0 of vol_a is the left-most, storage x = 4; pixel (row k = 1, col j = 2):
    // raw 4 + 20 + 100 = 124 -> 238 / 500.
    assert!(close(loaded.data.image(0)[5 + 2], 238.0 / 500.0));
    assert_eq!(loaded.data.image(0)[4], 0.0);
    assert_eq!(loaded.data.image(0)[15..], [0.0; 5]);

    let bigger = NiftiOptions {
        output: NiftiOutput::Volume {
            depth: 6,
            height: 8,
            width: 10,
            resample: Resample::Nearest,
            fit: Fit::Resize,
        },
        ..options
    };
    let loaded = read_nifti(&fixture("nifti_labels.csv"), &bigger).unwrap();
    assert_eq!(loaded.data.shape, ImageShape::d3(1, 6, 8, 10));
    // Nearest: output (5, 7, 0) is RAS input (2, 3, 0) = storage (4, 3, 2) = 458 -> 1.
    assert_eq!(loaded.data.image(0)[(5 * 8 + 7) * 10], 1.0);
}

#[test]
fn nifti_corrupt_files_and_policies() {
    let dir = tempfile::tempdir().unwrap();
    copy_to(dir.path(), &fixture("vol_a.nii"), "vol_a.nii");
    truncate_copy(dir.path(), &fixture("vol_a.nii"), "cut.nii", 400);
    fs_err::write(dir.path().join("junk.nii.gz"), b"garbage bytes, not gzip").unwrap();
    let csv = dir.path().join("labels.csv");
    fs_err::write(
        &csv,
        "file,label\nvol_a.nii,1\ncut.nii,0\njunk.nii.gz,1\nmissing.nii,0\n",
    )
    .unwrap();
    let mut options = NiftiOptions {
        task: ImageTask::Binary,
        intensity: Intensity::MinMax,
        output: NiftiOutput::Volume {
            depth: 3,
            height: 4,
            width: 5,
            resample: Resample::Linear,
            fit: Fit::Resize,
        },
        geometry: VolumeGeometry::default(),
        bad_file: BadFile::Skip,
    };
    let loaded = read_nifti(&csv, &options).unwrap();
    assert_eq!(loaded.data.len(), 1);
    let names: Vec<String> = loaded
        .skipped
        .iter()
        .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["cut.nii", "junk.nii.gz", "missing.nii"]);
    options.bad_file = BadFile::Fail;
    let e = read_nifti(&csv, &options).unwrap_err().to_string();
    assert!(e.contains("cut.nii") && e.contains("truncated"), "{e}");
    // A label out of range names the CSV line and column.
    fs_err::write(&csv, "file,label\nvol_a.nii,2\n").unwrap();
    let e = read_nifti(&csv, &options).unwrap_err().to_string();
    assert!(e.contains("labels.csv:2: column \"label\""), "{e}");
}

// ---------------------------------------------------------------- image folders

fn write_grey_png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> u8) {
    let img = image::GrayImage::from_fn(w, h, |x, y| image::Luma([f(x, y)]));
    img.save(path).unwrap();
}

#[test]
fn class_folders_grey_rgb_and_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for class in ["b_cat", "a_dog"] {
        fs_err::create_dir(root.join(class)).unwrap();
    }
    write_grey_png(&root.join("a_dog/1.png"), 3, 2, |x, y| {
        (10 * x + 100 * y) as u8
    });
    write_grey_png(&root.join("b_cat/1.png"), 3, 2, |_, _| 200);
    image::RgbImage::from_fn(3, 2, |x, _| image::Rgb([x as u8, 50, 255]))
        .save(root.join("b_cat/2.png"))
        .unwrap();
    let options = FolderOptions {
        color: Color::Grey,
        height: 2,
        width: 3,
        bad_file: BadFile::Fail,
    };
    let loaded = read_class_folders(root, &options).unwrap();
    let data = &loaded.data;
    assert_eq!(data.classes, vec!["a_dog", "b_cat"]);
    assert_eq!(data.images.task, ImageTask::MultiClass { classes: 2 });
    assert_eq!(data.images.labels, vec![0, 1, 1]);
    let want: Vec<f32> = [0u8, 10, 20, 100, 110, 120]
        .iter()
        .map(|&v| f32::from(v) / 255.0)
        .collect();
    assert_eq!(data.images.image(0), want.as_slice());

    let rgb = read_class_folders(
        root,
        &FolderOptions {
            color: Color::Rgb,
            ..options
        },
    )
    .unwrap()
    .data
    .images;
    assert_eq!(rgb.shape, ImageShape::d2(3, 2, 3));
    // Image 2 (b_cat/2.png): R plane = x / 255, G = 50 / 255, B = 1.
    let img = rgb.image(2);
    assert_eq!(&img[0..3], &[0.0, 1.0 / 255.0, 2.0 / 255.0]);
    assert_eq!(img[6], 50.0 / 255.0);
    assert_eq!(img[17], 1.0);
    // A constant image stays constant under bilinear resizing (6 x 4 -> 2 x 3).
    let resized = read_class_folders(
        root,
        &FolderOptions {
            height: 6,
            width: 4,
            ..options
        },
    )
    .unwrap()
    .data
    .images;
    assert!(resized.image(1).iter().all(|&v| close(v, 200.0 / 255.0)));

    // Bad files: a corrupt PNG, a text file, a stray file at the top level.
    fs_err::write(
        root.join("a_dog/broken.png"),
        b"\x89PNG\r\n\x1a\nnot really",
    )
    .unwrap();
    fs_err::write(root.join("b_cat/notes.txt"), b"hello").unwrap();
    fs_err::write(root.join("README"), b"stray").unwrap();
    let skip = read_class_folders(
        root,
        &FolderOptions {
            bad_file: BadFile::Skip,
            ..options
        },
    )
    .unwrap();
    assert_eq!(skip.data.images.len(), 3);
    let names: Vec<String> = skip
        .skipped
        .iter()
        .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["README", "broken.png", "notes.txt"]);
    let e = read_class_folders(root, &options).unwrap_err().to_string();
    assert!(e.contains("README"), "{e}");
}

#[test]
fn site_folders_share_one_class_list() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (site, class) in [
        ("h1", "benign"),
        ("h1", "malignant"),
        ("h2", "malignant"),
        ("h2", "normal"),
    ] {
        let d = root.join(site).join(class);
        fs_err::create_dir_all(&d).unwrap();
        write_grey_png(&d.join("x.png"), 2, 2, |_, _| 7);
    }
    let loaded = read_site_folders(
        root,
        &FolderOptions {
            color: Color::Grey,
            height: 2,
            width: 2,
            bad_file: BadFile::Fail,
        },
    )
    .unwrap();
    assert_eq!(loaded.data.classes, vec!["benign", "malignant", "normal"]);
    let sites: Vec<(&str, Vec<u32>)> = loaded
        .data
        .sites
        .iter()
        .map(|(n, s)| (n.as_str(), s.labels.clone()))
        .collect();
    assert_eq!(sites, vec![("h1", vec![0, 1]), ("h2", vec![1, 2])]);
}

// ---------------------------------------------------------------- DICOM

#[test]
fn dicom_mr_small_window_matches_pydicom() {
    // pydicom: MR_small.dcm pixel_array[0, :4] = [905, 1019, 1227, 1259], Window
    // Center/Width 600/1600; apply_voi_lut gives [12520.41, 17192.70, 25717.58, 27029.10]
    // on the signed 16-bit output range [-32768, 32767].
    let reference = [
        12_520.414_634_15,
        17_192.703_564_73,
        25_717.581_613_51,
        27_029.101_313_32,
    ];
    let img = read_dicom_file(
        &pydicom_file("MR_small.dcm"),
        DicomIntensity::FileWindow { index: 0 },
    )
    .unwrap();
    assert_eq!((img.rows, img.columns), (64, 64));
    assert_eq!(
        img.sop_instance_uid.as_deref(),
        Some("1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457")
    );
    for (k, r) in reference.iter().enumerate() {
        let want = (r + 32768.0) / 65535.0;
        assert!(
            (f64::from(img.pixels[k]) - want).abs() < 1e-5,
            "{k}: {} vs {want}",
            img.pixels[k]
        );
    }
}

#[test]
fn dicom_transfer_syntaxes_decode_to_the_same_pixels() {
    // pydicom decodes each of these to the same pixel_array as MR_small.dcm.
    let reference = read_dicom_file(&pydicom_file("MR_small.dcm"), DicomIntensity::MinMax).unwrap();
    for name in [
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_implicit.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
    ] {
        let img = read_dicom_file(&pydicom_file(name), DicomIntensity::MinMax)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(img.pixels, reference.pixels, "{name}");
    }
}

#[test]
fn dicom_ct_rescale_matches_pydicom() {
    // pydicom apply_modality_lut(CT_small.dcm): [0, 0] = -849 HU (175 * 1 - 1024),
    // min -896, max 1167.
    let img = read_dicom_file(&pydicom_file("CT_small.dcm"), DicomIntensity::MinMax).unwrap();
    assert!(close(img.pixels[0], (-849.0 + 896.0) / (1167.0 + 896.0)));
    let ranged = read_dicom_file(
        &pydicom_file("CT_small.dcm"),
        DicomIntensity::Range {
            low: -1000.0,
            high: 1000.0,
        },
    )
    .unwrap();
    assert!(close(ranged.pixels[0], (-849.0 + 1000.0) / 2000.0));
    // A caller window (linear, PS3.3 C.11.2.1.2.1): c = 40, w = 400 -> -849 is below.
    let windowed = read_dicom_file(
        &pydicom_file("CT_small.dcm"),
        DicomIntensity::Window {
            center: 40.0,
            width: 400.0,
        },
    )
    .unwrap();
    assert_eq!(windowed.pixels[0], 0.0);
    // CT_small has no window of its own.
    let e = read_dicom_file(
        &pydicom_file("CT_small.dcm"),
        DicomIntensity::FileWindow { index: 0 },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("CT_small.dcm") && e.contains("no Window Center/Width"),
        "{e}"
    );
}

#[test]
fn dicom_monochrome1_is_inverted() {
    // pydicom apply_modality_lut(dicomdirtests/77654033/CR1/6154), MONOCHROME1: min
    // 1563.896 (at [0, 0]), max 2116.568, [8, 8] = 1920.26; inverted min-max gives
    // 1.0 and 0.3551980198.
    let img = read_dicom_file(
        &pydicom_file("dicomdirtests/77654033/CR1/6154"),
        DicomIntensity::MinMax,
    )
    .unwrap();
    assert!(close(img.pixels[0], 1.0));
    assert!(close(img.pixels[8 * 16 + 8], 0.355_198_019_8));
}

#[test]
fn dicom_unsupported_and_corrupt_files_are_named() {
    let e = read_dicom_file(
        &pydicom_file("MR_small_jpeg_ls_lossless.dcm"),
        DicomIntensity::MinMax,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("MR_small_jpeg_ls_lossless.dcm")
            && e.contains("1.2.840.10008.1.2.4.80")
            && e.contains("JPEG-LS Lossless Image Compression"),
        "{e}"
    );
    // pydicom: "The length of the pixel data in the dataset (8130 bytes) doesn't match
    // the expected length (8192 bytes)".
    let e = read_dicom_file(&pydicom_file("MR_truncated.dcm"), DicomIntensity::MinMax)
        .unwrap_err()
        .to_string();
    assert!(e.contains("MR_truncated.dcm"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.dcm");
    fs_err::write(&junk, b"DICM? no, just bytes").unwrap();
    let e = read_dicom_file(&junk, DicomIntensity::MinMax)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("junk.dcm") && e.contains("not a readable DICOM file"),
        "{e}"
    );
    let cut = truncate_copy(dir.path(), &pydicom_file("CT_small.dcm"), "cut.dcm", 3000);
    let e = read_dicom_file(&cut, DicomIntensity::MinMax)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cut.dcm"), "{e}");
}

#[test]
fn dicom_series_sorted_along_the_normal() {
    // pydicom: dicomdirtests/98892001/CT5N, axial (IOP 1,0,0,0,1,0), sorted by
    // ImagePositionPatient z: files 3353, 3023, 2693, 2392, 2062; HU min -888, max 85;
    // min-max values [0,0,0] = 0.8787255909558068, [4,8,8] = 0.5971223021582733,
    // [2,3,5] = 0.9362795477903392.
    let v = read_dicom_volume(
        &pydicom_file("dicomdirtests/98892001/CT5N"),
        DicomIntensity::MinMax,
    )
    .unwrap();
    let names: Vec<String> = v
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["3353", "3023", "2693", "2392", "2062"]);
    assert_eq!((v.depth, v.height, v.width), (5, 16, 16));
    assert!(close(v.voxels[0], 0.878_725_590_955_806_8));
    assert!(close(
        v.voxels[(4 * 16 + 8) * 16 + 8],
        0.597_122_302_158_273_3
    ));
    assert!(close(
        v.voxels[(2 * 16 + 3) * 16 + 5],
        0.936_279_547_790_339_2
    ));
}

#[test]
fn dicom_labelled_images_by_file_and_by_uid() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    fs_err::create_dir(&root).unwrap();
    copy_to(&root, &pydicom_file("CT_small.dcm"), "ct.dcm");
    copy_to(&root, &pydicom_file("MR_small.dcm"), "mr.dcm");
    fs_err::write(root.join("junk.dcm"), b"not dicom").unwrap();
    let mut options = DicomOptions {
        task: ImageTask::MultiClass { classes: 3 },
        intensity: DicomIntensity::MinMax,
        depth: 1,
        height: 32,
        width: 32,
        resample: Resample::Linear,
        bad_file: BadFile::Skip,
        spacing_check: SpacingCheck::Refuse,
        geometry: ward_data::geometry::VolumeGeometry::KEEP,
        fit: ward_data::geometry::Fit::Resize,
    };
    let by_file = dir.path().join("by_file.csv");
    fs_err::write(&by_file, "file,label\nmr.dcm,2\nct.dcm,0\njunk.dcm,1\n").unwrap();
    let loaded = read_dicom_images(&root, &by_file, &options).unwrap();
    assert_eq!(loaded.data.labels, vec![2, 0]);
    assert_eq!(loaded.data.shape, ImageShape::d2(1, 32, 32));
    assert_eq!(loaded.skipped.len(), 1);
    assert!(loaded.skipped[0].path.ends_with("junk.dcm"));

    // Keyed by SOP Instance UID (pydicom: CT_small ...20040119072730.12322); every file
    // under root is read; a UID row without a file is reported.
    let by_uid = dir.path().join("by_uid.csv");
    fs_err::write(
        &by_uid,
        "sop_instance_uid,label\n1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322,1\n1.2.3.4,2\n",
    )
    .unwrap();
    let loaded = read_dicom_images(&root, &by_uid, &options).unwrap();
    assert_eq!(loaded.data.labels, vec![1]);
    assert!(loaded.data.sources[0].ends_with("ct.dcm"));
    let reasons: Vec<String> = loaded.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("junk.dcm"), "{reasons:?}");
    assert!(
        reasons[1].contains("mr.dcm") && reasons[1].contains("has no row"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].contains("\"1.2.3.4\" matches no readable DICOM file"),
        "{reasons:?}"
    );

    options.bad_file = BadFile::Fail;
    let e = read_dicom_images(&root, &by_file, &options)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("junk.dcm") && e.contains("not a readable DICOM file"),
        "{e}"
    );
}

#[test]
fn dicom_labelled_series() {
    let root = pydicom_file("dicomdirtests/98892001");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("series.csv");
    // CT5N: five axial slices 2.5 mm apart; CT2N: two slices whose orientations differ
    // (pydicom: (0, -1, 0, 0, 0, -1) and another), not one volume; MISSING: no folder.
    fs_err::write(&csv, "file,label\nCT5N,1\nCT2N,0\nMISSING,1\n").unwrap();
    let options = DicomOptions {
        task: ImageTask::Binary,
        intensity: DicomIntensity::MinMax,
        depth: 5,
        height: 16,
        width: 16,
        resample: Resample::Nearest,
        bad_file: BadFile::Skip,
        spacing_check: SpacingCheck::Refuse,
        geometry: ward_data::geometry::VolumeGeometry::KEEP,
        fit: ward_data::geometry::Fit::Resize,
    };
    let loaded = read_dicom_series(&root, &csv, &options).unwrap();
    assert_eq!(loaded.data.shape, ImageShape::d3(1, 5, 16, 16));
    assert_eq!(loaded.data.labels, vec![1]);
    // Same size and nearest: CT5N comes through unchanged.
    let v = read_dicom_volume(&root.join("CT5N"), DicomIntensity::MinMax).unwrap();
    assert_eq!(loaded.data.image(0), v.voxels.as_slice());
    let reasons: Vec<String> = loaded.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].contains("CT2N") && reasons[0].contains("share one orientation"),
        "{reasons:?}"
    );
    assert!(loaded.skipped[1].path.ends_with("MISSING"), "{reasons:?}");
    assert!(loaded.warnings.is_empty());
}

// ---------------------------------------------------------------- robustness

/// The Pixel Data tag (7FE0,0010) as stored little-endian.
const PIXEL_DATA_TAG: &[u8] = b"\xe0\x7f\x10\x00";

/// Truncations at 40 offsets and 40 copies with 8 random bytes overwritten (ChaCha8,
/// seed 7) after the last occurrence of `flip_after` (the whole file when empty).
///
/// DICOM files are flipped inside their pixel data only (32 bytes past the tag, 16 bytes
/// before the end, clear of the fragment item headers): dicom-rs zero-fills a declared
/// element length before reading it, so a flipped length costs seconds and up to 4 GiB
/// (an error, not a panic, but too slow for a unit test).
fn mangled_copies(dir: &Path, from: &Path, name: &str, flip_after: &[u8]) -> Vec<PathBuf> {
    use rand::{RngExt, SeedableRng};
    let bytes = fs_err::read(from).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut out = Vec::new();
    let step = (bytes.len() / 40).max(1);
    for (k, cut) in (0..bytes.len()).step_by(step).enumerate() {
        let p = dir.join(format!("cut{k}-{name}"));
        fs_err::write(&p, &bytes[..cut]).unwrap();
        out.push(p);
    }
    let (start, end) = if flip_after.is_empty() {
        (0, bytes.len())
    } else {
        let tag = bytes
            .windows(flip_after.len())
            .rposition(|w| w == flip_after)
            .expect("the marker is in the file");
        (tag + 32, bytes.len() - 16)
    };
    for k in 0..40 {
        let mut b = bytes.clone();
        for _ in 0..8 {
            let at = rng.random_range(start..end);
            b[at] = rng.random();
        }
        let p = dir.join(format!("flip{k}-{name}"));
        fs_err::write(&p, &b).unwrap();
        out.push(p);
    }
    out
}

#[test]
fn corrupt_rle_segments_are_an_error_not_a_panic() {
    // MR_small_RLE.dcm's RLE header (DICOM PS3.5 G.5): 2 segments, the first at byte 64.
    // Moving the second segment's start to byte 70 leaves the first 6 bytes long, far
    // short of 64 x 64 samples; dicom-rs's decoder panics on that, the reader reports it.
    let mut bytes = fs_err::read(pydicom_file("MR_small_RLE.dcm")).unwrap();
    let header = bytes
        .windows(8)
        .position(|w| w == [2, 0, 0, 0, 64, 0, 0, 0])
        .expect("RLE header");
    bytes[header + 8..header + 12].copy_from_slice(&70u32.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad_rle.dcm");
    fs_err::write(&p, &bytes).unwrap();
    let e = read_dicom_file(&p, DicomIntensity::MinMax)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad_rle.dcm") && e.contains("RLE Lossless") && e.contains("are corrupt"),
        "{e}"
    );
}

/// What a reader gave for a mangled copy `p` (from [`mangled_copies`]) of a file that
/// reads as `intact`; never a panic.
///
/// - A copy cut short is an error naming the file.
/// - A `.nii.gz` copy is read whole and its gzip CRC-32 and length checked, so a cut or a
///   flipped byte is an error naming the file, unless the flip hit a gzip header byte no
///   checksum covers (the modification time, the OS): then it reads exactly what the
///   intact file holds.
/// - An uncompressed copy with flipped bytes may still decode, to other values: a DICOM
///   pixel value or a NIfTI voxel or unused header byte changed (nothing checks them). So
///   it is either read or an error naming the file.
fn check_mangled<T: PartialEq>(p: &Path, result: Result<T, DataError>, intact: &T) {
    let name = p.file_name().unwrap().to_string_lossy();
    let (cut, gz) = (name.starts_with("cut"), name.ends_with(".nii.gz"));
    match result {
        Ok(v) => {
            assert!(!cut, "{} is cut short but read", p.display());
            assert!(
                !gz || v == *intact,
                "{} has flipped bytes but read, with other voxels",
                p.display()
            );
        }
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains(&p.display().to_string()), "{e}");
        }
    }
}

#[test]
fn mangled_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "MR_small.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
    ] {
        let intact =
            read_dicom_file(&pydicom_file(name), DicomIntensity::FileWindow { index: 0 }).unwrap();
        for p in mangled_copies(dir.path(), &pydicom_file(name), name, PIXEL_DATA_TAG) {
            check_mangled(
                &p,
                read_dicom_file(&p, DicomIntensity::FileWindow { index: 0 }),
                &intact,
            );
        }
    }
    for name in ["vol_a.nii", "vol_b.nii.gz"] {
        let intact = read_volume(&fixture(name)).unwrap();
        for p in mangled_copies(dir.path(), &fixture(name), name, b"") {
            check_mangled(&p, read_volume(&p), &intact);
        }
    }
    // MedMNIST: a mangled copy either reads exactly what the intact file holds (a byte
    // flipped in zip metadata nobody reads, e.g. a timestamp) or is an error naming the
    // file; the zip checksum rules out wrong pixels.
    let intact = read_medmnist(&fixture("medmnist_rgb.npz"), ImageTask::Binary, Dims::D2).unwrap();
    for p in mangled_copies(dir.path(), &fixture("medmnist_rgb.npz"), "m.npz", b"") {
        let cut = p.file_name().unwrap().to_string_lossy().starts_with("cut");
        match read_medmnist(&p, ImageTask::Binary, Dims::D2) {
            Ok(site) => {
                assert!(!cut, "{} is cut short but read", p.display());
                for (a, b) in [
                    (&site.train, &intact.train),
                    (&site.val, &intact.val),
                    (&site.test, &intact.test),
                ] {
                    assert_eq!(
                        (&a.pixels, &a.labels),
                        (&b.pixels, &b.labels),
                        "{}",
                        p.display()
                    );
                }
            }
            Err(e) => {
                let e = e.to_string();
                assert!(e.contains(&p.display().to_string()), "{e}");
            }
        }
    }
}
