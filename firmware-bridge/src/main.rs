//! makrcave-bridge: runs next to a machine (on a Raspberry Pi, say) and connects it to
//! makrcave. The command line only; everything else is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use makrcave_bridge::bridge;
use makrcave_bridge::check::run_checks;
use makrcave_bridge::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "makrcave-bridge",
    version,
    about = "Connects a machine to makrcave: relay, card reader, serial controller, offline allowlist",
    long_about = "Connects a machine to makrcave over MQTT and HTTP. Every setting is in one TOML \
                  file; see makrcave-bridge.example.toml for all of them. Logs go to stderr; set \
                  RUST_LOG (e.g. RUST_LOG=info) to choose how much."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Action>,
    /// The configuration file (for `run`, the default action).
    #[arg(long, short, env = "MAKRCAVE_BRIDGE_CONFIG", global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Run the bridge (the default).
    Run,
    /// Test the serial port, relay, broker, server and allowlist key, one line each; exits
    /// non-zero when anything is wrong.
    Check,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let Some(path) = cli.config else {
        eprintln!("makrcave-bridge: --config FILE is required (see --help)");
        return ExitCode::from(2);
    };
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("makrcave-bridge: {err}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Action::Run) {
        Action::Check => {
            let lines = run_checks(&config).await;
            for line in &lines {
                println!("{line}");
            }
            if lines.iter().all(|l| l.outcome.is_ok()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Action::Run => {
            if let Err(err) = bridge::run(config, shutdown_signal()).await {
                tracing::error!(error = %err, "cannot start");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
    }
}

/// SIGTERM (systemd stop) or Ctrl-C.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!(error = %err, "no SIGTERM handler; only Ctrl-C stops the bridge cleanly");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
