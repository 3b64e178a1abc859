//! Small helpers the scenarios share: applying YAML, reading objects as
//! JSON (the tests read status the way a user's kubectl does), waiting. They
//! live in `natsregion::testenv::node::cluster`, which the cluster benchmark
//! uses too.

pub use natsregion::testenv::node::cluster::{
    Outcome, delete, drill_resource, err, get_json, pod_log_lines, region_resource, secs, wait_for,
};
