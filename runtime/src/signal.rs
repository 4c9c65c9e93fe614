//! Signal names and numbers as runc accepts them: `KILL`, `SIGKILL`, `9`,
//! and the real-time range (`RTMIN+3`, `SIGRTMAX`, `34`..`64`).

use crate::error::{Result, RuntimeError};

const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// The kernel's real-time range; glibc reserves the first two for itself,
/// but runc (Go) and the kernel count from 34.
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// Parses a signal as `runc kill` does: a name with or without `SIG`, in any
/// case, or a number.
pub fn parse(input: &str) -> Result<i32> {
    let unknown = || RuntimeError::UnknownSignal(input.to_string());
    let s = input.trim();
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=RTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(unknown())
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, n)) = NAMES.iter().find(|(k, _)| *k == name) {
        return Ok(*n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Result<i32> {
        let off = if rest.is_empty() {
            0
        } else {
            rest.parse::<i32>().map_err(|_| unknown())?
        };
        let n = base + sign * off;
        if (RTMIN..=RTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(unknown())
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return match rest.strip_prefix('+') {
            Some(r) => rt(RTMIN, r, 1),
            None if rest.is_empty() => Ok(RTMIN),
            None => Err(unknown()),
        };
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return match rest.strip_prefix('-') {
            Some(r) => rt(RTMAX, r, -1),
            None if rest.is_empty() => Ok(RTMAX),
            None => Err(unknown()),
        };
    }
    Err(unknown())
}

/// The name runc prints for a signal number (used in `ps` and error text).
pub fn name(sig: i32) -> String {
    NAMES
        .iter()
        .find(|(_, n)| *n == sig)
        .map(|(k, _)| format!("SIG{k}"))
        .unwrap_or_else(|| format!("signal {sig}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_and_without_sig_prefix() {
        assert_eq!(parse("KILL").unwrap(), 9);
        assert_eq!(parse("SIGKILL").unwrap(), 9);
        assert_eq!(parse("sigterm").unwrap(), 15);
        assert_eq!(parse("hup").unwrap(), 1);
        assert_eq!(parse("SIGWINCH").unwrap(), libc::SIGWINCH);
    }

    #[test]
    fn numbers_and_realtime() {
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("64").unwrap(), 64);
        assert_eq!(parse("RTMIN").unwrap(), 34);
        assert_eq!(parse("SIGRTMIN+3").unwrap(), 37);
        assert_eq!(parse("RTMAX-1").unwrap(), 63);
    }

    #[test]
    fn unknown_signals_are_refused_with_the_input() {
        for bad in ["0", "65", "-1", "FOO", "SIGFOO", "RTMIN+40", "RTMINX", ""] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("unknown signal"), "{bad}: {err}");
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(name(15), "SIGTERM");
        assert_eq!(name(40), "signal 40");
    }
}
