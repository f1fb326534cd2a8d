//! Command-line pieces both binaries share: the `probe` subcommand, and
//! printing settings or start-up errors the same way.
//!
//! Depends on `probe` only.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde::Serialize;

/// Subcommands besides serving.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// GET a URL and exit 0 on a 2xx answer (for health checks in images
    /// without a shell or curl).
    Probe {
        /// For example http://127.0.0.1:8000/readyz
        url: String,
        /// Give up after this long.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Do not print the body.
        #[arg(long, short)]
        quiet: bool,
    },
}

impl Command {
    /// Runs the subcommand to completion.
    pub fn run(&self) -> ExitCode {
        match self {
            Command::Probe {
                url,
                timeout,
                quiet,
            } => crate::probe::run_cli(url, *timeout, *quiet),
        }
    }
}

/// `--print-config`: the effective settings as pretty JSON on stdout.
pub fn print_settings(settings: &impl Serialize) -> ExitCode {
    match serde_json::to_string_pretty(settings) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot print the settings: {e}");
            ExitCode::FAILURE
        }
    }
}
