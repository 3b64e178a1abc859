//! The RegionMirror controller.

pub mod names;

use std::sync::Arc;

use crate::operator::context::Context;
use crate::operator::run::Shutdown;

pub async fn controller(_ctx: Arc<Context>, shutdown: Shutdown) {
    shutdown.await;
}
