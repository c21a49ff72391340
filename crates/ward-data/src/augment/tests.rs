use super::*;
use ward_core::config::ElasticSpec;

fn spec() -> AugmentSpec {
    AugmentSpec::default()
}

/// A `d x h x w` array with distinct values (a ramp), scaled into `[0, 1]`.
fn ramp(dims: [usize; 3]) -> Vec<f32> {
    let n: usize = dims.iter().product();
    (0..n).map(|i| i as f32 / n as f32).collect()
}

fn spatial(matrix: [[f64; 3]; 3], shift: [f64; 3]) -> Spatial {
    Spatial {
        flip: [false; 3],
        matrix,
        shift,
        elastic: None,
        resample: true,
    }
}

#[test]
fn off_changes_nothing_and_draws_nothing() {
    let shape = ImageShape::d2(1, 4, 4);
    let mut a = Augmenter::new(spec(), shape, 1).unwrap();
    let b = a.clone();
    let mut x = ramp([1, 4, 8]);
    a.apply(&mut x, 2);
    assert_eq!(x, ramp([1, 4, 8]));
    assert_eq!(a, b, "the stream must not move");
}

#[test]
fn flips_are_exact_on_every_axis_and_depth_is_refused_for_2d() {
    let dims = [2, 3, 4];
    let orig = ramp(dims);
    for (axis, a) in [ImageAxis::Depth, ImageAxis::Height, ImageAxis::Width]
        .into_iter()
        .enumerate()
    {
        let s = AugmentSpec {
            flip: vec![a],
            ..spec()
        };
        let mut aug = Augmenter::new(s, ImageShape::d3(1, 2, 3, 4), 5).unwrap();
        let (mut flipped, mut kept) = (0, 0);
        for _ in 0..40 {
            let mut x = orig.clone();
            aug.apply(&mut x, 1);
            if x == orig {
                kept += 1;
                continue;
            }
            flipped += 1;
            for z in 0..2 {
                for y in 0..3 {
                    for xx in 0..4 {
                        let mut p = [z, y, xx];
                        p[axis] = dims[axis] - 1 - p[axis];
                        assert_eq!(
                            x[(z * 3 + y) * 4 + xx],
                            orig[(p[0] * 3 + p[1]) * 4 + p[2]],
                            "axis {a:?}"
                        );
                    }
                }
            }
        }
        // Probability 1/2 each: 40 draws all one way has probability 2^-39.
        assert!(
            flipped > 0 && kept > 0,
            "{a:?}: {flipped} flipped, {kept} kept"
        );
    }
    let e = Augmenter::new(
        AugmentSpec {
            flip: vec![ImageAxis::Depth],
            ..spec()
        },
        ImageShape::d2(1, 4, 4),
        1,
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("train.augment.flip"), "{e}");
}

#[test]
fn identity_resampling_is_exact_and_a_quarter_turn_is_rot90() {
    let dims = [1, 5, 5];
    let orig = ramp(dims);
    let mut x = orig.clone();
    transform(&mut x, dims, &spatial(identity(), [0.0; 3]), Some(0.0));
    assert_eq!(x, orig);
    // Output (y, x) samples input at R·(p − c) + c with R a +90° in-plane rotation:
    // (y', x') = (c − (x − c), c + (y − c))... i.e. input row 4 − x, column y.
    let mut x = orig.clone();
    let r = rotation(0, std::f64::consts::FRAC_PI_2);
    transform(&mut x, dims, &spatial(r, [0.0; 3]), Some(0.0));
    for y in 0..5 {
        for xx in 0..5 {
            let want = orig[(4 - xx) * 5 + y];
            assert!((x[y * 5 + xx] - want).abs() < 1e-6, "({y}, {xx})");
        }
    }
    // A volume turned a quarter about the height axis: (z, x) plane rotates, y is kept.
    let dims = [3, 2, 3];
    let orig = ramp(dims);
    let mut x = orig.clone();
    transform(
        &mut x,
        dims,
        &spatial(rotation(1, std::f64::consts::FRAC_PI_2), [0.0; 3]),
        Some(0.0),
    );
    for z in 0..3 {
        for y in 0..2 {
            for xx in 0..3 {
                let want = orig[((2 - xx) * 2 + y) * 3 + z];
                assert!((x[(z * 2 + y) * 3 + xx] - want).abs() < 1e-6);
            }
        }
    }
}

