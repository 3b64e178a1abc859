//! What every Kubernetes object natsregion writes carries: the one field
//! manager and the labels. A leaf, shared by the operator and the
//! NetworkPolicy fault backend.

/// The one field manager for everything the operator writes, status included.
pub const FIELD_MANAGER: &str = "natsregion";

/// Labels on every child object.
pub mod labels {
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const MANAGED_BY_VALUE: &str = "natsregion";
    pub const NAME: &str = "app.kubernetes.io/name";
    pub const REGION: &str = "natsregion.io/region";
    pub const ZONE: &str = "natsregion.io/zone";
    pub const DRILL: &str = "natsregion.io/drill";
    /// On a user's Secret: it may be sent to an external zone's URL (see
    /// `operator::region::secrets::require_external_opt_in`).
    pub const EXTERNAL_CREDENTIALS: &str = "natsregion.io/external-credentials";
    pub const EXTERNAL_CREDENTIALS_VALUE: &str = "true";
}
