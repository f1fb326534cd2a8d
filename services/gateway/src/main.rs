//! `gateway`: parse flags, load settings, start logging, run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// mimalloc: allocation and freeing were about a sixth of the proxy's CPU
/// with the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use common::settings::Sources;

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
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Probe {
        url,
        timeout,
        quiet,
    }) = &cli.command
    {
        return common::probe::run_cli(url, *timeout, *quiet);
    }
    let settings = match gateway::config::Settings::load(&Sources::from_process(cli.config)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gateway: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.print_config {
        println!(
            "{}",
            serde_json::to_string_pretty(&settings).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let telemetry = common::telemetry::init(&settings.log.common(), "gateway");
    let code = match gateway::startup::run_workers(settings, common::shutdown::signal()) {
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
