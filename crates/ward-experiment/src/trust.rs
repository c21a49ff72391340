//! `ward calibration` and `ward conformal`: the evidence tools on any model's outputs
//! (`.npy` probabilities and labels), printed as one JSON line.

use std::io::BufReader;
use std::path::Path;

use serde::Serialize;
use ward_trust::conformal::{Inclusion, QuantileRule, Score, SplitConformal};
use ward_trust::{Probs, TrustError, calibration};

use crate::options::{CalibrationArgs, ConformalArgs};
use crate::{Error, Observer, Result, say};

type Npy = npyz::NpyFile<BufReader<fs_err::File>>;

fn user(path: &Path, m: impl std::fmt::Display) -> Error {
    Error::User(format!("{}: {m}", path.display()))
}

/// A `.npy` shape as numpy prints it: `(n,)` or `(n, k)`.
pub(crate) fn shape_text(shape: &[u64]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Opens a `.npy` file and checks it is 1-D or 2-D, C order and not empty.
fn open(path: &Path, what: &str) -> Result<(Npy, Vec<u64>)> {
    let file = fs_err::File::open(path).map_err(|e| Error::User(e.to_string()))?;
    let npy = npyz::NpyFile::new(BufReader::new(file))
        .map_err(|e| user(path, format!("not a readable .npy file: {e}")))?;
    let shape = npy.shape().to_vec();
    if npy.order() == npyz::Order::Fortran && shape.len() > 1 {
        return Err(user(
            path,
            "Fortran-order arrays are not supported: save it in C order \
             (numpy.ascontiguousarray) first",
        ));
    }
    if shape.contains(&0) {
        return Err(user(
            path,
            format!("the {what} array is empty, shape {}", shape_text(&shape)),
        ));
    }
    Ok((npy, shape))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| user(path, format!("reading the data: {e}"))
}

/// Reads probabilities: (n, k) or (n,) float32/float64.
fn read_probs(path: &Path) -> Result<Probs> {
    let (npy, shape) = open(path, "probabilities")?;
    if !(1..=2).contains(&shape.len()) {
        return Err(user(
            path,
            format!(
                "expected probabilities of shape (n, k) or (n,), got {}",
                shape_text(&shape)
            ),
        ));
    }
    let descr = npy.dtype().descr();
    let values: Vec<f64> = match descr.trim_matches('\'').trim_start_matches(['<', '|', '=']) {
        "f4" => npy
            .into_vec::<f32>()
            .map_err(io(path))?
            .into_iter()
            .map(f64::from)
            .collect(),
        "f8" => npy.into_vec::<f64>().map_err(io(path))?,
        _ => {
            return Err(user(
                path,
                format!("dtype {descr} is not supported: probabilities must be float32 or float64"),
            ));
        }
    };
    let bad = |e: TrustError| user(path, e);
    match shape[..] {
        [_] => Probs::binary(&values).map_err(bad),
        [_, k] => Probs::new(values, k as usize).map_err(bad),
        _ => unreachable!("checked above"),
    }
}

/// Reads labels: (n,) (or (n, 1)) of any integer type, checked against `probs`.
fn read_labels(path: &Path, probs: &Probs, probs_path: &Path) -> Result<Vec<usize>> {
    let (npy, shape) = open(path, "labels")?;
    if !(shape.len() == 1 || (shape.len() == 2 && shape[1] == 1)) {
        return Err(user(
            path,
            format!("expected labels of shape (n,), got {}", shape_text(&shape)),
        ));
    }
    let descr = npy.dtype().descr();
    let e = io(path);
    let v: Vec<i128> = match descr.trim_matches('\'').trim_start_matches(['<', '|', '=']) {
        "i1" => npy
            .into_vec::<i8>()
            .map_err(e)?
            .into_iter()
            .map(i128::from)
            .collect(),
        "i2" => npy
            .into_vec::<i16>()
            .map_err(e)?
            .into_iter()
            .map(i128::from)
            .collect(),
        "i4" => npy
            .into_vec::<i32>()
            .map_err(e)?
            .into_iter()
            .map(i128::from)
            .collect(),
        "i8" => npy
            .into_vec::<i64>()
            .map_err(e)?
            .into_iter()
            .map(i128::from)
            .collect(),
        "u1" => npy
            .into_vec::<u8>()
            .map_err(e)?
            .into_iter()
            .map(i128::from)
            .collect(),
        "u2" => npy
            .into_vec::<u16>()
            .map_err(e)?
            .into_iter()
            .map(i128::from)
            .collect(),
        "u4" => npy
            .into_vec::<u32>()
            .map_err(e)?
            .into_iter()
            .map(i128::from)
            .collect(),
        "u8" => npy
            .into_vec::<u64>()
            .map_err(e)?
            .into_iter()
            .map(i128::from)
            .collect(),
        _ => {
            return Err(user(
                path,
                format!("dtype {descr} is not supported: labels must be integers (class indices)"),
            ));
        }
    };
    if v.len() != probs.n() {
        return Err(user(
            path,
            format!(
                "{} labels, but {} has {} rows of probabilities",
                v.len(),
                probs_path.display(),
                probs.n()
            ),
        ));
    }
    let k = probs.k();
    v.iter()
        .enumerate()
        .map(|(i, &y)| {
            usize::try_from(y).ok().filter(|&y| y < k).ok_or_else(|| {
                user(
                    path,
                    format!(
                        "label {y} at row {i} is out of range: {} has {k} classes (labels 0..={})",
                        probs_path.display(),
                        k - 1
                    ),
                )
            })
        })
        .collect()
}

/// `ward calibration`.
pub fn calibration(a: CalibrationArgs, obs: &mut dyn Observer) -> Result<()> {
    if a.bins == 0 {
        return Err(Error::user("--bins: must be at least 1"));
    }
    let probs = read_probs(&a.probs)?;
    let labels = read_labels(&a.labels, &probs, &a.probs)?;
    let r = calibration::report(&probs, &labels, a.bins).map_err(|e| Error::User(e.to_string()))?;
    say(obs, serde_json::to_string(&r)?);
    Ok(())
}

/// What `ward conformal` prints.
#[derive(Serialize)]
struct ConformalOut {
    score: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    k_reg: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lambda: Option<f64>,
    alpha: f64,
    qhat: f64,
    n: usize,
    quantile: QuantileRule,
    inclusion: Inclusion,
    #[serde(skip_serializing_if = "Option::is_none")]
    sets: Option<Vec<Vec<usize>>>,
}

/// `ward conformal`.
pub fn conformal(a: ConformalArgs, obs: &mut dyn Observer) -> Result<()> {
    ward_trust::conformal::check_alpha(a.alpha).map_err(|e| Error::User(format!("--{e}")))?;
    let score =
        Score::parse(&a.score, a.k_reg, a.lambda).map_err(|e| Error::User(format!("--{e}")))?;
    let rule = match a.quantile.as_str() {
        "mapie" => QuantileRule::Mapie,
        _ => QuantileRule::Exact,
    };
    let inclusion = match a.sets.as_str() {
        "at-most" => Inclusion::ScoreAtMost,
        _ => Inclusion::IncludeLast,
    };
    let probs = read_probs(&a.probs)?;
    let labels = read_labels(&a.labels, &probs, &a.probs)?;
    let test = a.test.as_deref().map(read_probs).transpose()?;
    if let (Some(t), Some(p)) = (&test, &a.test)
        && t.k() != probs.k()
    {
        return Err(user(
            p,
            format!(
                "{} classes, but the calibration probabilities {} have {}",
                t.k(),
                a.probs.display(),
                probs.k()
            ),
        ));
    }
    let cp = SplitConformal::calibrate(&probs, &labels, score, a.alpha, rule)
        .map_err(|e| user(&a.probs, e))?;
    let (k_reg, lambda) = match score {
        Score::Raps { k_reg, lambda } => (Some(k_reg), Some(lambda)),
        _ => (None, None),
    };
    let out = ConformalOut {
        score: score.name(),
        k_reg,
        lambda,
        alpha: a.alpha,
        qhat: cp.qhat,
        n: cp.n,
        quantile: rule,
        inclusion,
        sets: test.map(|t| cp.predict(&t, inclusion)),
    };
    say(obs, serde_json::to_string(&out)?);
    Ok(())
}
