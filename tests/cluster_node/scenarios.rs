//! The scenarios, in the order a user meets them; each returns an error
//! message instead of panicking so the node is still dropped and swept.
//!
//! A scenario joins `make test` once it passed three runs in a row: the run
//! stops after [`PROVEN_UNTIL`]. `NATSREGION_CLUSTER_UNTIL=<scenario>` (or
//! `all`) runs up to another one.

use k8s_openapi::api::core::v1::Node as KubeNode;
use kube::{Api, Client};
use natsregion::testenv::node::{NODE_NAME, Node, ZONE};

use crate::util::{Outcome, err};
use crate::{drills, operator, region, rolling};

pub const REGION: &str = "qa";
pub const NS: &str = "default";
pub const OPERATOR_NS: &str = "natsregion-system";
/// The last scenario `make test` runs.
const PROVEN_UNTIL: &str = "node";

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
    let until = std::env::var("NATSREGION_CLUSTER_UNTIL").unwrap_or_else(|_| PROVEN_UNTIL.into());
    let result = run(&mut c, &until).await;
    println!("figures:\n  {}", c.figures.join("\n  "));
    result
}

async fn run(c: &mut Cluster<'_>, until: &str) -> Outcome {
    macro_rules! step {
        ($name:literal, $e:expr) => {
            println!("scenario: {}", $name);
            $e.await.map_err(|e| format!("{}: {e}", $name))?;
            if until == $name {
                return Ok(());
            }
        };
    }
    step!("node", node_is_labelled(c));
    step!("operator", operator::helm_install(c));
    step!("region", region::ready_and_in_sync(c));
    step!("networkPolicy drill", drills::network_policy(c));
    step!(
        "drill without policy agent",
        drills::without_policy_agent(c)
    );
    step!("rolling change", rolling::config_change_under_traffic(c));
    step!("toxiproxy drill", drills::toxiproxy(c));
    step!(
        "operator killed during cut",
        drills::operator_killed_during_cut(c)
    );
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
