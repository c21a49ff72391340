//! Acquisition-shift corruptions at graded severities, after MedMNIST-C (Di Salvo et al.,
//! 2024, "MedMNIST-C: Comprehensive benchmark and improved classifier robustness by
//! simulating realistic image corruptions"; package `medmnistc` 0.1.0) and TorchIO's MRI
//! artefacts (Pérez-García et al., 2021; package `torchio` 0.20.0).
//!
//! [`Corruption`] names eighteen corruptions; each has five severities (1 mild ..= 5
//! severe) and one setting per severity ([`Corruption::params`]):
//!
//! | corruption | parameter | 1 | 2 | 3 | 4 | 5 | source |
//! |---|---|---|---|---|---|---|---|
//! | `gaussian-noise` | noise sigma | 0.04 | 0.08 | 0.12 | 0.18 | 0.26 | MedMNIST-C ChestMNIST `gaussian_noise` |
//! | `speckle-noise` | sigma of the multiplicative noise | 0.05 | 0.15 | 0.2 | 0.35 | 0.45 | MedMNIST-C ChestMNIST `speckle_noise` |
//! | `impulse-noise` | share of pixels set to 0 or 1 | 0.01 | 0.03 | 0.06 | 0.09 | 0.17 | MedMNIST-C ChestMNIST `impulse_noise` |
//! | `shot-noise` | photons per unit intensity | 60 | 25 | 18 | 10 | 5 | MedMNIST-C ChestMNIST `shot_noise` |
//! | `rician-noise` | sigma of each Gaussian component | 0.04 | 0.08 | 0.12 | 0.18 | 0.26 | `gaussian-noise`'s sigmas (not in MedMNIST-C) |
//! | `gaussian-blur` | kernel sigma (pixels at 28 px) | 0.5 | 0.75 | 1.0 | 1.5 | 2.0 | Ward's (MedMNIST-C's kernels are for 224 px and vanish at 28 px) |
//! | `pixelate` | kept resolution (fraction of each side) | 0.8 | 0.65 | 0.5 | 0.4 | 0.3 | Ward's (MedMNIST-C's 0.3..0.1 are for 224 px) |
//! | `jpeg` | JPEG quality | 50 | 30 | 15 | 10 | 7 | MedMNIST-C ChestMNIST `jpeg_compression` |
//! | `motion` | rotation bound (degrees) / translation bound (pixels at 28 px), 5 movements | 2 / 0.5 | 4 / 1 | 6 / 2 | 8 / 3 | 10 / 5 | TorchIO `RandomMotion` default rotation bound 10 degrees at severity 5; translations and the number of movements Ward's (below) |
//! | `ghosting` | k-space line attenuation | 0.5 | 0.625 | 0.75 | 0.875 | 1.0 | TorchIO `RandomGhosting` default intensity (0.5, 1), ghost spacing its default (4, 10) |
//! | `spike` | spike intensity (ratio to the spectrum's maximum) | 0.25 | 0.5 | 1.0 | 2.0 | 3.0 | TorchIO `RandomSpike` default intensity (1, 3) at severities 3..5, one spike (its default `num_spikes = 1`) |
//! | `bias-field` | bound of the log-field polynomial coefficients | 0.1 | 0.2 | 0.3 | 0.45 | 0.6 | Ward's (TorchIO `RandomBiasField` default 0.5 lies between 4 and 5) |
//! | `gamma-up` | exponent (`x^gamma`, darker) | 1.1 | 1.2 | 1.3 | 1.4 | 1.6 | MedMNIST-C ChestMNIST `gamma_corr_up` |
//! | `gamma-down` | exponent (`x^gamma`, brighter) | 0.9 | 0.8 | 0.7 | 0.6 | 0.4 | MedMNIST-C ChestMNIST `gamma_corr_down` |
//! | `contrast-up` | factor on the deviation from the mean | 1.1 | 1.2 | 1.3 | 1.4 | 1.6 | MedMNIST-C ChestMNIST `contrast_up` |
//! | `contrast-down` | factor on the deviation from the mean | 0.9 | 0.8 | 0.7 | 0.6 | 0.4 | MedMNIST-C ChestMNIST `contrast_down` |
//! | `brightness-up` | intensity factor | 1.1 | 1.2 | 1.3 | 1.4 | 1.5 | MedMNIST-C ChestMNIST `brightness_up` |
//! | `brightness-down` | intensity factor | 0.9 | 0.8 | 0.7 | 0.6 | 0.5 | MedMNIST-C ChestMNIST `brightness_down` |
//!
//! MedMNIST-C tunes its table per dataset; Ward uses ChestMNIST's, a grey-scale table with
//! all four noises and both gamma directions (PneumoniaMNIST's and the OrganMNISTs' have
//! the same kinds at other strengths). Pixel-sized parameters (blur sigma,
//! motion translation) scale with `max(height, width) / 28`, so a severity means the same
//! on 28- and 64-pixel images.
//!
//! How each works, on every 2D plane (channel, slice) of an image, output clipped to
//! `[0, 1]` (MedMNIST-C also quantises to 8 bits; Ward keeps floats):
//! - Gaussian noise `x + sigma n`; speckle `x + x sigma n`; impulse: each pixel becomes 0
//!   or 1 (equal odds) with probability `amount` (scikit-image `random_noise(mode='s&p')`);
//!   shot `Poisson(x photons) / photons`; Rician `sqrt((x + sigma n1)^2 + (sigma n2)^2)`
//!   (MRI magnitude noise).
//! - blur: separable Gaussian kernel, radius `ceil(3 sigma)`, mirrored edges.
//! - pixelate: box-average over a grid of `round(side * f)` cells, each cell filled with its
//!   mean (nearest-neighbour upsampling).
//! - JPEG: 8-bit quantisation, `image`'s baseline JPEG encoder at the quality, decoded back.
//! - motion (TorchIO `Motion`, after Shaw et al. 2019): `n` movements, each a rotation
//!   about the centre uniform in `±degrees` and a translation uniform in `±translation`
//!   along each axis (TorchIO's `U(-d, d)` draws), at times `k / (n + 1)` plus uniform
//!   noise of ±0.3 of that step; the centred k-space rows between two times come from the
//!   plane moved by the movement that starts the segment, and the segment holding the
//!   centre of k-space from the unmoved plane (TorchIO's `sort_spectra`); the output is the
//!   real part of the inverse FFT. Moved planes are resampled bilinearly as SimpleITK
//!   does, the plane's minimum outside. TorchIO splits along the array's last axis, which
//!   for a 2D image is a singleton, so its 2D output has no artefact (TorchIO issue #81);
//!   Ward splits along the rows (phase encoding). Ward moves the object 5 times where
//!   TorchIO's default `num_transforms` is 2: with 2 the unmoved centre keeps a third of
//!   k-space and on a 28-pixel phantom the damage stops growing at about 3 pixels of
//!   translation (mean absolute change 0.037, below every other corruption's severity
//!   3), while with 5 it grows through the whole table. TorchIO's default translation
//!   bound, 10 mm, is 10 pixels of a 28-pixel image at 1 mm per pixel, past that plateau;
//!   Ward's bound at severity 5 is 5 pixels.
//! - ghosting (TorchIO `Ghosting`): in the centred spectrum, lines `0, n, 2n, ...` along a
//!   random axis (`n` uniform in 4..=10), except the centre line, are multiplied by
//!   `1 - intensity`; real part of the inverse.
//! - spike (TorchIO `Spike`): `intensity * max(F)` (the DC term: the sum of the plane) is
//!   added at a uniformly random index of the centred spectrum `F`; real part of the
//!   inverse. One spike adds stripes of amplitude `intensity * mean(x)`. TorchIO draws the
//!   number of spikes uniformly in `0..=num_spikes`, so half its default draws add none;
//!   Ward always adds one.
//! - bias field (TorchIO `RandomBiasField`): `x * exp(p(u, v))`, `p` a polynomial of order
//!   3 in coordinates scaled to `[-1, 1]`, coefficients uniform in `[-c, c]`.
//! - gamma `x^gamma` (torchvision `adjust_gamma`); contrast `m + c (x - m)` with `m` the
//!   plane's mean (PIL `ImageEnhance.Contrast`, which takes the mean of the grey image);
//!   brightness `b x` (PIL `ImageEnhance.Brightness`).
//!
//! ```
//! use ward_data::corrupt::{Corruption, Setting, corrupt_set};
//! use ward_data::synth::{SynthSpec, generate};
//!
//! let synth = generate(&SynthSpec { sites: 1, per_site: 20, ..SynthSpec::default() })?;
//! let clean = &synth.sites[0].test;
//! let c: Corruption = "ghosting".parse()?;
//! assert_eq!(c.params(3)?, Setting::Value(0.75));
//! let shifted = corrupt_set(clean, c, 3, 42)?;
//! assert_eq!(shifted.shape, clean.shape);
//! assert!(shifted.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
//! assert!(corrupt_set(clean, c, 6, 42).is_err());
//! assert_eq!(
//!     Corruption::Motion.params(5)?,
//!     Setting::Motion { degrees: 10.0, translation: 5.0, movements: 5 }
//! );
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Determinism: the random numbers of image `i` come from `ChaCha8Rng` seeded by the seed
//! and the corruption, on stream `i`. Severity does not change the draws, only how strongly
//! they act, so for one image the damage grows with severity (common random numbers); the
//! same seed and index always give the same output.

