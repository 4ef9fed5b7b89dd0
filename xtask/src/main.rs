//! `cargo xtask`: project automation, the same command locally and in CI.
//!
//! - `cargo xtask assets [--dir DIR] [--mirror DIR] [--offline]`: fetch and verify
//!   the model, ONNX Runtime and voices into the assets cache (see [`assets`]).
//! - `cargo xtask caws <validate|static|unit|mutation|contracts|integration|perf|gates|selftest>`:
//!   the CAWS quality gates, provenance and trust score (see [`caws`]).
//! - `cargo xtask loadtest [--backend URL] [--edge URL] [--pid NAME=PID]... [--soak SECS]`:
//!   the k6 perf gate against running servers (see [`loadtest`]).

mod assets;
mod caws;
mod loadtest;
mod schema;
mod waivers;

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask <command>\n\n\
         commands:\n  \
         assets [--dir DIR] [--mirror DIR] [--offline]   fetch + verify model assets\n  \
         assets-path                                      print the assets dir\n  \
         caws <gate|gates|selftest>                        CAWS quality gates\n  \
         loadtest [--backend URL] [--edge URL] [--pid NAME=PID]... [--iterations N]\n  \
                  [--levels 1,2,4,8] [--soak SECS --soak-vus N]     k6 perf gate"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        return usage();
    };
    let result = match cmd.as_str() {
        "assets" => assets::Options::parse(&args[1..]).and_then(|o| assets::run(&o)),
        "caws" => caws::main(&args[1..]),
        "loadtest" => loadtest::Options::parse(&args[1..]).and_then(|o| loadtest::run(&o)),
        "assets-path" => {
            println!(
                "{}",
                assets::Options::parse(&[])
                    .map(|o| o.dir)
                    .unwrap_or_default()
            );
            Ok(())
        }
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {cmd}: error: {e}");
            ExitCode::FAILURE
        }
    }
}
