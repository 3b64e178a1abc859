//! Which pods really ran on the node, from the container statuses only the
//! kubelet writes (not from what a test applied): a pod counts once one of
//! its containers was seen running or terminated after starting.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

#[derive(Clone, Default)]
pub struct PodsRan {
    /// pod uid -> images of its containers that ran
    seen: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
}

impl PodsRan {
    /// Watches every pod until the returned task is aborted.
    pub fn watch(&self, client: Client) -> tokio::task::JoinHandle<()> {
        let seen = self.seen.clone();
        tokio::spawn(async move {
            let pods: Api<Pod> = Api::all(client);
            let mut events = watcher::watcher(pods, watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                let pod = match event {
                    Ok(Event::Apply(p) | Event::InitApply(p)) => p,
                    _ => continue,
                };
                let images = ran_images(&pod);
                if images.is_empty() {
                    continue;
                }
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.entry(uid).or_default().extend(images);
            }
        })
    }

    /// `pods ran: N (images: a, b)`, images by how many pods ran them.
    pub fn summary(&self) -> String {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut per_image: BTreeMap<&str, usize> = BTreeMap::new();
        for images in seen.values() {
            for i in images {
                *per_image.entry(i.as_str()).or_default() += 1;
            }
        }
        let images: Vec<String> = per_image.iter().map(|(i, n)| format!("{i} ×{n}")).collect();
        format!("pods ran: {} (images: {})", seen.len(), images.join(", "))
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Pods seen running with `image` (as the runtime reports it, e.g.
    /// `docker.io/library/nats:2.14.9-alpine`).
    pub fn count_with(&self, image: &str) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|i| i.iter().any(|x| x.ends_with(image)))
            .count()
    }
}

fn ran_images(pod: &Pod) -> Vec<String> {
    let Some(status) = &pod.status else {
        return Vec::new();
    };
    status
        .container_statuses
        .iter()
        .flatten()
        .filter(|c| {
            c.state.as_ref().is_some_and(|s| {
                s.running.is_some()
                    || s.terminated
                        .as_ref()
                        .is_some_and(|t| t.started_at.is_some())
            }) && !c.image_id.is_empty()
        })
        .map(|c| c.image.clone())
        .collect()
}
