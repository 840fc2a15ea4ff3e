//! Issue 6, fault 4: any sequence of reloads reaches the state a fresh start on the final file
//! reaches. Every sequence of up to two reloads over a set of files (an empty file, DHCPv4 on
//! with two different pools and rules, DHCPv4 off, restart-only keys changed, an invalid file
//! and a file whose lease time overflows) is applied to a running `Supervisor`; what it then
//! serves (services, the published configuration, the device journal's rotation size, the
//! address and redirect every device gets) is compared with a fresh `Supervisor` started on the
//! final file with the same lease journal. In process, on `127.0.0.1:0`; no privileges needed.

mod common;

use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::relay::{mac, uris_143, Relay};
use sztp_redirector::config::{self, Config};
use sztp_redirector::daemon::{Bound, ServiceName, Supervisor};
use sztp_redirector::dhcp::v4::server::{Bound4, BoundInterface};
use sztp_redirector::journal::DeviceJournal;
use sztp_redirector::runtime::{Events, Published, ServiceContext, Snapshot};
use tokio_util::sync::CancellationToken;

const HANG: Duration = Duration::from_secs(30);

/// One file of a sequence: its name in failure messages and its text (`{STATE}` replaced by
/// the state directory).
struct File {
    name: &'static str,
    text: String,
}

fn dhcp4_file(state: &Path, pool: &str, uri: &str, lease: &str, journal: &str) -> String {
    format!(
        r#"
[appliance]
state-dir = "{}"
journal-max-size = "{journal}"

[[bootstrap-server]]
name = "owner"
uri = "{uri}"

[[rule]]
name = "default"
redirect-to = ["owner"]

[dhcp4]
interfaces = ["lo"]
port = 0
offer-time = "30s"

[[dhcp4.subnet]]
subnet = "192.0.2.0/24"
pools = ["{pool}"]
lease-time = "{lease}"
"#,
        state.display()
    )
}

fn files(state: &Path) -> Vec<File> {
    let a = dhcp4_file(
        state,
        "192.0.2.100-192.0.2.149",
        "https://a.example.com",
        "1h",
        "1MiB",
    );
    let b = dhcp4_file(
        state,
        "192.0.2.150-192.0.2.199",
        "https://b.example.com:8443",
        "2h",
        "64KiB",
    );
    vec![
        File {
            name: "empty",
            text: String::new(),
        },
        File {
            name: "a",
            text: a.clone(),
        },
        File {
            name: "b",
            text: b.clone(),
        },
        File {
            name: "off",
            text: b.replace("[dhcp4]\n", "[dhcp4]\nenabled = false\n"),
        },
        File {
            name: "restart-only",
            text: a
                .replace(
                    &format!("state-dir = \"{}\"", state.display()),
                    "state-dir = \"/elsewhere\"\nlog-format = \"json\"\nuser = \"nobody\"",
                )
                .replace("1MiB", "128KiB"),
        },
        File {
            name: "invalid",
            text: format!("{a}\n[dhcp4.bogus]\n"),
        },
        File {
            name: "overflow",
            text: a.replace("lease-time = \"1h\"", "lease-time = \"100000000000000d\""),
        },
    ]
}

fn load(f: &File) -> Option<Config> {
    config::load_str(Path::new("seq.toml"), &f.text).ok()
}

/// What a running supervisor shows from outside.
#[derive(Debug, PartialEq)]
struct Observed {
    running: Vec<ServiceName>,
    /// The published configuration without `[appliance]` (compared apart).
    config: String,
    state_dir: PathBuf,
    journal_max_bytes: u64,
    /// Per device: the ACKed address and the option 143 URIs, or None without an answer.
    devices: Vec<Option<(Ipv4Addr, Vec<String>)>>,
}

struct Instance {
    sup: Supervisor,
    published: Published,
    journal: Arc<DeviceJournal>,
}

fn start(cfg: Config, state: &Path, events_dir: &Path) -> Instance {
    let journal =
        Arc::new(DeviceJournal::open(events_dir, cfg.appliance.journal_max_bytes).unwrap());
    let mut bound = Bound::default();
    if cfg.dhcp4.is_some() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        bound.dhcp4 = Some(Bound4 {
            interfaces: vec![BoundInterface::new("lo", sock).unwrap()],
        });
    }
    let ctx = ServiceContext::new(
        Published::new(Snapshot::read(cfg, 0)),
        Events::new(Some(Arc::clone(&journal))),
        state.to_path_buf(),
        sztp_redirector::metrics::Metrics::new(),
    );
    let published = ctx.published.clone();
    Instance {
        sup: Supervisor::start(bound, ctx, CancellationToken::new()),
        published,
        journal,
    }
}

