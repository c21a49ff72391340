//! `dataset = "image-folder"`, `"nifti"` and `"dicom"`: experiment files through
//! [`ward_data::load`], on PNGs written here, the nibabel-written NIfTI fixtures
//! (`tests/fixtures/make_fixtures.py`) and pydicom's DICOM test files.

use std::path::Path;

use ward_core::config::ExperimentSpec;
use ward_data::{ImageShape, load};

mod common;
use common::{fixture, pydicom_file};

/// An experiment with this `[data]` body (and a CNN, which image data needs), checked.
fn spec(data: &str) -> Result<ExperimentSpec, String> {
    let text = format!("[data]\n{data}\n[model]\nkind = \"cnn\"\n");
    let spec: ExperimentSpec = toml::from_str(&text).map_err(|e| e.to_string())?;
    spec.validate().map_err(|e| e.to_string())?;
    Ok(spec)
}

fn png(path: &Path, value: u8) {
    fs_err::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_fn(6, 4, |x, _| image::Luma([value.saturating_add(x as u8)]))
        .save(path)
        .unwrap();
}

#[test]
fn image_folder_one_pool_split_per_site_and_skips_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("xray");
    for i in 0..10u8 {
        png(&root.join(format!("normal/{i}.png")), 10 * i);
        png(&root.join(format!("pneumonia/{i}.png")), 100 + 10 * i);
    }
    fs_err::write(
        root.join("pneumonia/broken.png"),
        b"\x89PNG\r\n\x1a\nnot really",
    )
    .unwrap();
    let data = "dataset = \"image-folder\"\npath = \"xray\"\ntest-fraction = 0.2\n\
                [data.images]\ntask = \"multi-class\"\nclasses = 2\non-bad-file = \"skip\"\n\
                [data.reader]\nheight = 8\nwidth = 8\n";
    let s = spec(data).unwrap();
    let d = load(&s.data, dir.path()).unwrap();
    assert_eq!(d.sites.len(), 1);
    assert_eq!(d.sites[0].name, "xray");
    // 20 readable images, 20 % test, stratified: 2 of each class in test.
    assert_eq!((d.sites[0].train.len(), d.sites[0].test.len()), (16, 4));
    let test_pos = d.sites[0].test.y.iter().filter(|&&y| y == 1).count();
    assert_eq!(test_pos, 2);
    assert_eq!(d.image.unwrap().0, ImageShape::d2(1, 8, 8));
    // The broken file is a warning naming it, not silently dropped.
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(d.warnings[0].contains("broken.png"), "{}", d.warnings[0]);

    // Under the default policy (fail) the same folder stops the load, naming the file.
    let strict = data.replace("on-bad-file = \"skip\"\n", "");
    let e = load(&spec(&strict).unwrap().data, dir.path()).unwrap_err();
    assert!(e.to_string().contains("broken.png"), "{e}");

    // The class count must match the folders.
    let three = data.replace("classes = 2", "classes = 3");
    let e = load(&spec(&three).unwrap().data, dir.path()).unwrap_err();
    assert!(e.to_string().contains("classes says 3"), "{e}");

    // Partitioned over simulated sites instead.
    let part = format!("{data}[data.partition]\nkind = \"iid\"\nsites = 2\n");
    let d = load(&spec(&part).unwrap().data, dir.path()).unwrap();
    assert_eq!(d.sites.len(), 2);
    let total: usize = d.sites.iter().map(|s| s.train.len() + s.test.len()).sum();
    assert_eq!(total, 20);
    assert_eq!(d.warnings.len(), 1);
}

#[test]
fn image_folder_site_folders_are_sites() {
    let dir = tempfile::tempdir().unwrap();
    for (site, n) in [("hospital-a", 6u8), ("hospital-b", 4)] {
        for i in 0..n {
            png(&dir.path().join(format!("{site}/benign/{i}.png")), i);
            png(
                &dir.path().join(format!("{site}/malignant/{i}.png")),
                200 + i,
            );
        }
    }
    let data = "dataset = \"image-folder\"\npath = \".\"\ntest-fraction = 0.25\n\
                [data.images]\ntask = \"multi-class\"\nclasses = 2\n\
                [data.reader]\nheight = 4\nwidth = 6\nsite-folders = true\ncolor = \"rgb\"\n";
    let d = load(&spec(data).unwrap().data, dir.path()).unwrap();
    let names: Vec<&str> = d.sites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["hospital-a", "hospital-b"]);
    assert_eq!(d.sites[0].train.len() + d.sites[0].test.len(), 12);
    assert_eq!(d.sites[1].train.len() + d.sites[1].test.len(), 8);
    assert_eq!(d.image.unwrap().0, ImageShape::d2(3, 4, 6));
    // Site folders and a partition contradict each other.
    let both = format!("{data}[data.partition]\nkind = \"iid\"\nsites = 2\n");
    assert!(spec(&both).unwrap_err().contains("data.partition"));
}

