//! Rotating a generated region CA with no moment at which one zone refuses
//! another: a new CA is first added to what every zone trusts (`ca.crt`
//! becomes a bundle of both), the zones' certificates are reissued by it
//! only once every zone's pods run with the bundle, and the old CA leaves the
//! bundle only once every zone's pods run a certificate of the new one.
//! Pure: the caller reads the CA Secret, the zones' Secrets and whether their
//! pods rolled, and passes the clock.

use std::time::Duration;

use jiff::Timestamp;

use super::{CertKeyPem, read_cert, verify_server};

/// How long zone certificates live and how early they are renewed
/// (`tls.validityDays`, `tls.renewBeforeDays`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub validity: Duration,
    pub renew_before: Duration,
}

/// The CAs the region's CA Secret holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaSet {
    /// Signs the zones' certificates.
    pub signing: CertKeyPem,
    /// A CA already trusted by the bundle but not signing yet (phase 1).
    pub next: Option<CertKeyPem>,
    /// Every CA the zones trust, PEM, concatenated: `signing` alone when
    /// no rotation is under way.
    pub bundle: String,
}

impl CaSet {
    /// A single CA, trusted alone.
    pub fn single(ca: CertKeyPem) -> Self {
        Self {
            bundle: ca.cert.clone(),
            signing: ca,
            next: None,
        }
    }
    /// How many CAs the bundle holds.
    pub fn trusted(&self) -> usize {
        self.bundle.matches("-----BEGIN CERTIFICATE-----").count()
    }
}

/// What one zone's pods run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneView {
    pub zone: String,
    /// The zone Secret's `tls.crt` and `ca.crt`.
    pub cert: String,
    pub ca: String,
    /// Every pod of the zone runs the Secret's current content.
    pub rolled: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to change.
    Keep,
    /// The signing CA is due: make a new one and trust both.
    Introduce,
    /// Every zone trusts both and rolled: the new CA signs from now on.
    Promote,
    /// Every zone runs a certificate of the signing CA: trust it alone.
    Retire,
    /// A rotation waits for these zones' pods (why, per zone).
    Wait(Vec<(String, &'static str)>),
    /// A step is due but waits for the drill (named) running on the region:
    /// every step rolls every zone's pods, which the drill would count
    /// against the region, and a drill's temporary zone trusts only the CAs
    /// of its start.
    Held(String),
}

impl Step {
    /// Whether taking the step changes the CAs (and so rolls the zones).
    pub fn moves(&self) -> bool {
        matches!(self, Step::Introduce | Step::Promote | Step::Retire)
    }
}

/// Whether the signing CA must be replaced: it expires within a zone
/// certificate's lifetime plus the renewal margin, so a certificate issued
/// now would outlive it or fall due after it.
pub fn ca_due(ca: &CertKeyPem, now: Timestamp, policy: Policy) -> bool {
    match read_cert(&ca.cert) {
        Ok(info) => info.renewal_due(now, policy.validity + policy.renew_before),
        Err(_) => true,
    }
}

/// Whether `cert` chains to `ca` alone (for its first name) at `now`.
pub fn issued_by(ca_pem: &str, cert_pem: &str, now: Timestamp) -> bool {
    let Ok(info) = read_cert(cert_pem) else {
        return false;
    };
    info.names
        .first()
        .is_some_and(|n| verify_server(ca_pem, cert_pem, &concrete(n), now).is_ok())
}

/// A name a wildcard covers, to verify it: `*.h` -> `x.h`.
pub fn concrete(name: &str) -> String {
    match name.strip_prefix("*.") {
        Some(rest) => format!("x.{rest}"),
        None => name.to_string(),
    }
}

/// The next step of the CA's rotation.
pub fn decide(ca: &CaSet, zones: &[ZoneView], now: Timestamp, policy: Policy) -> Step {
    let waiting = |why: &'static str, ok: &dyn Fn(&ZoneView) -> bool| -> Vec<(String, &str)> {
        zones
            .iter()
            .filter(|z| !(ok(z) && z.rolled))
            .map(|z| (z.zone.clone(), why))
            .collect()
    };
    if ca.next.is_some() {
        let w = waiting("pods not yet running with both CAs in ca.crt", &|z| {
            z.ca == ca.bundle
        });
        return if w.is_empty() {
            Step::Promote
        } else {
            Step::Wait(w)
        };
    }
    if ca.trusted() > 1 {
        let w = waiting("pods not yet running a certificate of the new CA", &|z| {
            z.ca == ca.bundle && issued_by(&ca.signing.cert, &z.cert, now)
        });
        return if w.is_empty() {
            Step::Retire
        } else {
            Step::Wait(w)
        };
    }
    if ca_due(&ca.signing, now, policy) {
        Step::Introduce
    } else {
        Step::Keep
    }
}

/// `ca` after `step`; `fresh` makes the new CA for `Introduce`.
pub fn apply<E>(
    ca: &CaSet,
    step: &Step,
    fresh: impl FnOnce() -> Result<CertKeyPem, E>,
) -> Result<CaSet, E> {
    Ok(match step {
        Step::Keep | Step::Wait(_) | Step::Held(_) => ca.clone(),
        Step::Introduce => {
            let next = fresh()?;
            CaSet {
                bundle: format!("{}{}", ensure_newline(&ca.bundle), next.cert),
                signing: ca.signing.clone(),
                next: Some(next),
            }
        }
        Step::Promote => CaSet {
            signing: ca.next.clone().unwrap_or_else(|| ca.signing.clone()),
            next: None,
            bundle: ca.bundle.clone(),
        },
        Step::Retire => CaSet::single(ca.signing.clone()),
    })
}

