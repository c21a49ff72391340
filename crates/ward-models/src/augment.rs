//! Random image augmentation during local training: flips, small rotations, brightness
//! and contrast jitter, from a seeded stream that is part of the site's state.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use ward_core::config::AugmentSpec;
use ward_data::ImageShape;

/// Augments batches of images of one shape (`N x C x D x H x W`, values in `[0, 1]`).
///
/// Each image draws, in this order: flip (if on), angle (if `rotate > 0`), brightness
/// offset (if on), contrast factor (if on). 3D volumes are flipped and rotated slice by
/// slice with the same draw for every slice. Output is clamped to `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Augmenter {
    spec: AugmentSpec,
    shape: ImageShape,
    rng: ChaCha8Rng,
    #[serde(skip)]
    scratch: Vec<f32>,
}

impl Augmenter {
    /// An augmenter for images of `shape`, seeded by `seed`.
    pub fn new(spec: AugmentSpec, shape: ImageShape, seed: u64) -> Self {
        Self {
            spec,
            shape,
            rng: ChaCha8Rng::seed_from_u64(seed),
            scratch: Vec::new(),
        }
    }

    /// Whether this augmenter changes anything.
    pub fn is_off(&self) -> bool {
        self.spec.is_off()
    }

    /// Augments `rows` images in `x` in place.
    pub fn apply(&mut self, x: &mut [f32], rows: usize) {
        if self.is_off() {
            return;
        }
        let per = self.shape.len();
        let (h, w) = (self.shape.height, self.shape.width);
        let planes = self.shape.channels * self.shape.depth;
        for r in 0..rows {
            let img = &mut x[r * per..(r + 1) * per];
            let flip = self.spec.flip && self.rng.random_bool(0.5);
            let angle = if self.spec.rotate > 0.0 {
                self.rng
                    .random_range(-self.spec.rotate..=self.spec.rotate)
                    .to_radians()
            } else {
                0.0
            };
            let offset = if self.spec.brightness > 0.0 {
                self.rng
                    .random_range(-self.spec.brightness..=self.spec.brightness)
                    as f32
            } else {
                0.0
            };
            let factor = if self.spec.contrast > 0.0 {
                1.0 + self
                    .rng
                    .random_range(-self.spec.contrast..=self.spec.contrast)
                    as f32
            } else {
                1.0
            };
            for p in 0..planes {
                let plane = &mut img[p * h * w..(p + 1) * h * w];
                if flip {
                    for row in plane.chunks_mut(w) {
                        row.reverse();
                    }
                }
                if angle != 0.0 {
                    rotate(plane, h, w, angle, &mut self.scratch);
                }
            }
            if offset != 0.0 || factor != 1.0 {
                let mean = img.iter().sum::<f32>() / per as f32;
                for v in img.iter_mut() {
                    *v = ((*v - mean) * factor + mean + offset).clamp(0.0, 1.0);
                }
            }
        }
    }

    /// Draws the next seed of the stream (for tests).
    #[cfg(test)]
    fn peek(&mut self) -> u64 {
        rand::Rng::next_u64(&mut self.rng)
    }
}

/// Rotates one `h x w` plane by `angle` radians about its centre: bilinear, source
/// coordinates clamped to the edge.
fn rotate(plane: &mut [f32], h: usize, w: usize, angle: f64, scratch: &mut Vec<f32>) {
    scratch.clear();
    scratch.extend_from_slice(plane);
    let (s, c) = (angle.sin() as f32, angle.cos() as f32);
    let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
    let at = |y: usize, x: usize| scratch[y * w + x];
    for y in 0..h {
        for x in 0..w {
            let (dy, dx) = (y as f32 - cy, x as f32 - cx);
            let sy = (c * dy - s * dx + cy).clamp(0.0, h as f32 - 1.0);
            let sx = (s * dy + c * dx + cx).clamp(0.0, w as f32 - 1.0);
            let (y0, x0) = (sy.floor() as usize, sx.floor() as usize);
            let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
            let (fy, fx) = (sy - y0 as f32, sx - x0 as f32);
            let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
            let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
            plane[y * w + x] = top * (1.0 - fy) + bottom * fy;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> Vec<f32> {
        (0..2 * 16).map(|i| i as f32 / 32.0).collect()
    }

    #[test]
    fn off_changes_nothing_and_draws_nothing() {
        let shape = ImageShape::d2(1, 4, 4);
        let mut a = Augmenter::new(AugmentSpec::default(), shape, 1);
        let mut b = a.clone();
        let mut x = ramp();
        a.apply(&mut x, 2);
        assert_eq!(x, ramp());
        assert_eq!(a.peek(), b.peek());
    }

    #[test]
    fn flip_reverses_rows_and_rotation_by_zero_is_identity() {
        let shape = ImageShape::d2(1, 4, 4);
        let spec = AugmentSpec {
            flip: true,
            ..AugmentSpec::default()
        };
        let mut a = Augmenter::new(spec, shape, 3);
        let mut x = ramp();
        a.apply(&mut x, 2);
        let orig = ramp();
        for img in 0..2 {
            let same = x[img * 16..(img + 1) * 16] == orig[img * 16..(img + 1) * 16];
            let flipped = (0..4)
                .all(|r| (0..4).all(|c| x[img * 16 + r * 4 + c] == orig[img * 16 + r * 4 + 3 - c]));
            assert!(same || flipped);
        }
        let mut plane = orig[..16].to_vec();
        rotate(&mut plane, 4, 4, 0.0, &mut Vec::new());
        for (a, b) in plane.iter().zip(&orig[..16]) {
            assert!((a - b).abs() < 1e-6);
        }
        // A quarter turn moves the top-left corner to a neighbouring corner exactly.
        let mut plane = orig[..16].to_vec();
        rotate(
            &mut plane,
            4,
            4,
            std::f64::consts::FRAC_PI_2,
            &mut Vec::new(),
        );
        let corners = [orig[0], orig[3], orig[12], orig[15]];
        assert!(corners.iter().any(|c| (plane[0] - c).abs() < 1e-5) && plane[0] != orig[0]);
    }

    #[test]
    fn same_seed_same_result_and_range_kept() {
        let shape = ImageShape::d2(1, 4, 4);
        let spec = AugmentSpec {
            flip: true,
            rotate: 15.0,
            brightness: 0.5,
            contrast: 0.5,
        };
        let mut a = Augmenter::new(spec, shape, 9);
        let mut b = Augmenter::new(spec, shape, 9);
        let (mut x, mut y) = (ramp(), ramp());
        a.apply(&mut x, 2);
        b.apply(&mut y, 2);
        assert_eq!(x, y);
        assert_ne!(x, ramp());
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