async fn exchange(port: u16, device: u32) -> Option<(Ipv4Addr, Vec<String>)> {
    tokio::task::spawn_blocking(move || {
        let r = Relay::new(port);
        r.sock
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        r.exchange(mac(device), device * 64, true)
            .map(|x| (x.ack.yiaddr(), uris_143(&x.ack).unwrap_or_default()))
    })
    .await
    .unwrap()
}

async fn observe(i: &Instance, devices: &[u32]) -> Observed {
    let snap = i.published.load();
    let mut cfg = (*snap.config).clone();
    let appliance = cfg.appliance.clone();
    cfg.appliance.journal_max_bytes = 0;
    let addrs = i.sup.local_addrs(ServiceName::Dhcp4);
    let mut out = Vec::new();
    for &d in devices {
        out.push(match addrs.first() {
            Some(a) => exchange(a.port(), d).await,
            None => None,
        });
    }
    Observed {
        running: i.sup.running(),
        config: format!(
            "{:?}",
            (&cfg.dhcp4, &cfg.rules, &cfg.bootstrap_servers, &cfg.dhcp6)
        ),
        state_dir: appliance.state_dir,
        journal_max_bytes: i.journal.max_bytes(),
        devices: out,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reload_sequence_reaches_what_a_fresh_start_on_the_final_file_reaches() {
    let tmp = tempfile::tempdir().unwrap();
    let probe_state = tmp.path().join("probe");
    let all = files(&probe_state);
    let n = all.len();
    let mut sequences: Vec<Vec<usize>> = Vec::new();
    for first in 0..n {
        sequences.push(vec![first]);
        for r1 in 0..n {
            sequences.push(vec![first, r1]);
            for r2 in 0..n {
                sequences.push(vec![first, r1, r2]);
            }
        }
    }
    let mut checked = 0;
    for (k, seq) in sequences.iter().enumerate() {
        let state = tmp.path().join(format!("s{k}"));
        let files = files(&state);
        let Some(initial) = load(&files[seq[0]]) else {
            continue; // a fresh start on an invalid file refuses to start: nothing to compare
        };
        let names: Vec<&str> = seq.iter().map(|&i| files[i].name).collect();
        let mut r = start(initial, &state, &tmp.path().join(format!("e{k}")));
        let mut in_force = seq[0];
        // one new device after each step, so the journal and the lease table fill as they go
        let mut devices = vec![1000 + k as u32 * 8];
        let _ = observe(&r, &devices).await;
        for (step, &f) in seq.iter().enumerate().skip(1) {
            if let Some(cfg) = load(&files[f]) {
                tokio::time::timeout(HANG, r.sup.reload(cfg))
                    .await
                    .expect("reload hung")
                    .unwrap_or_else(|e| panic!("{names:?}: reload refused: {e:#}"));
                in_force = f;
            }
            devices.push(1000 + k as u32 * 8 + step as u32);
            let _ = observe(&r, &devices).await;
        }
        devices.push(1000 + k as u32 * 8 + 7);
        let got = observe(&r, &devices).await;
        tokio::time::timeout(HANG, r.sup.drain(HANG))
            .await
            .unwrap()
            .unwrap();

        let final_cfg = load(&files[in_force]).unwrap();
        let final_max = final_cfg.appliance.journal_max_bytes;
        let f = start(final_cfg, &state, &tmp.path().join(format!("f{k}")));
        let want = observe(&f, &devices).await;
        tokio::time::timeout(HANG, f.sup.drain(HANG))
            .await
            .unwrap()
            .unwrap();

        let ctx = format!("sequence {names:?} (in force: {})", files[in_force].name);
        assert_eq!(got.running, want.running, "{ctx}");
        assert_eq!(got.config, want.config, "{ctx}");
        assert_eq!(
            got.devices,
            want.devices,
            "{ctx}; journal: {:#?}",
            sztp_redirector::dhcp::lease_store::read_leases(&state)
        );
        assert_eq!(got.journal_max_bytes, final_max, "{ctx}: journal-max-size");
        // restart-only keys: what the first start used stays in force and in the snapshot
        let initial = load(&files[seq[0]]).unwrap();
        assert_eq!(
            got.state_dir, initial.appliance.state_dir,
            "{ctx}: state-dir"
        );
        checked += 1;
    }
    assert!(checked > 200, "{checked} sequences compared");
}
