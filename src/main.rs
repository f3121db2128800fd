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
    /// Run the WeCom Customer Service loop against the built-in simulator with scripted
    /// shoppers: no WeCom account needed.
    Demo {
        /// Stop after the script instead of serving on.
        #[arg(long)]
        once: bool,
    },
    /// Run the WeCom simulator alone and play shoppers typed on stdin.
    Simulate {
        /// Where the simulator listens.
        #[arg(long, default_value = "127.0.0.1:9100")]
        listen: std::net::SocketAddr,
        /// kefu's WeCom callback URL.
        #[arg(long, default_value = "http://127.0.0.1:8080/wecom/callback")]
        callback: String,
    },
    /// Classify shopper messages: one per stdin line, one JSON object per stdout line.
    Classify,
    /// Report classifier accuracy over a `text<TAB>intent` file.
    Eval {
        file: PathBuf,
        /// Also list every misclassified message.
        #[arg(long)]
        mistakes: bool,
    },
    /// Fit the classifier's thresholds by cross-validation over the reply library: prints
    /// the held-out accuracy and wrong-answer table and the `[classifier]` values it gives.
    Calibrate {
        /// Number of folds.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=20))]
        folds: u32,
        /// Also list the held-out sample questions answered at once with another intent.
        #[arg(long)]
        mistakes: bool,
    },
    /// Simulate a day of tickets and compare kefu's priority routing with a FIFO queue
    /// (uses the `[sla]` and `[priority]` configuration).
    SimulateQueue {
        /// Seed of the first run; the same seed gives the same report.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Days simulated per run (from Monday 2026-03-02).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=28))]
        days: u32,
        /// Runs with seeds seed, seed+1, ...; their tickets are pooled.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        runs: u32,
    },
    /// Work with the canned-reply library.
    Replies {
        #[command(subcommand)]
        command: RepliesCommand,
    },
    /// Customers and their purchase history.
    Crm {
        #[command(subcommand)]
        command: CrmCommand,
    },
    /// Console users: agents and supervisors.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Agent,
    Supervisor,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a console user; the password is read from the first line of stdin.
    Add {
        /// Login name: letters, digits, '.', '_' or '-'.
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The kf servicer (userid) whose tickets are this user's own; required for agents.
        #[arg(long)]
        servicer_id: Option<String>,
        /// Skill groups whose queue the user works, comma-separated (presale, order, ...).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Read the password from stdin (the only way: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List console users (never their password hashes).
    List,
    /// Disable a user: they cannot log in, and their sessions end at once.
    Disable { name: String },
}

#[derive(Subcommand)]
enum CrmCommand {
    /// Import customers and purchase history from a CSV file (UTF-8 or GBK): columns
    /// external_userid and/or unionid, name, tags, orders, total_spent (yuan), last_order_at.
    /// Bad rows are reported by line and skipped; importing the same file again changes nothing.
    Import { file: PathBuf },
}

