//! What the operator-drill tests share: local zones behind a real
//! Toxiproxy, named to a real API server as an external RegionMirror, and
//! an in-process drill controller to start, stop and kill.

use super::*;

pub const NS: &str = "default";

/// Local zones a (source) and b (mirror), 1 server each, leafnode links
/// through toxiproxy proxies named `<prefix>-<zone>-s<n>`; the RegionMirror
/// names them as external zones; the credentials Secret and the streams are
/// created here.
pub struct World {
    pub client: Client,
    pub toxiproxy: ToxiproxyServer,
    pub prefix: String,
    pub runtime: Arc<LocalRuntime>,
    pub region: String,
    pub credentials: natsregion::plan::RegionCredentials,
}

impl World {
    pub async fn start(client: Client, region: &str, mirror_api: Option<&str>) -> World {
        Self::start_with(client, region, mirror_api, Topology::Mirror).await
    }

    /// Like `start`, with the region's topology chosen (`sources`: subjects
    /// `events.{zone}.>`, every zone writable).
    pub async fn start_with(
        client: Client,
        region: &str,
        mirror_api: Option<&str>,
        topology: Topology,
    ) -> World {
        let toxiproxy = ToxiproxyServer::start().await.expect("toxiproxy-server");
        let prefix = format!("t-{region}");
        let network = Arc::new(ToxiproxyBackend::with_prefix(
            toxiproxy.url(),
            true,
            &prefix,
        ));
        let mut local_spec = fixtures::events_spec(json!([
            {"name": "a", "role": "source", "servers": 1},
            {"name": "b", "role": "mirror", "servers": 1},
        ]));
        local_spec["leafnode"] = json!({"reconnectIntervalSeconds": 1});
        let sources = topology == Topology::Sources;
        if sources {
            local_spec["topology"] = json!("sources");
            local_spec["stream"]["subjects"] = json!(["events.{zone}.>"]);
        }
        let local_spec = fixtures::region_spec(local_spec);
        let credentials = generate_credentials().expect("credentials");
        let local = LocalRegion::start(
            &local_spec,
            network,
            LocalRegionOptions {
                credentials: Some(credentials.clone()),
                ..Default::default()
            },
        )
        .await
        .expect("local region");
        let runtime = Arc::new(LocalRuntime::new(local));
        let zones = runtime.zones();
        let url = |z: &str| {
            zones
                .iter()
                .find(|a| a.name() == z)
                .expect("zone")
                .endpoint
                .urls[0]
                .clone()
        };
        // Streams, as the region controller would provision them: each
        // zone's first stream (source, mirror or local) before the rest (the
        // aggregates, which source every zone's local stream).
        let mut rest = Vec::new();
        for z in &zones {
            let conn = connect(&z.endpoint, &ConnectSettings::default())
                .await
                .expect("connect");
            let zone_spec = local_spec.zone(z.name()).expect("zone");
            let mut streams = natsregion::plan::zone_streams(&local_spec, zone_spec).into_iter();
            let mut config = streams.next().expect("a stream per zone").config;
            if let (Some(api), Some(m)) = (mirror_api, config.mirror.as_mut()) {
                m.external.as_mut().expect("external mirror").api_prefix = api.to_string();
            }
            conn.js.create_stream(config).await.expect("stream created");
            rest.extend(streams.map(|s| (conn.js.clone(), s.config)));
        }
        for (js, config) in rest {
            js.create_stream(config).await.expect("aggregate created");
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
        let secret = fixtures::credentials_secret(
            &format!("{region}-credentials"),
            &credentials.app.user,
            &credentials.app.password,
        );
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("secret");
        // The local zones run TLS under a throwaway CA, named for them as external.caSecret.
        let ca = zones[0].endpoint.ca.clone().expect("TLS on by default");
        let ca_name = format!("{region}-zones-ca");
        secrets
            .create(&PostParams::default(), &fixtures::ca_secret(&ca_name, &ca))
            .await
            .expect("CA secret");
        let mut spec = fixtures::events_spec(json!([
            {"name": "a", "role": "source", "servers": 1, "domain": "a", "external": {"url": url("a"), "caSecret": ca_name}},
            {"name": "b", "role": "mirror", "servers": 1, "domain": "b", "external": {"url": url("b"), "caSecret": ca_name}},
        ]));
        // The zones' links run through `toxiproxy` (wired above).
        spec["leafnode"] = json!({"reconnectIntervalSeconds": 1, "proxy": "toxiproxy"});
        if sources {
            spec["topology"] = json!("sources");
            spec["stream"]["subjects"] = json!(["events.{zone}.>"]);
        }
        let cr = fixtures::region(region, spec);
        Api::<RegionMirror>::namespaced(client.clone(), NS)
            .create(&PostParams::default(), &cr)
            .await
            .expect("region created");
        World {
            client,
            toxiproxy,
            prefix,
            runtime,
            region: region.to_string(),
            credentials,
        }
    }

    /// The zones' servers as their system account sees them.
    pub fn links(&self) -> LeafLinks {
        let zones = self
            .runtime
            .zones()
            .into_iter()
            .map(|z| {
                (
                    z.name().to_string(),
                    SystemAccess {
                        urls: z.endpoint.urls.clone(),
                        user: self.credentials.system.user.clone(),
                        password: self.credentials.system.password.clone(),
                        servers: 1,
                        ca: z.endpoint.ca.clone(),
                    },
                )
            })
            .collect();
        LeafLinks { zones }
    }

    pub fn settings(&self) -> DrillSettings {
        DrillSettings {
            toxiproxy: Some(ToxiproxyTarget {
                api: self.toxiproxy.url(),
                prefix: self.prefix.clone(),
            }),
            temporary_zones: Some(Arc::new(LocalZones(self.runtime.clone()))),
            status_every: Duration::from_millis(500),
            ..Default::default()
        }
    }

    /// Every proxy of this world as the Toxiproxy API shows it, by name.
    async fn proxy_objects(&self) -> BTreeMap<String, serde_json::Value> {
        let all: serde_json::Value = http()
            .get(format!("{}/proxies", self.toxiproxy.url()))
            .send()
            .await
            .expect("toxiproxy API")
            .json()
            .await
            .expect("proxies JSON");
        all.as_object()
            .expect("object")
            .iter()
            .filter(|(k, _)| k.starts_with(&self.prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// `(proxy, enabled)` for every proxy of this world.
    pub async fn proxies(&self) -> BTreeMap<String, bool> {
        self.proxy_objects()
            .await
            .into_iter()
            .map(|(k, v)| (k, v["enabled"].as_bool().unwrap_or(false)))
            .collect()
    }

    /// Names of the toxics on this world's proxies.
    pub async fn toxics(&self) -> Vec<String> {
        self.proxy_objects()
            .await
            .values()
            .flat_map(toxic_names)
            .collect()
    }

    /// Every proxy of this world enabled with no toxic: the state a
    /// Toxiproxy restart leaves once the proxies are created again.
    pub async fn restart_proxies(&self) {
        for (proxy, v) in self.proxy_objects().await {
            let base = format!("{}/proxies/{proxy}", self.toxiproxy.url());
            for toxic in toxic_names(&v) {
                http()
                    .delete(format!("{base}/toxics/{toxic}"))
                    .send()
                    .await
                    .expect("toxic removed");
            }
            http()
                .post(&base)
                .json(&json!({"enabled": true}))
                .send()
                .await
                .expect("proxy enabled");
        }
    }

    /// Changes the source stream's duplicate window in place.
    pub async fn set_duplicate_window(&self, window: Duration) {
        let source = self
            .runtime
            .zones()
            .into_iter()
            .find(|z| z.name() == "a")
            .expect("source zone");
        let conn = connect(&source.endpoint, &ConnectSettings::default())
            .await
            .expect("connect");
        let mut stream = conn.js.get_stream("EVENTS").await.expect("stream");
        let mut config = stream.info().await.expect("info").config.clone();
        config.duplicate_window = window;
        conn.js.update_stream(config).await.expect("window changed");
    }

    /// The RegionMirror no longer says its links run through Toxiproxy
    /// (they still do, unenforced policies cannot cut them anyway): what a
    /// networkPolicy drill asks of its region.
    pub async fn declare_direct_links(&self) {
        Api::<RegionMirror>::namespaced(self.client.clone(), NS)
            .patch(
                &self.region,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"leafnode": {"proxy": "none"}}})),
            )
            .await
            .expect("region patched");
    }

