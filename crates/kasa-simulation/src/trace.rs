//! The run's event trace: what the cashiers, customers and faults did, and every request the
//! sandbox received, each line stamped with virtual time. Its hash is the run's fingerprint:
//! the same seed and schedule must give the same hash, every time, on every machine.

use std::collections::VecDeque;

use sha2::{Digest, Sha256};

/// How many of the last lines are kept to print with a failure.
const TAIL: usize = 60;

/// The trace of one run.
#[derive(Debug)]
pub(crate) struct Trace {
    hasher: Sha256,
    lines: u64,
    tail: VecDeque<String>,
    keep_all: Option<Vec<String>>,
}

impl Trace {
    pub(crate) fn new(keep_all: bool) -> Trace {
        Trace { hasher: Sha256::new(), lines: 0, tail: VecDeque::new(), keep_all: keep_all.then(Vec::new) }
    }

    /// Adds a line at `ms` virtual milliseconds.
    pub(crate) fn push(&mut self, ms: u64, line: &str) {
        self.push_with(ms, line, true);
    }

    /// Adds a line that counts in the hash but is not kept for the tail (the sandbox's record).
    pub(crate) fn push_quiet(&mut self, ms: u64, line: &str) {
        self.push_with(ms, line, false);
    }

    fn push_with(&mut self, ms: u64, line: &str, tail: bool) {
        let stamped = format!("{:>9}.{:03} {line}", ms / 1000, ms % 1000);
        self.hasher.update(stamped.as_bytes());
        self.hasher.update(b"\n");
        self.lines += 1;
        if let Some(all) = &mut self.keep_all {
            all.push(stamped.clone());
        }
        if !tail {
            return;
        }
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(stamped);
    }

    pub(crate) fn lines(&self) -> u64 {
        self.lines
    }

    pub(crate) fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }

    pub(crate) fn all(&self) -> Option<Vec<String>> {
        self.keep_all.clone()
    }

    /// The fingerprint so far (hex, 16 digits).
    pub(crate) fn hash(&self) -> String {
        hex::encode(&self.hasher.clone().finalize()[..8])
    }
}
