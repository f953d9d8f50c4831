//! File operations for code that may run as root inside a directory the
//! OpenVPN user can write (the database directory and its spool). Such a
//! user can plant symbolic links, hard links or FIFOs there; nothing here
//! follows a link, and ownership and modes change only through a
//! descriptor of a file that was checked after it was opened.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a file name"))
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Open an existing file without following a link and without blocking on
/// a FIFO. `Ok(None)` when it does not exist.
pub fn open_nofollow(path: &Path) -> io::Result<Option<File>> {
    let c = cstr(path.as_os_str())?;
    // SAFETY: a valid NUL-terminated path; the descriptor is owned below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::NotFound { Ok(None) } else { Err(e) };
    }
    // SAFETY: fd was just opened and is ours.
    Ok(Some(unsafe { File::from_raw_fd(fd) }))
}

/// What `lstat` says about a path, if it exists.
pub fn lstat(path: &Path) -> io::Result<Option<std::fs::Metadata>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A file we may change the owner or mode of: regular, one link, opened
/// without following links. Anything else is refused with the reason.
pub fn checked_regular(path: &Path) -> io::Result<Option<File>> {
    use std::os::unix::fs::MetadataExt;
    let f = match open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(io::Error::other(format!("{} is a symbolic link", path.display())));
        }
        Err(e) => return Err(e),
    };
    let Some(f) = f else { return Ok(None) };
    let m = f.metadata()?;
    if !m.file_type().is_file() {
        return Err(io::Error::other(format!("{} is not a regular file", path.display())));
    }
    match m.nlink() {
        1 => Ok(Some(f)),
        // Removed since it was opened (SQLite removes -wal and -shm when its
        // last connection closes): as if it had not been there.
        0 => Ok(None),
        n => Err(io::Error::other(format!("{} has {n} hard links", path.display()))),
    }
}

pub fn fchown(f: &File, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: a descriptor we own.
    check(unsafe { libc::fchown(f.as_raw_fd(), uid, gid) }).map(|_| ())
}

pub fn fchmod(f: &File, mode: u32) -> io::Result<()> {
    // SAFETY: a descriptor we own.
    check(unsafe { libc::fchmod(f.as_raw_fd(), mode as libc::mode_t) }).map(|_| ())
}

/// A directory opened without following a link; entries are then reached
/// relative to it, so the directory cannot be swapped under us.
pub struct Dir {
    fd: OwnedFd,
}

