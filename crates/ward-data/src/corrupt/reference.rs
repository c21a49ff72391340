//! Reference values for the corruptions' unit tests, computed by the script below with
//! numpy 2.4.6, SimpleITK 2.5.7 and Pillow 13.0.0 (`pip install numpy SimpleITK Pillow`).
//! `spike`, `ghosting` and `motion` transcribe TorchIO 0.20.0's `Spike.add_artifact`,
//! `Ghosting.add_artifact` and `Motion.add_artifact` (`torchio/transforms/augmentation/
//! intensity/random_{spike,ghosting,motion}.py`) with numpy's FFT in place of torch's (the
//! same transform); `motion` splits k-space along axis 0 where TorchIO splits along the
//! last axis (see `kspace::motion`), and `moved` is TorchIO's `Motion.resample_images`
//! with a 2D Euler transform. The intensity cases are MedMNIST-C 0.1.0's `Contrast` and
//! `Brightness` (PIL `ImageEnhance`) and `GammaCorrection` (torchvision's `adjust_gamma`
//! lookup table) on the 8-bit version of the same input. Each constant's doc names its
//! call; the input `x` is the 6 x 8 plane `((i * 7) % 11) / 11`, `i` the row-major index.
//!
//! ```text
//! # Reference values for ward-data's k-space corruptions: numpy transcriptions of torchio
//! # 0.20.0 Spike.add_artifact / Ghosting.add_artifact (torch.fft.fftn/fftshift == numpy's),
//! # and Motion.add_artifact with SimpleITK 2.5 resampling, split along axis 0.
//! import numpy as np, SimpleITK as sitk
//! h, w = 6, 8
//! x = np.array([((i * 7) % 11) / 11 for i in range(h * w)], dtype=np.float64).reshape(h, w)
//!
//! def spike(x, positions, intensity):
//!     spectrum = np.fft.fftshift(np.fft.fftn(x))
//!     shape = np.array(spectrum.shape)
//!     indices = np.floor(np.asarray(positions) * shape).astype(int)
//!     for i, j in indices:
//!         artifact = spectrum.max() * intensity
//!         spectrum[i, j] += artifact
//!     return np.fft.ifftn(np.fft.ifftshift(spectrum)).real
//!
//! def ghosting(x, num_ghosts, axis, intensity):
//!     spectrum = np.fft.fftshift(np.fft.fftn(x))
//!     mi, mj = np.array(x.shape) // 2
//!     if axis == 0:
//!         planes = spectrum[::num_ghosts, :]; restore = spectrum[mi, :].copy()
//!     else:
//!         planes = spectrum[:, ::num_ghosts]; restore = spectrum[:, mj].copy()
//!     planes *= 1 - intensity
//!     if axis == 0: spectrum[mi, :] = restore
//!     else: spectrum[:, mj] = restore
//!     return np.fft.ifftn(np.fft.ifftshift(spectrum)).real
//!
//! def moved(x, degrees, dx, dy):
//!     img = sitk.GetImageFromArray(x.astype(np.float32))
//!     t = sitk.Euler2DTransform()
//!     centre = img.TransformContinuousIndexToPhysicalPoint((np.array(img.GetSize()) / 2).tolist())
//!     t.SetCenter(centre); t.SetAngle(np.radians(degrees)); t.SetTranslation((dx, dy))
//!     r = sitk.ResampleImageFilter()
//!     r.SetInterpolator(sitk.sitkLinear); r.SetReferenceImage(img)
//!     r.SetOutputPixelType(sitk.sitkFloat32)
//!     r.SetDefaultPixelValue(float(x.min())); r.SetTransform(t)
//!     return sitk.GetArrayFromImage(r.Execute(img)).astype(np.float64)
//!
//! def motion(x, moves, times):
//!     images = [x] + [moved(x, *m) for m in moves]
//!     spectra = [np.fft.fftshift(np.fft.fftn(im)) for im in images]
//!     index = np.where(np.array(times) > 0.5)[0].min() if np.any(np.array(times) > 0.5) else len(spectra) - 1
//!     spectra[0], spectra[index] = spectra[index], spectra[0]
//!     result = np.empty_like(spectra[0])
//!     last = result.shape[0]
//!     indices = (last * np.array(times, dtype=np.float32)).astype(int).tolist() + [last]
//!     ini = 0
//!     for s, fin in zip(spectra, indices):
//!         result[ini:fin] = s[ini:fin]; ini = fin
//!     return np.fft.ifftn(np.fft.ifftshift(result)).real
//!
//! fmt = lambda a: ", ".join(f"{v:.6f}" for v in a.ravel())
//! print("spike", fmt(spike(x, [(0.3, 0.8)], 0.5)))
//! print("ghost rows n=2 s=0.7", fmt(ghosting(x, 2, 0, 0.7)))
//! print("ghost cols n=3 s=1.0", fmt(ghosting(x, 3, 1, 1.0)))
//! print("rigid", fmt(moved(x, 20.0, 0.7, -1.3)))
//! print("motion", fmt(motion(x, [(20.0, 0.7, -1.3), (-10.0, -1.5, 0.4)], [0.3, 0.7])))
//!
//! # PIL (MedMNIST-C's Brightness/Contrast) and torchvision's adjust_gamma lookup table on the
//! # 8-bit version of x.
//! from PIL import Image, ImageEnhance
//! x8 = np.round(x * 255).astype(np.uint8)
//! img = Image.fromarray(x8, mode="L")
//! contrast = np.asarray(ImageEnhance.Contrast(img).enhance(1.4)) / 255
//! bright = np.asarray(ImageEnhance.Brightness(img).enhance(0.7)) / 255
//! gamma_map = [int((255 + 1 - 1e-3) * pow(e / 255.0, 1.6)) for e in range(256)]
//! gamma = np.asarray(img.point(gamma_map)) / 255
//!
//! def num(v):
//!     s = f"{v:.8g}"
//!     return s if ("." in s or "e" in s) else s + ".0"
//!
//! def arr(a):
//!     return "[" + ", ".join(num(v) for v in np.asarray(a).ravel()) + "]"
//!
//! print("---- rust")
//! cases = [
//!     ("SPIKE", "`spike(x, [(0.3, 0.8)], 0.5)`", spike(x, [(0.3, 0.8)], 0.5)),
//!     ("GHOST_ROWS", "`ghosting(x, num_ghosts=2, axis=0, intensity=0.7)`", ghosting(x, 2, 0, 0.7)),
//!     ("GHOST_COLUMNS", "`ghosting(x, num_ghosts=3, axis=1, intensity=1.0)`", ghosting(x, 3, 1, 1.0)),
//!     ("RIGID", "`moved(x, 20.0, 0.7, -1.3)`", moved(x, 20.0, 0.7, -1.3)),
//!     ("MOTION", "`motion(x, [(20.0, 0.7, -1.3), (-10.0, -1.5, 0.4)], [0.3, 0.7])`", motion(x, [(20.0, 0.7, -1.3), (-10.0, -1.5, 0.4)], [0.3, 0.7])),
//!     ("CONTRAST", "`ImageEnhance.Contrast(img).enhance(1.4)` / 255", contrast),
//!     ("BRIGHTNESS", "`ImageEnhance.Brightness(img).enhance(0.7)` / 255", bright),
//!     ("GAMMA", "`img.point(gamma_map)` / 255, torchvision's `adjust_gamma(img, 1.6)` table", gamma),
//! ]
//! for name, doc, a in cases:
//!     print(f"/// {doc}\npub(crate) const {name}: [f64; {a.size}] = {arr(a)};\n")
//! ```

