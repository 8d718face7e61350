//! Named failpoints at the step boundaries of a sale, for crash tests.
//!
//! With the `failpoints` feature, `FAILPOINTS="name=return"` (or `"name=3*off->return"` for the
//! fourth hit) makes the process print `FAILPOINT name` to standard error and stop there; the
//! crash harness then kills it with SIGKILL, so the cut happens exactly at that boundary.
//! Without the feature the macro expands to nothing.

/// Every failpoint, in the order a card sale of a pump order passes them.
pub const NAMES: &[&str] = &[
    "step.before_commit",
    "step.after_commit",
    "deliver.before_send",
    "deliver.after_send",
    "record.before_commit",
    "record.after_commit",
];

/// Stops here when the named failpoint is on.
macro_rules! failpoint {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name, |_| {
            $crate::failpoint::halt($name);
        });
    };
}
pub(crate) use failpoint;

/// Announces the failpoint and waits to be killed.
#[cfg(feature = "failpoints")]
pub fn halt(name: &str) -> ! {
    use std::io::Write;
    let mut err = std::io::stderr();
    let _ = writeln!(err, "FAILPOINT {name}");
    let _ = err.flush();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Whether the planted bug `name` is switched on (`KASA_PLANTED_BUG=name`). Planted bugs exist
/// only in builds with the `failpoints` feature, for proving that a harness catches the kind of
/// bug it is there to catch; shipped builds always answer `false`.
pub fn planted(name: &str) -> bool {
    #[cfg(feature = "failpoints")]
    {
        std::env::var("KASA_PLANTED_BUG").is_ok_and(|v| v.split(',').any(|b| b.trim() == name))
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        false
    }
}
