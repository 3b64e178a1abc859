//! The fault backends against real toxiproxy-server and nats-server processes.
//! Each test starts its own servers on free ports (or in its own namespaces),
//! so they run in parallel.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use natsregion::api::{Toxic, ToxicType};
use natsregion::fault::leaflinks::{LeafLinks, SystemAccess};
use natsregion::fault::netns::PacketFilter;
use natsregion::fault::netns::lab::{NetnsLab, command_in, ip, is_root, link_exists, netns_exists};
use natsregion::fault::toxiproxy::answers_info;
use natsregion::fault::{FaultBackend, FaultError, NetnsBackend, Network, ToxiproxyBackend};
use natsregion::local::toxiproxy::ToxiproxyServer;

/// A nats-server of this test, killed on drop.
struct Nats {
    child: Child,
    client: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nats {
    async fn start(name: &str, netns: Option<&str>, client: SocketAddr, extra: &str) -> Nats {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join(format!("{name}.conf"));
        let log = dir.path().join(format!("{name}.log"));
        std::fs::write(
            &conf,
            format!("server_name: {name}\nlisten: \"{client}\"\n{extra}\n"),
        )
        .unwrap();
        let bin = natsregion::tools::binary("nats-server")
            .expect("nats-server built by tools/install.sh");
        let child = command_in(netns, bin)
            .arg("-c")
            .arg(&conf)
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Nats {
            child,
            client,
            _dir: dir,
        };
        // Up means this server says it listens there: `free_loopback`
        // released the port, and something else that took it meanwhile (a
        // proxy, another server's leafnode port) may answer INFO as well.
        let listening = format!("Listening for client connections on {client}");
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(&listening) && answers_info(client, Duration::from_millis(500)).await {
                break;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("{name} exited ({status}) before listening at {client}; log:\n{text}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{name} not up at {client}; log:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    async fn connect(&self) -> async_nats::Client {
        async_nats::connect(self.client.to_string()).await.unwrap()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_loopback() -> SocketAddr {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Publish numbered messages on `leaf` every 100 ms until one of them arrives
/// on `hub_sub` or `within` passes. Returns how long the first one took to
/// cross. Messages published before this call do not count.
async fn crossing(
    leaf: &async_nats::Client,
    hub_sub: &mut async_nats::Subscriber,
    within: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let first = rand_id();
    let mut n = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if started.elapsed() > within {
                    return None;
                }
                let _ = leaf.publish("drill.cross", format!("{first}-{n}").into()).await;
                let _ = leaf.flush().await;
                n += 1;
            }
            msg = hub_sub.next() => {
                let msg = msg?;
                if std::str::from_utf8(&msg.payload).is_ok_and(|p| p.starts_with(&format!("{first}-"))) {
                    return Some(started.elapsed());
                }
            }
        }
    }
}

/// Asserts that a message from `leaf` reaches `hub_sub` within `within`.
async fn assert_crosses(
    leaf: &async_nats::Client,
    hub_sub: &mut async_nats::Subscriber,
    within: Duration,
    what: &str,
) {
    assert!(crossing(leaf, hub_sub, within).await.is_some(), "{what}");
}

/// Subscribes on the hub to what the leaf publishes and waits until a
/// message crosses: the leafnode link is up.
async fn linked(
    hub: &async_nats::Client,
    leaf: &async_nats::Client,
    within: Duration,
    what: &str,
) -> async_nats::Subscriber {
    let mut sub = hub.subscribe("drill.>").await.unwrap();
    hub.flush().await.unwrap();
    assert_crosses(leaf, &mut sub, within, what).await;
    sub
}

/// Cuts zone `b` through `backend`, with a deadline no test reaches.
async fn cut_b(backend: &impl FaultBackend) -> natsregion::api::FaultRecord {
    backend
        .cut(&["b".to_string()], Duration::from_secs(60))
        .await
        .unwrap()
}

fn rand_id() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

async fn round_trip(client: &async_nats::Client) -> Duration {
    let mut sub = client.subscribe("rt").await.unwrap();
    client.flush().await.unwrap();
    let t = Instant::now();
    client.publish("rt", "x".into()).await.unwrap();
    client.flush().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .unwrap()
        .unwrap();
    t.elapsed()
}

#[tokio::test]
async fn toxiproxy_cuts_and_restores_client_traffic_and_applies_toxics() {
    let tp = ToxiproxyServer::start().await.unwrap();
    let server = Nats::start("direct", None, free_loopback(), "").await;
    let backend = ToxiproxyBackend::new(tp.url(), true);
    let zone = "clients".to_string();
    let via = backend.leaf_route(&zone, 0, server.client).await.unwrap();
    assert_ne!(via, server.client);

    let client = async_nats::connect(via.to_string()).await.unwrap();
    let mut sub = client.subscribe("greet").await.unwrap();
    client
        .publish("greet", "through the proxy".into())
        .await
        .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&msg.payload[..], b"through the proxy");
    drop((sub, client));

    let record = backend
        .cut(std::slice::from_ref(&zone), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(record.backend, "toxiproxy");
    assert!(
        async_nats::connect(via.to_string()).await.is_err(),
        "connected through a disabled proxy"
    );
    let left = backend.leftovers().await.unwrap();
    assert!(left.iter().any(|l| l.contains("disabled")), "{left:?}");

    backend.heal(&record).await.unwrap();
    assert!(backend.leftovers().await.unwrap().is_empty());
    let client = async_nats::connect(via.to_string()).await.unwrap();
    let fast = round_trip(&client).await;

    let latency = Toxic {
        type_: ToxicType::Latency,
        latency_millis: Some(300),
        jitter_millis: Some(0),
        rate_kilobytes_per_second: None,
    };
    backend.apply_toxics(&zone, &[latency]).await.unwrap();
    let slow = round_trip(&client).await;
    println!(
        "toxiproxy: round trip {fast:?} without toxics, {slow:?} with 300 ms latency each way"
    );
    assert!(
        slow >= Duration::from_millis(600),
        "latency toxic not applied: {slow:?}"
    );
    let left = backend.leftovers().await.unwrap();
    assert_eq!(
        left.iter().filter(|l| l.contains("toxic")).count(),
        2,
        "{left:?}"
    );

    // A cut under toxics takes them off before it disables the proxy, while
    // the link still carries traffic (docs/architecture.md fact 11).
    let record = backend
        .cut(std::slice::from_ref(&zone), Duration::from_secs(30))
        .await
        .unwrap();
    let left = backend.leftovers().await.unwrap();
    assert!(
        left.iter().any(|l| l.contains("disabled")) && !left.iter().any(|l| l.contains("toxic")),
        "{left:?}"
    );

    backend.heal(&record).await.unwrap();
    assert!(backend.leftovers().await.unwrap().is_empty());
    let client = async_nats::connect(via.to_string()).await.unwrap();
    assert!(round_trip(&client).await < Duration::from_millis(300));
}

/// A hub with a leafnode listener and a leaf dialing it through `backend`.
struct LeafPair {
    hub: Nats,
    leaf: Nats,
}

async fn leaf_pair(backend: &ToxiproxyBackend, zone: &str) -> LeafPair {
    let hub_leaf = free_loopback();
    let advertise = match backend.leaf_advertise(0, hub_leaf) {
        Some(a) => format!("advertise: \"{a}\""),
        None => String::new(),
    };
    let hub = Nats::start(
        "hub",
        None,
        free_loopback(),
        &format!("leafnodes {{\n listen: \"{hub_leaf}\"\n {advertise}\n}}"),
    )
    .await;
    let route = backend.leaf_route(zone, 0, hub_leaf).await.unwrap();
    let leaf_conf = format!(
        "leafnodes {{\n reconnect: \"1s\"\n remotes: [ {{ url: \"nats-leaf://{route}\" }} ]\n}}"
    );
    let leaf = Nats::start("leaf", None, free_loopback(), &leaf_conf).await;
    LeafPair { hub, leaf }
}

#[tokio::test]
async fn proxy_cut_leaks_through_the_learned_leaf_url_without_the_advertise_fix() {
    let tp = ToxiproxyServer::start().await.unwrap();
    let backend = ToxiproxyBackend::new(tp.url(), false);
    let pair = leaf_pair(&backend, "b").await;
    let (hub, leaf) = (pair.hub.connect().await, pair.leaf.connect().await);
    let mut sub = linked(
        &hub,
        &leaf,
        Duration::from_secs(10),
        "leafnode link never came up",
    )
    .await;

    let record = cut_b(&backend).await;
    let leak = crossing(&leaf, &mut sub, Duration::from_secs(10)).await;
    println!("toxiproxy without advertise fix: messages crossed {leak:?} after the cut");
    assert!(
        leak.is_some(),
        "the known leak did not happen: is the hub still advertising its listen address?"
    );
    assert!(
        backend.probe("b").await.unwrap(),
        "probe must see the learned address"
    );

    backend.heal(&record).await.unwrap();
    assert!(backend.leftovers().await.unwrap().is_empty());
}

/// Accounts as a managed zone has them: clients without credentials land in
/// the application account, and the system account sees and breaks links.
const ACCOUNTS: &str = "accounts {\n SYS { users = [{user: sys, password: sys}] }\n APP { users = [{user: app, password: app}] }\n}\nsystem_account: SYS\nno_auth_user: app";

/// What a region switched to `leafnode.proxy: toxiproxy` while its pods roll
/// can leave: a leaf that dialed the proxy learned the hub's own leafnode
/// address (the hub did not advertise yet), and when the hub restarts with the
/// advertise fix the leaf redials the learned address first and stays linked
/// around the proxy. Disabling the proxies cannot cut that link; breaking the
/// established links does, and the redial then meets the cut.
#[tokio::test]
async fn a_link_around_the_proxy_survives_a_proxy_cut_unless_the_cut_breaks_it() {
    let tp = ToxiproxyServer::start().await.unwrap();
    let (hub_client, hub_leaf) = (free_loopback(), free_loopback());
    let hub_conf = |advertise: &str| {
        format!("{ACCOUNTS}\nleafnodes {{\n listen: \"{hub_leaf}\"\n {advertise}\n}}")
    };
    let old_hub = Nats::start("hub", None, hub_client, &hub_conf("")).await;
    let leaf_client = free_loopback();
    let links = LeafLinks {
        zones: [(
            "b".to_string(),
            SystemAccess {
                urls: vec![format!("nats://{leaf_client}")],
                user: "sys".into(),
                password: "sys".into(),
                servers: 1,
                ca: None,
            },
        )]
        .into(),
    };
    let backend = ToxiproxyBackend::new(tp.url(), true).with_links(links);
    // The same proxies, cut without breaking links: what the cut did before.
    let proxies_only = ToxiproxyBackend::adopt(tp.url(), backend.prefix());
    let route = backend.leaf_route("b", 0, hub_leaf).await.unwrap();
    let leaf = Nats::start(
        "leaf",
        None,
        leaf_client,
        &format!(
            "{ACCOUNTS}\nleafnodes {{\n reconnect: \"1s\"\n remotes: [ {{ url: \"nats-leaf://app:app@{route}\", account: APP }} ]\n}}"
        ),
    )
    .await;
    let leaf_conn = leaf.connect().await;
    let mut sub = old_hub.connect().await.subscribe("drill.>").await.unwrap();
    assert_crosses(
        &leaf_conn,
        &mut sub,
        Duration::from_secs(10),
        "leafnode link through the proxy never came up",
    )
    .await;

    // The hub restarts, now advertising an address that refuses.
    drop(sub);
    drop(old_hub);
    let advertise = backend.leaf_advertise(0, hub_leaf).expect("advertise fix");
    let hub = Nats::start(
        "hub",
        None,
        hub_client,
        &hub_conf(&format!("advertise: \"{advertise}\"")),
    )
    .await;
    let hub_conn = hub.connect().await;
    let mut sub = linked(
        &hub_conn,
        &leaf_conn,
        Duration::from_secs(15),
        "the leaf did not relink after the hub restarted",
    )
    .await;

    let record = cut_b(&proxies_only).await;
    let leak = crossing(&leaf_conn, &mut sub, Duration::from_secs(6)).await;
    println!(
        "proxy cut without breaking links, after the hub's rewiring: messages crossed {leak:?}"
    );
    assert!(
        leak.is_some(),
        "the link around the proxy was expected to survive a cut that only disables proxies"
    );
    proxies_only.heal(&record).await.unwrap();

    let record = cut_b(&backend).await;
    assert_eq!(
        crossing(&leaf_conn, &mut sub, Duration::from_secs(6)).await,
        None,
        "messages crossed a cut that broke the established links"
    );
    backend.heal(&record).await.unwrap();
    let back = crossing(&leaf_conn, &mut sub, Duration::from_secs(15)).await;
    println!("proxy cut breaking links: held 6 s; messages crossed again {back:?} after the heal");
    assert!(back.is_some(), "the link did not come back after the heal");
    assert!(backend.leftovers().await.unwrap().is_empty());
}

#[tokio::test]
async fn advertise_fix_holds_the_proxy_cut_heals_and_the_deadline_heals_alone() {
    let tp = ToxiproxyServer::start().await.unwrap();
    let backend = ToxiproxyBackend::new(tp.url(), true);
    let pair = leaf_pair(&backend, "b").await;
    let (hub, leaf) = (pair.hub.connect().await, pair.leaf.connect().await);
    let mut sub = linked(
        &hub,
        &leaf,
        Duration::from_secs(10),
        "leafnode link never came up",
    )
    .await;
    assert!(backend.probe("b").await.unwrap());

    // Several reconnect intervals: long enough for the leak to show if it were there.
    let record = cut_b(&backend).await;
    assert!(!backend.probe("b").await.unwrap());
    assert_eq!(
        crossing(&leaf, &mut sub, Duration::from_secs(6)).await,
        None,
        "messages crossed the cut"
    );
    assert!(!backend.probe("b").await.unwrap());
    assert!(!backend.leftovers().await.unwrap().is_empty());

    backend.heal(&record).await.unwrap();
    let back = crossing(&leaf, &mut sub, Duration::from_secs(15)).await;
    println!(
        "toxiproxy with advertise fix: cut held 6 s; messages crossed again {back:?} after the heal"
    );
    assert!(back.is_some(), "the link did not come back after the heal");
    assert!(backend.leftovers().await.unwrap().is_empty());
    assert!(backend.probe("b").await.unwrap());

    // Never healed: the deadline removes the fault by itself.
    let cut_at = Instant::now();
    backend
        .cut(&["b".to_string()], Duration::from_secs(2))
        .await
        .unwrap();
    assert!(!backend.probe("b").await.unwrap());
    while !backend.leftovers().await.unwrap().is_empty() {
        assert!(
            cut_at.elapsed() < Duration::from_secs(8),
            "deadline did not heal"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let healed_after = cut_at.elapsed();
    let back = crossing(&leaf, &mut sub, Duration::from_secs(15)).await;
    println!(
        "toxiproxy deadline: healed itself {healed_after:?} after a 2 s-deadline cut; messages crossed {back:?} later"
    );
    assert!(healed_after >= Duration::from_secs(2));
    assert!(back.is_some());
}

/// toxiproxy-server answers a disable only once the proxy's accept loop has
/// returned, and that loop dials the upstream of each client it accepts,
/// without a timeout. An upstream whose accept queue is full drops SYNs, so
/// that dial hangs (about two minutes). The cut must still count: the proxy
/// reads back disabled and its listener is closed.
#[tokio::test]
async fn a_cut_whose_disable_waits_behind_a_hanging_upstream_dial_still_holds() {
    let tp = ToxiproxyServer::start().await.unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
    let upstream_addr = socket.local_addr().unwrap();
    // Never accepted: once its queue is full the kernel drops further SYNs
    // and their connects hang.
    let _upstream = socket.listen(0).unwrap();
    let mut queued = Vec::new();
    while let Ok(c) =
        std::net::TcpStream::connect_timeout(&upstream_addr, Duration::from_millis(500))
    {
        queued.push(c);
        assert!(queued.len() < 16, "the upstream's queue never filled");
    }
    let backend = ToxiproxyBackend::new(tp.url(), true);
    let zone = "stuck".to_string();
    let via = backend.leaf_route(&zone, 0, upstream_addr).await.unwrap();
    // toxiproxy accepts this one and hangs dialing the full upstream.
    let _client = tokio::net::TcpStream::connect(via).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let record = backend
        .cut(std::slice::from_ref(&zone), Duration::from_secs(300))
        .await
        .unwrap_or_else(|e| panic!("cut refused after {:?}: {e}", started.elapsed()));
    println!(
        "toxiproxy disable behind a hanging upstream dial: cut in place after {:?}",
        started.elapsed()
    );
    assert_eq!(record.backend, "toxiproxy");
    assert!(
        tokio::net::TcpStream::connect(via).await.is_err(),
        "the disabled proxy still accepts"
    );
    let left = backend.leftovers().await.unwrap();
    assert!(left.iter().any(|l| l.contains("disabled")), "{left:?}");
}

#[tokio::test]
async fn netns_cut_blocks_the_leafnode_link_but_not_host_clients() {
    if !is_root() {
        println!("SKIP netns test: needs root (CI runs as root)");
        return;
    }
    match NetnsBackend::new() {
        Ok(backend) => netns_scenario(backend).await,
        Err(FaultError::Unsupported { what, .. }) => println!("SKIP netns test: needs {what}"),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn netns_cut_with_the_iptables_fallback() {
    if !is_root() {
        println!("SKIP netns iptables test: needs root (CI runs as root)");
        return;
    }
    let Some(filter) = PacketFilter::iptables() else {
        println!("SKIP netns iptables test: no working iptables (apt-get install iptables)");
        return;
    };
    match NetnsBackend::with_filter(filter) {
        Ok(backend) => netns_scenario(backend).await,
        Err(FaultError::Unsupported { what, .. }) => {
            println!("SKIP netns iptables test: needs {what}")
        }
        Err(e) => panic!("{e}"),
    }
}

/// Hub in one namespace, leaf in another: cut, prove, heal, deadline, drop.
async fn netns_scenario(backend: NetnsBackend) {
    let a = backend.prepare_zone("a").await.unwrap();
    let b = backend.prepare_zone("b").await.unwrap();
    let (a_ns, b_ns) = (a.netns.clone().unwrap(), b.netns.clone().unwrap());
    let bridge = backend.lab().bridge().to_string();
    assert!(netns_exists(&a_ns) && netns_exists(&b_ns) && link_exists(&bridge));

    let hub_leaf = SocketAddr::new(a.ip, 7422);
    let hub = Nats::start(
        "hub",
        Some(&a_ns),
        SocketAddr::new(a.ip, 4222),
        &format!("leafnodes {{ listen: \"{hub_leaf}\" }}"),
    )
    .await;
    let route = backend.leaf_route("b", 0, hub_leaf).await.unwrap();
    let leaf_conf = format!(
        "leafnodes {{\n reconnect: \"1s\"\n remotes: [ {{ url: \"nats-leaf://{route}\" }} ]\n}}"
    );
    let leaf = Nats::start("leaf", Some(&b_ns), SocketAddr::new(b.ip, 4222), &leaf_conf).await;

    let (hub_nc, leaf_nc) = (hub.connect().await, leaf.connect().await);
    let mut sub = linked(
        &hub_nc,
        &leaf_nc,
        Duration::from_secs(10),
        "leafnode link never came up",
    )
    .await;
    assert!(backend.probe("b").await.unwrap());

    let record = cut_b(&backend).await;
    assert!(!backend.probe("b").await.unwrap());
    assert_eq!(
        crossing(&leaf_nc, &mut sub, Duration::from_secs(5)).await,
        None,
        "messages crossed the cut"
    );
    let left = backend.leftovers().await.unwrap();
    assert!(
        left.iter()
            .any(|l| l.contains(&record.id) && l.contains("reject")),
        "{left:?}"
    );
    // The host's clients of both zones were never cut.
    let mut local = leaf_nc.subscribe("local").await.unwrap();
    leaf_nc.flush().await.unwrap();
    leaf_nc.publish("local", "still here".into()).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(2), local.next())
            .await
            .unwrap()
            .is_some()
    );
    assert!(round_trip(&hub_nc).await < Duration::from_secs(1));
    assert!(async_nats::connect(hub.client.to_string()).await.is_ok());

    backend.heal(&record).await.unwrap();
    let back = crossing(&leaf_nc, &mut sub, Duration::from_secs(15)).await;
    println!(
        "netns ({:?}): cut held 5 s; messages crossed again {back:?} after the heal",
        backend.packet_filter()
    );
    assert!(back.is_some(), "the link did not come back after the heal");
    assert!(backend.leftovers().await.unwrap().is_empty());
    assert!(backend.probe("b").await.unwrap());

    // Never healed: the deadline removes the rules by itself.
    let cut_at = Instant::now();
    backend
        .cut(&["b".to_string()], Duration::from_secs(2))
        .await
        .unwrap();
    assert!(!backend.probe("b").await.unwrap());
    while !backend.leftovers().await.unwrap().is_empty() {
        assert!(
            cut_at.elapsed() < Duration::from_secs(8),
            "deadline did not heal"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cut_at.elapsed() >= Duration::from_secs(2));
    assert!(backend.probe("b").await.unwrap());

    drop((hub_nc, leaf_nc, sub, local));
    drop((hub, leaf));
    drop(backend);
    assert!(
        !netns_exists(&a_ns) && !netns_exists(&b_ns),
        "namespaces left behind"
    );
    assert!(!link_exists(&bridge), "bridge left behind");
}

#[tokio::test]
async fn netns_lab_removes_what_a_dead_process_left() {
    if !is_root() {
        println!("SKIP netns sweep test: needs root (CI runs as root)");
        return;
    }
    if let Err(e) = NetnsLab::preflight() {
        println!("SKIP netns sweep test: {e}");
        return;
    }
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let (netns, link) = (format!("nr{dead:x}-0-zone"), format!("nr{dead:x}-0b"));
    ip(&["netns", "add", &netns]).unwrap();
    ip(&["link", "add", &link, "type", "bridge"]).unwrap();
    let lab = NetnsLab::new().unwrap();
    assert!(!netns_exists(&netns), "stale namespace {netns} kept");
    assert!(!link_exists(&link), "stale link {link} kept");
    assert!(link_exists(lab.bridge()));
}
