//! The two RPCs of `ietf-sztp-bootstrap-server` (RFC 8572 §7.2) on the wire: input parsing
//! (JSON per RFC 7951, XML per RFC 7950), lenient as devices need it, and output rendering
//!
//! Pure functions over bytes. Lenient means: unknown input members are ignored, an empty body
//! is an empty input (every input leaf is optional), an empty `nonce` (the OPI agent's) is no
//! nonce, and RFC 9646 CSR members are noted and otherwise ignored. Wrong JSON/XML syntax is
//! `malformed-message`, a wrong leaf type or value `invalid-value`.

use std::str::FromStr;

use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

use super::error::RestconfError;
use super::media::Encoding;

/// XML namespace of `ietf-sztp-bootstrap-server` (RFC 8572 §7.2).
pub const BOOTSTRAP_SERVER_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server";
/// Module name of `ietf-sztp-bootstrap-server`, the JSON member prefix.
pub const BOOTSTRAP_SERVER_MODULE: &str = "ietf-sztp-bootstrap-server";
/// XML namespace of `ietf-sztp-csr` (RFC 9646 §3.2).
pub const SZTP_CSR_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-sztp-csr";

/// Deepest XML element nesting accepted in a request (the inputs are two levels deep; CSR
/// members a few more).
const MAX_XML_DEPTH: usize = 32;

/// Input of `get-bootstrapping-data` (RFC 8572 §7.2; RFC 9646 §3.2 augments).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetBootstrappingDataInput {
    /// `signed-data-preferred` (type empty) was present.
    pub signed_data_preferred: bool,
    /// `hw-model`.
    pub hw_model: Option<String>,
    /// `os-name`.
    pub os_name: Option<String>,
    /// `os-version`.
    pub os_version: Option<String>,
    /// `nonce`, 16..=32 octets; `None` when absent or empty.
    pub nonce: Option<Vec<u8>>,
    /// RFC 9646 `csr-support`, `p10-csr`, `cmc-csr` or `cmp-csr` was present.
    pub csr_offered: bool,
}

/// The 27 `progress-type` values of `report-progress` (RFC 8572 §7.2); each variant is the
/// YANG enum of the same name in kebab-case ([`ProgressType::as_str`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ProgressType {
    BootstrapInitiated,
    ParsingInitiated,
    ParsingWarning,
    ParsingError,
    ParsingComplete,
    BootImageInitiated,
    BootImageWarning,
    BootImageError,
    BootImageMismatch,
    BootImageInstalledRebooting,
    BootImageComplete,
    PreScriptInitiated,
    PreScriptWarning,
    PreScriptError,
    PreScriptComplete,
    ConfigInitiated,
    ConfigWarning,
    ConfigError,
    ConfigComplete,
    PostScriptInitiated,
    PostScriptWarning,
    PostScriptError,
    PostScriptComplete,
    BootstrapWarning,
    BootstrapError,
    BootstrapComplete,
    Informational,
}

impl ProgressType {
    /// Every value, in the module's order.
    pub const ALL: [ProgressType; 27] = {
        use ProgressType::*;
        [
            BootstrapInitiated,
            ParsingInitiated,
            ParsingWarning,
            ParsingError,
            ParsingComplete,
            BootImageInitiated,
            BootImageWarning,
            BootImageError,
            BootImageMismatch,
            BootImageInstalledRebooting,
            BootImageComplete,
            PreScriptInitiated,
            PreScriptWarning,
            PreScriptError,
            PreScriptComplete,
            ConfigInitiated,
            ConfigWarning,
            ConfigError,
            ConfigComplete,
            PostScriptInitiated,
            PostScriptWarning,
            PostScriptError,
            PostScriptComplete,
            BootstrapWarning,
            BootstrapError,
            BootstrapComplete,
            Informational,
        ]
    };