#[test]
fn a_translation_moves_content_and_fills_with_the_minimum() {
    let dims = [1, 1, 4];
    let mut x = vec![0.5, 0.6, 0.7, 0.8];
    // Shift +1 along width: output x samples input x − 1; column 0 is outside.
    transform(
        &mut x,
        dims,
        &spatial(identity(), [0.0, 0.0, 1.0]),
        Some(0.5),
    );
    assert_eq!(x, vec![0.5, 0.5, 0.6, 0.7]);
    // Half a voxel: linear interpolation.
    let mut x = vec![0.0, 1.0, 0.0, 1.0];
    transform(
        &mut x,
        dims,
        &spatial(identity(), [0.0, 0.0, 0.5]),
        Some(0.0),
    );
    assert_eq!(x, vec![0.0, 0.5, 0.5, 0.5]);
}

#[test]
fn bspline_weights_are_a_partition_of_unity_and_bound_the_field() {
    for t in [0.0, 0.25, 0.5, 0.9] {
        let w = bspline_weights(t);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(w.iter().all(|&v| v >= 0.0));
    }
    // Every coefficient 1: the field is 1 everywhere (2D and 3D).
    let n = 6;
    let ones2 = vec![1.0f32; n * n];
    let f = bspline_field(&ones2, n, [1, 9, 11], false);
    assert!(f.iter().all(|v| (v - 1.0).abs() < 1e-6));
    let ones3 = vec![1.0f32; n * n * n];
    let f = bspline_field(&ones3, n, [5, 7, 8], true);
    assert!(f.iter().all(|v| (v - 1.0).abs() < 1e-6));
    // Drawn fields never exceed the largest coefficient (a convex combination).
    let s = AugmentSpec {
        elastic: Some(ElasticSpec {
            control_points: 7,
            max_displacement: 3.0,
        }),
        ..spec()
    };
    let mut aug = Augmenter::new(s, ImageShape::d3(1, 8, 9, 10), 3).unwrap();
    let t = aug.draw_spatial([8, 9, 10]);
    let e = t.elastic.unwrap();
    let largest = e.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(largest > 0.0 && largest <= 3.0, "{largest}");
}

/// The same spatial transform reaches an image and its mask: where the interpolated image
/// is clearly inside or outside the object, the nearest-neighbour mask agrees.
#[test]
fn image_and_mask_move_together() {
    for (shape, dims) in [
        (ImageShape::d2(1, 24, 24), [1, 24, 24]),
        (ImageShape::d3(1, 12, 12, 12), [12, 12, 12]),
    ] {
        let s = AugmentSpec {
            flip: vec![ImageAxis::Width, ImageAxis::Height],
            rotate: 30.0,
            scale: 0.2,
            translate: 0.1,
            elastic: Some(ElasticSpec {
                control_points: 5,
                max_displacement: 1.5,
            }),
            ..spec()
        };
        let mut aug = Augmenter::new(s, shape, 11).unwrap();
        // An off-centre box.
        let [d, h, w] = dims;
        let inside = |z: usize, y: usize, x: usize| {
            (d == 1 || (3..9).contains(&z)) && (4..14.min(h)).contains(&y) && (2..9).contains(&x)
        };
        let blob: Vec<f32> = (0..d * h * w)
            .map(|i| f32::from(u8::from(inside(i / (h * w), (i / w) % h, i % w))))
            .collect();
        for _ in 0..5 {
            let (mut image, mut mask) = (blob.clone(), blob.clone());
            aug.apply_pair(&mut image, &mut mask).unwrap();
            assert_ne!(mask, blob, "something moved");
            assert!(
                mask.iter().all(|&v| v == 0.0 || v == 1.0),
                "labels stay labels"
            );
            let mut clear = 0;
            for (i, m) in image.iter().zip(&mask) {
                if *i > 0.75 || *i < 0.25 {
                    clear += 1;
                    assert_eq!(i.round(), *m);
                }
            }
            assert!(clear > blob.len() / 2);
        }
        let mut short = vec![0.0; 3];
        assert!(aug.apply_pair(&mut blob.clone(), &mut short).is_err());
    }
}

