//! The signal StopContainer sends first: the CRI config's `stop_signal` (kubelet 1.33+,
//! ContainerStopSignals), else the image's `StopSignal`, else SIGTERM. `ContainerStatus.stop_signal`
//! reports the same choice.

use crate::cri_api::Signal;

use super::error::RuntimeError;

/// The signal to stop with, and how `ContainerStatus` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopSignal {
    pub number: i32,
    pub cri: Signal,
}

/// Refuses a `stop_signal` outside the CRI enum (CreateContainer).
pub fn validate(config_signal: i32) -> Result<(), RuntimeError> {
    Signal::try_from(config_signal).map(drop).map_err(|_| {
        RuntimeError::InvalidArgument(format!("stop_signal {config_signal} is not a CRI Signal"))
    })
}

/// Chooses the stop signal from the config's enum value and the image's `StopSignal` string.
pub fn choose(config_signal: i32, image_signal: &str) -> StopSignal {
    let from_config = Signal::try_from(config_signal)
        .ok()
        .filter(|s| *s != Signal::RuntimeDefault)
        .and_then(|s| Some((number(s)?, s)));
    let from_image = || {
        let n = by_name(image_signal)?;
        Some((n, cri_of(n)?))
    };
    let (number, cri) = from_config
        .or_else(from_image)
        .unwrap_or((libc::SIGTERM, Signal::Sigterm));
    StopSignal { number, cri }
}

/// The Linux number of a recorded CRI signal; `None` for RuntimeDefault or a value outside the enum.
pub fn number_of(cri: i32) -> Option<i32> {
    number(Signal::try_from(cri).ok()?)
}

/// The Linux number of a CRI signal; `None` for RuntimeDefault.
fn number(signal: Signal) -> Option<i32> {
    use Signal::*;
    let rtmin = libc::SIGRTMIN();
    let rtmax = libc::SIGRTMAX();
    let n = match signal {
        RuntimeDefault => return None,
        Sigabrt => libc::SIGABRT,
        Sigalrm => libc::SIGALRM,
        Sigbus => libc::SIGBUS,
        Sigchld | Sigcld => libc::SIGCHLD,
        Sigcont => libc::SIGCONT,
        Sigfpe => libc::SIGFPE,
        Sighup => libc::SIGHUP,
        Sigill => libc::SIGILL,
        Sigint => libc::SIGINT,
        Sigio | Sigpoll => libc::SIGIO,
        Sigiot => libc::SIGIOT,
        Sigkill => libc::SIGKILL,
        Sigpipe => libc::SIGPIPE,
        Sigprof => libc::SIGPROF,
        Sigpwr => libc::SIGPWR,
        Sigquit => libc::SIGQUIT,
        Sigsegv => libc::SIGSEGV,
        Sigstkflt => libc::SIGSTKFLT,
        Sigstop => libc::SIGSTOP,
        Sigsys => libc::SIGSYS,
        Sigterm => libc::SIGTERM,
        Sigtrap => libc::SIGTRAP,
        Sigtstp => libc::SIGTSTP,
        Sigttin => libc::SIGTTIN,
        Sigttou => libc::SIGTTOU,
        Sigurg => libc::SIGURG,
        Sigusr1 => libc::SIGUSR1,
        Sigusr2 => libc::SIGUSR2,
        Sigvtalrm => libc::SIGVTALRM,
        Sigwinch => libc::SIGWINCH,
        Sigxcpu => libc::SIGXCPU,
        Sigxfsz => libc::SIGXFSZ,
        Sigrtmax => rtmax,
        // SIGRTMIN..SIGRTMIN+15 and SIGRTMAX-14..SIGRTMAX-1 are consecutive in the enum.
        s if (Sigrtmin as i32..=Sigrtminplus15 as i32).contains(&(s as i32)) => {
            rtmin + (s as i32 - Sigrtmin as i32)
        }
        s => rtmax - (Sigrtmax as i32 - s as i32),
    };
    Some(n)
}

/// The CRI name of a signal number (the first enum entry with that number).
fn cri_of(n: i32) -> Option<Signal> {
    (1..=Signal::Sigrtmax as i32)
        .filter_map(|v| Signal::try_from(v).ok())
        .find(|s| number(*s) == Some(n))
}

/// A signal by name (`SIGQUIT`, `QUIT`, `quit`) or number, as images write `StopSignal`.
fn by_name(name: &str) -> Option<i32> {
    if name.is_empty() {
        return None;
    }
    if let Ok(n) = name.parse::<i32>() {
        return Some(n);
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_beats_image_beats_sigterm() {
        let quit = choose(Signal::Sigquit as i32, "SIGUSR1");
        assert_eq!((quit.number, quit.cri), (libc::SIGQUIT, Signal::Sigquit));
        let image = choose(Signal::RuntimeDefault as i32, "usr1");
        assert_eq!((image.number, image.cri), (libc::SIGUSR1, Signal::Sigusr1));
        let numeric = choose(0, "2");
        assert_eq!(
            (numeric.number, numeric.cri),
            (libc::SIGINT, Signal::Sigint)
        );
        for unknown in ["", "SIGBOGUS"] {
            let d = choose(0, unknown);
            assert_eq!(
                (d.number, d.cri),
                (libc::SIGTERM, Signal::Sigterm),
                "{unknown}"
            );
        }
    }

    #[test]
    fn realtime_signals_map_around_sigrtmin_and_sigrtmax() {
        let rtmin = libc::SIGRTMIN();
        let rtmax = libc::SIGRTMAX();
        assert_eq!(number(Signal::Sigrtmin), Some(rtmin));
        assert_eq!(number(Signal::Sigrtminplus15), Some(rtmin + 15));
        assert_eq!(number(Signal::Sigrtmaxminus14), Some(rtmax - 14));
        assert_eq!(number(Signal::Sigrtmaxminus1), Some(rtmax - 1));
        assert_eq!(number(Signal::Sigrtmax), Some(rtmax));
        assert_eq!(cri_of(rtmin + 3), Some(Signal::Sigrtminplus3));
    }

    #[test]
    fn only_cri_enum_values_are_valid() {
        assert!(validate(Signal::Sigrtmax as i32).is_ok());
        assert!(validate(0).is_ok());
        let err = validate(999).unwrap_err();
        assert!(matches!(err, RuntimeError::InvalidArgument(_)), "{err}");
    }
}
