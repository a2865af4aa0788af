//! Shared helpers of the integration and end-to-end tests.

pub mod browser;
pub mod cdp;
pub mod harness;
pub mod lambda_process;
pub mod model;
pub mod population;

pub use local_runner::moto;

pub mod sender_world;
pub mod soak;
use local_runner::moto::MotoServer;
use std::sync::Arc;

/// The moto server shared by the tests running in this process (stopped with the last of them).
pub fn shared_moto() -> Arc<MotoServer> {
    match MotoServer::shared() {
        Ok(server) => server,
        Err(e) => panic!("cannot start moto: {e}"),
    }
}

pub mod stack;
