//! `run`: bind the sockets the file names, serve, reload on SIGHUP, stop on SIGTERM/SIGINT