#[derive(Subcommand)]
enum RepliesCommand {
    /// Validate the library: intents, ids, questions, templates, compliance.
    Check,
    /// From the store: the replies agents edit or dismiss most, and the answers agents keep
    /// writing themselves (candidates for the library).
    Stats {
        /// Only suggestions shown and agent messages written from this day on (YYYY-MM-DD,
        /// in the shop's time zone).
        #[arg(long, value_parser = parse_day)]
        since: Option<jiff::civil::Date>,
        /// Rows per list at most.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// List a reply once it was shown at least this many times.
        #[arg(long, default_value_t = 3)]
        min_shown: u64,
        /// List an agent-written answer once it was used in at least this many tickets.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
        min_tickets: u64,
        /// One JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
}

fn parse_day(s: &str) -> Result<jiff::civil::Date, String> {
    kefu::console::dashboard::parse_day(s).ok_or_else(|| format!("expected YYYY-MM-DD, got {s:?}"))
}

fn classifier(config: &Config) -> Result<kefu::intent::Classifier, String> {
    let library = kefu::library::load(&config.replies_dir).map_err(|e| e.to_string())?;
    kefu::intent::Classifier::build(library, config.classifier).map_err(|e| e.to_string())
}

fn classify_stdin(config: &Config) -> Result<(), String> {
    use std::io::{BufRead, Write};
    let c = classifier(config)?;
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        let result = c.classify(&line);
        let json = serde_json::to_string(&result).map_err(|e| e.to_string())?;
        writeln!(out, "{json}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

fn eval_file(config: &Config, file: &std::path::Path, mistakes: bool) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let examples =
        kefu::intent::eval::parse_tsv(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let c = classifier(config)?;
    let report = kefu::intent::eval::evaluate(&c, &examples);
    print!("{}", report.render(mistakes));
    Ok(())
}

fn replies_check(config: &Config) -> Result<bool, String> {
    let (lib, diags) =
        kefu::library::load_with_diagnostics(&config.replies_dir).map_err(|e| e.to_string())?;
    for d in &diags {
        println!("{d}");
    }
    let intents: std::collections::BTreeSet<&str> =
        lib.replies().iter().map(|r| r.intent.as_str()).collect();
    let missing: Vec<&str> = kefu::taxonomy::all()
        .iter()
        .map(|i| i.id)
        .filter(|i| !intents.contains(i))
        .collect();
    for m in &missing {
        println!(
            "{}: intent `{m}` has no replies",
            config.replies_dir.display()
        );
    }
    let questions: usize = lib.replies().iter().map(|r| r.questions.len()).sum();
    println!(
        "{} replies, {} sample questions, {} of {} intents covered: {}",
        lib.replies().len(),
        questions,
        intents.len(),
        kefu::taxonomy::all().len(),
        if diags.is_empty() && missing.is_empty() {
            "ok"
        } else {
            "problems found"
        }
    );
    Ok(diags.is_empty() && missing.is_empty())
}

/// `kefu crm import FILE`: a report line per rejected row, then the summary. Fails only when
/// the file cannot be read or the store cannot be written.
async fn crm_import(config: Config, file: PathBuf) -> anyhow::Result<()> {
    use anyhow::Context;
    use kefu::clock::{Clock, SystemClock};
    let store = kefu::store::Store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "opening the store at {}",
                kefu::config::redact_url(&config.database_url)
            )
        })?;
    let result = kefu::crm::import::import_file(&store, &file, SystemClock.now_ms()).await;
    store.close().await;
    let report = result.with_context(|| format!("importing {}", file.display()))?;
    for r in &report.rejected {
        println!("{}: {r}", file.display());
    }
    if !report.ignored_columns.is_empty() {
        println!(
            "{}: ignored columns: {}",
            file.display(),
            report.ignored_columns.join(", ")
        );
    }
    println!("{} ({}): {report}", file.display(), report.encoding);
    Ok(())
}

/// `kefu replies stats`: both lists, as tables or as one JSON object.
async fn replies_stats(
    config: Config,
    since: Option<jiff::civil::Date>,
    options: kefu::console::reply_stats::Options,
    json: bool,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use kefu::console::{dashboard, reply_stats};
    let tz = config.sla.calendar.time_zone();
    let since_ms = match since {
        Some(day) => Some(
            dashboard::local_midnight(day, &tz)
                .with_context(|| format!("{day} is outside the supported dates"))?,
        ),
        None => None,
    };
    let options = reply_stats::Options {
        since_ms,
        ..options
    };
    let store = open_store(&config).await?;
    let stats = reply_stats::compute(store.pool(), &options).await;
    store.close().await;
    let stats = stats.context("reading suggestions and agent messages")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        if let Some(day) = since {
            println!("since {day} ({})", dashboard::zone_name(&tz));
        }
        print!("{}", reply_stats::render_text(&stats));
    }
    Ok(())
}

async fn open_store(config: &Config) -> anyhow::Result<kefu::store::Store> {
    use anyhow::Context;
    kefu::store::Store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "opening the store at {}",
                kefu::config::redact_url(&config.database_url)
            )
        })
}

/// The password on the first line of stdin, without its line ending.
fn read_password() -> anyhow::Result<String> {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| anyhow::anyhow!("reading the password from stdin: {e}"))?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        anyhow::bail!(
            "no password on stdin (pipe it in: echo \"$PW\" | kefu user add ... --password-stdin)"
        );
    }
    Ok(password)
}

