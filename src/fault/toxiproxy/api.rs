//! The one client of toxiproxy-server's HTTP API, and the one place proxy
//! names are made and read. The fault backend cuts, heals and shapes through
//! it; the operator's region controller creates the region's proxies with it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::fault::FaultError;

/// How long [`ToxiproxyApi::set_enabled`] keeps trying: beyond Linux's
/// connect timeout (about 130 s), the longest a stuck accept loop holds an
/// update.
pub const UPDATE_BUDGET: Duration = Duration::from_secs(150);

#[derive(Clone, Debug, Deserialize)]
pub struct ProxyInfo {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    #[serde(default)]
    pub toxics: Vec<ToxicInfo>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ToxicInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub stream: String,
}

/// `<prefix>-<zone>-s<n>`: the proxy zone `zone` dials source server `n` through.
pub fn proxy_name(prefix: &str, zone: &str, source_server: usize) -> String {
    format!("{prefix}-{zone}-s{source_server}")
}

/// [`proxy_name`] read back: `(zone, n)`. Zone names may contain `-`.
pub fn parse_proxy_name(prefix: &str, name: &str) -> Option<(String, usize)> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let (zone, n) = rest.rsplit_once("-s")?;
    if zone.is_empty() || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((zone.to_string(), n.parse().ok()?))
}

/// toxiproxy-server at one base URL (`http://127.0.0.1:8474`).
#[derive(Clone, Debug)]
pub struct ToxiproxyApi {
    base: String,
    http: reqwest::Client,
}