/// The input plane: 6 rows x 8 columns, `((i * 7) % 11) / 11`.
pub(crate) const H: usize = 6;
/// Columns of the input plane.
pub(crate) const W: usize = 8;

/// The input: `((i * 7) % 11) / 11` for row-major index `i`.
pub(crate) fn input() -> Vec<f32> {
    (0..H * W).map(|i| ((i * 7) % 11) as f32 / 11.0).collect()
}

/// `spike(x, [(0.3, 0.8)], 0.5)`
pub(crate) const SPIKE: [f64; 48] = [
    0.22727273,
    0.63636364,
    0.045454545,
    0.90909091,
    0.77272727,
    0.18181818,
    0.59090909,
    0.45454545,
    -0.022727273,
    0.92409668,
    0.47727273,
    -0.19682396,
    0.52272727,
    0.46955123,
    1.0227273,
    0.34863059,
    0.068181818,
    0.62135786,
    0.56818182,
    0.28773305,
    0.61363636,
    0.16681241,
    0.11363636,
    0.83318759,
    0.5,
    0.90909091,
    0.31818182,
    0.18181818,
    1.0454545,
    0.45454545,
    -0.13636364,
    0.72727273,
    0.25,
    0.19682396,
    0.75,
    0.075903317,
    0.79545455,
    0.7422785,
    0.29545455,
    0.62135786,
    0.34090909,
    -0.10591486,
    0.84090909,
    0.56046032,
    -0.11363636,
    0.43953968,
    0.38636364,
    1.1059149,
];

