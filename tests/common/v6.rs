//! IPv6 additions to the harness: link-local readiness (DAD), v6 topologies, the server started
//! until it listens for dhcp6, and dhclient -6.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;

/// The server's address on the client link (2001:db8:1::/64) and the relay's links.
pub(crate) const SERVER6_CIDR: &str = "2001:db8:1::1/64";
pub(crate) const RELAY6_UP_SERVER: &str = "2001:db8:9::1";
pub(crate) const RELAY6_UP_RELAY: &str = "2001:db8:9::2";
pub(crate) const RELAY6_DOWN: &str = "2001:db8:2::1";

/// Polls (bounded) until `iface` in `ns` has a link-local address that finished duplicate
/// address detection: dhclient -6, the probe and the server's replies need one.
pub(crate) fn wait_link_local(ns: &Netns, iface: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ns.ip(&["-6", "addr", "show", "dev", iface]);
        let ready = out
            .stdout
            .lines()
            .any(|l| l.contains("inet6 fe80:") && !l.contains("tentative"));
        if ready {
            return;
        }
        assert!(
            Instant::now() < until,
            "{iface} in {} has no usable link-local address:\n{}",
            ns.name,
            out.stdout
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Adds a global address without DAD (the namespaces are private: no duplicate can exist).
pub(crate) fn add_addr6(ns: &Netns, iface: &str, cidr: &str) {
    ns.ip(&["-6", "addr", "add", cidr, "dev", iface, "nodad"]);
}

/// Server and client namespaces joined by a veth pair: the server end has
/// [`SERVER6_CIDR`] and both ends a usable link-local address.
pub(crate) fn pair6(tag: &str) -> NetnsPair {
    let net = NetnsPair::new(tag);
    add_addr6(&net.server, &net.server_if, SERVER6_CIDR);
    wait_link_local(&net.server, &net.server_if);
    wait_link_local(&net.client, &net.client_if);
    net
}

/// client — relay — server over IPv6: the relay has [`RELAY6_UP_RELAY`]/64 toward the server
/// ([`RELAY6_UP_SERVER`]/64) and [`RELAY6_DOWN`]/64 toward the client.
pub(crate) fn relay_topology6(tag: &str) -> RelayTopology {
    let t = RelayTopology::new(tag);
    add_addr6(&t.server, &t.server_if, &format!("{RELAY6_UP_SERVER}/64"));
    add_addr6(&t.relay, &t.relay_up_if, &format!("{RELAY6_UP_RELAY}/64"));
    add_addr6(&t.relay, &t.relay_down_if, &format!("{RELAY6_DOWN}/64"));
    t.server.ip(&[
        "-6",
        "route",
        "add",
        "2001:db8:2::/64",
        "via",
        RELAY6_UP_RELAY,
    ]);
    for (ns, i) in [
        (&t.server, &t.server_if),
        (&t.relay, &t.relay_up_if),
        (&t.relay, &t.relay_down_if),
        (&t.client, &t.client_if),
    ] {
        wait_link_local(ns, i);
    }
    t
}

/// Starts the server in `ns` (config as in [`spawn_server`]) and waits for `sockets`
/// `listening for dhcp6` lines.
pub(crate) fn spawn_server6_in(
    ns: &Netns,
    config: &str,
    dir: tempfile::TempDir,
    sockets: usize,
) -> ServerGuard {
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    let text = config.replace(STATE_DIR, state.to_str().unwrap());
    let config_path = dir.path().join("sztp-redirector.toml");
    std::fs::write(&config_path, &text).expect("write config");
    let child = ns.spawn(
        &[BIN, "run", "--config", config_path.to_str().unwrap()],
        Duration::from_secs(600),
    );
    if !child.wait_for_lines("listening for dhcp6", sockets, Duration::from_secs(10)) {
        panic!(
            "server did not log `listening for dhcp6`; config:\n{text}\nlog:\n{}",
            child.output_text()
        );
    }
    ServerGuard {
        child,
        dir: Some(dir),
        config_path,
    }
}

/// [`spawn_server6_in`] in a new temporary directory, one interface.
pub(crate) fn spawn_server6(ns: &Netns, config: &str) -> ServerGuard {
    let dir = tempfile::Builder::new()
        .prefix("sztpt-")
        .tempdir()
        .expect("tempdir");
    spawn_server6_in(ns, config, dir, 1)
}

/// dhclient -6 configuration: option 136 as `string`, requested (or only defined).
pub(crate) fn dhclient6_conf(request_136: bool, rapid_commit: bool) -> String {
    let mut s = String::from("option dhcp6.sztp-redirect code 136 = string;\n");
    if request_136 {
        s.push_str("also request dhcp6.sztp-redirect;\n");
    }
    if rapid_commit {
        s.push_str("send dhcp6.rapid-commit;\n");
    }
    s
}

/// A dhclient -6 run: its directory (lease file `lease6`, env log `env.log`).
pub(crate) struct Dhclient6 {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) child: Child,
}

impl Dhclient6 {
    /// The events dhclient's script has written completely so far (a block still being
    /// written is left out: a poll mid-write once saw BOUND6 without its variables).
    pub(crate) fn events(&self) -> Vec<(String, HashMap<String, String>)> {
        parse_complete_env_dump(
            &std::fs::read_to_string(self.dir.path().join("env.log")).unwrap_or_default(),
        )
    }

    /// Polls (bounded) for the `n`-th event among `reasons` and returns it.
    pub(crate) fn wait_event(
        &self,
        reasons: &[&str],
        n: usize,
        max: Duration,
    ) -> HashMap<String, String> {
        let until = Instant::now() + max;
        loop {
            let got: Vec<HashMap<String, String>> = self
                .events()
                .into_iter()
                .filter(|(e, _)| reasons.contains(&e.as_str()))
                .map(|(_, m)| m)
                .collect();
            if got.len() >= n {
                return got[n - 1].clone();
            }
            if Instant::now() > until || !self.child.is_running() {
                panic!(
                    "dhclient -6: no {reasons:?} #{n}; events: {:?}\n{}",
                    self.events().iter().map(|e| &e.0).collect::<Vec<_>>(),
                    self.child.output_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The first binding (BOUND6) or stateless configuration.
    pub(crate) fn wait_bound(&self) -> HashMap<String, String> {
        self.wait_event(
            &["BOUND6", "RENEW6", "REBIND6", "REBOOT6"],
            1,
            Duration::from_secs(40),
        )
    }

    pub(crate) fn lease_file(&self) -> PathBuf {
        self.dir.path().join("lease6")
    }
}

/// `dhclient -6 [-S] -d -v -1 -D LL -cf … -sf dump.sh -lf lease6 -pf pid IF` (peers-and-crates
/// §6.1; `-D LL` makes the DUID a DUID-LL of the interface MAC, the same on every run).
/// `decline_first`: the script exits 3 on the first BOUND6, which makes dhclient Decline
/// the address, as Debian's dhclient-script does when duplicate address detection fails.
pub(crate) fn start_dhclient6(
    ns: &Netns,
    iface: &str,
    conf: &str,
    stateless: bool,
    decline_first: bool,
) -> Dhclient6 {
    let dir = tempfile::tempdir().unwrap();
    let conf_path = dir.path().join("dhclient6.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let log = dir.path().join("env.log");
    let script = dir.path().join("dump.sh");
    let mark = dir.path().join("declined-once");
    let decline = if decline_first {
        format!(
            "if [ \"$reason\" = BOUND6 ] && [ ! -e '{m}' ]; then : > '{m}'; exit 3; fi\n",
            m = mark.display()
        )
    } else {
        String::new()
    };
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ echo \"### $reason\"; env; echo \"### end\"; }} >> '{}'\n{decline}exit 0\n",
            log.display()
        ),
    )
    .unwrap();
    set_exec(&script);
    let lease = dir.path().join("lease6");
    // dhclient wants the lease file to exist; empty, so it Solicits instead of Confirming
    std::fs::write(&lease, "").unwrap();
    let pidf = dir.path().join("dhclient6.pid");
    let mut args = vec!["dhclient", "-6"];
    if stateless {
        args.push("-S");
    }
    args.extend([
        "-d",
        "-v",
        "-1",
        "-D",
        "LL",
        "-cf",
        conf_path.to_str().unwrap(),
        "-sf",
        script.to_str().unwrap(),
        "-lf",
        lease.to_str().unwrap(),
        "-pf",
        pidf.to_str().unwrap(),
        iface,
    ]);
    let child = ns.spawn(&args, Duration::from_secs(90));
    Dhclient6 { dir, child }
}

/// Bytes of dhclient's `new_dhcp6_sztp_redirect`, which it prints as colon hex.
pub(crate) fn dhclient6_136(env: &HashMap<String, String>) -> Option<Vec<u8>> {
    env.get("new_dhcp6_sztp_redirect")
        .map(|raw| dhclient_colon_hex(raw).unwrap_or_else(|| panic!("not colon hex: {raw}")))
}
