//! Conveyed information (RFC 8572 §3.1, §6): redirect-information as JSON or XML, wrapped in an
//! unsigned CMS `ContentInfo`, and the strict decoders a device (our `probe`) uses
//!
//! The same bytes serve every source that carries conveyed information: the DNS `ci=` TXT value
//! (raw DER), the RESTCONF `conveyed-information` leaf (base64 of the DER) and the
//! removable-storage `conveyed-information.cms` file. Everything here is pure.

use cms::content_info::ContentInfo;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode};
use serde::{Deserialize, Serialize};

use super::uri::{Host, SztpUri};

/// id-ct-sztpConveyedInfoXML, 1.2.840.113549.1.9.16.1.42 (RFC 8572 §10.3).
pub const ID_CT_SZTP_CONVEYED_INFO_XML: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.42");
/// id-ct-sztpConveyedInfoJSON, 1.2.840.113549.1.9.16.1.43 (RFC 8572 §10.3).
pub const ID_CT_SZTP_CONVEYED_INFO_JSON: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.43");
/// id-ct-animaJSONVoucher, 1.2.840.113549.1.9.16.1.40 (RFC 8366 §8.3; RFC 8572 §3.3).
pub const ID_CT_ANIMA_JSON_VOUCHER: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.40");
/// id-signedData, 1.2.840.113549.1.7.2 (RFC 5652 §5.1).
pub const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");

/// XML namespace of the `ietf-sztp-conveyed-info` YANG module (RFC 8572 §6.3).
pub const CONVEYED_INFO_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-sztp-conveyed-info";

/// The encoding of conveyed information, which also picks the CMS content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContentFormat {
    /// `application/yang-data+json` body, eContentType 1.43.
    Json,
    /// `application/yang-data+xml` body, eContentType 1.42.
    Xml,
}

impl ContentFormat {
    /// The CMS content type that announces this encoding (RFC 8572 §3.1).
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            ContentFormat::Json => ID_CT_SZTP_CONVEYED_INFO_JSON,
            ContentFormat::Xml => ID_CT_SZTP_CONVEYED_INFO_XML,
        }
    }

    /// The encoding a content type announces; `None` for any other OID.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<ContentFormat> {
        if *oid == ID_CT_SZTP_CONVEYED_INFO_JSON {
            Some(ContentFormat::Json)
        } else if *oid == ID_CT_SZTP_CONVEYED_INFO_XML {
            Some(ContentFormat::Xml)
        } else {
            None
        }
    }
}

/// One `bootstrap-server` entry of redirect-information (RFC 8572 §6.3 `redirect-information`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectEntry {
    /// Host name or IP address, IPv6 without brackets.
    pub address: String,
    /// TCP port; always written, even when it is the default 443 (interop.md §4).
    pub port: u16,
    /// DER of a certs-only CMS SignedData holding the CA chain of this server's TLS certificate
    /// (RFC 8572 §6.3 `trust-anchor`). Only ever set in signed redirect-information: a device
    /// discards a trust anchor from an untrusted source.
    #[serde(
        rename = "trust-anchor",
        default,
        skip_serializing_if = "Option::is_none",
        with = "b64_opt"
    )]
    pub trust_anchor: Option<Vec<u8>>,
}

impl RedirectEntry {
    /// The entry for a bootstrap server URI: its host (brackets removed) and its port, 443
    /// when the URI has none.
    pub fn from_uri(uri: &SztpUri) -> RedirectEntry {
        let address = match &uri.host {
            Host::Name(n) => n.clone(),
            Host::V4(a) => a.to_string(),
            Host::V6(a) => a.to_string(),
        };
        RedirectEntry {
            address,
            port: uri.effective_port(),
            trust_anchor: None,
        }
    }
}

