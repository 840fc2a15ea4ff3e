//! `bundle`: removable-storage bootstrapping data (RFC 8572 §4.1) for a technician's USB stick, written from the same policy and owner material the servers use, and read back by `probe --bundle`
//!
//! RFC 8572 leaves names and layout to vendors. The default layout is the one IOS-XR's USB
//! loader reads (interop.md §7): `EN<enterprise-number>/<serial>/bootstrapping-data/` with
//! `conveyed-information.cms`, `owner-certificate.cms` and `ownership-voucher.vcj`; `flat`
//! writes `<serial>/` with the same file names.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use crate::config::Config;
use crate::owner::{conveyed, Conveyed, OwnerMaterial};
use crate::policy::{DeviceFacts, Serial, Source};
use crate::sztp::conveyed::{ContentFormat, RedirectEntry};
use crate::sztp::signed::format_date_and_time;
use crate::EXIT_CONFIG;

/// File name of the conveyed-information artifact (RFC 8572 §4.1 example name).
pub const CONVEYED_INFORMATION: &str = "conveyed-information.cms";
/// File name of the owner-certificate artifact.
pub const OWNER_CERTIFICATE: &str = "owner-certificate.cms";
/// File name of the ownership-voucher artifact (RFC 8366 `.vcj`).
pub const OWNERSHIP_VOUCHER: &str = "ownership-voucher.vcj";
/// IANA enterprise number of Cisco Systems, the default for the IOS-XR layout.
pub const CISCO_ENTERPRISE_NUMBER: u32 = 9;

/// Directory layout of a bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Layout {
    /// `EN<enterprise>/<serial>/bootstrapping-data/` (IOS-XR USB loader).
    IosXr,
    /// `<serial>/`.
    Flat,
}

/// Encoding of the conveyed information inside the bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BundleFormat {
    /// JSON, eContentType 1.43 (what IOS-XE parses).
    Json,
    /// XML, eContentType 1.42.
    Xml,
}

/// `bundle` options.
#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["serial", "all"])))]
pub struct BundleArgs {
    /// The configuration file (rules, bootstrap servers, [owner])
    #[arg(long, short)]
    pub config: PathBuf,
    /// The device's serial number (repeat for more)
    #[arg(long)]
    pub serial: Vec<String>,
    /// Every device with a voucher in owner.vouchers or a serial in a [[device]] entry
    #[arg(long)]
    pub all: bool,
    /// Output directory (created if missing; existing bundle files are replaced)
    #[arg(long)]
    pub out: PathBuf,
    /// Directory layout
    #[arg(long, value_enum, default_value_t = Layout::IosXr)]
    pub layout: Layout,
    /// IANA private enterprise number for the ios-xr layout's EN<number> directory
    #[arg(long, default_value_t = CISCO_ENTERPRISE_NUMBER)]
    pub enterprise: u32,
    /// Encoding of the redirect-information
    #[arg(long, value_enum, default_value_t = BundleFormat::Json)]
    pub format: BundleFormat,
    /// Also write unsigned bundles (devices without a voucher): a device processes them only
    /// provisionally and follows only their redirect
    #[arg(long)]
    pub unsigned: bool,
}

/// One device's bundle, before it is written.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// The serial number.
    pub serial: String,
    /// The artifacts.
    pub conveyed: Conveyed,
    /// Bootstrap servers named, `host:port`, most preferred first.
    pub targets: Vec<String>,
    /// The rule that chose them.
    pub rule: String,
    /// When the voucher expires (Unix seconds), if it does.
    pub voucher_expires: Option<i64>,
}

/// Builds the bundle of `serial` from `config`'s policy and `owner`: signed when a voucher
/// exists and has not expired at `now`. `Err` says why no bundle can be made.
pub fn build(
    config: &Config,
    owner: Option<&OwnerMaterial>,
    serial: &str,
    format: ContentFormat,
    now: u64,
) -> Result<Bundle, String> {
    let facts = DeviceFacts {
        source: Source::RemovableStorage,
        serial: Some(Serial {
            value: serial.to_string(),
            verified: false,
        }),
        ..DeviceFacts::default()
    };
    let decision = config
        .policy()
        .decide(&facts)
        .ok_or_else(|| format!("{serial}: no rule or [[device]] matches this serial"))?;
    if decision.excluded() {
        return Err(format!(
            "{serial}: rule {} excludes it (redirect-to = [])",
            decision.rule
        ));
    }
    let entries: Vec<RedirectEntry> = decision
        .bootstrap_servers
        .iter()
        .map(|b| RedirectEntry::from_uri(&b.uri))
        .collect();
    let names: Vec<&str> = decision
        .bootstrap_servers
        .iter()
        .map(|b| b.name.as_str())
        .collect();
    let c = conveyed(owner, true, Some(serial), format, &entries, &names, now)
        .map_err(|e| format!("{serial}: {e}"))?;
    Ok(Bundle {
        serial: serial.to_string(),
        conveyed: c,
        targets: entries
            .iter()
            .map(|e| format!("{}:{}", e.address, e.port))
            .collect(),
        rule: decision.rule,
        voucher_expires: owner
            .and_then(|o| o.voucher(serial))
            .and_then(|v| v.voucher.expires_on),
    })
}

