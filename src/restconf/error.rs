//! RFC 8040 §7 errors: `ietf-restconf:errors` in JSON or XML, with the HTTP status they go with

use serde::Serialize;

use super::media::Encoding;
use crate::journal::RestconfReason;

/// XML namespace of the `ietf-restconf` module (RFC 8040 §8).
pub const RESTCONF_NS: &str = "urn:ietf:params:xml:ns:yang:ietf-restconf";

/// RFC 8040 §7.1 `error-type`: the layer the error belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorType {
    /// HTTP transport (size, rate, timeouts).
    Transport,
    /// The RPC layer.
    Rpc,
    /// The RESTCONF protocol (method, path, media type, syntax).
    Protocol,
    /// The YANG data itself (leaf values, policy).
    Application,
}

impl ErrorType {
    fn as_str(self) -> &'static str {
        match self {
            ErrorType::Transport => "transport",
            ErrorType::Rpc => "rpc",
            ErrorType::Protocol => "protocol",
            ErrorType::Application => "application",
        }
    }
}

/// One RESTCONF error, rendered as `{"ietf-restconf:errors":{"error":[{…}]}}` (or the XML
/// `<errors>`), sent with `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestconfError {
    /// HTTP status code (RFC 8040 §7 table: 400, 404, 405, 406, 413, 415, 429, 500, …).
    pub status: u16,
    /// `error-type`.
    pub error_type: ErrorType,
    /// `error-tag` (RFC 8040 §7 / RFC 6241 Appendix A), e.g. `malformed-message`.
    pub error_tag: &'static str,
    /// `error-message`; left out when empty.
    pub message: String,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
    /// `Retry-After` seconds, for a 429.
    pub retry_after: Option<u32>,
    /// Why, as the device journal records it.
    pub reason: RestconfReason,
}

impl RestconfError {
    fn new(
        status: u16,
        error_type: ErrorType,
        error_tag: &'static str,
        reason: RestconfReason,
        message: impl Into<String>,
    ) -> RestconfError {
        RestconfError {
            status,
            error_type,
            error_tag,
            message: message.into(),
            allow: None,
            retry_after: None,
            reason,
        }
    }

    /// 405 operation-not-supported with `Allow: allow` (digest TV9: no error-message, the
    /// body is exactly the RFC example's).
    pub fn method_not_allowed(allow: &'static str) -> RestconfError {
        let mut e = RestconfError::new(
            405,
            ErrorType::Protocol,
            "operation-not-supported",
            RestconfReason::WrongMethod,
            "",
        );
        e.allow = Some(allow);
        e
    }

    /// 404 invalid-value: no such resource (RFC 8040 §7 maps invalid-value to 404 for an
    /// unknown resource).
    pub fn not_found(reason: RestconfReason, message: impl Into<String>) -> RestconfError {
        RestconfError::new(404, ErrorType::Protocol, "invalid-value", reason, message)
    }

    /// 404 application/invalid-value: this device gets no redirect here (no rule, or its rule
    /// sends it nowhere; digest §4.5).
    pub fn no_redirect(reason: RestconfReason, message: impl Into<String>) -> RestconfError {
        RestconfError::new(
            404,
            ErrorType::Application,
            "invalid-value",
            reason,
            message,
        )
    }

    /// 403 access-denied: the device's rule needs a verified identity it did not prove (not
    /// 401: a challenge would invite devices to send a password, digest §4.5).
    pub fn access_denied(message: impl Into<String>) -> RestconfError {
        RestconfError::new(
            403,
            ErrorType::Protocol,
            "access-denied",
            RestconfReason::SerialNotVerified,
            message,
        )
    }

    /// 415: the request body is not YANG JSON or XML.
    pub fn unsupported_media_type(message: impl Into<String>) -> RestconfError {
        RestconfError::new(
            415,
            ErrorType::Protocol,
            "invalid-value",
            RestconfReason::UnsupportedMediaType,
            message,
        )
    }

    /// 406: the client accepts neither YANG JSON nor XML.
    pub fn not_acceptable() -> RestconfError {
        RestconfError::new(
            406,
            ErrorType::Protocol,
            "invalid-value",
            RestconfReason::NotAcceptable,
            "the Accept header allows neither application/yang-data+json nor application/yang-data+xml",
        )
    }

    /// 400 malformed-message: the body does not parse as the RPC's input.
    pub fn malformed(message: impl Into<String>) -> RestconfError {
        RestconfError::new(
            400,
            ErrorType::Protocol,
            "malformed-message",
            RestconfReason::MalformedMessage,
            message,
        )
    }

