//! DHCPv4: wire helpers, the handler (pure), raw frames and sockets, and the server loop

pub(crate) mod frame;
pub mod handler;
pub mod reply;
pub mod server;
pub mod sockets;
pub mod wire;
