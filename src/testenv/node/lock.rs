//! One node per machine. The node owns fixed names (its link, the pod
//! bridge, a cgroup, netfilter chains), and a second node starting beside
//! it would take them over: its `remove_stale` kills the first one's
//! kubelet and containerd mid-test. So a node holds an exclusive lock on
//! [`PATH`] for its whole life, taken before anything is touched; a second
//! one waits for it, then gives up naming the holder.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::super::Error;

/// Under `/run`: gone after a reboot, and only root (who runs nodes) writes it.
pub const PATH: &str = "/run/natsregion-node.lock";

/// A whole `make test` run of the cluster suite fits in it.
pub const WAIT: Duration = Duration::from_secs(45 * 60);

/// Held while it lives; the kernel drops the lock when the process dies,
/// so a killed run never leaves the machine locked.
#[derive(Debug)]
pub struct NodeLock {
    _file: File,
}

/// Takes the lock at `path`, waiting up to `wait` for whoever holds it.
pub async fn acquire(path: &Path, wait: Duration) -> Result<NodeLock, Error> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let started = Instant::now();
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                let holder = holder(&mut file);
                if started.elapsed() >= wait {
                    return Err(Error::NodeBusy {
                        holder,
                        waited: wait,
                    });
                }
                if !told {
                    tracing::warn!(%holder, "another one-node cluster runs on this machine; waiting for it to stop");
                    told = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::io(format!("lock {}", path.display()), e));
            }
        }
    }
    // Who holds it, for whoever waits next.
    let me = format!(
        "pid {} ({})",
        std::process::id(),
        std::env::args().next().unwrap_or_default()
    );
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(me.as_bytes()))
        .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    Ok(NodeLock { _file: file })
}

fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    match text.trim() {
        "" => "an unknown process".to_string(),
        t => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_node_waits_then_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.lock");
        let first = acquire(&path, Duration::ZERO).await.unwrap();
        let err = acquire(&path, Duration::from_millis(1500))
            .await
            .expect_err("the lock is held");
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(matches!(err, Error::NodeBusy { .. }), "{err:?}");
        drop(first);
        acquire(&path, Duration::ZERO)
            .await
            .expect("free once the holder is gone");
    }

    #[tokio::test]
    async fn a_waiting_node_starts_when_the_holder_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.lock");
        let first = acquire(&path, Duration::ZERO).await.unwrap();
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            drop(first);
        });
        acquire(&path, Duration::from_secs(30))
            .await
            .expect("taken once released");
        release.await.unwrap();
    }
}
