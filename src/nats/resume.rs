//! Resuming a mirror (or an aggregate's source) that a leafnode cut left
//! silent. nats-server 2.14 skips the retry a leafnode reconnect triggers
//! while a consumer-create request sent into the cut is still pending
//! (`srcConsumerWaitTime` 30 s, then a 10 s backoff), so such a stream stays
//! silent some 40 s after its link is back (docs/architecture.md, "Prompt
//! resume after a heal"). A leader stepdown makes the successor build fresh
//! sourcing state and ask for a consumer at once, from the stream's last
//! sequence. The drill engine (after its heals) and the region controller
//! (outside drills) both decide with [`decide`] and act with [`stepdown`].

use std::time::Duration;

use async_nats::jetstream::Context;

use super::api::{Answer, call};

/// A mirror that heard nothing (no message, no heartbeat: those come every
/// second) for this long has no consumer.
pub const SILENT: Duration = Duration::from_secs(2);

/// nats-server's periodic source health check (a 10 s ticker in
/// stream.go). A stream silent this long has had a tick while cut off, so
/// its consumer-create request is pending and the server's own retry on
/// relink will be skipped: waiting for that retry only adds time.
pub const SERVER_HEALTH_CHECK: Duration = Duration::from_secs(10);

/// When a silent stream is nudged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Silent at least this long (no message, no heartbeat: a healthy
    /// mirror hears one every second) counts as stalled.
    pub silent_after: Duration,
    /// The link must have answered this long: the server's own retry
    /// after a relink fires within 0.2 s when it fires at all. Not waited
    /// for when that retry cannot come (see [`retry_cannot_come`]).
    pub link_settled_after: Duration,
    /// At least this long between two nudges (or refusals) of one stream.
    pub interval: Duration,
    /// A stream that never heard from its source counts as stalled. A
    /// stream just created has not either, and a wrong `external.api` is
    /// not fixed by a stepdown; after a stepdown the new leader reports
    /// none until it hears, which is what the drill watches for.
    pub never_heard_is_silent: bool,
}

/// What is known of one stream when deciding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts<'a> {
    /// Since the stream last heard from its source (`mirror.active`, or the
    /// longest of the stalled sources' `active`); `None` when it never has.
    pub active: Option<Duration>,
    /// How long the source's JetStream API has been answering through the
    /// stream's zone; `None` while it does not (the leafnode is down).
    pub linked_for: Option<Duration>,
    /// Servers of the zone (by name) through which it answers now.
    pub linked_servers: &'a [String],
    /// Whether `linked_servers` covers every server of the zone (one
    /// connection per server) or only the one a single connection reached.
    pub per_server: bool,
    /// The stream's leader, whose own pending request is the stall.
    pub leader: Option<&'a str>,
    /// The stream's replicas in its zone.
    pub replicas: usize,
    /// Since this stream was last nudged (or refused); `None`: never.
    pub since_last: Option<Duration>,
    /// The drill that holds the region: it resumes the mirrors itself and
    /// counts what it did as evidence.
    pub held_by: Option<&'a str>,
}

/// Why a stream is left alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leave {
    /// It heard from its source within `silent_after`.
    Active,
    /// It never heard from its source (see `Policy::never_heard_is_silent`).
    NeverHeard,
    /// The source's API does not answer through the zone: nothing to resume yet.
    LinkDown,
    /// The link answers, but not for `link_settled_after` yet.
    LinkSettling,
    /// Nudged (or refused) less than `interval` ago.
    Recently,
    /// A drill holds the region.
    Held(String),
    /// Only the leader's link answers; a successor whose link is down
    /// would send its request into the cut as well.
    NoOtherServerLinked,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Step the stream's leader down, to `preferred` when named.
    Nudge {
        preferred: Option<String>,
    },
    /// Stalled with the link up, but a stepdown cannot help.
    Cannot(String),
    Leave(Leave),
}

/// The message for a stalled stream with one replica.
pub const R1_CANNOT: &str = "the stream has 1 replica, and a stepdown needs another to take over; the fast resume needs stream.replicas >= 2";