/// `ghosting(x, num_ghosts=2, axis=0, intensity=0.7)`
pub(crate) const GHOST_ROWS: [f64; 48] = [
    0.095454545,
    0.73181818,
    0.36818182,
    0.65454545,
    0.64090909,
    0.27727273,
    0.56363636,
    0.55,
    0.18636364,
    0.47272727,
    0.45909091,
    0.095454545,
    0.73181818,
    0.36818182,
    0.65454545,
    0.64090909,
    0.27727273,
    0.56363636,
    0.55,
    0.18636364,
    0.47272727,
    0.45909091,
    0.095454545,
    0.73181818,
    0.17727273,
    0.81363636,
    0.45,
    0.43636364,
    0.72272727,
    0.35909091,
    0.34545455,
    0.63181818,
    0.26818182,
    0.25454545,
    0.54090909,
    0.17727273,
    0.81363636,
    0.45,
    0.43636364,
    0.72272727,
    0.35909091,
    0.34545455,
    0.63181818,
    0.26818182,
    0.25454545,
    0.54090909,
    0.17727273,
    0.81363636,
];

/// `ghosting(x, num_ghosts=3, axis=1, intensity=1.0)`
pub(crate) const GHOST_COLUMNS: [f64; 48] = [
    0.20454545,
    0.67596911,
    0.26055605,
    0.71590909,
    0.61363636,
    0.14221271,
    0.83035304,
    0.375,
    0.082066198,
    0.7668782,
    0.31485349,
    0.18181818,
    0.6679338,
    0.2331218,
    0.70787379,
    0.59090909,
    0.17297529,
    0.64439894,
    0.53076258,
    0.059338925,
    0.75884289,
    0.28741924,
    0.17378288,
    0.64520653,
    0.26388438,
    0.73530803,
    0.62167167,
    0.15024802,
    0.84975198,
    0.37832833,
    0.26469197,
    0.73611562,
    0.31818182,
    0.20121712,
    0.67596911,
    0.24115711,
    0.72727273,
    0.59423742,
    0.14221271,
    0.82702471,
    0.53409091,
    0.078737866,
    0.7668782,
    0.29545455,
    0.19318182,
    0.64853486,
    0.2331218,
    0.70454545,
];

/// `moved(x, 20.0, 0.7, -1.3)`
pub(crate) const RIGID: [f64; 48] = [
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.42620745,
    0.71524578,
    0.50042319,
    0.0,
    0.0,
    0.41459966,
    0.79302096,
    0.54627067,
    0.27767712,
    0.80629987,
    0.57950634,
    0.0,
    0.62913871,
    0.37729555,
    0.066681884,
    0.5163756,
    0.44545457,
    0.13484088,
    0.40361246,
    0.0,
    0.49691617,
    0.58709311,
    0.27647945,
    0.38415301,
    0.6552521,
    0.34463844,
    0.27138987,
    0.78779572,
    0.36469358,
    0.79689068,
    0.48627701,
    0.25193045,
    0.86504966,
    0.55443603,
    0.24382234,
    0.76824623,
];

