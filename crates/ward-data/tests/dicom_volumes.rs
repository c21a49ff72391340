//! DICOM volumes against pydicom and nibabel: geometry (affine, slice order), values
//! (rescale, per-frame rescale, padding, windows, VOI LUTs), the slice-gap check and the
//! errors of bad geometry.
//!
//! References: `tests/fixtures/dicom/reference.py`, run at test time with Debian's
//! `/usr/bin/python3` (python3-pydicom 2.3, python3-nibabel 5.0, python3-numpy), on the
//! fixtures written by `tests/fixtures/dicom/make_fixtures.py` and on pydicom's own test
//! files. Intensities are compared to 1e-5 (Ward maps in `f32`), affines to 1e-6 mm.

use std::path::{Path, PathBuf};
use std::process::Command;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use ward_core::config::ExperimentSpec;
use ward_data::geometry::Affine;
use ward_data::readers::dicom::{
    DicomIntensity, DicomOptions, DicomSeries, SpacingCheck, read_dicom_file, read_dicom_series,
    read_file_volume, read_series_volume,
};
use ward_data::readers::{BadFile, Resample};
use ward_data::{ImageShape, ImageTask, load};

mod common;
use common::{fixture, pydicom_file};

const MIN_MAX: DicomIntensity = DicomIntensity::MinMax;

/// The JSON that `reference.py <args>` prints.
fn reference(args: &[&str]) -> serde_json::Value {
    let script = fixture("dicom/reference.py");
    let out = Command::new("/usr/bin/python3")
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run /usr/bin/python3 for the DICOM reference values ({e}): \
                 apt-get install python3-pydicom python3-nibabel python3-numpy"
            )
        });
    assert!(
        out.status.success(),
        "{} {args:?} failed (needs Debian's python3-pydicom, python3-nibabel and \
         python3-numpy: apt-get install python3-pydicom python3-nibabel python3-numpy):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("reference.py prints JSON")
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn matrix(v: &serde_json::Value) -> Affine {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(floats).collect();
    std::array::from_fn(|r| std::array::from_fn(|c| rows[r][c]))
}

/// `a * [x, y, z, 1]`.
fn apply(a: &Affine, p: [f64; 3]) -> [f64; 3] {
    std::array::from_fn(|r| a[r][0] * p[0] + a[r][1] * p[1] + a[r][2] * p[2] + a[r][3])
}

/// nibabel's LPS affine in RAS (the first two rows negated, as nibabel does).
fn lps_to_ras(mut a: Affine) -> Affine {
    for row in &mut a[..2] {
        for v in row.iter_mut() {
            *v = -*v;
        }
    }
    a
}

fn assert_affine(got: &Affine, want: &Affine) {
    for r in 0..4 {
        for c in 0..4 {
            assert!(
                (got[r][c] - want[r][c]).abs() < 1e-6,
                "affine [{r}][{c}]: {got:?} vs {want:?}"
            );
        }
    }
}

/// nibabel's voxel axes are (row, column, slice): voxel `(i, j, k)` of Ward is nibabel's
/// `(j, i, k)`. Checks every in-plane corner of slice 0 lands on the same point.
fn assert_in_plane_matches_nibabel(ours: &Affine, nib_lps: &Affine, [w, h]: [usize; 2]) {
    let nib = lps_to_ras(*nib_lps);
    for (i, j) in [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)] {
        let (i, j) = (i as f64, j as f64);
        let (a, b) = (apply(ours, [i, j, 0.0]), apply(&nib, [j, i, 0.0]));
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() < 1e-6,
                "voxel ({i}, {j}, 0): {a:?} vs nibabel {b:?}"
            );
        }
    }
}

/// Min–max onto `[0, 1]` over the non-padded values, padded values to 0.
fn min_max(values: &[f64], padded: Option<&[bool]>) -> Vec<f64> {
    let is_pad = |k: usize| padded.is_some_and(|p| p[k]);
    let kept: Vec<f64> = (0..values.len())
        .filter(|&k| !is_pad(k))
        .map(|k| values[k])
        .collect();
    let lo = kept.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = kept.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (0..values.len())
        .map(|k| {
            if is_pad(k) {
                0.0
            } else {
                (values[k] - lo) / (hi - lo)
            }
        })
        .collect()
}

