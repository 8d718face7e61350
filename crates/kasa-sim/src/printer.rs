//! A virtual ESC/POS receipt printer on a loopback TCP port (like a network printer's 9100).
//!
//! Each connection is one job: the bytes received until the sender closes are kept, and the
//! printable text and styled rows are decoded with `kasa_print::decode`, as an Epson TM numbers
//! its code pages; a job can be seen as the picture the printer would print. Real-time status
//! requests (`DLE EOT n`) are answered as an Epson TM printer would, with a paper-out knob.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kasa_print::{Block, Model, Width};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One print job as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Raw ESC/POS bytes.
    pub bytes: Vec<u8>,
}

impl Job {
    /// The printed text, decoded the way the printer would print it.
    pub fn text(&self) -> String {
        kasa_print::decode::printed_text(&self.bytes)
    }

    /// The printed rows with their style, decoded as an Epson TM would print them.
    pub fn blocks(&self) -> Vec<Block> {
        kasa_print::decode::blocks(&self.bytes, Model::EPSON_TM)
    }

    /// A PNG picture of the printout on paper of `width`.
    pub fn png(&self, width: Width) -> Vec<u8> {
        kasa_print::raster::render_png(&self.blocks(), width)
    }
}

#[derive(Default)]
struct State {
    jobs: Vec<Job>,
    paper_out: bool,
    cover_open: bool,
}

/// The virtual printer.
pub struct VirtualPrinter {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for VirtualPrinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualPrinter").field("addr", &self.addr).finish()
    }
}

impl Drop for VirtualPrinter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl VirtualPrinter {
    /// Starts listening on a fresh loopback port. With `spool`, every job is also written
    /// there as `NNNN.escpos` and as a picture of the printout on 80 mm paper, `NNNN.png`, so
    /// what would have been printed can be inspected later.
    pub async fn start(spool: Option<PathBuf>) -> std::io::Result<VirtualPrinter> {
        if let Some(dir) = &spool {
            std::fs::create_dir_all(dir)?;
        }
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let arrived = Arc::new(Notify::new());
        let (s, a) = (state.clone(), arrived.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (s, a) = (s.clone(), a.clone());
                let spool = spool.clone();
                tokio::spawn(async move {
                    let mut bytes = Vec::new();
                    let mut buf = [0_u8; 4096];
                    loop {
                        let read = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await;
                        let n = match read {
                            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                            Ok(Ok(n)) => n,
                        };
                        let start = bytes.len();
                        bytes.extend_from_slice(&buf[..n]);
                        // Answer any status request in what just arrived.
                        let (paper_out, cover_open) = {
                            let st = s.lock().unwrap_or_else(|e| e.into_inner());
                            (st.paper_out, st.cover_open)
                        };
                        for reply in status_replies(&bytes[start.saturating_sub(2)..], paper_out, cover_open) {
                            let _ = sock.write_all(&[reply]).await;
                        }
                    }
                    // A connection that only asked for status is not a job; and a printer
                    // without paper or with its cover open prints nothing.
                    let (paper_out, cover_open) = {
                        let st = s.lock().unwrap_or_else(|e| e.into_inner());
                        (st.paper_out, st.cover_open)
                    };
                    if !without_status_queries(&bytes).is_empty() && !paper_out && !cover_open {
                        // The job is what gets printed: status requests are answered, not printed.
                        let job = Job { bytes: without_status_queries(&bytes) };
                        // Drawn before taking the lock, which other connections need.
                        let png = spool.as_ref().map(|_| job.png(Width::Mm80));
                        let mut st = s.lock().unwrap_or_else(|e| e.into_inner());
                        if let (Some(dir), Some(png)) = (&spool, png) {
                            let n = st.jobs.len() + 1;
                            for (path, data) in [
                                (dir.join(format!("{n:04}.escpos")), &job.bytes),
                                (dir.join(format!("{n:04}.png")), &png),
                            ] {
                                if let Err(e) = std::fs::write(&path, data) {
                                    tracing::warn!(path = %path.display(), error = %e, "virtual printer could not spool a job");
                                }
                            }
                        }
                        st.jobs.push(job);
                        drop(st);
                        a.notify_waiters();
                    }
                });
            }
        });
        Ok(VirtualPrinter { addr, state, arrived, task })
    }

    /// Every job received, oldest first.
    pub fn jobs(&self) -> Vec<Job> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).jobs.clone()
    }

    /// Sets the paper-out sensor.
    pub fn set_paper_out(&self, out: bool) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).paper_out = out;
    }

    /// Opens or closes the cover.
    pub fn set_cover_open(&self, open: bool) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).cover_open = open;
    }

    /// Waits until at least `n` jobs have arrived, or the timeout passes; returns the jobs.
    pub async fn wait_for_jobs(&self, n: usize, timeout: Duration) -> Vec<Job> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            let jobs = self.jobs();
            if jobs.len() >= n || tokio::time::Instant::now() >= deadline {
                return jobs;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

/// Status bytes for each `DLE EOT n` in `bytes` (Epson TM series bit layout: bits 1 and 4 are
/// always set; n=1 bit 3 offline; n=2 bit 2 cover open, bit 5 stopped for paper end; n=4 bits 5
/// and 6 paper end).
fn status_replies(bytes: &[u8], paper_out: bool, cover_open: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let flag = |on: bool, bits: u8| if on { bits } else { 0 };
    for w in bytes.windows(3) {
        if w[0] == 0x10 && w[1] == 0x04 {
            let reply = match w[2] {
                1 => 0x12 | flag(paper_out || cover_open, 0x08),
                2 => 0x12 | flag(cover_open, 0x04) | flag(paper_out, 0x20),
                3 => 0x12,
                4 => 0x12 | flag(paper_out, 0x60),
                _ => continue,
            };
            out.push(reply);
        }
    }
    out
}

/// The bytes without status requests (`DLE EOT n`).
fn without_status_queries(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0x10 && bytes.get(i + 1) == Some(&0x04) {
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use kasa_print::CodePage;
    use kasa_print::escpos::{Setup, render};

    use super::*;

    #[tokio::test]
    async fn jobs_decode_to_rows_and_spool_as_pictures() {
        let spool = std::env::temp_dir().join(format!("kasa-sim-printer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&spool);
        let printer = VirtualPrinter::start(Some(spool.clone())).await.unwrap();
        let blocks = vec![
            Block::Text { text: "    KASA".into(), bold: true, big: true },
            Block::Text { text: "Çay                   15,00".into(), bold: false, big: false },
            Block::Text { text: "TOPLAM                15,00".into(), bold: true, big: false },
            Block::Qr("https://kasa.example/s/1".into()),
        ];
        let bytes = render(&blocks, &Setup::new(Model::EPSON_TM, CodePage::Cp857)).unwrap();
        let mut sock = tokio::net::TcpStream::connect(printer.addr).await.unwrap();
        sock.write_all(&bytes).await.unwrap();
        drop(sock);
        let jobs = printer.wait_for_jobs(1, Duration::from_secs(5)).await;
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].blocks(), blocks);
        assert!(jobs[0].text().contains("Çay"));
        let png = std::fs::read(spool.join("0001.png")).unwrap();
        assert_eq!(png, jobs[0].png(Width::Mm80));
        assert!(png.starts_with(b"\x89PNG"));
        assert_eq!(std::fs::read(spool.join("0001.escpos")).unwrap(), bytes);
        let _ = std::fs::remove_dir_all(&spool);
    }
}
