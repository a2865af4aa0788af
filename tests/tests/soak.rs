//! Load with faults through the whole local stack (see `integration_tests::soak`).
//! `make test` runs the small soak (200 opt-ins); `make soak` the full one (2,000).

use integration_tests::soak::{SoakPlan, run};
use std::path::PathBuf;

fn sender_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sender-process"))
}

fn opt_ins_from_env(default: usize) -> usize {
    std::env::var("SOAK_OPT_INS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rate_from_env(default: f64) -> f64 {
    std::env::var("SOAK_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_opt_ins_under_faults_each_end_once_with_at_most_one_message() {
    let report = run(SoakPlan::new(200, 10.0, sender_binary())).await;
    eprintln!("{report}");
    assert!(report.violations.is_empty(), "{report}");
    assert!(report.kill.is_some_and(|k| k.claimed > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the full soak: `make soak` (SOAK_OPT_INS, SOAK_RATE)"]
async fn full_soak() {
    let report = run(SoakPlan::new(
        opt_ins_from_env(2_000),
        rate_from_env(10.0),
        sender_binary(),
    ))
    .await;
    println!("{report}");
    assert!(report.violations.is_empty(), "{report}");
}