fn assert_values(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(*g) - w).abs() < 1e-5,
            "{what}: value {k} is {g}, want {w}"
        );
    }
}

fn series_fixture(name: &str) -> PathBuf {
    fixture("dicom").join(name)
}

fn names(s: &DicomSeries) -> Vec<String> {
    s.slices
        .iter()
        .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn oblique_series_matches_a_hand_affine_nibabel_and_pydicom() {
    let dir = series_fixture("oblique");
    let r = reference(&["series", dir.to_str().unwrap()]);
    let s = read_series_volume(&dir, MIN_MAX, SpacingCheck::Refuse).unwrap();
    // Sorted along row x column, not by file name or Instance Number.
    assert_eq!(names(&s), ["b.dcm", "d.dcm", "a.dcm", "c.dcm"]);
    assert_eq!(s.slices[0].frame, None);
    assert_eq!(s.volume.dims, [8, 6, 4]);
    // dicom2nifti's affine from pydicom's attributes, in RAS: the sheared slice step
    // (2 mm along the normal plus 0.3 mm along the row) is kept.
    assert_affine(&s.volume.affine, &matrix(&r["affine_ras"]));
    assert_in_plane_matches_nibabel(&s.volume.affine, &matrix(&r["nib_lps"]), [8, 6]);
    assert_values(
        &s.volume.voxels,
        &min_max(&floats(&r["values"]), None),
        "min-max",
    );
    assert!(s.warnings.is_empty());
    // pydicom's own CT5N series: axial, 2.5 mm, padding declared but unused.
    let ct5n = pydicom_file("dicomdirtests/98892001/CT5N");
    let r = reference(&["series", ct5n.to_str().unwrap()]);
    let s = read_series_volume(&ct5n, MIN_MAX, SpacingCheck::Refuse).unwrap();
    assert_affine(&s.volume.affine, &matrix(&r["affine_ras"]));
    assert_in_plane_matches_nibabel(&s.volume.affine, &matrix(&r["nib_lps"]), [16, 16]);
    let pad: Vec<bool> = r["padded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_bool().unwrap())
        .collect();
    assert_values(
        &s.volume.voxels,
        &min_max(&floats(&r["values"]), Some(&pad)),
        "CT5N",
    );
}

#[test]
fn enhanced_multiframe_matches_nibabel_and_per_frame_pydicom() {
    let path = series_fixture("enhanced_mr.dcm");
    let r = reference(&["enhanced", path.to_str().unwrap()]);
    let s = read_file_volume(&path, MIN_MAX, SpacingCheck::Refuse).unwrap();
    assert_eq!(s.volume.dims, [8, 6, 5]);
    assert_eq!(floats(&r["nib_shape"]), [6.0, 8.0, 5.0]);
    // nibabel's MultiframeWrapper orders frames by in-stack position, which runs along
    // column x row (its slice normal); Ward sorts along row x column. So Ward's voxel
    // (i, j, k) is nibabel's (j, i, 4 - k): check all eight corners.
    let nib = lps_to_ras(matrix(&r["nib_lps"]));
    for (i, j, k) in [0.0, 7.0]
        .into_iter()
        .flat_map(|i| [0.0, 5.0].map(move |j| (i, j)))
        .flat_map(|(i, j)| [0.0, 4.0].map(move |k| (i, j, k)))
    {
        let (a, b) = (
            apply(&s.volume.affine, [i, j, k]),
            apply(&nib, [j, i, 4.0 - k]),
        );
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() < 1e-6,
                "({i}, {j}, {k}): {a:?} vs nibabel {b:?}"
            );
        }
    }
    // Frames stored as in-stack positions [1, 4, 2, 5, 3]: Ward's k = 0 is position 5.
    let frames: Vec<Option<usize>> = s.slices.iter().map(|s| s.frame).collect();
    assert_eq!(frames, [Some(3), Some(1), Some(4), Some(2), Some(0)]);
    let reversed = |v: Vec<f64>| -> Vec<f64> { v.chunks(48).rev().flatten().copied().collect() };
    // Per-frame Rescale Intercept (-10 * frame), min-max over the volume.
    let values = reversed(floats(&r["values"]));
    assert_values(&s.volume.voxels, &min_max(&values, None), "min-max");
    // Each frame's second window (Frame VOI LUT Sequence), pydicom's apply_voi_lut.
    let s = read_file_volume(
        &path,
        DicomIntensity::FileWindow { index: 1 },
        SpacingCheck::Refuse,
    )
    .unwrap();
    assert_values(
        &s.volume.voxels,
        &reversed(floats(&r["window1"])),
        "window 1",
    );
    let e = read_file_volume(
        &path,
        DicomIntensity::FileWindow { index: 2 },
        SpacingCheck::Refuse,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("enhanced_mr.dcm: frame ")
            && e.contains("has 2 windows (Window Center/Width): window index 2 is out of range"),
        "{e}"
    );
    // A multi-frame file is not a 2D image.
    let e = read_dicom_file(&path, MIN_MAX).unwrap_err().to_string();
    assert!(e.contains("has 5 frames"), "{e}");
}

