//! `ops`: the operator CLI. `ops report` (see `ops report --help`, docs/alerts.md),
//! `ops doctor` (see `ops doctor --help`, docs/operate.md) and `ops redrive` (`ops redrive --help`).

use std::process::ExitCode;

const USAGE: &str = "\
Usage: ops <command> [options]

Commands:
  report    the compliance report of the opt-in table (ops report --help)
  doctor    the preflight checklist of a stack, ✔ or ✘ with the fix (ops doctor --help)
  redrive   move dead-letter messages back, refusing what must not be sent (ops redrive --help)
";

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let now = chrono::Utc::now().timestamp_millis();
    match command.as_deref() {
        Some("report") => report(args.collect(), now).await,
        Some("doctor") => doctor(args.collect(), now).await,
        Some("redrive") => redrive(args.collect(), now).await,
        Some("-h" | "--help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("ops: unknown command {other:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

async fn report(args: Vec<String>, now: i64) -> ExitCode {
    let args = match ops::parse_args(args) {
        Ok(ops::Command::Help) => {
            print!("{}", ops::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(ops::Command::Run(args)) => args,
        Err(e) => {
            eprintln!("ops report: {e}\n\n{}", ops::USAGE);
            return ExitCode::from(2);
        }
    };
    match ops::run(&args, now).await {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ops report: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn doctor(args: Vec<String>, now: i64) -> ExitCode {
    use ops::doctor;
    let args = match doctor::parse_args(args) {
        Ok(doctor::Command::Help) => {
            print!("{}", doctor::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(doctor::Command::Run(args)) => args,
        Err(e) => {
            eprintln!("ops doctor: {e}\n\n{}", doctor::USAGE);
            return ExitCode::from(2);
        }
    };
    match doctor::run(&args, now).await {
        Ok(report) => {
            print!("{}", report.render());
            if report.blocks_go_live() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("ops doctor: {e}");
            ExitCode::from(2)
        }
    }
}

async fn redrive(args: Vec<String>, now: i64) -> ExitCode {
    use ops::redrive;
    let args = match redrive::parse_args(args) {
        Ok(redrive::Command::Help) => {
            print!("{}", redrive::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(redrive::Command::Run(args)) => args,
        Err(e) => {
            eprintln!("ops redrive: {e}\n\n{}", redrive::USAGE);
            return ExitCode::from(2);
        }
    };
    match redrive::run(&args, now).await {
        Ok(outcome) => {
            print!("{}", outcome.text);
            if outcome.blocked {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("ops redrive: {e}");
            ExitCode::FAILURE
        }
    }
}
