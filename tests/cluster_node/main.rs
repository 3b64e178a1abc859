//! The user's cluster path on a real one-node Kubernetes (testenv::node):
//! real kubelet, containerd, kube-proxy, kube-router and CoreDNS, the
//! operator as a pod from the locally assembled image, installed by Helm.
//!
//! One test runs every scenario in sequence on one cluster: starting a node
//! takes a while and only one can run per machine. Skips (and says why) when
//! not root or the node's tools are missing (`make tools` as root installs
//! them). Ends with the sweep: after the node is dropped nothing it made is
//! left on the host.

mod drills;
mod operator;
mod region;
mod rolling;
mod scenarios;
mod steps;
mod util;

use std::time::Instant;

use natsregion::testenv::node::Node;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_cluster() {
    if let Err(e) = Node::preflight() {
        eprintln!("SKIPPED cluster tests: {e}");
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "natsregion=info".into()),
        )
        .with_test_writer()
        .try_init();
    let started = Instant::now();
    let mut node = Node::start()
        .await
        .unwrap_or_else(|e| panic!("one-node cluster: {e}"));
    let phases: Vec<String> = node
        .startup
        .iter()
        .map(|(p, d)| format!("{p} {:.1}s", d.as_secs_f64()))
        .collect();
    println!(
        "cluster started in {:.1}s ({})",
        started.elapsed().as_secs_f64(),
        phases.join(", ")
    );

    let outcome = scenarios::run_all(&mut node).await;
    println!("{}", node.pods_ran().summary());
    let pods = node.pods_ran().count();

    let before = node.host_before().clone();
    let root = node.root().to_path_buf();
    let logs = node.log_dirs();
    if outcome.is_err() {
        keep_logs(&logs);
    }
    let stopping = Instant::now();
    drop(node);
    println!(
        "cluster removed in {:.1}s",
        stopping.elapsed().as_secs_f64()
    );
    let left = Node::sweep(&before, &root);

    if let Err(e) = outcome {
        panic!("{e}");
    }
    assert!(pods > 0, "no pod ran");
    assert!(
        left.is_empty(),
        "the node left things behind:\n{}",
        left.join("\n")
    );
}

/// Copies the logs out of the node's directory before it goes; nested ones
/// (pod logs) flattened into one name each.
fn keep_logs(dirs: &[std::path::PathBuf]) {
    let keep = std::env::temp_dir().join("natsregion-cluster-logs");
    let _ = std::fs::remove_dir_all(&keep);
    let _ = std::fs::create_dir_all(&keep);
    for dir in dirs {
        copy_flat(dir, dir, &keep);
    }
    eprintln!("logs kept in {}", keep.display());
}

fn copy_flat(root: &std::path::Path, dir: &std::path::Path, keep: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        if path.is_dir() {
            copy_flat(root, &path, keep);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let name = rel.to_string_lossy().replace('/', "__");
            let _ = std::fs::copy(&path, keep.join(name));
        }
    }
}