#[test]
fn classic_multiframe_is_placed_by_its_grid_frame_offsets() {
    // pydicom's rtdose.dcm: 15 frames of 10 x 10, Grid Frame Offset Vector 0, 5, ..., 70
    // mm, Dose Grid Scaling 1e-6.
    let path = pydicom_file("rtdose.dcm");
    let r = reference(&["rtdose", path.to_str().unwrap()]);
    let s = read_file_volume(&path, MIN_MAX, SpacingCheck::Refuse).unwrap();
    assert_eq!(s.volume.dims, [10, 10, 15]);
    assert_affine(&s.volume.affine, &matrix(&r["affine_ras"]));
    assert_in_plane_matches_nibabel(&s.volume.affine, &matrix(&r["nib_lps"]), [10, 10]);
    assert_values(
        &s.volume.voxels,
        &min_max(&floats(&r["values"]), None),
        "dose",
    );
    // Dose Grid Scaling is the slope: a range in Gy.
    let gy = read_file_volume(
        &path,
        DicomIntensity::Range {
            low: 0.0,
            high: 2.0,
        },
        SpacingCheck::Refuse,
    )
    .unwrap();
    let want: Vec<f64> = floats(&r["values"]).iter().map(|d| d / 2.0).collect();
    assert_values(&gy.volume.voxels, &want, "dose / 2 Gy");
}

