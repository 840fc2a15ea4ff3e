//! The bootstrap-server-list of DHCPv4 option 143 / DHCPv6 option 136 (RFC 8572 §8.3) and the
//! RFC 3396 split of a long DHCPv4 option

use super::uri::SztpUri;

/// `uri-length (u16, network order) ‖ URI`, repeated, in preference order.
pub fn encode_list<S: AsRef<str>>(uris: &[S]) -> Vec<u8> {
    let mut out = Vec::with_capacity(uris.iter().map(|u| u.as_ref().len() + 2).sum());
    for u in uris {
        let b = u.as_ref().as_bytes();
        let len = u16::try_from(b.len()).expect("a URI is far shorter than 64 KiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(b);
    }
    out
}

/// The legacy `text` form (ISC `code 143 = text`): the bare string of the most preferred URI,
/// with no length prefix. Only one URI fits this form.
pub fn encode_text<S: AsRef<str>>(uris: &[S]) -> Vec<u8> {
    uris.first()
        .map(|u| u.as_ref().as_bytes().to_vec())
        .unwrap_or_default()
}

/// What a client makes of a received list: the valid URIs and the entries it must ignore.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DecodedList {
    /// Valid entries, in order.
    pub uris: Vec<String>,
    /// Entries that were not `https://host[:port]` (ignored, per §8.1/§8.2).
    pub ignored: Vec<String>,
    /// The list ended inside an entry; what came before is kept.
    pub truncated: bool,
}

impl DecodedList {
    /// RFC 8572: a client discards the whole option when no valid entry remains.
    pub fn is_usable(&self) -> bool {
        !self.uris.is_empty()
    }
}

/// Decode a (reassembled) bootstrap-server-list the way a strict RFC 8572 client does.
pub fn decode_list(mut data: &[u8]) -> DecodedList {
    let mut out = DecodedList::default();
    while !data.is_empty() {
        if data.len() < 2 {
            out.truncated = true;
            break;
        }
        let len = u16::from_be_bytes([data[0], data[1]]) as usize;
        if data.len() - 2 < len {
            out.truncated = true;
            break;
        }
        let raw = &data[2..2 + len];
        data = &data[2 + len..];
        let text = String::from_utf8_lossy(raw).into_owned();
        if std::str::from_utf8(raw).is_ok() && SztpUri::parse(&text).is_ok() {
            out.uris.push(text);
        } else {
            out.ignored.push(text);
        }
    }
    out
}

/// Emit a DHCPv4 option as TLVs, split per RFC 3396 into consecutive instances of at most 255
/// octets only when it does not fit in one. An empty value gives one zero-length instance.
pub fn split_rfc3396(code: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 2 * (value.len() / 255 + 1));
    if value.is_empty() {
        out.extend_from_slice(&[code, 0]);
        return out;
    }
    for chunk in value.chunks(255) {
        out.push(code);
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
    out
}

