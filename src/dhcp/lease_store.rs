//! Durable journals in state-dir, generic over their record type: append-only, fsync'd in
//! groups, replayed at start, compacted. DHCPv4 leases ([`Lease4`], `leases4.journal`) are one
//! record type; another (DHCPv6 leases) implements [`JournalRecord`] and gets the same
//! framing, torn-tail rule, compaction, recovery, salvage and group commit.
//!
//! One record per change, each one line (here a `Lease4`):
//!
//! ```text
//! 1c2d3e4f {"addr":"192.0.2.10","mac":"00:11:22:33:44:55","expires":1795810500,"state":"bound"}
//! ```
//!
//! The 8 hex digits are the CRC-32C (Castagnoli) of the JSON bytes. Replay keeps the last record
//! per key ([`JournalRecord::key`], the address for leases). Only an incomplete last line (no
//! newline: a write torn by a crash, which was never fsync'd and so never acknowledged) is
//! dropped, and the file truncated to the last good record. A complete line that fails its
//! checksum or does not parse is corruption wherever it is, the last line included: an error
//! naming `FILE:LINE` and the way out ([`salvage`], `sztp-redirector leases --salvage`); a lease
//! database that silently forgets leases hands out addresses that are in use.
//!
//! Compaction writes the live set to `<file>.tmp`, fsyncs it and renames it over the
//! journal; the rename is the commit point, so a leftover temp file is an unfinished compaction
//! and is removed at open.
//!
//! A failed append is cut back off the file. When even that fails (the file turned immutable,
//! an I/O error) the journal refuses appends until a later append manages the cut (it retries
//! each time) or a compaction replaces the file: writing resumes by itself once the cause is
//! gone, and nothing is acknowledged meanwhile.
//!
//! Every file is opened under the state directory's descriptor without following links
//! ([`StateDir`]).
//!
//! [`JournalWriter`] is the group commit: one thread owns the [`Journal`], and everything queued
//! while it was busy goes out in one write and one `fdatasync`; only then do the callbacks (the
//! replies) run.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::dhcp::leases::{Lease4, LeaseState};
use crate::dhcp::v6::bindings::Lease6;
use crate::journal::rfc3339;
use crate::policy::client_id_text;
use crate::ratelimit::LogLimiter;
use crate::state_dir::{Access, StateDir};

/// The DHCPv4 lease journal's file name in state-dir.
pub const JOURNAL_FILE: &str = "leases4.journal";
/// Where compaction writes the new DHCPv4 journal before renaming it over [`JOURNAL_FILE`].
pub const COMPACT_TMP_FILE: &str = "leases4.journal.tmp";

/// A record type a [`Journal`] stores: serialized as one JSON object per line; at replay the
/// last record per [`key`](JournalRecord::key) wins.
pub trait JournalRecord: Serialize + DeserializeOwned + Send + 'static {
    /// What a record describes (an address): replay keeps the last record per key and returns
    /// them sorted by key.
    type Key: Ord;
    /// The journal's file name in state-dir, e.g. `leases4.journal`; compaction uses
    /// `<FILE_NAME>.tmp` beside it.
    const FILE_NAME: &'static str;
    /// This record's key.
    fn key(&self) -> Self::Key;
}

impl JournalRecord for Lease4 {
    type Key = std::net::Ipv4Addr;
    const FILE_NAME: &'static str = JOURNAL_FILE;
    fn key(&self) -> std::net::Ipv4Addr {
        self.addr
    }
}

fn tmp_name<R: JournalRecord>() -> String {
    format!("{}.tmp", R::FILE_NAME)
}

/// A lease journal that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The journal or its directory cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The state directory or a file in it cannot be opened (a link, not a regular file, …);
    /// the message names the path.
    #[error("{0}")]
    State(#[source] io::Error),
    /// A complete record that fails its checksum or does not parse, anywhere in the file.
    #[error(
        "{}:{line}: corrupt lease record ({reason}); the journal is left as it is: \
         `sztp-redirector leases --salvage --state-dir {}` keeps every valid record and \
         moves the damaged file aside",
        path.display(),
        path.parent().unwrap_or(Path::new(".")).display()
    )]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing the printed leases failed.
    #[error("writing the lease list: {0}")]
    Output(#[source] io::Error),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// CRC-32C (Castagnoli, the iSCSI polynomial 0x1EDC6F41; RFC 3720 §B.4) of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
    CRC32C.checksum(data)
}

fn encode_record<R: JournalRecord>(rec: &R, buf: &mut Vec<u8>) -> io::Result<()> {
    // serde_json escapes control characters inside strings, so the JSON never holds a newline.
    let json = serde_json::to_vec(rec).map_err(io::Error::other)?;
    write!(buf, "{:08x} ", crc32c(&json))?;
    buf.extend_from_slice(&json);
    buf.push(b'\n');
    Ok(())
}

fn decode_record<R: JournalRecord>(line: &[u8]) -> Result<R, String> {
    if line.len() < 10 || line[8] != b' ' {
        return Err("expected 8 hex digits of checksum, a space and JSON".into());
    }
    let crc = std::str::from_utf8(&line[..8])
        .ok()
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or("checksum is not 8 hex digits")?;
    let json = &line[9..];
    if crc32c(json) != crc {
        return Err("checksum mismatch".into());
    }
    serde_json::from_slice(json).map_err(|e| format!("bad JSON: {e}"))
}

/// What a replay found.
struct Replay<R> {
    /// Latest record per key, sorted by key.
    leases: Vec<R>,
    /// Good records in the file.
    records: u64,
    /// Bytes up to the end of the last good record.
    good_len: u64,
    /// An incomplete last line (a torn write): its line number.
    torn: Option<usize>,
}

/// One line of a journal: its number, its bytes (without the newline), whether it ended with
/// a newline.
fn lines(data: &[u8]) -> impl Iterator<Item = (usize, &[u8], bool)> + '_ {
    let mut pos = 0usize;
    let mut n = 0usize;
    std::iter::from_fn(move || {
        if pos >= data.len() {
            return None;
        }
        n += 1;
        let rest = &data[pos..];
        Some(match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                pos += i + 1;
                (n, &rest[..i], true)
            }
            None => {
                pos = data.len();
                (n, rest, false)
            }
        })
    })
}

fn replay<R: JournalRecord>(path: &Path, data: &[u8]) -> Result<Replay<R>, StoreError> {
    let mut latest: BTreeMap<R::Key, R> = BTreeMap::new();
    let mut records = 0u64;
    let mut good_len = 0u64;
    let mut torn = None;
    for (line_no, line, complete) in lines(data) {
        if !complete {
            // only the one write a crash can tear, never fsync'd, never acknowledged
            torn = Some(line_no);
            break;
        }
        match decode_record::<R>(line) {
            Ok(rec) => {
                latest.insert(rec.key(), rec);
                records += 1;
                good_len += line.len() as u64 + 1;
            }
            Err(reason) => {
                return Err(StoreError::Corrupt {
                    path: path.to_owned(),
                    line: line_no,
                    reason,
                })
            }
        }
    }
    Ok(Replay {
        leases: latest.into_values().collect(),
        records,
        good_len,
        torn,
    })
}

/// An open journal of `R` records. Not shared: one owner (normally the [`JournalWriter`]
/// thread) appends.
#[derive(Debug)]
pub struct Journal<R> {
    dir: StateDir,
    path: PathBuf,
    file: File,
    /// Bytes of whole, fsync'd records; a failed append is cut back to this.
    good_len: u64,
    records: u64,
    /// Set when a failed append could not be cut back: appending after the leftover bytes
    /// would turn them into corruption that stops the next start. Each append first retries
    /// the cut.
    poisoned: Option<String>,
    records_type: std::marker::PhantomData<fn(R)>,
}

