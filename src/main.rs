//! The `sztp-redirector` binary: the CLI in the library, its exit code here

fn main() {
    std::process::exit(sztp_redirector::cli::main());
}