mod kspace;
pub(crate) mod noise;
#[cfg(test)]
mod reference;

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::image::{ImageSet, ImageShape};
use kspace::{Movement, spike};
pub(crate) use kspace::{Recon, ghosting};
use noise::normal;

/// Number of severities of every corruption.
pub const SEVERITIES: u8 = 5;

/// One acquisition-shift corruption. Names are kebab-case (`gaussian-noise`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Corruption {
    /// Additive Gaussian noise.
    GaussianNoise,
    /// Multiplicative (speckle) noise, as in ultrasound and OCT.
    SpeckleNoise,
    /// Salt-and-pepper noise (dead and saturated pixels).
    ImpulseNoise,
    /// Poisson (photon-counting) noise, as in low-dose X-ray.
    ShotNoise,
    /// Rician (MRI magnitude) noise.
    RicianNoise,
    /// Gaussian blur.
    GaussianBlur,
    /// Pixelation (downsampling).
    Pixelate,
    /// JPEG compression.
    Jpeg,
    /// Rigid motion during acquisition (k-space segments of rotated and shifted images).
    Motion,
    /// Ghosting (periodic k-space line attenuation).
    Ghosting,
    /// A k-space spike (stripes).
    Spike,
    /// Smooth multiplicative bias field.
    BiasField,
    /// Gamma above 1 (`x^gamma`: darker mid-tones).
    GammaUp,
    /// Gamma below 1 (`x^gamma`: brighter mid-tones).
    GammaDown,
    /// Higher contrast around the image mean.
    ContrastUp,
    /// Lower contrast around the image mean.
    ContrastDown,
    /// Brighter (intensities times a factor above 1).
    BrightnessUp,
    /// Darker (intensities times a factor below 1).
    BrightnessDown,
}

