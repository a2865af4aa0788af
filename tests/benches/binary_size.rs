//! `make bench` figure (issue 7): the size of each function's release binary (the workspace's
//! release profile strips symbols, so this is the stripped size), beside the goal (< 8 MB).
//!
//! The binaries are the host's (`target/release`, x86_64 here), built by `make bench` before the
//! benches run; `sam build` ships the arm64 build of the same code via cargo-lambda.

const GOAL_MB: f64 = 8.0;

fn main() {
    println!();
    println!("binary size — stripped release binaries (host target)");
    let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
    else {
        println!("  cannot locate the target directory");
        return;
    };
    for function in ["http-api", "sender", "deadline-alerts"] {
        let path = dir.join(function);
        match std::fs::metadata(&path) {
            Ok(meta) => {
                let mb = meta.len() as f64 / (1024.0 * 1024.0);
                let verdict = if mb < GOAL_MB { "ok" } else { "OVER" };
                println!(
                    "  {function:<16} {mb:>6.2} MB  ({} bytes)   goal < {GOAL_MB} MB: {verdict}",
                    meta.len()
                );
            }
            Err(_) => println!(
                "  {function:<16} not built at {}: run `make bench` or `make package`",
                path.display()
            ),
        }
    }
    println!();
}
