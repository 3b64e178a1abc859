use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Run the operator against the cluster in the current kubeconfig.
    Run,
    /// Run a partition drill.
    Drill {
        /// Run every zone as local nats-server processes (no Kubernetes).
        #[arg(long)]
        local: bool,
        /// YAML file with a RegionMirror and a PartitionDrill.
        file: PathBuf,
        /// Write the full report as JSON here (a timeline SVG is written beside it).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Keep the zones' configs, logs and stores for a post-mortem.
        #[arg(long)]
        keep_dirs: bool,
    },
    /// Measure the checker, the producer and catch-up after heal; prints figures.
    Bench {
        /// Smaller publish counts and one catch-up drill per interval.
        #[arg(long)]
        quick: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "natsregion=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
        Command::Run => {
            tracing::info!("operator controllers are not built yet; exiting cleanly");
            ExitCode::SUCCESS
        }
        Command::Bench { quick } => {
            let opts = natsregion::bench::BenchOptions { quick };
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            match runtime.block_on(natsregion::bench::run(&opts)) {
                Ok(summary) => {
                    println!("{}", natsregion::bench::table(&summary));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Drill {
            local,
            file,
            report,
            keep_dirs,
        } => {
            if !local {
                eprintln!(
                    "only --local drills run from the command line; apply a PartitionDrill to run one in a cluster"
                );
                return ExitCode::from(2);
            }
            let opts = natsregion::cli::local_drill::LocalDrillOptions {
                file,
                report,
                keep_dirs,
                progress: true,
            };
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            match runtime.block_on(natsregion::cli::local_drill::run(&opts)) {
                Ok(report) => {
                    println!("{}", natsregion::drill::report::table(&report));
                    if report.passed() {
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
