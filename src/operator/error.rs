//! The operator's errors. Each has a stable `reason()` (the Event reason, the
//! condition reason and the `reason` label of the failure metric) and says
//! whether retrying can help (`is_permanent`): permanent errors wait for the
//! object to change, transient ones back off.

use std::time::Duration;

use crate::api::validate::SpecError;
use crate::backoff::Backoff;
use crate::nats::{ConnectError, ProvisionError};
use crate::plan::PlanError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec breaks one of the CRD's rules (checked again locally, since an
    /// object written before a CRD upgrade may not satisfy today's rules).
    #[error("{0}")]
    InvalidSpec(#[from] SpecError),

    #[error("zone {zone}: cannot build the server configuration: {source}")]
    Plan {
        zone: String,
        #[source]
        source: PlanError,
    },

    #[error(
        "Secret {secret} ({field}) was not found in namespace {namespace}: create it with keys `user` and `password`{hint}"
    )]
    CredentialsMissing {
        namespace: String,
        secret: String,
        field: &'static str,
        hint: &'static str,
    },

    #[error("Secret {secret} ({field}): {reason}")]
    CredentialsInvalid {
        secret: String,
        field: &'static str,
        reason: String,
    },

    /// A Secret an external zone references that its owner has not marked as
    /// meant for external zones.
    #[error(
        "Secret {secret} ({field}) does not carry the label {label}={value}: add it (kubectl label secret -n {namespace} {secret} {label}={value}) if this Secret is meant for that zone. The operator sends what an external zone's Secrets hold to the zone's URL, which the RegionMirror chooses; without the label anyone who may write a RegionMirror could have any Secret of the namespace sent to a server of their own"
    )]
    ExternalSecretNotOptedIn {
        namespace: String,
        secret: String,
        field: &'static str,
        label: &'static str,
        value: &'static str,
    },

    /// A certificate Secret that is missing or unusable (`spec.tls`).
    #[error("Secret {secret} ({field}): {reason}")]
    Certificate {
        secret: String,
        field: &'static str,
        reason: String,
    },

    #[error("cannot {action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },

    #[error("{0}")]
    Connect(ConnectError),

    #[error("zone {zone}: {source}")]
    Provision {
        zone: String,
        #[source]
        source: ProvisionError,
    },

    #[error("object has no {0}")]
    MissingField(&'static str),

    /// An object the region would write already exists and is not its own
    /// (another region's, or made by someone else): nothing is taken over.
    #[error(
        "{kind} {name} already exists and {holder}: the operator does not take it over, and applied nothing for this region; {hint}"
    )]
    NameConflict {
        kind: String,
        name: String,
        /// Who controls it, in words (`belongs to RegionMirror east (uid …)`).
        holder: String,
        hint: String,
    },

    #[error("leader election: {0}")]
    LeaderElection(String),

    #[error("cannot serve /metrics and health on {addr}: {source}")]
    Serve {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    /// For controllers that need a reason of their own (the drill controller):
    /// `reason` is PascalCase and becomes the Event and condition reason.
    #[error("{message}")]
    Other {
        reason: &'static str,
        message: String,
        permanent: bool,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a kube error with what the operator was doing.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            action: action.into(),
            source,
        }
    }

    /// PascalCase reason for Events, conditions and the failure metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::Plan { .. } => "InvalidConfiguration",
            Error::CredentialsMissing { .. } => "CredentialsMissing",
            Error::CredentialsInvalid { .. } => "CredentialsInvalid",
            Error::Certificate { .. } => "CertificateInvalid",
            Error::ExternalSecretNotOptedIn { .. } => "ExternalSecretNotOptedIn",
            Error::Kube { source, .. } => match api_code(source) {
                Some(409) => "Conflict",
                Some(422) | Some(400) => "Rejected",
                Some(403) => "Forbidden",
                _ => "KubeApiError",
            },
            Error::Connect(e) => match e {
                ConnectError::Unauthorized { .. } => "ZoneUnauthorized",
                ConnectError::DomainMismatch { .. } => "ZoneDomainMismatch",
                ConnectError::NoJetStream { .. } => "ZoneNoJetStream",
                ConnectError::BadUrl { .. } | ConnectError::NoUrls { .. } => "ZoneBadUrl",
                ConnectError::Tls { .. } => "ZoneTls",
                ConnectError::Unreachable { .. } => "ZoneUnreachable",
            },
            Error::Provision { source, .. } => match source {
                ProvisionError::SourceStreamMissing { .. } => "SourceStreamMissing",
                ProvisionError::SourceNotLimits { .. } => "SourceNotLimits",
                ProvisionError::SourceUnreachable { .. } => "SourceUnreachable",
                ProvisionError::SubjectsOverlap { .. } => "SubjectsOverlap",
                ProvisionError::ReplicasExceedServers { .. }
                | ProvisionError::ReplicasUnplaceable { .. } => "ReplicasUnplaceable",
                ProvisionError::NotAMirror { .. } => "NotAMirror",
                _ => "ProvisionFailed",
            },
            Error::MissingField(_) => "MissingField",
            Error::NameConflict { .. } => "NameConflict",
            Error::LeaderElection(_) => "LeaderElection",
            Error::Serve { .. } => "Serve",
            Error::Other { reason, .. } => reason,
        }
    }

    /// True when retrying without a change to the object cannot help; the
    /// controller then waits for the next change instead of backing off.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::InvalidSpec(_) | Error::Plan { .. } | Error::MissingField(_) => true,
            // 400/422: the API server refuses what we built from the spec (for
            // example a name that is too long); the same spec fails again.
            Error::Kube { source, .. } => matches!(api_code(source), Some(400) | Some(422)),
            Error::Other { permanent, .. } => *permanent,
            // Secrets, zones and streams can be fixed outside the object (a Secret
            // created, a zone started), so those are retried with backoff.
            _ => false,
        }
    }

    /// True when the region cannot get further without someone changing
    /// something (its spec, a Secret's label, a stream, another object):
    /// kstatus' `Stalled`. Retrying may still happen (a label can be added
    /// any time), but waiting alone does not help.
    pub fn stalls(&self) -> bool {
        self.is_permanent() || stalls(self.reason())
    }

    /// Backoff after the `failures`-th consecutive failure of one object.
    pub fn backoff(failures: u32) -> Duration {
        Backoff::RECONCILE.delay(failures.saturating_sub(1))
    }
}