    pub async fn create_drill(&self, name: &str, spec: serde_json::Value) -> Api<PartitionDrill> {
        let drills: Api<PartitionDrill> = Api::namespaced(self.client.clone(), NS);
        let drill = fixtures::drill(name, &self.region, spec);
        drills
            .create(&PostParams::default(), &drill)
            .await
            .expect("drill created");
        drills
    }
}
/// A client for the Toxiproxy API on loopback (no proxy of the environment).
fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn toxic_names(proxy: &serde_json::Value) -> Vec<String> {
    proxy["toxics"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The drill controller in this process; abort the handle to "kill" it.
pub fn start_operator(client: &Client, settings: DrillSettings) -> JoinHandle<()> {
    start_stoppable(client, settings, futures::future::pending())
}

/// Like [`start_operator`], stopping in order when `stop` resolves.
pub fn start_stoppable(
    client: &Client,
    settings: DrillSettings,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    start_with_metrics(client, settings, stop).0
}

/// Like [`start_stoppable`], with the operator's metrics (what it serves on `/metrics`).
pub fn start_with_metrics(
    client: &Client,
    settings: DrillSettings,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> (JoinHandle<()>, Arc<natsregion::operator::Metrics>) {
    let ctx = Context::new(
        client.clone(),
        OperatorSettings {
            namespace: Some(NS.to_string()),
            ..Default::default()
        },
        reporter(),
    );
    let metrics = ctx.metrics.clone();
    (
        tokio::spawn(controller_with(ctx, settings, shutdown_on(stop))),
        metrics,
    )
}

pub async fn kill(operator: JoinHandle<()>) {
    operator.abort();
    let _ = operator.await;
}

pub fn small_drill(hold: i32, steps: Option<&str>) -> serde_json::Value {
    let mut spec = json!({
        "fault": {"backend": "toxiproxy", "holdSeconds": hold, "deadlineSeconds": 120},
        "workload": {"messagesPerPhase": 300, "ratePerSecond": 300},
        "timeouts": {"stepSeconds": 30, "catchUpSeconds": 10},
    });
    if let Some(steps) = steps {
        spec["steps"] = json!(steps.split(',').map(str::trim).collect::<Vec<_>>());
    }
    spec
}

/// Polls the drill until `done` holds; panics with the last status after `limit`.
pub async fn wait_for(
    drills: &Api<PartitionDrill>,
    name: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&PartitionDrill) -> bool,
) -> PartitionDrill {
    eventually(&format!("drill {name}: {what}"), limit, async || {
        let d = drills.get(name).await.expect("get drill");
        if done(&d) {
            Ok(d)
        } else {
            Err(format!(
                "status: {}",
                serde_json::to_string_pretty(&d.status).unwrap()
            ))
        }
    })
    .await
}

/// `kubectl delete` of the drill, waiting until it is gone (its finalizer
/// released); panics with its status after `limit`. How long it took.
pub async fn delete_drill(drills: &Api<PartitionDrill>, name: &str, limit: Duration) -> Duration {
    drills
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete drill");
    let start = Instant::now();
    loop {
        match drills.get_opt(name).await.expect("get") {
            None => return start.elapsed(),
            Some(d) => assert!(
                start.elapsed() < limit,
                "drill {name} not gone after {limit:?}: {}",
                show(&d)
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for `name` to be refused before any fault; its message.
pub async fn refused(drills: &Api<PartitionDrill>, name: &str) -> String {
    let d = wait_for(drills, name, Duration::from_secs(60), "refused", finished).await;
    let s = d.status.as_ref().unwrap();
    assert_eq!(s.phase, DrillPhase::Failed, "{}", show(&d));
    assert!(
        s.faults.is_empty(),
        "refused before any fault: {}",
        show(&d)
    );
    let message = s.message.clone().unwrap_or_default();
    assert!(message.starts_with("precondition failed"), "{message}");
    message
}

/// Every fault the drill's status records is healed.
pub fn expect_healed(d: &PartitionDrill) {
    let s = d.status.as_ref().expect("status");
    assert!(
        s.faults.iter().all(|f| f.healed_at.is_some()),
        "{}",
        show(d)
    );
}

pub fn finished(d: &PartitionDrill) -> bool {
    d.status.as_ref().is_some_and(|s| s.phase.is_finished())
        && !d.finalizers().iter().any(|f| f == FINALIZER)
}

/// A cut in place: a record the backend returned and no heal stamped (not
/// the intent stored before the cut).
pub fn cut_on(d: &PartitionDrill) -> bool {
    d.status
        .as_ref()
        .is_some_and(|s| s.faults.iter().any(|f| f.healed_at.is_none() && !f.intent))
}

pub fn show(d: &PartitionDrill) -> String {
    serde_json::to_string_pretty(&d.status).unwrap()
}
