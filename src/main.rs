fn main() {
    std::process::exit(sztp_redirector::cli::main());
}
