//! What goes wrong in a run, and when: a fault schedule drawn from the seed.
//!
//! A schedule is plain data (it prints as JSON and reads back), so a failing run can be
//! replayed with exactly its faults and shrunk by taking faults away. It has two parts: the
//! per-request fault rates of each service (latency, jitter that reorders requests, 503s,
//! requests dropped before they are applied, answers lost after, requests applied twice), and
//! discrete events on the virtual clock: register crashes (at a moment, or at the next store
//! commit or send boundary after it; some with a power cut that loses the commits SQLite may
//! lose), outages of a service, the store's network going down, and write failures of a disk
//! that is full or a database that is busy.
//!
//! The timing keeps one rule the real world keeps too: a request's time at the server (latency
//! and jitter) is shorter than an outage, a register's time down after a crash and a client's
//! timeout, so an answer never lands after the client has acted on not getting it, except
//! through the faults that model exactly that (a lost answer, a cut connection).

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// How hard the world is on the registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Nothing goes wrong (but cards are declined and customers walk away).
    Calm,
    /// A store's bad day: every kind of fault, a few times an hour each.
    Default,
    /// Everything at once, several times more often.
    Heavy,
}

impl Profile {
    /// The name `--faults` takes.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Calm => "calm",
            Profile::Default => "default",
            Profile::Heavy => "heavy",
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Profile, String> {
        match s {
            "calm" | "none" => Ok(Profile::Calm),
            "default" => Ok(Profile::Default),
            "heavy" => Ok(Profile::Heavy),
            other => Err(format!("unknown fault profile '{other}': use calm, default or heavy")),
        }
    }
}

/// Per-request faults of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Time at the server, at least.
    pub latency_ms: u64,
    /// Up to this much more, drawn per request.
    pub jitter_ms: u64,
    /// Answered 503, not applied.
    pub error: f64,
    /// Connection dropped before the request was applied.
    pub drop: f64,
    /// Applied, answer lost.
    pub lost: f64,
    /// Applied twice.
    pub duplicate: f64,
}

impl Rates {
    fn calm() -> Rates {
        Rates { latency_ms: 5, jitter_ms: 20, error: 0.0, drop: 0.0, lost: 0.0, duplicate: 0.0 }
    }

    /// The sandbox's fault knobs for these rates.
    pub fn faults(&self) -> kasa_sim::Faults {
        kasa_sim::Faults {
            latency: std::time::Duration::from_millis(self.latency_ms),
            jitter: std::time::Duration::from_millis(self.jitter_ms),
            duplicate_rate: self.duplicate,
            error_rate: self.error,
            drop_rate: self.drop,
            lost_response_rate: self.lost,
            error_status: None,
        }
    }

    /// Whether anything is injected at all.
    pub fn is_calm(&self) -> bool {
        self.error == 0.0 && self.drop == 0.0 && self.lost == 0.0 && self.duplicate == 0.0
    }
}

/// One discrete fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The register stops where it stands. With `point`, at the first time it passes that
    /// failpoint after `at_ms` (or 30 s later if it never does); without, at `at_ms`.
    Crash {
        /// Which register.
        register: usize,
        /// When, in virtual milliseconds from the start.
        at_ms: u64,
        /// A failpoint to stop at.
        point: Option<String>,
        /// How long it stays down.
        down_ms: u64,
        /// Whether the power went: commits not yet on the disk may be lost.
        power_cut: bool,
        /// With a power cut, where the WAL is cut, as a fraction of the commits that may go.
        keep: f64,
    },
    /// A service's port is closed.
    Outage {
        /// `tokenx`, `finix`, `mobilepay` or `settle`.
        service: String,
        /// When.
        at_ms: u64,
        /// For how long.
        for_ms: u64,
    },
    /// The fiscal middleware's signing unit does not answer (the middleware does, and says so).
    SignerDown {
        /// When.
        at_ms: u64,
        /// For how long.
        for_ms: u64,
    },
    /// The store's network is down for one register.
    Uplink {
        /// Which register.
        register: usize,
        /// When.
        at_ms: u64,
        /// For how long.
        for_ms: u64,
    },
    /// The register's next `writes` database writes fail.
    StoreFault {
        /// Which register.
        register: usize,
        /// When.
        at_ms: u64,
        /// A full disk (or else a busy database).
        disk_full: bool,
        /// How many writes fail.
        writes: u32,
    },
}

impl Event {
    /// When it happens.
    pub fn at_ms(&self) -> u64 {
        match self {
            Event::Crash { at_ms, .. }
            | Event::Outage { at_ms, .. }
            | Event::SignerDown { at_ms, .. }
            | Event::Uplink { at_ms, .. }
            | Event::StoreFault { at_ms, .. } => *at_ms,
        }
    }

    /// Its kind, for the counts.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Crash { power_cut: true, .. } => "power cut",
            Event::Crash { point: Some(_), .. } => "crash at a failpoint",
            Event::Crash { .. } => "crash",
            Event::Outage { .. } => "service outage",
            Event::SignerDown { .. } => "signing unit down",
            Event::Uplink { .. } => "network down",
            Event::StoreFault { disk_full: true, .. } => "disk full",
            Event::StoreFault { .. } => "database busy",
        }
    }
}