/// The DHCPv4 lease journal.
pub type LeaseStore = Journal<Lease4>;

impl<R: JournalRecord> Journal<R> {
    /// Opens `dir/<R::FILE_NAME>` (creating `dir` and the file if missing) without following
    /// links, and replays it: the latest record per key, sorted by key. For leases: all
    /// states; expiry is the caller's.
    ///
    /// An incomplete last line (torn write) is dropped with a warning and cut off the file.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for any complete line that fails its checksum or does not parse;
    /// [`StoreError::State`] when `dir` or the file is a link or not what it should be;
    /// [`StoreError::Io`] when reading or truncating fails.
    pub fn open(dir: &Path) -> Result<(Journal<R>, Vec<R>), StoreError> {
        let dir = StateDir::create(dir).map_err(StoreError::State)?;
        let tmp = tmp_name::<R>();
        if dir.exists(&tmp).map_err(StoreError::State)? {
            tracing::warn!(file = %dir.join(&tmp).display(), "removing the temp file of an unfinished compaction");
            dir.remove(&tmp).map_err(StoreError::State)?;
        }
        let path = dir.join(R::FILE_NAME);
        let existed = dir.exists(R::FILE_NAME).map_err(StoreError::State)?;
        let mut file = dir
            .open_file(R::FILE_NAME, Access::ReadAppendCreate)
            .map_err(StoreError::State)?;
        if !existed {
            dir.sync().map_err(StoreError::State)?;
        }
        let mut data = Vec::new();
        io::Read::read_to_end(&mut file, &mut data).map_err(io_err(&path))?;
        let r = replay::<R>(&path, &data)?;
        if let Some(line) = r.torn {
            tracing::warn!(
                file = %path.display(),
                line,
                dropped_bytes = data.len() as u64 - r.good_len,
                "{}:{line}: ignoring torn last lease record (no trailing newline); truncating",
                path.display()
            );
            file.set_len(r.good_len)
                .and_then(|()| file.sync_all())
                .map_err(io_err(&path))?;
        }
        let store = Journal {
            dir,
            path,
            file,
            good_len: r.good_len,
            records: r.records,
            poisoned: None,
            records_type: std::marker::PhantomData,
        };
        Ok((store, r.leases))
    }

    /// Appends `recs` with one write and one `fdatasync`; `Ok` means they are on disk.
    ///
    /// # Errors
    /// The write or the sync failed (what reached the file is cut back off), or an earlier
    /// failure's leftover still cannot be cut off.
    pub fn append(&mut self, recs: &[R]) -> io::Result<()> {
        if self.poisoned.is_some() {
            self.recover()?;
        }
        if recs.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(recs.len() * 128);
        for r in recs {
            encode_record(r, &mut buf)?;
        }
        match self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
        {
            Ok(()) => {
                self.good_len += buf.len() as u64;
                self.records += recs.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.cut_back();
                Err(e)
            }
        }
    }

    /// After a failed write or fsync, removes whatever part of it reached the file: those
    /// records were never acknowledged, and a partial line left in the middle would be fatal.
    fn cut_back(&mut self) {
        if let Err(e) = self
            .file
            .set_len(self.good_len)
            .and_then(|()| self.file.sync_all())
        {
            tracing::error!(
                file = %self.path.display(),
                error = %e,
                "cannot cut a failed append off the lease journal; retrying before the next append"
            );
            self.poisoned = Some(e.to_string());
        }
    }

    /// Retries the cut that failed: once it works, appending is safe again.
    fn recover(&mut self) -> io::Result<()> {
        let why = self.poisoned.clone().unwrap_or_default();
        match self
            .file
            .set_len(self.good_len)
            .and_then(|()| self.file.sync_all())
        {
            Ok(()) => {
                tracing::info!(file = %self.path.display(), "the leftover of a failed append is cut off: appending again");
                self.poisoned = None;
                Ok(())
            }
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!(
                    "{}: not appending until the leftover of an earlier failed write is cut \
                     off ({why}; retried: {e})",
                    self.path.display()
                ),
            )),
        }
    }

    /// Whether appends are refused until a failed write's leftover is cut off.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Replaces the journal with one holding exactly `live`, then keeps appending to it.
    ///
    /// On an error before the rename the old journal stays in use; compaction is also the way
    /// out of a store that refuses appends after a failure.
    ///
    /// # Errors
    /// The temp file cannot be written, synced or renamed (the old journal stays in use), or
    /// the directory cannot be synced after the rename.
    pub fn compact(&mut self, live: &[R]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(live.len() * 128);
        for r in live {
            encode_record(r, &mut buf)?;
        }
        let tmp = tmp_name::<R>();
        let written = self.dir.remove(&tmp).and_then(|()| {
            let mut f = self.dir.open_file(&tmp, Access::CreateNew)?;
            f.write_all(&buf)?;
            f.sync_all()?;
            self.dir.rename(&tmp, R::FILE_NAME)?;
            Ok(f)
        });
        let file = match written {
            Ok(f) => f,
            Err(e) => {
                let _ = self.dir.remove(&tmp);
                return Err(e);
            }
        };
        // Renamed: the old file is unlinked, so from here on only the new one can be appended to.
        self.file = file;
        self.good_len = buf.len() as u64;
        self.records = live.len() as u64;
        self.poisoned = None;
        self.dir.sync()
    }

    /// Records in the file: replayed at open or written by the last compaction, plus appended
    /// since.
    pub fn len_records(&self) -> u64 {
        self.records
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Replays `dir/leases4.journal` without changing anything: [`read_records`] for [`Lease4`].
///
/// # Errors
/// As [`read_records`].
pub fn read_leases(dir: &Path) -> Result<Vec<Lease4>, StoreError> {
    read_records::<Lease4>(dir)
}

/// Replays `dir/<R::FILE_NAME>` without changing anything: a torn last record is skipped but
/// not cut off, and nothing is created. A missing journal in an existing `dir` is no records.
///
/// # Errors
/// [`StoreError::Corrupt`] as at open; `dir` missing, a link, or unreadable.
pub fn read_records<R: JournalRecord>(dir: &Path) -> Result<Vec<R>, StoreError> {
    let path = dir.join(R::FILE_NAME);
    let sd = StateDir::open(dir).map_err(StoreError::State)?;
    let mut data = Vec::new();
    match sd.open_file(R::FILE_NAME, Access::Read) {
        Ok(mut f) => {
            io::Read::read_to_end(&mut f, &mut data).map_err(io_err(&path))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::State(e)),
    }
    records_from_bytes(&path, &data)
}

/// Replays the bytes of a journal (as read from `path`, for messages): what [`read_records`]
/// does after reading the file. Never panics, whatever `data` holds.
///
/// # Errors
/// [`StoreError::Corrupt`] for a complete line that fails its checksum or does not parse.
pub fn records_from_bytes<R: JournalRecord>(
    path: &Path,
    data: &[u8],
) -> Result<Vec<R>, StoreError> {
    let r = replay::<R>(path, data)?;
    if let Some(line) = r.torn {
        tracing::warn!(
            file = %path.display(),
            line,
            "{}:{line}: ignoring torn last lease record (no trailing newline)",
            path.display()
        );
    }
    Ok(r.leases)
}

/// What [`salvage`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salvaged {
    /// The journal.
    pub path: PathBuf,
    /// Valid records kept, in file order.
    pub kept: u64,
    /// Damaged lines left out: (1-based line number, why).
    pub dropped: Vec<(usize, String)>,
    /// Where the damaged file now is (`None`: nothing was damaged, nothing changed).
    pub moved_to: Option<PathBuf>,
}

