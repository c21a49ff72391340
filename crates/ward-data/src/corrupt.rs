//! Acquisition-shift corruptions at graded severities, after MedMNIST-C (Di Salvo et al.,
//! 2024) and TorchIO's MRI artefacts (Pérez-García et al., 2021).
//!
//! [`Corruption`] names twelve corruptions; each has five severities (1 mild ..= 5 severe)
//! and one parameter per severity ([`Corruption::params`]):
//!
//! | corruption | parameter | 1 | 2 | 3 | 4 | 5 |
//! |---|---|---|---|---|---|---|
//! | `gaussian-noise` | noise sigma (intensity units) | 0.02 | 0.04 | 0.07 | 0.10 | 0.15 |
//! | `rician-noise` | sigma of each of the two Gaussian components | 0.02 | 0.04 | 0.07 | 0.10 | 0.15 |
//! | `gaussian-blur` | kernel sigma (pixels of a 28-pixel image) | 0.5 | 0.75 | 1.0 | 1.5 | 2.0 |
//! | `motion` | translation during acquisition (pixels of a 28-pixel image) | 0.75 | 1.5 | 2.5 | 3.5 | 5.0 |
//! | `bias-field` | bound of the log-field polynomial coefficients | 0.1 | 0.2 | 0.3 | 0.45 | 0.6 |
//! | `gamma` | exponent (`x^gamma`) | 1.25 | 1.5 | 1.8 | 2.2 | 2.8 |
//! | `contrast` | factor on the deviation from the image mean | 0.75 | 0.6 | 0.45 | 0.3 | 0.15 |
//! | `brightness` | added intensity | 0.08 | 0.16 | 0.24 | 0.32 | 0.40 |
//! | `jpeg` | JPEG quality | 60 | 35 | 20 | 10 | 5 |
//! | `pixelate` | kept resolution (fraction of each side) | 0.8 | 0.65 | 0.5 | 0.4 | 0.3 |
//! | `ghosting` | k-space line attenuation (TorchIO `intensity`) | 0.2 | 0.35 | 0.5 | 0.7 | 0.9 |
//! | `spike` | spike height (fraction of the spectrum's maximum) | 0.04 | 0.08 | 0.15 | 0.25 | 0.4 |
//!
//! Pixel-sized parameters (blur sigma, motion) scale with `max(height, width) / 28`, so a
//! severity means the same on 28- and 64-pixel images.
//!
//! How each works, on every 2D plane (channel, slice) of an image, output clipped to
//! `[0, 1]`:
//! - noise: `x + sigma * n`; Rician: `sqrt((x + sigma n1)^2 + (sigma n2)^2)` (MRI
//!   magnitude noise).
//! - blur: separable Gaussian kernel, radius `ceil(3 sigma)`, mirrored edges.
//! - motion (TorchIO `RandomMotion`, translations only): k-space rows are acquired in order
//!   of phase-encoding frequency; the object moves twice, once at a random time in the
//!   first 15-45% of the acquisition and once in the last 55-85%, so three segments of
//!   rows (the middle one holding the centre of k-space) come from the image shifted by
//!   `0`, `d1` and `d2` (phase ramps in k-space; `|d|` between half and all of the
//!   parameter, random directions); the output is the magnitude of the inverse FFT.
//! - bias field (TorchIO `RandomBiasField`): `x * exp(p(u, v))`, `p` a polynomial of order
//!   3 in coordinates scaled to `[-1, 1]`, coefficients uniform in `[-c, c]`.
//! - gamma `x^gamma`; contrast `m + c (x - m)` with `m` the plane's mean; brightness
//!   `x + b`.
//! - JPEG: 8-bit quantisation, `image`'s baseline JPEG encoder at the quality, decoded back.
//! - pixelate: box-average over a grid of `round(side * f)` cells, each cell filled with its
//!   mean (nearest-neighbour upsampling).
//! - ghosting (TorchIO `RandomGhosting`): in the centred spectrum, every `n`-th line along a
//!   random axis (`n` random in 2..=4) except the centre line is multiplied by
//!   `1 - intensity`, giving `n` faint copies of the object.
//! - spike (TorchIO `RandomSpike`): `spike * max|F|` is added at one random k-space position
//!   (not the DC term), giving stripes over the whole image.
//!
//! ```
//! use ward_data::corrupt::{Corruption, corrupt_set};
//! use ward_data::synth::{SynthSpec, generate};
//!
//! let synth = generate(&SynthSpec { sites: 1, per_site: 20, ..SynthSpec::default() })?;
//! let clean = &synth.sites[0].test;
//! let c: Corruption = "ghosting".parse()?;
//! assert_eq!(c.params(3)?, 0.5);
//! let shifted = corrupt_set(clean, c, 3, 42)?;
//! assert_eq!(shifted.shape, clean.shape);
//! assert!(shifted.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
//! assert!(corrupt_set(clean, c, 6, 42).is_err());
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Determinism: the random numbers of image `i` come from `ChaCha8Rng` seeded by the seed
//! and the corruption, on stream `i`. Severity does not change the draws, only how strongly
//! they act, so for one image every measure of damage grows with severity (common random
//! numbers); the same seed and index always give the same output.

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;
use serde::{Deserialize, Serialize};

use crate::image::{ImageSet, ImageShape};

