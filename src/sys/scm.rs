//! Passing file descriptors over a unix socket (`SCM_RIGHTS`), returning them as `OwnedFd`.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

/// The most descriptors one [`recv_fds`] accepts.
pub const MAX_FDS: usize = 8;

/// Sends the one-byte message `tag` with `fds` attached. The descriptors stay open here.
pub fn send_fds(sock: BorrowedFd<'_>, tag: u8, fds: &[BorrowedFd<'_>]) -> Result<(), Errno> {
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let cmsgs = if raw.is_empty() {
        vec![]
    } else {
        vec![ControlMessage::ScmRights(&raw)]
    };
    let data = [tag];
    let iov = [IoSlice::new(&data)];
    let sent = sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None)?;
    if sent != 1 {
        return Err(Errno::EIO);
    }
    Ok(())
}

/// Receives one byte and the descriptors attached to it (close-on-exec). Returns `None` at end
/// of stream.
pub fn recv_fds(sock: BorrowedFd<'_>) -> Result<Option<(u8, Vec<OwnedFd>)>, Errno> {
    let mut data = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut data)];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            for raw in received {
                // SAFETY: the kernel just installed `raw` in this process's descriptor table for
                // this message; nothing else refers to it, so this OwnedFd is its only owner.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
    }
    let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
    if msg.bytes == 0 {
        return Ok(None);
    }
    if truncated {
        return Err(Errno::EMSGSIZE);
    }
    Ok(Some((data[0], fds)))
}
