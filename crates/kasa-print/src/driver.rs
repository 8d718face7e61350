//! Carrying print jobs to printers.
//!
//! - **Network** (`host:9100`): one TCP connection per job with connect, write and read
//!   timeouts, closed after the job, so a printer that hangs never holds a sale. Before the job
//!   the printer is asked for its real-time status (`DLE EOT 1`, `2`, `4`); paper out, cover
//!   open or offline refuse the job with a reason the cashier can act on, and the job stays
//!   queued. A printer that does not answer status requests is printed to anyway.
//! - **USB** on Linux: the printer's device node (`/dev/usb/lp0`) written as a file; give the
//!   register's user access with a udev rule (see the README).
//! - **Serial**: a serial port at a baud rate (8N1), status asked as on the network.
//! - **File**: bytes appended to a file (archiving, tests).
//! - **Windows spooler**: raw bytes to an installed printer by name (`cfg(windows)`, see
//!   [`spooler`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Where a printer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A network printer (`host:9100`).
    Tcp(String),
    /// A device node (USB) or a file.
    File(PathBuf),
    /// A serial port.
    Serial {
        /// Port, e.g. `/dev/ttyUSB0` or `COM3`.
        path: String,
        /// Baud rate, e.g. 9600 or 115200.
        baud: u32,
    },
    /// A printer installed in the Windows spooler, by name.
    Spooler(String),
}

/// What the printer reported about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrinterStatus {
    /// No paper (or printing stopped at the paper end).
    pub paper_out: bool,
    /// The paper roll is nearly used up.
    pub paper_near_end: bool,
    /// The cover is open.
    pub cover_open: bool,
    /// The printer is offline for another reason.
    pub offline: bool,
}

impl PrinterStatus {
    /// Reads the answers to `DLE EOT 1`, `DLE EOT 2` and `DLE EOT 4` (Epson bit layout).
    pub fn from_replies(printer: u8, offline_cause: u8, paper: u8) -> PrinterStatus {
        PrinterStatus {
            paper_out: paper & 0x60 != 0 || offline_cause & 0x20 != 0,
            paper_near_end: paper & 0x0C != 0,
            cover_open: offline_cause & 0x04 != 0,
            offline: printer & 0x08 != 0,
        }
    }

    /// Whether a job can be printed now.
    pub fn can_print(&self) -> bool {
        !self.paper_out && !self.cover_open && !self.offline
    }

    /// A sentence for the cashier.
    pub fn describe(&self) -> String {
        if self.paper_out {
            "the printer is out of paper: put in a new roll; the slip prints as soon as it is back".into()
        } else if self.cover_open {
            "the printer's cover is open: close it; the slip prints as soon as it is closed".into()
        } else if self.offline {
            "the printer is offline: check it; the slip prints as soon as it is back".into()
        } else if self.paper_near_end {
            "the paper roll is nearly used up".into()
        } else {
            "ready".into()
        }
    }
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
    /// The printer said it can't print now.
    #[error("{}", .0.describe())]
    NotReady(PrinterStatus),
    /// This kind of printer is not available on this system.
    #[error("{0}")]
    Unsupported(String),
}

impl PrintError {
    /// Whether retrying later may succeed (every printer failure can be fixed at the printer).
    pub fn is_transient(&self) -> bool {
        !matches!(self, PrintError::Address(..) | PrintError::Unsupported(..))
    }
}

/// Timeouts for network and serial printers.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting.
    pub connect: Duration,
    /// Each write.
    pub write: Duration,
    /// Waiting for a status answer.
    pub status: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(3), write: Duration::from_secs(5), status: Duration::from_millis(800) }
    }
}

/// Real-time status requests: printer, offline cause, roll paper sensor.
pub const STATUS_QUERY: [u8; 9] = [0x10, 0x04, 1, 0x10, 0x04, 2, 0x10, 0x04, 4];

