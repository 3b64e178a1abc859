use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, CommandFactory, Parser, Subcommand, ValueEnum};
use natsregion::cli::output::{self, OutputFormat};

/// The crate's version and the commit it was built from (build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("NATSREGION_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "natsregion",
    version = VERSION,
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
    Drill(DrillArgs),
    /// Check RegionMirror and PartitionDrill YAML files as the API server
    /// would (schema and CEL rules, and each drill against its region when a
    /// file holds it), without a cluster. Exit 0: all valid; 2: a refusal;
    /// 1: a file could not be read.
    Validate {
        /// Files with one or more YAML documents; other kinds are skipped.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a shell completion script (e.g. `source <(natsregion completion bash)`).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(clap::Args)]
struct DrillArgs {
    /// Run every zone as local nats-server processes (no Kubernetes).
    #[arg(long)]
    local: bool,
    /// YAML file with a RegionMirror and a PartitionDrill.
    file: PathBuf,
    /// Namespace of a cluster drill (default: the file's, else the kubeconfig
    /// context's; a file naming another one is refused).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// The kubeconfig context to use (default: its current-context).
    #[arg(long)]
    context: Option<String>,
    /// The kubeconfig file to use (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Give up on a cluster drill after this long (its created region's
    /// Ready, then the drill's end), e.g. 45m, 1h30m [default: 30m].
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Print the result (the document --report writes) on stdout as json or
    /// yaml; the verdict table then goes to stderr.
    #[arg(short = 'o', long, value_enum)]
    output: Option<OutputFormat>,
    /// Off a terminal (CI), time between two "still at step" lines.
    #[arg(long, env = "NATSREGION_HEARTBEAT", value_parser = parse_duration, default_value = "10s")]
    heartbeat: Duration,
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
}

/// "30m", "1h 30m", "90s" (jiff's friendly format).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("{e} (write e.g. 90s, 30m or 1h30m)"))?;
    Duration::try_from(d).map_err(|_| "a duration must not be negative".to_string())
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
    /// A region's mirror (or aggregate source) silent this many seconds while
    /// its leafnode link answers gets a leader stepdown, at most once per as
    /// long, so it re-creates its consumer at once instead of some 40 s after
    /// the link came back (outside drills; a drill resumes its own). 0 turns it off.
    #[arg(long, default_value_t = natsregion::operator::context::RESUME_STALLED_MIRRORS_AFTER.as_secs())]
    resume_stalled_mirrors_after_seconds: u64,
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
        resume_stalled_mirrors_after: (args.resume_stalled_mirrors_after_seconds > 0)
            .then(|| Duration::from_secs(args.resume_stalled_mirrors_after_seconds)),
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

/// Prints the drill's verdict table, or with `-o` the result document on
/// stdout and the table on stderr.
fn print_result(table: &str, doc: &impl serde::Serialize, format: Option<OutputFormat>) -> bool {
    let Some(format) = format else {
        println!("{table}");
        return true;
    };
    eprintln!("{table}");
    match output::render(doc, format) {
        Ok(text) => {
            print!("{text}");
            true
        }
        Err(e) => {
            eprintln!("error: {e}");
            false
        }
    }
}

/// `natsregion drill FILE`: exit 0 when every claim passed, 1 when the drill
/// ran and did not pass, 2 when it could not be run or followed.
fn cluster_drill(args: DrillArgs) -> ExitCode {
    use natsregion::cli::cluster_drill::{ClusterAccess, ClusterDrillOptions, run};
    let opts = ClusterDrillOptions {
        file: args.file,
        namespace: args.namespace,
        report: args.report,
        junit: args.junit,
        heartbeat: Some(args.heartbeat),
        timeout: args
            .timeout
            .unwrap_or(natsregion::cli::cluster_drill::DEFAULT_TIMEOUT),
        ..Default::default()
    };
    let access = ClusterAccess {
        kubeconfig: args.kubeconfig,
        context: args.context,
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let outcome = runtime.block_on(async {
        let client = access.client().await?;
        run(client, &opts).await.map_err(|e| e.to_string())
    });
    match outcome {
        Ok(o) => drill_exit(
            print_result(&o.table(), &o.document(), args.output),
            o.passed(),
        ),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// A drill's exit code: 0 passed, 1 a claim did not pass, 2 the result
/// could not be printed (or, elsewhere, the drill could not run).
fn drill_exit(printed: bool, passed: bool) -> ExitCode {
    match (printed, passed) {
        (false, _) => ExitCode::from(2),
        (true, true) => ExitCode::SUCCESS,
        (true, false) => ExitCode::from(1),
    }
}

fn local_drill(args: DrillArgs) -> ExitCode {
    let cluster_only = [
        ("--namespace", args.namespace.is_some()),
        ("--context", args.context.is_some()),
        ("--kubeconfig", args.kubeconfig.is_some()),
        ("--timeout", args.timeout.is_some()),
    ];
    if let Some((flag, _)) = cluster_only.iter().find(|(_, set)| *set) {
        eprintln!("{flag} is for cluster drills (without --local)");
        return ExitCode::from(2);
    }
    let opts = natsregion::cli::local_drill::LocalDrillOptions {
        file: args.file,
        report: args.report,
        keep_dirs: args.keep_dirs,
        progress: true,
        repeat: args.repeat,
        junit: args.junit,
        heartbeat: Some(args.heartbeat),
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(natsregion::cli::local_drill::run(&opts)) {
        Ok(reports) => {
            let printed = if let [report] = reports.as_slice() {
                let table = natsregion::drill::report::table(report);
                print_result(&table, report, args.output)
            } else {
                let summary = natsregion::drill::campaign::CampaignSummary::of(&reports);
                print_result(&summary.table(), &summary, args.output)
            };
            drill_exit(printed, reports.iter().all(|r| r.passed()))
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

/// `natsregion validate FILE...`: 0 all valid, 2 a refusal, 1 unreadable.
fn validate(files: Vec<PathBuf>) -> ExitCode {
    let mut unreadable = false;
    let mut texts = Vec::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => texts.push((file.display().to_string(), text)),
            Err(e) => {
                eprintln!("cannot read {}: {e}", file.display());
                unreadable = true;
            }
        }
    }
    let checks = natsregion::cli::drill_file::check_files(&texts);
    for c in &checks {
        for line in &c.refusals {
            println!("{line}");
        }
        if c.refusals.is_empty() {
            let skipped = match c.skipped {
                0 => String::new(),
                n => format!(", {n} other document(s) skipped"),
            };
            println!(
                "{}: valid ({} RegionMirror, {} PartitionDrill{skipped})",
                c.path, c.regions, c.drills
            );
        }
    }
    if unreadable {
        ExitCode::FAILURE
    } else if checks.iter().any(|c| !c.refusals.is_empty()) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
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
        Command::Drill(args) if args.local => local_drill(args),
        Command::Drill(args) => {
            if args.keep_dirs || args.repeat > 1 {
                eprintln!("--keep-dirs and --repeat are for --local drills");
                return ExitCode::from(2);
            }
            cluster_drill(args)
        }
        Command::Validate { files } => validate(files),
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "natsregion",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
    }
}
