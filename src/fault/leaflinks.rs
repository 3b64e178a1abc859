//! The leafnode links of zones, seen and broken through each zone's system
//! account. A cut that only stops new connections (a NetworkPolicy most CNIs
//! apply to new flows, a disabled proxy when a link bypasses it) holds only
//! once the established links are broken: their redials then meet the cut.
//! A link can bypass a proxy: a remote redials the URLs the hub advertised
//! first, and a hub restarted with a new advertise (a region switched to
//! `leafnode.proxy: toxiproxy` while its pods roll) leaves remotes linked
//! through the old, direct one (docs/architecture.md, fact 2).

use std::collections::BTreeMap;
use std::time::Duration;

use super::FaultError;

/// How to reach one zone's servers as the system account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemAccess {
    /// Client URLs (`nats://host:port`).
    pub urls: Vec<String>,
    pub user: String,
    pub password: String,
    /// Servers in the zone: how many answers a ping waits for.
    pub servers: usize,
    /// The region's CA (PEM) when the zone runs TLS.
    pub ca: Option<String>,
}

/// The leafnode links of zones, seen and broken through each zone's system
/// account: `$SYS.REQ.SERVER.PING.LEAFZ` lists every server's leafnode
/// connections, `$SYS.REQ.SERVER.<id>.KICK` closes one. A mirror zone's only
/// leafnode connections are its remotes to the source zone.
#[derive(Clone, Debug, Default)]
pub struct LeafLinks {
    pub zones: BTreeMap<String, SystemAccess>,
}

/// One server's leafnode connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLeafs {
    pub server_id: String,
    pub server_name: String,
    /// Connection ids.
    pub cids: Vec<u64>,
}

const SYS_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long after breaking the links the cut checks they stayed down.
pub const RELINK_GRACE: Duration = Duration::from_secs(2);

impl LeafLinks {
    /// Breaks the established leafnode links of `zones` right after a cut
    /// by `how` went in place, and once more if one is back after
    /// [`RELINK_GRACE`] (the cut not programmed yet). One retry only: a cut
    /// that still does not hold is the drill's to find and report.
    pub async fn break_established(&self, zones: &[String], how: &str) {
        let known: Vec<&String> = zones.iter().filter(|z| self.knows(z)).collect();
        for zone in zones.iter().filter(|z| !self.knows(z)) {
            tracing::warn!(zone = %zone, cut = how, "no system access to the zone: its established leafnode links are not broken, the cut may only take effect on reconnect");
        }
        for zone in &known {
            match self.kick(zone).await {
                Ok(n) => {
                    tracing::info!(zone = %zone, cut = how, links = n, "established leafnode links broken")
                }
                Err(e) => {
                    tracing::warn!(zone = %zone, cut = how, error = %e, "could not break the established leafnode links")
                }
            }
        }
        if known.is_empty() {
            return;
        }
        tokio::time::sleep(RELINK_GRACE).await;
        for zone in &known {
            if self.linked(zone).await.unwrap_or(false) {
                tracing::warn!(zone = %zone, cut = how, "leafnode link back right after the cut (not in place yet, or not enforced); breaking it again");
                let _ = self.kick(zone).await;
            }
        }
    }

    pub fn knows(&self, zone: &str) -> bool {
        self.zones.contains_key(zone)
    }

    fn access(&self, zone: &str) -> Result<&SystemAccess, FaultError> {
        self.zones
            .get(zone)
            .ok_or_else(|| FaultError::UnknownZone(zone.to_string()))
    }

    async fn connect(&self, zone: &str) -> Result<(async_nats::Client, usize), FaultError> {
        let a = self.access(zone)?;
        let addrs = a
            .urls
            .iter()
            .map(|u| u.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| nats_err(zone, "parse client URLs", e))?;
        let options =
            async_nats::ConnectOptions::with_user_and_password(a.user.clone(), a.password.clone())
                .name("natsregion-fault")
                .connection_timeout(Duration::from_secs(3));
        let client = crate::tls::trust_region_ca(options, a.ca.as_deref())
            .map_err(|e| nats_err(zone, "trust the region's CA", e))?
            .connect(addrs)
            .await
            .map_err(|e| nats_err(zone, "connect as the system user", e))?;
        Ok((client, a.servers.max(1)))
    }

