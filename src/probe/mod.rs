//! `probe`: behave like an SZTP device on a segment and print what it is told

pub mod dhcp4;