#[test]
fn slice_gaps_are_refused_or_warned() {
    // Slices at z = 0, 2, 4, 8: the 4 mm gap is 2 mm off the 2 mm median (> 0.1 + 5 %).
    let dir = series_fixture("gap");
    let e = read_series_volume(&dir, MIN_MAX, SpacingCheck::Refuse)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&dir.display().to_string())
            && e.contains("1 of 3 gaps differ from the median gap 2.000 mm by more than 0.200 mm")
            && e.contains("4.000 mm between s2.dcm and s3.dcm")
            && e.contains("spacing-check = \"warn\""),
        "{e}"
    );
    let r = reference(&["series", dir.to_str().unwrap()]);
    let s = read_series_volume(&dir, MIN_MAX, SpacingCheck::Warn).unwrap();
    assert_eq!(s.warnings.len(), 1);
    assert!(
        s.warnings[0].starts_with(&dir.display().to_string())
            && s.warnings[0].contains("4.000 mm between s2.dcm and s3.dcm"),
        "{}",
        s.warnings[0]
    );
    // Read anyway: the mean step (8 - 0) / 3, as the reference computes it.
    assert_affine(&s.volume.affine, &matrix(&r["affine_ras"]));
    // pydicom's CT2 series: gaps 202.5, 1.25, 1.25 mm.
    let ct2 = pydicom_file("dicomdirtests/77654033/CT2");
    let e = read_series_volume(&ct2, MIN_MAX, SpacingCheck::Refuse)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("CT2") && e.contains("median gap 1.250 mm") && e.contains("202.500 mm"),
        "{e}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    fs_err::create_dir_all(to).unwrap();
    for entry in fs_err::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        fs_err::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn labelled_series_and_multiframe_files_with_warnings_in_the_dataset() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&series_fixture("oblique"), &dir.path().join("o1"));
    copy_dir(&series_fixture("oblique"), &dir.path().join("o2"));
    copy_dir(&series_fixture("gap"), &dir.path().join("g"));
    fs_err::copy(series_fixture("enhanced_mr.dcm"), dir.path().join("mf.dcm")).unwrap();
    let csv = dir.path().join("labels.csv");
    fs_err::write(&csv, "file,label\no1,1\ng,0\nmf.dcm,0\no2,1\n").unwrap();
    let mut options = DicomOptions {
        task: ImageTask::Binary,
        intensity: MIN_MAX,
        depth: 4,
        height: 6,
        width: 8,
        resample: Resample::Nearest,
        bad_file: BadFile::Skip,
        spacing_check: SpacingCheck::Refuse,
        geometry: ward_data::geometry::VolumeGeometry::KEEP,
        fit: ward_data::geometry::Fit::Resize,
    };
    let loaded = read_dicom_series(dir.path(), &csv, &options).unwrap();
    assert_eq!(loaded.data.labels, [1, 0, 1]);
    assert_eq!(loaded.data.shape, ImageShape::d3(1, 4, 6, 8));
    assert_eq!(loaded.skipped.len(), 1);
    assert!(loaded.skipped[0].path.ends_with("g"));
    assert!(loaded.warnings.is_empty());
    // Same size, nearest: the oblique series comes through in its sorted order.
    let o1 = read_series_volume(&dir.path().join("o1"), MIN_MAX, SpacingCheck::Refuse).unwrap();
    assert_eq!(loaded.data.image(0), o1.volume.voxels.as_slice());
    options.spacing_check = SpacingCheck::Warn;
    let loaded = read_dicom_series(dir.path(), &csv, &options).unwrap();
    assert_eq!(loaded.data.labels, [1, 0, 0, 1]);
    assert!(loaded.skipped.is_empty());
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].contains("slice spacing is not uniform"));

    // Through the experiment file: the warning reaches the dataset's warnings.
    let data = |check: &str| {
        format!(
            "[data]\ndataset = \"dicom\"\npath = \"labels.csv\"\ntest-fraction = 0.5\n\
             [data.images]\ntask = \"binary\"\ndims = \"3d\"\n\
             [data.reader]\nheight = 6\nwidth = 8\ndepth = 4\nseries = true\n{check}\n\
             [model]\nkind = \"cnn\"\n"
        )
    };
    let spec = |text: &str| -> ExperimentSpec {
        let s: ExperimentSpec = toml::from_str(text).unwrap();
        s.validate().unwrap();
        s
    };
    let d = load(&spec(&data("spacing-check = \"warn\"")).data, dir.path()).unwrap();
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(
        d.warnings[0].contains("g: slice spacing is not uniform"),
        "{}",
        d.warnings[0]
    );
    let e = load(&spec(&data("")).data, dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("slice spacing is not uniform"), "{e}");
}

