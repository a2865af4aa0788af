//! `make size` and `make bench` figure (issue 7): the size of each function's stripped release
//! binary, beside the goal (< 8 MB, in MiB as printed).
//!
//! Per function, what is measured is `target/lambda/<function>/bootstrap` when it exists: the file
//! Lambda runs, as `cargo lambda build --release` (`make size`) leaves it. Otherwise it is the plain
//! `target/release/<function>` (`cargo build --release`, `make package`). Each row names which one
//! it measured and its architecture; when both exist the plain binary follows as a reference.
//! Both come from the workspace's release profile (which strips symbols); cargo-lambda adds
//! `-C target-cpu` for its target and links with zig, so the two differ by a few percent.

use std::path::{Path, PathBuf};

const GOAL_MB: f64 = 8.0;
const FUNCTIONS: [&str; 4] = ["http-api", "sender", "deadline-alerts", "event-sender"];

fn main() {
    println!();
    println!("binary size — stripped release binaries, goal < {GOAL_MB} MB");
    // This bench runs as `target/release/deps/binary_size-…`.
    let Some(release) = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
    else {
        println!("  cannot locate the target directory");
        return;
    };
    let lambda = release
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("lambda");
    for function in FUNCTIONS {
        let bootstrap = lambda.join(function).join("bootstrap");
        let plain = release.join(function);
        match (measure(&bootstrap), measure(&plain)) {
            (Some(built), reference) => {
                row(function, &built, "cargo lambda build", true);
                if let Some(plain) = reference {
                    row("", &plain, "plain cargo build (reference)", false);
                }
            }
            (None, Some(plain)) => row(function, &plain, "plain cargo build", true),
            (None, None) => println!(
                "  {function:<16} not built at {} nor {}: run `make size` or `make package`",
                bootstrap.display(),
                plain.display()
            ),
        }
    }
    println!();
}

struct Binary {
    bytes: u64,
    arch: &'static str,
}

fn measure(path: &Path) -> Option<Binary> {
    let bytes = std::fs::metadata(path).ok()?.len();
    Some(Binary {
        bytes,
        arch: elf_arch(path),
    })
}

/// The ELF `e_machine` field (bytes 18–19, little-endian on both Lambda architectures).
fn elf_arch(path: &Path) -> &'static str {
    use std::io::Read;
    let mut header = [0u8; 20];
    let read = std::fs::File::open(path).and_then(|mut file| file.read_exact(&mut header));
    if read.is_err() || header[..4] != *b"\x7fELF" {
        return "not ELF";
    }
    match u16::from_le_bytes([header[18], header[19]]) {
        62 => "x86_64",
        183 => "arm64",
        _ => "other arch",
    }
}

fn row(function: &str, binary: &Binary, source: &str, judged: bool) {
    let mb = binary.bytes as f64 / (1024.0 * 1024.0);
    let verdict = match (judged, mb < GOAL_MB) {
        (false, _) => String::new(),
        (true, true) => format!("   goal < {GOAL_MB} MB: ok"),
        (true, false) => format!("   goal < {GOAL_MB} MB: OVER"),
    };
    println!(
        "  {function:<16} {mb:>6.2} MB  ({:>9} bytes)  {source}, {}{verdict}",
        binary.bytes, binary.arch
    );
}
