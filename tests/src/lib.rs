//! Shared helpers of the integration and end-to-end tests: the test worlds ([`worlds`]), the model
//! of the world around the product ([`model`]), the soak, a test browser and Chromium driver.
//! The tests themselves are three binaries, one per kind (tests/tests/{moto,e2e,contract}), plus
//! the soak (tests/tests/soak.rs): the AWS SDK is linked four times rather than once per file.

pub mod browser;
pub mod cdp;
pub mod event_receiver;
pub mod lambda_process;
pub mod model;
pub mod population;
pub mod soak;
pub mod worlds;

pub use local_runner::moto;

use local_runner::moto::MotoServer;
use std::sync::Arc;

/// The moto server shared by the tests running in this process (stopped with the last of them).
pub fn shared_moto() -> Arc<MotoServer> {
    match MotoServer::shared() {
        Ok(server) => server,
        Err(e) => panic!("cannot start moto: {e}"),
    }
}

/// The name the test harness gives the test `function` declared in the module `module_path` (what
/// `module_path!()` says there): the module path without the binary's crate, as `--exact` wants
/// it. Tests that re-run one test of their binary in a child process name it with this, so the
/// name follows the module when files move between binaries.
pub fn test_name(module_path: &str, function: &str) -> String {
    match module_path.split_once("::") {
        Some((_, module)) => format!("{module}::{function}"),
        None => function.to_owned(),
    }
}
