//! Human units in config files: durations ("30s", "5m", "1h 30m") and byte
//! sizes ("128MiB", "1GB", "4096"; parsed by `bytesize`). Parsing happens during deserialization,
//! so a bad value is reported with the file's line and column.

use serde::{Deserialize, Deserializer, de};
use std::fmt;
use std::time::Duration;

/// A duration written the way people write it: `"30s"`, `"5m"`, `"250ms"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(HumanDuration)
            .map_err(de::Error::custom)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// Parses `"30s"`, `"1h 30m"`, `"0s"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("invalid duration {s:?}: {e} (write a number and a unit, e.g. \"30s\", \"5m\", \"250ms\")")
    })
}

/// A byte size: `"128MiB"`, `"1GB"`, `"512KiB"` or a plain number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => Ok(ByteSize(n)),
            Raw::Text(s) => parse_size(&s).map(ByteSize).map_err(de::Error::custom),
        }
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_bytes(self.0))
    }
}

/// Renders a byte count with a binary unit, e.g. `12.5 MiB`.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Parses `"128MiB"`, `"1 GB"`, `"4096"`, `"1.5KiB"` with `bytesize`:
/// decimal (K, KB, MB, GB, TB) and binary (Ki, KiB, MiB, GiB, TiB) units,
/// any case; whole numbers exactly (no floating-point rounding).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    t.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| {
            let unit = t.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
            let number = &t[..t.len() - unit.len()];
            if number.parse::<f64>().is_err() {
                format!("invalid size {s:?}: expected a number followed by a unit, e.g. \"128MiB\"")
            } else {
                format!(
                    "invalid size {s:?}: unknown unit {:?} (use B, KiB, MiB, GiB, KB, MB or GB)",
                    unit.trim().to_ascii_lowercase()
                )
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("128MiB").unwrap(), 128 << 20);
        assert_eq!(parse_size("1 GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1.5KiB").unwrap(), 1536);
        assert!(
            parse_size("12 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_size("MiB").unwrap_err().contains("expected a number"));
        // Beyond f64's 53-bit mantissa: exact.
        assert_eq!(
            parse_size("9007199254740993B").unwrap(),
            9_007_199_254_740_993
        );
        assert_eq!(parse_size(" 2 tib ").unwrap(), 2 << 40);
        assert_eq!(parse_size("3k").unwrap(), 3_000);
        assert!(
            parse_size("1.2.3MB")
                .unwrap_err()
                .contains("expected a number")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(
            parse_duration("thirty")
                .unwrap_err()
                .contains("invalid duration")
        );
    }
}
