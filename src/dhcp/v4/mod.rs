//! DHCPv4: wire helpers, the handler (pure) and the server loop (sockets)