/// The way out of a [`StoreError::Corrupt`] journal: writes a new `dir/<R::FILE_NAME>` with
/// every valid record of the old one, in file order (so replay gives what the valid records
/// say), and keeps the damaged file aside as `<FILE_NAME>.damaged-<unix seconds>` (a hard link
/// made before the atomic rename, so the journal exists at every instant). An incomplete last
/// line counts as damaged here too. The caller makes sure no daemon uses `dir` (the state-dir
/// lock).
///
/// # Errors
/// `dir` or the journal cannot be read, the new file cannot be written, or the names cannot
/// be changed (then the damaged journal is still in place).
pub fn salvage<R: JournalRecord>(dir: &Path, now: u64) -> Result<Salvaged, StoreError> {
    let sd = StateDir::open(dir).map_err(StoreError::State)?;
    let path = sd.join(R::FILE_NAME);
    let mut data = Vec::new();
    match sd.open_file(R::FILE_NAME, Access::Read) {
        Ok(mut f) => {
            io::Read::read_to_end(&mut f, &mut data).map_err(io_err(&path))?;
        }
        Err(e) => return Err(StoreError::State(e)),
    }
    let mut kept_bytes = Vec::with_capacity(data.len());
    let mut kept = 0u64;
    let mut dropped = Vec::new();
    for (n, line, complete) in lines(&data) {
        let decoded = if complete {
            decode_record::<R>(line).map(|_| ())
        } else {
            Err("incomplete last line (no trailing newline)".to_owned())
        };
        match decoded {
            Ok(()) => {
                kept_bytes.extend_from_slice(line);
                kept_bytes.push(b'\n');
                kept += 1;
            }
            Err(why) => dropped.push((n, why)),
        }
    }
    if dropped.is_empty() {
        return Ok(Salvaged {
            path,
            kept,
            dropped,
            moved_to: None,
        });
    }
    let tmp = tmp_name::<R>();
    let mut aside = format!("{}.damaged-{now}", R::FILE_NAME);
    let mut k = 1;
    while sd.exists(&aside).map_err(StoreError::State)? {
        aside = format!("{}.damaged-{now}-{k}", R::FILE_NAME);
        k += 1;
    }
    sd.remove(&tmp).map_err(StoreError::State)?;
    let mut f = sd
        .open_file(&tmp, Access::CreateNew)
        .map_err(StoreError::State)?;
    f.write_all(&kept_bytes)
        .and_then(|()| f.sync_all())
        .map_err(io_err(&sd.join(&tmp)))?;
    sd.link(R::FILE_NAME, &aside).map_err(StoreError::State)?;
    sd.rename(&tmp, R::FILE_NAME).map_err(StoreError::State)?;
    sd.sync().map_err(StoreError::State)?;
    Ok(Salvaged {
        path,
        kept,
        dropped,
        moved_to: Some(sd.join(&aside)),
    })
}

/// Time left until `expires` as `1d02h03m04s`, `59m12s`, `45s`, or `expired`.
fn remaining(expires: u64, now: u64) -> String {
    if expires <= now {
        return "expired".into();
    }
    let s = expires - now;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m{s:02}s"),
        _ => format!("{d}d{h:02}h{m:02}m{s:02}s"),
    }
}

fn state_word(s: LeaseState) -> &'static str {
    match s {
        LeaseState::Bound => "bound",
        LeaseState::Declined => "declined",
        LeaseState::Released => "released",
    }
}

#[derive(Serialize)]
struct LeaseRow {
    proto: &'static str,
    address: String,
    mac: Option<String>,
    state: &'static str,
    expires: String,
    remaining: String,
    client_id: Option<String>,
    iaid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id_text: Option<String>,
    hostname: Option<String>,
    expires_unix: u64,
}

impl LeaseRow {
    fn v4(l: &Lease4, now: u64) -> LeaseRow {
        LeaseRow {
            proto: "dhcp4",
            address: l.addr.to_string(),
            mac: Some(l.mac.to_string()),
            state: state_word(l.state),
            expires: rfc3339(l.expires),
            remaining: remaining(l.expires, now),
            client_id: l.client_id.as_ref().map(hex::encode),
            iaid: None,
            client_id_text: l.client_id.as_deref().and_then(client_id_text),
            hostname: l.hostname.clone(),
            expires_unix: l.expires,
        }
    }

    fn v6(l: &Lease6, now: u64) -> LeaseRow {
        LeaseRow {
            proto: "dhcp6",
            address: l.addr.to_string(),
            mac: l.mac.map(|m| m.to_string()),
            state: state_word(l.state),
            expires: rfc3339(l.expires),
            remaining: remaining(l.expires, now),
            // the DHCPv6 Client Identifier option carries the DUID (RFC 8415 §21.2)
            client_id: Some(hex::encode(&l.duid)),
            client_id_text: None,
            iaid: Some(l.iaid),
            hostname: None,
            expires_unix: l.expires,
        }
    }
}

/// `sztp-redirector leases`: the DHCPv4 leases (`leases4.journal`) then the DHCPv6 bindings
/// (`leases6.journal`), each sorted by address, as an aligned table or (`json`) one JSON
/// array; `proto` (`dhcp4`/`dhcp6`) says which, `client_id` is option 61 (DHCPv4) or the DUID
/// (DHCPv6) in hex, `iaid` is set for DHCPv6 only. Read-only: safe while the daemon runs.
///
/// # Errors
/// As [`read_leases`] (for either journal), or writing to `out` fails.
pub fn print_leases(
    dir: &Path,
    json: bool,
    now: u64,
    out: &mut dyn Write,
) -> Result<(), StoreError> {
    let v4 = read_leases(dir)?;
    let v6 = read_records::<Lease6>(dir)?;
    let rows: Vec<LeaseRow> = v4
        .iter()
        .map(|l| LeaseRow::v4(l, now))
        .chain(v6.iter().map(|l| LeaseRow::v6(l, now)))
        .collect();
    render_rows(rows, json, out)
}

/// The table or JSON of [`print_leases`] for DHCPv4 `leases`. Whatever the records hold (they
/// come from a file anyone with access to state-dir could edit), this never panics, and text
/// from devices (a hostname is whatever option 12 said) is escaped ([`crate::text`]) so
/// printing it cannot drive the operator's terminal.
///
/// # Errors
/// Writing to `out` fails.
pub fn render_leases(
    leases: &[Lease4],
    json: bool,
    now: u64,
    out: &mut dyn Write,
) -> Result<(), StoreError> {
    render_rows(
        leases.iter().map(|l| LeaseRow::v4(l, now)).collect(),
        json,
        out,
    )
}

