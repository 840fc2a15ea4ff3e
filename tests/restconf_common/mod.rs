//! Helpers for the redirect-server tests: the server in process on 127.0.0.1:0, certificates
//! made by the openssl command, curl, and the Python owner bootstrap-server double
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sztp_redirector::config::load_str;
use sztp_redirector::journal::DeviceJournal;
use sztp_redirector::restconf::server::serve_state;
use sztp_redirector::restconf::{bind, AppState, TlsHandle};
use sztp_redirector::runtime::{Events, LeaseLookup, NoLeases, Published, Snapshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The system Python (with only the standard library needed): the pyenv `python3` on PATH
/// may be another build.
pub(crate) const PYTHON: &str = "/usr/bin/python3";

/// Placeholder in configuration texts: replaced by the server's state directory.
pub(crate) const STATE_DIR: &str = "{STATE_DIR}";

/// Output of a finished command.
#[derive(Debug)]
pub(crate) struct Out {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Out {
    pub(crate) fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `args` under `timeout -k 3 SECS` (a hung peer cannot hang the test), off the async
/// runtime.
pub(crate) async fn run(args: Vec<String>, limit: Duration) -> Out {
    tokio::task::spawn_blocking(move || run_blocking(&args, limit, None))
        .await
        .unwrap()
}

/// [`run`] from blocking code, with optional stdin text.
pub(crate) fn run_blocking(args: &[String], limit: Duration, stdin: Option<&str>) -> Out {
    use std::io::Write;
    let mut child = Command::new("timeout")
        .args(["-k", "3", &limit.as_secs().max(1).to_string()])
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {args:?}: {e}"));
    if let Some(text) = stdin {
        let _ = child.stdin.take().unwrap().write_all(text.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub(crate) fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Runs a shell snippet (openssl pipelines), panicking with its output on failure.
pub(crate) fn sh(script: &str) -> String {
    let out = run_blocking(
        &s(&["bash", "-euo", "pipefail", "-c", script]),
        Duration::from_secs(60),
        None,
    );
    assert!(
        out.ok(),
        "{script}\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// A self-signed P-256 certificate and key made by openssl, subject `subj`
/// (e.g. `/serialNumber=PID:X SN:LAB42/CN=dev`). Returns (cert, key) paths in `dir`.
pub(crate) fn openssl_self_signed(dir: &Path, name: &str, subj: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    sh(&format!(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
         -keyout '{}' -out '{}' -subj '{subj}' 2>&1",
        key.display(),
        cert.display()
    ));
    (cert, key)
}

/// A test CA (openssl) in `dir`: (ca.crt, ca.key).
pub(crate) fn openssl_ca(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("ca.crt");
    let key = dir.join("ca.key");
    sh(&format!(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
         -keyout '{}' -out '{}' -subj '/CN=Test IDevID CA' \
         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>&1",
        key.display(),
        cert.display()
    ));
    (cert, key)
}

/// A device certificate signed by the CA at `ca` (openssl), subject `subj`, clientAuth.
pub(crate) fn openssl_signed(
    dir: &Path,
    ca: &(PathBuf, PathBuf),
    name: &str,
    subj: &str,
) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    sh(&format!(
        "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout '{k}' -out '{csr}' -subj '{subj}' 2>&1 && \
         openssl x509 -req -in '{csr}' -CA '{cac}' -CAkey '{cak}' -CAcreateserial -days 3650 -extfile '{ext}' -out '{c}' 2>&1",
        k = key.display(),
        csr = csr.display(),
        cac = ca.0.display(),
        cak = ca.1.display(),
        ext = ext.display(),
        c = cert.display(),
    ));
    (cert, key)
}

/// The redirect server running in this process (the test's tokio runtime) on 127.0.0.1:0.
pub(crate) struct Redirector {
    pub(crate) addr: SocketAddr,
    pub(crate) state: AppState,
    pub(crate) published: Published,
    pub(crate) journal: Arc<DeviceJournal>,
    pub(crate) dir: tempfile::TempDir,
    tls: TlsHandle,
    token: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Redirector {
    /// Binds and serves `config` (its `{STATE_DIR}` replaced; listen should be
    /// `127.0.0.1:0`).
    pub(crate) async fn start(config: &str) -> Redirector {
        Self::start_with(config, Arc::new(NoLeases)).await
    }

    pub(crate) async fn start_with(config: &str, leases: Arc<dyn LeaseLookup>) -> Redirector {
        let dir = tempfile::Builder::new()
            .prefix("sztpt-rc-")
            .tempdir()
            .unwrap();
        let text = config.replace(STATE_DIR, &dir.path().join("state").display().to_string());
        let cfg = load_str(&dir.path().join("t.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
        let state_dir = cfg.appliance.state_dir.clone();
        let bound = tokio::task::spawn_blocking({
            let cfg = cfg.clone();
            move || bind(&cfg)
        })
        .await
        .unwrap()
        .unwrap()
        .expect("redirect-server enabled");
        let addr = bound.local_addrs()[0];
        let tls = bound.tls_handle();
        let journal = Arc::new(DeviceJournal::open(&state_dir, 1 << 20).unwrap());
        let published = Published::new(Snapshot::new(cfg, 0));
        let state = AppState::new(
            published.clone(),
            Events::new(Some(Arc::clone(&journal))),
            leases,
        );
        let token = CancellationToken::new();
        let task = tokio::spawn(serve_state(bound, state.clone(), token.clone()));
        Redirector {
            addr,
            state,
            published,
            journal,
            dir,
            tls,
            token,
            task: Some(task),
        }
    }

    pub(crate) fn base(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub(crate) fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The device journal's events so far.
    pub(crate) fn events(&self) -> Vec<serde_json::Value> {
        self.journal.flush();
        std::fs::read_to_string(self.state_dir().join("devices.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// What the daemon's SIGHUP does for a redirect server that keeps its sockets: reload the
    /// certificates `config` names, and publish it as the next generation only if they load
    /// (a bad file refuses the reload and keeps everything in force).
    pub(crate) fn reload(&self, config: &str) -> bool {
        let text = config.replace(STATE_DIR, &self.state_dir().display().to_string());
        let cfg =
            load_str(&self.dir.path().join("t.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
        let rs = cfg
            .redirect_server
            .as_ref()
            .expect("redirect-server enabled");
        let Ok(tls) = TlsHandle::prepare(rs, &cfg.appliance.state_dir) else {
            return false;
        };
        let next = self.published.load().generation + 1;
        self.published.publish(Snapshot::new(cfg, next));
        self.tls.install(tls);
        true
    }

    /// Cancels and waits (bounded) for every task of the service to end.
    pub(crate) async fn stop(mut self) {
        self.token.cancel();
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("the redirect server did not stop within 20 s of cancel")
            .unwrap();
    }
}

impl Drop for Redirector {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// `curl -sS -k` (a device trusts the untrusted server blindly) with `args`.
pub(crate) async fn curl(args: &[&str]) -> Out {
    let mut v = s(&["curl", "-sS", "-k", "--max-time", "20"]);
    v.extend(s(args));
    run(v, Duration::from_secs(30)).await
}

/// `openssl s_client` against `addr` with `args`; returns (exit ok, the server certificate's
/// public key algorithm as `openssl x509 -text` names it, the whole output).
pub(crate) fn s_client(addr: std::net::SocketAddr, args: &[&str]) -> (bool, String, String) {
    let mut v = s(&["openssl", "s_client", "-connect", &addr.to_string()]);
    v.extend(s(args));
    let out = run_blocking(&v, Duration::from_secs(20), Some(""));
    let text = format!("{}\n{}", out.stdout, out.stderr);
    let pem = text.find("-----BEGIN CERTIFICATE-----").and_then(|a| {
        text.find("-----END CERTIFICATE-----")
            .map(|b| &text[a..b + 25])
    });
    let alg = match pem {
        Some(p) => {
            let x = run_blocking(
                &s(&["openssl", "x509", "-noout", "-text"]),
                Duration::from_secs(10),
                Some(p),
            );
            x.stdout
                .lines()
                .find(|l| l.contains("Public Key Algorithm"))
                .map(|l| l.rsplit(':').next().unwrap().trim().to_string())
                .unwrap_or_default()
        }
        None => String::new(),
    };
    (out.ok() && pem.is_some(), alg, text)
}

/// The Python owner bootstrap-server double, running until dropped.
pub(crate) struct OwnerDouble {
    pub(crate) addr: SocketAddr,
    pub(crate) record: PathBuf,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl OwnerDouble {
    /// Starts the double on 127.0.0.1:0 with a certificate made by openssl; `redirect` makes
    /// it answer redirect-information naming those `host:port`s instead of onboarding.
    pub(crate) fn start(redirect: &[String]) -> OwnerDouble {
        Self::start_at(None, "127.0.0.1", redirect)
    }

    /// [`start`](Self::start) on `bind`:0, inside network namespace `netns` if given.
    pub(crate) fn start_at(netns: Option<&str>, bind: &str, redirect: &[String]) -> OwnerDouble {
        Self::start_full(netns, bind, redirect, None)
    }

    /// [`start`](Self::start) serving `cert` and `key` (PEM files), e.g. a certificate issued
    /// by a test CA that a signed redirect names as the trust anchor.
    #[allow(dead_code)]
    pub(crate) fn start_with_cert(cert: &Path, key: &Path, redirect: &[String]) -> OwnerDouble {
        Self::start_full(
            None,
            "127.0.0.1",
            redirect,
            Some((cert.to_path_buf(), key.to_path_buf())),
        )
    }

    fn start_full(
        netns: Option<&str>,
        bind: &str,
        redirect: &[String],
        cert_key: Option<(PathBuf, PathBuf)>,
    ) -> OwnerDouble {
        use std::io::BufRead;
        let dir = tempfile::Builder::new()
            .prefix("sztpt-owner-")
            .tempdir()
            .unwrap();
        let (cert, key) = cert_key
            .unwrap_or_else(|| openssl_self_signed(dir.path(), "owner", "/CN=owner.example.com"));
        let record = dir.path().join("arrivals.jsonl");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/owner_double.py");
        let mut cmd = match netns {
            // `ip netns exec` execs the program: killing the child kills the double
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, PYTHON]);
                c
            }
            None => Command::new(PYTHON),
        };
        cmd.arg(script)
            .arg("--bind")
            .arg(bind)
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("--record")
            .arg(&record);
        for r in redirect {
            cmd.arg("--redirect").arg(r);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the owner double");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("owner double said {line:?}"))
            .parse()
            .unwrap();
        OwnerDouble {
            addr,
            record,
            child,
            _dir: dir,
        }
    }

    /// Every request it received, oldest first.
    pub(crate) fn arrivals(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for OwnerDouble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prints every sample of the exposition in argv[1] as JSON, "name{k=v,…}" (labels sorted)
/// → value, parsed by the Python Prometheus client's text 0.0.4 parser (as tests/status_e2e.rs
/// does).
const PARSE_METRICS_PY: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
with open(sys.argv[1]) as f:
    for fam in text_string_to_metric_families(f.read()):
        for s in fam.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
"#;

/// Every sample of a `/metrics` text, parsed by Debian's python3-prometheus-client (a real
/// scraper's parser, not ours); panics when it refuses the text.
pub(crate) fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("parse.py");
    std::fs::write(&script, PARSE_METRICS_PY).unwrap();
    let input = dir.path().join("metrics.txt");
    std::fs::write(&input, text).unwrap();
    let out = std::process::Command::new(PYTHON)
        .arg(&script)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
