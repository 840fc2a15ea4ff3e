//! DHCPv6 (RFC 8415) with option 136: wire format, bindings, the handler (pure) and the server loop

pub mod bindings;
pub mod handler;
pub mod server;
pub mod wire;