    /// The YANG enum name, e.g. `bootstrap-initiated`.
    pub fn as_str(self) -> &'static str {
        use ProgressType::*;
        match self {
            BootstrapInitiated => "bootstrap-initiated",
            ParsingInitiated => "parsing-initiated",
            ParsingWarning => "parsing-warning",
            ParsingError => "parsing-error",
            ParsingComplete => "parsing-complete",
            BootImageInitiated => "boot-image-initiated",
            BootImageWarning => "boot-image-warning",
            BootImageError => "boot-image-error",
            BootImageMismatch => "boot-image-mismatch",
            BootImageInstalledRebooting => "boot-image-installed-rebooting",
            BootImageComplete => "boot-image-complete",
            PreScriptInitiated => "pre-script-initiated",
            PreScriptWarning => "pre-script-warning",
            PreScriptError => "pre-script-error",
            PreScriptComplete => "pre-script-complete",
            ConfigInitiated => "config-initiated",
            ConfigWarning => "config-warning",
            ConfigError => "config-error",
            ConfigComplete => "config-complete",
            PostScriptInitiated => "post-script-initiated",
            PostScriptWarning => "post-script-warning",
            PostScriptError => "post-script-error",
            PostScriptComplete => "post-script-complete",
            BootstrapWarning => "bootstrap-warning",
            BootstrapError => "bootstrap-error",
            BootstrapComplete => "bootstrap-complete",
            Informational => "informational",
        }
    }
}

impl FromStr for ProgressType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ProgressType::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or(())
    }
}

/// Input of `report-progress` (RFC 8572 §7.2). `ssh-host-keys` and `trust-anchor-certs` are
/// counted, not kept: the appliance does not act on them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportProgressInput {
    /// `progress-type` (mandatory).
    pub progress_type: ProgressType,
    /// `message`.
    pub message: Option<String>,
}

/// The output of `get-bootstrapping-data` (RFC 8572 §7.2): what the redirect server answers.
/// Never `reporting-level` (a redirect server has no onboarding-server feature), never
/// onboarding-information inside the conveyed information.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootstrapOutput {
    /// Unsigned conveyed information: the DER of a CMS ContentInfo holding
    /// redirect-information (RFC 8572 §3.1).
    Unsigned {
        /// DER ContentInfo; base64 on the wire.
        conveyed_information: Vec<u8>,
    },
    /// Signed data (RFC 8572 §3.5): redirect-information signed with the owner key, the owner
    /// certificate and the device's ownership voucher (see `crate::owner`).
    Signed {
        /// DER ContentInfo of id-signedData (eContentType 1.43 or 1.42).
        conveyed_information: Vec<u8>,
        /// DER certs-only SignedData with the owner chain.
        owner_certificate: Vec<u8>,
        /// The voucher file's bytes.
        ownership_voucher: Vec<u8>,
    },
}

impl BootstrapOutput {
    /// The conveyed-information DER.
    pub fn conveyed_information(&self) -> &[u8] {
        match self {
            BootstrapOutput::Unsigned {
                conveyed_information,
            }
            | BootstrapOutput::Signed {
                conveyed_information,
                ..
            } => conveyed_information,
        }
    }

    /// The response body: `{"ietf-sztp-bootstrap-server:output":{…}}` pretty-printed with two
    /// spaces (digest §4.6, 267 octets for TV5), or `<output xmlns="…">` indented the same way;
    /// signed data adds `owner-certificate` and `ownership-voucher` after
    /// `conveyed-information`, in the YANG order.
    pub fn render(&self, encoding: Encoding) -> Vec<u8> {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let ci = b64(self.conveyed_information());
        let (oc, ov) = match self {
            BootstrapOutput::Unsigned { .. } => (None, None),
            BootstrapOutput::Signed {
                owner_certificate,
                ownership_voucher,
                ..
            } => (Some(b64(owner_certificate)), Some(b64(ownership_voucher))),
        };
        match encoding {
            Encoding::Json => {
                #[derive(Serialize)]
                struct Output<'a> {
                    #[serde(rename = "conveyed-information")]
                    conveyed_information: &'a str,
                    #[serde(rename = "owner-certificate", skip_serializing_if = "Option::is_none")]
                    owner_certificate: Option<&'a str>,
                    #[serde(rename = "ownership-voucher", skip_serializing_if = "Option::is_none")]
                    ownership_voucher: Option<&'a str>,
                }
                #[derive(Serialize)]
                struct Doc<'a> {
                    #[serde(rename = "ietf-sztp-bootstrap-server:output")]
                    output: Output<'a>,
                }
                // string members only: serializing cannot fail
                serde_json::to_vec_pretty(&Doc {
                    output: Output {
                        conveyed_information: &ci,
                        owner_certificate: oc.as_deref(),
                        ownership_voucher: ov.as_deref(),
                    },
                })
                .unwrap_or_default()
            }
            Encoding::Xml => {
                let mut x = format!(
                    "<output xmlns=\"{BOOTSTRAP_SERVER_NS}\">\n  <conveyed-information>{ci}</conveyed-information>\n"
                );
                if let (Some(oc), Some(ov)) = (oc, ov) {
                    x.push_str(&format!(
                        "  <owner-certificate>{oc}</owner-certificate>\n  <ownership-voucher>{ov}</ownership-voucher>\n"
                    ));
                }
                x.push_str("</output>");
                x.into_bytes()
            }
        }
    }
}

