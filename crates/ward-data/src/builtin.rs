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

#[cfg(test)]
mod tests {
    use ward_core::config::{MissingPolicy, PartitionKind, PartitionSpec};

    use super::*;
    use crate::{Standardization, load};

    fn heart_default() -> FederatedDataset {
        load(
            &DataSpec::builtin(DatasetKind::FedHeartDisease),
            Path::new("/nonexistent"),
        )
        .unwrap()
    }

    fn rows(d: &FederatedDataset) -> Vec<usize> {
        d.sites
            .iter()
            .map(|s| s.train.len() + s.test.len())
            .collect()
    }

    /// Positives (`num > 0`) and rows per site, counted here independently of the
    /// loader's cleaning and site logic (the `csv` crate only splits the fields).
    fn independent_heart_counts() -> Vec<(String, usize, usize)> {
        let mut reader = csv::Reader::from_reader(HEART_CSV.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        let col = |n: &str| header.iter().position(|h| h == n).unwrap();
        let used: Vec<usize> = [
            "age", "sex", "trestbps", "chol", "fbs", "thalch", "exang", "oldpeak", "cp", "restecg",
        ]
        .iter()
        .map(|c| col(c))
        .collect();
        let mut out: Vec<(String, usize, usize)> = Vec::new();
        for record in reader.records() {
            let f = record.unwrap();
            if used.iter().any(|&i| f[i].is_empty()) {
                continue;
            }
            let site = &f[col("dataset")];
            let pos = usize::from(f[col("num")].parse::<i32>().unwrap() > 0);
            match out.iter_mut().find(|(s, ..)| s == site) {
                Some(e) => {
                    e.1 += 1;
                    e.2 += pos;
                }
                None => out.push((site.into(), 1, pos)),
            }
        }
        out
    }

    #[test]
    fn heart_has_flamby_sites_sizes_and_splits() {
        let d = heart_default();
        assert_eq!(d.name, "fed-heart-disease");
        let names: Vec<&str> = d.sites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, HEART_SITES);
        // data/README.md: 740 patients, 304 / 260 / 46 / 130.
        assert_eq!(rows(&d), vec![304, 260, 46, 130]);
        assert_eq!(rows(&d).iter().sum::<usize>(), 740);
        // ceil(0.34 n) test rows per site.
        let splits: Vec<(usize, usize)> = d
            .sites
            .iter()
            .map(|s| (s.train.len(), s.test.len()))
            .collect();
        assert_eq!(splits, vec![(200, 104), (171, 89), (30, 16), (85, 45)]);
        assert_eq!(d.feature_names, HEART_FEATURES);
        assert_eq!(d.num_classes, 2);
    }

    #[test]
    fn heart_label_balance_matches_the_file() {
        // Counted with awk on data/heart_disease_uci.csv (rows with all of age..oldpeak, cp,
        // restecg present; positives num > 0): Cleveland 139/304, Hungary 98/260,
        // Switzerland 45/46, VA Long Beach 101/130.
        let awk = [
            ("Cleveland", 304, 139),
            ("Hungary", 260, 98),
            ("Switzerland", 46, 45),
            ("VA Long Beach", 130, 101),
        ];
        let independent = independent_heart_counts();
        let d = heart_default();
        for (i, (name, n, pos)) in awk.into_iter().enumerate() {
            assert_eq!(independent[i], (name.to_string(), n, pos));
            let s = &d.sites[i];
            let got = s
                .train
                .y
                .iter()
                .chain(&s.test.y)
                .filter(|&&y| y == 1)
                .count();
            assert_eq!(got, pos, "{name}");
        }
        // Stratified sites keep the balance in test: Cleveland floor/remainder of 104 * 139
        // / 304 = 47.55 -> 48 positives; Switzerland (one negative) is a plain split.
        assert_eq!(d.sites[0].test.label_counts(2), vec![56, 48]);
    }

    #[test]
    fn heart_first_cleveland_rows_encode_as_expected() {
        let d = heart_default();
        let s = &d.sites[0];
        let all: Vec<&[f32]> = s.train.x.iter_rows().chain(s.test.x.iter_rows()).collect();
        // id 1: 63,Male,typical angina,145,233,TRUE,lv hypertrophy,150,FALSE,2.3
        let id1: [f32; 13] = [63., 1., 145., 233., 1., 150., 0., 2.3, 0., 0., 0., 0., 1.];
        // id 2: 67,Male,asymptomatic,160,286,FALSE,lv hypertrophy,108,TRUE,1.5
        let id2: [f32; 13] = [67., 1., 160., 286., 0., 108., 1., 1.5, 0., 0., 1., 0., 1.];
        // Both splits keep file order, so id 1 is the first row of one of them.
        assert!(s.train.x.row(0) == id1 || s.test.x.row(0) == id1);
        assert!(all.contains(&&id2[..]));
    }

