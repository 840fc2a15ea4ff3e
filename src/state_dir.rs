//! The state directory: opened without following symbolic links, checked at start, and every
//! state file opened, renamed and handed over under the directory's descriptor (openat)
//!
//! The daemon may start as root and then give state-dir to `appliance.user`. From then on that
//! user can put anything in the directory: a link named `devices.jsonl` pointing at
//! `/etc/shadow`, a hard link to a root file, a FIFO. So state files are opened with
//! `O_NOFOLLOW` relative to a descriptor of the directory (itself opened with `O_NOFOLLOW`), a
//! file that is not a regular file is refused, ownership is changed on an opened descriptor
//! (never by path, which a rename can redirect between the check and the change), and a
//! state-dir that is a link, or writable by group or others, is refused at start.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};
use nix::unistd::{Gid, Uid};

/// Mode of a state-dir (and missing parents) created by the daemon: rwxr-x---.
pub const DIR_MODE: u32 = 0o750;
/// Mode of a state file created by the daemon: rw-r-----.
pub const FILE_MODE: u32 = 0o640;

/// How [`StateDir::open_file`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read only; the file must exist.
    Read,
    /// Read and append, created when missing (a journal).
    ReadAppendCreate,
    /// Append only, created when missing (a log).
    AppendCreate,
    /// Read and write, created when missing, not truncated (a lock file).
    ReadWriteCreate,
    /// Write only, created; fails when the name exists (a temporary file).
    CreateNew,
}

impl Access {
    fn flags(self) -> OFlag {
        let base = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
        base | match self {
            Access::Read => OFlag::O_RDONLY,
            Access::ReadAppendCreate => OFlag::O_RDWR | OFlag::O_APPEND | OFlag::O_CREAT,
            Access::AppendCreate => OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT,
            Access::ReadWriteCreate => OFlag::O_RDWR | OFlag::O_CREAT,
            Access::CreateNew => OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT | OFlag::O_EXCL,
        }
    }
}

/// An open state directory.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    fd: OwnedFd,
}

fn errno(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// `path` without `.` components or a trailing slash: with a trailing slash the kernel follows
/// a final symbolic link even under `O_NOFOLLOW`.
fn normalized(path: &Path) -> PathBuf {
    let p: PathBuf = path.components().collect();
    if p.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        p
    }
}