fn render_rows(rows: Vec<LeaseRow>, json: bool, out: &mut dyn Write) -> Result<(), StoreError> {
    if json {
        let mut text = crate::text::to_json_string_pretty(&rows)
            .map_err(|e| StoreError::Output(io::Error::other(e)))?;
        text.push('\n');
        return out.write_all(text.as_bytes()).map_err(StoreError::Output);
    }
    const HEAD: [&str; 9] = [
        "PROTO",
        "ADDRESS",
        "MAC",
        "STATE",
        "EXPIRES",
        "REMAINING",
        "CLIENT-ID",
        "IAID",
        "HOSTNAME",
    ];
    let dash = || "-".to_owned();
    let cells: Vec<[String; 9]> = rows
        .into_iter()
        .map(|r| {
            // a client keyed by option 61 alone (RFC 4390) has no MAC
            let mac = match r.mac {
                Some(m) if !(m == "00:00:00:00:00:00" && r.client_id.is_some()) => m,
                _ => dash(),
            };
            [
                r.proto.to_owned(),
                r.address,
                mac,
                r.state.to_owned(),
                r.expires,
                r.remaining,
                r.client_id_text
                    .as_deref()
                    .map(|t| crate::text::printable(t).into_owned())
                    .or(r.client_id)
                    .unwrap_or_else(dash),
                r.iaid.map_or_else(dash, |i| i.to_string()),
                r.hostname
                    .as_deref()
                    .map_or_else(dash, |h| crate::text::printable(h).into_owned()),
            ]
        })
        .collect();
    let mut width = HEAD.map(str::len);
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |row: &[&str]| {
        let mut l = String::new();
        for (i, c) in row.iter().enumerate() {
            l.push_str(c);
            if i + 1 < row.len() {
                // padded by hand: format!'s width is limited to u16 and a 32 KiB client-id
                // (hex: 64 Ki characters) made `{:<w$}` panic
                let pad = width[i].saturating_sub(c.chars().count()) + 2;
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.push_str(l.trim_end());
        text.push('\n');
    };
    line(&HEAD);
    for row in &cells {
        line(&row.each_ref().map(String::as_str));
    }
    out.write_all(text.as_bytes()).map_err(StoreError::Output)
}

/// Whether a journal of `records` records holding `live` live leases is worth compacting:
/// more than 10 000 records and more than four times the live set. Replay stays within a
/// small multiple of the live set's size, and small journals are never rewritten.
pub fn should_compact(records: u64, live: usize) -> bool {
    records > 10_000 && records > 4 * live as u64
}

/// Called on the writer thread once the records of a [`JournalWriter::commit`] are on disk (or
/// not: then the caller must not send its ACK).
pub type CommitDone = Box<dyn FnOnce(io::Result<()>) + Send>;

enum Op<R> {
    Commit(Vec<R>, CommitDone),
    Compact(Vec<R>),
}

struct Queue<R> {
    ops: Vec<Op<R>>,
    shutdown: bool,
    /// The writer sleeps on the condvar: only then does a commit need to wake it (a notify is
    /// a futex syscall even with no waiter).
    writer_waiting: bool,
}

struct Shared<R> {
    queue: Mutex<Queue<R>>,
    wake: Condvar,
    records: AtomicU64,
    syncs: AtomicU64,
    /// The last group could not be written: nothing is being acknowledged.
    failing: AtomicBool,
    /// Groups that could not be written, since the writer started.
    failed_groups: AtomicU64,
    /// One error line per interval while writes keep failing.
    error_log: LogLimiter,
    observer: Option<CommitObserver>,
}

/// Told of every group made durable: (records in it, time its append + `fdatasync` took).
/// Runs on the writer thread: keep it short (the metrics use it).
pub type CommitObserver = Box<dyn Fn(u64, std::time::Duration) + Send + Sync>;

/// Joins the thread when the last [`JournalWriter`] clone goes away.
struct Owner<R> {
    shared: Arc<Shared<R>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<R> Owner<R> {
    fn stop(&self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .shutdown = true;
        self.shared.wake.notify_one();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        // A callback on the writer thread may drop the last handle: it cannot join itself, and
        // the thread exits on its own after this round.
        if let Some(h) = handle.filter(|h| h.thread().id() != std::thread::current().id()) {
            if h.join().is_err() {
                tracing::error!("lease writer thread panicked");
            }
        }
    }
}

impl<R> Drop for Owner<R> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Group commit for a [`Journal`]: a thread owns the journal; each time it wakes it takes
/// everything queued, writes all commits with one append (one `fdatasync`), then runs their
/// callbacks in order. Compactions run on the same thread, in queue order with commits.
///
/// Compaction is the caller's decision (it knows the live set): compare
/// [`records_since_compact`](Self::records_since_compact) with the live count through
/// [`should_compact`].
pub struct JournalWriter<R> {
    owner: Arc<Owner<R>>,
}

impl<R> Clone for JournalWriter<R> {
    fn clone(&self) -> Self {
        JournalWriter {
            owner: Arc::clone(&self.owner),
        }
    }
}

/// Group commit of the DHCPv4 lease journal.
pub type LeaseWriter = JournalWriter<Lease4>;

impl<R: JournalRecord> JournalWriter<R> {
    /// Starts the writer thread (`<FILE_NAME>-writer`), which owns `store` from now on.
    pub fn spawn(store: Journal<R>) -> JournalWriter<R> {
        Self::spawn_observed(store, None)
    }

    /// [`spawn`](Self::spawn), telling `observer` of every durable group.
    pub fn spawn_observed(store: Journal<R>, observer: Option<CommitObserver>) -> JournalWriter<R> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                ops: Vec::new(),
                shutdown: false,
                writer_waiting: false,
            }),
            wake: Condvar::new(),
            records: AtomicU64::new(store.len_records()),
            syncs: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            failed_groups: AtomicU64::new(0),
            error_log: LogLimiter::default(),
            observer,
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer_thread(store, &thread_shared))
            .expect("spawning the lease writer thread");
        JournalWriter {
            owner: Arc::new(Owner {
                shared,
                thread: Mutex::new(Some(thread)),
            }),
        }
    }

    /// Queues `recs`; `done` runs on the writer thread after they were fsync'd, with the
    /// outcome. After [`shutdown`](Self::shutdown), `done` gets an error at once.
    pub fn commit(&self, recs: Vec<R>, done: CommitDone) {
        let shared = &self.owner.shared;
        let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.shutdown {
            drop(q);
            done(Err(io::Error::other("lease writer is shut down")));
            return;
        }
        q.ops.push(Op::Commit(recs, done));
        let wake = q.writer_waiting;
        drop(q);
        if wake {
            shared.wake.notify_one();
        }
    }

    /// Queues a compaction to exactly `live`, after the commits queued before it.
    pub fn compact(&self, live: Vec<R>) {
        let shared = &self.owner.shared;
        let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.shutdown {
            return;
        }
        q.ops.push(Op::Compact(live));
        drop(q);
        shared.wake.notify_one();
    }

    /// Records in the journal file now (since open or the last compaction).
    pub fn records_since_compact(&self) -> u64 {
        self.owner.shared.records.load(Ordering::Relaxed)
    }

    /// `fdatasync` calls made for commits so far (each covers one group).
    pub fn syncs(&self) -> u64 {
        self.owner.shared.syncs.load(Ordering::Relaxed)
    }

    /// Whether the last group could not be written (its commits failed, their replies were not
    /// sent). Cleared by the next group that is written.
    pub fn failing(&self) -> bool {
        self.owner.shared.failing.load(Ordering::Relaxed)
    }

    /// Groups that could not be written since the writer started (each failed all its
    /// commits).
    pub fn failed_groups(&self) -> u64 {
        self.owner.shared.failed_groups.load(Ordering::Relaxed)
    }

    /// Writes everything already queued, then stops the thread and waits for it. Other clones'
    /// later commits fail.
    pub fn shutdown(self) {
        self.owner.stop();
    }
}

/// Under sustained load the writer waits this long before taking a small group, so each
/// `fdatasync` covers more records (fsync, not the CPU, bounds the ACK rate on a VM disk).
const LINGER: std::time::Duration = std::time::Duration::from_micros(800);
/// "Sustained load": the previous group was written less than this long ago.
const BUSY_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);
/// A group this large is written at once.
const FULL_GROUP: usize = 64;