#[test]
fn padding_is_left_out_of_min_max_and_black() {
    // Stored values in [-2000, -1900] (Pixel Padding Value and Range Limit) are padding;
    // -1899 is not. Without the exclusion the minimum would be the padding's -3024 HU.
    let path = series_fixture("padding.dcm");
    let r = reference(&["single", path.to_str().unwrap()]);
    let pad: Vec<bool> = r["padded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_bool().unwrap())
        .collect();
    assert_eq!(pad.iter().filter(|p| **p).count(), 11);
    let img = read_dicom_file(&path, MIN_MAX).unwrap();
    assert_values(
        &img.pixels,
        &min_max(&floats(&r["values"]), Some(&pad)),
        "padding",
    );
    // The lowest real value is stored -1899 (-2923 HU, pixel 11), not the padding.
    assert_eq!((img.pixels[11], img.pixels[47]), (0.0, 1.0));
    // A window maps padding to 0 too.
    let w = read_dicom_file(
        &path,
        DicomIntensity::Window {
            center: -3000.0,
            width: 100.0,
        },
    )
    .unwrap();
    assert_eq!(&w.pixels[..11], &[0.0; 11]);
    // pydicom's 693_J2KI.dcm (JPEG 2000, 512 x 512, Pixel Padding Value -2000): pydicom
    // 2.3.1 finds 494 stored values of -2000 (the first at [0, 72]) and, without them,
    // modality values from -3995 (only at [460, 412]) to 1812 (first at [140, 188]);
    // pixel [0, 0] stores -2016: (-3040 + 3995) / 5807.
    let img = read_dicom_file(&pydicom_file("693_J2KI.dcm"), MIN_MAX).unwrap();
    assert_eq!(img.pixels.iter().filter(|v| **v == 0.0).count(), 494 + 1);
    assert!((f64::from(img.pixels[0]) - 955.0 / 5807.0).abs() < 1e-6);
    assert_eq!(img.pixels[72], 0.0);
    assert_eq!(img.pixels[460 * 512 + 412], 0.0);
    assert_eq!(img.pixels[140 * 512 + 188], 1.0);
}

#[test]
fn windows_and_voi_luts_by_index_match_pydicom() {
    for (file, count, what) in [
        ("windows.dcm", 3, "windows"),
        ("voi_lut.dcm", 2, "VOI LUT Sequence items"),
    ] {
        let path = series_fixture(file);
        for index in 0..count {
            let r = reference(&["voi", path.to_str().unwrap(), &index.to_string()]);
            let img = read_dicom_file(&path, DicomIntensity::FileWindow { index }).unwrap();
            assert_values(
                &img.pixels,
                &floats(&r["values"]),
                &format!("{file} {index}"),
            );
        }
        let e = read_dicom_file(&path, DicomIntensity::FileWindow { index: count })
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(file) && e.contains(&format!("has {count} {what}")),
            "{e}"
        );
    }
}

/// A change to one file of a series.
type Edit = Box<dyn FnOnce(&mut dicom_object::DefaultDicomObject)>;

/// A copy of the oblique series in `dir` with `edit` applied to `c.dcm`.
fn edited_series(dir: &Path, edit: impl FnOnce(&mut dicom_object::DefaultDicomObject)) -> PathBuf {
    let out = dir.join("series");
    let _ = fs_err::remove_dir_all(&out);
    copy_dir(&series_fixture("oblique"), &out);
    let p = out.join("c.dcm");
    let mut obj = dicom_object::open_file(&p).unwrap();
    edit(&mut obj);
    obj.write_to_file(&p).unwrap();
    out
}

/// A decimal-string element with these values.
fn ds(tag: dicom_core::Tag, values: &[&str]) -> DataElement<dicom_object::InMemDicomObject> {
    let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
    DataElement::new(tag, VR::DS, PrimitiveValue::Strs(values.into()))
}

#[test]
fn bad_geometry_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = |series: PathBuf| {
        read_series_volume(&series, MIN_MAX, SpacingCheck::Warn)
            .unwrap_err()
            .to_string()
    };
    let cases: [(&str, Edit); 5] = [
        (
            "c.dcm: cannot be placed in a volume: has no Image Position (Patient)",
            Box::new(|o| {
                o.remove_element(tags::IMAGE_POSITION_PATIENT);
            }),
        ),
        (
            "c.dcm: cannot be placed in a volume: Image Position (Patient) (0020,0032) [",
            Box::new(|o| {
                o.put(ds(tags::IMAGE_POSITION_PATIENT, &["1", "nan", "3"]));
            }),
        ),
        (
            "c.dcm: cannot be placed in a volume: Pixel Spacing [0, 0.6] must be two positive",
            Box::new(|o| {
                o.put(ds(tags::PIXEL_SPACING, &["0", "0.6"]));
            }),
        ),
        (
            "c.dcm has Pixel Spacing [0.8, 0.7], but a.dcm has [0.8, 0.6]",
            Box::new(|o| {
                o.put(ds(tags::PIXEL_SPACING, &["0.8", "0.7"]));
            }),
        ),
        (
            "c.dcm has Image Orientation (Patient) [1, 0, 0, 0, 1, 0]",
            Box::new(|o| {
                o.put(ds(
                    tags::IMAGE_ORIENTATION_PATIENT,
                    &["1", "0", "0", "0", "1", "0"],
                ));
            }),
        ),
    ];
    for (want, edit) in cases {
        let e = err(edited_series(dir.path(), edit));
        assert!(e.contains(want), "want {want:?} in: {e}");
    }
    // Two slices at one position (a copy of a.dcm).
    let series = edited_series(dir.path(), |_| {});
    fs_err::copy(series.join("a.dcm"), series.join("e.dcm")).unwrap();
    assert!(err(series).contains("a.dcm and e.dcm lie at the same position"));
    // A multi-frame file inside a series folder.
    let series = edited_series(dir.path(), |_| {});
    fs_err::copy(series_fixture("enhanced_mr.dcm"), series.join("z.dcm")).unwrap();
    assert!(err(series).contains("z.dcm: has 5 frames"));
    // pydicom's MR1 mixes series; MR700 is one series of seven differently oriented
    // slices.
    let e = err(pydicom_file("dicomdirtests/98892003/MR1"));
    assert!(e.contains("one folder per series"), "{e}");
    let e = err(pydicom_file("dicomdirtests/98892003/MR700"));
    assert!(
        e.contains("the slices of one volume must share one orientation"),
        "{e}"
    );
    // A classic multi-frame file without per-frame positions.
    let p = dir.path().join("dose.dcm");
    let mut obj = dicom_object::open_file(pydicom_file("rtdose.dcm")).unwrap();
    obj.remove_element(tags::GRID_FRAME_OFFSET_VECTOR);
    obj.write_to_file(&p).unwrap();
    let e = read_file_volume(&p, MIN_MAX, SpacingCheck::Refuse)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dose.dcm: frame 1: cannot be placed in a volume: is a multi-frame file without per-frame positions"),
        "{e}"
    );
}

