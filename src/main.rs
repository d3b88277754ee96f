//! The `makrcave` command: parses the command line and hands over to the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use makrcave::config::{Settings, SettingsArgs};
use makrcave::domain::access::Role;
use makrcave::web::auth::JwtKeys;
use makrcave::Application;

#[derive(Parser)]
#[command(name = "makrcave", version, about = "The real-time shop floor of a makerspace or print farm")]
struct Cli {
    #[command(flatten)]
    settings: SettingsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run makrcave: HTTP, WebSocket, MQTT ingest and the machine actors.
    Serve {
        /// Seed a demo makerspace with simulated machines publishing live telemetry.
        #[arg(long, env = "MAKRCAVE_DEMO")]
        demo: bool,
    },
    /// Print a token signed with the configured secret (for scripts, tests and first setup).
    Token {
        /// The user id (`sub`).
        #[arg(long)]
        sub: String,
        /// A role: super_admin, admin, makerspace_admin, service_provider, member, store_customer,
        /// service (another service, such as the MakrX Store).
        #[arg(long, value_parser = parse_role)]
        role: Vec<Role>,
        /// A makerspace the user belongs to (repeatable).
        #[arg(long)]
        makerspace: Vec<String>,
        /// Hours until the token expires.
        #[arg(long, default_value_t = 24)]
        hours: i64,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("unknown role {s:?}"))
}

fn init_logging(filter: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::util::SubscriberInitExt;
    // Colours only on a terminal: a log file or journal gets plain lines.
    makrcave::logging::subscriber(filter, std::io::stderr, std::io::stderr().is_terminal()).init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = Settings::load(&cli.settings).context("invalid configuration")?;
    init_logging(&settings.log);
    match cli.command {
        Command::Token { sub, role, makerspace, hours } => {
            anyhow::ensure!(!role.is_empty(), "give at least one --role");
            anyhow::ensure!(hours > 0, "--hours must be positive");
            let keys = JwtKeys::hs256(&settings.jwt_secret()?);
            println!("{}", keys.mint(&sub, &role, &makerspace, chrono::Duration::hours(hours)));
            Ok(())
        }
        Command::Serve { demo } => {
            settings.demo = demo;
            actix_web::rt::System::new().block_on(async move {
                let app = Application::build(settings).await.context("makrcave could not start")?;
                app.run_until_stopped().await.context("HTTP server failed")
            })
        }
    }
}