fn writer_thread<R: JournalRecord>(mut store: Journal<R>, shared: &Shared<R>) {
    let mut last_group: Option<std::time::Instant> = None;
    loop {
        let (ops, shutdown) = {
            let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            while q.ops.is_empty() && !q.shutdown {
                q.writer_waiting = true;
                q = shared.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                q.writer_waiting = false;
            }
            // an isolated commit (a device at a time) goes out at once; only a busy writer
            // lingers
            let busy = last_group.is_some_and(|t| t.elapsed() < BUSY_WINDOW);
            if busy && q.ops.len() < FULL_GROUP && !q.shutdown {
                drop(q);
                std::thread::sleep(LINGER);
                q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            }
            (std::mem::take(&mut q.ops), q.shutdown)
        };
        let mut recs = Vec::new();
        let mut dones = Vec::new();
        for op in ops {
            match op {
                Op::Commit(r, done) => {
                    recs.extend(r);
                    dones.push(done);
                }
                Op::Compact(live) => {
                    // Commits queued before the compaction reach the old file first; the live
                    // set given to compact already includes them.
                    flush_group(&mut store, shared, &mut recs, &mut dones);
                    if let Err(e) = store.compact(&live) {
                        tracing::error!(file = %store.path().display(), error = %e, "lease journal compaction failed");
                    } else {
                        tracing::info!(file = %store.path().display(), records = live.len(), "lease journal compacted");
                    }
                    shared.records.store(store.len_records(), Ordering::Relaxed);
                }
            }
        }
        flush_group(&mut store, shared, &mut recs, &mut dones);
        last_group = Some(std::time::Instant::now());
        if shutdown {
            return;
        }
    }
}

