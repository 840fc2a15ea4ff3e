//! RESTCONF media types (RFC 8040 §5.2, §11.3): the request's Content-Type and Accept negotiation

use crate::sztp::conveyed::ContentFormat;

/// `application/yang-data+json` (RFC 8040 §11.3.2).
pub const YANG_DATA_JSON: &str = "application/yang-data+json";
/// `application/yang-data+xml` (RFC 8040 §11.3.1).
pub const YANG_DATA_XML: &str = "application/yang-data+xml";

/// The encoding of a RESTCONF message body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// YANG JSON (RFC 7951), `application/yang-data+json`.
    Json,
    /// YANG XML (RFC 7950 §7), `application/yang-data+xml`.
    Xml,
}

impl Encoding {
    /// The media type a response in this encoding is labelled with (always the registered,
    /// hyphenated form).
    pub fn media_type(self) -> &'static str {
        match self {
            Encoding::Json => YANG_DATA_JSON,
            Encoding::Xml => YANG_DATA_XML,
        }
    }

    /// The matching conveyed-information encoding (CMS content type 1.43 or 1.42).
    pub fn content_format(self) -> ContentFormat {
        match self {
            Encoding::Json => ContentFormat::Json,
            Encoding::Xml => ContentFormat::Xml,
        }
    }
}

/// `type/subtype` of a media type, lowercased, parameters and whitespace removed.
fn essence(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn named_encoding(essence: &str) -> Option<Encoding> {
    match essence {
        // the dotted forms are the typo in RFC 8572 §7.2's examples (digest §13 item 1); some
        // clients copied it
        YANG_DATA_JSON | "application/yang.data+json" => Some(Encoding::Json),
        YANG_DATA_XML | "application/yang.data+xml" => Some(Encoding::Xml),
        _ => None,
    }
}

/// The encoding a request's `Content-Type` announces: the YANG JSON and XML types (parameters
/// such as `charset` ignored), and RFC 8572's misspelt `application/yang.data+xml`. `None`:
/// unsupported (415).
pub fn request_encoding(content_type: &str) -> Option<Encoding> {
    named_encoding(&essence(content_type))
}

/// The `Accept` header allows neither YANG encoding (406).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotAcceptable;

/// The response encoding for `accept` (RFC 7231 §5.3.2: the most specific range names each
/// type's quality, the higher quality wins); `preferred` when there is no header, when it
/// allows both equally, or on a tie. `Err` when it allows neither.
pub fn negotiate(accept: Option<&str>, preferred: Encoding) -> Result<Encoding, NotAcceptable> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(preferred);
    };
    // per encoding: (specificity, quality) of the most specific range naming it
    let mut json: Option<(u8, u16)> = None;
    let mut xml: Option<(u8, u16)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let ess = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .find_map(parse_qvalue)
            .unwrap_or(1000);
        let (spec, applies_json, applies_xml) = match ess.as_str() {
            "*/*" => (0, true, true),
            "application/*" => (1, true, true),
            e => match named_encoding(e) {
                Some(Encoding::Json) => (2, true, false),
                Some(Encoding::Xml) => (2, false, true),
                None => continue,
            },
        };
        for (applies, slot) in [(applies_json, &mut json), (applies_xml, &mut xml)] {
            if applies && slot.is_none_or(|(s, _)| spec > s) {
                *slot = Some((spec, q));
            }
        }
    }
    let qj = json.map_or(0, |(_, q)| q);
    let qx = xml.map_or(0, |(_, q)| q);
    match (qj, qx) {
        (0, 0) => Err(NotAcceptable),
        (j, x) if j == x => Ok(preferred),
        (j, x) if j > x => Ok(Encoding::Json),
        _ => Ok(Encoding::Xml),
    }
}

/// `q=0.5` → 500 (thousandths); `None` when malformed.
fn parse_qvalue(s: &str) -> Option<u16> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int: u16 = match int {
        "0" => 0,
        "1" => 1,
        _ => return None,
    };
    let mut f: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        f += u16::from(b - b'0') * [100, 10, 1][i];
    }
    let q = int * 1000 + f;
    (q <= 1000).then_some(q)
}

/// Whether an `Accept` header prefers JSON (`application/json` or `application/jrd+json`) to
/// XRD for host-meta (RFC 6415 §6: JRD on request, XRD otherwise).
pub fn wants_jrd(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let mut best_json = 0;
    let mut best_xml = 0;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let ess = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(parse_qvalue)
            .unwrap_or(1000);
        match ess.as_str() {
            "application/json" | "application/jrd+json" => best_json = best_json.max(q),
            "application/xrd+xml" | "application/xml" | "text/xml" => best_xml = best_xml.max(q),
            _ => {}
        }
    }
    best_json > best_xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(
            request_encoding("application/yang-data+json"),
            Some(Encoding::Json)
        );
        assert_eq!(
            request_encoding("Application/YANG-Data+XML; charset=utf-8"),
            Some(Encoding::Xml)
        );
        assert_eq!(
            request_encoding("application/yang.data+xml"),
            Some(Encoding::Xml)
        );
        assert_eq!(request_encoding("text/plain"), None);
        assert_eq!(request_encoding("application/json"), None);
        assert_eq!(request_encoding(""), None);
    }

    #[test]
    fn accept_negotiation() {
        use Encoding::*;
        assert_eq!(negotiate(None, Xml), Ok(Xml));
        assert_eq!(negotiate(Some("*/*"), Xml), Ok(Xml));
        assert_eq!(negotiate(Some("application/*"), Json), Ok(Json));
        assert_eq!(negotiate(Some(YANG_DATA_JSON), Xml), Ok(Json));
        assert_eq!(negotiate(Some("application/yang.data+xml"), Json), Ok(Xml));
        assert_eq!(
            negotiate(
                Some("application/yang-data+xml;q=0.5, application/yang-data+json"),
                Xml
            ),
            Ok(Json)
        );
        assert_eq!(
            negotiate(Some("application/yang-data+json;q=0, */*"), Json),
            Ok(Xml)
        );
        assert_eq!(negotiate(Some("text/html"), Json), Err(NotAcceptable));
        assert_eq!(
            negotiate(Some("application/yang-data+json;q=0"), Json),
            Err(NotAcceptable)
        );
        assert_eq!(negotiate(Some("  "), Json), Ok(Json));
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("0.5"), Some(500));
        assert_eq!(parse_qvalue("0.001"), Some(1));
        assert_eq!(parse_qvalue("1.5"), None);
        assert_eq!(parse_qvalue("0.0001"), None);
        assert_eq!(parse_qvalue("x"), None);
    }

    #[test]
    fn host_meta_formats() {
        assert!(!wants_jrd(None));
        assert!(!wants_jrd(Some("application/xrd+xml")));
        assert!(wants_jrd(Some("application/json")));
        assert!(!wants_jrd(Some(
            "application/json;q=0.5, application/xrd+xml"
        )));
        assert!(!wants_jrd(Some("*/*")));
    }
}
