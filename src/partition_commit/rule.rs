//! When is an output partition complete? Pure functions over partition
//! values, the source's partitions and the clock; no I/O.
//!
//! # The rule
//!
//! **Periods.** A partition's values are read through `time_columns`: the
//! day column (e.g. `dt = "%Y-%m-%d"`) gives a day, the hour column (e.g.
//! `hour = "%H"`), when the partition has it, narrows it to an hour. The
//! values are local times at `utc_offset`, so a period is `[start, end)` in
//! UTC milliseconds. A partition without the day column (or whose value does
//! not parse, such as `__HIVE_DEFAULT_PARTITION__`) has no period and is
//! never committed.
//!
//! **Source partitions.** Source files are Hive-partitioned too; each known
//! source file (taken, or listed and waiting to become visible) has the
//! period of its path. A source partition is *open* while it has a file
//! that is not done: active (rows left to commit) or waiting (listed, not
//! yet visible: too young in `settled` mode, no marker yet in `marker`
//! mode). Quarantined files count as done: they will never deliver rows
//! without an operator, and must not hold every partition back.
//!
//! **Source watermark `W`.** No known source partition: no watermark.
//! Otherwise `W = min(start of the oldest open source partition, cap)`,
//! where `cap` is, for the newest source partition seen:
//! - `settled` mode: its **start**. Nothing says the producer is done with
//!   the newest partition (another file may still land in it), so it closes
//!   only when a newer source partition appears.
//! - `marker` mode: its **end**. Its files are only visible once its
//!   marker exists, so when they are all done it is closed.
//!
//! **Complete.** An output partition with period `[start, end)` is complete
//! at wall-clock time `now` when `W >= end` and `now >= end + delay`.
//! `delay` is slack for data that trickles in late: on-time data of a
//! closed hour that arrives within `delay` still lands before the commit.
//!
//! **Commit.** A complete partition is committed when it has rows no commit
//! has announced (`rows > committed_rows`): for the first time (on time), or
//! again after late rows landed in an already committed partition (`late`).
//! A partition that never received rows is never committed.

use crate::config::{TimeColumns, TimeFormat, TimeToken};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// A time range `[start_ms, end_ms)` in UTC milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// How the source decides that a partition of its own is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceMode {
    /// `visibility = "settled"`: the newest partition stays open.
    Settled,
    /// `visibility = "marker"`: a marked partition whose files are done is closed.
    Marker,
}

/// Where the time columns say a partition's period is.
#[derive(Clone, Debug)]
pub struct PeriodOf {
    pub columns: TimeColumns,
    pub utc_offset_s: i64,
}

impl PeriodOf {
    /// The period of partition values `(key, value)` (unescaped), if they
    /// hold the day column and every time value parses.
    pub fn period(&self, values: &[(String, String)]) -> Option<Period> {
        let get = |k: &str| values.iter().find(|(c, _)| c == k).map(|(_, v)| v.as_str());
        let (day_col, day_fmt) = &self.columns.day;
        let p = parse(day_fmt, get(day_col)?)?;
        let day = days_from_civil(p.year?, p.month?, p.day?)?;
        let offset = self.utc_offset_s * 1000;
        let (start, len) = match &self.columns.hour {
            Some((col, fmt)) => match get(col) {
                Some(v) => {
                    let h = parse(fmt, v)?.hour?;
                    (day * DAY_MS + h * HOUR_MS, HOUR_MS)
                }
                None => (day * DAY_MS, DAY_MS),
            },
            None => (day * DAY_MS, DAY_MS),
        };
        Some(Period {
            start_ms: start - offset,
            end_ms: start - offset + len,
        })
    }

    /// The period of an output partition path `k=v/k=v` (Hive-escaped).
    pub fn period_of_partition(&self, partition: &str) -> Option<Period> {
        let values: Vec<(String, String)> = partition
            .split('/')
            .filter_map(|s| s.split_once('='))
            .map(|(k, v)| (k.to_string(), crate::discover::hive::unescape(v)))
            .collect();
        self.period(&values)
    }

    /// Whether a table partitioned by `columns` can be committed, and with
    /// which granularity (`"hour"` or `"day"`).
    pub fn granularity(&self, columns: &[String]) -> Option<&'static str> {
        if !columns.contains(&self.columns.day.0) {
            return None;
        }
        match &self.columns.hour {
            Some((h, _)) if columns.contains(h) => Some("hour"),
            _ => Some("day"),
        }
    }
}

