//! `ward aggregate`: apply a rule to update vectors from a `.npy` file and print the
//! result as one JSON line.

use std::io::BufReader;
use std::path::Path;

use crate::say;
use crate::{Error, Result};
use ward_core::config::RobustSpec;
use ward_core::{Layout, Metrics, Params, Update};
use ward_fl::RoundContext;
use ward_robust::build_rule;

use crate::Observer;
use crate::options::AggregateArgs;

/// A row-major matrix read from a `.npy` file, as `f32`.
#[derive(Debug)]
pub(crate) struct Matrix {
    /// Rows.
    pub(crate) rows: usize,
    /// Columns.
    pub(crate) cols: usize,
    /// `rows * cols` values, row-major.
    pub(crate) values: Vec<f32>,
}

/// Reads a float32/float64 C-order `.npy` array whose number of dimensions is in
/// `dims` (1 or 2; 1-D reads as one row) and checks that every value is a finite `f32`.
/// Every failure is a [`UserError`] naming the file.
pub(crate) fn read_npy(path: &Path, dims: &[usize]) -> Result<Matrix> {
    let shown = path.display();
    let err = |m: String| Error::User(format!("{shown}: {m}"));
    let file = fs_err::File::open(path).map_err(|e| Error::User(e.to_string()))?;
    let npy = npyz::NpyFile::new(BufReader::new(file))
        .map_err(|e| err(format!("not a readable .npy file: {e}")))?;
    let shape: Vec<u64> = npy.shape().to_vec();
    let shape_text = crate::trust::shape_text(&shape);
    if !dims.contains(&shape.len()) {
        return Err(err(if dims == [2] {
            format!("expected a 2-D (n, d) array of updates, got shape {shape_text}")
        } else {
            format!("expected d values (shape (d,) or (1, d)), got shape {shape_text}")
        }));
    }
    if npy.order() == npyz::Order::Fortran && shape.len() > 1 {
        return Err(err(
            "Fortran-order arrays are not supported: save it in C order \
             (numpy.ascontiguousarray) first"
                .into(),
        ));
    }
    let (rows, cols) = match shape[..] {
        [d] => (1, d as usize),
        [n, d] => (n as usize, d as usize),
        _ => unreachable!("checked above"),
    };
    if rows == 0 || cols == 0 {
        return Err(err(format!("the array is empty, shape {shape_text}")));
    }
    let dtype = npy.dtype().descr();
    let values: Vec<f32> = match npy.try_data::<f32>() {
        Ok(r) => r
            .collect::<std::io::Result<Vec<f32>>>()
            .map_err(|e| err(format!("reading the data: {e}")))?,
        Err(npy) => match npy.try_data::<f64>() {
            Ok(r) => r
                .map(|v| v.map(|v| v as f32))
                .collect::<std::io::Result<Vec<f32>>>()
                .map_err(|e| err(format!("reading the data: {e}")))?,
            Err(_) => {
                return Err(err(format!(
                    "dtype {dtype} is not supported: expected float32 or float64"
                )));
            }
        },
    };
    if let Some(k) = values.iter().position(|v| !v.is_finite()) {
        let what = if values[k].is_nan() {
            "NaN".to_string()
        } else {
            "infinite (or too large for float32)".to_string()
        };
        return Err(err(format!(
            "the value at row {}, column {} is {what}: updates must be finite",
            k / cols,
            k % cols
        )));
    }
    Ok(Matrix { rows, cols, values })
}

/// `ward aggregate`.
pub fn aggregate(a: AggregateArgs, obs: &mut dyn Observer) -> Result<()> {
    // The flags as `[robust]` keys, read by the experiment file's code.
    let mut opts = toml::Table::new();
    for (k, v) in [
        ("f", a.f),
        ("m", a.m),
        ("iterations", a.iterations),
        ("subsample-dim", a.subsample_dim),
    ] {
        if let Some(v) = v {
            opts.insert(
                k.into(),
                toml::Value::Integer(
                    i64::try_from(v)
                        .map_err(|_| Error::User(format!("--{k}: {v} is too large")))?,
                ),
            );
        }
    }
    for (k, v) in [
        ("tau", a.tau),
        ("eps", a.eps),
        ("filter-fraction", a.filter_fraction),
        ("lambda", a.lambda),
    ] {
        if let Some(v) = v {
            opts.insert(k.into(), v.into());
        }
    }
    if !a.pre.is_empty() {
        let pre = a.pre.iter().map(|p| p.as_str().into()).collect();
        opts.insert("pre".into(), toml::Value::Array(pre));
    }
    let spec = RobustSpec::from_name(&a.rule, opts).map_err(|e| {
        let flag = match e.key.split('[').next().unwrap_or_default() {
            "aggregator" => "rule",
            k => k,
        };
        Error::User(format!("--{flag}: {}", e.reason))
    })?;
    let rule = build_rule(&spec, a.seed).map_err(|e| Error::User(e.to_string()))?;
    let x = read_npy(&a.updates, &[2])?;
    let d = x.cols;
    let layout = Layout::flat(d);
    let updates: Vec<Update> = x
        .values
        .chunks(d)
        .enumerate()
        .map(|(i, row)| {
            Ok(Update {
                site: i,
                params: Params::new(layout.clone(), row.to_vec())?,
                num_examples: 1,
                metrics: Metrics::new(),
                control_delta: None,
            })
        })
        .collect::<Result<_, ward_core::ParamsError>>()?;
    let server = match &a.server_update {
        Some(p) => {
            let s = read_npy(p, &[1, 2])?;
            if s.rows != 1 || s.cols != d {
                return Err(Error::User(format!(
                    "{}: the server update must hold d = {d} values (shape ({d},) or (1, {d})), \
                     got {} x {}",
                    p.display(),
                    s.rows,
                    s.cols
                )));
            }
            Some(Params::new(layout.clone(), s.values)?)
        }
        None => None,
    };
    let global = Params::zeros(layout);
    let ctx = RoundContext {
        round: 1,
        global: &global,
        server_update: server.as_ref(),
        previous_update: None,
    };
    let agg = rule.aggregate(&updates, &ctx).map_err(|e| {
        // The rule's own message (e.g. its breakdown assumption), without the round
        // engine's "federation config:" prefix.
        let m = match e {
            ward_fl::FlError::Config(m) => m,
            other => other.to_string(),
        };
        Error::User(format!("{}: {m}", a.updates.display()))
    })?;
    // Written by hand to keep the keys in this order; values print as the shortest
    // decimal that reads back to the same f32.
    let mut line = format!(
        "{{\"rule\":{},\"result\":{}",
        serde_json::to_string(&rule.name())?,
        serde_json::to_string(agg.params.values())?
    );
    if let Some(sel) = agg.selected {
        line.push_str(&format!(",\"selected\":{}", serde_json::to_string(&sel)?));
    }
    line.push('}');
    say(obs, line);
    Ok(())
}
