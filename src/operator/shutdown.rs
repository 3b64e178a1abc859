//! The stop signal every controller waits on. A leaf, so the controllers and
//! the runner that starts them do not import each other for it.

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

/// Resolves when the controllers must stop (SIGTERM, Ctrl-C, lost leadership,
/// or a test saying so). Cloneable, so every controller can wait on it.
pub type Shutdown = Shared<BoxFuture<'static, ()>>;

/// Makes a `Shutdown` out of any future.
pub fn shutdown_on(fut: impl std::future::Future<Output = ()> + Send + 'static) -> Shutdown {
    fut.boxed().shared()
}
