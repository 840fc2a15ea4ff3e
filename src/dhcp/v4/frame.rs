//! Ethernet/IPv4/UDP frames for replies sent straight to a client MAC (pnet), and their parsing