impl StateDir {
    /// Creates `path` and its missing parents (mode [`DIR_MODE`]), then [`open`](Self::open)s it.
    ///
    /// # Errors
    /// As [`open`](Self::open), or the directory cannot be created.
    pub fn create(path: &Path) -> io::Result<StateDir> {
        let p = normalized(path);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&p)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
        StateDir::open(&p)
    }

    /// Opens an existing directory without following a symbolic link at `path` itself.
    ///
    /// # Errors
    /// `path` is a symbolic link (`… is a symbolic link: …`, kind `InvalidInput`), not a
    /// directory, missing (`NotFound`) or unreadable; every message starts with the path.
    pub fn open(path: &Path) -> io::Result<StateDir> {
        let path = normalized(path);
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match nix::fcntl::open(&path, flags, Mode::empty()) {
            Ok(fd) => Ok(StateDir { path, fd }),
            Err(Errno::ELOOP) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is a symbolic link: give the directory itself (state files are never \
                     reached through links)",
                    path.display()
                ),
            )),
            Err(e) => {
                // O_NOFOLLOW|O_DIRECTORY on a link to a directory may say ENOTDIR: tell which
                let link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink());
                if link {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "{} is a symbolic link: give the directory itself (state files are \
                             never reached through links)",
                            path.display()
                        ),
                    ));
                }
                Err(io::Error::new(
                    errno(e).kind(),
                    format!("{}: {}", path.display(), errno(e)),
                ))
            }
        }
    }

    /// The directory's path, as given (normalized), for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path()/name`, for messages.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The subdirectory `name`, opened under this directory's descriptor without following a
    /// symbolic link; `None` when there is none.
    ///
    /// # Errors
    /// `name` is a symbolic link or not a directory, or cannot be opened.
    pub fn open_dir(&self, name: &str) -> io::Result<Option<StateDir>> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match nix::fcntl::openat(self.fd.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(StateDir {
                path: self.join(name),
                fd,
            })),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(io::Error::new(
                errno(e).kind(),
                format!("{}: {e}", self.join(name).display()),
            )),
        }
    }

    /// Another descriptor of the same directory.
    ///
    /// # Errors
    /// The descriptor cannot be duplicated (EMFILE).
    pub fn try_clone(&self) -> io::Result<StateDir> {
        Ok(StateDir {
            path: self.path.clone(),
            fd: self.fd.try_clone()?,
        })
    }

    /// Refuses a directory others could plant files in: writable by group or others, or owned
    /// by a user other than the effective one and `also_owner` (the uid `appliance.user` will
    /// become, when the daemon drops to it).
    ///
    /// # Errors
    /// A message naming the directory, what is wrong and the command that fixes it.
    pub fn check_private(&self, also_owner: Option<u32>) -> Result<(), String> {
        let st = fstat(&self.fd).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let mode = st.st_mode & 0o7777;
        if mode & 0o022 != 0 {
            let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
                (true, true) => "group and others",
                (true, false) => "its group",
                _ => "others",
            };
            return Err(format!(
                "state-dir {} is writable by {who} (mode {mode:04o}): whoever can write there \
                 can plant links and files the daemon trusts; run `chmod go-w {}`",
                self.path.display(),
                self.path.display()
            ));
        }
        let me = Uid::effective().as_raw();
        if st.st_uid != me && Some(st.st_uid) != also_owner {
            let owner = user_name(st.st_uid);
            let expected = match also_owner {
                Some(u) if u != me => format!("{} or {}", user_name(me), user_name(u)),
                _ => user_name(me),
            };
            return Err(format!(
                "state-dir {} belongs to {owner}, not to {expected}: its owner can plant links \
                 and files the daemon trusts; give it to the user the daemon runs as \
                 (`chown {} {}`) or set appliance.user",
                self.path.display(),
                user_name(me),
                self.path.display()
            ));
        }
        Ok(())
    }

    /// Opens `name` in this directory without following a symbolic link; new files get mode
    /// [`FILE_MODE`]. Only regular files are opened.
    ///
    /// # Errors
    /// `name` is a symbolic link (kind `InvalidInput`, `DIR/NAME is a symbolic link: …`), not
    /// a regular file (`InvalidInput`), missing (`NotFound`, for [`Access::Read`]), exists
    /// (`AlreadyExists`, for [`Access::CreateNew`]), or the OS error; every message starts with
    /// `DIR/NAME`.
    pub fn open_file(&self, name: &str, access: Access) -> io::Result<File> {
        let at = self.join(name);
        let fd = nix::fcntl::openat(
            &self.fd,
            name,
            access.flags(),
            Mode::from_bits_truncate(FILE_MODE),
        )
        .map_err(|e| match e {
            Errno::ELOOP => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is a symbolic link: not following it (state files are never reached \
                     through links; remove the link)",
                    at.display()
                ),
            ),
            e => io::Error::new(errno(e).kind(), format!("{}: {}", at.display(), errno(e))),
        })?;
        let st = fstat(&fd).map_err(|e| io::Error::other(format!("{}: {e}", at.display())))?;
        if !is_regular(&st) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file: refusing to use it", at.display()),
            ));
        }
        Ok(File::from(fd))
    }

    /// Whether `name` exists (a symbolic link counts; it is not followed).
    ///
    /// # Errors
    /// The OS error other than ENOENT.
    pub fn exists(&self, name: &str) -> io::Result<bool> {
        match nix::sys::stat::fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(io::Error::new(
                errno(e).kind(),
                format!("{}: {}", self.join(name).display(), errno(e)),
            )),
        }
    }

    /// Renames `from` to `to`, both in this directory (`to` is replaced atomically).
    ///
    /// # Errors
    /// The OS error, naming `DIR/FROM`.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        nix::fcntl::renameat(&self.fd, from, &self.fd, to).map_err(|e| {
            io::Error::new(
                errno(e).kind(),
                format!("{} -> {to}: {}", self.join(from).display(), errno(e)),
            )
        })
    }

    /// Makes `to` a second name (hard link) of `from`, both in this directory; a symbolic link
    /// `from` is linked itself, not its target.
    ///
    /// # Errors
    /// The OS error (`to` exists, …), naming `DIR/TO`.
    pub fn link(&self, from: &str, to: &str) -> io::Result<()> {
        nix::unistd::linkat(&self.fd, from, &self.fd, to, AtFlags::empty()).map_err(|e| {
            io::Error::new(
                errno(e).kind(),
                format!("{} -> {to}: {}", self.join(from).display(), errno(e)),
            )
        })
    }

    /// Removes `name` (a link itself, never its target); a missing name is not an error.
    ///
    /// # Errors
    /// The OS error, naming `DIR/NAME`.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        match nix::unistd::unlinkat(&self.fd, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(io::Error::new(
                errno(e).kind(),
                format!("{}: {}", self.join(name).display(), errno(e)),
            )),
        }
    }

    /// fsync of the directory itself: makes creations, renames and removals in it durable.
    ///
    /// # Errors
    /// The OS error.
    pub fn sync(&self) -> io::Result<()> {
        nix::unistd::fsync(&self.fd)
            .map_err(|e| io::Error::new(errno(e).kind(), format!("{}: {e}", self.path.display())))
    }

    /// Gives the directory and the regular files directly in it to uid:gid, each through a
    /// descriptor opened without following links. Entries that are symbolic links, not regular
    /// files, or regular files with other hard links (which could be a root file linked in
    /// from elsewhere) are left alone and returned, as `name: why`.
    ///
    /// # Errors
    /// A chown or a read of the directory fails.
    pub fn give_to(&self, uid: u32, gid: u32) -> io::Result<Vec<String>> {
        let (u, g) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        let chown_err = |what: &Path| {
            let what = what.to_owned();
            move |e: Errno| {
                io::Error::new(
                    errno(e).kind(),
                    format!("{}: chown: {}", what.display(), errno(e)),
                )
            }
        };
        nix::unistd::fchown(&self.fd, u, g).map_err(chown_err(&self.path))?;
        let mut skipped = Vec::new();
        let mut dir = nix::dir::Dir::openat(
            &self.fd,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io::Error::new(errno(e).kind(), format!("{}: {e}", self.path.display())))?;
        for entry in dir.iter() {
            let entry = entry.map_err(|e| {
                io::Error::new(errno(e).kind(), format!("{}: {e}", self.path.display()))
            })?;
            let raw = entry.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let name = OsStr::from_bytes(raw);
            let shown = name.to_string_lossy().into_owned();
            let flags = OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_CLOEXEC
                | OFlag::O_NOCTTY;
            let fd = match nix::fcntl::openat(self.fd.as_fd(), name, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ELOOP) => {
                    skipped.push(format!("{shown}: symbolic link"));
                    continue;
                }
                Err(Errno::ENOENT) => continue,
                Err(e) => {
                    skipped.push(format!("{shown}: {e}"));
                    continue;
                }
            };
            let st = fstat(&fd).map_err(|e| {
                io::Error::new(
                    errno(e).kind(),
                    format!("{}: {e}", self.join(&shown).display()),
                )
            })?;
            if !is_regular(&st) {
                skipped.push(format!("{shown}: not a regular file"));
            } else if st.st_nlink > 1 {
                skipped.push(format!("{shown}: has {} hard links", st.st_nlink));
            } else {
                nix::unistd::fchown(&fd, u, g).map_err(chown_err(&self.join(&shown)))?;
            }
        }
        Ok(skipped)
    }
}