/// Whether to nudge one stream now. Pure.
pub fn decide(policy: &Policy, facts: &Facts) -> Decision {
    if let Some(drill) = facts.held_by {
        return Decision::Leave(Leave::Held(drill.to_string()));
    }
    match facts.active {
        Some(a) if a < policy.silent_after => return Decision::Leave(Leave::Active),
        None if !policy.never_heard_is_silent => return Decision::Leave(Leave::NeverHeard),
        _ => {}
    }
    match facts.linked_for {
        None => return Decision::Leave(Leave::LinkDown),
        Some(up) if up < policy.link_settled_after && !retry_cannot_come(facts) => {
            return Decision::Leave(Leave::LinkSettling);
        }
        Some(_) => {}
    }
    if facts.since_last.is_some_and(|s| s < policy.interval) {
        return Decision::Leave(Leave::Recently);
    }
    if facts.replicas < 2 {
        return Decision::Cannot(R1_CANNOT.to_string());
    }
    // A server whose link is back takes over; without a view of each
    // server, any other will do.
    let preferred = facts
        .linked_servers
        .iter()
        .find(|s| Some(s.as_str()) != facts.leader)
        .cloned();
    match preferred {
        Some(p) => Decision::Nudge { preferred: Some(p) },
        None if facts.linked_servers.is_empty() => Decision::Leave(Leave::LinkDown),
        None if facts.per_server => Decision::Leave(Leave::NoOtherServerLinked),
        None => Decision::Nudge { preferred: None },
    }
}

/// Whether the server's own retry after a relink cannot resume the
/// stream, so there is nothing to wait for: the stream was silent past a
/// health check tick (its request went into the cut and is pending), or
/// each server's link is seen and the leader's is still down (the leader
/// is the server that asks).
pub fn retry_cannot_come(facts: &Facts) -> bool {
    let past_a_tick = facts.active.is_some_and(|a| a >= SERVER_HEALTH_CHECK);
    let leader_cut_off = facts.per_server
        && facts
            .leader
            .is_some_and(|l| !facts.linked_servers.iter().any(|s| s == l));
    past_a_tick || leader_cut_off
}

/// Whether the source's JetStream API (`api`, the stream's
/// `external.api`) answers through this connection: the path the
/// stream's consumer-create request takes, so the leafnode link is up.
pub async fn source_api_answers(client: &async_nats::Client, api: &str) -> bool {
    let ask = client.request(format!("{api}.INFO"), "".into());
    matches!(
        tokio::time::timeout(Duration::from_secs(1), ask).await,
        Ok(Ok(_))
    )
}

