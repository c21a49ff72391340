//! NIfTI geometry against the Python reference implementations: nibabel 5.0 (affines,
//! `aff2axcodes`, `as_reoriented`, `slicer`), scipy 1.10 (`ndimage.gaussian_filter`,
//! `ndimage.map_coordinates`), numpy 1.24 (`percentile`, z-scores) and pydicom 2.3
//! (`apply_windowing`), as Debian packages them. `fixtures/nifti_geometry_reference.py`
//! writes the NIfTI files (with rotated, anisotropic, flipped and permuted affines; sform,
//! qform with qfac -1, and the pixdim fallback) and the reference values at test time.
//!
//! These tests need `/usr/bin/python3` with nibabel, scipy and pydicom, and fail (never
//! skip) without them: `apt-get install python3-nibabel python3-scipy python3-pydicom`.
//!
//! Tolerances: affines within 1e-9 mm (nibabel computes in float64 from the header's
//! float32 fields, as Ward does); reoriented, cropped and nearest-resampled voxels exactly
//! equal (they are copies); linearly resampled voxels within 1e-6 of the volume's largest
//! absolute value (Ward sums in `f32`, scipy in `f64`); intensities in `[0, 1]` within
//! 1e-6.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use ward_data::geometry::VolumeGeometry;
use ward_data::geometry::{Affine, Orientation, SpatialVolume};
use ward_data::readers::nifti::{prepare_volume, read_volume};
use ward_data::readers::{Intensity, Resample};

/// The interpreter with nibabel, scipy and pydicom (Debian's, not a pyenv shim).
fn python() -> &'static str {
    ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", "import nibabel, scipy.ndimage, pydicom"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect(
            "a python3 with nibabel, scipy and pydicom is needed for the NIfTI geometry \
             reference: apt-get install python3-nibabel python3-scipy python3-pydicom",
        )
}

/// Runs the reference script for `case`; its files and `reference.json` lie in the
/// returned folder.
fn reference(case: &str) -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nifti_geometry_reference.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(case)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {case} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs_err::read_to_string(dir.path().join("reference.json")).unwrap();
    (dir, serde_json::from_str(&text).unwrap())
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn dims(v: &Value) -> [usize; 3] {
    let d: Vec<usize> = numbers(v).into_iter().map(|x| x as usize).collect();
    [d[0], d[1], d[2]]
}

fn affine(v: &Value) -> Affine {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(numbers).collect();
    std::array::from_fn(|r| std::array::from_fn(|c| rows[r][c]))
}

fn assert_affine(got: &Affine, want: &Value, what: &str) {
    let want = affine(want);
    let err = (0..16)
        .map(|e| (got[e / 4][e % 4] - want[e / 4][e % 4]).abs())
        .fold(0.0, f64::max);
    assert!(
        err < 1e-9,
        "{what}: affine off by {err:e}\n got {got:?}\nwant {want:?}"
    );
}

/// Asserts `got` matches the reference volume `want` (`dims`, `affine`, `voxels`):
/// voxels within `tol` times the largest absolute reference value, or with `tol = 0`
/// exactly the `f32` the reference holds (the JSON's float64 parsed back may differ in
/// the last bits; the volumes are float32).
fn assert_volume(got: &SpatialVolume, want: &Value, tol: f64, what: &str) {
    assert_eq!(got.dims, dims(&want["dims"]), "{what}: dims");
    assert_affine(&got.affine, &want["affine"], what);
    let want = numbers(&want["voxels"]);
    assert_eq!(got.voxels.len(), want.len(), "{what}: voxel count");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let (i, err) = got
        .voxels
        .iter()
        .zip(&want)
        .map(|(g, w)| {
            if tol == 0.0 && *w as f32 == *g {
                0.0
            } else {
                (f64::from(*g) - w).abs()
            }
        })
        .enumerate()
        .fold(
            (0, 0.0),
            |(bi, be), (i, e)| if e > be { (i, e) } else { (bi, be) },
        );
    assert!(
        err <= tol * scale,
        "{what}: voxel {i} is {} but the reference says {} (error {err:e}, allowed {:e})",
        got.voxels[i],
        want[i],
        tol * scale
    );
}

