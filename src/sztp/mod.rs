//! SZTP wire specifics (RFC 8572), as pure functions over bytes: URIs, the bootstrap-server list and conveyed information

pub mod conveyed;
pub mod redirect_list;
pub mod signed;
pub mod uri;

pub use redirect_list::{decode_list, encode_list, encode_text, split_rfc3396, DecodedList};
pub use uri::{SztpUri, UriError, OPERATION_PATH};
