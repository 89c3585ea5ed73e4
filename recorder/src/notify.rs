//! sd_notify(3): telling systemd (or a test or benchmark harness) that every
//! probe is attached.

use std::{
    os::{
        linux::net::SocketAddrExt,
        unix::net::{SocketAddr, UnixDatagram},
    },
    path::PathBuf,
};

/// `READY=1` to the datagram socket named by `NOTIFY_SOCKET` (a path, or an
/// abstract name after `@`); nothing when the variable is not set.
pub fn ready() -> std::io::Result<()> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let socket = UnixDatagram::unbound()?;
    let address = match path.as_encoded_bytes().strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(PathBuf::from(&path))?,
    };
    socket.send_to_addr(b"READY=1", &address)?;
    Ok(())
}
