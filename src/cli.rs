//! Subcommands: run, check-config, leases, probe

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::EXIT_CONFIG;

#[derive(Parser, Debug)]
#[command(
    name = "sztp-redirector",
    version,
    about = "Points factory-fresh devices at their owner's SZTP bootstrap server (RFC 8572)"
)]
/// The command line: one subcommand.
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve everything the file enables
    Run {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a file without binding anything: prints `FILE: ok` or every error
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// List DHCPv4 leases from the journal (read-only: safe while the server runs)
    Leases {
        /// The state directory holding leases4.journal
        #[arg(long, conflicts_with = "config")]
        state_dir: Option<PathBuf>,
        /// Take the state directory from this configuration file
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// One JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Act as an SZTP device doing DHCPv4 and print what the network tells it
    Probe(Box<crate::probe::ProbeArgs>),
}

/// Parses the command line and runs it; returns the process exit code (0 ok, 1 runtime failure, 2 usage, 78 configuration error; `probe` documents its own).
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match crate::config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                0
            }
            Err(e) => {
                eprintln!("{e}");
                EXIT_CONFIG
            }
        },
        Command::Run { config } => crate::daemon::run(&config),
        Command::Leases {
            state_dir,
            config,
            json,
        } => leases(state_dir, config, json),
        Command::Probe(args) => crate::probe::main(*args),
    }
}

fn leases(state_dir: Option<PathBuf>, config: Option<PathBuf>, json: bool) -> i32 {
    let dir = match (state_dir, config) {
        (Some(d), _) => d,
        (None, Some(c)) => match crate::config::load(&c) {
            Ok(cfg) => cfg.appliance.state_dir,
            Err(e) => {
                eprintln!("{e}");
                return EXIT_CONFIG;
            }
        },
        (None, None) => PathBuf::from("/var/lib/sztp-redirector"),
    };
    let now = crate::journal::unix_now();
    let mut out = std::io::stdout().lock();
    match crate::dhcp::lease_store::print_leases(&dir, json, now, &mut out) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