mod b64_opt {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedirectInformation {
    #[serde(rename = "bootstrap-server")]
    bootstrap_server: Vec<RedirectEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonDocument {
    #[serde(rename = "ietf-sztp-conveyed-info:redirect-information")]
    redirect_information: RedirectInformation,
}

/// Redirect-information as compact JSON (RFC 7951 encoding of RFC 8572 §6.3), e.g. digest TV5:
/// `{"ietf-sztp-conveyed-info:redirect-information":{"bootstrap-server":[{"address":"…","port":443}]}}`.
pub fn redirect_json(entries: &[RedirectEntry]) -> String {
    let doc = JsonDocument {
        redirect_information: RedirectInformation {
            bootstrap_server: entries.to_vec(),
        },
    };
    // serializing plain strings and integers cannot fail
    serde_json::to_string(&doc).unwrap_or_default()
}

fn xml_escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

/// Redirect-information as XML (RFC 8572 §6.3, namespace [`CONVEYED_INFO_NS`]), e.g. digest TV6.
pub fn redirect_xml(entries: &[RedirectEntry]) -> String {
    use base64::Engine;
    let mut out = format!("<redirect-information xmlns=\"{CONVEYED_INFO_NS}\">");
    for e in entries {
        out.push_str("<bootstrap-server><address>");
        out.push_str(&xml_escape(&e.address));
        out.push_str("</address><port>");
        out.push_str(&e.port.to_string());
        out.push_str("</port>");
        if let Some(ta) = &e.trust_anchor {
            out.push_str("<trust-anchor>");
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(ta));
            out.push_str("</trust-anchor>");
        }
        out.push_str("</bootstrap-server>");
    }
    out.push_str("</redirect-information>");
    out
}

/// The redirect-information document in `format`.
pub fn redirect_document(format: ContentFormat, entries: &[RedirectEntry]) -> Vec<u8> {
    match format {
        ContentFormat::Json => redirect_json(entries).into_bytes(),
        ContentFormat::Xml => redirect_xml(entries).into_bytes(),
    }
}

/// Errors building or reading conveyed information.
#[derive(Debug, thiserror::Error)]
pub enum ConveyedError {
    /// The DER is not a CMS ContentInfo (or is truncated, or has trailing bytes).
    #[error("not a CMS ContentInfo: {0}")]
    Der(#[from] der::Error),
    /// The ContentInfo's content type is neither 1.43 (JSON) nor 1.42 (XML).
    #[error("content type {0} is not SZTP conveyed information (1.2.840.113549.1.9.16.1.42/43)")]
    ContentType(ObjectIdentifier),
    /// The document is not valid redirect-information.
    #[error("conveyed information is not valid redirect-information: {0}")]
    Document(String),
}

/// An unsigned CMS ContentInfo (RFC 5652 §3) whose content is `[0] EXPLICIT OCTET STRING`
/// holding `document`, as RFC 8572 §3.1 requires for unsigned conveyed information. Returns the
/// DER (digest TV5: 139 octets for the one-server JSON redirect).
pub fn content_info(format: ContentFormat, document: &[u8]) -> Result<Vec<u8>, ConveyedError> {
    let octets = OctetString::new(document)?;
    let ci = ContentInfo {
        content_type: format.oid(),
        content: Any::encode_from(&octets)?,
    };
    Ok(ci.to_der()?)
}

/// Unsigned conveyed information holding redirect-information for `entries`: the DER a DNS
/// `ci=` TXT value, a RESTCONF `conveyed-information` leaf (after base64) or a bundle's
/// `conveyed-information.cms` carries.
pub fn unsigned_redirect(
    format: ContentFormat,
    entries: &[RedirectEntry],
) -> Result<Vec<u8>, ConveyedError> {
    content_info(format, &redirect_document(format, entries))
}

/// Reads an unsigned ContentInfo: its format and the document bytes. Signed data (content type
/// id-signedData) is reported as [`ConveyedError::ContentType`].
pub fn decode_content_info(der: &[u8]) -> Result<(ContentFormat, Vec<u8>), ConveyedError> {
    let ci = ContentInfo::from_der(der)?;
    let format = ContentFormat::from_oid(&ci.content_type)
        .ok_or(ConveyedError::ContentType(ci.content_type))?;
    let octets: OctetString = ci.content.decode_as()?;
    Ok((format, octets.into_bytes().into_vec()))
}

/// Parses redirect-information as a strict device decoder does (interop.md §4): JSON with no
/// member besides `ietf-sztp-conveyed-info:redirect-information`, entries with only `address`,
/// `port` and `trust-anchor`. A missing `port` is an error here (some devices read it as 0).
pub fn parse_redirect_json(doc: &[u8]) -> Result<Vec<RedirectEntry>, ConveyedError> {
    let d: JsonDocument =
        serde_json::from_slice(doc).map_err(|e| ConveyedError::Document(e.to_string()))?;
    Ok(d.redirect_information.bootstrap_server)
}

/// Parses XML redirect-information (RFC 8572 §6.3): `<redirect-information>` in the
/// conveyed-info namespace with `<bootstrap-server>` children holding `<address>`, `<port>`
/// and optionally `<trust-anchor>` (base64). Any other element is an error.
pub fn parse_redirect_xml(doc: &[u8]) -> Result<Vec<RedirectEntry>, ConveyedError> {
    use base64::Engine;
    use quick_xml::events::Event;
    let bad = |m: String| ConveyedError::Document(m);
    let mut reader = quick_xml::Reader::from_reader(doc);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut entries = Vec::new();
    // address, port and trust-anchor of the bootstrap-server being read
    type Partial = (Option<String>, Option<u16>, Option<Vec<u8>>);
    let mut cur: Option<Partial> = None;
    let mut buf = Vec::new();
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| bad(e.to_string()))?;
        match ev {
            Event::Start(s) => {
                let name = String::from_utf8_lossy(s.local_name().as_ref()).into_owned();
                let ok = match (path.len(), name.as_str()) {
                    (0, "redirect-information") => {
                        let ns = s
                            .attributes()
                            .flatten()
                            .find(|a| a.key.as_ref() == b"xmlns")
                            .map(|a| a.value.into_owned());
                        if ns.as_deref() != Some(CONVEYED_INFO_NS.as_bytes()) {
                            return Err(bad("redirect-information is not in the \
                                 ietf-sztp-conveyed-info namespace"
                                .into()));
                        }
                        true
                    }
                    (1, "bootstrap-server") => {
                        cur = Some((None, None, None));
                        true
                    }
                    (2, "address" | "port" | "trust-anchor") => true,
                    _ => false,
                };
                if !ok {
                    return Err(bad(format!("unexpected element <{name}>")));
                }
                path.push(name);
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| bad(e.to_string()))?.into_owned();
                if let (Some(leaf), Some(c)) = (path.last(), cur.as_mut()) {
                    match leaf.as_str() {
                        "address" => c.0 = Some(text),
                        "port" => {
                            c.1 = Some(
                                text.parse()
                                    .map_err(|_| bad(format!("bad port {text:?}")))?,
                            )
                        }
                        "trust-anchor" => {
                            c.2 = Some(
                                base64::engine::general_purpose::STANDARD
                                    .decode(text.as_bytes())
                                    .map_err(|e| bad(format!("trust-anchor: {e}")))?,
                            )
                        }
                        _ => return Err(bad(format!("unexpected text in <{leaf}>"))),
                    }
                }
            }
            Event::End(_) => {
                if path.pop().as_deref() == Some("bootstrap-server") {
                    match cur.take() {
                        Some((Some(address), Some(port), trust_anchor)) => {
                            entries.push(RedirectEntry {
                                address,
                                port,
                                trust_anchor,
                            })
                        }
                        _ => return Err(bad("bootstrap-server without address or port".into())),
                    }
                }
            }
            Event::Empty(s) => {
                let name = String::from_utf8_lossy(s.local_name().as_ref()).into_owned();
                return Err(bad(format!("unexpected empty element <{name}/>")));
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) => {}
            other => return Err(bad(format!("unexpected XML {other:?}"))),
        }
        buf.clear();
    }
    if entries.is_empty() {
        return Err(bad("no bootstrap-server".into()));
    }
    Ok(entries)
}

