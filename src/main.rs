//! The `par-server` command: runs the service (default), and the operator subcommands
//! `hash-password`, `check-config`, `healthcheck` and `gen-key`.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use par_server::config::{Settings, ValidSettings, demo};
use par_server::startup::Application;

#[derive(Parser)]
#[command(
    name = "par-server",
    version,
    about = "OAuth 2.0 / OpenID Connect login with Pushed Authorization Requests"
)]
struct Cli {
    /// Configuration file (YAML, TOML or JSON); also `PAR_CONFIG`.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Run,
    /// Read a password from stdin and print its argon2id PHC string for `users[].password_hash`.
    HashPassword,
    /// Load and validate a configuration file, then exit.
    CheckConfig {
        file: PathBuf,
        /// Also write the FAPI 2.0 conformance report of this configuration (Markdown) here.
        #[arg(long, value_name = "REPORT")]
        report: Option<PathBuf>,
    },
    /// Probe a running server (the container HEALTHCHECK): exit 0 if the URL answers 200.
    Healthcheck {
        #[arg(long, env = "PAR_HEALTHCHECK_URL", default_value = par_server::healthcheck::DEFAULT_URL)]
        url: String,
        /// Give up after this many milliseconds (connect, send and read together).
        #[arg(long, default_value_t = 2000, value_name = "MS")]
        timeout_ms: u64,
    },
    /// Write a new ES256 signing key (PKCS#8 PEM, mode 0600) to FILE, unless a key is there.
    GenKey { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(cli.config),
        Command::HashPassword => hash_password(),
        Command::CheckConfig { file, report } => check_config(file, report),
        Command::Healthcheck { url, timeout_ms } => healthcheck(&url, timeout_ms),
        Command::GenKey { file } => gen_key(&file),
    }
}

fn gen_key(file: &std::path::Path) -> ExitCode {
    use par_server::keygen::{Outcome, ensure_key};
    match ensure_key(file) {
        Ok(Outcome::Created { thumbprint }) => {
            println!(
                "wrote {}: new ES256 key (PKCS#8 PEM, mode 0600), JWK thumbprint {thumbprint}",
                file.display()
            );
            ExitCode::SUCCESS
        }
        Ok(Outcome::Kept) => {
            println!("kept {}: a key is there already (never replaced)", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-key: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn healthcheck(url: &str, timeout_ms: u64) -> ExitCode {
    match par_server::healthcheck::probe(url, std::time::Duration::from_millis(timeout_ms)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unhealthy: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hash_password() -> ExitCode {
    if std::io::stdin().is_terminal() {
        eprintln!("password (input is echoed; pipe it in to avoid that):");
    }
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        eprintln!("could not read the password from stdin");
        return ExitCode::from(2);
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("empty password");
        return ExitCode::from(2);
    }
    match par_server::password::hash(password) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: PathBuf, report: Option<PathBuf>) -> ExitCode {
    let loaded = Settings::load(Some(&file)).map(|(s, _)| s);
    if let (Some(path), Ok(settings)) = (&report, &loaded) {
        // The report shows every requirement, met or not: assess without enforcing.
        let mut unenforced = settings.clone();
        unenforced.profile = par_server::config::Profile::None;
        match unenforced.validate() {
            Ok(valid) => {
                let text = par_server::config::fapi2::report(settings, &valid.fapi2);
                if let Err(e) = std::fs::write(path, text) {
                    eprintln!("{}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                println!("wrote the FAPI 2.0 report to {}", path.display());
            }
            Err(e) => eprintln!("no report: {e}"),
        }
    }
    match loaded.and_then(|s| s.validate()) {
        Ok(valid) => {
            println!(
                "{}: ok ({} clients, {} users)",
                file.display(),
                valid.settings.clients.len(),
                valid.settings.users.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn run(config: Option<PathBuf>) -> ExitCode {
    let (mut settings, source) = match Settings::load(config.as_deref()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let demo = if demo::wanted(&settings, &source) {
        match demo::apply(&mut settings) {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let valid = match settings.validate() {
        Ok(valid) => valid,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // Dropped when `run` returns, after the server stopped: flushes the spans still queued.
    let _telemetry = match par_server::telemetry::init(&valid.settings.log, &valid.settings.telemetry) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("par-server: telemetry: {e:#}");
            return ExitCode::from(2);
        }
    };
    match actix_web::rt::System::new().block_on(serve(valid, demo)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("par-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(valid: ValidSettings, demo: Option<demo::DemoCredentials>) -> anyhow::Result<()> {
    let shared = valid.settings.redis.is_configured();
    if demo.is_some() && !par_server::config::is_loopback_bind(&valid.settings.http.bind) {
        anyhow::bail!(
            "the zero-config demo only binds loopback addresses; configure clients to listen on {}",
            valid.settings.http.bind
        );
    }
    let app = Application::build(valid).await?;
    if !shared {
        tracing::warn!(
            "IN-MEMORY STORE: state lives in this process only. Do not run more than one replica; set redis.url (PAR__REDIS__URL) for production."
        );
    }
    tracing::info!(address = %app.address(), issuer = app.issuer(), "par-server listening");
    if let Some(d) = demo {
        print_demo_banner(&app, &d);
    }
    app.run_until_signalled().await?;
    // Telemetry is flushed when `run` drops its guard, after this returns: the last
    // request has finished by then.
    tracing::info!("stopped");
    Ok(())
}

fn print_demo_banner(app: &Application, d: &demo::DemoCredentials) {
    let issuer = app.issuer();
    let banner = format!(
        r#"
par-server zero-config demo (single process, in-memory store, loopback only)

  issuer         {issuer}
  client         {client_id} / {secret}
  user           {user} / {password}
  discovery      {issuer}/.well-known/openid-configuration

Push an authorization request:

  curl -s -u '{client_id}:{secret}' \
    -d client_id={client_id} -d response_type=code -d scope=openid \
    -d redirect_uri=http://127.0.0.1:9000/callback \
    -d code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM -d code_challenge_method=S256 \
    {issuer}/oauth2/par
"#,
        client_id = d.client_id,
        secret = d.client_secret.expose(),
        user = d.username,
        password = d.password.expose(),
    );
    // One write, and a closed stdout (a reader that went away) is not a reason to die.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), banner.as_bytes());
}