/// Asks for status on an open connection; `None` when the printer does not answer in time.
fn ask_status<S: Read + Write>(s: &mut S) -> std::io::Result<Option<PrinterStatus>> {
    s.write_all(&STATUS_QUERY)?;
    s.flush()?;
    let mut replies = [0_u8; 3];
    let mut got = 0;
    while got < 3 {
        match s.read(&mut replies[got..]) {
            Ok(0) => return Ok(None),
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Some(PrinterStatus::from_replies(replies[0], replies[1], replies[2])))
}

/// Asks a printer for its status without printing (`None`: it does not answer status).
pub fn status(target: &Target, timeouts: Timeouts) -> Result<Option<PrinterStatus>, PrintError> {
    match target {
        Target::Tcp(addr) => {
            let mut s = connect(addr, timeouts)?;
            ask_status(&mut s).map_err(|e| PrintError::Write(addr.clone(), e))
        }
        Target::Serial { path, baud } => {
            let mut port = open_serial(path, *baud, timeouts)?;
            ask_status(&mut port).map_err(|e| PrintError::Write(path.clone(), e))
        }
        Target::File(_) | Target::Spooler(_) => Ok(None),
    }
}

fn connect(addr: &str, timeouts: Timeouts) -> Result<TcpStream, PrintError> {
    let sock: SocketAddr = addr
        .to_socket_addrs()
        .map_err(|e| PrintError::Address(addr.to_string(), e.to_string()))?
        .next()
        .ok_or_else(|| PrintError::Address(addr.to_string(), "no address".into()))?;
    let s =
        TcpStream::connect_timeout(&sock, timeouts.connect).map_err(|e| PrintError::Connect(addr.to_string(), e))?;
    s.set_write_timeout(Some(timeouts.write)).map_err(|e| PrintError::Write(addr.to_string(), e))?;
    s.set_read_timeout(Some(timeouts.status)).map_err(|e| PrintError::Write(addr.to_string(), e))?;
    Ok(s)
}

fn open_serial(path: &str, baud: u32, timeouts: Timeouts) -> Result<Box<dyn serialport::SerialPort>, PrintError> {
    serialport::new(path, baud)
        .timeout(timeouts.status)
        .open()
        .map_err(|e| PrintError::Connect(path.to_string(), std::io::Error::other(e.to_string())))
}

/// Sends one job, after checking the printer can print it. Blocking; call it off the async
/// runtime.
pub fn send(target: &Target, bytes: &[u8], timeouts: Timeouts) -> Result<(), PrintError> {
    match target {
        Target::Tcp(addr) => {
            let mut s = connect(addr, timeouts)?;
            let write = |e| PrintError::Write(addr.clone(), e);
            if let Some(st) = ask_status(&mut s).map_err(write)?
                && !st.can_print()
            {
                return Err(PrintError::NotReady(st));
            }
            s.write_all(bytes).map_err(write)?;
            s.flush().map_err(write)?;
            let _ = s.shutdown(std::net::Shutdown::Both);
            Ok(())
        }
        Target::Serial { path, baud } => {
            let mut port = open_serial(path, *baud, timeouts)?;
            let write = |e| PrintError::Write(path.clone(), e);
            if let Some(st) = ask_status(&mut port).map_err(write)?
                && !st.can_print()
            {
                return Err(PrintError::NotReady(st));
            }
            port.write_all(bytes).map_err(write)?;
            port.flush().map_err(write)
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
        Target::Spooler(name) => spooler::send(name, bytes),
    }
}

/// Raw printing through the Windows spooler: the job goes to an installed printer with the
/// `RAW` data type (`OpenPrinterW`, `StartDocPrinterW`, `StartPagePrinter`, `WritePrinter`,
/// `EndPagePrinter`, `EndDocPrinter`, `ClosePrinter`), so the driver passes the ESC/POS bytes
/// through untouched. Elsewhere this target reports that it is Windows-only.
pub mod spooler {
    use super::PrintError;

    /// Sends `bytes` to the installed printer `name`.
    #[cfg(windows)]
    pub fn send(name: &str, bytes: &[u8]) -> Result<(), PrintError> {
        windows_raw::send(name, bytes)
    }

    /// Sends `bytes` to the installed printer `name`.
    #[cfg(not(windows))]
    pub fn send(name: &str, _bytes: &[u8]) -> Result<(), PrintError> {
        Err(PrintError::Unsupported(format!(
            "printer '{name}' is a Windows spooler printer; on this system use kind tcp, file (USB device node) or serial"
        )))
    }

    #[cfg(windows)]
    #[allow(unsafe_code)]
    mod windows_raw {
        //! The spooler calls themselves. Each handle is closed on every path.
        use windows_sys::Win32::Foundation::HANDLE;
        use windows_sys::Win32::Graphics::Printing::{
            ClosePrinter, DOC_INFO_1W, EndDocPrinter, EndPagePrinter, OpenPrinterW, StartDocPrinterW, StartPagePrinter,
            WritePrinter,
        };

        use super::PrintError;

        fn wide(s: &str) -> Vec<u16> {
            s.encode_utf16().chain(std::iter::once(0)).collect()
        }

        fn failed(what: &str, name: &str) -> PrintError {
            PrintError::Write(
                name.to_string(),
                std::io::Error::other(format!("{what} failed: {}", std::io::Error::last_os_error())),
            )
        }

        pub fn send(name: &str, bytes: &[u8]) -> Result<(), PrintError> {
            let printer = wide(name);
            let mut doc_name = wide("Kasa slip");
            let mut datatype = wide("RAW");
            let mut handle: HANDLE = std::ptr::null_mut();
            // SAFETY: the printer name is a NUL-terminated UTF-16 string that outlives the call,
            // and `handle` is a valid out-pointer.
            if unsafe { OpenPrinterW(printer.as_ptr(), &mut handle, std::ptr::null()) } == 0 {
                return Err(PrintError::Connect(name.to_string(), std::io::Error::last_os_error()));
            }
            let doc = DOC_INFO_1W {
                pDocName: doc_name.as_mut_ptr(),
                pOutputFile: std::ptr::null_mut(),
                pDatatype: datatype.as_mut_ptr(),
            };
            // SAFETY: `handle` was opened above and is closed below on every path; `doc` points
            // at NUL-terminated strings that outlive these calls; `bytes` is a valid buffer of
            // the length passed.
            let result = unsafe {
                if StartDocPrinterW(handle, 1, &doc) == 0 {
                    Err(failed("StartDocPrinter", name))
                } else {
                    let mut written: u32 = 0;
                    let ok = StartPagePrinter(handle) != 0
                        && WritePrinter(handle, bytes.as_ptr().cast(), bytes.len() as u32, &mut written) != 0
                        && written as usize == bytes.len();
                    EndPagePrinter(handle);
                    EndDocPrinter(handle);
                    if ok { Ok(()) } else { Err(failed("WritePrinter", name)) }
                }
            };
            // SAFETY: `handle` is the printer opened above.
            unsafe { ClosePrinter(handle) };
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bits_follow_the_epson_layout() {
        let ready = PrinterStatus::from_replies(0x12, 0x12, 0x12);
        assert!(ready.can_print());
        let paper = PrinterStatus::from_replies(0x1A, 0x32, 0x72);
        assert!(paper.paper_out && !paper.can_print());
        assert!(paper.describe().contains("out of paper"));
        let cover = PrinterStatus::from_replies(0x1A, 0x16, 0x12);
        assert!(cover.cover_open && !cover.paper_out);
        let near = PrinterStatus::from_replies(0x12, 0x12, 0x1E);
        assert!(near.paper_near_end && near.can_print());
    }

    #[test]
    fn a_spooler_printer_is_windows_only_elsewhere() {
        if cfg!(windows) {
            return;
        }
        let err = send(&Target::Spooler("EPSON TM-T20".into()), b"x", Timeouts::default()).unwrap_err();
        assert!(!err.is_transient());
        assert!(err.to_string().contains("Windows spooler"));
    }

    #[test]
    fn file_targets_get_the_bytes_appended() {
        let dir = std::env::temp_dir().join(format!("kasa-print-file-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let t = Target::File(dir.clone());
        send(&t, b"one", Timeouts::default()).unwrap();
        send(&t, b"two", Timeouts::default()).unwrap();
        assert_eq!(std::fs::read(&dir).unwrap(), b"onetwo");
        assert_eq!(status(&t, Timeouts::default()).unwrap(), None);
        let _ = std::fs::remove_file(&dir);
    }
}