async fn user_command(config: Config, command: UserCommand) -> anyhow::Result<()> {
    use kefu::clock::{Clock, SystemClock};
    use kefu::console::{self, Role};
    match command {
        UserCommand::Add {
            name,
            role,
            servicer_id,
            groups,
            password_stdin: _,
        } => {
            let new = console::NewUser {
                name: name.trim().to_string(),
                role: match role {
                    RoleArg::Agent => Role::Agent,
                    RoleArg::Supervisor => Role::Supervisor,
                },
                servicer_userid: servicer_id.map(|s| s.trim().to_string()),
                groups: groups
                    .iter()
                    .map(|g| g.trim().to_string())
                    .filter(|g| !g.is_empty())
                    .collect(),
                password: String::new(),
            };
            // Check everything but the password before reading it.
            let check = console::NewUser {
                password: "x".repeat(console::MIN_PASSWORD_CHARS),
                ..new
            };
            check.validate()?;
            let new = console::NewUser {
                password: read_password()?,
                ..check
            };
            let store = open_store(&config).await?;
            let (name, role) = (new.name.clone(), new.role);
            let result = console::add_user(&store, new, SystemClock.now_ms()).await;
            store.close().await;
            result?;
            println!("{name}: added ({})", role.as_str());
            Ok(())
        }
        UserCommand::List => {
            let store = open_store(&config).await?;
            let users = console::store::users(store.pool()).await;
            store.close().await;
            let users = users?;
            if users.is_empty() {
                println!("no console users yet: kefu user add --name NAME --role agent|supervisor --password-stdin");
            }
            for u in users {
                let groups: Vec<String> = serde_json::from_str(&u.groups).unwrap_or_default();
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    u.name,
                    u.role,
                    u.servicer_userid.as_deref().unwrap_or("-"),
                    if groups.is_empty() {
                        "-".to_string()
                    } else {
                        groups.join(",")
                    },
                    if u.disabled_at.is_some() {
                        "disabled"
                    } else {
                        "active"
                    },
                );
            }
            Ok(())
        }
        UserCommand::Disable { name } => {
            let store = open_store(&config).await?;
            let result = console::disable_user(&store, &name, SystemClock.now_ms()).await;
            store.close().await;
            if result? {
                println!("{name}: disabled; their sessions have ended");
            } else {
                println!("{name}: already disabled");
            }
            Ok(())
        }
    }
}

fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEFU_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Run an async command on a fresh runtime and turn its result into the exit code.
fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kefu: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(fut);
    // Whatever a command needed has finished; a blocking task still running (a library
    // reload that came with the shutdown) must not hold the exit past its bound.
    rt.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kefu: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Command::Demo { once } => {
            // The demo's own output tells the story; logs only for problems.
            init_logging(config.log_format, "warn");
            run_async(kefu::demo::run(config, once))
        }
        Command::Simulate { listen, callback } => run_async(kefu::demo::simulate(listen, callback)),
        Command::Classify => match classify_stdin(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kefu: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Eval { file, mistakes } => match eval_file(&config, &file, mistakes) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kefu: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Calibrate { folds, mistakes } => {
            let fit = kefu::library::load(&config.replies_dir)
                .map_err(|e| e.to_string())
                .and_then(|lib| {
                    kefu::intent::calibrate::cross_validate(&lib, folds as usize)
                        .map_err(|e| e.to_string())
                });
            match fit {
                Ok(held) => {
                    let fit = kefu::intent::calibrate::fit(&held);
                    print!("{}", fit.render());
                    if mistakes {
                        println!("\nanswered at once with another intent");
                        print!(
                            "{}",
                            kefu::intent::calibrate::conflicts(&held, fit.thresholds.unknown_below)
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("kefu: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::SimulateQueue { seed, days, runs } => {
            use kefu::tickets::simulation::{compare, Scenario};
            let scenario = Scenario::small_shop(days);
            let seeds: Vec<u64> = (0..u64::from(runs)).map(|i| seed.wrapping_add(i)).collect();
            let report = compare(&scenario, &config.sla, &config.priority, &seeds);
            print!("{}", report.render(&scenario, &config.sla));
            ExitCode::SUCCESS
        }
        Command::Replies {
            command: RepliesCommand::Check,
        } => match replies_check(&config) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("kefu: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Replies {
            command:
                RepliesCommand::Stats {
                    since,
                    limit,
                    min_shown,
                    min_tickets,
                    json,
                },
        } => {
            init_logging(config.log_format, "warn");
            let options = kefu::console::reply_stats::Options {
                since_ms: None,
                limit,
                min_shown,
                min_tickets,
            };
            run_async(replies_stats(config, since, options, json))
        }
        Command::Crm {
            command: CrmCommand::Import { file },
        } => {
            init_logging(config.log_format, "warn");
            run_async(crm_import(config, file))
        }
        Command::User { command } => {
            init_logging(config.log_format, "warn");
            run_async(user_command(config, command))
        }
        Command::Serve {
            check_config: false,
        } => {
            init_logging(config.log_format, "info");
            run_async(kefu::server::run(config))
        }
    }
}
