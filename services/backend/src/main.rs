//! `backend`: parse flags, load settings, start logging, run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use launch::settings::Sources;

/// mimalloc: allocation and freeing were about a sixth of the proxy's CPU
/// with the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A dummy upstream for load tests: `GET /api/data` answers JSON naming the
/// instance; `/healthz`, `/readyz`, `/metrics` and `/api/stats/{1m,5m,1h}`
/// as on the gateway; optional injected latency and errors, changeable at
/// run time with `GET`/`PUT`/`DELETE /api/faults` (also hang, reset or
/// refuse connections; PUT and DELETE need admin.token when it is set).
///
/// Settings come from built-in defaults, then --config FILE, then PORT, then
/// BACKEND__SECTION__KEY variables (for example BACKEND__FAULTS__ERROR_RATE=0.1
/// or BACKEND__ADMIN__TOKEN=...).
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    /// YAML or TOML settings file.
    #[arg(long, short, value_name = "PATH", env = "BACKEND_CONFIG")]
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
    let settings = match backend::config::Settings::load(&Sources::from_process(cli.config)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("backend: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.print_config {
        return launch::cli::print_settings(&settings);
    }
    let telemetry = observability::telemetry::init(&settings.log, "backend");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Log lines queued while a worker was busy go out in one write.
        .on_thread_park(observability::log_writer::flush_thread)
        .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("backend: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let address = format!("{}:{}", settings.listen.host, settings.listen.port);
        let listener = match tokio::net::TcpListener::bind(&address).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("backend: cannot listen on {address}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match backend::run(listener, settings, serving::shutdown::signal()).await {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("backend: {e}");
                ExitCode::FAILURE
            }
        }
    });
    // Flush the spans of the last requests before exiting.
    telemetry.shutdown();
    code
}
