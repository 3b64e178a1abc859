//! The two custom resources (`natsregion.io/v1alpha1`), their status types, and
//! the validation shared by the API server (CEL in the CRD) and the local runtime.

pub mod conditions;
pub mod drill;
pub mod region;
pub mod schema_check;
pub mod validate;

pub use drill::*;
pub use region::*;

use kube::CustomResourceExt;

pub const GROUP: &str = "natsregion.io";

/// File name under `crds/` for each CRD, paired with its YAML.
pub fn crd_files() -> Vec<(&'static str, String)> {
    let one = |crd| {
        format!(
            "---\n{}",
            serde_yaml_ng::to_string(&crd).expect("CRD serializes")
        )
    };
    vec![
        ("regionmirrors.natsregion.io.yaml", one(RegionMirror::crd())),
        (
            "partitiondrills.natsregion.io.yaml",
            one(PartitionDrill::crd()),
        ),
    ]
}

/// Both CRDs as one multi-document YAML stream (`natsregion crd`).
pub fn crds_yaml() -> String {
    crd_files().into_iter().map(|(_, yaml)| yaml).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn checked_in_crds_match_the_rust_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
        for (name, generated) in super::crd_files() {
            let path = dir.join(name);
            let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                checked_in == generated,
                "{} is out of sync with the Rust types in src/api: run `make crds` and commit the result",
                path.display()
            );
        }
    }
}