/// A DICOM series goes through the same geometry as NIfTI: reoriented to RAS it equals
/// nibabel's `as_closest_canonical` of the same stack (affine and values); with a spacing
/// and crop-or-pad, `read_dicom_series` gives exactly the composition of those steps.
#[test]
fn dicom_series_reoriented_to_ras_match_nibabel_canonical() {
    use ward_data::geometry::{Fit, Orientation, VolumeGeometry};
    let dir = series_fixture("oblique");
    let want = reference(&["canonical", dir.to_str().unwrap()]);
    assert_eq!(want["codes"], "LPS", "the fixture is stored LPS-wise");
    let dims: Vec<usize> = want["dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let v = read_series_volume(&dir, MIN_MAX, SpacingCheck::Refuse)
        .unwrap()
        .volume;
    let ras = v.reoriented(Orientation::RAS).unwrap();
    assert_eq!(ras.dims.to_vec(), dims);
    assert_affine(&ras.affine, &matrix(&want["affine"]));
    assert_eq!(ras.orientation().unwrap(), Orientation::RAS);

    // Through the labelled reader, at the volume's own size (a resize to the same size
    // is the identity).
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&dir, &tmp.path().join("o"));
    let csv = tmp.path().join("labels.csv");
    fs_err::write(&csv, "file,label\no,1\n").unwrap();
    let mut options = DicomOptions {
        task: ImageTask::Binary,
        intensity: MIN_MAX,
        depth: dims[2],
        height: dims[1],
        width: dims[0],
        resample: Resample::Linear,
        bad_file: BadFile::Fail,
        spacing_check: SpacingCheck::Refuse,
        geometry: VolumeGeometry::default(),
        fit: Fit::Resize,
    };
    let loaded = read_dicom_series(tmp.path(), &csv, &options).unwrap();
    let values = floats(&want["values"]);
    for (i, (a, b)) in loaded.data.image(0).iter().zip(&values).enumerate() {
        assert!((f64::from(*a) - b).abs() < 1e-5, "voxel {i}: {a} vs {b}");
    }
    // A 1.5 mm grid cropped or padded to 6 x 6 x 6.
    options.geometry.spacing = Some([1.5; 3]);
    options.fit = Fit::CropOrPad;
    (options.depth, options.height, options.width) = (6, 6, 6);
    let loaded = read_dicom_series(tmp.path(), &csv, &options).unwrap();
    let composed = ras
        .resampled([1.5; 3], Resample::Linear, true)
        .unwrap()
        .crop_or_pad([6, 6, 6], 0.0)
        .unwrap();
    assert_eq!(loaded.data.image(0), composed.voxels.as_slice());
}
