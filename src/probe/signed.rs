//! The device's checks of signed data (RFC 8572 §5.4) as `probe` prints them, and `probe --bundle` over a removable-storage bundle directory

use std::fmt::Write as _;
use std::path::Path;

use x509_cert::Certificate;

use crate::sztp::conveyed::{
    decode_content_info, parse_redirect_json, parse_redirect_xml, ContentFormat, RedirectEntry,
};
use crate::sztp::signed::{certs_only_certificates, verify_bootstrapping_data, Verified};

/// Reads a PEM file of manufacturer trust anchors (`--manufacturer-ca`).
pub(crate) fn read_anchors(path: &Path) -> Result<Vec<Certificate>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = Certificate::load_pem_chain(&bytes)
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", path.display()));
    }
    Ok(certs)
}

/// One line per check: `ok    name: detail` or `FAIL  name: why`.
pub(crate) fn render_checks(v: &Verified, out: &mut String) {
    for c in &v.checks {
        let _ = match &c.result {
            Ok(d) => writeln!(out, "ok    {}: {d}", c.name),
            Err(e) => writeln!(out, "FAIL  {}: {e}", c.name),
        };
    }
}

/// The redirect entries of a conveyed-information document.
pub(crate) fn redirect_entries(
    format: ContentFormat,
    doc: &[u8],
) -> Result<Vec<RedirectEntry>, String> {
    match format {
        ContentFormat::Json => parse_redirect_json(doc),
        ContentFormat::Xml => parse_redirect_xml(doc),
    }
    .map_err(|e| e.to_string())
}

/// `redirect: host:port (trust-anchor: subjects)` per entry.
pub(crate) fn render_redirect(entries: &[RedirectEntry], out: &mut String) {
    for e in entries {
        let ta = match &e.trust_anchor {
            None => String::new(),
            Some(der) => match certs_only_certificates("trust-anchor", der) {
                Ok(certs) => format!(
                    " (trust-anchor: {})",
                    certs
                        .iter()
                        .map(|c| c.tbs_certificate().subject().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Err(err) => format!(" (trust-anchor unreadable: {err})"),
            },
        };
        let _ = writeln!(out, "redirect: {}:{}{ta}", e.address, e.port);
    }
}

/// `probe --bundle DIR`: verifies the bundle as a device reading removable storage does.
/// Returns the exit code: 0 a signed bundle that verifies or an unsigned redirect, 2 a check
/// failed, 1 the bundle cannot be read.
pub(crate) fn bundle_main(dir: &Path, serial: Option<&str>, manufacturer: Option<&Path>) -> i32 {
    let found = match crate::bundle::find(dir, serial) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("probe: {e}");
            return 1;
        }
    };
    let mut out = format!("bundle {}\n", found.dir.display());
    let code = match &found.signed {
        Some((oc, ov)) => {
            let anchors = match manufacturer.map(read_anchors).transpose() {
                Ok(a) => a.unwrap_or_default(),
                Err(e) => {
                    eprintln!("probe: --manufacturer-ca {e}");
                    return 1;
                }
            };
            let v = verify_bootstrapping_data(
                &found.conveyed_information,
                oc,
                ov,
                &anchors,
                serial,
                crate::journal::unix_now(),
            );
            render_checks(&v, &mut out);
            match &v.document {
                Some((oid, doc)) if v.ok() => {
                    let format = ContentFormat::from_oid(oid).unwrap_or(ContentFormat::Json);
                    match redirect_entries(format, doc) {
                        Ok(entries) => {
                            out.push_str("signed redirect-information: trusted\n");
                            render_redirect(&entries, &mut out);
                            0
                        }
                        Err(e) => {
                            let _ = writeln!(out, "FAIL  redirect-information: {e}");
                            2
                        }
                    }
                }
                _ => 2,
            }
        }
        None => match decode_content_info(&found.conveyed_information) {
            Ok((format, doc)) => match redirect_entries(format, &doc) {
                Ok(entries) => {
                    out.push_str(
                        "unsigned redirect-information: followed only provisionally (a device \
                         discards its trust anchors and then requires signed data)\n",
                    );
                    render_redirect(&entries, &mut out);
                    0
                }
                Err(e) => {
                    let _ = writeln!(out, "FAIL  redirect-information: {e}");
                    2
                }
            },
            Err(e) => {
                let _ = writeln!(
                    out,
                    "FAIL  conveyed-information: {e} (signed data needs owner-certificate.cms and \
                     ownership-voucher.vcj beside it)"
                );
                2
            }
        },
    };
    // names and messages come from the bundle's files: printed escaped, line by line
    for l in out.lines() {
        println!("{}", crate::text::Printable(l));
    }
    code
}
