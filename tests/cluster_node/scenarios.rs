//! The scenarios, in the order a user meets them; each returns an error
//! message instead of panicking so the node is still dropped and swept.
//!
//! A scenario joins `make test` once it passed three runs in a row (it is
//! then listed in [`PROVEN`]); the others are skipped with a line saying so.
//! `NATSREGION_CLUSTER_SCENARIOS=all` runs them all, a comma-separated list
//! just those (a later scenario may need an earlier one's region).

use k8s_openapi::api::core::v1::Node as KubeNode;
use kube::{Api, Client};
use natsregion::testenv::node::{NODE_NAME, Node, ZONE};

use crate::util::{Outcome, err};
use crate::{drills, operator, region, rolling, steps};

pub use natsregion::testenv::node::cluster::{NS, OPERATOR_NS, REGION};
/// The scenarios `make test` runs: each passed three runs in a row.
///
/// "toxiproxy drill" joined last: after its cuts break the established
/// leafnode links (a mirror linked around the proxy after the rolling change,
/// docs/architecture.md fact 2) and a proxy update that toxiproxy-server is
/// slow to answer is read back instead of failing the cut (fact 11).
const PROVEN: &[&str] = &[
    "node",
    "operator",
    "region",
    "kind steps",
    "drill without policy agent",
    "operator killed during cut",
    "operator down past the deadline",
    "rolling change",
    "toxiproxy drill",
    "region deleted",
];

/// What the scenarios share, and the figures they report.
pub struct Cluster<'a> {
    pub node: &'a mut Node,
    pub client: Client,
    figures: Vec<String>,
}

impl Cluster<'_> {
    pub fn figure(&mut self, line: String) {
        println!("figure: {line}");
        self.figures.push(line);
    }
}

pub async fn run_all(node: &mut Node) -> Outcome {
    let client = node.client().await.map_err(err)?;
    let mut c = Cluster {
        node,
        client,
        figures: Vec::new(),
    };
    let chosen = std::env::var("NATSREGION_CLUSTER_SCENARIOS").ok();
    let wanted = |name: &str| match chosen.as_deref() {
        Some("all") => true,
        Some(list) => list.split(',').any(|n| n.trim() == name),
        None => PROVEN.contains(&name),
    };
    let chosen_list = chosen.as_deref().is_some_and(|l| l != "all");
    let result = run(&mut c, &wanted, chosen_list).await;
    println!("figures:\n  {}", c.figures.join("\n  "));
    result
}

async fn run(c: &mut Cluster<'_>, wanted: &dyn Fn(&str) -> bool, chosen_list: bool) -> Outcome {
    macro_rules! step {
        ($name:literal, $e:expr) => {
            if wanted($name) {
                println!("scenario: {}", $name);
                $e.await.map_err(|e| format!("{}: {e}", $name))?;
            } else if chosen_list {
                println!("scenario: {} skipped (not in NATSREGION_CLUSTER_SCENARIOS)", $name);
            } else {
                println!("scenario: {} skipped (not yet proven three runs in a row; NATSREGION_CLUSTER_SCENARIOS=all runs it)", $name);
            }
        };
    }
    step!("node", node_is_labelled(c));
    step!("operator", operator::helm_install(c));
    step!("region", region::ready_and_in_sync(c));
    step!("kind steps", steps::kind_steps(c));
    step!(
        "drill without policy agent",
        drills::without_policy_agent(c)
    );
    step!(
        "operator killed during cut",
        drills::operator_killed_during_cut(c)
    );
    step!(
        "operator down past the deadline",
        drills::operator_down_past_the_deadline(c)
    );
    step!("rolling change", rolling::config_change_under_traffic(c));
    step!("toxiproxy drill", drills::toxiproxy(c));
    step!("region deleted", region::deleted_leaves_nothing(c));
    Ok(())
}

/// The one node carries the topology zone the region's zones may pin to.
async fn node_is_labelled(c: &mut Cluster<'_>) -> Outcome {
    let n = Api::<KubeNode>::all(c.client.clone())
        .get(NODE_NAME)
        .await
        .map_err(err)?;
    let zone = n
        .metadata
        .labels
        .unwrap_or_default()
        .remove("topology.kubernetes.io/zone");
    if zone.as_deref() != Some(ZONE) {
        return Err(format!("node zone label {zone:?}, want {ZONE}"));
    }
    Ok(())
}
