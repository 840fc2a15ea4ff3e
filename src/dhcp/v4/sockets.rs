//! DHCPv4 sockets: one UDP socket per served interface (SO_BINDTODEVICE), interface facts, raw sender
