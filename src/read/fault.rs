//! Whose fault a read error is: owns the classification that decides
//! whether a file is quarantined or read again later, and the backoff of
//! those later attempts. Only what is wrong with the file itself
//! quarantines it; an error of the machine or the store (EMFILE, EIO, a
//! timeout, a dropped connection, HTTP 5xx or 429) never does.
//!
//! An error is an I/O error only when it came from the store (an
//! `object_store::Error` is in its chain): a decode error of bytes already
//! in memory is the file's, whatever it wraps.

use super::ReadError;
use std::error::Error;
use std::time::Duration;

/// What a failed open or fetch says about the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The machine or the store failed; the same read may work later.
    /// Retried with capped backoff, counted, logged; never quarantined.
    Io,
    /// The file was listed, then vanished before it could be read. It is
    /// quarantined with that reason: its record stays, so nothing of it is
    /// read twice, and `sluice state quarantine retry` takes it again if it
    /// comes back.
    Vanished,
    /// The file itself is wrong: not Parquet, a bad footer, another schema,
    /// a decode error, a panic. Quarantined.
    File,
}

impl ReadError {
    /// Whose fault this error is (see [`Fault`]).
    pub fn fault(&self) -> Fault {
        let mut cur: Option<&(dyn Error + 'static)> = Some(self);
        while let Some(e) = cur {
            if let Some(store) = e.downcast_ref::<object_store::Error>() {
                return of_store(store);
            }
            cur = e.source();
        }
        Fault::File
    }
}

fn of_store(e: &object_store::Error) -> Fault {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => Fault::Vanished,
        E::Generic { source, .. } => of_generic(source.as_ref()),
        // Credentials and permissions are fixed by an operator, not by
        // rewriting the file; a failed task join is the runtime's.
        E::PermissionDenied { .. } | E::Unauthenticated { .. } | E::JoinError { .. } => Fault::Io,
        _ => Fault::File,
    }
}

/// A store's own error: an `std::io::Error` or an HTTP failure in it
/// decides; else its text (the stores' error types are private).
fn of_generic(e: &(dyn Error + Send + Sync + 'static)) -> Fault {
    let mut text = String::new();
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return of_io(io);
        }
        if e.downcast_ref::<object_store::client::HttpError>()
            .is_some()
        {
            return Fault::Io;
        }
        text.push_str(&e.to_string());
        text.push('\n');
        cur = e.source();
    }
    of_message(&text)
}

/// An operating-system error while opening or reading the file.
fn of_io(e: &std::io::Error) -> Fault {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => Fault::Vanished,
        // The bytes are not what the request needs: shorter than listed,
        // or not a file.
        K::UnexpectedEof | K::InvalidData | K::InvalidInput | K::IsADirectory => Fault::File,
        // EMFILE, ENFILE, EIO, EAGAIN, EINTR, timeouts, resets, ENOSPC...
        _ => Fault::Io,
    }
}

/// A store error known only by its text: a range outside the object (the
/// file is shorter than listed) and HTTP 4xx other than 408/429 are the
/// file's; 5xx, 408, 429 and anything unrecognised are the store's.
fn of_message(text: &str) -> Fault {
    if text.contains("Out of range of file") || text.contains("Requested range was invalid") {
        return Fault::File;
    }
    if let Some(at) = text.find("status code: ") {
        let code: String = text
            .get(at + "status code: ".len()..)
            .unwrap_or("")
            .chars()
            .take(3)
            .collect();
        if let Ok(code) = code.parse::<u16>()
            && (400..500).contains(&code)
            && code != 408
            && code != 429
        {
            return Fault::File;
        }
    }
    Fault::Io
}

/// Capped exponential backoff for I/O retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait before attempt `failures + 1`: `min`, doubling per failure,
    /// at most `max`.
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.min
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(e: impl Error + Send + Sync + 'static) -> ReadError {
        ReadError::Fetch {
            path: "f".into(),
            source: object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            },
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("Unable to open file /x: {source}")]
    struct Wrapped {
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Text(&'static str);

    #[test]
    fn os_errors_of_the_store_are_io() {
        for errno in [
            libc::EMFILE,
            libc::ENFILE,
            libc::EIO,
            libc::EAGAIN,
            libc::EINTR,
        ] {
            let e = std::io::Error::from_raw_os_error(errno);
            assert_eq!(generic(Wrapped { source: e }).fault(), Fault::Io, "{errno}");
        }
        let t = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow disk");
        assert_eq!(generic(t).fault(), Fault::Io);
        // Wrapped the way the footer reader wraps it.
        let p = ReadError::Parquet(parquet::errors::ParquetError::from(
            object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(std::io::Error::from_raw_os_error(libc::EIO)),
            },
        ));
        assert_eq!(p.fault(), Fault::Io);
    }

    #[test]
    fn http_status_decides_for_remote_stores() {
        let e = generic(Text(
            "Error performing GET in 2s - Server returned non-2xx status code: 503 Service Unavailable: ",
        ));
        assert_eq!(e.fault(), Fault::Io);
        let e = generic(Text(
            "Server returned non-2xx status code: 429 Too Many Requests",
        ));
        assert_eq!(e.fault(), Fault::Io);
        let e = generic(Text(
            "Server returned non-2xx status code: 416 Range Not Satisfiable",
        ));
        assert_eq!(e.fault(), Fault::File);
    }

    #[test]
    fn the_files_own_faults_quarantine() {
        assert_eq!(
            generic(Text("Out of range of file /x, expected: 10, actual: 4")).fault(),
            Fault::File
        );
        assert_eq!(ReadError::BadFooter("x".into()).fault(), Fault::File);
        assert_eq!(ReadError::Panicked("x".into()).fault(), Fault::File);
        // An io error while decoding bytes in memory is the file's.
        let decode = ReadError::Parquet(parquet::errors::ParquetError::from(
            std::io::Error::from_raw_os_error(libc::EIO),
        ));
        assert_eq!(decode.fault(), Fault::File);
        let gone = ReadError::Fetch {
            path: "f".into(),
            source: object_store::Error::NotFound {
                path: "f".into(),
                source: Box::new(std::io::Error::from(std::io::ErrorKind::NotFound)),
            },
        };
        assert_eq!(gone.fault(), Fault::Vanished);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(4), Duration::from_millis(800));
        assert_eq!(b.delay(5), Duration::from_secs(1));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    }
}