/// Octets on the wire of a value of `len` octets after the RFC 3396 split.
pub fn rfc3396_wire_len(len: usize) -> usize {
    len + 2 * len.div_ceil(255).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    // digest §16 TV1
    #[test]
    fn tv1_two_uris() {
        let uris = ["https://sztp1.example.com", "https://[2001:db8::10]:8443"];
        let want = hex(
            "8f 38
            00 19 68 74 74 70 73 3a 2f 2f 73 7a 74 70 31 2e 65 78 61 6d 70 6c 65 2e 63 6f 6d
            00 1b 68 74 74 70 73 3a 2f 2f 5b 32 30 30 31 3a 64 62 38 3a 3a 31 30 5d 3a 38 34 34 33",
        );
        assert_eq!(split_rfc3396(143, &encode_list(&uris)), want);
        let d = decode_list(&want[2..]);
        assert_eq!(d.uris, uris);
        let parsed: Vec<_> = d.uris.iter().map(|u| SztpUri::parse(u).unwrap()).collect();
        assert_eq!(parsed[0].effective_port(), 443);
        assert_eq!(parsed[1].effective_port(), 8443);
    }

    // digest §16 TV1b
    #[test]
    fn tv1b_ipv4_literal() {
        let want =
            hex("8f 19 00 17 68 74 74 70 73 3a 2f 2f 31 39 32 2e 30 2e 32 2e 31 30 3a 38 34 34 33");
        assert_eq!(
            split_rfc3396(143, &encode_list(&["https://192.0.2.10:8443"])),
            want
        );
    }

    // digest §16 TV2: the same payload in DHCPv6 option 136
    #[test]
    fn tv2_v6_payload_is_the_same_list() {
        let uris = ["https://sztp1.example.com", "https://[2001:db8::10]:8443"];
        let p = encode_list(&uris);
        let mut opt = vec![0x00, 0x88];
        opt.extend_from_slice(&(p.len() as u16).to_be_bytes());
        opt.extend_from_slice(&p);
        assert_eq!(&opt[..4], &hex("00 88 00 38")[..]);
        assert_eq!(opt.len(), 60);
    }

    // digest §16 TV3: six 48-octet URIs, 300 octets, split 255 + 45 inside the 6th URI
    #[test]
    fn tv3_long_option_split() {
        let uris: Vec<String> = (1..=6)
            .map(|n| format!("https://sztp-{n}.bootstrap.site-a.example.com:8443"))
            .collect();
        assert!(uris.iter().all(|u| u.len() == 48));
        let list = encode_list(&uris);
        assert_eq!(list.len(), 300);
        let wire = split_rfc3396(143, &list);
        assert_eq!(wire.len(), 304);
        assert_eq!(rfc3396_wire_len(300), 304);
        assert_eq!(&wire[..4], &[0x8f, 0xff, 0x00, 0x30]);
        // end of instance 1: ":8443" then "00 30" "htt"
        assert_eq!(&wire[252..257], &hex("00 30 68 74 74")[..]);
        let second = &wire[257..];
        assert_eq!(&second[..2], &[0x8f, 0x2d]);
        assert_eq!(
            &second[2..],
            b"ps://sztp-6.bootstrap.site-a.example.com:8443"
        );
        let mut joined = wire[2..257].to_vec();
        joined.extend_from_slice(&second[2..]);
        assert_eq!(decode_list(&joined).uris, uris);
    }

    #[test]
    fn never_split_when_it_fits() {
        let list = vec![b'a'; 255];
        let wire = split_rfc3396(143, &list);
        assert_eq!(wire.len(), 257);
        assert_eq!(wire.iter().filter(|&&b| b == 143).count(), 1);
        assert_eq!(split_rfc3396(143, &vec![b'a'; 256]).len(), 260);
    }

    // digest §16 TV4
    #[test]
    fn tv4_negative_cases() {
        let mixed = hex("8f 25 00 10 68 74 74 70 3a 2f 2f 31 39 32 2e 30 2e 32 2e 31 00 11 68 74 74 70 73 3a 2f 2f 31 39 32 2e 30 2e 32 2e 32");
        let d = decode_list(&mixed[2..]);
        assert_eq!(d.uris, ["https://192.0.2.2"]);
        assert_eq!(d.ignored, ["http://192.0.2.1"]);

        let truncated = hex("8f 13 00 28 68 74 74 70 73 3a 2f 2f 31 39 32 2e 30 2e 32 2e 32");
        let d = decode_list(&truncated[2..]);
        assert!(d.truncated);
        assert!(!d.is_usable());

        let d = decode_list(&encode_list(&["https://192.0.2.2/restconf"]));
        assert!(!d.is_usable());
    }

    // peers-and-crates §7: the payload Kea 2.2, dnsmasq and dhcproto all produced
    #[test]
    fn kea_captured_vector() {
        let kea = hex("001f68747470733a2f2f737a7470312e6578616d706c652e746573743a38343433001a68747470733a2f2f5b323030313a6462383a3a315d3a38343433");
        let uris = [
            "https://sztp1.example.test:8443",
            "https://[2001:db8::1]:8443",
        ];
        assert_eq!(encode_list(&uris), kea);
        assert_eq!(&split_rfc3396(143, &kea)[..2], &[0x8f, 0x3d]);
        // interop.md golden vector
        assert_eq!(
            encode_list(&["https://10.1.1.3:8080"]),
            hex("00 15 68 74 74 70 73 3a 2f 2f 31 30 2e 31 2e 31 2e 33 3a 38 30 38 30")
        );
    }

    #[test]
    fn text_form_is_the_bare_first_uri() {
        assert_eq!(
            encode_text(&["https://192.0.2.1:8443", "https://x"]),
            b"https://192.0.2.1:8443"
        );
    }
}