/// The directory a device's files go to under `out`.
pub fn device_dir(out: &Path, layout: Layout, enterprise: u32, serial: &str) -> PathBuf {
    match layout {
        Layout::IosXr => out
            .join(format!("EN{enterprise}"))
            .join(serial)
            .join("bootstrapping-data"),
        Layout::Flat => out.join(serial),
    }
}

/// Writes `b`'s files into `dir` (created). Returns the file names written.
pub fn write(b: &Bundle, dir: &Path) -> std::io::Result<Vec<&'static str>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut put = |name: &'static str, bytes: &[u8]| -> std::io::Result<()> {
        std::fs::write(dir.join(name), bytes)?;
        written.push(name);
        Ok(())
    };
    match &b.conveyed {
        Conveyed::Signed(a) => {
            put(CONVEYED_INFORMATION, &a.conveyed_information)?;
            put(OWNER_CERTIFICATE, &a.owner_certificate)?;
            put(OWNERSHIP_VOUCHER, &a.ownership_voucher)?;
        }
        Conveyed::Unsigned(ci, _) => {
            put(CONVEYED_INFORMATION, ci)?;
            // a stale signed pair beside unsigned conveyed information would not verify
            for stale in [OWNER_CERTIFICATE, OWNERSHIP_VOUCHER] {
                match std::fs::remove_file(dir.join(stale)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
    }
    Ok(written)
}

/// The technician's README for the bundles written to `out`.
pub fn readme(bundles: &[(Bundle, PathBuf)], out: &Path, layout: Layout, now: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "SZTP bootstrapping data for removable storage (RFC 8572 section 4.1)\n\
         Written by sztp-redirector bundle on {}.\n\n\
         How to use: copy everything in this directory to the root of a USB stick formatted\n\
         FAT32, insert it into the device, and power the device on (factory default state).\n\
         The device reads its own directory, named after its serial number, checks the\n\
         signatures and contacts the bootstrap server named inside.\n",
        format_date_and_time(now as i64)
    );
    if layout == Layout::IosXr {
        s.push_str(
            "Layout: EN<enterprise-number>/<serial>/bootstrapping-data/ (IOS-XR USB loader).\n\n",
        );
    } else {
        s.push_str("Layout: <serial>/ (flat).\n\n");
    }
    for (b, dir) in bundles {
        let rel = dir.strip_prefix(out).unwrap_or(dir);
        let _ = writeln!(s, "Device {}  ({})", b.serial, rel.display());
        match &b.conveyed {
            Conveyed::Signed(a) => {
                let _ = writeln!(
                    s,
                    "  signed by the owner: {CONVEYED_INFORMATION}, {OWNER_CERTIFICATE}, \
                     {OWNERSHIP_VOUCHER}{}",
                    if a.nonceless {
                        ""
                    } else {
                        " (nonce-bound voucher)"
                    }
                );
                if let Some(e) = b.voucher_expires {
                    let _ = writeln!(
                        s,
                        "  the voucher expires on {}: use the stick before then",
                        format_date_and_time(e)
                    );
                }
            }
            Conveyed::Unsigned(_, r) => {
                let _ = writeln!(
                    s,
                    "  UNSIGNED ({}): {CONVEYED_INFORMATION} only; the device follows it only \
                     provisionally and must then get signed data from the server it names",
                    r.as_str()
                );
            }
        }
        let _ = writeln!(s, "  sends the device to: {}", b.targets.join(", "));
        let _ = writeln!(s, "  rule: {}\n", b.rule);
    }
    s
}

/// Every serial `--all` covers: vouchers, then `[[device]]` serials, deduplicated, sorted.
pub fn all_serials(config: &Config, owner: Option<&OwnerMaterial>) -> Vec<String> {
    let mut v: Vec<String> = owner
        .map(|o| o.vouchers.keys().cloned().collect())
        .unwrap_or_default();
    v.extend(config.devices.iter().filter_map(|d| d.serial.clone()));
    v.sort();
    v.dedup();
    v
}

/// `sztp-redirector bundle`: returns the exit code (0 written, 1 a device has no bundle or a
/// file cannot be written, 78 configuration error).
pub fn main(args: BundleArgs) -> i32 {
    let config = match crate::config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CONFIG;
        }
    };
    let now = crate::journal::unix_now();
    let loaded = crate::owner::load(&config, now);
    if !loaded.errors.is_empty() {
        eprintln!("{}", crate::config::ConfigErrors(loaded.errors));
        return EXIT_CONFIG;
    }
    for e in &loaded.expired {
        eprintln!("warning: {e}");
    }
    let owner = loaded.material.as_ref();
    let serials = if args.all {
        all_serials(&config, owner)
    } else {
        args.serial.clone()
    };
    if serials.is_empty() {
        eprintln!("bundle: no device: no voucher in owner.vouchers and no [[device]] serial");
        return 1;
    }
    let format = match args.format {
        BundleFormat::Json => ContentFormat::Json,
        BundleFormat::Xml => ContentFormat::Xml,
    };
    let mut bundles = Vec::new();
    let mut refused = Vec::new();
    for s in &serials {
        match build(&config, owner, s, format, now) {
            Ok(b) => {
                if let Conveyed::Unsigned(_, r) = &b.conveyed {
                    if !args.unsigned {
                        refused.push(format!(
                            "{s}: would be unsigned ({}); give --unsigned to write it anyway",
                            r.as_str()
                        ));
                        continue;
                    }
                }
                bundles.push(b);
            }
            Err(e) => refused.push(e),
        }
    }
    if !refused.is_empty() {
        // nothing is written when any device is refused: a half-made stick is worse than none
        for r in &refused {
            eprintln!("bundle: {r}");
        }
        return 1;
    }
    let mut written = Vec::new();
    for b in bundles {
        let dir = device_dir(&args.out, args.layout, args.enterprise, &b.serial);
        match write(&b, &dir) {
            Ok(files) => {
                let kind = match &b.conveyed {
                    Conveyed::Signed(_) => "signed".to_string(),
                    Conveyed::Unsigned(_, r) => format!("UNSIGNED ({})", r.as_str()),
                };
                println!("{}: {kind}: {}", dir.display(), files.join(" "));
                written.push((b, dir));
            }
            Err(e) => {
                eprintln!("bundle: {}: {e}", dir.display());
                return 1;
            }
        }
    }
    let text = readme(&written, &args.out, args.layout, now);
    if let Err(e) = std::fs::write(args.out.join("README.txt"), text) {
        eprintln!("bundle: {}: {e}", args.out.join("README.txt").display());
        return 1;
    }
    0
}