/// Whether `body` is empty but for whitespace (an RPC without input, RFC 8040 §4.4.2).
fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// Parses `get-bootstrapping-data` input.
pub fn parse_get_bootstrapping_data(
    encoding: Encoding,
    body: &[u8],
) -> Result<GetBootstrappingDataInput, RestconfError> {
    if is_blank(body) {
        return Ok(GetBootstrappingDataInput::default());
    }
    match encoding {
        Encoding::Json => {
            let Some(input) = json_input(body)? else {
                return Ok(GetBootstrappingDataInput::default());
            };
            let mut out = GetBootstrappingDataInput::default();
            for (key, value) in &input {
                let (module, name) = split_member(key);
                if module == Some("ietf-sztp-csr") || is_csr_member(name) {
                    out.csr_offered = true;
                    continue;
                }
                if module.is_some_and(|m| m != BOOTSTRAP_SERVER_MODULE) {
                    continue;
                }
                match name {
                    "signed-data-preferred" => out.signed_data_preferred = json_empty(value)?,
                    "hw-model" => out.hw_model = Some(json_string(name, value)?),
                    "os-name" => out.os_name = Some(json_string(name, value)?),
                    "os-version" => out.os_version = Some(json_string(name, value)?),
                    "nonce" => out.nonce = nonce(&json_string(name, value)?)?,
                    _ => {}
                }
            }
            Ok(out)
        }
        Encoding::Xml => {
            let input = xml_input(body)?;
            let mut out = GetBootstrappingDataInput::default();
            for child in &input.children {
                if child.ns.as_deref() == Some(SZTP_CSR_NS) || is_csr_member(&child.name) {
                    out.csr_offered = true;
                    continue;
                }
                if child
                    .ns
                    .as_deref()
                    .is_some_and(|n| n != BOOTSTRAP_SERVER_NS)
                {
                    continue;
                }
                match child.name.as_str() {
                    "signed-data-preferred" => {
                        if !child.children.is_empty() || !child.text.trim().is_empty() {
                            return Err(RestconfError::invalid_value(
                                "signed-data-preferred is of type empty: it takes no value",
                            ));
                        }
                        out.signed_data_preferred = true;
                    }
                    "hw-model" => out.hw_model = Some(child.leaf()?),
                    "os-name" => out.os_name = Some(child.leaf()?),
                    "os-version" => out.os_version = Some(child.leaf()?),
                    "nonce" => out.nonce = nonce(&child.leaf()?)?,
                    _ => {}
                }
            }
            Ok(out)
        }
    }
}

/// Parses `report-progress` input; `progress-type` is mandatory.
pub fn parse_report_progress(
    encoding: Encoding,
    body: &[u8],
) -> Result<ReportProgressInput, RestconfError> {
    let missing = || RestconfError::missing_element("report-progress needs a progress-type");
    if is_blank(body) {
        return Err(missing());
    }
    let (progress, message) = match encoding {
        Encoding::Json => {
            let input = json_input(body)?.ok_or_else(missing)?;
            let mut progress = None;
            let mut message = None;
            for (key, value) in &input {
                let (module, name) = split_member(key);
                if module.is_some_and(|m| m != BOOTSTRAP_SERVER_MODULE) {
                    continue;
                }
                match name {
                    "progress-type" => progress = Some(json_string(name, value)?),
                    "message" => message = Some(json_string(name, value)?),
                    _ => {}
                }
            }
            (progress, message)
        }
        Encoding::Xml => {
            let input = xml_input(body)?;
            let mut progress = None;
            let mut message = None;
            for child in &input.children {
                if child
                    .ns
                    .as_deref()
                    .is_some_and(|n| n != BOOTSTRAP_SERVER_NS)
                {
                    continue;
                }
                match child.name.as_str() {
                    "progress-type" => progress = Some(child.leaf()?),
                    "message" => message = Some(child.leaf()?),
                    _ => {}
                }
            }
            (progress, message)
        }
    };
    let progress = progress.ok_or_else(missing)?;
    // identityref-style qualified values are tolerated: `ietf-sztp-bootstrap-server:…`
    let bare = progress
        .strip_prefix("ietf-sztp-bootstrap-server:")
        .unwrap_or(&progress);
    let progress_type = bare.parse().map_err(|_| {
        RestconfError::invalid_value(format!(
            "progress-type {progress:?} is not one of the 27 values of RFC 8572 §7.2"
        ))
    })?;
    Ok(ReportProgressInput {
        progress_type,
        message,
    })
}

