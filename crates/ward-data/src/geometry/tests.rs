use super::*;

const IDENTITY: Affine = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
];

/// A volume whose voxel value is its flat index.
fn ramp(dims: [usize; 3], affine: Affine) -> SpatialVolume {
    let n = dims.iter().product::<usize>();
    SpatialVolume::new(dims, (0..n).map(|v| v as f32).collect(), affine).unwrap()
}

fn world(a: &Affine, ijk: [f64; 3]) -> [f64; 3] {
    std::array::from_fn(|r| (0..3).map(|c| a[r][c] * ijk[c]).sum::<f64>() + a[r][3])
}

#[test]
fn orientation_codes_parse_and_print() {
    for code in ["RAS", "LPS", "LAS", "PIR", "SAL"] {
        assert_eq!(code.parse::<Orientation>().unwrap().to_string(), code);
    }
    for (code, why) in [
        ("RA", "three letters"),
        ("RAX", "R, L, A, P, S or I"),
        ("ras", "R, L, A, P, S or I"),
        ("RLS", "one world axis twice"),
    ] {
        let e = code.parse::<Orientation>().unwrap_err().to_string();
        assert!(e.contains(why) && e.contains(code), "{e}");
    }
}

#[test]
fn orientation_of_simple_affines() {
    let mut a = IDENTITY;
    assert_eq!(Orientation::of_affine(&a).unwrap(), Orientation::RAS);
    // nibabel's default fallback affine diag(-1, 1, 1): LAS.
    a[0][0] = -2.0;
    assert_eq!(Orientation::of_affine(&a).unwrap().to_string(), "LAS");
    // i along -z, j along +x, k along -y.
    let b = [
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, -3.0, 0.0],
        [-0.5, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    assert_eq!(Orientation::of_affine(&b).unwrap().to_string(), "IRP");
}

#[test]
fn bad_affines_are_errors_not_panics() {
    let mut nan = IDENTITY;
    nan[1][2] = f64::NAN;
    let mut zero = IDENTITY;
    zero[0][0] = 0.0;
    let mut parallel = IDENTITY;
    parallel[0][1] = 1.0;
    parallel[1][1] = 0.0;
    let mut row = IDENTITY;
    row[3][0] = 1.0;
    for (a, why) in [
        (nan, "NaN"),
        (zero, "size 0"),
        (parallel, "singular"),
        (row, "last row"),
    ] {
        let e = Orientation::of_affine(&a).unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
        let e = SpatialVolume::new([1, 1, 1], vec![0.0], a)
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{e}");
    }
    let e = SpatialVolume::new([2, 2, 2], vec![0.0; 7], IDENTITY).unwrap_err();
    assert!(e.to_string().contains("7 voxels"), "{e}");
}

/// Reorientation moves voxels, never values, and every voxel stays where it was in the
/// world; reorienting back gives the original.
#[test]
fn reorientation_keeps_every_voxel_in_place() {
    let a = [
        [0.0, 0.0, -2.0, 10.0],
        [-1.5, 0.0, 0.0, 20.0],
        [0.0, 3.0, 0.0, -5.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let v = ramp([4, 3, 2], a);
    assert_eq!(v.orientation().unwrap().to_string(), "PSL");
    for code in ["RAS", "LPS", "SPL", "AIR"] {
        let target: Orientation = code.parse().unwrap();
        let r = v.reoriented(target).unwrap();
        assert_eq!(r.orientation().unwrap(), target);
        for (flat, &value) in r.voxels.iter().enumerate() {
            let [ni, nj, _] = r.dims;
            let ijk = [flat % ni, (flat / ni) % nj, flat / (ni * nj)].map(|x| x as f64);
            // The original voxel with this value sits at the same world point.
            let o = value as usize;
            let oijk = [o % 4, (o / 4) % 3, o / 12].map(|x| x as f64);
            let (p, q) = (world(&r.affine, ijk), world(&a, oijk));
            assert!((0..3).all(|n| (p[n] - q[n]).abs() < 1e-12), "{code}");
        }
        assert_eq!(r.reoriented(v.orientation().unwrap()).unwrap(), v);
    }
}

#[test]
fn crop_or_pad_puts_the_odd_voxel_like_monai() {
    // Padding: floor(diff / 2) before. Cropping: start n/2 - to/2 (MONAI CenterSpatialCrop).
    assert_eq!(crop_or_pad_start(4, 7), -1);
    assert_eq!(crop_or_pad_start(5, 4), 0);
    assert_eq!(crop_or_pad_start(6, 3), 2);
    assert_eq!(crop_or_pad_start(7, 4), 1);
    assert_eq!(crop_or_pad_start(5, 5), 0);
    let v = ramp([5, 2, 1], IDENTITY);
    let c = v.crop_or_pad([2, 4, 1], -1.0).unwrap();
    // i: 5 -> 2 starts at 1; j: 2 -> 4 pads one row before and one after.
    assert_eq!(c.voxels, vec![-1.0, -1.0, 1.0, 2.0, 6.0, 7.0, -1.0, -1.0]);
    assert_eq!(world(&c.affine, [0.0, 1.0, 0.0]), [1.0, 0.0, 0.0]);
}

#[test]
fn slices_follow_the_anatomical_axis() {
    // LPS storage reoriented to RAS, then cut: axial slices are A x R.
    let v = ramp([4, 3, 2], IDENTITY);
    let axial = v.slices(SliceAxis::Axial).unwrap();
    assert_eq!(axial.len(), 2);
    assert_eq!(axial[1].dims, [4, 3, 1]);
    assert_eq!(axial[1].voxels[0], 12.0);
    let coronal = v.slices(SliceAxis::Coronal).unwrap();
    assert_eq!((coronal.len(), coronal[2].dims), (3, [4, 2, 1]));
    // Coronal slice j = 2, pixel (i = 1, k = 1): 1 + 4 * 2 + 12.
    assert_eq!(coronal[2].voxels[4 + 1], 21.0);
    let sagittal = v.slices(SliceAxis::Sagittal).unwrap();
    assert_eq!((sagittal.len(), sagittal[3].dims), (4, [3, 2, 1]));
    assert_eq!(sagittal[3].voxels[3 + 2], 3.0 + 4.0 * 2.0 + 12.0);
    // Each slice pixel keeps its world position.
    assert_eq!(world(&sagittal[3].affine, [2.0, 1.0, 0.0]), [3.0, 2.0, 1.0]);
    // A volume stored with k along A: axial slices are along j.
    let a = [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    assert_eq!(
        ramp([4, 3, 2], a).slices(SliceAxis::Axial).unwrap().len(),
        3
    );
}

#[test]
fn resampling_rejects_bad_spacings_and_sizes() {
    let v = ramp([4, 3, 2], IDENTITY);
    for s in [[0.0, 1.0, 1.0], [1.0, f64::NAN, 1.0], [1.0, 1.0, -2.0]] {
        let e = v.resampled(s, Resample::Linear, true).unwrap_err();
        assert!(e.to_string().contains("finite and > 0"), "{e}");
    }
    let e = v.resampled([1e-6; 3], Resample::Linear, true).unwrap_err();
    assert!(e.to_string().contains("more than"), "{e}");
    assert!(v.resized([0, 1, 1], Resample::Linear, true).is_err());
    assert!(v.crop_or_pad([1 << 20, 1 << 20, 1], 0.0).is_err());
    // Same spacing: the same volume.
    let same = v.resampled([1.0; 3], Resample::Linear, true).unwrap();
    assert_eq!(same, v);
    // Nearest at 2 mm: every other voxel, values unchanged.
    let half = v
        .resampled([2.0, 2.0, 1.0], Resample::Nearest, true)
        .unwrap();
    assert_eq!(half.dims, [3, 2, 2]);
    assert_eq!(half.voxels[..3], [0.0, 2.0, 3.0]);
    assert_eq!(half.voxel_sizes(), [2.0, 2.0, 1.0]);
}
