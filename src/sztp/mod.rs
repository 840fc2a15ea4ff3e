//! SZTP wire specifics (RFC 8572), as pure functions over bytes: URIs and the bootstrap-server list

pub mod redirect_list;
pub mod uri;

pub use redirect_list::{decode_list, encode_list, encode_text, split_rfc3396, DecodedList};
pub use uri::{SztpUri, UriError, OPERATION_PATH};