/// The reasons (see [`Error::reason`]) of failures that need someone to act,
/// beyond the permanent ones: a name someone else holds, a Secret not opted
/// in, a stream the server cannot change in place or that is not what the
/// region needs, a zone that is not the one the spec names.
const STALLING: &[&str] = &[
    "InvalidSpec",
    "InvalidConfiguration",
    "Rejected",
    "MissingField",
    "NameConflict",
    "ExternalSecretNotOptedIn",
    "StreamNeedsRecreate",
    "SubjectsOverlap",
    "NotAMirror",
    "SourceNotLimits",
    "ReplicasUnplaceable",
    "ZoneBadUrl",
    "ZoneDomainMismatch",
];

/// [`Error::stalls`] for a failure known only by its reason (a stream
/// provisioning or zone failure summed up in the region's status).
pub fn stalls(reason: &str) -> bool {
    STALLING.contains(&reason)
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(Error::backoff(1), Duration::from_secs(5));
        assert_eq!(Error::backoff(2), Duration::from_secs(10));
        assert_eq!(Error::backoff(4), Duration::from_secs(40));
        assert_eq!(Error::backoff(30), Duration::from_secs(300));
    }

    #[test]
    fn spec_errors_wait_for_a_change() {
        let e = Error::InvalidSpec(SpecError::Rules {
            kind: "RegionMirror",
            name: "x".into(),
            errors: vec!["bad".into()],
        });
        assert!(e.is_permanent());
        assert_eq!(e.reason(), "InvalidSpec");
        let e = Error::CredentialsMissing {
            namespace: "ns".into(),
            secret: "s".into(),
            field: "spec.credentials.secretName",
            hint: "",
        };
        assert!(!e.is_permanent());
    }
}
