//! Random augmentation of images and volumes during local training (`[train.augment]`),
//! applied by the site to every training batch, and to an image and its mask alike.
//!
//! Per image, in this order:
//! 1. **Spatial**, in one resampling: flips on the listed axes (exact), then a random
//!    affine (rotation, per-axis scale, translation, about the image centre, in voxel
//!    units) and an elastic displacement field (a cubic B-spline over a coarse grid of
//!    control points, TorchIO `RandomElasticDeformation` with `locked_borders = 2`).
//!    Trilinear interpolation for images (samples outside the image take the image's
//!    minimum, TorchIO's default pad value), nearest neighbour for masks (outside: 0).
//!    2D images (depth 1) rotate in-plane and never move along the depth axis.
//! 2. **Intensity**, images only: bias field (`exp` of an order-3 polynomial), gamma
//!    (`v^exp(g)`), Gaussian blur, Gaussian noise, brightness offset, contrast factor;
//!    then values are clamped to `[0, 1]`.
//!
//! Only the enabled transforms draw from the random stream, in the order above, so an
//! augmenter with everything off draws nothing. The stream is part of the site's state
//! (serialised with it, so a resumed run repeats exactly).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use ward_core::config::{AugmentSpec, ImageAxis};

use crate::corrupt::{bias_field, gaussian_blur, noise::normal, unit_coord};
use crate::error::DataError;
use crate::image::ImageShape;

/// Augments images of one shape (`C x D x H x W`, values in `[0, 1]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Augmenter {
    spec: AugmentSpec,
    shape: ImageShape,
    rng: ChaCha8Rng,
}

/// One image's spatial draw: output voxel `p` (depth, height, width order) samples the
/// input at `matrix · (flip(p) − centre) + centre − shift + elastic(p)`.
struct Spatial {
    flip: [bool; 3],
    matrix: [[f64; 3]; 3],
    shift: [f64; 3],
    /// Per axis, the displacement (voxels) at every output voxel, when elastic is on.
    elastic: Option<[Vec<f32>; 3]>,
    /// Whether anything needs interpolation (else flips are done exactly).
    resample: bool,
}

/// One image's intensity draw.
struct Intensity {
    bias: Option<Vec<f32>>,
    gamma: Option<f32>,
    blur: f32,
    noise: f32,
    offset: f32,
    factor: f32,
}