/// Number of severities of every corruption.
pub const SEVERITIES: u8 = 5;

/// One acquisition-shift corruption. Names are kebab-case (`gaussian-noise`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Corruption {
    /// Additive Gaussian noise.
    GaussianNoise,
    /// Rician (MRI magnitude) noise.
    RicianNoise,
    /// Gaussian blur.
    GaussianBlur,
    /// Rigid motion during acquisition (k-space segments of shifted images).
    Motion,
    /// Smooth multiplicative bias field.
    BiasField,
    /// Gamma change `x^gamma`.
    Gamma,
    /// Lower contrast around the image mean.
    Contrast,
    /// Added brightness.
    Brightness,
    /// JPEG compression.
    Jpeg,
    /// Pixelation (downsampling).
    Pixelate,
    /// Ghosting (periodic k-space line attenuation).
    Ghosting,
    /// A k-space spike (stripes).
    Spike,
}

/// Parameters per severity 1..=5, in [`Corruption::ALL`] order (see the module table).
const TABLE: [[f32; 5]; 12] = [
    [0.02, 0.04, 0.07, 0.10, 0.15],
    [0.02, 0.04, 0.07, 0.10, 0.15],
    [0.5, 0.75, 1.0, 1.5, 2.0],
    [0.75, 1.5, 2.5, 3.5, 5.0],
    [0.1, 0.2, 0.3, 0.45, 0.6],
    [1.25, 1.5, 1.8, 2.2, 2.8],
    [0.75, 0.6, 0.45, 0.3, 0.15],
    [0.08, 0.16, 0.24, 0.32, 0.40],
    [60.0, 35.0, 20.0, 10.0, 5.0],
    [0.8, 0.65, 0.5, 0.4, 0.3],
    [0.2, 0.35, 0.5, 0.7, 0.9],
    [0.04, 0.08, 0.15, 0.25, 0.4],
];

impl Corruption {
    /// Every corruption, in a fixed order.
    pub const ALL: [Corruption; 12] = [
        Self::GaussianNoise,
        Self::RicianNoise,
        Self::GaussianBlur,
        Self::Motion,
        Self::BiasField,
        Self::Gamma,
        Self::Contrast,
        Self::Brightness,
        Self::Jpeg,
        Self::Pixelate,
        Self::Ghosting,
        Self::Spike,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The kebab-case name, e.g. `gaussian-noise`.
    pub fn name(self) -> &'static str {
        match self {
            Self::GaussianNoise => "gaussian-noise",
            Self::RicianNoise => "rician-noise",
            Self::GaussianBlur => "gaussian-blur",
            Self::Motion => "motion",
            Self::BiasField => "bias-field",
            Self::Gamma => "gamma",
            Self::Contrast => "contrast",
            Self::Brightness => "brightness",
            Self::Jpeg => "jpeg",
            Self::Pixelate => "pixelate",
            Self::Ghosting => "ghosting",
            Self::Spike => "spike",
        }
    }

    /// What [`Corruption::params`] returns for this corruption.
    pub fn param_name(self) -> &'static str {
        match self {
            Self::GaussianNoise | Self::RicianNoise => "noise sigma",
            Self::GaussianBlur => "blur sigma (pixels at 28 px)",
            Self::Motion => "translation (pixels at 28 px)",
            Self::BiasField => "polynomial coefficient bound",
            Self::Gamma => "gamma",
            Self::Contrast => "contrast factor",
            Self::Brightness => "added intensity",
            Self::Jpeg => "JPEG quality",
            Self::Pixelate => "kept resolution fraction",
            Self::Ghosting => "line attenuation",
            Self::Spike => "spike height (fraction of max |F|)",
        }
    }

    /// The parameter at `severity` (1..=5), as in the module table.
    ///
    /// # Errors
    /// [`CorruptError::Severity`] outside 1..=5.
    pub fn params(self, severity: u8) -> Result<f32, CorruptError> {
        if !(1..=SEVERITIES).contains(&severity) {
            return Err(CorruptError::Severity {
                corruption: self,
                severity,
            });
        }
        Ok(TABLE[self.index()][usize::from(severity - 1)])
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Corruption {
    type Err = CorruptError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| CorruptError::Unknown {
                name: s.to_owned(),
                known: Self::ALL.map(Corruption::name).join(", "),
            })
    }
}