fn is_csr_member(name: &str) -> bool {
    matches!(name, "csr-support" | "p10-csr" | "cmc-csr" | "cmp-csr")
}

/// `module:name` → (Some(module), name); `name` → (None, name) (RFC 7951 §4).
fn split_member(key: &str) -> (Option<&str>, &str) {
    match key.split_once(':') {
        Some((m, n)) => (Some(m), n),
        None => (None, key),
    }
}

/// The members of the JSON input object: `{"ietf-sztp-bootstrap-server:input": {…}}` (also
/// unqualified `input`); `Ok(None)` for `{}`.
fn json_input(body: &[u8]) -> Result<Option<Map<String, Value>>, RestconfError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| RestconfError::malformed(format!("the body is not JSON: {e}")))?;
    let Value::Object(mut top) = doc else {
        return Err(RestconfError::malformed(
            "the body is not a JSON object with ietf-sztp-bootstrap-server:input",
        ));
    };
    if top.is_empty() {
        return Ok(None);
    }
    let input = top
        .remove("ietf-sztp-bootstrap-server:input")
        .or_else(|| top.remove("input"))
        .ok_or_else(|| {
            RestconfError::malformed(
                "the JSON object has no ietf-sztp-bootstrap-server:input member",
            )
        })?;
    match input {
        Value::Object(m) => Ok(Some(m)),
        // an input without leaves written as null (seen from hand-written clients)
        Value::Null => Ok(None),
        _ => Err(RestconfError::malformed(
            "ietf-sztp-bootstrap-server:input is not a JSON object",
        )),
    }
}

fn json_string(name: &str, v: &Value) -> Result<String, RestconfError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(RestconfError::invalid_value(format!(
            "{name} must be a string"
        ))),
    }
}

/// A YANG `empty` leaf in JSON is `[null]` (RFC 7951 §6.9); `null` and `true` are tolerated,
/// `false` reads as absent.
fn json_empty(v: &Value) -> Result<bool, RestconfError> {
    match v {
        Value::Array(a) if a.len() == 1 && a[0].is_null() => Ok(true),
        Value::Null | Value::Bool(true) => Ok(true),
        Value::Bool(false) => Ok(false),
        _ => Err(RestconfError::invalid_value(
            "signed-data-preferred is of type empty: write it as [null]",
        )),
    }
}

/// The `nonce` leaf: base64 of 16..=32 octets (RFC 8572 §7.2). Empty is no nonce (the OPI
/// agent sends `""`).
fn nonce(text: &str) -> Result<Option<Vec<u8>>, RestconfError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| RestconfError::invalid_value(format!("nonce is not base64: {e}")))?;
    if !(16..=32).contains(&bytes.len()) {
        return Err(RestconfError::invalid_value(format!(
            "nonce must be 16 to 32 octets, not {}",
            bytes.len()
        )));
    }
    Ok(Some(bytes))
}

/// A parsed XML element: namespace, local name, its own text, its children.
#[derive(Debug, Default)]
struct Element {
    ns: Option<String>,
    name: String,
    text: String,
    children: Vec<Element>,
}

impl Element {
    /// The text of a leaf (trimmed); a leaf with child elements is an invalid value.
    fn leaf(&self) -> Result<String, RestconfError> {
        if !self.children.is_empty() {
            return Err(RestconfError::invalid_value(format!(
                "{} is a leaf: it takes text, not elements",
                self.name
            )));
        }
        Ok(self.text.trim().to_string())
    }
}