    #[test]
    fn heart_is_deterministic_and_depends_only_on_the_split_seed() {
        let a = heart_default();
        assert_eq!(a, heart_default());
        let mut spec = DataSpec::builtin(DatasetKind::FedHeartDisease);
        spec.split_seed = 44;
        let b = load(&spec, Path::new(".")).unwrap();
        assert_ne!(a.sites[0].train, b.sites[0].train);
        assert_eq!(rows(&a), rows(&b));
    }

    #[test]
    fn heart_per_site_standardisation() {
        let d = heart_default().standardized(Standardization::PerSite);
        for s in &d.sites {
            let n = s.train.len() as f64;
            for j in 0..d.num_features() {
                let col: Vec<f64> = s.train.x.iter_rows().map(|r| f64::from(r[j])).collect();
                let mean = col.iter().sum::<f64>() / n;
                let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
                assert!(
                    mean.abs() < 1e-5,
                    "{} {}: mean {mean}",
                    s.name,
                    d.feature_names[j]
                );
                // Sample std 1, or 0 for a constant (centred-only) column.
                assert!(
                    (var.sqrt() - 1.0).abs() < 1e-5 || var == 0.0,
                    "{} {}: var {var}",
                    s.name,
                    d.feature_names[j]
                );
            }
        }
        // Switzerland's chol is 0 in every row (a missing value coded 0 in the source).
        let sw = &d.sites[2];
        let chol = 3;
        assert!(
            sw.train
                .x
                .iter_rows()
                .chain(sw.test.x.iter_rows())
                .all(|r| r[chol] == 0.0)
        );
        assert!(
            d.warnings
                .iter()
                .any(|w| w.contains("\"Switzerland\"") && w.contains("\"chol\"")),
            "{:?}",
            d.warnings
        );
    }

    #[test]
    fn heart_with_impute_keeps_every_labelled_row() {
        let mut spec = DataSpec::builtin(DatasetKind::FedHeartDisease);
        spec.missing = MissingPolicy::Impute;
        let d = load(&spec, Path::new(".")).unwrap();
        // 920 rows, none with a missing site or num (see data/README.md).
        assert_eq!(rows(&d).iter().sum::<usize>(), 920);
        assert!(d.warnings.iter().any(|w| w.contains("imputed")));
    }

    #[test]
    fn heart_rejects_csv_keys_and_partitions() {
        let mut spec = DataSpec::builtin(DatasetKind::FedHeartDisease);
        spec.numeric = vec!["age".into()];
        let err = load(&spec, Path::new(".")).unwrap_err().to_string();
        assert!(err.starts_with("data.numeric"), "{err}");
        let mut spec = DataSpec::builtin(DatasetKind::FedHeartDisease);
        spec.partition = Some(iid(2));
        let err = load(&spec, Path::new(".")).unwrap_err().to_string();
        assert_eq!(
            err,
            "data.partition: fed-heart-disease has four natural sites; remove [data.partition]"
        );
    }

    fn iid(sites: usize) -> PartitionSpec {
        PartitionSpec {
            kind: PartitionKind::Iid,
            sites,
            alpha: 0.5,
            seed: 43,
            min_rows: 10,
        }
    }

    #[test]
    fn breast_cancer_matches_sklearns_counts() {
        let mut spec = DataSpec::builtin(DatasetKind::BreastCancer);
        let err = load(&spec, Path::new(".")).unwrap_err().to_string();
        assert!(
            err.starts_with("data.partition: breast-cancer has no sites: add [data.partition]"),
            "{err}"
        );
        spec.partition = Some(iid(3));
        let d = load(&spec, Path::new(".")).unwrap();
        assert_eq!(d.name, "breast-cancer");
        assert_eq!(d.feature_names, BREAST_CANCER_FEATURES);
        assert_eq!(d.num_classes, 2);
        assert_eq!(rows(&d), vec![190, 190, 189]);
        // scikit-learn's load_breast_cancer docs: 212 malignant (0), 357 benign (1).
        let mut counts = [0usize; 2];
        for s in &d.sites {
            for &y in s.train.y.iter().chain(&s.test.y) {
                counts[y as usize] += 1;
            }
        }
        assert_eq!(counts, [212, 357]);
        // First data line: 17.99,10.38,122.8,... 0 (malignant); whichever site holds it.
        let first = d
            .sites
            .iter()
            .flat_map(|s| s.train.x.iter_rows().chain(s.test.x.iter_rows()))
            .find(|r| r[0] == 17.99 && r[1] == 10.38);
        assert_eq!(first.map(|r| r[29]), Some(0.1189));
    }

    #[test]
    fn breast_cancer_dirichlet_partition_is_skewed_and_seeded() {
        let mut spec = DataSpec::builtin(DatasetKind::BreastCancer);
        spec.partition = Some(PartitionSpec {
            kind: PartitionKind::Dirichlet,
            alpha: 0.3,
            ..iid(4)
        });
        let a = load(&spec, Path::new(".")).unwrap();
        assert_eq!(a, load(&spec, Path::new(".")).unwrap());
        assert_eq!(rows(&a).iter().sum::<usize>(), 569);
        assert!(rows(&a).iter().all(|&n| n >= 10));
    }
}
