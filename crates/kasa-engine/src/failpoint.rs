//! Named failpoints at the step boundaries of a sale, for crash tests.
//!
//! With the `failpoints` feature, `FAILPOINTS="name=return"` (or `"name=3*off->return"` for the
//! fourth hit) makes the process print `FAILPOINT name` to standard error and stop there; the
//! crash harness then kills it with SIGKILL, so the cut happens exactly at that boundary.
//! In-process, the deterministic simulation sets a hook on its thread ([`set_hook`]): when the
//! hook says so, the task passing the failpoint unwinds with [`Halt`] right there, and the
//! simulation halts the register. Without the feature the macro expands to nothing.

/// Every failpoint, in the order a card sale of a pump order passes them.
pub const NAMES: &[&str] = &[
    "step.before_commit",
    "step.after_commit",
    "deliver.before_send",
    "deliver.after_send",
    "record.before_commit",
    "record.after_commit",
];

/// Stops here when the named failpoint is on: for the process (the `fail` crate's
/// configuration) or for this register (the hook of its [`crate::Env`]).
macro_rules! failpoint {
    ($env:expr, $name:literal) => {
        #[cfg(feature = "failpoints")]
        {
            $crate::failpoint::hit($env, $name);
            fail::fail_point!($name, |_| {
                $crate::failpoint::halt($name);
            });
        }
    };
}
pub(crate) use failpoint;

/// The payload a task unwinds with when the simulation's hook stops it at a failpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Halt(pub &'static str);

#[cfg(feature = "failpoints")]
thread_local! {
    static PLANTED_HERE: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Decides, at each failpoint a register passes, whether it stops there (the simulation's).
pub type Hook = std::sync::Arc<dyn Fn(&'static str) -> bool + Send + Sync>;

/// Stops the task here, by unwinding with [`Halt`], when the register's hook says so.
#[cfg(feature = "failpoints")]
pub fn hit(env: &crate::Env, name: &'static str) {
    if env.failpoint_hook.as_ref().is_some_and(|f| f(name)) {
        std::panic::panic_any(Halt(name));
    }
}

/// Switches planted bugs on for this thread only (the simulation's way; processes use
/// `KASA_PLANTED_BUG`).
#[cfg(feature = "failpoints")]
pub fn plant_on_this_thread(names: &[&str]) {
    PLANTED_HERE.with(|p| *p.borrow_mut() = names.iter().map(|n| n.to_string()).collect());
}

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

/// The planted bugs there are: `empty_lookup_reopens` (recovery believes an empty card lookup
/// and reopens a sale the customer paid for), `lost_answer_new_report` (a payment report whose
/// answer was lost is sent again under a new request id), `decline_keeps_lock` (a declined
/// payment leaves its pump order locked), `fiscal_new_operation_id` (a receipt is sent again
/// under a new operation id after its answer was lost).
pub const PLANTED: &[&str] =
    &["empty_lookup_reopens", "lost_answer_new_report", "decline_keeps_lock", "fiscal_new_operation_id"];

/// Whether the planted bug `name` is switched on (`KASA_PLANTED_BUG=name`). Planted bugs exist
/// only in builds with the `failpoints` feature, for proving that a harness catches the kind of
/// bug it is there to catch; shipped builds always answer `false`.
pub fn planted(name: &str) -> bool {
    #[cfg(feature = "failpoints")]
    {
        PLANTED_HERE.with(|p| p.borrow().iter().any(|b| b == name))
            || std::env::var("KASA_PLANTED_BUG").is_ok_and(|v| v.split(',').any(|b| b.trim() == name))
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        false
    }
}