/// The `<input>` element, in the bootstrap-server namespace or in none.
fn xml_input(body: &[u8]) -> Result<Element, RestconfError> {
    let root = parse_xml(body).map_err(|m| RestconfError::malformed(format!("bad XML: {m}")))?;
    if root.name != "input" {
        return Err(RestconfError::malformed(format!(
            "the root element is <{}>, not <input>",
            root.name
        )));
    }
    match root.ns.as_deref() {
        None | Some(BOOTSTRAP_SERVER_NS) => {}
        Some(other) => {
            return Err(RestconfError::malformed(format!(
                "<input> is in namespace {other:?}, not {BOOTSTRAP_SERVER_NS:?}"
            )))
        }
    }
    if !root.text.trim().is_empty() {
        return Err(RestconfError::malformed(
            "<input> holds text outside its leaves",
        ));
    }
    Ok(root)
}

/// A small tree of the document: one root element, no DOCTYPE (no entity tricks), at most
/// [`MAX_XML_DEPTH`] levels.
fn parse_xml(body: &[u8]) -> Result<Element, String> {
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;

    let mut reader = quick_xml::NsReader::from_reader(body);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let (ns, ev) = reader.read_resolved_event().map_err(|e| e.to_string())?;
        let ns = match ns {
            ResolveResult::Bound(n) => Some(String::from_utf8_lossy(n.as_ref()).into_owned()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(p) => {
                return Err(format!(
                    "unknown namespace prefix {:?}",
                    String::from_utf8_lossy(&p)
                ))
            }
        };
        match ev {
            Event::Start(ref s) | Event::Empty(ref s) => {
                if root.is_some() {
                    return Err("content after the root element".into());
                }
                if stack.len() >= MAX_XML_DEPTH {
                    return Err(format!("elements nested deeper than {MAX_XML_DEPTH}"));
                }
                let name = std::str::from_utf8(s.local_name().as_ref())
                    .map_err(|_| "element name is not UTF-8".to_string())?
                    .to_string();
                let el = Element {
                    ns,
                    name,
                    ..Element::default()
                };
                if matches!(ev, Event::Empty(_)) {
                    close(&mut stack, &mut root, el);
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unbalanced end tag")?;
                close(&mut stack, &mut root, el);
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| e.to_string())?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err("text outside the root element".into()),
                }
            }
            Event::CData(c) => {
                let text = std::str::from_utf8(&c).map_err(|_| "CDATA is not UTF-8")?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(text),
                    None => return Err("CDATA outside the root element".into()),
                }
            }
            Event::DocType(_) => return Err("a DOCTYPE is not allowed".into()),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    root.ok_or_else(|| "no root element".into())
}

