//! Device identity (RFC 8572 §5.3, §9.16): the serial number from a TLS client certificate's
//! subject or an HTTP Basic user name, per `serial-from`
//!
//! Pure functions. Whether a certificate chain is verified against `client-ca` is decided at the
//! TLS layer ([`super::tls`]) and handed in as [`ClientCertificate::verified`].

use base64::Engine;
use der::asn1::ObjectIdentifier;
use der::Decode;
use x509_cert::ext::pkix::name::DirectoryString;

use crate::config::SerialFrom;
use crate::journal::IdentityMethod;
use crate::policy::Serial;

/// X.520 serialNumber, 2.5.4.5 (RFC 4519 §2.31).
pub const OID_SERIAL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.5");
/// X.520 commonName, 2.5.4.3 (RFC 4519 §2.3).
pub const OID_COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// What the subject of a client certificate says about the device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertificateSubject {
    /// The first subject serialNumber attribute, as written (Cisco SUDI:
    /// `PID:C9300-24T SN:FCW2129G03A`).
    pub serial_number: Option<String>,
    /// The first subject commonName attribute.
    pub common_name: Option<String>,
}

/// The client certificate of one TLS connection, read once per connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientCertificate {
    /// Its subject attributes; `None` when the certificate does not parse as X.509.
    pub subject: Option<CertificateSubject>,
    /// True when its chain was verified against the configured `client-ca`.
    pub verified: bool,
}

