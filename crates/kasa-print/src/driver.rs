//! Carrying print jobs to printers.
//!
//! A network printer gets one TCP connection per job, with connect and write timeouts, closed
//! after the job, so a printer that hangs never holds a sale. A file target (a USB printer's
//! device node such as `/dev/usb/lp0`, or a plain file) gets the bytes appended.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Where a printer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A network printer (`host:9100`).
    Tcp(String),
    /// A device node or file.
    File(PathBuf),
}

/// Why a job did not reach the printer.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    /// The address could not be resolved.
    #[error("printer address '{0}' is not valid: {1}")]
    Address(String, String),
    /// No connection within the timeout.
    #[error("printer at {0} did not answer: {1}. Check that it is on and connected.")]
    Connect(String, std::io::Error),
    /// Writing failed part-way.
    #[error("sending to the printer at {0} failed: {1}")]
    Write(String, std::io::Error),
}

impl PrintError {
    /// Whether retrying later may succeed (all printer failures are, until someone fixes it).
    pub fn is_transient(&self) -> bool {
        !matches!(self, PrintError::Address(..))
    }
}

/// Timeouts for network printers.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting.
    pub connect: Duration,
    /// Each write.
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(3), write: Duration::from_secs(5) }
    }
}

/// Sends one job. Blocking; call it off the async runtime.
pub fn send(target: &Target, bytes: &[u8], timeouts: Timeouts) -> Result<(), PrintError> {
    match target {
        Target::Tcp(addr) => {
            let sock: SocketAddr = addr
                .to_socket_addrs()
                .map_err(|e| PrintError::Address(addr.clone(), e.to_string()))?
                .next()
                .ok_or_else(|| PrintError::Address(addr.clone(), "no address".into()))?;
            let mut s = TcpStream::connect_timeout(&sock, timeouts.connect)
                .map_err(|e| PrintError::Connect(addr.clone(), e))?;
            s.set_write_timeout(Some(timeouts.write)).map_err(|e| PrintError::Write(addr.clone(), e))?;
            s.write_all(bytes).map_err(|e| PrintError::Write(addr.clone(), e))?;
            s.flush().map_err(|e| PrintError::Write(addr.clone(), e))?;
            let _ = s.shutdown(std::net::Shutdown::Both);
            Ok(())
        }
        Target::File(path) => {
            let name = path.display().to_string();
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| PrintError::Connect(name.clone(), e))?;
            f.write_all(bytes).map_err(|e| PrintError::Write(name.clone(), e))?;
            f.flush().map_err(|e| PrintError::Write(name, e))
        }
    }
}