/// `$JS.API.STREAM.LEADER.STEPDOWN.<stream>` in the stream's own zone, to
/// the server named `preferred` when given.
pub async fn stepdown(js: &Context, stream: &str, preferred: Option<&str>) -> Result<(), String> {
    let body = match preferred {
        Some(p) => serde_json::json!({"placement": {"preferred": p}}),
        None => serde_json::json!({}),
    };
    match call::<serde_json::Value>(js, format!("STREAM.LEADER.STEPDOWN.{stream}"), &body).await {
        Ok(Answer::Ok(_)) => Ok(()),
        Ok(Answer::Err(e)) => Err(format!("leader stepdown refused: {e}")),
        Err(e) => Err(format!("leader stepdown not answered: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn operator() -> Policy {
        Policy {
            silent_after: S(10),
            link_settled_after: Duration::ZERO,
            interval: S(10),
            never_heard_is_silent: false,
        }
    }

    fn linked() -> Vec<String> {
        vec!["b-0".to_string()]
    }

    fn stalled(servers: &[String]) -> Facts<'_> {
        Facts {
            active: Some(S(30)),
            linked_for: Some(Duration::ZERO),
            linked_servers: servers,
            per_server: false,
            leader: Some("b-1"),
            replicas: 3,
            since_last: None,
            held_by: None,
        }
    }

    #[test]
    fn a_stream_silent_past_the_threshold_with_its_link_up_is_nudged() {
        let servers = linked();
        assert_eq!(
            decide(&operator(), &stalled(&servers)),
            Decision::Nudge {
                preferred: Some("b-0".into())
            }
        );
        // A single connection that reached the leader: any other server.
        let f = Facts {
            leader: Some("b-0"),
            ..stalled(&servers)
        };
        assert_eq!(decide(&operator(), &f), Decision::Nudge { preferred: None });
    }

    #[test]
    fn not_while_active_link_down_held_or_nudged_within_the_interval() {
        let servers = linked();
        let p = operator();
        let leave = |f: Facts| match decide(&p, &f) {
            Decision::Leave(l) => l,
            other => panic!("nudged: {other:?}"),
        };
        let active = Facts {
            active: Some(S(9)),
            ..stalled(&servers)
        };
        assert_eq!(leave(active), Leave::Active);
        let down = Facts {
            linked_for: None,
            linked_servers: &[],
            ..stalled(&servers)
        };
        assert_eq!(leave(down), Leave::LinkDown);
        let held = Facts {
            held_by: Some("nightly"),
            ..stalled(&servers)
        };
        assert_eq!(leave(held), Leave::Held("nightly".into()));
        let recent = Facts {
            since_last: Some(S(9)),
            ..stalled(&servers)
        };
        assert_eq!(leave(recent), Leave::Recently);
        let again = Facts {
            since_last: Some(S(10)),
            ..stalled(&servers)
        };
        assert!(matches!(decide(&p, &again), Decision::Nudge { .. }));
        let never = Facts {
            active: None,
            ..stalled(&servers)
        };
        assert_eq!(leave(never), Leave::NeverHeard);
    }

    #[test]
    fn one_replica_is_reported_not_stepped_down() {
        let servers = linked();
        let r1 = Facts {
            replicas: 1,
            ..stalled(&servers)
        };
        assert_eq!(decide(&operator(), &r1), Decision::Cannot(R1_CANNOT.into()));
        // Said at most once per interval, like a nudge.
        let told = Facts {
            since_last: Some(S(1)),
            ..r1
        };
        assert_eq!(decide(&operator(), &told), Decision::Leave(Leave::Recently));
    }

    #[test]
    fn the_drill_waits_for_the_link_to_settle_and_for_another_linked_server() {
        let drill = Policy {
            silent_after: S(2),
            link_settled_after: S(1),
            interval: S(1),
            never_heard_is_silent: true,
        };
        let leader_only = vec!["b-1".to_string()];
        let f = Facts {
            active: None,
            linked_for: Some(Duration::from_millis(500)),
            linked_servers: &leader_only,
            per_server: true,
            ..stalled(&leader_only)
        };
        assert_eq!(decide(&drill, &f), Decision::Leave(Leave::LinkSettling));
        let settled = Facts {
            linked_for: Some(S(1)),
            ..f.clone()
        };
        assert_eq!(
            decide(&drill, &settled),
            Decision::Leave(Leave::NoOtherServerLinked)
        );
        let both = vec!["b-1".to_string(), "b-2".to_string()];
        let other = Facts {
            linked_servers: &both,
            ..settled
        };
        assert_eq!(
            decide(&drill, &other),
            Decision::Nudge {
                preferred: Some("b-2".into())
            }
        );
    }

    fn drill() -> Policy {
        Policy {
            silent_after: S(2),
            link_settled_after: Duration::from_millis(500),
            interval: S(1),
            never_heard_is_silent: true,
        }
    }

    /// Silent `silent` seconds; `servers` (seen one by one) answer since now.
    fn just_relinked(servers: &[String], silent: u64) -> Facts<'_> {
        Facts {
            active: Some(S(silent)),
            linked_for: Some(Duration::ZERO),
            per_server: true,
            ..stalled(servers)
        }
    }

    #[test]
    fn a_stream_silent_past_a_health_check_is_nudged_the_moment_its_link_answers() {
        // Its request went into the cut: the server's retry on relink is
        // skipped, so waiting for it only adds time.
        let servers = vec!["b-1".to_string(), "b-2".to_string()];
        let f = just_relinked(&servers, 25);
        assert_eq!(
            decide(&drill(), &f),
            Decision::Nudge {
                preferred: Some("b-2".into())
            }
        );
        // Silent for less than a tick: the server's own retry may come.
        let short = Facts {
            active: Some(S(5)),
            ..f
        };
        assert_eq!(
            decide(&drill(), &short),
            Decision::Leave(Leave::LinkSettling)
        );
    }

    #[test]
    fn a_leader_whose_link_is_still_down_is_stepped_down_without_waiting() {
        // The leader is b-1.
        let servers = vec!["b-0".to_string()];
        let f = just_relinked(&servers, 5);
        assert_eq!(
            decide(&drill(), &f),
            Decision::Nudge {
                preferred: Some("b-0".into())
            }
        );
        // A single connection cannot tell the leader's link apart.
        let one = Facts {
            per_server: false,
            ..f
        };
        assert_eq!(decide(&drill(), &one), Decision::Leave(Leave::LinkSettling));
    }
}