/// The artifacts found in a bundle directory: `dir` is a device directory, a flat bundle's
/// root (`<dir>/<serial>/`), or an IOS-XR bundle's root (`<dir>/EN*/<serial>/bootstrapping-data/`).
#[derive(Clone, Debug)]
pub struct FoundBundle {
    /// The directory holding the files.
    pub dir: PathBuf,
    /// conveyed-information.cms.
    pub conveyed_information: Vec<u8>,
    /// owner-certificate.cms and ownership-voucher.vcj, when both are there.
    pub signed: Option<(Vec<u8>, Vec<u8>)>,
}

/// Finds and reads a device's bundle under `dir` (see [`FoundBundle`]).
pub fn find(dir: &Path, serial: Option<&str>) -> Result<FoundBundle, String> {
    let mut candidates = vec![dir.to_path_buf()];
    if let Some(s) = serial {
        candidates.push(dir.join(s));
        candidates.push(dir.join(s).join("bootstrapping-data"));
        if let Ok(rd) = std::fs::read_dir(dir) {
            let mut ens: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("EN"))
                })
                .collect();
            ens.sort();
            for en in ens {
                candidates.push(en.join(s).join("bootstrapping-data"));
            }
        }
    }
    let found = candidates
        .into_iter()
        .find(|c| c.join(CONVEYED_INFORMATION).is_file())
        .ok_or_else(|| {
            format!(
                "{}: no {CONVEYED_INFORMATION} here{}",
                dir.display(),
                if serial.is_none() {
                    " (give --serial to look in <serial>/ or EN*/<serial>/bootstrapping-data/)"
                } else {
                    " nor under <serial>/ or EN*/<serial>/bootstrapping-data/"
                }
            )
        })?;
    let read = |n: &str| std::fs::read(found.join(n));
    let ci = read(CONVEYED_INFORMATION).map_err(|e| format!("{}: {e}", found.display()))?;
    let signed = match (read(OWNER_CERTIFICATE), read(OWNERSHIP_VOUCHER)) {
        (Ok(oc), Ok(ov)) => Some((oc, ov)),
        _ => None,
    };
    Ok(FoundBundle {
        dir: found,
        conveyed_information: ci,
        signed,
    })
}
