//! `report`: see `report --help` and docs/alerts.md.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match report::parse_args(std::env::args().skip(1)) {
        Ok(report::Command::Help) => {
            print!("{}", report::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(report::Command::Run(args)) => args,
        Err(e) => {
            eprintln!("report: {e}\n\n{}", report::USAGE);
            return ExitCode::from(2);
        }
    };
    let now = chrono::Utc::now().timestamp_millis();
    match report::run(&args, now).await {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("report: {e}");
            ExitCode::FAILURE
        }
    }
}
