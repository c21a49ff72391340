//! The k-space corruptions (TorchIO 0.20's `Spike`, `Ghosting` and `Motion`, Pérez-García
//! et al. 2021) and the 2D FFT they share, on one `h x w` plane.
//!
//! TorchIO works on the centred spectrum (`fftshift(fftn(x))`) and returns the real part of
//! the inverse; so do these. An index `s` of the centred spectrum along an axis of length
//! `n` is the FFT index `(s + n - n / 2) % n`, and FFT index `k` sits at `(k + n / 2) % n`.

use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;

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

/// The (uncentred) 2D spectrum of a real plane.
pub(crate) fn spectrum(x: &[f32], h: usize, w: usize) -> Vec<Complex32> {
    let mut f: Vec<Complex32> = x.iter().map(|&v| Complex32::new(v, 0.0)).collect();
    fft2(&mut f, h, w, false);
    f
}

/// How an image is made from a modified spectrum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recon {
    /// `|ifft|`, as a scanner's magnitude image (the synthetic scanner generator).
    Magnitude,
    /// `Re(ifft)`, as TorchIO's k-space transforms.
    Real,
}

/// The inverse FFT of `f` written into `x` as `recon` says.
pub(crate) fn reconstruct(mut f: Vec<Complex32>, x: &mut [f32], h: usize, w: usize, recon: Recon) {
    fft2(&mut f, h, w, true);
    for (v, c) in x.iter_mut().zip(&f) {
        *v = match recon {
            Recon::Magnitude => c.norm(),
            Recon::Real => c.re,
        };
    }
}

/// FFT index of centred index `s` along an axis of length `n`.
fn uncentre(s: usize, n: usize) -> usize {
    (s + n - n / 2) % n
}

/// Centred index of FFT index `k` along an axis of length `n`.
fn centre(k: usize, n: usize) -> usize {
    (k + n / 2) % n
}

/// TorchIO's `Ghosting.add_artifact`: in the centred spectrum, the lines `0, n, 2n, ...`
/// along `axis` (false: rows, true: columns) are multiplied by `1 - intensity`, then the
/// centre line (`len / 2`) is put back.
pub(crate) fn ghosting(
    x: &mut [f32],
    (h, w): (usize, usize),
    intensity: f32,
    n: usize,
    columns: bool,
    recon: Recon,
) {
    let mut f = spectrum(x, h, w);
    let n = n.max(1);
    let (len, other) = if columns { (w, h) } else { (h, w) };
    for k in 0..len {
        let s = centre(k, len);
        if !s.is_multiple_of(n) || s == len / 2 {
            continue;
        }
        for o in 0..other {
            let idx = if columns { o * w + k } else { k * w + o };
            f[idx] *= 1.0 - intensity;
        }
    }
    reconstruct(f, x, h, w, recon);
}

/// The largest value of a complex array as numpy orders complex numbers (by real part,
/// then imaginary part): what TorchIO's `spectrum.numpy().max()` returns. For an image of
/// non-negative values it is the DC term, the sum of the pixels.
fn numpy_max(f: &[Complex32]) -> Complex32 {
    f.iter()
        .copied()
        .fold(Complex32::new(f32::NAN, 0.0), |m, c| {
            if m.re.is_nan() || c.re > m.re || (c.re == m.re && c.im > m.im) {
                c
            } else {
                m
            }
        })
}

/// TorchIO's `Spike.add_artifact`: for each position `p` in `[0, 1)^2`, `intensity *
/// max(F)` is added at centred index `floor(p * (h, w))` of the spectrum `F` (the max as
/// numpy orders complex numbers: the DC term of a non-negative image); the result is the
/// real part of the inverse. One spike at FFT frequency `(ky, kx)` adds the stripes
/// `intensity * mean(x) * cos(2 pi (ky y / h + kx x / w))`.
pub(crate) fn spike(
    x: &mut [f32],
    (h, w): (usize, usize),
    intensity: f32,
    positions: &[(f32, f32)],
) {
    let mut f = spectrum(x, h, w);
    let artifact = numpy_max(&f) * intensity;
    if !artifact.re.is_finite() || !artifact.im.is_finite() {
        return;
    }
    for &(py, px) in positions {
        let i = ((py * h as f32).floor() as usize).min(h - 1);
        let j = ((px * w as f32).floor() as usize).min(w - 1);
        f[uncentre(i, h) * w + uncentre(j, w)] += artifact;
    }
    reconstruct(f, x, h, w, Recon::Real);
}

/// One rigid movement of the object in a plane: a rotation about the plane's centre and a
/// translation, in pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Movement {
    /// Rotation in degrees (SimpleITK's `Euler2DTransform` angle).
    pub degrees: f32,
    /// Translation along the columns (x), pixels.
    pub dx: f32,
    /// Translation along the rows (y), pixels.
    pub dy: f32,
}