#[test]
fn nifti_volumes_and_slices_as_datasets() {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "nifti_labels.csv",
        "vol_a.nii",
        "vol_b.nii.gz",
        "vol_c.nii.gz",
    ] {
        fs_err::copy(fixture(f), dir.path().join(f)).unwrap();
    }
    // Three labelled volumes (make_fixtures.py: labels 1, 0, 1), one site, a third held out.
    let data = "dataset = \"nifti\"\npath = \"nifti_labels.csv\"\ntest-fraction = 0.34\n\
                [data.images]\ntask = \"binary\"\ndims = \"3d\"\n\
                [data.reader]\ndepth = 3\nheight = 4\nwidth = 5\n";
    let d = load(&spec(data).unwrap().data, dir.path()).unwrap();
    assert_eq!(d.sites[0].train.len() + d.sites[0].test.len(), 3);
    assert_eq!(d.image.unwrap().0, ImageShape::d3(1, 3, 4, 5));
    // Slices: every axial slice is a 2D image; dims must then say 2d.
    let slices = data
        .replace("dims = \"3d\"", "dims = \"2d\"")
        .replace("depth = 3\n", "slices = true\n");
    let d = load(&spec(&slices).unwrap().data, dir.path()).unwrap();
    assert_eq!(d.image.unwrap().0, ImageShape::d2(1, 4, 5));
    assert!(d.sites[0].train.len() + d.sites[0].test.len() > 3);
    // Mismatched dims, a missing depth, a DICOM-only file window: key-named errors.
    let e = spec(&data.replace("dims = \"3d\"", "dims = \"2d\"")).unwrap_err();
    assert!(e.contains("data.images.dims"), "{e}");
    let e = spec(&data.replace("depth = 3\n", "")).unwrap_err();
    assert!(e.contains("data.reader.depth"), "{e}");
    let e = spec(&format!("{data}intensity = \"file-window\"\n")).unwrap_err();
    assert!(e.contains("only for dicom"), "{e}");
    // A window, percentiles, z-score, crop-or-pad, a spacing and an orientation are
    // NIfTI settings.
    for extra in [
        "intensity = \"window\"\nwindow = [40.0, 400.0]\n",
        "intensity = \"percentile\"\npercentiles = [1.0, 99.0]\n",
        "intensity = \"z-score\"\nnonzero = true\nfit = \"crop-or-pad\"\n",
        "orientation = \"LPS\"\nspacing = [2.0, 2.0, 2.0]\nantialias = false\n",
    ] {
        let d = load(&spec(&format!("{data}{extra}")).unwrap().data, dir.path()).unwrap();
        assert_eq!(d.image.unwrap().0, ImageShape::d3(1, 3, 4, 5), "{extra}");
    }
    for (extra, key) in [
        ("orientation = \"RAX\"\n", "data.reader.orientation"),
        ("spacing = [1.0, 0.0, 1.0]\n", "data.reader.spacing"),
        ("intensity = \"percentile\"\n", "data.reader.percentiles"),
        ("percentiles = [1.0, 99.0]\n", "data.reader.percentiles"),
        ("nonzero = true\n", "data.reader.nonzero"),
        ("slice-axis = \"coronal\"\n", "data.reader.slice-axis"),
    ] {
        let e = spec(&format!("{data}{extra}")).unwrap_err();
        assert!(e.contains(key), "{extra}: {e}");
    }
    let coronal = slices.replace(
        "slices = true\n",
        "slices = true\nslice-axis = \"coronal\"\n",
    );
    let d = load(&spec(&coronal).unwrap().data, dir.path()).unwrap();
    // Three volumes of 4 coronal slices each.
    assert_eq!(d.sites[0].train.len() + d.sites[0].test.len(), 12);
    // A truncated volume: named under fail.
    let bytes = fs_err::read(dir.path().join("vol_a.nii")).unwrap();
    fs_err::write(dir.path().join("vol_a.nii"), &bytes[..200]).unwrap();
    let e = load(&spec(data).unwrap().data, dir.path()).unwrap_err();
    assert!(e.to_string().contains("vol_a.nii"), "{e}");
}

#[test]
fn dicom_images_and_unsupported_encodings() {
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in [
        ("CT_small.dcm", "ct1.dcm"),
        ("MR_small.dcm", "mr1.dcm"),
        ("MR_small_RLE.dcm", "mr2.dcm"),
        ("MR_small_bigendian.dcm", "mr3.dcm"),
        ("MR_truncated.dcm", "truncated.dcm"),
    ] {
        fs_err::copy(pydicom_file(from), dir.path().join(to)).unwrap();
    }
    fs_err::write(
        dir.path().join("labels.csv"),
        "file,label\nct1.dcm,0\nmr1.dcm,1\nmr2.dcm,1\nmr3.dcm,1\ntruncated.dcm,1\n",
    )
    .unwrap();
    let data = "dataset = \"dicom\"\npath = \"labels.csv\"\ntest-fraction = 0.25\n\
                [data.images]\ntask = \"binary\"\non-bad-file = \"skip\"\n\
                [data.reader]\nheight = 16\nwidth = 16\n";
    let d = load(&spec(data).unwrap().data, dir.path()).unwrap();
    assert_eq!(d.sites[0].train.len() + d.sites[0].test.len(), 4);
    assert_eq!(d.image.unwrap().0, ImageShape::d2(1, 16, 16));
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(d.warnings[0].contains("truncated.dcm"), "{}", d.warnings[0]);
    let strict = data.replace("on-bad-file = \"skip\"\n", "");
    let e = load(&spec(&strict).unwrap().data, dir.path()).unwrap_err();
    assert!(e.to_string().contains("truncated.dcm"), "{e}");
    // A window setting without its values is a key-named error.
    let e = spec(&format!("{data}intensity = \"window\"\n")).unwrap_err();
    assert!(e.contains("data.reader.window"), "{e}");
}
