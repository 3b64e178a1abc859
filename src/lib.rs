//! natsregion: multi-zone NATS JetStream regions and the partition drills that
//! prove them. Data flows one way: spec → plan → (Kubernetes objects | local
//! processes) → NATS → observations → verdicts → (status | report).

pub mod api;
pub mod backoff;
#[cfg(feature = "testkit")]
pub mod bench;
pub mod cli;
pub mod drill;
pub mod fault;
pub mod local;
pub mod meta;
pub mod nats;
pub mod operator;
pub mod password;
pub mod plan;
#[cfg(feature = "testkit")]
pub mod testenv;
pub mod tls;
pub mod tools;
