//! Thin wrappers over the system calls this library makes.
//!
//! Each returns `io::Result` with the raw errno preserved, makes exactly one call (no
//! retries: the loops live in [`crate::io`] and [`crate::zerocopy`]), and keeps its
//! `unsafe` block next to the reason it is sound. The `libc` crate lacks a few Linux
//! constants; they are defined here with their uapi header of origin.
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::RawFd;

/// `SO_ZEROCOPY` from `<asm-generic/socket.h>`: allow `MSG_ZEROCOPY` on this socket.
pub(crate) const SO_ZEROCOPY: libc::c_int = 60;
/// `SO_EE_ORIGIN_ZEROCOPY` from `<linux/errqueue.h>`: a zero-copy completion notification.
pub(crate) const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
/// `SO_EE_CODE_ZEROCOPY_COPIED` from `<linux/errqueue.h>`: the kernel copied the data after all.
pub(crate) const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;
/// `SIOCOUTQ` from `<linux/sockios.h>` (= `TIOCOUTQ`): bytes in the send queue not yet
/// consumed; for `AF_UNIX` it is the memory charged to the sender, data plus overhead.
pub(crate) const SIOCOUTQ: libc::c_ulong = libc::TIOCOUTQ as libc::c_ulong;
/// `SIOCINQ` (= `FIONREAD`): bytes waiting to be read.
pub(crate) const SIOCINQ: libc::c_ulong = libc::FIONREAD as libc::c_ulong;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

pub fn gettid() -> libc::pid_t {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::gettid() }
}

/// The text of `code` (`strerror_r`), in `buf`; "Unknown error" if the C library wrote none.
pub fn strerror(code: i32, buf: &mut [u8; 128]) -> &str {
    // SAFETY: `buf` is writable for its whole length, which is passed. The XSI strerror_r
    // (the libc crate's binding on glibc) writes a NUL-terminated text, also for an unknown
    // code ("Unknown error N", returning EINVAL), so its result code is not needed.
    unsafe { libc::strerror_r(code, buf.as_mut_ptr().cast(), buf.len()) };
    if buf[0] == 0 {
        return "Unknown error";
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..len]).unwrap_or("Unknown error")
}

/// `write(2)` of one buffer (the logger's stderr line).
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    check_size(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}

/// The kernel's release (`uname -r`), empty if unreadable.
pub fn kernel_release() -> String {
    // SAFETY: utsname is plain data; uname fills it on success, and it is read only then.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid utsname to fill.
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    // SAFETY: uname NUL-terminates each field within its array (zeroed above besides).
    unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy().into_owned()
}

/// `send(2)` of one buffer.
pub fn send(fd: RawFd, buf: &[u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    check_size(unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) })
}

/// `sendmsg(2)` of a gather list, no address, no control data.
pub fn sendmsg(fd: RawFd, iov: &[libc::iovec], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: msghdr is plain data; zeroed is its empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: msg points at `iov`, whose entries the caller made from live slices; the
    // kernel only reads them.
    check_size(unsafe { libc::sendmsg(fd, &msg, flags) })
}

/// `recv(2)` into a buffer.
/// `recv(2)` into `buf`, which need not be initialised (the kernel only writes to it).
pub fn recv(fd: RawFd, buf: &mut [MaybeUninit<u8>], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    check_size(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) })
}

extern "C" {
    // POSIX; in glibc's libc.so.6 since 2.34 (the libc crate does not declare it on Linux).
    fn pthread_testcancel();
}

