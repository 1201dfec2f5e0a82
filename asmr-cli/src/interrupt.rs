//! Ctrl-C and SIGTERM stop a fit at the end of its current step, with its state saved (the
//! progress observer asks the trainer to stop); a second signal ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Exit status of a process ended by SIGINT, by shell convention (128 + 2).
pub const EXIT_CODE: u8 = 130;

/// Whether a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

#[cfg(unix)]
extern "C" fn on_signal(_: libc::c_int) {
    // Only async-signal-safe work here: an atomic swap, and `_exit` the second time.
    if REQUESTED.swap(true, Ordering::SeqCst) {
        // SAFETY: `_exit` is async-signal-safe and ends the process without unwinding.
        unsafe { libc::_exit(EXIT_CODE as libc::c_int) };
    }
}

/// Catch SIGINT and SIGTERM from now on, except one the process started with ignored: a shell
/// starts background jobs with SIGINT ignored (and `nohup`-style launchers others), so that a
/// Ctrl-C meant for the foreground does not reach them; the usual Unix rule keeps it so.
pub fn install() {
    #[cfg(unix)]
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `sigaction` with a null new action only reads the current disposition; the
        // handler only touches an atomic and calls `_exit`, both async-signal-safe.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) == 0
                && current.sa_sigaction == libc::SIG_IGN
            {
                continue;
            }
            let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::signal(signal, handler);
        }
    }
}

/// A command that stopped on request; its message says how to continue.
#[derive(Debug)]
pub struct Stopped(pub String);

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stopped {}