impl ToxiproxyApi {
    /// Every request gives up after `timeout`.
    pub fn new(base: impl Into<String>, timeout: Duration) -> Self {
        // A proxy from the environment must not sit between us and the API:
        // it is usually on this machine or next to the zones.
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .build()
            .expect("reqwest client without TLS builds");
        Self {
            base: base.into().trim_end_matches('/').to_string(),
            http,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn err(op: impl Into<String>, message: impl ToString) -> FaultError {
        FaultError::Toxiproxy {
            op: op.into(),
            message: message.to_string(),
        }
    }

    async fn call(
        &self,
        op: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, FaultError> {
        let resp = req
            .send()
            .await
            .map_err(|e| Self::err(op, format!("{} unreachable: {e}", self.base)))?;
        Self::checked(op, resp).await
    }

    /// The response when its status is a success, its body as the error otherwise.
    async fn checked(op: &str, resp: reqwest::Response) -> Result<reqwest::Response, FaultError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Err(Self::err(op, format!("HTTP {status}: {}", body.trim())))
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        op: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, FaultError> {
        self.call(op, req)
            .await?
            .json()
            .await
            .map_err(|e| Self::err(op, e))
    }

    /// Every proxy the server has, by name.
    pub async fn proxies(&self) -> Result<BTreeMap<String, ProxyInfo>, FaultError> {
        self.json(
            "list proxies",
            self.http.get(format!("{}/proxies", self.base)),
        )
        .await
    }

    /// Creates an enabled proxy; `listen` may have port 0 (the server picks one).
    pub async fn create(
        &self,
        name: &str,
        listen: &str,
        upstream: &str,
    ) -> Result<ProxyInfo, FaultError> {
        let body = json!({ "name": name, "listen": listen, "upstream": upstream, "enabled": true });
        self.json(
            &format!("create proxy {name}"),
            self.http.post(format!("{}/proxies", self.base)).json(&body),
        )
        .await
    }

    /// Deletes a proxy; one already gone is not an error.
    pub async fn delete(&self, name: &str) -> Result<(), FaultError> {
        let op = format!("delete proxy {name}");
        match self
            .call(
                &op,
                self.http.delete(format!("{}/proxies/{name}", self.base)),
            )
            .await
        {
            Err(FaultError::Toxiproxy { message, .. }) if message.starts_with("HTTP 404") => Ok(()),
            other => other.map(drop),
        }
    }

    /// One proxy, by name.
    pub async fn proxy(&self, name: &str) -> Result<ProxyInfo, FaultError> {
        self.json(
            &format!("read proxy {name}"),
            self.http.get(format!("{}/proxies/{name}", self.base)),
        )
        .await
    }

    /// Enables or disables a proxy, waiting up to [`UPDATE_BUDGET`] for a
    /// server that is slow to answer. toxiproxy-server answers a disable only
    /// once the proxy's accept loop has returned, and that loop dials the
    /// upstream of a client it just accepted without a timeout; the flag
    /// itself flips (and the listener closes) at once. So a request that
    /// times out is not a failure until the proxy reads back unchanged.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), FaultError> {
        let op = format!(
            "{} proxy {name}",
            if enabled { "enable" } else { "disable" }
        );
        let started = Instant::now();
        loop {
            let req = self
                .http
                .post(format!("{}/proxies/{name}", self.base))
                .json(&json!({ "enabled": enabled }));
            // Not through `call`: an unanswered request is retried here,
            // an answered refusal is final.
            let unanswered = match req.send().await {
                Ok(resp) => return Self::checked(&op, resp).await.map(drop),
                Err(e) => format!("{} unreachable: {e}", self.base),
            };
            match self.proxy(name).await {
                Ok(p) if p.enabled == enabled => {
                    tracing::warn!(proxy = name, enabled, after = ?started.elapsed(), "toxiproxy-server did not answer the update in time, but the proxy reads back updated");
                    return Ok(());
                }
                _ if started.elapsed() >= UPDATE_BUDGET => {
                    return Err(Self::err(
                        op,
                        format!(
                            "{unanswered}; not updated after {:.0}s of retries",
                            started.elapsed().as_secs_f64()
                        ),
                    ));
                }
                _ => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }

    pub async fn toxics(&self, proxy: &str) -> Result<Vec<ToxicInfo>, FaultError> {
        self.json(
            &format!("list toxics of {proxy}"),
            self.http
                .get(format!("{}/proxies/{proxy}/toxics", self.base)),
        )
        .await
    }

    /// Adds toxic `name` of `type_` on `stream` (`upstream` or `downstream`).
    pub async fn add_toxic(
        &self,
        proxy: &str,
        name: &str,
        type_: &str,
        stream: &str,
        attributes: Value,
    ) -> Result<(), FaultError> {
        let body = json!({ "name": name, "type": type_, "stream": stream, "toxicity": 1.0, "attributes": attributes });
        self.post_toxic(proxy, name, body).await
    }

    /// Adds a toxic that is never applied (toxicity 0) and only carries its
    /// name: the fault deadline marker (`fault::deadline`).
    pub async fn add_marker(&self, proxy: &str, name: &str) -> Result<(), FaultError> {
        let body = json!({ "name": name, "type": "latency", "stream": "downstream", "toxicity": 0.0, "attributes": {"latency": 0} });
        self.post_toxic(proxy, name, body).await
    }

    async fn post_toxic(&self, proxy: &str, name: &str, body: Value) -> Result<(), FaultError> {
        self.call(
            &format!("add toxic {name} to {proxy}"),
            self.http
                .post(format!("{}/proxies/{proxy}/toxics", self.base))
                .json(&body),
        )
        .await
        .map(drop)
    }

    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), FaultError> {
        self.call(
            &format!("remove toxic {toxic} from {proxy}"),
            self.http
                .delete(format!("{}/proxies/{proxy}/toxics/{toxic}", self.base)),
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_names_round_trip_with_dashes_in_zone_names() {
        let name = proxy_name("east", "west-2", 1);
        assert_eq!(name, "east-west-2-s1");
        assert_eq!(parse_proxy_name("east", &name), Some(("west-2".into(), 1)));
        assert_eq!(parse_proxy_name("east", "east-west-sx"), None);
        assert_eq!(parse_proxy_name("east", "eastern-west-s0"), None);
        assert_eq!(parse_proxy_name("east", "east--s0"), None);
    }
}