/// `send(2)` that never blocks, made through `syscall(2)`: the per-message fast path.
///
/// glibc's `send` and `recv` are cancellation points: in a process with more than one
/// thread (every Qt program, blight) each call switches the thread's cancellation type to
/// asynchronous and back, two atomic read-modify-writes on the thread's descriptor that
/// cost about 25 ns per call on this machine (7-8 % of a 12-byte send + recv pair:
/// docs/BENCHMARKS.md, "The cancellation wrapper"). A call that cannot block needs no such
/// window, so this one adds `MSG_DONTWAIT` and enters the kernel directly; anything that
/// may wait goes through the C library (`send`, `recv`, `poll`, `ppoll`) on the slow path,
/// where a thread is cancelled as before. `pthread_testcancel()` first acts
/// on a cancellation already pending, as the cancellation point it replaces would.
pub fn send_nowait(fd: RawFd, buf: &[u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: pthread_testcancel takes no arguments; the pointer and length describe `buf`,
    // which outlives the call; the two address arguments of sendto are "none".
    check_size(unsafe {
        pthread_testcancel();
        libc::syscall(
            libc::SYS_sendto,
            fd as libc::c_long,
            buf.as_ptr(),
            buf.len(),
            (flags | libc::MSG_DONTWAIT) as libc::c_long,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::c_long,
        ) as libc::ssize_t
    })
}

/// `recv(2)` into `buf` that never blocks, made through `syscall(2)`: the receiving side of
/// [`send_nowait`], with the same reasons.
pub fn recv_nowait(fd: RawFd, buf: &mut [MaybeUninit<u8>], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`; no address is asked.
    check_size(unsafe {
        pthread_testcancel();
        libc::syscall(
            libc::SYS_recvfrom,
            fd as libc::c_long,
            buf.as_mut_ptr(),
            buf.len(),
            (flags | libc::MSG_DONTWAIT) as libc::c_long,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        ) as libc::ssize_t
    })
}

/// `poll(2)` on one descriptor with a zero timeout (it never blocks), made as `ppoll`
/// through `syscall(2)`, for [`send_nowait`]'s reasons; returns its `revents`.
pub fn poll_now(fd: RawFd, events: libc::c_short) -> io::Result<libc::c_short> {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: one valid pollfd and a valid timespec; no signal mask (so no mask size).
    let n = check_size(unsafe {
        pthread_testcancel();
        libc::syscall(
            libc::SYS_ppoll,
            &mut pfd as *mut libc::pollfd,
            1 as libc::c_long,
            &zero as *const libc::timespec,
            std::ptr::null::<libc::sigset_t>(),
            0 as libc::c_long,
        ) as libc::ssize_t
    })?;
    Ok(if n == 0 { 0 } else { pfd.revents })
}

/// `poll(2)` on one descriptor; returns its `revents` (0 on timeout).
pub fn poll(fd: RawFd, events: libc::c_short, timeout_ms: libc::c_int) -> io::Result<libc::c_short> {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    // SAFETY: one valid pollfd.
    let n = check(unsafe { libc::poll(&mut pfd, 1, timeout_ms) })?;
    Ok(if n == 0 { 0 } else { pfd.revents })
}

/// `ppoll(2)` on one descriptor with a timeout finer than a millisecond; returns its
/// `revents` (0 on timeout). The kernel stretches a short timeout by the thread's timer
/// slack (50 us by default), as it does every sleep.
pub fn ppoll(fd: RawFd, events: libc::c_short, timeout: std::time::Duration) -> io::Result<libc::c_short> {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // SAFETY: one valid pollfd, a valid timespec, no signal mask.
    let n = check(unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) })?;
    Ok(if n == 0 { 0 } else { pfd.revents })
}

/// The file type bits and inode number of an open descriptor (`fstat64(2)`).
///
/// `fstat64`, not `fstat`: on 32-bit glibc targets (armv7, i686) `struct stat` has a
/// 32-bit `st_ino`, and plain `fstat` fails with `EOVERFLOW` for an inode that does not
/// fit. `stat64` has a 64-bit `st_ino` everywhere; on 64-bit targets the two calls are
/// the same function. (The fstat interposer of cpp_tests/fault_interleave.cpp wraps both.)
pub fn file_identity(fd: RawFd) -> io::Result<(libc::mode_t, u64)> {
    let mut st = MaybeUninit::<libc::stat64>::uninit();
    // SAFETY: fstat64 fills the whole struct on success; it is read only then.
    check(unsafe { libc::fstat64(fd, st.as_mut_ptr()) })?;
    // SAFETY: initialised by the successful fstat64 above.
    let st = unsafe { st.assume_init() };
    Ok((st.st_mode & libc::S_IFMT, st.st_ino)) // ino64_t: u64 on every target
}

/// A new descriptor of the file `fd` names now (`F_DUPFD_CLOEXEC`), closed on drop.
pub fn dup_cloexec(fd: RawFd) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl with F_DUPFD_CLOEXEC takes an int argument and returns a new descriptor.
    let new = check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: `new` was just opened by the call above and is owned by nothing else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(new) })
}

pub fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are valid for writing an int-sized option.
    check(unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut libc::c_int).cast(), &mut len) })?;
    Ok(value)
}

pub fn setsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: points at an int that lives across the call.
    check(unsafe {
        libc::setsockopt(fd, level, name, (&value as *const libc::c_int).cast(), size_of::<libc::c_int>() as _)
    })
    .map(drop)
}

/// The effective uid of the peer of a connected `AF_UNIX` socket (`SO_PEERCRED`: its
/// credentials when it connected, or called `socketpair`), mapped into our user
/// namespace; `None` while the socket has no peer (the kernel then reports uid -1).
pub fn peer_euid(fd: RawFd) -> io::Result<Option<libc::uid_t>> {
    let mut cred = libc::ucred { pid: 0, uid: libc::uid_t::MAX, gid: libc::gid_t::MAX };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are valid for writing a ucred.
    check(unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERCRED, (&mut cred as *mut libc::ucred).cast(), &mut len)
    })?;
    Ok((cred.uid != libc::uid_t::MAX).then_some(cred.uid))
}

/// The uid the kernel reports for a user not mapped into our user namespace
/// (`/proc/sys/kernel/overflowuid`, 65534 unless changed), read once (at load: see
/// `zerocopy::on_load`; a child forked while another thread was reading it would wait).
pub fn overflow_uid() -> libc::uid_t {
    static UID: once_cell::sync::Lazy<libc::uid_t> =
        once_cell::sync::Lazy::new(|| read_proc_number("/proc/sys/kernel/overflowuid").unwrap_or(65534));
    *UID
}

pub fn geteuid() -> libc::uid_t {
    // SAFETY: geteuid takes no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// An `ioctl(2)` that reports one int (`SIOCINQ`, `SIOCOUTQ`).
pub fn ioctl_int(fd: RawFd, request: libc::c_ulong) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    // SAFETY: both requests write a single int through the pointer.
    check(unsafe { libc::ioctl(fd, request as _, &mut value as *mut libc::c_int) })?;
    Ok(value)
}

/// Reads one message from the socket's error queue without blocking and calls
/// `on_cmsg(level, type, err)` for each `sock_extended_err` control message in it.
/// Returns the message flags (the caller checks `MSG_CTRUNC`).
///
/// Only call this on sockets that have `SO_ZEROCOPY` enabled: on `AF_UNIX`,
/// `MSG_ERRQUEUE` is ignored and this would consume (and lose) ordinary data.
pub fn recv_error_queue(
    fd: RawFd,
    mut on_cmsg: impl FnMut(libc::c_int, libc::c_int, &libc::sock_extended_err),
) -> io::Result<libc::c_int> {
    // Room for a sock_extended_err plus the offender address (sockaddr_in6), twice over.
    #[repr(C, align(8))]
    struct Control([u8; 256]);
    let mut control = Control([0; 256]);
    // SAFETY: msghdr is plain data; zeroed is its empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len() as _;
    // SAFETY: the control buffer outlives the call; no iovec, so no data is read.
    check_size(unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) })?;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel just filled, bounded by
    // msg_controllen; each payload is copied out with read_unaligned only when its length
    // covers a whole sock_extended_err.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            let needed = libc::CMSG_LEN(size_of::<libc::sock_extended_err>() as u32) as usize;
            if header.cmsg_len as usize >= needed {
                let err = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::sock_extended_err);
                on_cmsg(header.cmsg_level, header.cmsg_type, &err);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(msg.msg_flags)
}

/// A pipe whose two ends are closed on drop.
#[derive(Debug)]
pub struct Pipe {
    pub read: RawFd,
    pub write: RawFd,
}

impl Pipe {
    /// A non-blocking, close-on-exec pipe.
    pub fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two descriptors into `fds`.
        check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
        Ok(Pipe { read: fds[0], write: fds[1] })
    }

    /// `F_SETPIPE_SZ`; returns the capacity the kernel granted.
    pub fn set_capacity(&self, bytes: usize) -> io::Result<usize> {
        // SAFETY: no memory is involved.
        check(unsafe { libc::fcntl(self.write, libc::F_SETPIPE_SZ, bytes as libc::c_int) }).map(|n| n as usize)
    }

    /// `vmsplice(2)` without `SPLICE_F_GIFT`: the pipe takes references to the caller's
    /// pages (no copy); the caller must keep them unchanged until the data is consumed.
    pub fn vmsplice_from(&self, buf: &[u8]) -> io::Result<usize> {
        let iov = libc::iovec { iov_base: buf.as_ptr() as *mut libc::c_void, iov_len: buf.len() };
        // SAFETY: one iovec over `buf`; the kernel only takes page references. Keeping the
        // pages unchanged until the reader consumed them is the buffer table's job.
        check_size(unsafe { libc::vmsplice(self.write, &iov, 1, libc::SPLICE_F_NONBLOCK) })
    }

    /// `splice(2)` up to `len` bytes from the pipe into `fd`.
    pub fn splice_to(&self, fd: RawFd, len: usize) -> io::Result<usize> {
        // SAFETY: no user memory is involved; null offsets mean "current position".
        check_size(unsafe {
            libc::splice(
                self.read,
                std::ptr::null_mut(),
                fd,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        })
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: both descriptors are owned by this value and closed once.
        unsafe {
            libc::close(self.read);
            libc::close(self.write);
        }
    }
}

/// The system's largest pipe capacity (`/proc/sys/fs/pipe-max-size`), if readable.
pub fn pipe_max_size() -> Option<usize> {
    read_proc_number("/proc/sys/fs/pipe-max-size")
}

/// A number read from a `/proc/sys` file, into the stack: this runs on send paths, where
/// out of memory must not abort (and the short path is made a C string on the stack too).
fn read_proc_number<T: std::str::FromStr>(path: &str) -> Option<T> {
    use std::io::Read;
    let mut buf = [0u8; 32];
    let n = std::fs::File::open(path).ok()?.read(&mut buf).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

/// Blocks `SIGPIPE` in the calling thread while alive.
///
/// `splice(2)` into a socket does not honour `MSG_NOSIGNAL` (the kernel builds the
/// `msghdr` itself), so a peer that closed mid-splice would raise `SIGPIPE`. With the
/// signal blocked it stays pending instead. After a failed send the caller calls
/// [`SigpipeBlock::failed`]; on drop, a `SIGPIPE` raised while the guard was alive is
/// consumed with `sigtimedwait`, then the old mask is restored. The normal path costs
/// two `rt_sigprocmask` calls.
pub struct SigpipeBlock {
    old: libc::sigset_t,
    /// SIGPIPE was already pending when the guard started: it is not ours to consume.
    was_pending: bool,
    failed: bool,
}

fn sigpipe_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set; sigaddset with a valid signal cannot fail.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
        set.assume_init()
    }
}

fn sigpipe_pending() -> bool {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigpending fills the set; sigismember only reads it.
    unsafe { libc::sigpending(set.as_mut_ptr()) == 0 && libc::sigismember(set.as_ptr(), libc::SIGPIPE) == 1 }
}

impl SigpipeBlock {
    pub fn new() -> SigpipeBlock {
        let block = sigpipe_set();
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: valid sets; pthread_sigmask only fails for a bad `how`.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &block, old.as_mut_ptr()) };
        // SAFETY: initialised by pthread_sigmask.
        let old = unsafe { old.assume_init() };
        // An unblocked SIGPIPE is delivered, not left pending: only a caller that already
        // blocked it can have one pending.
        // SAFETY: sigismember only reads the set.
        let was_blocked = unsafe { libc::sigismember(&old, libc::SIGPIPE) } == 1;
        SigpipeBlock { old, was_pending: was_blocked && sigpipe_pending(), failed: false }
    }

    /// A send under this guard failed: it may have raised SIGPIPE.
    pub fn failed(&mut self) {
        self.failed = true;
    }
}

impl Default for SigpipeBlock {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for SigpipeBlock {
    fn drop(&mut self) {
        if self.failed && !self.was_pending && sigpipe_pending() {
            let set = sigpipe_set();
            let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: consumes the pending SIGPIPE that our own splice raised.
            unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) };
        }
        // SAFETY: restores the mask saved in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel ABI this file hand-codes, checked on every target the tests run on
    /// (x86-64, i686 natively; armv7 and aarch64 under qemu-user): the uapi values are the
    /// same on all four, and `sock_extended_err` is five fixed-width fields (16 bytes, no
    /// pointer or long in it), so 32- and 64-bit agree.
    #[test]
    fn kernel_abi_constants() {
        assert_eq!(SIOCOUTQ, 0x5411);
        assert_eq!(SIOCINQ, 0x541B);
        assert_eq!(SO_ZEROCOPY, 60);
        assert_eq!(size_of::<libc::sock_extended_err>(), 16);
        // A control message header is aligned to size_t: 4 bytes on 32-bit, 8 on 64-bit.
        // SAFETY: CMSG_LEN and CMSG_SPACE are pure arithmetic.
        let (len, space) = unsafe { (libc::CMSG_LEN(16) as usize, libc::CMSG_SPACE(16) as usize) };
        assert_eq!(len, size_of::<libc::cmsghdr>() + 16);
        assert_eq!(space % size_of::<usize>(), 0);
        assert_eq!(size_of::<libc::cmsghdr>(), 2 * size_of::<libc::c_int>() + size_of::<usize>());
    }

    /// The inode is 64-bit on every target (fstat64), and a socket's is stable and nonzero.
    #[test]
    fn file_identity_of_a_socket() {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: socketpair writes two descriptors into `fds`.
        assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) }, 0);
        let (mode, ino) = file_identity(fds[0]).unwrap();
        assert_eq!(mode, libc::S_IFSOCK);
        assert_ne!(ino, 0);
        assert_eq!(file_identity(fds[0]).unwrap().1, ino);
        assert_ne!(file_identity(fds[1]).unwrap().1, ino);
        // SAFETY: both descriptors are ours.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        assert_eq!(file_identity(fds[0]).unwrap_err().raw_os_error(), Some(libc::EBADF));
    }
}
