use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "natsregion",
    version,
    about = "Multi-zone NATS JetStream regions, proven with partition drills"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print both CustomResourceDefinitions as YAML, or write them into a directory.
    Crd {
        /// Write one file per CRD here (this is how `crds/` is generated).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run the operator against the cluster in the current kubeconfig (or in-cluster).
    Run(RunArgs),
    /// Check an installation: both CRDs are served and the operator is
    /// ready (what the chart's `helm test` Pod runs). Exit 0 when all pass.
    Check {
        /// Namespace to list RegionMirrors and PartitionDrills in (default: every namespace).
        #[arg(long)]
        namespace: Option<String>,
        /// The operator's /readyz, e.g. http://natsregion-metrics.ns.svc:8080/readyz.
        #[arg(long)]
        ready_url: Option<String>,
    },
    /// Run a partition drill: in the cluster of the current kubeconfig (through
    /// the operator there), or with --local on local nats-server processes.
    Drill {
        /// Run every zone as local nats-server processes (no Kubernetes).
        #[arg(long)]
        local: bool,
        /// Namespace for a cluster drill whose file names none (default: the kubeconfig's).
        #[arg(long)]
        namespace: Option<String>,
        /// YAML file with a RegionMirror and a PartitionDrill.
        file: PathBuf,
        /// Write the full report as JSON here (a timeline SVG is written beside it).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Keep the zones' configs, logs and stores for a post-mortem.
        #[arg(long)]
        keep_dirs: bool,
        /// Run the drill N times on one region and print the pass rate and
        /// the catch-up distribution (--report then holds the summary).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10000))]
        repeat: u32,
        /// Write JUnit XML here: one test case per claim (failure message =
        /// the claim's reason), one suite per run.
        #[arg(long)]
        junit: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch only this namespace (default: every namespace).
    #[arg(long, env = "NATSREGION_NAMESPACE")]
    namespace: Option<String>,
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Hold a Lease before reconciling, so only one replica acts (`--leader-election=false` to turn off).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    leader_election: bool,
    /// Namespace of the Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    #[arg(long, default_value = "natsregion-operator")]
    lease_name: String,
    /// NATS image for zones whose spec makes no choice (`image` empty or left at the CRD default).
    #[arg(long, default_value_t = natsregion::api::default_image())]
    default_nats_image: String,
    /// Seconds between two reads of a steady region's state.
    #[arg(long, default_value_t = 30)]
    status_refresh_seconds: u64,
    /// RegionMirrors reconciled at once (bounds peak memory and API connections).
    #[arg(long, default_value_t = natsregion::operator::context::MAX_CONCURRENT_RECONCILES, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_reconciles: u16,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Give each region's Toxiproxy a NetworkPolicy that lets only the
    /// operator's pods (--operator-namespace, --operator-pod-labels) reach its
    /// unauthenticated API. The chart turns it on.
    #[arg(long, default_value_t = false, action = ArgAction::Set)]
    toxiproxy_api_network_policy: bool,
    /// A prometheus-nats-exporter image to run beside each managed zone's
    /// servers, serving their metrics in the Prometheus format on port 7777
    /// (`metrics`). Empty: no exporter.
    #[arg(long, default_value = "")]
    nats_exporter_image: String,
    /// The operator's own namespace, for --toxiproxy-api-network-policy.
    #[arg(long, env = "POD_NAMESPACE")]
    operator_namespace: Option<String>,
    /// The operator pods' labels as key=value,key=value, for
    /// --toxiproxy-api-network-policy.
    #[arg(long, default_value = "")]
    operator_pod_labels: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "natsregion=info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn run_operator(args: RunArgs) -> ExitCode {
    use natsregion::operator::leader::LeaseSettings;
    use natsregion::operator::run::{RunOptions, run};
    let toxiproxy_api_policy = if args.toxiproxy_api_network_policy {
        match natsregion::operator::context::OperatorPods::parse(
            args.operator_namespace.as_deref().unwrap_or_default(),
            &args.operator_pod_labels,
        ) {
            Ok(pods) => Some(pods),
            Err(e) => {
                eprintln!("--toxiproxy-api-network-policy: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let settings = natsregion::operator::OperatorSettings {
        toxiproxy_api_policy,
        default_nats_image: args.default_nats_image,
        status_refresh: Duration::from_secs(args.status_refresh_seconds.max(1)),
        namespace: args.namespace.clone(),
        max_concurrent_reconciles: args.max_concurrent_reconciles,
        nats_exporter_image: Some(args.nats_exporter_image).filter(|i| !i.is_empty()),
        ..Default::default()
    };
    let leader_election = args.leader_election.then(|| {
        let namespace = args
            .lease_namespace
            .or_else(|| {
                std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                    .ok()
                    .map(|s| s.trim().to_string())
            })
            .or(args.namespace)
            .unwrap_or_else(|| "default".to_string());
        let reporter = natsregion::operator::context::reporter();
        let identity = format!(
            "{}-{}",
            reporter
                .instance
                .unwrap_or_else(|| "natsregion".to_string()),
            std::process::id()
        );
        LeaseSettings::new(namespace, args.lease_name, identity)
    });
    let opts = RunOptions {
        settings,
        metrics_addr: args.metrics_addr,
        leader_election,
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, reason = e.reason(), "operator stopped");
            ExitCode::FAILURE
        }
    }
}

/// `natsregion drill FILE`: exit 0 when every claim passed, 1 when the drill
/// ran and did not pass, 2 when it could not be run or followed.
fn cluster_drill(
    file: PathBuf,
    report: Option<PathBuf>,
    junit: Option<PathBuf>,
    namespace: Option<String>,
) -> ExitCode {
    use natsregion::cli::cluster_drill::{ClusterDrillOptions, run};
    let opts = ClusterDrillOptions {
        file,
        namespace,
        report,
        junit,
        ..Default::default()
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let outcome = runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("no cluster in the current kubeconfig: {e}"))?;
        run(client, &opts).await.map_err(|e| e.to_string())
    });
    match outcome {
        Ok(o) => {
            println!("{}", o.table());
            if o.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn check(namespace: Option<String>, ready_url: Option<String>) -> ExitCode {
    use natsregion::cli::check::{CheckOptions, run};
    let opts = CheckOptions {
        namespace,
        ready_url,
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let outcome = runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("no cluster in the kubeconfig or service account: {e}"))?;
        run(client, &opts).await
    });
    match outcome {
        Ok(passed) => {
            for p in passed {
                println!("ok: {p}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(match &cli.command {
        Command::Run(args) => args.log_format,
        _ => LogFormat::Text,
    });
    match cli.command {
        Command::Crd { dir: None } => {
            print!("{}", natsregion::api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Crd { dir: Some(dir) } => {
            for (name, yaml) in natsregion::api::crd_files() {
                let path = dir.join(name);
                if let Err(e) = std::fs::write(&path, yaml) {
                    eprintln!("cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Command::Run(args) => run_operator(args),
        Command::Check {
            namespace,
            ready_url,
        } => check(namespace, ready_url),
        Command::Drill {
            local,
            file,
            report,
            keep_dirs,
            repeat,
            junit,
            namespace,
        } => {
            if !local {
                if keep_dirs || repeat > 1 {
                    eprintln!("--keep-dirs and --repeat are for --local drills");
                    return ExitCode::from(2);
                }
                return cluster_drill(file, report, junit, namespace);
            }
            let opts = natsregion::cli::local_drill::LocalDrillOptions {
                file,
                report,
                keep_dirs,
                progress: true,
                repeat,
                junit,
            };
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            match runtime.block_on(natsregion::cli::local_drill::run(&opts)) {
                Ok(reports) => {
                    if let [report] = reports.as_slice() {
                        println!("{}", natsregion::drill::report::table(report));
                    } else {
                        let summary = natsregion::drill::campaign::CampaignSummary::of(&reports);
                        println!("{}", summary.table());
                    }
                    if reports.iter().all(|r| r.passed()) {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