/// The plane resampled through `m` as SimpleITK's `ResampleImageFilter` does in TorchIO's
/// `Motion.resample_images`: output pixel `p = (column, row)` reads the input at
/// `R (p - c) + c + t`, with `c = (w / 2, h / 2)` (TorchIO's `GetSize() / 2`) and `R` the
/// rotation by `m.degrees`; linear interpolation (ITK's: the edge value within half a pixel
/// of the border), and the plane's minimum outside.
pub(crate) fn rigid(x: &[f32], h: usize, w: usize, m: Movement) -> Vec<f32> {
    let fallback = x.iter().copied().fold(f32::INFINITY, f32::min);
    let (sin, cos) = f64::from(m.degrees).to_radians().sin_cos();
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let mut out = Vec::with_capacity(h * w);
    for row in 0..h {
        for col in 0..w {
            let (u, v) = (col as f64 - cx, row as f64 - cy);
            let qx = cos * u - sin * v + cx + f64::from(m.dx);
            let qy = sin * u + cos * v + cy + f64::from(m.dy);
            out.push(bilinear(x, h, w, qx, qy).unwrap_or(fallback));
        }
    }
    out
}

/// ITK's linear interpolation at continuous index `(qx, qy)`: `None` outside
/// `[-0.5, n - 0.5)`, the nearest edge pixel's value between the last pixel centre and
/// that bound.
fn bilinear(x: &[f32], h: usize, w: usize, qx: f64, qy: f64) -> Option<f32> {
    let inside = |q: f64, n: usize| q >= -0.5 && q < n as f64 - 0.5;
    if !inside(qx, w) || !inside(qy, h) {
        return None;
    }
    let qx = qx.clamp(0.0, (w - 1) as f64);
    let qy = qy.clamp(0.0, (h - 1) as f64);
    let (x0, y0) = (qx.floor() as usize, qy.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (tx, ty) = (qx - x0 as f64, qy - y0 as f64);
    let at = |r: usize, c: usize| f64::from(x[r * w + c]);
    let top = at(y0, x0) * (1.0 - tx) + at(y0, x1) * tx;
    let bottom = at(y1, x0) * (1.0 - tx) + at(y1, x1) * tx;
    Some((top * (1.0 - ty) + bottom * ty) as f32)
}

/// TorchIO's `Motion.add_artifact`, its k-space split taken along the plane's rows (the
/// phase-encoding direction; TorchIO 0.20 splits along the array's last axis, which for a
/// 2D image is its singleton depth, so there it leaves one moved copy and no artefact —
/// TorchIO issue #81).
///
/// `times` (increasing, in `(0, 1)`) cut the centred rows into `moves.len() + 1` segments
/// at `floor(h * t)`; segment `k + 1` comes from the plane moved by `moves[k]`. TorchIO's
/// `sort_spectra` then swaps the unmoved plane into the segment that ends at the first
/// time above 0.5 (the centre of k-space keeps the unmoved object) and puts that
/// segment's movement into segment 0. The result is the real part of the inverse.
pub(crate) fn motion(x: &mut [f32], h: usize, w: usize, moves: &[Movement], times: &[f32]) {
    let n = moves.len().min(times.len());
    if n == 0 {
        return;
    }
    let mut spectra = vec![spectrum(x, h, w)];
    spectra.extend(
        moves[..n]
            .iter()
            .map(|&m| spectrum(&rigid(x, h, w, m), h, w)),
    );
    let centre_segment = times[..n].iter().position(|&t| t > 0.5).unwrap_or(n);
    spectra.swap(0, centre_segment);
    let cuts: Vec<usize> = times[..n]
        .iter()
        .map(|t| ((h as f32 * t.clamp(0.0, 1.0)) as usize).min(h))
        .collect();
    let mut f = vec![Complex32::default(); h * w];
    for k in 0..h {
        let s = centre(k, h);
        let segment = cuts.iter().filter(|&&c| c <= s).count();
        f[k * w..(k + 1) * w].copy_from_slice(&spectra[segment][k * w..(k + 1) * w]);
    }
    reconstruct(f, x, h, w, Recon::Real);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corrupt::reference::{self as reference, H, W};

    fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (&g, &e)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(g) - e).abs() <= tol,
                "{what}: pixel {i} is {g}, the reference {e}"
            );
        }
    }

    #[test]
    fn fft_round_trip_and_dc_is_the_sum() {
        // Reference: the inverse of the forward DFT is the identity; F[0, 0] = sum x.
        let x = reference::input();
        let mut y = vec![0.0; x.len()];
        reconstruct(spectrum(&x, H, W), &mut y, H, W, Recon::Real);
        assert_close(
            &y,
            &x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
            1e-5,
            "round trip",
        );
        let f = spectrum(&x, H, W);
        assert!((f[0].re - x.iter().sum::<f32>()).abs() < 1e-4);
        assert_eq!(
            numpy_max(&f),
            f[0],
            "the DC term is numpy's max of a non-negative image"
        );
        for n in [5, 6] {
            for k in 0..n {
                assert_eq!(uncentre(centre(k, n), n), k);
            }
        }
    }

    /// TorchIO 0.20 `Spike.add_artifact(x, [(0.3, 0.8)], 0.5)`, transcribed to numpy
    /// (`reference::SPIKE`).
    #[test]
    fn spike_matches_torchio() {
        let mut x = reference::input();
        spike(&mut x, (H, W), 0.5, &[(0.3, 0.8)]);
        assert_close(&x, &reference::SPIKE, 2e-5, "spike");
    }

    /// The spike puts `intensity * sum(x)` at the chosen centred index of the spectrum;
    /// the real part of the inverse keeps half of it there and moves half to the mirror
    /// frequency, so the output's spectrum differs from the input's by
    /// `intensity * sum(x) / 2` at the two frequencies and nowhere else.
    #[test]
    fn spike_adds_its_intensity_at_the_chosen_frequency() {
        let (h, w) = (28, 28);
        let x: Vec<f32> = (0..h * w)
            .map(|i| 0.3 + 0.2 * ((i % w) as f32 * 0.4).sin() * ((i / w) as f32 * 0.3).cos())
            .collect();
        let sum: f32 = x.iter().sum();
        for (intensity, pos) in [
            (1.0f32, (0.1f32, 0.7f32)),
            (3.0, (0.9, 0.2)),
            (0.25, (0.5, 0.3)),
        ] {
            let mut y = x.clone();
            spike(&mut y, (h, w), intensity, &[pos]);
            let (fx, fy) = (spectrum(&x, h, w), spectrum(&y, h, w));
            let i = uncentre((pos.0 * h as f32) as usize, h);
            let j = uncentre((pos.1 * w as f32) as usize, w);
            let mirror = ((h - i) % h, (w - j) % w);
            let half = f64::from(intensity * sum / 2.0);
            for r in 0..h {
                for c in 0..w {
                    let d = fy[r * w + c] - fx[r * w + c];
                    let want = if (r, c) == (i, j) || (r, c) == mirror {
                        if (i, j) == mirror { 2.0 * half } else { half }
                    } else {
                        0.0
                    };
                    assert!(
                        (f64::from(d.re) - want).abs() < 1e-3 * f64::from(sum)
                            && f64::from(d.im).abs() < 1e-3 * f64::from(sum),
                        "intensity {intensity} at ({i}, {j}): frequency ({r}, {c}) changed by {d}, want {want}"
                    );
                }
            }
        }
    }

    /// TorchIO 0.20 `Ghosting.add_artifact` along rows (2 ghosts, 0.7) and columns
    /// (3 ghosts, 1.0), transcribed to numpy (`reference::GHOST_ROWS`, `GHOST_COLUMNS`).
    #[test]
    fn ghosting_matches_torchio() {
        let mut x = reference::input();
        ghosting(&mut x, (H, W), 0.7, 2, false, Recon::Real);
        assert_close(&x, &reference::GHOST_ROWS, 2e-5, "ghosting rows");
        let mut x = reference::input();
        ghosting(&mut x, (H, W), 1.0, 3, true, Recon::Real);
        assert_close(&x, &reference::GHOST_COLUMNS, 2e-5, "ghosting columns");
        // Intensity 0 changes nothing.
        let mut x = reference::input();
        ghosting(&mut x, (H, W), 0.0, 4, true, Recon::Real);
        let want: Vec<f64> = reference::input().iter().map(|&v| f64::from(v)).collect();
        assert_close(&x, &want, 1e-5, "ghosting intensity 0");
    }

    /// SimpleITK 2.5 `ResampleImageFilter` (linear, default the minimum) through
    /// `Euler2DTransform` (20 degrees, translation (0.7, -1.3)) about TorchIO's centre
    /// `GetSize() / 2` (`reference::RIGID`).
    #[test]
    fn rigid_matches_simpleitk() {
        let x = reference::input();
        let m = Movement {
            degrees: 20.0,
            dx: 0.7,
            dy: -1.3,
        };
        assert_close(&rigid(&x, H, W, m), &reference::RIGID, 1e-5, "rigid");
        // No movement is the identity.
        let want: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        assert_close(
            &rigid(&x, H, W, Movement::default()),
            &want,
            1e-6,
            "identity",
        );
    }

    /// TorchIO 0.20 `Motion.add_artifact` with movements (20 deg, 0.7, -1.3) and
    /// (-10 deg, -1.5, 0.4) at times 0.3 and 0.7, split along the rows
    /// (`reference::MOTION`).
    #[test]
    fn motion_matches_torchio_split_along_rows() {
        let mut x = reference::input();
        let moves = [
            Movement {
                degrees: 20.0,
                dx: 0.7,
                dy: -1.3,
            },
            Movement {
                degrees: -10.0,
                dx: -1.5,
                dy: 0.4,
            },
        ];
        motion(&mut x, H, W, &moves, &[0.3, 0.7]);
        assert_close(&x, &reference::MOTION, 2e-5, "motion");
        // Still movements leave the plane as it was.
        let mut y = reference::input();
        motion(&mut y, H, W, &[Movement::default(); 3], &[0.25, 0.5, 0.75]);
        let want: Vec<f64> = reference::input().iter().map(|&v| f64::from(v)).collect();
        assert_close(&y, &want, 1e-5, "no movement");
    }
}