fn file(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Each way nibabel finds an affine (sform over a different qform, sform only, an
/// LPS-like permuted sform, qform only with qfac = -1, the pixdim fallback): the affine,
/// its axis codes, and the reorientation to RAS, LPS, LAS and PIR, voxels and affine, are
/// nibabel's.
#[test]
fn nifti_affines_and_reorientation_match_nibabel() {
    let (dir, refs) = reference("affines");
    let refs = refs.as_object().unwrap();
    assert_eq!(refs.len(), 5);
    for (name, want) in refs {
        let v = read_volume(&file(&dir, name)).unwrap();
        assert_volume(&v, want, 0.0, name);
        assert_eq!(
            v.orientation().unwrap().to_string(),
            want["axcodes"].as_str().unwrap(),
            "{name}"
        );
        for (code, r) in want["reoriented"].as_object().unwrap() {
            let got = v.reoriented(code.parse().unwrap()).unwrap();
            assert_volume(&got, r, 0.0, &format!("{name} as {code}"));
        }
    }
}

/// The acceptance check of issue 14: a NIfTI with a rotated (20 degrees about x and z),
/// anisotropic (0.8 x 1.2 x 3.0 mm), LIA-stored affine lands in RAS at the target
/// spacing (2 mm): voxels as scipy's anti-aliased trilinear resampling on MONAI's grid,
/// the affine as nibabel's reorientation with MONAI's rescaled columns, axis codes RAS,
/// voxel sizes the target.
#[test]
fn rotated_anisotropic_nifti_lands_in_ras_at_the_target_spacing() {
    let (dir, refs) = reference("spacing");
    let v = read_volume(&file(&dir, "oblique.nii.gz")).unwrap();
    assert_eq!(v.orientation().unwrap().to_string(), "LIA");
    let ras = v.reoriented(Orientation::RAS).unwrap();
    assert_eq!(ras.dims, dims(&refs["ras_dims"]));
    assert_affine(&ras.affine, &refs["ras_affine"], "RAS");
    let want = &refs["linear"];
    let spacing = numbers(&want["spacing"]);
    let out = ras
        .resampled([spacing[0], spacing[1], spacing[2]], Resample::Linear, true)
        .unwrap();
    assert_volume(&out, want, 1e-6, "2 mm trilinear, anti-aliased");
    assert_eq!(out.orientation().unwrap(), Orientation::RAS);
    for (got, want) in out.voxel_sizes().iter().zip(&spacing) {
        assert!((got - want).abs() < 1e-9, "{:?}", out.voxel_sizes());
    }
    // The reader's own path (prepare_volume: read, reorient, resample, map) agrees.
    let geometry = VolumeGeometry {
        orientation: Some(Orientation::RAS),
        spacing: Some([spacing[0], spacing[1], spacing[2]]),
        antialias: true,
    };
    let (low, high) = (-1000.0f32, 1000.0f32);
    let read = prepare_volume(
        &file(&dir, "oblique.nii.gz"),
        &geometry,
        Resample::Linear,
        Intensity::Range { low, high },
    )
    .unwrap();
    assert_eq!((read.dims, read.affine), (out.dims, out.affine));
    for (r, o) in read.voxels.iter().zip(&out.voxels) {
        assert!((r - (o - low) / (high - low)).abs() < 1e-6);
    }
}

/// Nearest-neighbour resampling to an uneven spacing takes exactly the voxels scipy's
/// `map_coordinates(order=0)` takes (no smoothing), and a fixed-size resize matches
/// scipy's anti-aliased half-voxel resampling.
#[test]
fn nearest_spacing_and_resize_match_scipy() {
    let (dir, refs) = reference("spacing");
    let ras = read_volume(&file(&dir, "oblique.nii.gz"))
        .unwrap()
        .reoriented(Orientation::RAS)
        .unwrap();
    let want = &refs["nearest"];
    let s = numbers(&want["spacing"]);
    let out = ras
        .resampled([s[0], s[1], s[2]], Resample::Nearest, true)
        .unwrap();
    assert_volume(&out, want, 0.0, "nearest");
    let want = &refs["resize"];
    let out = ras
        .resized(dims(&want["dims"]), Resample::Linear, true)
        .unwrap();
    assert_volume(&out, want, 1e-6, "resize");
    let want = &refs["crop"];
    let out = ras.crop_or_pad(dims(&want["dims"]), 0.0).unwrap();
    assert_volume(&out, want, 0.0, "centred crop vs nibabel slicer");
}

/// Percentiles (numpy's linear), z-scores (numpy mean/std, clipped to +-3 and mapped by
/// (z + 3) / 6, also over non-zero voxels) and a CT window (pydicom's apply_windowing,
/// LINEAR) of a volume, per voxel.
#[test]
fn intensity_mappings_match_numpy_and_pydicom() {
    let (dir, refs) = reference("intensity");
    let storage = VolumeGeometry {
        orientation: None,
        spacing: None,
        antialias: true,
    };
    for (key, intensity) in [
        (
            "percentile",
            Intensity::Percentile {
                low: 2.0,
                high: 98.0,
            },
        ),
        ("z_score", Intensity::ZScore { nonzero: false }),
        ("z_score_nonzero", Intensity::ZScore { nonzero: true }),
        (
            "window",
            Intensity::Window {
                center: 40.0,
                width: 400.0,
            },
        ),
    ] {
        let v = prepare_volume(
            &file(&dir, "oblique.nii.gz"),
            &storage,
            Resample::Linear,
            intensity,
        )
        .unwrap();
        let want = numbers(&refs[key]);
        assert_eq!(v.voxels.len(), want.len());
        for (i, (g, w)) in v.voxels.iter().zip(&want).enumerate() {
            assert!(
                (f64::from(*g) - w).abs() < 1e-6,
                "{key}: voxel {i} is {g}, numpy/pydicom say {w}"
            );
        }
    }
}

/// Patches a copy of the `vol_a.nii` fixture (little-endian NIfTI-1, no sform or qform)
/// with `(offset, bytes)` header edits.
fn patched(dir: &Path, name: &str, edits: &[(usize, Vec<u8>)]) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vol_a.nii");
    let mut bytes = fs_err::read(from).unwrap();
    for (at, b) in edits {
        bytes[*at..*at + b.len()].copy_from_slice(b);
    }
    let to = dir.join(name);
    fs_err::write(&to, bytes).unwrap();
    to
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Unusable affines are errors naming the file and the transform, never panics.
#[test]
fn bad_affines_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // NIfTI-1 header offsets: pixdim 76, qform_code 252, sform_code 254, quatern_b 256,
    // srow_x 280, srow_y 296, srow_z 312.
    let sform = 1i16.to_le_bytes().to_vec();
    let qform = sform.clone();
    let cases = [
        (
            "nan.nii",
            vec![
                (254, sform.clone()),
                (280, f32s(&[f32::NAN, 0.0, 0.0, 0.0])),
            ],
            "sform",
            "NaN",
        ),
        (
            "singular.nii",
            vec![
                (254, sform.clone()),
                (280, f32s(&[1.0, 1.0, 0.0, 0.0])),
                (296, f32s(&[0.0, 0.0, 1.0, 0.0])),
                (312, f32s(&[0.0, 0.0, 0.0, 0.0])),
            ],
            "sform",
            "singular",
        ),
        (
            "zero_qform.nii",
            vec![(252, qform.clone()), (80, f32s(&[0.0]))],
            "qform",
            "pixdim",
        ),
        (
            "zero_fallback.nii",
            vec![(84, f32s(&[0.0]))],
            "fallback",
            "pixdim",
        ),
        (
            "quaternion.nii",
            vec![(252, qform), (256, f32s(&[0.9, 0.9, 0.9]))],
            "quaternion",
            "not a rotation",
        ),
    ];
    for (name, edits, which, why) in cases {
        let e = read_volume(&patched(dir.path(), name, &edits))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(name) && e.contains(which) && e.contains(why),
            "{name}: {e}"
        );
    }
}