/// The setting of one corruption at one severity (see the module table).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Setting {
    /// One number, named by [`Corruption::param_name`].
    Value(f32),
    /// Motion: bounds of each movement's rotation and translation.
    Motion {
        /// Rotation bound, degrees (each movement's angle is uniform in `±degrees`).
        degrees: f32,
        /// Translation bound, pixels of a 28-pixel image (uniform in `±translation` along
        /// each axis).
        translation: f32,
        /// Number of movements during the acquisition (TorchIO's `num_transforms`).
        movements: u8,
    },
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(v) => write!(f, "{v}"),
            Self::Motion {
                degrees,
                translation,
                movements,
            } => write!(f, "{movements} x (±{degrees}°, ±{translation} px)"),
        }
    }
}

/// Parameters per severity 1..=5, in [`Corruption::ALL`] order (see the module table);
/// motion's row is its rotation bound, [`MOTION_TRANSLATION`] its translation bound.
const TABLE: [[f32; 5]; 18] = [
    [0.04, 0.08, 0.12, 0.18, 0.26],
    [0.05, 0.15, 0.2, 0.35, 0.45],
    [0.01, 0.03, 0.06, 0.09, 0.17],
    [60.0, 25.0, 18.0, 10.0, 5.0],
    [0.04, 0.08, 0.12, 0.18, 0.26],
    [0.5, 0.75, 1.0, 1.5, 2.0],
    [0.8, 0.65, 0.5, 0.4, 0.3],
    [50.0, 30.0, 15.0, 10.0, 7.0],
    [2.0, 4.0, 6.0, 8.0, 10.0],
    [0.5, 0.625, 0.75, 0.875, 1.0],
    [0.25, 0.5, 1.0, 2.0, 3.0],
    [0.1, 0.2, 0.3, 0.45, 0.6],
    [1.1, 1.2, 1.3, 1.4, 1.6],
    [0.9, 0.8, 0.7, 0.6, 0.4],
    [1.1, 1.2, 1.3, 1.4, 1.6],
    [0.9, 0.8, 0.7, 0.6, 0.4],
    [1.1, 1.2, 1.3, 1.4, 1.5],
    [0.9, 0.8, 0.7, 0.6, 0.5],
];

