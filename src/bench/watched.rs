//! The bench namespace as watches deliver it: which children exist and which
//! regions' statuses are written. The operator bench's convergence wait reads
//! these caches instead of listing the namespace on every look: at 1000
//! regions those lists (18000 children's metadata every 2 s) were work the
//! API server did for the bench, charged to the operator's figures.

use std::collections::{BTreeMap, HashSet};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::api::RegionMirror;
use crate::meta::labels;

/// Names, as `Kind/name`, of the objects of one kind in a store.
type Names = Box<dyn Fn(&mut HashSet<String>) + Send + Sync>;

/// Caches of every region-labelled child and every RegionMirror in one
/// namespace, kept by watches until dropped.
pub struct Watched {
    children: Vec<Names>,
    regions: Store<RegionMirror>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What the caches held at one moment.
pub struct Seen {
    /// `Kind/name` of every child.
    pub children: HashSet<String>,
    /// Regions whose status was written for their generation.
    pub observed: usize,
    /// `Ready` condition `status=reason` → regions.
    pub ready_reasons: BTreeMap<String, usize>,
}

impl Watched {
    /// Starts the watches and waits until each listed what was there.
    pub async fn start(client: &Client, namespace: &str) -> Self {
        let mut tasks = Vec::new();
        let children = vec![
            track::<ConfigMap>(client, namespace, "ConfigMap", &mut tasks).await,
            track::<Service>(client, namespace, "Service", &mut tasks).await,
            track::<StatefulSet>(client, namespace, "StatefulSet", &mut tasks).await,
            track::<PodDisruptionBudget>(client, namespace, "PodDisruptionBudget", &mut tasks)
                .await,
            track::<Secret>(client, namespace, "Secret", &mut tasks).await,
        ];
        let (regions, writer) = reflector::store();
        let stream = watcher(
            Api::<RegionMirror>::namespaced(client.clone(), namespace),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(writer)
        .for_each(|_| async {});
        tasks.push(tokio::spawn(stream));
        let _ = regions.wait_until_ready().await;
        Self {
            children,
            regions,
            tasks,
        }
    }

    pub fn seen(&self) -> Seen {
        let mut children = HashSet::new();
        for names in &self.children {
            names(&mut children);
        }
        let mut observed = 0;
        let mut ready_reasons = BTreeMap::new();
        for r in self.regions.state() {
            if status_observed(&r) {
                observed += 1;
            }
            *ready_reasons.entry(ready_reason(&r)).or_default() += 1;
        }
        Seen {
            children,
            observed,
            ready_reasons,
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Whether the region's status was written for its current generation.
pub fn status_observed(r: &RegionMirror) -> bool {
    let observed = r.status.as_ref().and_then(|s| s.observed_generation);
    observed.is_some() && observed == r.metadata.generation
}

/// A region's `Ready` condition as `status=reason`.
pub fn ready_reason(r: &RegionMirror) -> String {
    r.status
        .iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c.type_ == crate::operator::region::status::READY)
        .map_or("(no Ready condition)".to_string(), |c| {
            format!("{}={}", c.status, c.reason)
        })
}

async fn track<K>(
    client: &Client,
    namespace: &str,
    kind: &'static str,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Names
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<PartialObjectMeta<K>>();
    let config = watcher::Config::default().labels(labels::REGION);
    let api = Api::<PartialObjectMeta<K>>::namespaced(client.clone(), namespace);
    let stream = watcher(api, config)
        .default_backoff()
        .reflect(writer)
        .for_each(|_| async {});
    tasks.push(tokio::spawn(stream));
    let _ = store.wait_until_ready().await;
    Box::new(move |out: &mut HashSet<String>| {
        out.extend(
            store
                .state()
                .iter()
                .map(|o| format!("{kind}/{}", o.name_any())),
        );
    })
}