fn close(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Digest §4.6 request body (221 octets).
    pub(crate) const DIGEST_4_6_REQUEST: &str = "{\n  \"ietf-sztp-bootstrap-server:input\": {\n    \"signed-data-preferred\": [\n      null\n    ],\n    \"hw-model\": \"model-x\",\n    \"os-name\": \"vendor-os\",\n    \"os-version\": \"17.3R2.1\",\n    \"nonce\": \"AAECAwQFBgcICQoLDA0ODw==\"\n  }\n}";

    #[test]
    fn digest_json_request() {
        assert_eq!(DIGEST_4_6_REQUEST.len(), 221);
        let i =
            parse_get_bootstrapping_data(Encoding::Json, DIGEST_4_6_REQUEST.as_bytes()).unwrap();
        assert!(i.signed_data_preferred);
        assert_eq!(i.hw_model.as_deref(), Some("model-x"));
        assert_eq!(i.os_name.as_deref(), Some("vendor-os"));
        assert_eq!(i.os_version.as_deref(), Some("17.3R2.1"));
        assert_eq!(i.nonce, Some((0..16).collect()));
        assert!(!i.csr_offered);
    }

    #[test]
    fn lenient_json() {
        let p = |b: &str| parse_get_bootstrapping_data(Encoding::Json, b.as_bytes());
        assert_eq!(p("").unwrap(), GetBootstrappingDataInput::default());
        assert_eq!(p(" \n").unwrap(), GetBootstrappingDataInput::default());
        assert_eq!(p("{}").unwrap(), GetBootstrappingDataInput::default());
        // OPI agent: empty nonce, unknown members
        let i = p(r#"{"ietf-sztp-bootstrap-server:input":{"nonce":"","x-vendor":1,"signed-data-preferred":null}}"#).unwrap();
        assert_eq!(i.nonce, None);
        assert!(i.signed_data_preferred);
        let i = p(r#"{"ietf-sztp-bootstrap-server:input":{"ietf-sztp-csr:csr-support":{"csr-generation":{"supported-formats":{"format-identifier":["ietf-ztp-types:p10-csr"]}}}}}"#).unwrap();
        assert!(i.csr_offered);
        let i = p(r#"{"input":{"ietf-sztp-bootstrap-server:hw-model":"m","ietf-sztp-csr:p10-csr":"AAAA"}}"#).unwrap();
        assert_eq!(i.hw_model.as_deref(), Some("m"));
        assert!(i.csr_offered);
    }

    #[test]
    fn json_errors() {
        let p = |b: &str| parse_get_bootstrapping_data(Encoding::Json, b.as_bytes());
        let tag = |b: &str| p(b).unwrap_err().error_tag;
        assert_eq!(tag("{"), "malformed-message");
        assert_eq!(tag("[1]"), "malformed-message");
        assert_eq!(tag(r#"{"output":{}}"#), "malformed-message");
        assert_eq!(
            tag(r#"{"ietf-sztp-bootstrap-server:input":5}"#),
            "malformed-message"
        );
        assert_eq!(
            tag(r#"{"ietf-sztp-bootstrap-server:input":{"hw-model":5}}"#),
            "invalid-value"
        );
        assert_eq!(
            tag(r#"{"ietf-sztp-bootstrap-server:input":{"nonce":"AAEC"}}"#),
            "invalid-value"
        );
        assert_eq!(
            tag(r#"{"ietf-sztp-bootstrap-server:input":{"nonce":"!!"}}"#),
            "invalid-value"
        );
        assert_eq!(
            tag(r#"{"ietf-sztp-bootstrap-server:input":{"signed-data-preferred":"yes"}}"#),
            "invalid-value"
        );
        assert_eq!(
            p(r#"{"ietf-sztp-bootstrap-server:input":{"x":1}}"#)
                .unwrap()
                .hw_model,
            None
        );
    }

    #[test]
    fn xml_inputs() {
        let p = |b: &str| parse_get_bootstrapping_data(Encoding::Xml, b.as_bytes());
        let i = p(
            r#"<input xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server">
  <signed-data-preferred/>
  <hw-model>C9300-24T</hw-model>
  <os-version>17.18.1</os-version>
  <nonce>AAECAwQFBgcICQoLDA0ODw==</nonce>
</input>"#,
        )
        .unwrap();
        assert!(i.signed_data_preferred);
        assert_eq!(i.hw_model.as_deref(), Some("C9300-24T"));
        assert_eq!(i.os_version.as_deref(), Some("17.18.1"));
        assert_eq!(i.nonce.unwrap().len(), 16);
        let i = p(r#"<?xml version="1.0"?><!-- c --><sztp:input xmlns:sztp="urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server"><sztp:hw-model>a&amp;b</sztp:hw-model><csr-support xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-csr"><key-generation/></csr-support><other>x</other></sztp:input>"#).unwrap();
        assert_eq!(i.hw_model.as_deref(), Some("a&b"));
        assert!(i.csr_offered);
        // no namespace at all is tolerated
        assert!(
            p("<input><signed-data-preferred/></input>")
                .unwrap()
                .signed_data_preferred
        );
        assert!(p("<input/>").is_ok());
    }

    #[test]
    fn xml_errors() {
        let tag = |b: &str| {
            parse_get_bootstrapping_data(Encoding::Xml, b.as_bytes())
                .unwrap_err()
                .error_tag
        };
        assert_eq!(tag("<input>"), "malformed-message");
        assert_eq!(tag("<input></inptu>"), "malformed-message");
        assert_eq!(tag("<output/>"), "malformed-message");
        assert_eq!(tag(r#"<input xmlns="urn:x"/>"#), "malformed-message");
        assert_eq!(tag("<input/><input/>"), "malformed-message");
        assert_eq!(tag("text"), "malformed-message");
        assert_eq!(tag("<input>stray</input>"), "malformed-message");
        assert_eq!(tag("<x:input/>"), "malformed-message");
        assert_eq!(
            tag(r#"<!DOCTYPE input [<!ENTITY e "x">]><input><hw-model>&e;</hw-model></input>"#),
            "malformed-message"
        );
        assert_eq!(
            tag("<input><hw-model>&bogus;</hw-model></input>"),
            "malformed-message"
        );
        assert_eq!(
            tag("<input><hw-model><b/></hw-model></input>"),
            "invalid-value"
        );
        assert_eq!(
            tag("<input><signed-data-preferred>x</signed-data-preferred></input>"),
            "invalid-value"
        );
        assert_eq!(tag("<input><nonce>AA==</nonce></input>"), "invalid-value");
        let deep = format!("<input>{}{}</input>", "<a>".repeat(40), "</a>".repeat(40));
        assert_eq!(tag(&deep), "malformed-message");
    }

    #[test]
    fn report_progress_inputs() {
        let j = parse_report_progress(
            Encoding::Json,
            br#"{"ietf-sztp-bootstrap-server:input":{"progress-type":"bootstrap-initiated"}}"#,
        )
        .unwrap();
        assert_eq!(j.progress_type, ProgressType::BootstrapInitiated);
        assert_eq!(j.message, None);
        let x = parse_report_progress(
            Encoding::Xml,
            br#"<input xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server"><progress-type>bootstrap-complete</progress-type><message>done</message><ssh-host-keys><ssh-host-key><algorithm>ssh-ed25519</algorithm><key-data>AAAA</key-data></ssh-host-key></ssh-host-keys></input>"#,
        )
        .unwrap();
        assert_eq!(x.progress_type, ProgressType::BootstrapComplete);
        assert_eq!(x.message.as_deref(), Some("done"));
        let e = parse_report_progress(Encoding::Json, b"").unwrap_err();
        assert_eq!(e.error_tag, "missing-element");
        let e = parse_report_progress(
            Encoding::Json,
            br#"{"ietf-sztp-bootstrap-server:input":{"progress-type":"finished"}}"#,
        )
        .unwrap_err();
        assert_eq!(e.error_tag, "invalid-value");
        assert_eq!(ProgressType::ALL.len(), 27);
        for p in ProgressType::ALL {
            assert_eq!(p.as_str().parse::<ProgressType>(), Ok(p));
        }
    }

    #[test]
    fn tv9_output_bodies() {
        use crate::sztp::conveyed::{unsigned_redirect, ContentFormat, RedirectEntry};
        use crate::sztp::SztpUri;
        let entries = [RedirectEntry::from_uri(
            &SztpUri::parse("https://sztp.owner.example.com").unwrap(),
        )];
        let out = BootstrapOutput::Unsigned {
            conveyed_information: unsigned_redirect(ContentFormat::Json, &entries).unwrap(),
        };
        let json = String::from_utf8(out.render(Encoding::Json)).unwrap();
        assert_eq!(json.len(), 267);
        assert_eq!(json, "{\n  \"ietf-sztp-bootstrap-server:output\": {\n    \"conveyed-information\": \"MIGIBgsqhkiG9w0BCRABK6B5BHd7ImlldGYtc3p0cC1jb252ZXllZC1pbmZvOnJlZGlyZWN0LWluZm9ybWF0aW9uIjp7ImJvb3RzdHJhcC1zZXJ2ZXIiOlt7ImFkZHJlc3MiOiJzenRwLm93bmVyLmV4YW1wbGUuY29tIiwicG9ydCI6NDQzfV19fQ==\"\n  }\n}");
        let out = BootstrapOutput::Unsigned {
            conveyed_information: unsigned_redirect(ContentFormat::Xml, &entries).unwrap(),
        };
        let xml = String::from_utf8(out.render(Encoding::Xml)).unwrap();
        assert!(xml.starts_with("<output xmlns=\"urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server\">\n  <conveyed-information>MIHaBgsqhkiG9w0BCRABKqCBygSBxzxy"));
        assert!(xml.ends_with("PC9yZWRpcmVjdC1pbmZvcm1hdGlvbj4=</conveyed-information>\n</output>"));
    }
}