/// `motion(x, [(20.0, 0.7, -1.3), (-10.0, -1.5, 0.4)], [0.3, 0.7])`
pub(crate) const MOTION: [f64; 48] = [
    0.053544284,
    0.50298212,
    0.41248858,
    0.59603345,
    0.35480459,
    0.34502563,
    0.54588404,
    0.56511926,
    0.21918299,
    0.57540126,
    0.3687356,
    0.34284735,
    0.79499898,
    0.30206773,
    0.67517542,
    0.59697663,
    0.14445337,
    0.59389121,
    0.70342903,
    0.2162019,
    0.47209686,
    0.26701704,
    0.16569864,
    0.69383203,
    0.31009208,
    0.84453511,
    0.46149886,
    0.32108508,
    0.91229125,
    0.5930082,
    0.29246771,
    0.66070545,
    0.23536247,
    0.40778904,
    0.64235315,
    0.17791437,
    0.58938914,
    0.48843786,
    0.27630006,
    0.796278,
    0.40100117,
    0.25721945,
    0.41149479,
    0.16409966,
    0.51278283,
    0.45898898,
    0.3172014,
    0.77799773,
];

/// `ImageEnhance.Contrast(img).enhance(1.4)` / 255
pub(crate) const CONTRAST: [f64; 48] = [
    0.0,
    0.70588235,
    0.2,
    1.0,
    0.58039216,
    0.070588235,
    0.96470588,
    0.45490196,
    0.0,
    0.83137255,
    0.3254902,
    0.0,
    0.70588235,
    0.2,
    1.0,
    0.58039216,
    0.070588235,
    0.96470588,
    0.45490196,
    0.0,
    0.83137255,
    0.3254902,
    0.0,
    0.70588235,
    0.2,
    1.0,
    0.58039216,
    0.070588235,
    0.96470588,
    0.45490196,
    0.0,
    0.83137255,
    0.3254902,
    0.0,
    0.70588235,
    0.2,
    1.0,
    0.58039216,
    0.070588235,
    0.96470588,
    0.45490196,
    0.0,
    0.83137255,
    0.3254902,
    0.0,
    0.70588235,
    0.2,
    1.0,
];

/// `ImageEnhance.Brightness(img).enhance(0.7)` / 255
pub(crate) const BRIGHTNESS: [f64; 48] = [
    0.0,
    0.44313725,
    0.19215686,
    0.63529412,
    0.38039216,
    0.1254902,
    0.57254902,
    0.31764706,
    0.062745098,
    0.50588235,
    0.25490196,
    0.0,
    0.44313725,
    0.19215686,
    0.63529412,
    0.38039216,
    0.1254902,
    0.57254902,
    0.31764706,
    0.062745098,
    0.50588235,
    0.25490196,
    0.0,
    0.44313725,
    0.19215686,
    0.63529412,
    0.38039216,
    0.1254902,
    0.57254902,
    0.31764706,
    0.062745098,
    0.50588235,
    0.25490196,
    0.0,
    0.44313725,
    0.19215686,
    0.63529412,
    0.38039216,
    0.1254902,
    0.57254902,
    0.31764706,
    0.062745098,
    0.50588235,
    0.25490196,
    0.0,
    0.44313725,
    0.19215686,
    0.63529412,
];

/// `img.point(gamma_map)` / 255, torchvision's `adjust_gamma(img, 1.6)` table
pub(crate) const GAMMA: [f64; 48] = [
    0.0,
    0.48235294,
    0.1254902,
    0.8627451,
    0.37647059,
    0.062745098,
    0.72941176,
    0.28235294,
    0.019607843,
    0.6,
    0.19607843,
    0.0,
    0.48235294,
    0.1254902,
    0.8627451,
    0.37647059,
    0.062745098,
    0.72941176,
    0.28235294,
    0.019607843,
    0.6,
    0.19607843,
    0.0,
    0.48235294,
    0.1254902,
    0.8627451,
    0.37647059,
    0.062745098,
    0.72941176,
    0.28235294,
    0.019607843,
    0.6,
    0.19607843,
    0.0,
    0.48235294,
    0.1254902,
    0.8627451,
    0.37647059,
    0.062745098,
    0.72941176,
    0.28235294,
    0.019607843,
    0.6,
    0.19607843,
    0.0,
    0.48235294,
    0.1254902,
    0.8627451,
];
