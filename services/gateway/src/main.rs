//! `gateway`: parse flags, load settings, start logging, run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use launch::settings::Sources;

/// mimalloc: allocation and freeing were about a sixth of the proxy's CPU
/// with the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An API gateway for load tests: proxies every request to a backend chosen
/// by the load balancer. Backends are registered at run time with
/// POST /api/servers (or listed in the settings); stats at
/// /api/stats/{1m,5m,1h}, Prometheus metrics at /metrics, health at /healthz
/// and /readyz.
///
/// Settings come from built-in defaults, then --config FILE, then PORT, then
/// GATEWAY__SECTION__KEY variables (for example GATEWAY__BALANCER__STRATEGY=least_outstanding).
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    /// YAML or TOML settings file.
    #[arg(long, short, value_name = "PATH", env = "GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective settings as JSON and exit.
    #[arg(long)]
    print_config: bool,
    #[command(subcommand)]
    command: Option<launch::cli::Command>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(command) = &cli.command {
        return command.run();
    }
    let settings = match gateway::config::Settings::load(&Sources::from_process(cli.config)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gateway: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.print_config {
        return launch::cli::print_settings(&settings);
    }
    let telemetry = observability::telemetry::init(&settings.log.telemetry(), "gateway");
    let code = match gateway::startup::run_workers(settings, serving::shutdown::signal()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: {e}");
            ExitCode::FAILURE
        }
    };
    // Flush the spans of the last requests before exiting.
    telemetry.shutdown();
    code
}