/// Where a rotation under way is, for the status; `None` when none is.
/// `after` is the CAs once `step` was taken.
pub fn describe(after: &CaSet, step: &Step) -> Option<String> {
    let held = |drill: &str| {
        format!("the next step waits for drill {drill}, which runs on the region, to end")
    };
    let at = if after.next.is_some() {
        "1/3: a new CA is trusted beside the old one, which still signs; the new one signs once every zone's pods run with both"
    } else if after.trusted() > 1 {
        "2/3: the new CA signs, the old one is still trusted; it is dropped once every zone's pods run a certificate of the new one"
    } else {
        return match step {
            Step::Held(drill) => Some(format!("the CA is due: {}", held(drill))),
            _ => None,
        };
    };
    Some(match step {
        Step::Held(drill) => format!("{at} ({})", held(drill)),
        Step::Wait(zones) => {
            let names: Vec<&str> = zones.iter().map(|(z, _)| z.as_str()).collect();
            format!("{at} (waiting for zones {})", names.join(", "))
        }
        _ => at.to_string(),
    })
}

fn ensure_newline(pem: &str) -> String {
    if pem.ends_with('\n') {
        pem.to_string()
    } else {
        format!("{pem}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{issue_ca, issue_server};

    const DAY: Duration = Duration::from_secs(86_400);
    const POLICY: Policy = Policy {
        validity: DAY,
        renew_before: Duration::ZERO,
    };

    fn zone(name: &str, signer: &CertKeyPem, ca: &str, at: Timestamp, rolled: bool) -> ZoneView {
        let names = [format!("*.r-{name}.ns.svc")];
        ZoneView {
            zone: name.to_string(),
            cert: issue_server(signer, name, &names, at, DAY).unwrap().cert,
            ca: ca.to_string(),
            rolled,
        }
    }

    #[test]
    fn a_ca_is_due_once_a_certificate_issued_now_would_outlive_it() {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let ca = issue_ca("r", t0, 10 * DAY).unwrap();
        let set = CaSet::single(ca.clone());
        let a = [zone("a", &ca, &ca.cert, t0, true)];
        let at = |days: u32, secs: u64| t0 + DAY * days + Duration::from_secs(secs);
        assert_eq!(decide(&set, &a, at(8, 0), POLICY), Step::Keep);
        // One day (a certificate's lifetime) of the CA left: due.
        assert_eq!(decide(&set, &a, at(9, 0), POLICY), Step::Introduce);
        // The renewal margin moves it earlier.
        let margin = Policy {
            renew_before: DAY,
            ..POLICY
        };
        assert_eq!(decide(&set, &a, at(7, 3_600), margin), Step::Keep);
        assert_eq!(decide(&set, &a, at(8, 0), margin), Step::Introduce);
    }

    #[test]
    fn a_rotation_moves_on_only_once_every_zone_rolled_onto_the_previous_step() {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let old = issue_ca("r 1", t0, 10 * DAY).unwrap();
        let now = t0 + 9 * DAY;
        let set = CaSet::single(old.clone());
        let steady = [
            zone("a", &old, &old.cert, now, true),
            zone("b", &old, &old.cert, now, true),
        ];
        let step = decide(&set, &steady, now, POLICY);
        assert_eq!(step, Step::Introduce);
        let new = issue_ca("r 2", now, 10 * DAY).unwrap();
        let both = apply(&set, &step, || Ok::<_, ()>(new.clone())).unwrap();
        assert_eq!(both.trusted(), 2);
        assert_eq!(both.signing, old, "the old CA still signs");

        // Phase 1: zone b's Secret has the bundle but its pods did not roll yet.
        let mut zones = [
            zone("a", &old, &both.bundle, now, true),
            zone("b", &old, &both.bundle, now, false),
        ];
        assert!(
            matches!(decide(&both, &zones, now, POLICY), Step::Wait(w) if w.len() == 1 && w[0].0 == "b")
        );
        zones[1].rolled = true;
        let step = decide(&both, &zones, now, POLICY);
        assert_eq!(step, Step::Promote);
        let promoted = apply(&both, &step, || Err(())).unwrap();
        assert_eq!(promoted.signing, new);
        assert_eq!(promoted.bundle, both.bundle, "both still trusted");

        // Phase 2: a runs a certificate of the new CA, b still the old one.
        let mut zones = [
            zone("a", &new, &both.bundle, now, true),
            zone("b", &old, &both.bundle, now, true),
        ];
        assert!(
            matches!(decide(&promoted, &zones, now, POLICY), Step::Wait(w) if w.len() == 1 && w[0].0 == "b")
        );
        // Reissued but not rolled: still waiting.
        zones[1] = zone("b", &new, &both.bundle, now, false);
        assert!(matches!(
            decide(&promoted, &zones, now, POLICY),
            Step::Wait(_)
        ));
        zones[1].rolled = true;
        let step = decide(&promoted, &zones, now, POLICY);
        assert_eq!(step, Step::Retire);
        let done = apply(&promoted, &step, || Err(())).unwrap();
        assert_eq!(done, CaSet::single(new.clone()));
        assert!(describe(&promoted, &Step::Keep).unwrap().starts_with("2/3"));
        assert_eq!(describe(&done, &Step::Keep), None);
        // The new CA is not due for another eight days.
        let zones = [zone("a", &new, &new.cert, now, true)];
        assert_eq!(decide(&done, &zones, now + 7 * DAY, POLICY), Step::Keep);
        assert_eq!(
            decide(&done, &zones, now + 9 * DAY, POLICY),
            Step::Introduce
        );
    }
}
