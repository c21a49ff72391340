//! The built-in datasets, embedded in the binary so they load from any directory.

use std::path::Path;

use ward_core::config::{DataSpec, DatasetKind};

use crate::DataError;
use crate::dataset::FederatedDataset;
use crate::table::{Feature, Header, Rule, Sites, TableSpec, load_table};

/// UCI heart disease, four hospitals (see `data/README.md` for provenance).
pub(crate) const HEART_CSV: &str = include_str!("../../../data/heart_disease_uci.csv");
/// Breast Cancer Wisconsin (Diagnostic), scikit-learn's copy.
pub(crate) const BREAST_CANCER_CSV: &str =
    include_str!("../../../data/breast_cancer_wisconsin.csv");

/// Missing-value tokens of the built-in files (they use empty fields).
fn builtin_missing_tokens() -> Vec<String> {
    vec![String::new(), "NA".into(), "?".into()]
}

/// The four hospitals in FLamby's center order (0..3); also their order in the file.
pub const HEART_SITES: [&str; 4] = ["Cleveland", "Hungary", "Switzerland", "VA Long Beach"];

/// The 13 feature names of `fed-heart-disease`, in column order.
pub const HEART_FEATURES: [&str; 13] = [
    "age",
    "sex",
    "trestbps",
    "chol",
    "fbs",
    "thalch",
    "exang",
    "oldpeak",
    "cp=atypical angina",
    "cp=non-anginal",
    "cp=asymptomatic",
    "restecg=st-t abnormality",
    "restecg=lv hypertrophy",
];

/// scikit-learn's 30 feature names of the breast cancer data, in column order.
pub const BREAST_CANCER_FEATURES: [&str; 30] = [
    "mean radius",
    "mean texture",
    "mean perimeter",
    "mean area",
    "mean smoothness",
    "mean compactness",
    "mean concavity",
    "mean concave points",
    "mean symmetry",
    "mean fractal dimension",
    "radius error",
    "texture error",
    "perimeter error",
    "area error",
    "smoothness error",
    "compactness error",
    "concavity error",
    "concave points error",
    "symmetry error",
    "fractal dimension error",
    "worst radius",
    "worst texture",
    "worst perimeter",
    "worst area",
    "worst smoothness",
    "worst compactness",
    "worst concavity",
    "worst concave points",
    "worst symmetry",
    "worst fractal dimension",
];

/// Rejects the keys that only a `csv` dataset takes.
fn check_builtin(spec: &DataSpec) -> Result<(), DataError> {
    let csv_only = [
        ("data.path", spec.path.is_some()),
        ("data.numeric", !spec.numeric.is_empty()),
        ("data.categorical", !spec.categorical.is_empty()),
        ("data.target", spec.target.is_some()),
        ("data.site-column", spec.site_column.is_some()),
    ];
    match csv_only.iter().find(|(_, set)| *set) {
        Some((key, _)) => Err(DataError::spec(
            key,
            format!(
                "is only for data.dataset = \"csv\"; {} defines its own columns",
                spec.dataset.as_str()
            ),
        )),
        None => Ok(()),
    }
}

fn numeric(column: &str) -> Feature {
    Feature::Numeric {
        column: column.into(),
        key: "data.numeric",
    }
}

fn categorical(column: &str, reference: &str, levels: &[&str], plain_name: bool) -> Feature {
    Feature::Categorical {
        column: column.into(),
        reference: reference.into(),
        levels: levels.iter().map(|&l| l.into()).collect(),
        plain_name,
        key: "data.categorical",
    }
}

/// `fed-heart-disease`: FLamby's Fed-Heart-Disease protocol on the UCI file.
///
/// Columns age, sex, trestbps, chol, fbs, thalch, exang, oldpeak, cp, restecg (slope, ca,
/// thal and id are not used); sex (Male = 1), fbs and exang (TRUE = 1) are single
/// indicators named after their column; cp and restecg are one-hot against the reference
/// levels `typical angina` and `normal`. Target `num > 0`. Sites from the `dataset` column.
pub(crate) fn heart(spec: &DataSpec) -> Result<FederatedDataset, DataError> {
    check_builtin(spec)?;
    if spec.partition.is_some() {
        return Err(DataError::spec(
            "data.partition",
            "fed-heart-disease has four natural sites; remove [data.partition]",
        ));
    }
    let table = TableSpec {
        name: DatasetKind::FedHeartDisease.as_str().into(),
        header: Header::FirstLine,
        features: vec![
            numeric("age"),
            categorical("sex", "Female", &["Male"], true),
            numeric("trestbps"),
            numeric("chol"),
            categorical("fbs", "FALSE", &["TRUE"], true),
            numeric("thalch"),
            categorical("exang", "FALSE", &["TRUE"], true),
            numeric("oldpeak"),
            categorical(
                "cp",
                "typical angina",
                &["atypical angina", "non-anginal", "asymptomatic"],
                false,
            ),
            categorical(
                "restecg",
                "normal",
                &["st-t abnormality", "lv hypertrophy"],
                false,
            ),
        ],
        target_column: "num".into(),
        rule: Rule::parse("> 0")?,
        sites: Sites::Column {
            column: "dataset".into(),
            key: "data.site-column",
        },
        missing_tokens: builtin_missing_tokens(),
        missing: spec.missing,
        test_fraction: spec.test_fraction,
        split_seed: spec.split_seed,
    };
    load_table(
        HEART_CSV.as_bytes(),
        Path::new("heart_disease_uci.csv"),
        &table,
    )
}

/// `breast-cancer`: the 30 scikit-learn features, target 0 = malignant, 1 = benign,
/// partitioned into sites by `[data.partition]`.
pub(crate) fn breast_cancer(spec: &DataSpec) -> Result<FederatedDataset, DataError> {
    check_builtin(spec)?;
    let partition = spec.partition.clone().ok_or_else(|| {
        DataError::spec(
            "data.partition",
            "breast-cancer has no sites: add [data.partition] (kind = \"iid\", \"dirichlet\" \
             or \"quantity\")",
        )
    })?;
    let mut header: Vec<String> = BREAST_CANCER_FEATURES.iter().map(|&s| s.into()).collect();
    header.push("target".into());
    let table = TableSpec {
        name: DatasetKind::BreastCancer.as_str().into(),
        header: Header::Given(header),
        features: BREAST_CANCER_FEATURES.iter().map(|&c| numeric(c)).collect(),
        target_column: "target".into(),
        rule: Rule::Class,
        sites: Sites::Partition(partition),
        missing_tokens: builtin_missing_tokens(),
        missing: spec.missing,
        test_fraction: spec.test_fraction,
        split_seed: spec.split_seed,
    };
    load_table(
        BREAST_CANCER_CSV.as_bytes(),
        Path::new("breast_cancer_wisconsin.csv"),
        &table,
    )
}