#[derive(Default)]
struct Parsed {
    year: Option<i64>,
    month: Option<i64>,
    day: Option<i64>,
    hour: Option<i64>,
}

fn parse(fmt: &TimeFormat, value: &str) -> Option<Parsed> {
    let mut out = Parsed::default();
    let mut rest = value;
    let digits = |n: usize, rest: &mut &str| -> Option<i64> {
        let d = rest.get(..n)?;
        if !d.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *rest = &rest[n..];
        d.parse().ok()
    };
    for t in &fmt.tokens {
        match t {
            TimeToken::Year => out.year = Some(digits(4, &mut rest)?),
            TimeToken::Month => {
                out.month = Some(digits(2, &mut rest)?).filter(|m| (1..=12).contains(m))
            }
            TimeToken::Day => out.day = Some(digits(2, &mut rest)?),
            TimeToken::Hour => {
                out.hour = Some(digits(2, &mut rest)?).filter(|h| (0..24).contains(h))
            }
            TimeToken::Lit(c) => rest = rest.strip_prefix(*c)?,
        }
    }
    rest.is_empty().then_some(out)
}

/// Days since 1970-01-01 of a proleptic Gregorian date; `None` if invalid.
fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let dim = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=dim).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The source watermark (see the module doc) from each known source
/// partition's period and whether it is open.
pub fn source_watermark(
    partitions: impl IntoIterator<Item = (Period, bool)>,
    mode: SourceMode,
) -> Option<i64> {
    let mut oldest_open: Option<i64> = None;
    let mut newest: Option<Period> = None;
    for (p, open) in partitions {
        if open {
            oldest_open = Some(oldest_open.map_or(p.start_ms, |o| o.min(p.start_ms)));
        }
        if newest.is_none_or(|n| (p.end_ms, p.start_ms) > (n.end_ms, n.start_ms)) {
            newest = Some(p);
        }
    }
    let newest = newest?;
    let cap = match mode {
        SourceMode::Settled => newest.start_ms,
        SourceMode::Marker => newest.end_ms,
    };
    Some(oldest_open.map_or(cap, |o| o.min(cap)))
}

/// What to do with one output partition now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No time columns: never committed.
    NotCommittable,
    /// Every row it has was announced already.
    UpToDate,
    /// Has unannounced rows but is not complete yet.
    Wait,
    /// Complete with unannounced rows: commit (`late`: committed before).
    Commit { late: bool },
}

