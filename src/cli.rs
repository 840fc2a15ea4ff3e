//! Subcommands: run, check-config, leases, devices, probe

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::EXIT_CONFIG;

#[derive(Parser, Debug)]
#[command(
    name = "sztp-redirector",
    version,
    about = "Points factory-fresh devices at their owner's SZTP bootstrap server (RFC 8572)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve everything the file enables
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a file without binding anything: prints `FILE: ok` or every error
    CheckConfig { file: PathBuf },
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
    /// Show the devices seen and where each got stuck, or one device's timeline: from the
    /// running appliance's status API, else from the device journal
    Devices(crate::status::client::DevicesArgs),
    /// Act as an SZTP device doing DHCPv4 and print what the network tells it
    Probe(Box<crate::probe::ProbeArgs>),
}

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
        Command::Devices(args) => crate::status::client::main(args),
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
