//! Where the external servers (nats-server, toxiproxy-server, kube-apiserver,
//! etcd, helm) live. `tools/install.sh` builds them into a cache outside the
//! clone; the Makefile exports that directory as `NATSREGION_TOOLS_BIN`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[error("{name} not found (looked in {looked}); run `make tools` or tools/install.sh to build it")]
pub struct MissingTool {
    pub name: String,
    pub looked: String,
}

/// Directories searched for a tool, in order.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("NATSREGION_TOOLS_BIN") {
        dirs.push(PathBuf::from(dir));
    }
    let cache = std::env::var_os("NATSREGION_TOOLS_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("natsregion/tools"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/natsregion/tools"))
        });
    if let Some(cache) = cache {
        dirs.push(cache.join("bin"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs
}

/// Absolute path of a tool binary.
pub fn binary(name: &str) -> Result<PathBuf, MissingTool> {
    let dirs = search_dirs();
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| MissingTool {
            name: name.to_string(),
            looked: dirs
                .iter()
                .take(2)
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
                + ", PATH",
        })
}