impl Dir {
    /// `Ok(None)` when the directory does not exist; an error when the path
    /// is a link or not a directory.
    pub fn open(path: &Path) -> io::Result<Option<Dir>> {
        let c = cstr(path.as_os_str())?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a valid path; the descriptor is owned below.
        let fd = unsafe { libc::open(c.as_ptr(), flags) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                Some(libc::ELOOP | libc::ENOTDIR) => {
                    Err(io::Error::other(format!("{} is not a directory (or is a symbolic link)", path.display())))
                }
                _ => Err(e),
            };
        }
        // SAFETY: just opened, ours.
        Ok(Some(Dir { fd: unsafe { OwnedFd::from_raw_fd(fd) } }))
    }

    /// The names in the directory (without `.` and `..`).
    pub fn names(&self) -> io::Result<Vec<Vec<u8>>> {
        // fdopendir takes over its descriptor: give it a duplicate.
        // SAFETY: duplicating a descriptor we own.
        let dup = check(unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
        // SAFETY: dup is a directory descriptor we own; closedir closes it.
        let d = unsafe { libc::fdopendir(dup) };
        if d.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so dup is still ours to close.
            unsafe { libc::close(dup) };
            return Err(e);
        }
        // SAFETY: d is a valid DIR*; rewinding makes the listing start at
        // the beginning whatever an earlier listing left.
        unsafe { libc::rewinddir(d) };
        let mut out = Vec::new();
        loop {
            // SAFETY: d is valid until closedir; the entry is copied out
            // before the next readdir.
            let e = unsafe { libc::readdir(d) };
            if e.is_null() {
                break;
            }
            // SAFETY: d_name is NUL-terminated.
            let name = unsafe { CStr::from_ptr((*e).d_name.as_ptr()) }.to_bytes().to_vec();
            if name != b"." && name != b".." {
                out.push(name);
            }
        }
        // SAFETY: closes d and its descriptor.
        unsafe { libc::closedir(d) };
        Ok(out)
    }

    fn at(&self, name: &[u8]) -> io::Result<CString> {
        if name.contains(&b'/') {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a name with a slash"));
        }
        cstr(OsStr::from_bytes(name))
    }

    /// Read a regular file in the directory, at most `max` bytes; a link,
    /// a FIFO or a larger file is an error.
    pub fn read(&self, name: &[u8], max: u64) -> io::Result<Vec<u8>> {
        let c = self.at(name)?;
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
        // SAFETY: valid directory descriptor and name.
        let fd = check(unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags) })?;
        // SAFETY: just opened, ours.
        let f = unsafe { File::from_raw_fd(fd) };
        let m = f.metadata()?;
        if !m.file_type().is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        let mut buf = Vec::new();
        f.take(max + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > max {
            return Err(io::Error::other(format!("larger than {max} bytes")));
        }
        Ok(buf)
    }

    /// Seconds since the entry (not a link's target) was last modified.
    pub fn age_secs(&self, name: &[u8], now: i64) -> io::Result<i64> {
        let c = self.at(name)?;
        // SAFETY: zeroed stat is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor, name and out-pointer.
        check(unsafe { libc::fstatat(self.fd.as_raw_fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
        Ok(now - st.st_mtime)
    }

    /// Remove an entry (a link is removed itself, never its target).
    pub fn remove(&self, name: &[u8]) -> io::Result<()> {
        let c = self.at(name)?;
        // SAFETY: valid descriptor and name.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) }).map(|_| ())
    }

    /// Rename an entry within the directory.
    pub fn rename(&self, from: &[u8], to: &[u8]) -> io::Result<()> {
        let (a, b) = (self.at(from)?, self.at(to)?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: valid descriptor and names.
        check(unsafe { libc::renameat(fd, a.as_ptr(), fd, b.as_ptr()) }).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::tempdir;

    #[test]
    fn links_and_fifos_are_refused() {
        let d = tempdir::Dir::new();
        let target = d.path.join("target");
        std::fs::write(&target, b"secret").unwrap();
        let link = d.path.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(checked_regular(&link).unwrap_err().to_string().contains("symbolic link"));
        let hard = d.path.join("hard");
        std::fs::hard_link(&target, &hard).unwrap();
        assert!(checked_regular(&hard).unwrap_err().to_string().contains("hard links"));
        std::fs::remove_file(&hard).unwrap();
        assert!(checked_regular(&target).unwrap().is_some());
        assert!(checked_regular(&d.path.join("missing")).unwrap().is_none());

        let fifo = d.path.join("fifo");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let dir = Dir::open(&d.path).unwrap().unwrap();
        assert!(dir.read(b"fifo", 100).is_err(), "a FIFO is refused, not waited on");
        assert!(dir.read(b"link", 100).is_err(), "a link is not followed");
        assert_eq!(dir.read(b"target", 100).unwrap(), b"secret");
        assert!(dir.read(b"target", 3).is_err());
        let mut names = dir.names().unwrap();
        names.sort();
        assert_eq!(names, vec![b"fifo".to_vec(), b"link".to_vec(), b"target".to_vec()]);
        dir.remove(b"link").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"secret", "removing a link leaves its target");

        let dlink = d.path.join("dlink");
        std::os::unix::fs::symlink(&d.path, &dlink).unwrap();
        assert!(Dir::open(&dlink).is_err(), "a linked directory is refused");
        assert!(Dir::open(&d.path.join("nodir")).unwrap().is_none());
    }
}