/// Everything that goes wrong in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Per-request faults by service.
    pub rates: BTreeMap<String, Rates>,
    /// Discrete faults, in time order.
    pub events: Vec<Event>,
}

pub(crate) const SERVICES: &[&str] = &["tokenx", "finix", "mobilepay", "settle", "fiskaltrust"];

impl Schedule {
    /// No faults at all.
    pub fn calm() -> Schedule {
        Schedule { rates: SERVICES.iter().map(|s| (s.to_string(), Rates::calm())).collect(), events: Vec::new() }
    }

    /// The faults of `profile` for `registers` registers over `horizon_ms` of virtual time,
    /// drawn from `seed`.
    pub fn generate(seed: u64, profile: Profile, registers: usize, horizon_ms: u64) -> Schedule {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5c4e_d01e);
        let (scale, rate) = match profile {
            Profile::Calm => return Schedule::calm(),
            Profile::Default => (1.0, 1.0),
            Profile::Heavy => (0.3, 2.5),
        };
        let rates = SERVICES
            .iter()
            .map(|s| {
                let r = Rates {
                    latency_ms: rng.random_range(2..40),
                    jitter_ms: rng.random_range(0..300),
                    error: (0.03 * rate * rng.random_range(0.5_f64..1.5)).min(0.3),
                    drop: (0.02 * rate * rng.random_range(0.5_f64..1.5)).min(0.2),
                    lost: (0.02 * rate * rng.random_range(0.5_f64..1.5)).min(0.2),
                    duplicate: (0.01 * rate * rng.random_range(0.5_f64..1.5)).min(0.1),
                };
                (s.to_string(), r)
            })
            .collect();
        let mut events = Vec::new();
        // Mean gaps between faults of each kind, in virtual seconds.
        let every = |rng: &mut StdRng, mean_s: f64| -> u64 {
            let u: f64 = rng.random_range(0.0001..1.0);
            (-u.ln() * mean_s * scale * 1000.0) as u64
        };
        for register in 0..registers {
            let mut t = every(&mut rng, 60.0);
            while t < horizon_ms {
                let long = rng.random_bool(0.08);
                // A service manager restarts a crashed register within a second or two: often
                // while the customer is still tapping the card the crash interrupted.
                let quick = !long && rng.random_bool(0.3);
                let points = kasa_engine::failpoint::NAMES;
                events.push(Event::Crash {
                    register,
                    at_ms: t,
                    point: rng.random_bool(0.4).then(|| points[rng.random_range(0..points.len())].to_string()),
                    down_ms: if long {
                        rng.random_range(130_000..900_000)
                    } else if quick {
                        rng.random_range(1_000..3_000)
                    } else {
                        rng.random_range(2_000..60_000)
                    },
                    power_cut: rng.random_bool(0.3),
                    keep: rng.random_range(0.0..1.0),
                });
                t += every(&mut rng, 150.0);
            }
            let mut t = every(&mut rng, 200.0);
            while t < horizon_ms {
                events.push(Event::Uplink { register, at_ms: t, for_ms: rng.random_range(1_000..90_000) });
                t += every(&mut rng, 400.0);
            }
            let mut t = every(&mut rng, 200.0);
            while t < horizon_ms {
                events.push(Event::StoreFault {
                    register,
                    at_ms: t,
                    disk_full: rng.random_bool(0.7),
                    writes: rng.random_range(1..4),
                });
                t += every(&mut rng, 300.0);
            }
        }
        for service in SERVICES {
            let mut t = every(&mut rng, 300.0);
            while t < horizon_ms {
                events.push(Event::Outage {
                    service: service.to_string(),
                    at_ms: t,
                    for_ms: rng.random_range(1_000..60_000),
                });
                t += every(&mut rng, 500.0);
            }
        }
        let mut t = every(&mut rng, 400.0);
        while t < horizon_ms {
            events.push(Event::SignerDown { at_ms: t, for_ms: rng.random_range(2_000..120_000) });
            t += every(&mut rng, 400.0);
        }
        events.sort_by_key(Event::at_ms);
        Schedule { rates, events }
    }

    /// The number of events of each kind.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for e in &self.events {
            *m.entry(e.kind()).or_default() += 1;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_one_schedule_and_it_reads_back() {
        let a = Schedule::generate(3, Profile::Default, 2, 3_600_000);
        assert_eq!(a, Schedule::generate(3, Profile::Default, 2, 3_600_000));
        assert_ne!(a, Schedule::generate(4, Profile::Default, 2, 3_600_000));
        let counts = a.counts();
        for kind in ["crash", "service outage", "network down", "signing unit down"] {
            assert!(counts.get(kind).is_some_and(|n| *n > 0), "{kind}: {counts:?}");
        }
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Schedule>(&text).unwrap(), a);
        assert!(a.events.windows(2).all(|w| w[0].at_ms() <= w[1].at_ms()));
        // The time at a server stays under the shortest outage and time down.
        let longest_at_server = a.rates.values().map(|r| r.latency_ms + r.jitter_ms).max().unwrap();
        assert!(longest_at_server < 1_000);
    }
}
