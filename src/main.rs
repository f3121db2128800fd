//! The `kefu` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kefu::config::{Config, LogFormat};

#[derive(Parser)]
#[command(
    name = "kefu",
    version,
    about = "Customer-service assistant for shops selling inside WeChat"
)]
struct Cli {
    /// Config file (default ./kefu.toml; every key optional, KEFU_* variables override).
    #[arg(long, global = true, env = "KEFU_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the callback server.
    Serve {
        /// Validate the configuration and exit.
        #[arg(long)]
        check_config: bool,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEFU_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let given = cli.config.is_some();
    let path = cli.config.unwrap_or_else(|| PathBuf::from("kefu.toml"));
    let config = match Config::load(&path, given) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kefu: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Serve { check_config: true } => {
            println!(
                "configuration ok: listen {}, store {}, wecom {}, official account {}",
                config.listen,
                kefu::config::redact_url(&config.database_url),
                if config.wecom.is_some() {
                    "configured"
                } else {
                    "off"
                },
                if config.mp.is_some() {
                    "configured"
                } else {
                    "off"
                },
            );
            ExitCode::SUCCESS
        }
        Command::Serve {
            check_config: false,
        } => {
            init_logging(config.log_format);
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("kefu: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(kefu::server::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("kefu: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