/// Errors of the corruption suite and its PNG writers.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CorruptError {
    /// Severity outside 1..=5.
    #[error(
        "{corruption}: severity {severity} is out of range; severities run from 1 (mild) to 5 (severe)"
    )]
    Severity {
        /// The corruption.
        corruption: Corruption,
        /// The severity given.
        severity: u8,
    },
    /// Unknown corruption name.
    #[error("unknown corruption {name:?}; known: {known}")]
    Unknown {
        /// The name given.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// A pixel buffer does not match its shape.
    #[error("image of shape {shape} needs {expected} values, got {got}")]
    Length {
        /// The shape.
        shape: ImageShape,
        /// Values the shape needs.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// An image index past the end of its set.
    #[error("image {index} does not exist: the set holds {len} images")]
    Index {
        /// The index asked for.
        index: usize,
        /// Images in the set.
        len: usize,
    },
    /// Nothing to draw (no image, or an empty image).
    #[error("nothing to draw: {0}")]
    Empty(String),
    /// Encoding or decoding an image (PNG, JPEG) failed.
    #[error("{context}: {source}")]
    Codec {
        /// What was being done.
        context: String,
        /// The codec's error.
        #[source]
        source: image::ImageError,
    },
    /// Writing a file failed (the error names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The seeded random stream of image `index` under `corruption`.
fn image_rng(corruption: Corruption, seed: u64, index: u64) -> ChaCha8Rng {
    let mix = seed ^ (corruption.index() as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut rng = ChaCha8Rng::seed_from_u64(mix);
    rng.set_stream(index);
    rng
}

/// Corrupts one image (`pixels` of `shape`, values in `[0, 1]`), every 2D plane (channel,
/// slice) in turn; random draws come from `seed` and the image's `index` in its set.
///
/// # Shapes
/// `pixels`: `C x D x H x W`; the output has the same shape.
///
/// # Errors
/// A bad severity, or a buffer that does not match `shape`.
pub fn corrupt_image(
    pixels: &[f32],
    shape: ImageShape,
    corruption: Corruption,
    severity: u8,
    seed: u64,
    index: u64,
) -> Result<Vec<f32>, CorruptError> {
    let p = corruption.params(severity)?;
    if pixels.len() != shape.len() {
        return Err(CorruptError::Length {
            shape,
            expected: shape.len(),
            got: pixels.len(),
        });
    }
    let (h, w) = (shape.height, shape.width);
    if h * w == 0 {
        return Ok(pixels.to_vec());
    }
    let mut rng = image_rng(corruption, seed, index);
    let plan = Plan::draw(corruption, h, w, &mut rng);
    let mut out = Vec::with_capacity(pixels.len());
    for plane in pixels.chunks_exact(h * w) {
        let mut x = plane.to_vec();
        apply_plane(corruption, p, &plan, &mut x, h, w, &mut rng)?;
        for v in &mut x {
            *v = if v.is_finite() {
                v.clamp(0.0, 1.0)
            } else {
                0.0
            };
        }
        out.extend_from_slice(&x);
    }
    Ok(out)
}

/// Corrupts image `index` of `set`, exactly as [`corrupt_set`] would.
///
/// # Shapes
/// Returns one image of `set.shape` (`C x D x H x W`).
///
/// # Errors
/// A bad severity, or [`CorruptError::Index`] past the end of the set.
pub fn corrupt_at(
    set: &ImageSet,
    index: usize,
    corruption: Corruption,
    severity: u8,
    seed: u64,
) -> Result<Vec<f32>, CorruptError> {
    corruption.params(severity)?;
    if index >= set.len() {
        return Err(CorruptError::Index {
            index,
            len: set.len(),
        });
    }
    corrupt_image(
        set.image(index),
        set.shape,
        corruption,
        severity,
        seed,
        index as u64,
    )
}

/// Corrupts every image of `set`; image `i` uses stream `i` of `seed`, so one image's
/// result does not depend on the others. Labels and sources are kept.
///
/// # Errors
/// A bad severity.
pub fn corrupt_set(
    set: &ImageSet,
    corruption: Corruption,
    severity: u8,
    seed: u64,
) -> Result<ImageSet, CorruptError> {
    corruption.params(severity)?;
    let mut out = set.clone();
    let n = set.shape.len();
    if n == 0 {
        return Ok(out);
    }
    for (i, img) in out.pixels.chunks_exact_mut(n).enumerate() {
        let c = corrupt_image(img, set.shape, corruption, severity, seed, i as u64)?;
        img.copy_from_slice(&c);
    }
    Ok(out)
}

/// Random choices drawn once per image and shared by its planes.
#[derive(Debug, Default)]
struct Plan {
    /// Motion: two change times (fractions of the acquisition) and two shifts (unit
    /// direction times a factor in [0.5, 1]).
    motion: [(f32, f32, f32); 2],
    /// Bias field: 10 coefficients in [-1, 1] for the monomials `u^i v^j`, `i + j <= 3`.
    bias: Vec<f32>,
    /// Ghosting: number of ghosts and axis (false: rows, true: columns).
    ghosts: (usize, bool),
    /// Spike: k-space position.
    spike: (usize, usize),
}

impl Plan {
    fn draw(c: Corruption, h: usize, w: usize, rng: &mut ChaCha8Rng) -> Self {
        let mut plan = Self::default();
        match c {
            Corruption::Motion => {
                // The first move comes before the centre of k-space is acquired, the second
                // after it, so every image shows the artefact.
                let t = [
                    rng.random_range(0.15f32..0.45),
                    rng.random_range(0.55f32..0.85),
                ];
                for (k, slot) in plan.motion.iter_mut().enumerate() {
                    let angle = rng.random_range(0.0f32..std::f32::consts::TAU);
                    let mag = rng.random_range(0.5f32..=1.0);
                    *slot = (t[k], mag * angle.cos(), mag * angle.sin());
                }
            }
            Corruption::BiasField => {
                plan.bias = (0..10).map(|_| rng.random_range(-1.0f32..=1.0)).collect();
            }
            Corruption::Ghosting => {
                plan.ghosts = (rng.random_range(2..=4), rng.random_bool(0.5));
            }
            Corruption::Spike => {
                // Anywhere but the DC term, within the lower half of the frequencies.
                loop {
                    let ky = rng.random_range(0..h.div_ceil(4).max(1) + 1);
                    let kx = rng.random_range(0..w.div_ceil(4).max(1) + 1);
                    if (ky, kx) != (0, 0) || (h <= 1 && w <= 1) {
                        let ky = if rng.random_bool(0.5) {
                            ky
                        } else {
                            (h - ky) % h
                        };
                        plan.spike = (ky % h.max(1), kx % w.max(1));
                        break;
                    }
                }
            }
            _ => {}
        }
        plan
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    StandardNormal.sample(rng)
}

fn apply_plane(
    c: Corruption,
    p: f32,
    plan: &Plan,
    x: &mut [f32],
    h: usize,
    w: usize,
    rng: &mut ChaCha8Rng,
) -> Result<(), CorruptError> {
    let scale = h.max(w) as f32 / 28.0;
    match c {
        Corruption::GaussianNoise => x.iter_mut().for_each(|v| *v += p * normal(rng)),
        Corruption::RicianNoise => x.iter_mut().for_each(|v| {
            let (a, b) = (*v + p * normal(rng), p * normal(rng));
            *v = (a * a + b * b).sqrt();
        }),
        Corruption::GaussianBlur => gaussian_blur(x, h, w, p * scale),
        Corruption::Motion => motion(x, h, w, p * scale, &plan.motion),
        Corruption::BiasField => {
            let field = bias_field(h, w, &plan.bias, p);
            x.iter_mut().zip(&field).for_each(|(v, f)| *v *= f);
        }
        Corruption::Gamma => x.iter_mut().for_each(|v| *v = v.max(0.0).powf(p)),
        Corruption::Contrast => {
            let m = x.iter().sum::<f32>() / x.len() as f32;
            x.iter_mut().for_each(|v| *v = m + p * (*v - m));
        }
        Corruption::Brightness => x.iter_mut().for_each(|v| *v += p),
        Corruption::Jpeg => jpeg(x, h, w, p as u8)?,
        Corruption::Pixelate => pixelate(x, h, w, p),
        Corruption::Ghosting => ghosting(x, h, w, p, plan.ghosts.0, plan.ghosts.1),
        Corruption::Spike => spike(x, h, w, p, plan.spike),
    }
    Ok(())
}

/// Separable Gaussian blur with mirrored edges.
pub(crate) fn gaussian_blur(x: &mut [f32], h: usize, w: usize, sigma: f32) {
    if sigma <= 0.0 {
        return;
    }
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-((i * i) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / s).collect();
    let mirror = |i: isize, n: usize| -> usize {
        let n = n as isize;
        let mut i = i;
        for _ in 0..4 {
            if i < 0 {
                i = -i - 1;
            }
            if i >= n {
                i = 2 * n - i - 1;
            }
        }
        i.clamp(0, n - 1) as usize
    };
    let mut tmp = vec![0.0f32; x.len()];
    for y in 0..h {
        for xx in 0..w {
            tmp[y * w + xx] = (-r..=r)
                .map(|d| k[(d + r) as usize] * x[y * w + mirror(xx as isize + d, w)])
                .sum();
        }
    }
    for y in 0..h {
        for xx in 0..w {
            x[y * w + xx] = (-r..=r)
                .map(|d| k[(d + r) as usize] * tmp[mirror(y as isize + d, h) * w + xx])
                .sum();
        }
    }
}

/// 2D FFT in place (rows then columns); the inverse is scaled by `1 / (h w)`.
pub(crate) fn fft2(buf: &mut [Complex32], h: usize, w: usize, inverse: bool) {
    let mut planner = FftPlanner::<f32>::new();
    let (row, col) = if inverse {
        (planner.plan_fft_inverse(w), planner.plan_fft_inverse(h))
    } else {
        (planner.plan_fft_forward(w), planner.plan_fft_forward(h))
    };
    for r in buf.chunks_exact_mut(w) {
        row.process(r);
    }
    let mut c = vec![Complex32::default(); h];
    for xx in 0..w {
        for y in 0..h {
            c[y] = buf[y * w + xx];
        }
        col.process(&mut c);
        for y in 0..h {
            buf[y * w + xx] = c[y];
        }
    }
    if inverse {
        let s = 1.0 / (h * w) as f32;
        buf.iter_mut().for_each(|v| *v *= s);
    }
}

fn spectrum(x: &[f32], h: usize, w: usize) -> Vec<Complex32> {
    let mut f: Vec<Complex32> = x.iter().map(|&v| Complex32::new(v, 0.0)).collect();
    fft2(&mut f, h, w, false);
    f
}

fn magnitude(mut f: Vec<Complex32>, x: &mut [f32], h: usize, w: usize) {
    fft2(&mut f, h, w, true);
    x.iter_mut().zip(&f).for_each(|(v, c)| *v = c.norm());
}

/// Signed frequency of FFT index `k` of `n`.
fn freq(k: usize, n: usize) -> f32 {
    if k <= n / 2 {
        k as f32
    } else {
        k as f32 - n as f32
    }
}

fn motion(x: &mut [f32], h: usize, w: usize, shift: f32, moves: &[(f32, f32, f32); 2]) {
    let mut f = spectrum(x, h, w);
    for ky in 0..h {
        let fy = freq(ky, h);
        // Acquisition order: rows from the lowest to the highest signed frequency.
        let t = (fy + (h / 2) as f32) / h as f32;
        let (mut dx, mut dy) = (0.0, 0.0);
        for &(tm, ux, uy) in moves {
            if t >= tm {
                dx = ux * shift;
                dy = uy * shift;
            }
        }
        if dx == 0.0 && dy == 0.0 {
            continue;
        }
        for kx in 0..w {
            let phase = -std::f32::consts::TAU * (freq(kx, w) * dx / w as f32 + fy * dy / h as f32);
            f[ky * w + kx] *= Complex32::from_polar(1.0, phase);
        }
    }
    magnitude(f, x, h, w);
}

/// `exp(c * sum_k a_k u^i v^j)` over the 10 monomials of order <= 3, `u, v` in `[-1, 1]`.
pub(crate) fn bias_field(h: usize, w: usize, coeffs: &[f32], c: f32) -> Vec<f32> {
    let coord = |i: usize, n: usize| {
        if n > 1 {
            2.0 * i as f32 / (n - 1) as f32 - 1.0
        } else {
            0.0
        }
    };
    let mut out = Vec::with_capacity(h * w);
    for y in 0..h {
        let v = coord(y, h);
        for xx in 0..w {
            let u = coord(xx, w);
            let mut s = 0.0;
            let mut k = 0;
            for i in 0..=3i32 {
                for j in 0..=(3 - i) {
                    s += coeffs.get(k).copied().unwrap_or(0.0) * u.powi(i) * v.powi(j);
                    k += 1;
                }
            }
            out.push((c * s).exp());
        }
    }
    out
}

fn jpeg(x: &mut [f32], h: usize, w: usize, quality: u8) -> Result<(), CorruptError> {
    let bytes: Vec<u8> = x.iter().map(|&v| to_u8(v)).collect();
    let mut enc = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut enc, quality)
        .encode(&bytes, w as u32, h as u32, image::ExtendedColorType::L8)
        .map_err(|source| CorruptError::Codec {
            context: format!("encoding a {h}x{w} JPEG at quality {quality}"),
            source,
        })?;
    let dec = image::load_from_memory_with_format(&enc, image::ImageFormat::Jpeg)
        .map_err(|source| CorruptError::Codec {
            context: "decoding a JPEG just written".into(),
            source,
        })?
        .to_luma8();
    x.iter_mut()
        .zip(dec.as_raw())
        .for_each(|(v, &b)| *v = f32::from(b) / 255.0);
    Ok(())
}

fn pixelate(x: &mut [f32], h: usize, w: usize, frac: f32) {
    let ch = ((h as f32 * frac).round() as usize).clamp(1, h);
    let cw = ((w as f32 * frac).round() as usize).clamp(1, w);
    let cell = |i: usize, n: usize, c: usize| i * c / n;
    let mut sum = vec![0.0f32; ch * cw];
    let mut cnt = vec![0u32; ch * cw];
    for y in 0..h {
        for xx in 0..w {
            let k = cell(y, h, ch) * cw + cell(xx, w, cw);
            sum[k] += x[y * w + xx];
            cnt[k] += 1;
        }
    }
    for y in 0..h {
        for xx in 0..w {
            let k = cell(y, h, ch) * cw + cell(xx, w, cw);
            x[y * w + xx] = sum[k] / cnt[k].max(1) as f32;
        }
    }
}

/// TorchIO's ghosting: every `n`-th line of the centred spectrum along one axis, except the
/// centre line, times `1 - intensity`.
pub(crate) fn ghosting(x: &mut [f32], h: usize, w: usize, intensity: f32, n: usize, columns: bool) {
    let mut f = spectrum(x, h, w);
    let n = n.max(1);
    let (len, other) = if columns { (w, h) } else { (h, w) };
    for k in 1..len {
        let centred = (k + len / 2) % len;
        if centred % n != 0 {
            continue;
        }
        for o in 0..other {
            let idx = if columns { o * w + k } else { k * w + o };
            f[idx] *= 1.0 - intensity;
        }
    }
    magnitude(f, x, h, w);
}

fn spike(x: &mut [f32], h: usize, w: usize, height: f32, at: (usize, usize)) {
    let mut f = spectrum(x, h, w);
    let max = f.iter().map(|c| c.norm()).fold(0.0f32, f32::max);
    f[at.0 * w + at.1] += Complex32::new(height * max, 0.0);
    magnitude(f, x, h, w);
}

pub(crate) fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// PNG bytes of a grey image (`height x width` values in `[0, 1]`, row-major).
///
/// # Errors
/// A buffer of the wrong length, or a PNG encoder error.
pub fn grey_png(pixels: &[f32], height: usize, width: usize) -> Result<Vec<u8>, CorruptError> {
    let shape = ImageShape::d2(1, height, width);
    if pixels.len() != height * width {
        return Err(CorruptError::Length {
            shape,
            expected: height * width,
            got: pixels.len(),
        });
    }
    let bytes: Vec<u8> = pixels.iter().map(|&v| to_u8(v)).collect();
    let img = image::GrayImage::from_raw(width as u32, height as u32, bytes).ok_or_else(|| {
        CorruptError::Empty(format!("a {height}x{width} image does not fit a PNG"))
    })?;
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|source| CorruptError::Codec {
            context: format!("encoding a {height}x{width} PNG"),
            source,
        })?;
    Ok(out.into_inner())
}

/// Writes a grey image (`height x width` values in `[0, 1]`) as an 8-bit PNG, atomically.
///
/// # Errors
/// A buffer of the wrong length, an encoder error, or an I/O error naming the path.
pub fn write_grey_png(
    path: &Path,
    pixels: &[f32],
    height: usize,
    width: usize,
) -> Result<(), CorruptError> {
    let bytes = grey_png(pixels, height, width)?;
    ward_core::fsutil::write_atomic(path, &bytes)?;
    Ok(())
}

/// Lays grey images (`height x width` each; `None` leaves a cell blank) out in rows of
/// `columns`, separated by a 2-pixel mid-grey border, each pixel drawn `zoom x zoom`.
/// Returns the sheet and its height and width.
///
/// # Errors
/// No cell, zero columns or zoom, or an image of the wrong length.
pub fn grid(
    cells: &[Option<&[f32]>],
    height: usize,
    width: usize,
    columns: usize,
    zoom: usize,
) -> Result<(Vec<f32>, usize, usize), CorruptError> {
    if cells.is_empty() || columns == 0 || zoom == 0 || height * width == 0 {
        return Err(CorruptError::Empty(format!(
            "{} cells of {height}x{width} in {columns} columns at zoom {zoom}",
            cells.len()
        )));
    }
    let pad = 2;
    let rows = cells.len().div_ceil(columns);
    let cols = columns.min(cells.len());
    let (ch, cw) = (height * zoom, width * zoom);
    let (gh, gw) = (rows * (ch + pad) + pad, cols * (cw + pad) + pad);
    let mut sheet = vec![0.5f32; gh * gw];
    for (i, cell) in cells.iter().enumerate() {
        let (r, c) = (i / columns, i % columns);
        let (y0, x0) = (pad + r * (ch + pad), pad + c * (cw + pad));
        match cell {
            Some(img) => {
                if img.len() != height * width {
                    return Err(CorruptError::Length {
                        shape: ImageShape::d2(1, height, width),
                        expected: height * width,
                        got: img.len(),
                    });
                }
                for y in 0..ch {
                    for xx in 0..cw {
                        sheet[(y0 + y) * gw + x0 + xx] = img[(y / zoom) * width + xx / zoom];
                    }
                }
            }
            None => {
                for y in 0..ch {
                    sheet[(y0 + y) * gw + x0..(y0 + y) * gw + x0 + cw].fill(0.0);
                }
            }
        }
    }
    Ok((sheet, gh, gw))
}

/// The grey view of image `i` of `set` for drawing: the mean over channels of the middle
/// slice.
pub fn preview(set: &ImageSet, i: usize) -> Vec<f32> {
    let s = set.shape;
    let plane = s.height * s.width;
    let img = set.image(i);
    let mid = s.depth / 2;
    let mut out = vec![0.0f32; plane];
    for c in 0..s.channels {
        let start = (c * s.depth + mid) * plane;
        for (o, v) in out.iter_mut().zip(&img[start..start + plane]) {
            *o += v / s.channels as f32;
        }
    }
    out
}

/// Writes example images of every corruption at every severity into `dir`:
/// `<corruption>_s<k>.png` (e.g. `motion_s3.png`), each with the first `images` images of
/// `set`, clean on the top row and corrupted below. Returns the paths written.
///
/// # Errors
/// An empty set, or an encoder or I/O error.
pub fn write_examples(
    dir: &Path,
    set: &ImageSet,
    images: usize,
    seed: u64,
) -> Result<Vec<PathBuf>, CorruptError> {
    let n = images.min(set.len());
    if n == 0 || set.shape.is_empty() {
        return Err(CorruptError::Empty("no image to show".into()));
    }
    fs_err::create_dir_all(dir)?;
    let subset = set.select(&(0..n).collect::<Vec<_>>());
    let (h, w) = (set.shape.height, set.shape.width);
    let zoom = if h.max(w) < 64 { 3 } else { 1 };
    let clean: Vec<Vec<f32>> = (0..n).map(|i| preview(&subset, i)).collect();
    let mut paths = Vec::new();
    for c in Corruption::ALL {
        for s in 1..=SEVERITIES {
            let bad = corrupt_set(&subset, c, s, seed)?;
            let bad: Vec<Vec<f32>> = (0..n).map(|i| preview(&bad, i)).collect();
            let cells: Vec<Option<&[f32]>> = clean
                .iter()
                .chain(&bad)
                .map(|v| Some(v.as_slice()))
                .collect();
            let (sheet, gh, gw) = grid(&cells, h, w, n, zoom)?;
            let path = dir.join(format!("{}_s{s}.png", c.name()));
            write_grey_png(&path, &sheet, gh, gw)?;
            paths.push(path);
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageTask;

    /// A smooth disk with texture: structure the corruptions can damage.
    fn phantom(n: usize, size: usize) -> ImageSet {
        let mut set = ImageSet::empty(ImageShape::d2(1, size, size), ImageTask::Binary);
        for k in 0..n {
            let mut px = Vec::with_capacity(size * size);
            for y in 0..size {
                for x in 0..size {
                    let (u, v) = (x as f32 / size as f32 - 0.5, y as f32 / size as f32 - 0.5);
                    let r = (u * u + v * v).sqrt();
                    let disk = if r < 0.35 { 0.5 } else { 0.1 };
                    let tex = 0.15 * ((x * (k + 3)) as f32 * 0.7).sin() * (y as f32 * 0.9).cos();
                    let lesion = if ((u - 0.1).powi(2) + v * v).sqrt() < 0.08 {
                        0.3
                    } else {
                        0.0
                    };
                    px.push((disk + tex + lesion).clamp(0.0, 1.0));
                }
            }
            set.push(&px, &[(k % 2) as u32], format!("phantom{k}"));
        }
        set
    }

    fn mean_abs_diff(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from((x - y).abs()))
            .sum::<f64>()
            / a.len() as f64
    }

    fn diff_std(a: &[f32], b: &[f32]) -> f64 {
        let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| f64::from(x - y)).collect();
        let m = d.iter().sum::<f64>() / d.len() as f64;
        (d.iter().map(|v| (v - m).powi(2)).sum::<f64>() / d.len() as f64).sqrt()
    }

    fn mean(a: &[f32]) -> f64 {
        a.iter().map(|&v| f64::from(v)).sum::<f64>() / a.len() as f64
    }

    fn std(a: &[f32]) -> f64 {
        let m = mean(a);
        (a.iter().map(|&v| (f64::from(v) - m).powi(2)).sum::<f64>() / a.len() as f64).sqrt()
    }

    /// Mean squared difference of horizontal and vertical neighbours: the high-frequency
    /// energy of every image.
    fn hf_energy(set: &ImageSet) -> f64 {
        let (h, w) = (set.shape.height, set.shape.width);
        let mut s = 0.0;
        let mut n = 0usize;
        for img in set.pixels.chunks_exact(h * w) {
            for y in 0..h {
                for x in 0..w {
                    if x + 1 < w {
                        s += f64::from(img[y * w + x + 1] - img[y * w + x]).powi(2);
                        n += 1;
                    }
                    if y + 1 < h {
                        s += f64::from(img[(y + 1) * w + x] - img[y * w + x]).powi(2);
                        n += 1;
                    }
                }
            }
        }
        s / n as f64
    }

    fn distinct(set: &ImageSet) -> f64 {
        let n = set.shape.len();
        let mut total = 0usize;
        for img in set.pixels.chunks_exact(n) {
            let mut v: Vec<u32> = img.iter().map(|x| x.to_bits()).collect();
            v.sort_unstable();
            v.dedup();
            total += v.len();
        }
        total as f64 / set.len() as f64
    }

    /// The measure of each corruption that must grow with severity (decreasing measures
    /// are negated).
    fn damage(c: Corruption, clean: &ImageSet, bad: &ImageSet) -> f64 {
        match c {
            Corruption::GaussianNoise | Corruption::RicianNoise => {
                diff_std(&clean.pixels, &bad.pixels)
            }
            Corruption::GaussianBlur => -hf_energy(bad),
            Corruption::Pixelate => -(hf_energy(bad) + distinct(bad)),
            Corruption::Contrast => -std(&bad.pixels),
            Corruption::Gamma | Corruption::Brightness => {
                (mean(&bad.pixels) - mean(&clean.pixels)).abs()
            }
            Corruption::Jpeg
            | Corruption::Motion
            | Corruption::Ghosting
            | Corruption::Spike
            | Corruption::BiasField => mean_abs_diff(&clean.pixels, &bad.pixels),
        }
    }

    #[test]
    fn names_round_trip_and_unknown_is_clear() {
        for c in Corruption::ALL {
            assert_eq!(c.to_string().parse::<Corruption>().unwrap(), c);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.name()));
        }
        let e = "smudge".parse::<Corruption>().unwrap_err().to_string();
        assert!(e.contains("\"smudge\"") && e.contains("ghosting"), "{e}");
    }

    #[test]
    fn severity_zero_and_six_are_errors() {
        let set = phantom(2, 16);
        for c in Corruption::ALL {
            for s in [0, 6] {
                let e = corrupt_set(&set, c, s, 1).unwrap_err().to_string();
                assert!(
                    e.contains(&format!("severity {s}")) && e.contains(c.name()),
                    "{e}"
                );
                assert!(
                    matches!(
                        c.params(s),
                        Err(CorruptError::Severity { corruption, severity })
                            if corruption == c && severity == s
                    ),
                    "{c} severity {s}"
                );
            }
            assert!(c.params(1).is_ok() && c.params(5).is_ok());
        }
    }

    #[test]
    fn every_corruption_is_deterministic_keeps_shape_and_range() {
        let set = phantom(4, 28);
        for c in Corruption::ALL {
            for s in 1..=SEVERITIES {
                let a = corrupt_set(&set, c, s, 7).unwrap();
                let b = corrupt_set(&set, c, s, 7).unwrap();
                assert_eq!(a, b, "{c} s{s} not deterministic");
                assert_eq!(a.shape, set.shape);
                assert_eq!(a.pixels.len(), set.pixels.len());
                assert_eq!(a.labels, set.labels);
                assert!(
                    a.pixels.iter().all(|v| (0.0..=1.0).contains(v)),
                    "{c} s{s} range"
                );
                assert_ne!(a.pixels, set.pixels, "{c} s{s} changed nothing");
                // An image's result depends on its index, not on the rest of the set.
                let one = corrupt_at(&set, 2, c, s, 7).unwrap();
                assert_eq!(one.as_slice(), a.image(2), "{c} s{s} image 2 alone");
            }
        }
    }

    #[test]
    fn random_corruptions_depend_on_the_seed() {
        let set = phantom(3, 28);
        for c in [
            Corruption::GaussianNoise,
            Corruption::RicianNoise,
            Corruption::Motion,
            Corruption::BiasField,
            Corruption::Spike,
        ] {
            let a = corrupt_set(&set, c, 3, 1).unwrap();
            let b = corrupt_set(&set, c, 3, 2).unwrap();
            assert_ne!(a.pixels, b.pixels, "{c}");
        }
    }

    #[test]
    fn damage_grows_with_severity() {
        let set = phantom(6, 28);
        for c in Corruption::ALL {
            let d: Vec<f64> = (1..=SEVERITIES)
                .map(|s| damage(c, &set, &corrupt_set(&set, c, s, 3).unwrap()))
                .collect();
            for k in 1..d.len() {
                assert!(d[k] > d[k - 1], "{c}: damage by severity {d:?}");
            }
        }
    }

    #[test]
    fn any_channels_and_3d_are_corrupted_plane_by_plane() {
        let shape = ImageShape::d3(2, 3, 16, 16);
        let mut set = ImageSet::empty(shape, ImageTask::Binary);
        let px: Vec<f32> = (0..shape.len()).map(|i| (i % 17) as f32 / 17.0).collect();
        set.push(&px, &[1], "vol");
        for c in Corruption::ALL {
            let out = corrupt_set(&set, c, 2, 0).unwrap();
            assert_eq!(out.pixels.len(), shape.len());
            assert!(out.pixels.iter().all(|v| (0.0..=1.0).contains(v)), "{c}");
        }
        let e = corrupt_at(&set, 1, Corruption::Gamma, 1, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("image 1 does not exist"), "{e}");
        let wrong = corrupt_image(&px[..10], shape, Corruption::Gamma, 1, 0, 0).unwrap_err();
        assert!(wrong.to_string().contains("got 10"), "{wrong}");
    }

    #[test]
    fn fft_round_trip() {
        // Reference: the inverse of the forward DFT is the identity.
        let (h, w) = (6, 10);
        let x: Vec<f32> = (0..h * w).map(|i| ((i * 7) % 11) as f32 / 11.0).collect();
        let mut y = x.clone();
        magnitude(spectrum(&x, h, w), &mut y, h, w);
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 1e-5);
        }
        // DC term is the sum.
        let f = spectrum(&x, h, w);
        assert!((f[0].re - x.iter().sum::<f32>()).abs() < 1e-3);
    }

    #[test]
    fn examples_and_png_are_written() {
        let set = phantom(4, 20);
        let dir = tempfile::tempdir().unwrap();
        let paths = write_examples(&dir.path().join("examples"), &set, 4, 0).unwrap();
        assert_eq!(paths.len(), 12 * 5);
        let p = dir.path().join("examples/motion_s3.png");
        assert!(paths.contains(&p));
        let img = image::open(&p).unwrap().to_luma8();
        // 2 rows x 4 columns of 20 px at zoom 3, with 2 px borders.
        assert_eq!(img.dimensions(), (4 * 62 + 2, 2 * 62 + 2));
        let e = write_examples(dir.path(), &ImageSet::empty(set.shape, set.task), 4, 0)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "nothing to draw: no image to show");
        let q = dir.path().join("one.png");
        write_grey_png(&q, &[0.0, 0.5, 1.0, 0.25], 2, 2).unwrap();
        let back = image::open(&q).unwrap().to_luma8();
        assert_eq!(back.as_raw(), &vec![0, 128, 255, 64]);
        let e = write_grey_png(&q, &[0.0; 3], 2, 2).unwrap_err().to_string();
        assert_eq!(e, "image of shape 1x2x2 needs 4 values, got 3");
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, rng_seed: proptest::test_runner::RngSeed::Fixed(17), ..ProptestConfig::default() })]
        /// Any corruption of any small image (1 to 3 channels, 1 or 2 slices, sides 1..12,
        /// values anywhere, NaN included) returns an image of the same size in `[0, 1]`,
        /// never a panic.
        #[test]
        fn never_panics_and_stays_in_range(
            c in 0usize..12,
            severity in 1u8..=5,
            channels in 1usize..=3,
            depth in 1usize..=2,
            h in 1usize..12,
            w in 1usize..12,
            seed in any::<u64>(),
            values in proptest::collection::vec(prop_oneof![-1.0f32..2.0, Just(f32::NAN)], 1..=864),
        ) {
            let shape = ImageShape::d3(channels, depth, h, w);
            let px: Vec<f32> = values.iter().cycle().take(shape.len()).copied().collect();
            let out = corrupt_image(&px, shape, Corruption::ALL[c], severity, seed, 3).unwrap();
            prop_assert_eq!(out.len(), shape.len());
            prop_assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
        }
    }
}