fn is_regular(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFREG
}

/// `name (uid N)`, or `uid N` when the uid has no name.
fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("{} (uid {uid})", u.name),
        _ => format!("uid {uid}"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    #[test]
    fn files_are_opened_without_following_links() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"precious\n").unwrap();
        let dir = StateDir::create(&tmp.path().join("state")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("devices.jsonl")).unwrap();
        for access in [
            Access::Read,
            Access::ReadAppendCreate,
            Access::AppendCreate,
            Access::ReadWriteCreate,
            Access::CreateNew,
        ] {
            let e = dir.open_file("devices.jsonl", access).unwrap_err();
            let want = if access == Access::CreateNew {
                "File exists"
            } else {
                "is a symbolic link: not following it"
            };
            assert!(e.to_string().contains(want), "{access:?}: {e}");
        }
        // a dangling link is not created through either
        std::os::unix::fs::symlink(tmp.path().join("planted"), dir.join("lock")).unwrap();
        dir.open_file("lock", Access::ReadWriteCreate).unwrap_err();
        assert!(!tmp.path().join("planted").exists());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
        // a FIFO is refused rather than blocked on
        nix::unistd::mkfifo(&dir.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let e = dir.open_file("fifo", Access::ReadWriteCreate).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("fifo is not a regular file: refusing to use it"),
            "{e}"
        );
        // an ordinary file works, and is made with FILE_MODE
        let mut f = dir
            .open_file("leases4.journal", Access::ReadAppendCreate)
            .unwrap();
        f.write_all(b"x\n").unwrap();
        let mut s = String::new();
        dir.open_file("leases4.journal", Access::Read)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "x\n");
        let mode = std::fs::metadata(dir.join("leases4.journal"))
            .unwrap()
            .mode()
            & 0o777;
        assert_eq!(mode & !FILE_MODE, 0, "{mode:o}");
        dir.rename("leases4.journal", "moved").unwrap();
        assert!(dir.exists("moved").unwrap());
        dir.remove("moved").unwrap();
        dir.remove("moved").unwrap();
        assert!(!dir.exists("moved").unwrap());
        assert!(dir.exists("devices.jsonl").unwrap(), "a link exists itself");
    }

    #[test]
    fn a_linked_or_shared_state_dir_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        let d = StateDir::create(&real).unwrap();
        d.check_private(None).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        for p in [link.clone(), link.join("")] {
            let e = StateDir::open(&p).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains("link is a symbolic link"), "{e}");
        }
        StateDir::create(&link).unwrap_err();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = d.check_private(None).unwrap_err();
        assert!(
            e.contains("is writable by group and others (mode 0777)") && e.contains("chmod go-w"),
            "{e}"
        );
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o1703)).unwrap();
        assert!(d
            .check_private(None)
            .unwrap_err()
            .contains("writable by others"));
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
        d.check_private(None).unwrap();
    }

    /// Needs root (chown); skipped otherwise.
    #[test]
    fn giving_the_dir_away_changes_only_its_own_files_through_descriptors() {
        if !Uid::effective().is_root() {
            eprintln!("SKIP giving_the_dir_away…: needs root (chown)");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("root-file");
        std::fs::write(&outside, b"root\n").unwrap();
        let dir = StateDir::create(&tmp.path().join("state")).unwrap();
        std::fs::write(dir.join("leases4.journal"), b"").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("devices.jsonl")).unwrap();
        std::fs::hard_link(&outside, dir.join("lock")).unwrap();
        nix::unistd::mkfifo(&dir.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let mut skipped = dir.give_to(65534, 65534).unwrap();
        skipped.sort();
        assert_eq!(
            skipped,
            [
                "devices.jsonl: symbolic link",
                "fifo: not a regular file",
                "lock: has 2 hard links"
            ]
        );
        let uid = |p: &Path| std::fs::symlink_metadata(p).unwrap().uid();
        assert_eq!(uid(dir.path()), 65534);
        assert_eq!(uid(&dir.join("leases4.journal")), 65534);
        assert_eq!(uid(&outside), 0, "a root file linked in stays root's");
        assert_eq!(uid(&dir.join("devices.jsonl")), 0);
        // the owner check accepts the user the daemon drops to, and no one else
        dir.check_private(Some(65534)).unwrap();
        let e = dir.check_private(None).unwrap_err();
        assert!(
            e.contains("belongs to nobody (uid 65534), not to root (uid 0)"),
            "{e}"
        );
    }
}
