//! etcd + kube-apiserver on loopback, each instance with its own ports, keys
//! and temporary directory, so several can run side by side.
//! [`ControlPlaneOptions`] serve the one-node cluster (`testenv::node`), whose
//! API server must be reachable from pods.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{Request, params::GetParams};
use tempfile::TempDir;

use super::Error;
use super::process::{Proc, free_port, tail, wait_for_port};
use crate::tools;

/// Name of the static-token user; in `system:masters`, so RBAC allows it everything.
pub const ADMIN_USER: &str = "natsregion-admin";

/// Set to keep the directory (data, keys, logs) after the control plane stops.
pub const KEEP_ENV: &str = "NATSREGION_KEEP_TESTENV";

const ETCD_TIMEOUT: Duration = Duration::from_secs(30);
/// Generous: on a loaded 2-core machine the apiserver's post-start hooks
/// (RBAC bootstrap, priority classes) take several seconds.
const APISERVER_TIMEOUT: Duration = Duration::from_secs(90);
const CONTROLLER_MANAGER_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 3;

/// Where and how the API server serves. The default is the loopback server the
/// API-level tests use: no pods, so no service accounts and no reachable address.
#[derive(Clone, Debug)]
pub struct ControlPlaneOptions {
    /// Bound, advertised (the `kubernetes` Service's endpoint) and dialled.
    pub address: Ipv4Addr,
    pub service_cidr: String,
    /// Serving certificate and key; the API server's self-signed pair otherwise.
    pub serving_cert: Option<(PathBuf, PathBuf)>,
    /// ServiceAccount admission (pods get tokens), which needs the
    /// controller manager to create each namespace's `default` account.
    pub service_accounts: bool,
    /// Arguments appended to the API server's own.
    pub extra_args: Vec<String>,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        ControlPlaneOptions {
            address: Ipv4Addr::LOCALHOST,
            service_cidr: "10.0.0.0/24".into(),
            serving_cert: None,
            service_accounts: false,
            extra_args: Vec::new(),
        }
    }
}

pub struct ControlPlane {
    // Field order is drop order: servers stop before their directory goes.
    controller_manager: Option<Proc>,
    apiserver: Proc,
    etcd: Proc,
    dir: Option<TempDir>,
    root: PathBuf,
    kubeconfig: PathBuf,
    url: String,
    token: String,
    options: ControlPlaneOptions,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver and waits until `/readyz` says ok.
    pub async fn start() -> Result<ControlPlane, Error> {
        Self::start_with(ControlPlaneOptions::default()).await
    }