/// Why a certificate's subject could not be read.
#[derive(Debug, thiserror::Error)]
#[error("client certificate: {0}")]
pub struct SubjectError(#[from] der::Error);

/// The subject serialNumber and commonName of a DER X.509 certificate (RFC 5280 §4.1.2.6).
/// Attribute values in any DirectoryString form (PrintableString, UTF8String, TeletexString,
/// BMPString) are read; an attribute in another form counts as absent.
pub fn certificate_subject(der: &[u8]) -> Result<CertificateSubject, SubjectError> {
    let cert = x509_cert::Certificate::from_der(der)?;
    let subject = cert.tbs_certificate().subject();
    let first = |oid: ObjectIdentifier| {
        subject
            .iter()
            .filter(|atv| atv.oid == oid)
            .find_map(|atv| DirectoryString::try_from(&atv.value).ok())
            .map(|s| s.value().into_owned())
    };
    Ok(CertificateSubject {
        serial_number: first(OID_SERIAL_NUMBER),
        common_name: first(OID_COMMON_NAME),
    })
}

/// The device serial in a subject serialNumber value: Cisco's `PID:<pid> SN:<serial>` form
/// gives `<serial>`; any other value is taken whole (trimmed). `None` when nothing is left.
pub fn serial_from_serial_number(value: &str) -> Option<String> {
    let sn = value
        .split_whitespace()
        .find_map(|t| t.strip_prefix("SN:"))
        .unwrap_or(value)
        .trim();
    (!sn.is_empty()).then(|| sn.to_string())
}

/// The user name of an `Authorization: Basic …` header (RFC 7617 §2): the text before the
/// first colon of the decoded credentials. The password is never looked at. `None` for other
/// schemes, bad base64 or an empty user name.
pub fn basic_username(authorization: &str) -> Option<String> {
    let (scheme, creds) = authorization.trim().split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(creds.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let user = text.split(':').next().unwrap_or("");
    (!user.is_empty()).then(|| user.to_string())
}

/// The device's serial per `from`, with its provenance: verified only when it comes from a
/// certificate verified against `client-ca`; a Basic user name is always a claim.
pub fn device_serial(
    from: SerialFrom,
    certificate: Option<&ClientCertificate>,
    authorization: Option<&str>,
) -> (Option<Serial>, IdentityMethod) {
    let from_cert = |pick: fn(&CertificateSubject) -> Option<String>, method| {
        let cert = certificate?;
        let value = pick(cert.subject.as_ref()?)?;
        let serial = if cert.verified {
            Serial::verified(value)
        } else {
            Serial::claimed(value)
        };
        Some((Some(serial), method))
    };
    let found = match from {
        SerialFrom::SubjectSerialNumber => from_cert(
            |s| {
                s.serial_number
                    .as_deref()
                    .and_then(serial_from_serial_number)
            },
            IdentityMethod::SubjectSerialNumber,
        ),
        SerialFrom::SubjectCn => from_cert(
            |s| s.common_name.clone().filter(|c| !c.trim().is_empty()),
            IdentityMethod::SubjectCn,
        ),
        SerialFrom::BasicUsername => authorization
            .and_then(basic_username)
            .map(|u| (Some(Serial::claimed(u)), IdentityMethod::BasicUsername)),
    };
    found.unwrap_or((None, IdentityMethod::None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(dn: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            p.distinguished_name.push(t.clone(), *v);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn subject_attributes() {
        let der = cert_with(&[
            (
                rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]),
                "PID:C9300-24T SN:FCW2129G03A",
            ),
            (rcgen::DnType::CommonName, "C9300-24T-FCW2129G03A"),
        ]);
        let s = certificate_subject(&der).unwrap();
        assert_eq!(
            s.serial_number.as_deref(),
            Some("PID:C9300-24T SN:FCW2129G03A")
        );
        assert_eq!(s.common_name.as_deref(), Some("C9300-24T-FCW2129G03A"));
        let none = certificate_subject(&cert_with(&[])).unwrap();
        assert_eq!(none, CertificateSubject::default());
        assert!(certificate_subject(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
        assert!(certificate_subject(&[]).is_err());
    }

    #[test]
    fn cisco_and_plain_serials() {
        assert_eq!(
            serial_from_serial_number("PID:C9300-24T SN:FCW2129G03A").as_deref(),
            Some("FCW2129G03A")
        );
        assert_eq!(
            serial_from_serial_number(" SN123 ").as_deref(),
            Some("SN123")
        );
        assert_eq!(serial_from_serial_number("  "), None);
        assert_eq!(serial_from_serial_number("PID:x SN:"), None);
    }

    #[test]
    fn basic_user_names() {
        // "SN123:" and "SN123:secret"
        assert_eq!(basic_username("Basic U04xMjM6").as_deref(), Some("SN123"));
        assert_eq!(
            basic_username("basic  U04xMjM6c2VjcmV0").as_deref(),
            Some("SN123")
        );
        assert_eq!(basic_username("Bearer U04xMjM6"), None);
        assert_eq!(basic_username("Basic !!!"), None);
        assert_eq!(basic_username("Basic Og=="), None); // ":"
        assert_eq!(basic_username("Basic"), None);
    }

    #[test]
    fn provenance_follows_serial_from() {
        let cert = ClientCertificate {
            subject: Some(CertificateSubject {
                serial_number: Some("PID:X SN:ABC".into()),
                common_name: Some("cn-1".into()),
            }),
            verified: true,
        };
        let auth = Some("Basic U04xMjM6");
        assert_eq!(
            device_serial(SerialFrom::SubjectSerialNumber, Some(&cert), auth),
            (
                Some(Serial::verified("ABC")),
                IdentityMethod::SubjectSerialNumber
            )
        );
        assert_eq!(
            device_serial(SerialFrom::SubjectCn, Some(&cert), auth),
            (Some(Serial::verified("cn-1")), IdentityMethod::SubjectCn)
        );
        assert_eq!(
            device_serial(SerialFrom::BasicUsername, Some(&cert), auth),
            (
                Some(Serial::claimed("SN123")),
                IdentityMethod::BasicUsername
            )
        );
        let unverified = ClientCertificate {
            verified: false,
            ..cert
        };
        assert_eq!(
            device_serial(SerialFrom::SubjectSerialNumber, Some(&unverified), None).0,
            Some(Serial::claimed("ABC"))
        );
        assert_eq!(
            device_serial(SerialFrom::SubjectSerialNumber, None, auth),
            (None, IdentityMethod::None)
        );
    }
}
