//! Subcommands: run, check-config, leases, probe

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::EXIT_CONFIG;

#[derive(Parser, Debug)]
#[command(name = "sztp-redirector", version, about = "Points factory-fresh devices at their owner's SZTP bootstrap server (RFC 8572)")]
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
        Command::Probe(args) => crate::probe::main(*args),
        Command::Run { config } => match crate::config::load(&config) {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("{e}");
                EXIT_CONFIG
            }
        },
    }
}