    /// [`ControlPlane::start`] with the API server configured by `options`.
    pub async fn start_with(options: ControlPlaneOptions) -> Result<ControlPlane, Error> {
        let mut attempt = 1;
        loop {
            match Self::start_once(&options).await {
                Err(e) if e.is_port_clash() && attempt < START_ATTEMPTS => {
                    tracing::warn!(attempt, error = %e, "control plane lost a port race, starting again with new ports");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn start_once(options: &ControlPlaneOptions) -> Result<ControlPlane, Error> {
        let etcd_bin = tools::binary("etcd")?;
        let apiserver_bin = tools::binary("kube-apiserver")?;
        let dir = tempfile::Builder::new()
            .prefix("natsregion-controlplane-")
            .tempdir()
            .map_err(|e| Error::io("create a temporary directory", e))?;
        let root = dir.path().to_path_buf();
        let mkdir = |name: &str| {
            let path = root.join(name);
            std::fs::create_dir_all(&path)
                .map_err(|e| Error::io(format!("create {}", path.display()), e))
                .map(|()| path)
        };
        let logs = mkdir("logs")?;
        let certs = mkdir("certs")?;
        let etcd_data = mkdir("etcd")?;

        let token = random_token()?;
        let tokens = root.join("tokens.csv");
        write(
            &tokens,
            &format!("{token},{ADMIN_USER},{ADMIN_USER},\"system:masters\"\n"),
        )?;
        let sa_key = root.join("service-account.key");
        generate_ec_key(&sa_key).await?;

        let client_port = free_port()?;
        let peer_port = free_port()?;
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_args = [
            "--name=default".to_string(),
            format!("--data-dir={}", etcd_data.display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=default={peer_url}"),
            // Throwaway data: fsync only costs time here.
            "--unsafe-no-fsync=true".to_string(),
            "--log-level=warn".to_string(),
        ];
        let mut etcd = Proc::spawn("etcd", &etcd_bin, &etcd_args, logs.join("etcd.log"))?;
        wait_for_port(client_port, &mut etcd, ETCD_TIMEOUT).await?;

        let port = free_port()?;
        let address = options.address;
        let url = format!("https://{address}:{port}");
        let mut apiserver_args = vec![
            format!("--etcd-servers={client_url}"),
            format!("--bind-address={address}"),
            format!("--advertise-address={address}"),
            format!("--secure-port={port}"),
            // Without --tls-cert-file the apiserver writes a self-signed pair here.
            format!("--cert-dir={}", certs.display()),
            format!("--token-auth-file={}", tokens.display()),
            "--authorization-mode=RBAC".to_string(),
            format!("--service-account-issuer={url}"),
            format!("--service-account-key-file={}", sa_key.display()),
            format!("--service-account-signing-key-file={}", sa_key.display()),
            format!("--service-cluster-ip-range={}", options.service_cidr),
            "--allow-privileged=true".to_string(),
        ];
        if let Some((cert, key)) = &options.serving_cert {
            apiserver_args.push(format!("--tls-cert-file={}", cert.display()));
            apiserver_args.push(format!("--tls-private-key-file={}", key.display()));
        }
        if !options.service_accounts {
            // Needs the service-account controller to create `default` accounts;
            // without it every pod would be refused.
            apiserver_args.push("--disable-admission-plugins=ServiceAccount".to_string());
        }
        if address.is_loopback() {
            // Nothing dials the `kubernetes` Service on loopback, so no endpoint
            // lease bookkeeping is needed; pods do need it (the default).
            apiserver_args.push("--endpoint-reconciler-type=none".to_string());
        }
        apiserver_args.extend(options.extra_args.iter().cloned());
        let apiserver = Proc::spawn(
            "kube-apiserver",
            &apiserver_bin,
            &apiserver_args,
            logs.join("kube-apiserver.log"),
        )?;

        let kubeconfig = root.join("kubeconfig");
        write(&kubeconfig, &kubeconfig_yaml(&url, &token))?;

        let mut plane = ControlPlane {
            controller_manager: None,
            apiserver,
            etcd,
            dir: Some(dir),
            root,
            kubeconfig,
            url,
            token,
            options: options.clone(),
        };
        plane.wait_ready().await?;
        if std::env::var_os(KEEP_ENV).is_some() {
            // keep() leaves the directory in place when the guard is dropped.
            plane.dir.take().map(TempDir::keep);
        }
        Ok(plane)
    }

    async fn wait_ready(&mut self) -> Result<(), Error> {
        let client = self.client().await?;
        // kube has no raw GET helper for non-resource paths; an empty resource
        // path with name "readyz" produces exactly `/readyz`.
        let readyz = || {
            Request::new("")
                .get("readyz", &GetParams::default())
                .expect("static request builds")
        };
        let started = Instant::now();
        let mut last: String;
        loop {
            for proc in [&mut self.etcd, &mut self.apiserver] {
                if let Some(status) = proc.exited() {
                    return Err(proc.exited_error(status));
                }
            }
            match client.request_text(readyz()).await {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(body) => last = body,
                Err(e) => last = e.to_string(),
            }
            if started.elapsed() >= APISERVER_TIMEOUT {
                return Err(Error::Timeout {
                    what: format!("{}/readyz", self.url),
                    after: APISERVER_TIMEOUT,
                    last,
                    log: self.apiserver.log.clone(),
                    tail: tail(&self.apiserver.log),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts kube-controller-manager (garbage collector, namespace deletion,
    /// workload controllers) against this API server and waits for `/healthz`.
    /// Fails with [`Error::MissingTool`] when the binary is not installed, so
    /// callers can skip what needs it.
    pub async fn start_controller_manager(&mut self) -> Result<(), Error> {
        self.start_controller_manager_with(&[]).await
    }

    /// [`ControlPlane::start_controller_manager`] with `extra` arguments.
    pub async fn start_controller_manager_with(&mut self, extra: &[String]) -> Result<(), Error> {
        if self.controller_manager.is_some() {
            return Ok(());
        }
        let binary = tools::binary("kube-controller-manager")?;
        let certs = self.root.join("controller-manager-certs");
        std::fs::create_dir_all(&certs)
            .map_err(|e| Error::io(format!("create {}", certs.display()), e))?;
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            let mut args = vec![
                format!("--kubeconfig={}", self.kubeconfig.display()),
                "--bind-address=127.0.0.1".to_string(),
                format!("--secure-port={port}"),
                format!("--cert-dir={}", certs.display()),
                "--leader-elect=false".to_string(),
                "--controllers=*".to_string(),
                format!(
                    "--service-account-private-key-file={}",
                    self.root.join("service-account.key").display()
                ),
                format!("--service-cluster-ip-range={}", self.options.service_cidr),
            ];
            args.extend(extra.iter().cloned());
            let log = self.root.join("logs/kube-controller-manager.log");
            let mut proc = Proc::spawn("kube-controller-manager", &binary, &args, log)?;
            match wait_healthz(&mut proc, port).await {
                Ok(()) => {
                    self.controller_manager = Some(proc);
                    return Ok(());
                }
                Err(e) if e.is_port_clash() && attempt < START_ATTEMPTS => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// A new client for this API server, authenticated as [`ADMIN_USER`].
    /// Each call builds its own client so it can be used from any tokio runtime.
    /// A control plane with both natsregion CRDs installed and served.
    pub async fn start_with_crds() -> Result<(ControlPlane, Client), Error> {
        let plane = ControlPlane::start().await?;
        let client = plane.client().await?;
        super::install_natsregion_crds(&client).await?;
        Ok((plane, client))
    }

    pub async fn client(&self) -> Result<Client, Error> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// Kubeconfig for this control plane (insecure-skip-tls-verify, bearer token).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// The temporary directory of this control plane (logs, keys, data).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// etcd.log, kube-apiserver.log and kube-controller-manager.log live here.
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// Process ids of the running servers, for tests of the teardown itself.
    pub fn pids(&self) -> Vec<u32> {
        [
            Some(&self.etcd),
            Some(&self.apiserver),
            self.controller_manager.as_ref(),
        ]
        .into_iter()
        .flatten()
        .filter_map(Proc::pid)
        .collect()
    }
}

async fn wait_healthz(proc: &mut Proc, port: u16) -> Result<(), Error> {
    let mut config = kube::Config::new(
        format!("https://127.0.0.1:{port}")
            .parse()
            .expect("loopback URL parses"),
    );
    // Self-signed serving certificate from --cert-dir.
    config.accept_invalid_certs = true;
    let client = Client::try_from(config)?;
    let healthz = || {
        Request::new("")
            .get("healthz", &GetParams::default())
            .expect("static request builds")
    };
    let started = Instant::now();
    let mut last: String;
    loop {
        if let Some(status) = proc.exited() {
            return Err(proc.exited_error(status));
        }
        match client.request_text(healthz()).await {
            Ok(body) if body.trim() == "ok" => return Ok(()),
            Ok(body) => last = body,
            Err(e) => last = e.to_string(),
        }
        if started.elapsed() >= CONTROLLER_MANAGER_TIMEOUT {
            return Err(Error::Timeout {
                what: format!("kube-controller-manager https://127.0.0.1:{port}/healthz"),
                after: CONTROLLER_MANAGER_TIMEOUT,
                last,
                log: proc.log.clone(),
                tail: tail(&proc.log),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("write {}", path.display()), e))
}

fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| Error::io("read /dev/urandom", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// P-256 in SEC1 form: the apiserver reads it both as the token signing key
/// and, from the same file, as the verification key. EC because RSA key
/// generation costs noticeable time on every start.
async fn generate_ec_key(path: &Path) -> Result<(), Error> {
    let openssl = tools::binary("openssl")?;
    let out = tokio::process::Command::new(&openssl)
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(path)
        .output()
        .await
        .map_err(|e| Error::io(format!("run {}", openssl.display()), e))?;
    if !out.status.success() {
        return Err(Error::io(
            "generate the service-account key with openssl",
            std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
        ));
    }
    Ok(())
}

fn kubeconfig_yaml(url: &str, token: &str) -> String {
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "natsregion-test", "cluster": {"server": url, "insecure-skip-tls-verify": true}}],
        "users": [{"name": ADMIN_USER, "user": {"token": token}}],
        "contexts": [{"name": "natsregion-test", "context": {"cluster": "natsregion-test", "user": ADMIN_USER, "namespace": "default"}}],
        "current-context": "natsregion-test",
    });
    serde_yaml_ng::to_string(&config).expect("kubeconfig serializes")
}