impl Augmenter {
    /// An augmenter for images of `shape`, its stream seeded by `seed`.
    ///
    /// # Errors
    /// [`DataError::Spec`] naming `train.augment.flip` when a 2D shape is to be flipped
    /// along depth, or `train.augment.elastic` when there are more control points than
    /// voxels along an axis.
    pub fn new(spec: AugmentSpec, shape: ImageShape, seed: u64) -> Result<Self, DataError> {
        if !shape.is_3d() && spec.flip.contains(&ImageAxis::Depth) {
            return Err(DataError::spec(
                "train.augment.flip",
                format!("\"depth\" is for volumes; these images are 2D ({shape})"),
            ));
        }
        if let Some(e) = spec.elastic {
            let dims = spatial_dims(shape);
            if let Some(&n) = dims.iter().filter(|&&n| n > 1).min()
                && e.control_points > n
            {
                return Err(DataError::spec(
                    "train.augment.elastic.control-points",
                    format!(
                        "{} control points on an axis of {n} voxels ({shape})",
                        e.control_points
                    ),
                ));
            }
        }
        Ok(Self {
            spec,
            shape,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// Whether this augmenter changes anything.
    pub fn is_off(&self) -> bool {
        self.spec.is_off()
    }

    /// Augments `rows` images stored one after another in `x`, in place.
    ///
    /// # Panics
    /// If `x` holds fewer than `rows` images of the augmenter's shape (a caller bug).
    pub fn apply(&mut self, x: &mut [f32], rows: usize) {
        if self.is_off() {
            return;
        }
        let per = self.shape.len();
        for img in x[..rows * per].chunks_exact_mut(per) {
            self.augment(img, None);
        }
    }

    /// Augments one image and its mask (`D x H x W` labels, one channel) with the same
    /// spatial transform; the mask is resampled by nearest neighbour and never gets
    /// intensity changes.
    ///
    /// # Errors
    /// A message when the image or the mask has the wrong length.
    pub fn apply_pair(&mut self, image: &mut [f32], mask: &mut [f32]) -> Result<(), String> {
        let voxels = spatial_dims(self.shape).iter().product::<usize>();
        if image.len() != self.shape.len() || mask.len() != voxels {
            return Err(format!(
                "image of {} values and mask of {} for shape {} (mask: {voxels})",
                image.len(),
                mask.len(),
                self.shape
            ));
        }
        if !self.is_off() {
            self.augment(image, Some(mask));
        }
        Ok(())
    }

    fn augment(&mut self, img: &mut [f32], mask: Option<&mut [f32]>) {
        let dims = spatial_dims(self.shape);
        let spatial = self.draw_spatial(dims);
        let intensity = self.draw_intensity(dims);
        let plane = dims.iter().product::<usize>();
        for channel in img.chunks_exact_mut(plane) {
            let fill = channel.iter().copied().fold(f32::INFINITY, f32::min);
            transform(channel, dims, &spatial, Some(fill));
        }
        if let Some(mask) = mask {
            transform(mask, dims, &spatial, None);
        }
        for channel in img.chunks_exact_mut(plane) {
            intensity.apply(channel, dims, &mut self.rng);
        }
    }

    fn draw_spatial(&mut self, dims: [usize; 3]) -> Spatial {
        let s = &self.spec;
        let rng = &mut self.rng;
        let axes = [ImageAxis::Depth, ImageAxis::Height, ImageAxis::Width];
        let flip = axes.map(|a| s.flip.contains(&a) && rng.random_bool(0.5));
        let volume = dims[0] > 1;
        // Rotation: about depth (in-plane) always; about height and width for volumes.
        let mut matrix = identity();
        if s.rotate > 0.0 {
            let mut angle = || rng.random_range(-s.rotate..=s.rotate).to_radians();
            let about_depth = angle();
            let (about_height, about_width) = if volume {
                (angle(), angle())
            } else {
                (0.0, 0.0)
            };
            matrix = mul(
                rotation(0, about_depth),
                mul(rotation(1, about_height), rotation(2, about_width)),
            );
        }
        if s.scale > 0.0 {
            // Output→input: an image scaled up by f samples its input at 1/f.
            for (axis, row) in matrix.iter_mut().enumerate() {
                if axis == 0 && !volume {
                    continue;
                }
                let f = 1.0 + rng.random_range(-s.scale..=s.scale);
                row.iter_mut().for_each(|v| *v /= f);
            }
        }
        let mut shift = [0.0; 3];
        if s.translate > 0.0 {
            for (axis, t) in shift.iter_mut().enumerate() {
                if axis == 0 && !volume {
                    continue;
                }
                *t = rng.random_range(-s.translate..=s.translate) * dims[axis] as f64;
            }
        }
        let elastic = s.elastic.map(|e| {
            let n = e.control_points;
            let locked = |i: usize| i < 2 || i + 2 >= n;
            let grid: [Vec<f32>; 3] = std::array::from_fn(|axis| {
                let moves = axis > 0 || volume;
                let count = if volume { n * n * n } else { n * n };
                (0..count)
                    .map(|c| {
                        let (z, y, x) = if volume {
                            (c / (n * n), (c / n) % n, c % n)
                        } else {
                            (2, c / n, c % n)
                        };
                        let fixed = locked(y) || locked(x) || (volume && locked(z));
                        let free = moves && !fixed;
                        if free {
                            rng.random_range(-e.max_displacement..=e.max_displacement) as f32
                        } else {
                            0.0
                        }
                    })
                    .collect()
            });
            grid.map(|g| bspline_field(&g, n, dims, volume))
        });
        let resample = s.rotate > 0.0 || s.scale > 0.0 || s.translate > 0.0 || elastic.is_some();
        Spatial {
            flip,
            matrix,
            shift,
            elastic,
            resample,
        }
    }

    fn draw_intensity(&mut self, dims: [usize; 3]) -> Intensity {
        let s = &self.spec;
        let rng = &mut self.rng;
        let bias = (s.bias_field > 0.0).then(|| {
            let b = s.bias_field as f32;
            if dims[0] > 1 {
                let coeffs: Vec<f32> = (0..20).map(|_| rng.random_range(-b..=b)).collect();
                bias_field_3d(dims, &coeffs)
            } else {
                let coeffs: Vec<f32> = (0..10).map(|_| rng.random_range(-b..=b)).collect();
                bias_field(dims[1], dims[2], &coeffs, 1.0)
            }
        });
        let gamma = (s.gamma > 0.0).then(|| rng.random_range(-s.gamma..=s.gamma).exp() as f32);
        let blur = if s.blur > 0.0 {
            rng.random_range(0.0..=s.blur) as f32
        } else {
            0.0
        };
        let noise = if s.noise > 0.0 {
            rng.random_range(0.0..=s.noise) as f32
        } else {
            0.0
        };
        let offset = if s.brightness > 0.0 {
            rng.random_range(-s.brightness..=s.brightness) as f32
        } else {
            0.0
        };
        let factor = if s.contrast > 0.0 {
            1.0 + rng.random_range(-s.contrast..=s.contrast) as f32
        } else {
            1.0
        };
        Intensity {
            bias,
            gamma,
            blur,
            noise,
            offset,
            factor,
        }
    }
}

impl Intensity {
    fn apply(&self, x: &mut [f32], dims: [usize; 3], rng: &mut ChaCha8Rng) {
        if let Some(field) = &self.bias {
            x.iter_mut().zip(field).for_each(|(v, f)| *v *= f);
        }
        if let Some(g) = self.gamma {
            x.iter_mut().for_each(|v| *v = v.max(0.0).powf(g));
        }
        if self.blur > 0.0 {
            blur_volume(x, dims, self.blur);
        }
        if self.noise > 0.0 {
            x.iter_mut().for_each(|v| *v += self.noise * normal(rng));
        }
        if self.offset != 0.0 || self.factor != 1.0 {
            let mean = x.iter().sum::<f32>() / x.len() as f32;
            x.iter_mut()
                .for_each(|v| *v = (*v - mean) * self.factor + mean + self.offset);
        }
        x.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
    }
}

/// `[depth, height, width]` of a shape.
fn spatial_dims(shape: ImageShape) -> [usize; 3] {
    [shape.depth, shape.height, shape.width]
}

fn identity() -> [[f64; 3]; 3] {
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
}

/// Rotation by `angle` about `axis` (0 depth, 1 height, 2 width) in index space.
fn rotation(axis: usize, angle: f64) -> [[f64; 3]; 3] {
    let (s, c) = angle.sin_cos();
    let (a, b) = match axis {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    let mut m = identity();
    m[a][a] = c;
    m[a][b] = -s;
    m[b][a] = s;
    m[b][b] = c;
    m
}

fn mul(a: [[f64; 3]; 3], b: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}

/// Cubic B-spline weights of the four control points around fraction `t`.
fn bspline_weights(t: f64) -> [f64; 4] {
    let t2 = t * t;
    let t3 = t2 * t;
    [
        (1.0 - t).powi(3) / 6.0,
        (3.0 * t3 - 6.0 * t2 + 4.0) / 6.0,
        (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) / 6.0,
        t3 / 6.0,
    ]
}

/// For each voxel along an axis of `size`, the first of its four control points and their
/// weights: the image spans control coordinates `[1, n − 2]` (SimpleITK's B-spline mesh
/// of `n − 3` cells).
fn axis_taps(size: usize, n: usize) -> Vec<(usize, [f64; 4])> {
    (0..size)
        .map(|x| {
            let u = if size > 1 {
                1.0 + x as f64 / (size - 1) as f64 * (n - 3) as f64
            } else {
                (n - 1) as f64 / 2.0
            };
            let i = (u.floor() as usize).clamp(1, n - 3);
            (i - 1, bspline_weights(u - i as f64))
        })
        .collect()
}

/// The displacement field of one component at every voxel, from `n^3` (volumes) or
/// `n^2` (2D) B-spline coefficients.
fn bspline_field(coeffs: &[f32], n: usize, dims: [usize; 3], volume: bool) -> Vec<f32> {
    let [d, h, w] = dims;
    let (tz, ty, tx) = (axis_taps(d, n), axis_taps(h, n), axis_taps(w, n));
    let planes = if volume { n } else { 1 };
    // Contract along width, then height, then depth (separable).
    let mut along_x = vec![0.0f64; planes * n * w];
    for p in 0..planes * n {
        for (x, &(i, wt)) in tx.iter().enumerate() {
            along_x[p * w + x] = (0..4)
                .map(|k| wt[k] * f64::from(coeffs[p * n + i + k]))
                .sum();
        }
    }
    let mut along_y = vec![0.0f64; planes * h * w];
    for p in 0..planes {
        for (y, &(j, wt)) in ty.iter().enumerate() {
            for x in 0..w {
                along_y[(p * h + y) * w + x] = (0..4)
                    .map(|k| wt[k] * along_x[(p * n + j + k) * w + x])
                    .sum();
            }
        }
    }
    if !volume {
        return along_y.into_iter().map(|v| v as f32).collect();
    }
    let mut out = vec![0.0f32; d * h * w];
    for (z, &(l, wt)) in tz.iter().enumerate() {
        for yx in 0..h * w {
            out[z * h * w + yx] = (0..4)
                .map(|k| wt[k] * along_y[(l + k) * h * w + yx])
                .sum::<f64>() as f32;
        }
    }
    out
}

/// Resamples one `D x H x W` array by `t`: trilinear with `fill` outside, or nearest
/// neighbour with 0 outside when `fill` is `None` (masks).
fn transform(x: &mut [f32], dims: [usize; 3], t: &Spatial, fill: Option<f32>) {
    if !t.resample {
        flip_exact(x, dims, t.flip);
        return;
    }
    let src = x.to_vec();
    let centre = dims.map(|n| (n as f64 - 1.0) / 2.0);
    let [d, h, w] = dims;
    for z in 0..d {
        for y in 0..h {
            for xx in 0..w {
                let at = (z * h + y) * w + xx;
                let p = [z, y, xx];
                let q: [f64; 3] = std::array::from_fn(|a| {
                    let i = if t.flip[a] { dims[a] - 1 - p[a] } else { p[a] };
                    i as f64 - centre[a]
                });
                let coord: [f64; 3] = std::array::from_fn(|a| {
                    let mut c =
                        (0..3).map(|k| t.matrix[a][k] * q[k]).sum::<f64>() + centre[a] - t.shift[a];
                    if let Some(e) = &t.elastic {
                        c += f64::from(e[a][at]);
                    }
                    c
                });
                x[at] = match fill {
                    Some(f) => trilinear(&src, dims, coord, f),
                    None => nearest(&src, dims, coord),
                };
            }
        }
    }
}

/// Flips `x` along the axes marked (no interpolation).
fn flip_exact(x: &mut [f32], dims: [usize; 3], flip: [bool; 3]) {
    if !flip.contains(&true) {
        return;
    }
    let src = x.to_vec();
    let [d, h, w] = dims;
    for z in 0..d {
        let sz = if flip[0] { d - 1 - z } else { z };
        for y in 0..h {
            let sy = if flip[1] { h - 1 - y } else { y };
            for xx in 0..w {
                let sx = if flip[2] { w - 1 - xx } else { xx };
                x[(z * h + y) * w + xx] = src[(sz * h + sy) * w + sx];
            }
        }
    }
}

fn trilinear(src: &[f32], dims: [usize; 3], c: [f64; 3], fill: f32) -> f32 {
    let [d, h, w] = dims;
    let base = c.map(f64::floor);
    let frac: [f64; 3] = std::array::from_fn(|a| c[a] - base[a]);
    let mut acc = 0.0f64;
    for corner in 0..8usize {
        let offs = [corner >> 2 & 1, corner >> 1 & 1, corner & 1];
        let mut weight = 1.0;
        let mut idx = [0isize; 3];
        for a in 0..3 {
            idx[a] = base[a] as isize + offs[a] as isize;
            weight *= if offs[a] == 1 { frac[a] } else { 1.0 - frac[a] };
        }
        if weight == 0.0 {
            continue;
        }
        let inside = idx[0] >= 0
            && idx[1] >= 0
            && idx[2] >= 0
            && (idx[0] as usize) < d
            && (idx[1] as usize) < h
            && (idx[2] as usize) < w;
        let v = if inside {
            src[(idx[0] as usize * h + idx[1] as usize) * w + idx[2] as usize]
        } else {
            fill
        };
        acc += weight * f64::from(v);
    }
    acc as f32
}

fn nearest(src: &[f32], dims: [usize; 3], c: [f64; 3]) -> f32 {
    let [d, h, w] = dims;
    let i = c.map(|v| v.round());
    if i[0] < 0.0
        || i[1] < 0.0
        || i[2] < 0.0
        || i[0] >= d as f64
        || i[1] >= h as f64
        || i[2] >= w as f64
    {
        return 0.0;
    }
    src[(i[0] as usize * h + i[1] as usize) * w + i[2] as usize]
}

/// Gaussian blur of a `D x H x W` array: each plane with the corruption code's 2D blur,
/// then along depth (volumes), mirrored edges.
fn blur_volume(x: &mut [f32], dims: [usize; 3], sigma: f32) {
    let [d, h, w] = dims;
    for plane in x.chunks_exact_mut(h * w) {
        gaussian_blur(plane, h, w, sigma);
    }
    if d > 1 {
        // Along depth: treat each (y, x) column as a 1 x d plane.
        let mut column = vec![0.0f32; d];
        for yx in 0..h * w {
            for (z, c) in column.iter_mut().enumerate() {
                *c = x[z * h * w + yx];
            }
            gaussian_blur(&mut column, 1, d, sigma);
            for (z, c) in column.iter().enumerate() {
                x[z * h * w + yx] = *c;
            }
        }
    }
}

/// `exp(Σ a_k u^i v^j s^l)` over the 20 monomials of order ≤ 3 in the depth, height and
/// width coordinates `s, v, u` in `[-1, 1]` (TorchIO `RandomBiasField`, order 3).
fn bias_field_3d(dims: [usize; 3], coeffs: &[f32]) -> Vec<f32> {
    let coord = unit_coord;
    let [d, h, w] = dims;
    let mut out = Vec::with_capacity(d * h * w);
    for z in 0..d {
        let s = coord(z, d);
        for y in 0..h {
            let v = coord(y, h);
            for xx in 0..w {
                let u = coord(xx, w);
                let mut sum = 0.0;
                let mut k = 0;
                for i in 0..=3i32 {
                    for j in 0..=(3 - i) {
                        for l in 0..=(3 - i - j) {
                            sum += coeffs[k] * u.powi(i) * v.powi(j) * s.powi(l);
                            k += 1;
                        }
                    }
                }
                out.push(sum.exp());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