/// Motion's translation bound per severity, pixels of a 28-pixel image.
const MOTION_TRANSLATION: [f32; 5] = [0.5, 1.0, 2.0, 3.0, 5.0];

/// Movements during one motion-corrupted acquisition, at every severity.
const MOVEMENTS: usize = 5;

impl Corruption {
    /// Every corruption, in a fixed order.
    pub const ALL: [Corruption; 18] = [
        Self::GaussianNoise,
        Self::SpeckleNoise,
        Self::ImpulseNoise,
        Self::ShotNoise,
        Self::RicianNoise,
        Self::GaussianBlur,
        Self::Pixelate,
        Self::Jpeg,
        Self::Motion,
        Self::Ghosting,
        Self::Spike,
        Self::BiasField,
        Self::GammaUp,
        Self::GammaDown,
        Self::ContrastUp,
        Self::ContrastDown,
        Self::BrightnessUp,
        Self::BrightnessDown,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The kebab-case name, e.g. `gaussian-noise`.
    pub fn name(self) -> &'static str {
        match self {
            Self::GaussianNoise => "gaussian-noise",
            Self::SpeckleNoise => "speckle-noise",
            Self::ImpulseNoise => "impulse-noise",
            Self::ShotNoise => "shot-noise",
            Self::RicianNoise => "rician-noise",
            Self::GaussianBlur => "gaussian-blur",
            Self::Pixelate => "pixelate",
            Self::Jpeg => "jpeg",
            Self::Motion => "motion",
            Self::Ghosting => "ghosting",
            Self::Spike => "spike",
            Self::BiasField => "bias-field",
            Self::GammaUp => "gamma-up",
            Self::GammaDown => "gamma-down",
            Self::ContrastUp => "contrast-up",
            Self::ContrastDown => "contrast-down",
            Self::BrightnessUp => "brightness-up",
            Self::BrightnessDown => "brightness-down",
        }
    }

