//! `natsregion-bench`: the benchmarks, a binary of their own so the shipped
//! `natsregion` holds none of them nor the test environment they start
//! (built only with `--features testkit`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "natsregion-bench",
    about = "Measure the checker, the producer, a soak drill and catch-up after heal, the operator, or a newcomer's make demo; prints figures",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Smaller publish counts and one catch-up drill per interval.
    #[arg(long)]
    quick: bool,
    #[command(subcommand)]
    target: Option<Target>,
}

#[derive(Subcommand)]
enum Target {
    /// A local 3-zone drill of many messages as fast as PubAcks return: rate
    /// (and its ratio to plain R3 publish), peak RSS and growth per message.
    Soak {
        /// Messages of the measured drill (a drill of a fifth of them runs
        /// first, for the growth per message at the margin).
        #[arg(long, default_value_t = 200_000)]
        messages: u64,
    },
    /// Catch-up after a heal on a 3-server mirror zone (R3 mirror): holds of
    /// 25 s with and without the drill's prompt resume, 5 s and 14 s
    /// without; each run with the mirror's consumer retries from the debug logs.
    Resume {
        /// Drills per mode.
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// Only the mode issue 24's local goal is about (hold 25 s, resume).
        #[arg(long)]
        resume_only: bool,
    },
    /// Drills' catch-up on the one-node Kubernetes (root; one node per
    /// machine): N networkPolicy drills (examples/drill.yaml), then the
    /// region rolled to `leafnode.proxy: toxiproxy` and N toxiproxy drills
    /// (examples/drill-toxiproxy.yaml); run tools/images.sh first.
    ClusterCatchup {
        /// Drills per backend.
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// `fault.holdSeconds` of every drill.
        #[arg(long, default_value_t = 25)]
        hold_seconds: u32,
        /// Only this backend (networkPolicy or toxiproxy).
        #[arg(long)]
        only: Option<String>,
        /// Drills without the add-temporary-zone step (it comes after the
        /// catch-up is measured).
        #[arg(long)]
        no_temporary_zone: bool,
    },
    /// A mirror's catch-up rate across slow leafnode links once its
    /// consumer exists (3-server mirror zone, R3 mirror): messages/s, payload
    /// and on-the-wire bytes/s, ratio to the bandwidth cap.
    CatchupRate {
        /// Latency toxic per direction, ms (0: none).
        #[arg(long, default_value_t = 80)]
        latency_ms: u32,
        /// Bandwidth toxic per direction, Toxiproxy KB/s = 1000 B/s (0: none).
        #[arg(long, default_value_t = 512)]
        rate_kb: u32,
        /// Payload sizes in bytes.
        #[arg(long, value_delimiter = ',', default_value = "128,1024,16384")]
        payloads: Vec<usize>,
        /// Backlog sizes in messages.
        #[arg(long, value_delimiter = ',', default_value = "2000,20000")]
        backlogs: Vec<u64>,
        /// Runs per payload and backlog.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Skip a payload and backlog of more payload MiB than this.
        #[arg(long, default_value_t = 32)]
        max_backlog_mib: u64,
        /// Bodies of one repeated byte (the leafnode link compresses them)
        /// instead of random bytes.
        #[arg(long)]
        compressible: bool,
    },
    /// Only the publish benchmark: the drill's producer against plain
    /// async-nats publish, with and without a Nats-Msg-Id per message.
    Publish {
        #[arg(long, default_value_t = 20_000)]
        messages: u64,
        #[arg(long, default_value_t = natsregion::bench::PUBLISH_ROUNDS)]
        rounds: usize,
    },
    /// The operator (the `natsregion` binary, as a subprocess) under N
    /// RegionMirrors on a test API server: time to children and statuses,
    /// peak and idle RSS, writes once steady.
    Operator {
        /// RegionMirrors to apply, 3 managed zones each.
        #[arg(long, default_value_t = 100)]
        regions: usize,
        /// Length of the steady period whose API writes are counted.
        #[arg(long, default_value_t = 60)]
        quiet_seconds: u64,
        /// The operator's `--status-refresh-seconds`.
        #[arg(long, default_value_t = 30)]
        status_refresh_seconds: u64,
        /// The operator binary to measure (default: `natsregion` beside this one;
        /// `cargo build --release` first).
        #[arg(long)]
        operator: Option<PathBuf>,
        /// An argument for `natsregion run` (repeatable), e.g.
        /// `--operator-arg=--max-concurrent-reconciles=16`.
        #[arg(long = "operator-arg", allow_hyphen_values = true)]
        operator_args: Vec<String>,
    },
    /// `make demo` in a fresh clone of this repository's HEAD (an empty
    /// target/, the tools from their cache): the newcomer's first command.
    Newcomer {
        /// The repository to clone.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let out = match cli.target {
        Some(Target::Soak { messages }) => {
            use natsregion::bench::soak;
            runtime
                .block_on(soak::run(&soak::SoakOptions { messages }))
                .map(|figure| soak::table(&figure))
                .map_err(|e| e.to_string())
        }
        Some(Target::Resume { runs, resume_only }) => {
            use natsregion::bench::resume;
            runtime
                .block_on(resume::run(runs, &resume::modes(resume_only)))
                .map(|figures| resume::table(&figures))
                .map_err(|e| e.to_string())
        }
        Some(Target::ClusterCatchup {
            runs,
            hold_seconds,
            only,
            no_temporary_zone,
        }) => {
            use natsregion::bench::cluster_catchup as bench;
            let opts = bench::ClusterOptions {
                runs,
                hold_seconds,
                only,
                no_temporary_zone,
            };
            runtime
                .block_on(bench::run(&opts))
                .map(|figures| bench::table(&figures))
                .map_err(|e| e.to_string())
        }
        Some(Target::CatchupRate {
            latency_ms,
            rate_kb,
            payloads,
            backlogs,
            runs,
            max_backlog_mib,
            compressible,
        }) => {
            use natsregion::bench::catchup_rate as bench;
            let opts = bench::RateOptions {
                latency_ms,
                rate_kb,
                payloads,
                backlogs,
                runs,
                max_backlog_bytes: max_backlog_mib * 1024 * 1024,
                compressible,
            };
            runtime
                .block_on(bench::run(&opts))
                .map(|figures| bench::table(&opts, &figures))
                .map_err(|e| e.to_string())
        }
        Some(Target::Publish { messages, rounds }) => runtime
            .block_on(natsregion::bench::publish::run(messages, rounds))
            .map(|figure| natsregion::bench::publish::table(&figure))
            .map_err(|e| e.to_string()),
        Some(Target::Operator {
            regions,
            quiet_seconds,
            status_refresh_seconds,
            operator,
            operator_args,
        }) => {
            use natsregion::bench::operator as bench;
            let opts = bench::OperatorBenchOptions {
                regions,
                quiet_seconds,
                status_refresh_seconds,
                operator,
                operator_args,
            };
            runtime
                .block_on(bench::run(&opts))
                .map(|figures| bench::table(&figures))
                .map_err(|e| e.to_string())
        }
        Some(Target::Newcomer { repo }) => {
            use natsregion::bench::newcomer;
            newcomer::run(&repo)
                .map(|figures| newcomer::table(&figures))
                .map_err(|e| e.to_string())
        }
        None => {
            let opts = natsregion::bench::BenchOptions { quick: cli.quick };
            runtime
                .block_on(natsregion::bench::run(&opts))
                .map(|summary| natsregion::bench::table(&summary))
                .map_err(|e| e.to_string())
        }
    };
    match out {
        Ok(table) => {
            println!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