/// The decision for an output partition (see the module doc).
pub fn decide(
    period: Option<Period>,
    rows: u64,
    committed_rows: u64,
    committed_before: bool,
    watermark: Option<i64>,
    now_ms: i64,
    delay_ms: i64,
) -> Decision {
    let Some(p) = period else {
        return Decision::NotCommittable;
    };
    if rows <= committed_rows {
        return Decision::UpToDate;
    }
    let closed = watermark.is_some_and(|w| w >= p.end_ms);
    if closed && now_ms >= p.end_ms.saturating_add(delay_ms) {
        Decision::Commit {
            late: committed_before,
        }
    } else {
        Decision::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period_of(offset: i64) -> PeriodOf {
        PeriodOf {
            columns: TimeColumns {
                day: ("dt".into(), TimeFormat::parse("%Y-%m-%d").unwrap()),
                hour: Some(("hour".into(), TimeFormat::parse("%H").unwrap())),
            },
            utc_offset_s: offset,
        }
    }

    // 2026-11-20T00:00:00Z
    const DAY: i64 = 1_795_132_800_000;

    fn hour(h: i64) -> Period {
        Period {
            start_ms: DAY + h * HOUR_MS,
            end_ms: DAY + (h + 1) * HOUR_MS,
        }
    }

    #[test]
    fn periods_from_partition_paths() {
        let p = period_of(0);
        assert_eq!(
            p.period_of_partition("dt=2026-11-20/hour=13"),
            Some(hour(13))
        );
        assert_eq!(
            p.period_of_partition("dt=2026-11-20"),
            Some(Period {
                start_ms: DAY,
                end_ms: DAY + DAY_MS
            })
        );
        // Extra columns do not matter; their order does not either.
        assert_eq!(
            p.period_of_partition("dept=ads/hour=02/dt=2026-11-20"),
            Some(hour(2))
        );
        // Local time at +08:00 is 8 hours earlier in UTC.
        assert_eq!(
            period_of(8 * 3600).period_of_partition("dt=2026-11-20/hour=13"),
            Some(hour(5))
        );
        for bad in [
            "hour=13",
            "dept=ads",
            "",
            "dt=__HIVE_DEFAULT_PARTITION__/hour=01",
            "dt=2026-02-30",
            "dt=2026-11-20/hour=24",
            "dt=2026-11-20x",
        ] {
            assert_eq!(p.period_of_partition(bad), None, "{bad}");
        }
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2024, 2, 29), Some(19_782));
        assert_eq!(days_from_civil(2023, 2, 29), None);
    }

    #[test]
    fn tables_without_time_columns_are_not_committable() {
        let p = period_of(0);
        let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(p.granularity(&cols(&["dt", "hour"])), Some("hour"));
        assert_eq!(p.granularity(&cols(&["dt"])), Some("day"));
        assert_eq!(p.granularity(&cols(&["hour"])), None);
        assert_eq!(p.granularity(&cols(&[])), None);
        assert_eq!(
            decide(None, 10, 0, false, Some(i64::MAX), i64::MAX, 0),
            Decision::NotCommittable
        );
    }

    #[test]
    fn settled_source_newest_partition_stays_open() {
        use SourceMode::Settled;
        assert_eq!(source_watermark([], Settled), None);
        // Hours 0, 1, 2 all done: hour 2 is the newest, so it may still grow.
        let all_done = [(hour(0), false), (hour(1), false), (hour(2), false)];
        assert_eq!(source_watermark(all_done, Settled), Some(hour(2).start_ms));
        // A file of hour 0 still active holds everything from hour 0 on.
        let late = [(hour(0), true), (hour(1), false), (hour(2), false)];
        assert_eq!(source_watermark(late, Settled), Some(hour(0).start_ms));
        // A waiting file of hour 3 (too young) does not hold hour 2 back.
        let waiting = [(hour(2), false), (hour(3), true)];
        assert_eq!(source_watermark(waiting, Settled), Some(hour(3).start_ms));
    }

    #[test]
    fn marker_source_closes_marked_done_partitions() {
        use SourceMode::Marker;
        let all_done = [(hour(0), false), (hour(1), false)];
        assert_eq!(source_watermark(all_done, Marker), Some(hour(1).end_ms));
        // Hour 1 has files without a marker yet (waiting): open.
        let unmarked = [(hour(0), false), (hour(1), true)];
        assert_eq!(source_watermark(unmarked, Marker), Some(hour(1).start_ms));
        // Marked, but a file is still being read: open.
        let reading = [(hour(0), true), (hour(1), false)];
        assert_eq!(source_watermark(reading, Marker), Some(hour(0).start_ms));
    }

    #[test]
    fn on_time_commit_waits_for_watermark_and_delay() {
        let delay = 10 * 60_000;
        let p = Some(hour(0));
        let end = hour(0).end_ms;
        // Source still in hour 0: wait, however late the clock.
        assert_eq!(
            decide(p, 5, 0, false, Some(hour(0).start_ms), end + DAY_MS, delay),
            Decision::Wait
        );
        // Source moved on, but the delay has not passed yet.
        assert_eq!(
            decide(
                p,
                5,
                0,
                false,
                Some(hour(1).start_ms),
                end + delay - 1,
                delay
            ),
            Decision::Wait
        );
        // Both: commit, on time.
        assert_eq!(
            decide(p, 5, 0, false, Some(hour(1).start_ms), end + delay, delay),
            Decision::Commit { late: false }
        );
        // No source partition known: never.
        assert_eq!(
            decide(p, 5, 0, false, None, end + DAY_MS, 0),
            Decision::Wait
        );
        // Announced already.
        assert_eq!(
            decide(p, 5, 5, true, Some(hour(5).start_ms), end + DAY_MS, 0),
            Decision::UpToDate
        );
    }

    #[test]
    fn late_rows_recommit_as_late_once_the_source_partition_closes_again() {
        let end = hour(0).end_ms;
        // Committed with 5 rows; a late file of hour 0 is being read.
        let w_reading = source_watermark([(hour(0), true), (hour(2), false)], SourceMode::Settled);
        assert_eq!(
            decide(Some(hour(0)), 8, 5, true, w_reading, end + DAY_MS, 0),
            Decision::Wait
        );
        let w_done = source_watermark([(hour(0), false), (hour(2), false)], SourceMode::Settled);
        assert_eq!(
            decide(Some(hour(0)), 8, 5, true, w_done, end + DAY_MS, 0),
            Decision::Commit { late: true }
        );
    }
}