/// Decodes unsigned conveyed information DER down to its redirect entries, as a device would.
pub fn decode_unsigned_redirect(der: &[u8]) -> Result<Vec<RedirectEntry>, ConveyedError> {
    let (format, doc) = decode_content_info(der)?;
    match format {
        ContentFormat::Json => parse_redirect_json(&doc),
        ContentFormat::Xml => parse_redirect_xml(&doc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const TV5_JSON: &str = r#"{"ietf-sztp-conveyed-info:redirect-information":{"bootstrap-server":[{"address":"sztp.owner.example.com","port":443}]}}"#;
    const TV5_B64: &str = "MIGIBgsqhkiG9w0BCRABK6B5BHd7ImlldGYtc3p0cC1jb252ZXllZC1pbmZvOnJlZGlyZWN0LWluZm9ybWF0aW9uIjp7ImJvb3RzdHJhcC1zZXJ2ZXIiOlt7ImFkZHJlc3MiOiJzenRwLm93bmVyLmV4YW1wbGUuY29tIiwicG9ydCI6NDQzfV19fQ==";
    const TV6_XML: &str = r#"<redirect-information xmlns="urn:ietf:params:xml:ns:yang:ietf-sztp-conveyed-info"><bootstrap-server><address>sztp.owner.example.com</address><port>443</port></bootstrap-server></redirect-information>"#;
    const TV6_B64: &str = "MIHaBgsqhkiG9w0BCRABKqCBygSBxzxyZWRpcmVjdC1pbmZvcm1hdGlvbiB4bWxucz0idXJuOmlldGY6cGFyYW1zOnhtbDpuczp5YW5nOmlldGYtc3p0cC1jb252ZXllZC1pbmZvIj48Ym9vdHN0cmFwLXNlcnZlcj48YWRkcmVzcz5zenRwLm93bmVyLmV4YW1wbGUuY29tPC9hZGRyZXNzPjxwb3J0PjQ0MzwvcG9ydD48L2Jvb3RzdHJhcC1zZXJ2ZXI+PC9yZWRpcmVjdC1pbmZvcm1hdGlvbj4=";

    fn owner() -> Vec<RedirectEntry> {
        vec![RedirectEntry::from_uri(
            &SztpUri::parse("https://sztp.owner.example.com").unwrap(),
        )]
    }

    fn b64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    }

    #[test]
    fn tv5_json_redirect_der() {
        assert_eq!(redirect_json(&owner()), TV5_JSON);
        let der = unsigned_redirect(ContentFormat::Json, &owner()).unwrap();
        assert_eq!(der.len(), 139);
        assert_eq!(der, b64(TV5_B64));
        assert_eq!(decode_unsigned_redirect(&der).unwrap(), owner());
    }

    #[test]
    fn tv6_xml_redirect_der() {
        assert_eq!(redirect_xml(&owner()), TV6_XML);
        let der = unsigned_redirect(ContentFormat::Xml, &owner()).unwrap();
        assert_eq!(der.len(), 221);
        assert_eq!(
            &der[..22],
            &[
                0x30, 0x81, 0xda, 0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10,
                0x01, 0x2a, 0xa0, 0x81, 0xca, 0x04, 0x81, 0xc7
            ]
        );
        assert_eq!(der, b64(TV6_B64));
        assert_eq!(decode_unsigned_redirect(&der).unwrap(), owner());
    }

    #[test]
    fn ipv6_address_has_no_brackets_and_port_is_explicit() {
        let e = RedirectEntry::from_uri(&SztpUri::parse("https://[2001:db8::10]:8443").unwrap());
        assert_eq!(e.address, "2001:db8::10");
        assert_eq!(e.port, 8443);
        let json = redirect_json(&[e]);
        assert!(
            json.contains(r#"{"address":"2001:db8::10","port":8443}"#),
            "{json}"
        );
    }

    #[test]
    fn long_lists_use_two_octet_der_lengths() {
        let entries: Vec<RedirectEntry> = (0..6)
            .map(|i| RedirectEntry {
                address: format!("sztp-{i}.bootstrap.site-a.example.com"),
                port: 8443,
                trust_anchor: None,
            })
            .collect();
        let der = unsigned_redirect(ContentFormat::Json, &entries).unwrap();
        assert!(der.len() > 255);
        assert_eq!(&der[..2], &[0x30, 0x82]);
        assert_eq!(decode_unsigned_redirect(&der).unwrap(), entries);
    }

    #[test]
    fn strict_decoders_refuse_extra_members() {
        let extra = br#"{"ietf-sztp-conveyed-info:redirect-information":{"bootstrap-server":[{"address":"a","port":1,"x":2}]}}"#;
        assert!(parse_redirect_json(extra).is_err());
        let no_port = br#"{"ietf-sztp-conveyed-info:redirect-information":{"bootstrap-server":[{"address":"a"}]}}"#;
        assert!(parse_redirect_json(no_port).is_err());
        let reporting = br#"{"ietf-sztp-conveyed-info:redirect-information":{"bootstrap-server":[]},"reporting-level":"verbose"}"#;
        assert!(parse_redirect_json(reporting).is_err());
        let xml_extra = format!(
            "<redirect-information xmlns=\"{CONVEYED_INFO_NS}\"><bootstrap-server><address>a</address><port>1</port><x>2</x></bootstrap-server></redirect-information>"
        );
        assert!(parse_redirect_xml(xml_extra.as_bytes()).is_err());
        let wrong_ns = "<redirect-information xmlns=\"urn:x\"><bootstrap-server><address>a</address><port>1</port></bootstrap-server></redirect-information>";
        assert!(parse_redirect_xml(wrong_ns.as_bytes()).is_err());
    }

    #[test]
    fn trust_anchor_round_trips_in_both_formats() {
        let mut e = owner();
        e[0].trust_anchor = Some(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        let json = redirect_json(&e);
        assert!(json.contains(r#""trust-anchor":"MAMCAQE=""#), "{json}");
        assert_eq!(parse_redirect_json(json.as_bytes()).unwrap(), e);
        assert_eq!(parse_redirect_xml(redirect_xml(&e).as_bytes()).unwrap(), e);
    }

    #[test]
    fn other_content_types_are_refused() {
        let voucher = ContentInfo {
            content_type: ID_CT_ANIMA_JSON_VOUCHER,
            content: Any::encode_from(&OctetString::new(&b"{}"[..]).unwrap()).unwrap(),
        }
        .to_der()
        .unwrap();
        assert!(matches!(
            decode_content_info(&voucher),
            Err(ConveyedError::ContentType(_))
        ));
        assert!(decode_content_info(&[0x30, 0x03, 0x01]).is_err());
    }
}