#[test]
fn intensity_transforms_keep_the_range_and_a_resumed_stream_repeats() {
    let s = AugmentSpec {
        flip: vec![ImageAxis::Width],
        rotate: 10.0,
        gamma: 0.3,
        noise: 0.05,
        bias_field: 0.5,
        blur: 1.0,
        brightness: 0.2,
        contrast: 0.2,
        ..spec()
    };
    let shape = ImageShape::d3(2, 4, 6, 6);
    let mut a = Augmenter::new(s.clone(), shape, 9).unwrap();
    let mut x = ramp([2 * 4 * 3, 6, 6]);
    a.apply(&mut x, 2);
    assert_ne!(x, ramp([24, 6, 6]));
    assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    // Serialise mid-stream (as a checkpoint does), restore, and continue: identical.
    let saved = serde_json::to_string(&a).unwrap();
    let mut b: Augmenter = serde_json::from_str(&saved).unwrap();
    let (mut y1, mut y2) = (ramp([24, 6, 6]), ramp([24, 6, 6]));
    a.apply(&mut y1, 2);
    b.apply(&mut y2, 2);
    assert_eq!(y1, y2);
    // A fresh augmenter with the same seed repeats the first batch.
    let mut c = Augmenter::new(s, shape, 9).unwrap();
    let mut z = ramp([24, 6, 6]);
    c.apply(&mut z, 2);
    assert_eq!(z, x);
}

#[test]
fn bias_field_and_blur_reference_values() {
    // Only the constant coefficient: exp(a) everywhere.
    let mut coeffs = vec![0.0f32; 20];
    coeffs[0] = 0.5;
    let f = bias_field_3d([2, 3, 4], &coeffs);
    assert!(f.iter().all(|v| (v - 0.5f32.exp()).abs() < 1e-6));
    // The linear term in depth (i = 0, j = 0, l = 1 is k = 1): exp(s) at s = -1 and 1.
    let mut coeffs = vec![0.0f32; 20];
    coeffs[1] = 1.0;
    let f = bias_field_3d([2, 1, 1], &coeffs);
    assert!((f[0] - (-1.0f32).exp()).abs() < 1e-6 && (f[1] - 1.0f32.exp()).abs() < 1e-6);
    // Blurring a constant volume keeps it; blurring an impulse keeps its sum (mirrored
    // edges, away from the border) and spreads it along depth too.
    let dims = [9, 9, 9];
    let mut c = vec![0.3f32; 729];
    blur_volume(&mut c, dims, 1.0);
    assert!(c.iter().all(|v| (v - 0.3).abs() < 1e-5));
    let mut impulse = vec![0.0f32; 729];
    impulse[4 * 81 + 4 * 9 + 4] = 1.0;
    blur_volume(&mut impulse, dims, 1.0);
    assert!((impulse.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    // Separable and isotropic: one voxel away along depth, height or width the response
    // is the centre's times exp(-1/2) (sampled, normalised Gaussian kernel).
    let centre = impulse[4 * 81 + 4 * 9 + 4];
    for neighbour in [3 * 81 + 4 * 9 + 4, 4 * 81 + 3 * 9 + 4, 4 * 81 + 4 * 9 + 3] {
        assert!((impulse[neighbour] / centre - (-0.5f32).exp()).abs() < 1e-5);
    }
}
