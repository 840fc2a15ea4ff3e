//! Serves only the DNS part of a configuration file, as `run` will once the daemon wires it:
//! `bind` then `serve` on a one-worker runtime until SIGTERM/SIGINT. Used by
//! `tests/bench/dns.sh`; logs `listening for dns on udp ADDR` like the daemon.
//!
//! usage: cargo run --release --example dns_serve -- FILE

use std::sync::Arc;

use sztp_redirector::runtime::{Events, Published, ServiceContext, Snapshot};

fn main() {
    let path = std::env::args().nth(1).expect("usage: dns_serve FILE");
    let cfg = match sztp_redirector::config::load(std::path::Path::new(&path)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(sztp_redirector::EXIT_CONFIG);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let bound = sztp_redirector::dns::bind(&cfg).expect("bind");
    let stats = Arc::clone(&bound.stats);
    let ctx = ServiceContext {
        state_dir: cfg.appliance.state_dir.clone(),
        published: Published::new(Snapshot::new(cfg, 0)),
        events: Events::new(None),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let token = tokio_util::sync::CancellationToken::new();
        let t = token.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            t.cancel();
        });
        sztp_redirector::dns::serve(bound, ctx, token)
            .await
            .unwrap();
    });
    eprintln!(
        "queries {}",
        stats.queries.load(std::sync::atomic::Ordering::Relaxed)
    );
}