    /// 400 invalid-value: a leaf of the input has a bad type or value.
    pub fn invalid_value(message: impl Into<String>) -> RestconfError {
        RestconfError::new(
            400,
            ErrorType::Application,
            "invalid-value",
            RestconfReason::InvalidValue,
            message,
        )
    }

    /// 400 missing-element: a mandatory leaf of the input is absent.
    pub fn missing_element(message: impl Into<String>) -> RestconfError {
        RestconfError::new(
            400,
            ErrorType::Application,
            "missing-element",
            RestconfReason::InvalidValue,
            message,
        )
    }

    /// 413 too-big: the request body is over `limit` octets.
    pub fn too_big(limit: usize) -> RestconfError {
        RestconfError::new(
            413,
            ErrorType::Transport,
            "too-big",
            RestconfReason::TooBig,
            format!("the request body is larger than {limit} octets"),
        )
    }

    /// 408: the body did not arrive in time.
    pub fn timeout() -> RestconfError {
        RestconfError::new(
            408,
            ErrorType::Transport,
            "operation-failed",
            RestconfReason::Timeout,
            "the request body did not arrive within client-timeout",
        )
    }

    /// 429 resource-denied with `Retry-After: 1`: the source sent more than its share.
    pub fn rate_limited() -> RestconfError {
        let mut e = RestconfError::new(
            429,
            ErrorType::Transport,
            "resource-denied",
            RestconfReason::RateLimited,
            "too many requests from this address",
        );
        e.retry_after = Some(1);
        e
    }

    /// 500 operation-failed: our fault (a loop in the configuration, an internal error).
    pub fn operation_failed(reason: RestconfReason, message: impl Into<String>) -> RestconfError {
        RestconfError::new(
            500,
            ErrorType::Application,
            "operation-failed",
            reason,
            message,
        )
    }

    /// The body in `encoding`.
    pub fn render(&self, encoding: Encoding) -> Vec<u8> {
        match encoding {
            Encoding::Json => self.render_json().into_bytes(),
            Encoding::Xml => self.render_xml().into_bytes(),
        }
    }

    fn render_json(&self) -> String {
        #[derive(Serialize)]
        struct Error<'a> {
            #[serde(rename = "error-type")]
            error_type: ErrorType,
            #[serde(rename = "error-tag")]
            error_tag: &'a str,
            #[serde(rename = "error-message", skip_serializing_if = "str::is_empty")]
            message: &'a str,
        }
        #[derive(Serialize)]
        struct Errors<'a> {
            error: [Error<'a>; 1],
        }
        #[derive(Serialize)]
        struct Doc<'a> {
            #[serde(rename = "ietf-restconf:errors")]
            errors: Errors<'a>,
        }
        let doc = Doc {
            errors: Errors {
                error: [Error {
                    error_type: self.error_type,
                    error_tag: self.error_tag,
                    message: &self.message,
                }],
            },
        };
        // strings and enums only: serializing cannot fail
        serde_json::to_string(&doc).unwrap_or_default()
    }

    fn render_xml(&self) -> String {
        let mut out = format!(
            "<errors xmlns=\"{RESTCONF_NS}\"><error><error-type>{}</error-type><error-tag>{}</error-tag>",
            self.error_type.as_str(),
            self.error_tag
        );
        if !self.message.is_empty() {
            out.push_str("<error-message>");
            out.push_str(&quick_xml::escape::escape(self.message.as_str()));
            out.push_str("</error-message>");
        }
        out.push_str("</error></errors>");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tv9_method_not_allowed_body() {
        let e = RestconfError::method_not_allowed("POST");
        assert_eq!(e.status, 405);
        assert_eq!(
            String::from_utf8(e.render(Encoding::Json)).unwrap(),
            r#"{"ietf-restconf:errors":{"error":[{"error-type":"protocol","error-tag":"operation-not-supported"}]}}"#
        );
    }

    #[test]
    fn xml_errors_escape_the_message() {
        let e = RestconfError::malformed("bad <input> & more");
        let xml = String::from_utf8(e.render(Encoding::Xml)).unwrap();
        assert_eq!(
            xml,
            "<errors xmlns=\"urn:ietf:params:xml:ns:yang:ietf-restconf\"><error><error-type>protocol</error-type><error-tag>malformed-message</error-tag><error-message>bad &lt;input&gt; &amp; more</error-message></error></errors>"
        );
    }
}