    /// What [`Corruption::params`] returns for this corruption.
    pub fn param_name(self) -> &'static str {
        match self {
            Self::GaussianNoise | Self::RicianNoise => "noise sigma",
            Self::SpeckleNoise => "multiplicative noise sigma",
            Self::ImpulseNoise => "share of pixels replaced",
            Self::ShotNoise => "photons per unit intensity",
            Self::GaussianBlur => "blur sigma (pixels at 28 px)",
            Self::Pixelate => "kept resolution fraction",
            Self::Jpeg => "JPEG quality",
            Self::Motion => "rotation bound (degrees) / translation bound (pixels at 28 px)",
            Self::Ghosting => "line attenuation",
            Self::Spike => "spike intensity (ratio to max F)",
            Self::BiasField => "polynomial coefficient bound",
            Self::GammaUp | Self::GammaDown => "gamma",
            Self::ContrastUp | Self::ContrastDown => "contrast factor",
            Self::BrightnessUp | Self::BrightnessDown => "brightness factor",
        }
    }

    /// The setting at `severity` (1..=5), as in the module table.
    ///
    /// # Errors
    /// [`CorruptError::Severity`] outside 1..=5.
    pub fn params(self, severity: u8) -> Result<Setting, CorruptError> {
        if !(1..=SEVERITIES).contains(&severity) {
            return Err(CorruptError::Severity {
                corruption: self,
                severity,
            });
        }
        let s = usize::from(severity - 1);
        let value = TABLE[self.index()][s];
        Ok(match self {
            Self::Motion => Setting::Motion {
                degrees: value,
                translation: MOTION_TRANSLATION[s],
                movements: MOVEMENTS as u8,
            },
            _ => Setting::Value(value),
        })
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
    let setting = corruption.params(severity)?;
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
    let plan = Plan::draw(corruption, &mut rng);
    let mut out = Vec::with_capacity(pixels.len());
    for plane in pixels.chunks_exact(h * w) {
        let mut x = plane.to_vec();
        apply_plane(corruption, setting, &plan, &mut x, (h, w), &mut rng)?;
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

/// Random choices drawn once per image and shared by its planes; none depends on the
/// severity, which only scales them.
#[derive(Debug, Default)]
struct Plan {
    /// Motion, per movement: the rotation, the two translations (fractions of their bounds)
    /// and the time's offset (fraction of 0.3 steps), each in `[-1, 1]`.
    motion: [[f32; 4]; MOVEMENTS],
    /// Bias field: 10 coefficients in [-1, 1] for the monomials `u^i v^j`, `i + j <= 3`.
    bias: Vec<f32>,
    /// Ghosting: spacing of the attenuated lines and axis (false: rows, true: columns).
    ghosts: (usize, bool),
    /// Spike: position in the centred spectrum, as fractions of the height and width.
    spike: (f32, f32),
}

impl Plan {
    fn draw(c: Corruption, rng: &mut ChaCha8Rng) -> Self {
        let mut plan = Self::default();
        match c {
            Corruption::Motion => {
                // TorchIO `RandomMotion.get_params`: angles and translations uniform in
                // +-bound; times `k / (n + 1)` plus uniform noise of +-0.3 of that step.
                plan.motion =
                    [(); MOVEMENTS].map(|()| [(); 4].map(|()| rng.random_range(-1.0f32..=1.0)));
            }
            Corruption::BiasField => {
                plan.bias = (0..10).map(|_| rng.random_range(-1.0f32..=1.0)).collect();
            }
            Corruption::Ghosting => {
                plan.ghosts = (rng.random_range(4..=10), rng.random_bool(0.5));
            }
            Corruption::Spike => {
                plan.spike = (rng.random(), rng.random());
            }
            _ => {}
        }
        plan
    }
}

fn apply_plane(
    c: Corruption,
    setting: Setting,
    plan: &Plan,
    x: &mut [f32],
    (h, w): (usize, usize),
    rng: &mut ChaCha8Rng,
) -> Result<(), CorruptError> {
    let scale = h.max(w) as f32 / 28.0;
    let p = match setting {
        Setting::Value(v) => v,
        Setting::Motion {
            degrees,
            translation,
            movements,
        } => {
            let n = usize::from(movements).min(MOVEMENTS);
            let step = 1.0 / (n + 1) as f32;
            let drawn = &plan.motion[..n];
            let moves: Vec<Movement> = drawn
                .iter()
                .map(|&[a, dx, dy, _]| Movement {
                    degrees: a * degrees,
                    dx: dx * translation * scale,
                    dy: dy * translation * scale,
                })
                .collect();
            let times: Vec<f32> = (1..=n)
                .zip(drawn)
                .map(|(k, m)| k as f32 * step + 0.3 * step * m[3])
                .collect();
            kspace::motion(x, h, w, &moves, &times);
            return Ok(());
        }
    };
    match c {
        Corruption::GaussianNoise => x.iter_mut().for_each(|v| *v += p * normal(rng)),
        Corruption::SpeckleNoise => noise::speckle(x, p, rng),
        Corruption::ImpulseNoise => noise::impulse(x, p, rng),
        Corruption::ShotNoise => noise::shot(x, p, rng),
        Corruption::RicianNoise => x.iter_mut().for_each(|v| {
            let (a, b) = (*v + p * normal(rng), p * normal(rng));
            *v = (a * a + b * b).sqrt();
        }),
        Corruption::GaussianBlur => gaussian_blur(x, h, w, p * scale),
        Corruption::Pixelate => pixelate(x, h, w, p),
        Corruption::Jpeg => jpeg(x, h, w, p as u8)?,
        Corruption::Ghosting => {
            let (n, columns) = plan.ghosts;
            ghosting(x, (h, w), p, n, columns, Recon::Real);
        }
        Corruption::Spike => spike(x, (h, w), p, &[plan.spike]),
        Corruption::BiasField => {
            let field = bias_field(h, w, &plan.bias, p);
            x.iter_mut().zip(&field).for_each(|(v, f)| *v *= f);
        }
        Corruption::GammaUp | Corruption::GammaDown => {
            x.iter_mut().for_each(|v| *v = v.max(0.0).powf(p));
        }
        Corruption::ContrastUp | Corruption::ContrastDown => {
            let m = x.iter().sum::<f32>() / x.len() as f32;
            x.iter_mut().for_each(|v| *v = m + p * (*v - m));
        }
        Corruption::BrightnessUp | Corruption::BrightnessDown => {
            x.iter_mut().for_each(|v| *v *= p);
        }
        // Handled with its own setting above.
        Corruption::Motion => {}
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

/// Index `i` of `n` mapped onto `[-1, 1]` (0 for a single sample).
pub(crate) fn unit_coord(i: usize, n: usize) -> f32 {
    if n > 1 {
        2.0 * i as f32 / (n - 1) as f32 - 1.0
    } else {
        0.0
    }
}

/// `exp(c * sum_k a_k u^i v^j)` over the 10 monomials of order <= 3, `u, v` in `[-1, 1]`.
pub(crate) fn bias_field(h: usize, w: usize, coeffs: &[f32], c: f32) -> Vec<f32> {
    let coord = unit_coord;
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

    fn mean(a: &[f32]) -> f64 {
        a.iter().map(|&v| f64::from(v)).sum::<f64>() / a.len() as f64
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
            Corruption::SpeckleNoise,
            Corruption::ImpulseNoise,
            Corruption::ShotNoise,
            Corruption::RicianNoise,
            Corruption::Motion,
            Corruption::Ghosting,
            Corruption::BiasField,
            Corruption::Spike,
        ] {
            let a = corrupt_set(&set, c, 3, 1).unwrap();
            let b = corrupt_set(&set, c, 3, 2).unwrap();
            assert_ne!(a.pixels, b.pixels, "{c}");
        }
    }

    /// Prints every corruption's mean absolute change per severity on the phantom and,
    /// with `WARD_CORRUPT_EXAMPLES=<dir>`, writes the example sheets there (calibration aid).
    #[test]
    #[ignore = "calibration aid: prints and writes example sheets"]
    #[expect(clippy::print_stdout, reason = "a calibration aid run by hand")]
    fn print_calibration() {
        let set = phantom(6, 28);
        for c in Corruption::ALL {
            let d: Vec<String> = (1..=SEVERITIES)
                .map(|s| {
                    let bad = corrupt_set(&set, c, s, 3).unwrap();
                    format!("{:.4}", mean_abs_diff(&set.pixels, &bad.pixels))
                })
                .collect();
            println!("{c:>16}: {}", d.join(" "));
        }
        if let Ok(dir) = std::env::var("WARD_CORRUPT_EXAMPLES") {
            write_examples(Path::new(&dir), &set, 6, 3).unwrap();
        }
    }

    /// MedMNIST-C's `Contrast` (1.4: `contrast-up` severity 4) and `Brightness` (0.7:
    /// `brightness-down` severity 3), PIL `ImageEnhance`, and `GammaCorrection` (1.6:
    /// `gamma-up` severity 5), torchvision's `adjust_gamma`, on the 8-bit reference input
    /// (`reference::CONTRAST`, `BRIGHTNESS`, `GAMMA`); within 1.5 grey levels, PIL working
    /// in 8 bits (rounded mean, truncated table) where Ward keeps floats.
    #[test]
    fn intensity_corruptions_match_medmnist_c() {
        use reference::{H, W};
        let x: Vec<f32> = reference::input()
            .iter()
            .map(|&v| f32::from(to_u8(v)) / 255.0)
            .collect();
        let shape = ImageShape::d2(1, H, W);
        for (c, s, want) in [
            (Corruption::ContrastUp, 4, &reference::CONTRAST),
            (Corruption::BrightnessDown, 3, &reference::BRIGHTNESS),
            (Corruption::GammaUp, 5, &reference::GAMMA),
        ] {
            let got = corrupt_image(&x, shape, c, s, 0, 0).unwrap();
            for (i, (&g, &e)) in got.iter().zip(want.iter()).enumerate() {
                assert!(
                    (f64::from(g) - e).abs() <= 1.5 / 255.0,
                    "{c} s{s}: pixel {i} is {g}, MedMNIST-C's {e}"
                );
            }
        }
    }

    /// The up and down variants move the same statistic in opposite directions: gamma and
    /// brightness the mean, contrast the standard deviation; and the down variant's mean
    /// change grows with severity.
    #[test]
    fn up_and_down_variants_move_opposite_ways() {
        let set = phantom(4, 28);
        let sd = |v: &[f32]| {
            let m = mean(v);
            (v.iter().map(|&a| (f64::from(a) - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
        };
        let (m0, s0) = (mean(&set.pixels), sd(&set.pixels));
        for s in 1..=SEVERITIES {
            let at = |c| corrupt_set(&set, c, s, 0).unwrap().pixels;
            assert!(mean(&at(Corruption::GammaUp)) < m0, "gamma-up s{s} darkens");
            assert!(
                mean(&at(Corruption::GammaDown)) > m0,
                "gamma-down s{s} brightens"
            );
            assert!(
                mean(&at(Corruption::BrightnessUp)) > m0,
                "brightness-up s{s}"
            );
            assert!(
                mean(&at(Corruption::BrightnessDown)) < m0,
                "brightness-down s{s}"
            );
            assert!(sd(&at(Corruption::ContrastUp)) > s0, "contrast-up s{s}");
            assert!(sd(&at(Corruption::ContrastDown)) < s0, "contrast-down s{s}");
        }
    }

    /// Every corruption changes the phantom at severity 1 (mean absolute change at least
    /// 0.3 % of the range, three quarters of a grey level; impulse noise's 1 % of pixels
    /// gives 0.4 %) and more at every further severity.
    #[test]
    fn damage_grows_with_severity() {
        let set = phantom(6, 28);
        for seed in 0..4 {
            for c in Corruption::ALL {
                let d: Vec<f64> = (1..=SEVERITIES)
                    .map(|s| {
                        let bad = corrupt_set(&set, c, s, seed).unwrap();
                        mean_abs_diff(&set.pixels, &bad.pixels)
                    })
                    .collect();
                assert!(
                    d[0] >= 0.003,
                    "{c} seed {seed}: severity 1 changes little: {d:?}"
                );
                for k in 1..d.len() {
                    assert!(d[k] > d[k - 1], "{c} seed {seed}: damage by severity {d:?}");
                }
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
        let e = corrupt_at(&set, 1, Corruption::GammaUp, 1, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("image 1 does not exist"), "{e}");
        let wrong = corrupt_image(&px[..10], shape, Corruption::GammaUp, 1, 0, 0).unwrap_err();
        assert!(wrong.to_string().contains("got 10"), "{wrong}");
    }

    #[test]
    fn examples_and_png_are_written() {
        let set = phantom(4, 20);
        let dir = tempfile::tempdir().unwrap();
        let paths = write_examples(&dir.path().join("examples"), &set, 4, 0).unwrap();
        assert_eq!(paths.len(), Corruption::ALL.len() * 5);
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
            c in 0usize..Corruption::ALL.len(),
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
