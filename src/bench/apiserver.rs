//! What the API server spent its time on, from its own `/metrics`: requests
//! and their summed latency by verb and resource, so the operator bench can
//! say which requests the API server's CPU went to.

use std::collections::BTreeMap;

use kube::Client;
use kube::core::{Request, params::GetParams};

use super::prometheus::{label, samples};

/// `(verb, resource[/subresource])` → (requests, seconds spent serving them).
pub type Profile = BTreeMap<(String, String), (f64, f64)>;

/// Reads the API server's request counters now.
pub async fn profile(client: &Client) -> Result<Profile, String> {
    // As testenv's readyz: an empty resource path and a name give `/metrics`.
    let request = Request::new("")
        .get("metrics", &GetParams::default())
        .map_err(|e| e.to_string())?;
    let text = client
        .request_text(request)
        .await
        .map_err(|e| format!("GET /metrics: {e}"))?;
    Ok(parse(&text))
}

/// The counters of `apiserver_request_total` and the sums of
/// `apiserver_request_duration_seconds`, watches left out (they last as long
/// as they are open, which says nothing of their cost).
pub fn parse(text: &str) -> Profile {
    let mut out = Profile::new();
    for (name, labels, value) in samples(text) {
        let is_count = match name {
            "apiserver_request_total" => true,
            "apiserver_request_duration_seconds_sum" => false,
            _ => continue,
        };
        let verb = label(labels, "verb").unwrap_or_default();
        if verb == "WATCH" || verb == "CONNECT" {
            continue;
        }
        let mut resource = label(labels, "resource").unwrap_or_default().to_string();
        if let Some(sub) = label(labels, "subresource").filter(|s| !s.is_empty()) {
            resource = format!("{resource}/{sub}");
        }
        let entry = out.entry((verb.to_string(), resource)).or_default();
        if is_count {
            entry.0 += value;
        } else {
            entry.1 += value;
        }
    }
    out
}

/// What `after` adds to `before`.
pub fn since(after: &Profile, before: &Profile) -> Profile {
    after
        .iter()
        .map(|(k, (n, s))| {
            let (n0, s0) = before.get(k).copied().unwrap_or_default();
            (k.clone(), (n - n0, s - s0))
        })
        .filter(|(_, (n, _))| *n > 0.0)
        .collect()
}

/// The `top` entries by time spent, one per line, and the totals.
pub fn render(p: &Profile, top: usize) -> String {
    let mut rows: Vec<_> = p.iter().collect();
    rows.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    let (n, s) = p
        .values()
        .fold((0.0, 0.0), |(n, s), (n1, s1)| (n + n1, s + s1));
    let mut out = format!("  {n:.0} requests, {s:.1} s summed latency; by latency:\n");
    for ((verb, resource), (count, secs)) in rows.into_iter().take(top) {
        out.push_str(&format!(
            "  {verb:<7} {resource:<32} {count:>8.0} requests {secs:>8.1} s ({:.1} ms each)\n",
            secs * 1000.0 / count.max(1.0)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP apiserver_request_total x
apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps",resource="statefulsets",scope="resource",subresource="",verb="PATCH",version="v1"} 30
apiserver_request_total{code="201",component="apiserver",dry_run="",group="apps",resource="statefulsets",scope="resource",subresource="",verb="PATCH",version="v1"} 12
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="WATCH",version="v1"} 3
apiserver_request_duration_seconds_sum{component="apiserver",dry_run="",group="apps",resource="statefulsets",scope="resource",subresource="",verb="PATCH",version="v1"} 2.5
apiserver_request_duration_seconds_sum{component="apiserver",dry_run="",group="natsregion.io",resource="regionmirrors",scope="resource",subresource="status",verb="APPLY",version="v1alpha1"} 0.5
apiserver_request_total{code="200",component="apiserver",dry_run="",group="natsregion.io",resource="regionmirrors",scope="resource",subresource="status",verb="APPLY",version="v1alpha1"} 5
"#;

    #[test]
    fn counts_and_seconds_add_up_by_verb_and_resource_without_watches() {
        let p = parse(TEXT);
        assert_eq!(p.len(), 2);
        assert_eq!(p[&("PATCH".into(), "statefulsets".into())], (42.0, 2.5));
        assert_eq!(
            p[&("APPLY".into(), "regionmirrors/status".into())],
            (5.0, 0.5)
        );
        let mut later = p.clone();
        later.insert(("PATCH".into(), "statefulsets".into()), (50.0, 3.0));
        let d = since(&later, &p);
        assert_eq!(d.len(), 1);
        assert_eq!(d[&("PATCH".into(), "statefulsets".into())], (8.0, 0.5));
        assert!(render(&d, 5).contains("8 requests"));
    }
}