fn flush_group<R: JournalRecord>(
    store: &mut Journal<R>,
    shared: &Shared<R>,
    recs: &mut Vec<R>,
    dones: &mut Vec<CommitDone>,
) {
    if dones.is_empty() {
        return;
    }
    // Callbacks run only after append returns, i.e. after fdatasync.
    let started = std::time::Instant::now();
    let res = store.append(recs);
    if let (Ok(()), Some(observe)) = (&res, &shared.observer) {
        observe(recs.len() as u64, started.elapsed());
    }
    recs.clear();
    shared.syncs.fetch_add(1, Ordering::Relaxed);
    shared.records.store(store.len_records(), Ordering::Relaxed);
    match &res {
        Err(e) => {
            shared.failing.store(true, Ordering::Relaxed);
            shared.failed_groups.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = shared.error_log.check() {
                tracing::error!(
                    file = %store.path().display(),
                    error = %e,
                    suppressed,
                    "lease journal write failed: nothing is acknowledged until it can be written"
                );
            }
        }
        Ok(()) => {
            if shared.failing.swap(false, Ordering::Relaxed) {
                shared.error_log.reset();
                tracing::info!(file = %store.path().display(), "lease journal written again: acknowledging");
            }
        }
    }
    for done in dones.drain(..) {
        let r = match &res {
            Ok(()) => Ok(()),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        // A panicking callback must not take the writer, and every later ACK, down with it.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| done(r))).is_err() {
            tracing::error!("lease commit callback panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, OpenOptions};
    use std::net::Ipv4Addr;
    use std::sync::mpsc;

    use super::*;
    use crate::policy::MacAddr;

    fn lease(i: u32, state: LeaseState, expires: u64) -> Lease4 {
        Lease4 {
            addr: Ipv4Addr::from(0xC000_0200 + i),
            mac: MacAddr([0, 0x11, 0x22, (i >> 16) as u8, (i >> 8) as u8, i as u8]),
            client_id: i
                .is_multiple_of(2)
                .then(|| vec![1, 0, 0x11, 0x22, 0, 0, i as u8]),
            hostname: i.is_multiple_of(3).then(|| format!("sw-{i}")),
            expires,
            state,
        }
    }

    fn journal(dir: &Path) -> PathBuf {
        dir.join(JOURNAL_FILE)
    }

    /// A second record type, as DHCPv6 leases are: same framing, same writer.
    #[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct Other {
        id: u32,
        note: String,
    }

    impl JournalRecord for Other {
        type Key = u32;
        const FILE_NAME: &'static str = "other.journal";
        fn key(&self) -> u32 {
            self.id
        }
    }

    #[test]
    fn a_second_record_type_has_its_own_file_and_the_same_rules() {
        let dir = tempfile::tempdir().unwrap();
        let (store, none) = Journal::<Other>::open(dir.path()).unwrap();
        assert!(none.is_empty());
        let w = JournalWriter::spawn(store);
        let (tx, rx) = mpsc::channel();
        for (id, note) in [(2, "b"), (1, "a"), (2, "b2")] {
            let tx = tx.clone();
            w.commit(
                vec![Other {
                    id,
                    note: note.into(),
                }],
                Box::new(move |r| tx.send(r.is_ok()).unwrap()),
            );
        }
        assert!((0..3).all(|_| rx.recv().unwrap()));
        w.shutdown();
        let text = fs::read_to_string(dir.path().join("other.journal")).unwrap();
        assert_eq!(text.lines().count(), 3);
        // a torn tail is cut off, the last record per key wins, sorted by key
        fs::write(
            dir.path().join("other.journal"),
            format!("{text}0badc0de {{\"id\":"),
        )
        .unwrap();
        let (_, got) = Journal::<Other>::open(dir.path()).unwrap();
        let want = |id: u32, note: &str| Other {
            id,
            note: note.into(),
        };
        assert_eq!(got, [want(1, "a"), want(2, "b2")]);
        assert_eq!(read_records::<Other>(dir.path()).unwrap(), got);
        assert!(!dir.path().join(JOURNAL_FILE).exists(), "leases untouched");
    }

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn replay_after_append_latest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, leases) = LeaseStore::open(dir.path()).unwrap();
        assert!(leases.is_empty());
        let a = lease(1, LeaseState::Bound, 100);
        let b = lease(2, LeaseState::Bound, 200);
        s.append(&[b.clone(), a.clone()]).unwrap();
        let a2 = Lease4 {
            state: LeaseState::Released,
            expires: 150,
            ..a.clone()
        };
        s.append(std::slice::from_ref(&a2)).unwrap();
        assert_eq!(s.len_records(), 3);
        drop(s);

        let (s, leases) = LeaseStore::open(dir.path()).unwrap();
        assert_eq!(leases, vec![a2, b]);
        assert_eq!(s.len_records(), 3);
        let text = fs::read_to_string(journal(dir.path())).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().all(|l| l.len() > 9 && l.as_bytes()[8] == b' '));
    }

    #[test]
    fn torn_last_record_is_ignored_and_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = LeaseStore::open(dir.path()).unwrap();
        let a = lease(1, LeaseState::Bound, 100);
        s.append(std::slice::from_ref(&a)).unwrap();
        drop(s);
        let good = fs::read(journal(dir.path())).unwrap();

        // A partial line, as a crash in the middle of a write leaves it.
        let mut torn = good.clone();
        torn.extend_from_slice(b"0badc0de {\"addr\":\"192.0.2.");
        fs::write(journal(dir.path()), &torn).unwrap();
        let (s, leases) = LeaseStore::open(dir.path()).unwrap();
        assert_eq!(leases, vec![a.clone()]);
        assert_eq!(s.len_records(), 1);
        drop(s);
        assert_eq!(fs::read(journal(dir.path())).unwrap(), good);

        // Appends continue after the cut.
        let (mut s, _) = LeaseStore::open(dir.path()).unwrap();
        let b = lease(3, LeaseState::Bound, 300);
        s.append(std::slice::from_ref(&b)).unwrap();
        drop(s);
        let (_, leases) = LeaseStore::open(dir.path()).unwrap();
        assert_eq!(leases, vec![a, b]);
    }

    /// A complete last line (its newline is there) that fails its checksum was written whole
    /// and then damaged: it is corruption, not a torn write. Dropping it would hand its address
    /// to another client.
    #[test]
    fn a_complete_last_line_with_a_bad_checksum_is_corruption_and_salvage_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = LeaseStore::open(dir.path()).unwrap();
        let a = lease(1, LeaseState::Bound, 100);
        let b = lease(2, LeaseState::Bound, 200);
        s.append(&[a.clone(), b.clone()]).unwrap();
        drop(s);
        let path = journal(dir.path());
        let mut damaged = fs::read(&path).unwrap();
        let mut rec = Vec::new();
        encode_record(&lease(3, LeaseState::Bound, 5), &mut rec).unwrap();
        rec[0] = if rec[0] == b'0' { b'1' } else { b'0' };
        damaged.extend_from_slice(&rec);
        fs::write(&path, &damaged).unwrap();

        let want = format!(
            "{}:3: corrupt lease record (checksum mismatch); the journal is left as it is: \
             `sztp-redirector leases --salvage --state-dir {}` keeps every valid record and \
             moves the damaged file aside",
            path.display(),
            dir.path().display()
        );
        assert_eq!(LeaseStore::open(dir.path()).unwrap_err().to_string(), want);
        assert_eq!(read_leases(dir.path()).unwrap_err().to_string(), want);
        assert_eq!(fs::read(&path).unwrap(), damaged, "nothing changed");

        let out = salvage::<Lease4>(dir.path(), 1_800_000_000).unwrap();
        let aside = dir.path().join("leases4.journal.damaged-1800000000");
        assert_eq!(
            out,
            Salvaged {
                path: path.clone(),
                kept: 2,
                dropped: vec![(3, "checksum mismatch".into())],
                moved_to: Some(aside.clone()),
            }
        );
        assert_eq!(
            fs::read(&aside).unwrap(),
            damaged,
            "the damaged file is kept aside"
        );
        let (_, leases) = LeaseStore::open(dir.path()).unwrap();
        assert_eq!(leases, vec![a, b]);
        // nothing left to salvage: nothing changes
        let again = salvage::<Lease4>(dir.path(), 1_800_000_000).unwrap();
        assert_eq!((again.kept, again.moved_to), (2, None));
        // a second salvage the same second does not overwrite the first damaged copy
        let mut torn = fs::read(&path).unwrap();
        torn.extend_from_slice(b"0000");
        fs::write(&path, &torn).unwrap();
        let third = salvage::<Lease4>(dir.path(), 1_800_000_000).unwrap();
        assert_eq!(
            third.moved_to,
            Some(dir.path().join("leases4.journal.damaged-1800000000-1"))
        );
        assert_eq!(
            third.dropped,
            vec![(3, "incomplete last line (no trailing newline)".into())]
        );
    }

    #[test]
    fn corrupt_middle_record_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = LeaseStore::open(dir.path()).unwrap();
        for i in 0..5 {
            s.append(&[lease(i, LeaseState::Bound, 100)]).unwrap();
        }
        drop(s);
        let path = journal(dir.path());
        let text = fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        // Flip a digit of the JSON in line 3: the checksum no longer matches.
        lines[2] = lines[2].replace("\"expires\":100", "\"expires\":900");
        let damaged = lines.join("\n") + "\n";
        fs::write(&path, &damaged).unwrap();

        let err = LeaseStore::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}:3: corrupt lease record (checksum mismatch); ",
                path.display()
            )),
            "{err}"
        );
        // Neither the file nor the read-only replay changes anything.
        assert_eq!(fs::read_to_string(&path).unwrap(), damaged);
        let err = read_leases(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains(":3: corrupt lease record"),
            "{err}"
        );

        // Valid checksum, invalid record.
        lines[2] = format!("{:08x} {{}}", crc32c(b"{}"));
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        let err = LeaseStore::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}:3: corrupt lease record (bad JSON: ",
                path.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn compaction_keeps_the_live_set_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = LeaseStore::open(dir.path()).unwrap();
        for round in 0..10 {
            let recs: Vec<Lease4> = (0..20)
                .map(|i| lease(i, LeaseState::Bound, 1000 + round))
                .collect();
            s.append(&recs).unwrap();
        }
        assert_eq!(s.len_records(), 200);
        let live: Vec<Lease4> = (0..5).map(|i| lease(i, LeaseState::Bound, 5000)).collect();
        s.compact(&live).unwrap();
        assert_eq!(s.len_records(), 5);
        assert!(!dir.path().join(COMPACT_TMP_FILE).exists());
        let extra = lease(7, LeaseState::Declined, 6000);
        s.append(std::slice::from_ref(&extra)).unwrap();
        assert_eq!(s.len_records(), 6);
        drop(s);

        let text = fs::read_to_string(journal(dir.path())).unwrap();
        assert_eq!(text.lines().count(), 6);
        let (_, leases) = LeaseStore::open(dir.path()).unwrap();
        let mut want = live;
        want.push(extra);
        assert_eq!(leases, want);
    }

    #[test]
    fn leftover_compaction_temp_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = LeaseStore::open(dir.path()).unwrap();
        let a = lease(1, LeaseState::Bound, 100);
        s.append(std::slice::from_ref(&a)).unwrap();
        drop(s);
        // A crash before the rename: the temp file is not the journal.
        fs::write(dir.path().join(COMPACT_TMP_FILE), b"0000 half").unwrap();
        let (_, leases) = LeaseStore::open(dir.path()).unwrap();
        assert_eq!(leases, vec![a]);
        assert!(!dir.path().join(COMPACT_TMP_FILE).exists());
    }

    #[test]
    fn open_creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a/b");
        let (s, leases) = LeaseStore::open(&state).unwrap();
        assert!(leases.is_empty());
        assert_eq!(s.len_records(), 0);
        assert!(journal(&state).exists());
    }

    #[test]
    fn group_commit_from_four_threads() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = LeaseStore::open(dir.path()).unwrap();
        let w = LeaseWriter::spawn(store);
        let (tx, rx) = mpsc::channel();
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let w = w.clone();
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..250 {
                        let n = t * 250 + i;
                        let tx = tx.clone();
                        w.commit(
                            vec![lease(n, LeaseState::Bound, 1000)],
                            Box::new(move |r| tx.send((n, r.map_err(|e| e.to_string()))).unwrap()),
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(tx);
        let mut seen = vec![false; 1000];
        for _ in 0..1000 {
            let (n, r) = rx.recv().unwrap();
            assert_eq!(r, Ok(()));
            assert!(!seen[n as usize]);
            seen[n as usize] = true;
        }
        assert_eq!(w.records_since_compact(), 1000);
        assert!((1..=1000).contains(&w.syncs()));
        w.shutdown();

        let (_, leases) = LeaseStore::open(dir.path()).unwrap();
        let want: Vec<Lease4> = (0..1000)
            .map(|n| lease(n, LeaseState::Bound, 1000))
            .collect();
        assert_eq!(leases, want);
    }

    #[test]
    fn writer_orders_compaction_with_commits_and_flushes_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = LeaseStore::open(dir.path()).unwrap();
        let w = LeaseWriter::spawn(store);
        let ok = |_: io::Result<()>| {};
        for i in 0..50 {
            w.commit(vec![lease(i, LeaseState::Bound, 10)], Box::new(ok));
        }
        let live: Vec<Lease4> = (0..3).map(|i| lease(i, LeaseState::Bound, 10)).collect();
        w.compact(live.clone());
        let late = lease(60, LeaseState::Bound, 20);
        w.commit(vec![late.clone()], Box::new(ok));
        let w2 = w.clone();
        w.shutdown();
        assert_eq!(w2.records_since_compact(), 4);
        let (tx, rx) = mpsc::channel();
        w2.commit(
            vec![lease(61, LeaseState::Bound, 20)],
            Box::new(move |r| tx.send(r.is_err()).unwrap()),
        );
        assert!(rx.recv().unwrap(), "commit after shutdown must fail");

        let (_, leases) = LeaseStore::open(dir.path()).unwrap();
        let mut want = live;
        want.push(late);
        assert_eq!(leases, want);
    }

    #[test]
    fn failed_compaction_keeps_the_old_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = LeaseStore::open(dir.path()).unwrap();
        let a = lease(1, LeaseState::Bound, 100);
        s.append(std::slice::from_ref(&a)).unwrap();
        // Something in the way of the temp file.
        fs::create_dir(dir.path().join(COMPACT_TMP_FILE)).unwrap();
        fs::write(dir.path().join(COMPACT_TMP_FILE).join("x"), b"").unwrap();
        s.compact(&[]).unwrap_err();
        let b = lease(2, LeaseState::Bound, 100);
        s.append(std::slice::from_ref(&b)).unwrap();
        assert_eq!(s.len_records(), 2);
        drop(s);
        assert_eq!(read_leases(dir.path()).unwrap(), vec![a, b]);
    }

    #[test]
    fn commits_queued_while_busy_share_one_fdatasync() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = LeaseStore::open(dir.path()).unwrap();
        let w = LeaseWriter::spawn(store);
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        // The first callback holds the writer thread until the rest are queued.
        w.commit(
            vec![lease(0, LeaseState::Bound, 10)],
            Box::new(move |r| {
                r.unwrap();
                entered_tx.send(()).unwrap();
                let _ = release_rx.recv();
            }),
        );
        entered_rx.recv().unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 1..=100 {
            let tx = tx.clone();
            w.commit(
                vec![lease(i, LeaseState::Bound, 10)],
                Box::new(move |r| tx.send((i, r.is_ok())).unwrap()),
            );
        }
        drop(release_tx);
        let order: Vec<(u32, bool)> = (1..=100).map(|_| rx.recv().unwrap()).collect();
        assert_eq!(order, (1..=100).map(|i| (i, true)).collect::<Vec<_>>());
        assert_eq!(w.syncs(), 2);
        assert_eq!(w.records_since_compact(), 101);
        w.shutdown();
    }

    #[test]
    fn a_failed_group_fails_every_callback() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = LeaseStore::open(dir.path()).unwrap();
        // a disk that is full for writes and refuses truncation: the failed append cannot be
        // cut back, so the journal refuses appends
        store.file = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let w = LeaseWriter::spawn(store);
        let (tx, rx) = mpsc::channel();
        for i in 0..10 {
            let tx = tx.clone();
            w.commit(
                vec![lease(i, LeaseState::Bound, 10)],
                Box::new(move |r| tx.send(r.map_err(|e| e.to_string())).unwrap()),
            );
        }
        for _ in 0..10 {
            let err = rx.recv().unwrap().unwrap_err();
            assert!(
                err.contains("No space left on device") || err.contains("not appending"),
                "{err}"
            );
        }
        assert!(w.failing());
        assert!(w.failed_groups() >= 1);
        // Compaction rewrites the file from the caller's live set and clears the failure.
        let live = vec![lease(5, LeaseState::Bound, 10)];
        w.compact(live.clone());
        let tx2 = tx.clone();
        w.commit(
            vec![lease(6, LeaseState::Bound, 10)],
            Box::new(move |r| tx2.send(r.map_err(|e| e.to_string())).unwrap()),
        );
        assert_eq!(rx.recv().unwrap(), Ok(()));
        assert!(!w.failing());
        w.shutdown();
        let mut want = live;
        want.push(lease(6, LeaseState::Bound, 10));
        assert_eq!(read_leases(dir.path()).unwrap(), want);
    }

    /// A write that fails and cannot be cut back (the file turned immutable, say) must not stop
    /// appends for good: the next append retries the cut and goes on once it works.
    #[test]
    fn appends_resume_by_themselves_once_the_failed_write_can_be_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = LeaseStore::open(dir.path()).unwrap();
        let a = lease(1, LeaseState::Bound, 100);
        s.append(std::slice::from_ref(&a)).unwrap();
        let real = std::mem::replace(
            &mut s.file,
            OpenOptions::new().write(true).open("/dev/full").unwrap(),
        );
        s.append(&[lease(2, LeaseState::Bound, 100)]).unwrap_err();
        assert!(s.is_poisoned());
        let e = s.append(&[lease(3, LeaseState::Bound, 100)]).unwrap_err();
        assert!(
            e.to_string().contains("not appending until the leftover"),
            "{e}"
        );
        // writing works again: the same journal, not reopened, goes on
        s.file = real;
        let b = lease(4, LeaseState::Bound, 100);
        s.append(std::slice::from_ref(&b)).unwrap();
        assert!(!s.is_poisoned());
        drop(s);
        assert_eq!(read_leases(dir.path()).unwrap(), vec![a, b]);
    }

    #[test]
    fn dropping_the_last_handle_in_a_callback_does_not_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = LeaseStore::open(dir.path()).unwrap();
        let w = LeaseWriter::spawn(store);
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        w.commit(
            vec![lease(0, LeaseState::Bound, 10)],
            Box::new(move |_| {
                entered_tx.send(()).unwrap();
                let _ = release_rx.recv();
            }),
        );
        entered_rx.recv().unwrap();
        // While the thread is held, queue a callback that owns the only remaining handle.
        let (tx, rx) = mpsc::channel();
        let last = w.clone();
        w.commit(
            vec![lease(1, LeaseState::Bound, 10)],
            Box::new(move |r| {
                drop(last);
                tx.send(r.is_ok()).unwrap();
            }),
        );
        drop(w);
        drop(release_tx);
        assert!(rx.recv().unwrap());
        assert_eq!(read_leases(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<LeaseWriter>();
        check::<crate::journal::DeviceJournal>();
    }

    #[test]
    fn compaction_policy() {
        assert!(!should_compact(10_000, 10));
        assert!(should_compact(10_001, 10));
        assert!(!should_compact(40_000, 10_000));
        assert!(should_compact(40_001, 10_000));
    }

    #[test]
    fn remaining_formats() {
        assert_eq!(remaining(100, 100), "expired");
        assert_eq!(remaining(100, 200), "expired");
        assert_eq!(remaining(145, 100), "45s");
        assert_eq!(remaining(100 + 59 * 60 + 12, 100), "59m12s");
        assert_eq!(remaining(100 + 3600 + 5, 100), "1h00m05s");
        assert_eq!(
            remaining(100 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5, 100),
            "2d03h04m05s"
        );
    }

    fn print_fixture() -> (tempfile::TempDir, u64) {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = LeaseStore::open(dir.path()).unwrap();
        let now = 1_795_810_500 - 3552; // 59m12s before 2026-11-27T20:15:00Z
        let mut a = lease(12, LeaseState::Bound, 1_795_810_500);
        a.hostname = Some("sw-12\x1b[2J".into());
        let b = Lease4 {
            client_id: None,
            hostname: None,
            ..lease(3, LeaseState::Declined, now - 1)
        };
        s.append(&[a, b]).unwrap();
        drop(s);
        // A torn tail must not stop the read-only view, nor be cut off by it.
        let path = journal(dir.path());
        let mut data = fs::read(&path).unwrap();
        data.extend_from_slice(b"12345678 {\"ad");
        fs::write(&path, &data).unwrap();
        (dir, now)
    }

    #[test]
    fn print_leases_table() {
        let (dir, now) = print_fixture();
        let before = fs::read(journal(dir.path())).unwrap();
        let mut out = Vec::new();
        print_leases(dir.path(), false, now, &mut out).unwrap();
        let want = "\
PROTO  ADDRESS     MAC                STATE     EXPIRES               REMAINING  CLIENT-ID       IAID  HOSTNAME
dhcp4  192.0.2.3   00:11:22:00:00:03  declined  2026-11-27T19:15:47Z  expired    -               -     -
dhcp4  192.0.2.12  00:11:22:00:00:0c  bound     2026-11-27T20:15:00Z  59m12s     0100112200000c  -     sw-12\\u{1b}[2J
";
        assert_eq!(String::from_utf8(out).unwrap(), want);
        assert_eq!(fs::read(journal(dir.path())).unwrap(), before);
    }

    #[test]
    fn print_leases_json() {
        let (dir, now) = print_fixture();
        let mut out = Vec::new();
        print_leases(dir.path(), true, now, &mut out).unwrap();
        let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            got,
            serde_json::json!([
                {
                    "proto": "dhcp4",
                    "address": "192.0.2.3",
                    "mac": "00:11:22:00:00:03",
                    "state": "declined",
                    "expires": "2026-11-27T19:15:47Z",
                    "remaining": "expired",
                    "client_id": null,
                    "iaid": null,
                    "hostname": null,
                    "expires_unix": 1_795_806_947u64,
                },
                {
                    "proto": "dhcp4",
                    "address": "192.0.2.12",
                    "mac": "00:11:22:00:00:0c",
                    "state": "bound",
                    "expires": "2026-11-27T20:15:00Z",
                    "remaining": "59m12s",
                    "client_id": "0100112200000c",
                    "iaid": null,
                    "hostname": "sw-12\u{1b}[2J",
                    "expires_unix": 1_795_810_500u64,
                }
            ])
        );
    }

    /// A small xorshift generator: the property tests below are reproducible without a crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    /// One journal line: a valid record with hostile field values, a record with a valid
    /// checksum but odd JSON, a damaged record, or noise.
    fn line(r: &mut Rng, clean: bool) -> Vec<u8> {
        let kind = if clean { r.below(2) } else { r.below(6) };
        let json = match kind {
            0 | 1 => {
                let id_len = [0usize, 1, 128, 40_000][r.below(4) as usize];
                let host: String = match r.below(3) {
                    0 => "sw\u{1b}[2J\u{202e}\n".repeat(r.below(500) as usize),
                    1 => {
                        let n = r.below(300) as usize;
                        String::from_utf8_lossy(&r.bytes(n)).into_owned()
                    }
                    _ => "h".into(),
                };
                let expires = [0u64, 1, u64::MAX, 253_402_300_800, r.next()][r.below(5) as usize];
                let state = ["bound", "declined", "released"][r.below(3) as usize];
                let rec = serde_json::json!({
                    "addr": std::net::Ipv4Addr::from(r.next() as u32).to_string(),
                    "mac": "02:00:00:00:00:01",
                    "client_id": hex::encode(r.bytes(id_len)),
                    "hostname": host,
                    "expires": expires,
                    "state": state,
                });
                serde_json::to_vec(&rec).unwrap()
            }
            2 => br#"{"addr":"192.0.2.1","mac":"zz","expires":-1,"state":"bound"}"#.to_vec(),
            3 => "[".repeat(r.below(5000) as usize).into_bytes(),
            4 => br#"{"addr":"192.0.2.1","mac":"02:00:00:00:00:01","expires":1e400,"state":"x"}"#
                .to_vec(),
            _ => {
                let n = r.below(200) as usize;
                r.bytes(n)
            }
        };
        let mut l = format!("{:08x} ", crc32c(&json)).into_bytes();
        if !clean && r.below(8) == 0 {
            let i = r.below(8) as usize;
            l[i] ^= 1;
        }
        l.extend_from_slice(&json);
        if clean || r.below(10) != 0 {
            l.push(b'\n');
        }
        l
    }

    /// Whatever a journal holds (edited, damaged, or written by an older version without
    /// bounds), replaying and listing it answers (records or an error) and never panics: a
    /// 32 KiB client identifier used to make every `leases` panic in `format!`'s width, and an
    /// expiry past the year 9999 in the RFC 3339 formatting.
    #[test]
    fn replay_and_listing_never_panic_on_any_content() {
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        let path = Path::new("leases4.journal");
        let mut listed = 0;
        for round in 0..200 {
            let mut data = Vec::new();
            let lines = r.below(6) + 1;
            for _ in 0..lines {
                data.extend(line(&mut r, round % 2 == 0));
            }
            if let Ok(leases) = records_from_bytes::<Lease4>(path, &data) {
                listed += leases.len();
                for json in [false, true] {
                    let mut out = Vec::new();
                    render_leases(&leases, json, 1_800_000_000, &mut out).unwrap();
                    let text = String::from_utf8(out).unwrap();
                    assert!(!text.chars().any(|c| c == '\u{1b}' || c == '\u{202e}'));
                }
            }
        }
        assert!(
            listed > 50,
            "only {listed} leases listed: the generator tests too little"
        );
    }

    #[test]
    fn a_32_kib_client_id_is_listed() {
        let mut l = lease(1, LeaseState::Bound, u64::MAX);
        l.client_id = Some(vec![0xab; 40_000]);
        let mut out = Vec::new();
        render_leases(&[l], false, 0, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(&"ab".repeat(40_000)));
        assert!(text.contains("9999-12-31T23:59:59Z"));
    }

    #[test]
    fn print_leases_lists_dhcp4_and_dhcp6_together() {
        let (dir, now) = print_fixture();
        let (mut j6, _) = Journal::<Lease6>::open(dir.path()).unwrap();
        let duid = vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1];
        j6.append(&[
            Lease6 {
                addr: "2001:db8:1::1f".parse().unwrap(),
                duid: duid.clone(),
                iaid: 7,
                mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
                expires: 1_795_810_500,
                state: LeaseState::Bound,
            },
            Lease6 {
                addr: "2001:db8:1::1a".parse().unwrap(),
                duid,
                iaid: 8,
                mac: None,
                expires: now + 45,
                state: LeaseState::Declined,
            },
        ])
        .unwrap();
        drop(j6);
        let mut out = Vec::new();
        print_leases(dir.path(), false, now, &mut out).unwrap();
        let want = "\
PROTO  ADDRESS         MAC                STATE     EXPIRES               REMAINING  CLIENT-ID             IAID  HOSTNAME
dhcp4  192.0.2.3       00:11:22:00:00:03  declined  2026-11-27T19:15:47Z  expired    -                     -     -
dhcp4  192.0.2.12      00:11:22:00:00:0c  bound     2026-11-27T20:15:00Z  59m12s     0100112200000c        -     sw-12\\u{1b}[2J
dhcp6  2001:db8:1::1a  -                  declined  2026-11-27T19:16:33Z  45s        00030001020000000001  8     -
dhcp6  2001:db8:1::1f  02:00:00:00:00:01  bound     2026-11-27T20:15:00Z  59m12s     00030001020000000001  7     -
";
        assert_eq!(String::from_utf8(out).unwrap(), want);
        let mut out = Vec::new();
        print_leases(dir.path(), true, now, &mut out).unwrap();
        let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            got[3],
            serde_json::json!({
                "proto": "dhcp6",
                "address": "2001:db8:1::1f",
                "mac": "02:00:00:00:00:01",
                "state": "bound",
                "expires": "2026-11-27T20:15:00Z",
                "remaining": "59m12s",
                "client_id": "00030001020000000001",
                "iaid": 7,
                "hostname": null,
                "expires_unix": 1_795_810_500u64,
            })
        );
        assert_eq!(got[2]["mac"], serde_json::Value::Null);
        assert_eq!(got.as_array().unwrap().len(), 4);
    }

    #[test]
    fn read_leases_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_leases(dir.path()).unwrap(), vec![]);
        assert_eq!(dir.path().read_dir().unwrap().count(), 0);
        let missing = dir.path().join("nope");
        let err = read_leases(&missing).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: ", missing.display())),
            "{err}"
        );
        assert!(!missing.exists());
    }
}