    /// Every server's leafnode connections in `zone`.
    pub async fn leafz(&self, zone: &str) -> Result<Vec<ServerLeafs>, FaultError> {
        let (client, servers) = self.connect(zone).await?;
        let out = leafz(&client, zone, servers).await;
        drop(client);
        out
    }

    /// Whether any server of `zone` has a leafnode connection.
    pub async fn linked(&self, zone: &str) -> Result<bool, FaultError> {
        Ok(self.leafz(zone).await?.iter().any(|s| !s.cids.is_empty()))
    }

    /// Closes every leafnode connection of `zone`; returns how many.
    pub async fn kick(&self, zone: &str) -> Result<usize, FaultError> {
        use futures::StreamExt;
        let (client, servers) = self.connect(zone).await?;
        let mut kicked = 0;
        for server in leafz(&client, zone, servers).await? {
            for cid in server.cids {
                let subject = format!("$SYS.REQ.SERVER.{}.KICK", server.server_id);
                let body = serde_json::to_vec(&serde_json::json!({ "cid": cid }))
                    .expect("JSON serializes");
                // A reply with an error (the link went by itself) is fine.
                let mut sub = ask(&client, zone, "kick", subject, body).await?;
                if tokio::time::timeout(SYS_TIMEOUT, sub.next()).await.is_ok() {
                    kicked += 1;
                }
            }
        }
        Ok(kicked)
    }
}

/// Publishes a system request and returns the subscription its answers come
/// to (a ping gets one per server, so not `request`).
async fn ask(
    client: &async_nats::Client,
    zone: &str,
    op: &str,
    subject: String,
    body: Vec<u8>,
) -> Result<async_nats::Subscriber, FaultError> {
    let inbox = client.new_inbox();
    let sub = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| nats_err(zone, "subscribe", e))?;
    client
        .publish_with_reply(subject, inbox, body.into())
        .await
        .map_err(|e| nats_err(zone, op, e))?;
    Ok(sub)
}

async fn leafz(
    client: &async_nats::Client,
    zone: &str,
    servers: usize,
) -> Result<Vec<ServerLeafs>, FaultError> {
    use futures::StreamExt;
    let mut sub = ask(
        client,
        zone,
        "ping LEAFZ",
        "$SYS.REQ.SERVER.PING.LEAFZ".into(),
        b"{}".to_vec(),
    )
    .await?;
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + SYS_TIMEOUT;
    while out.len() < servers {
        let Ok(Some(msg)) = tokio::time::timeout_at(deadline, sub.next()).await else {
            break;
        };
        let v: serde_json::Value = serde_json::from_slice(&msg.payload)
            .map_err(|e| nats_err(zone, "read a LEAFZ answer", e))?;
        out.push(ServerLeafs {
            server_id: v["server"]["id"].as_str().unwrap_or_default().to_string(),
            server_name: v["server"]["name"].as_str().unwrap_or_default().to_string(),
            cids: v["data"]["leafs"]
                .as_array()
                .map(|l| l.iter().filter_map(|x| x["id"].as_u64()).collect())
                .unwrap_or_default(),
        });
    }
    if out.is_empty() {
        return Err(nats_err(
            zone,
            "ping LEAFZ",
            "no server answered: is this the system account's user?",
        ));
    }
    Ok(out)
}

fn nats_err(zone: &str, op: &str, e: impl std::fmt::Display) -> FaultError {
    FaultError::Command {
        command: format!("nats: {op} in zone {zone}"),
        message: e.to_string(),
    }
}
