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
//! where `cap` is, for the newest source partition seen (the one with the
//! latest end, then the latest start):
//! - `settled` mode: its **start**, unless it is *idle*. Nothing says the
//!   producer is done with the newest partition (another file may still
//!   land in it), so it closes when a newer source partition appears, or
//!   once it is idle: `idle_close` is set, the partition is not open (no
//!   active or waiting file), and `now >= its end + idle_close`. An idle
//!   newest partition caps at its **end**. A file that lands in it later
//!   opens it again (`W` drops back to its start) and, once done, its rows
//!   re-commit the output partitions as `late`.
//! - `marker` mode: its **end**. Its files are only visible once its
//!   marker exists, so when they are all done it is closed. `idle_close`
//!   changes nothing here: a partition without its marker has waiting
//!   files, so it is open, idle or not.
//!
//! **Complete.** An output partition with period `[start, end)` is complete
//! at wall-clock time `now` when `W >= end` and `now >= end + delay`.
//! `delay` is slack for data that trickles in late: on-time data of a
//! closed hour that arrives within `delay` still lands before the commit.
//! (For the newest source partition closed by idleness both hold from
//! `end + max(idle_close, delay)` on.)
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
    /// `visibility = "settled"`: the newest partition stays open until a
    /// newer one appears or it is idle (see [`IdleClose`]).
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
            .map(|(k, v)| (k.to_string(), crate::names::hive::unescape(v)))
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
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(y).ok()?,
        u32::try_from(m).ok()?,
        u32::try_from(d).ok()?,
    )?;
    Some(
        date.signed_duration_since(chrono::DateTime::UNIX_EPOCH.date_naive())
            .num_days(),
    )
}

/// When an idle newest source partition closes in `settled` mode: at
/// `now_ms >= end + after_ms`; `after_ms: None` (`idle_close = "off"`):
/// never, it waits for a newer partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleClose {
    pub after_ms: Option<i64>,
    pub now_ms: i64,
}

impl IdleClose {
    /// Idle closing disabled.
    pub const OFF: IdleClose = IdleClose {
        after_ms: None,
        now_ms: 0,
    };

    fn closes(&self, newest: Period) -> bool {
        self.after_ms
            .is_some_and(|d| self.now_ms >= newest.end_ms.saturating_add(d))
    }
}

/// The source watermark (see the module doc) from each known source
/// partition's period and whether it is open.
pub fn source_watermark(
    partitions: impl IntoIterator<Item = (Period, bool)>,
    mode: SourceMode,
    idle: IdleClose,
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
        // An open newest partition is not idle: `oldest_open` then holds
        // the watermark at its start whatever the cap.
        SourceMode::Settled if idle.closes(newest) => newest.end_ms,
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

    const OFF: IdleClose = IdleClose::OFF;

    /// `idle_close` of `after_ms`, at `now_ms`.
    fn idle(after_ms: i64, now_ms: i64) -> IdleClose {
        IdleClose {
            after_ms: Some(after_ms),
            now_ms,
        }
    }

    #[test]
    fn settled_source_newest_partition_stays_open() {
        use SourceMode::Settled;
        assert_eq!(source_watermark([], Settled, OFF), None);
        // Hours 0, 1, 2 all done: hour 2 is the newest, so it may still grow.
        let all_done = [(hour(0), false), (hour(1), false), (hour(2), false)];
        assert_eq!(
            source_watermark(all_done, Settled, OFF),
            Some(hour(2).start_ms)
        );
        // A file of hour 0 still active holds everything from hour 0 on.
        let late = [(hour(0), true), (hour(1), false), (hour(2), false)];
        assert_eq!(source_watermark(late, Settled, OFF), Some(hour(0).start_ms));
        // A waiting file of hour 3 (too young) does not hold hour 2 back.
        let waiting = [(hour(2), false), (hour(3), true)];
        assert_eq!(
            source_watermark(waiting, Settled, OFF),
            Some(hour(3).start_ms)
        );
    }

    #[test]
    fn marker_source_closes_marked_done_partitions() {
        use SourceMode::Marker;
        let all_done = [(hour(0), false), (hour(1), false)];
        assert_eq!(
            source_watermark(all_done, Marker, OFF),
            Some(hour(1).end_ms)
        );
        // Hour 1 has files without a marker yet (waiting): open.
        let unmarked = [(hour(0), false), (hour(1), true)];
        assert_eq!(
            source_watermark(unmarked, Marker, OFF),
            Some(hour(1).start_ms)
        );
        // Marked, but a file is still being read: open.
        let reading = [(hour(0), true), (hour(1), false)];
        assert_eq!(
            source_watermark(reading, Marker, OFF),
            Some(hour(0).start_ms)
        );
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
        let w_reading = source_watermark(
            [(hour(0), true), (hour(2), false)],
            SourceMode::Settled,
            IdleClose::OFF,
        );
        assert_eq!(
            decide(Some(hour(0)), 8, 5, true, w_reading, end + DAY_MS, 0),
            Decision::Wait
        );
        let w_done = source_watermark(
            [(hour(0), false), (hour(2), false)],
            SourceMode::Settled,
            IdleClose::OFF,
        );
        assert_eq!(
            decide(Some(hour(0)), 8, 5, true, w_done, end + DAY_MS, 0),
            Decision::Commit { late: true }
        );
    }

    #[test]
    fn idle_newest_partition_closes_after_its_end_plus_idle_close() {
        use SourceMode::Settled;
        let after = HOUR_MS;
        let end = hour(2).end_ms;
        let done = [(hour(0), false), (hour(1), false), (hour(2), false)];
        let w = |now| source_watermark(done, Settled, idle(after, now));
        // Before end + idle_close: hour 2 may still grow.
        assert_eq!(w(end + after - 1), Some(hour(2).start_ms));
        assert_eq!(w(hour(2).start_ms + 1), Some(hour(2).start_ms));
        // From end + idle_close on: closed at its end.
        assert_eq!(w(end + after), Some(end));
        assert_eq!(w(end + DAY_MS), Some(end));
        // The output hour 2 commits then (delay shorter than idle_close) ...
        let d = |now, delay| decide(Some(hour(2)), 5, 0, false, w(now), now, delay);
        assert_eq!(d(end + after - 1, 0), Decision::Wait);
        assert_eq!(d(end + after, 0), Decision::Commit { late: false });
        // ... or once the delay has passed too (delay longer than idle_close).
        assert_eq!(d(end + after, 2 * after), Decision::Wait);
        assert_eq!(
            d(end + 2 * after, 2 * after),
            Decision::Commit { late: false }
        );
        // idle_close = "0s": as soon as the period is over.
        assert_eq!(
            source_watermark(done, Settled, idle(0, end - 1)),
            Some(hour(2).start_ms)
        );
        assert_eq!(source_watermark(done, Settled, idle(0, end)), Some(end));
    }

    #[test]
    fn idle_close_waits_for_open_and_waiting_files() {
        use SourceMode::Settled;
        let late_clock = idle(HOUR_MS, hour(2).end_ms + DAY_MS);
        // A file of the newest hour is being read, or listed and too young.
        let open = [(hour(1), false), (hour(2), true)];
        assert_eq!(
            source_watermark(open, Settled, late_clock),
            Some(hour(2).start_ms)
        );
        // Open if any entry of the period is (one done file, one waiting).
        let mixed = [(hour(2), false), (hour(1), false), (hour(2), true)];
        assert_eq!(
            source_watermark(mixed, Settled, late_clock),
            Some(hour(2).start_ms)
        );
        let mixed = [(hour(2), true), (hour(2), false)];
        assert_eq!(
            source_watermark(mixed, Settled, late_clock),
            Some(hour(2).start_ms)
        );
        // An older open partition still holds everything from its start.
        let older = [(hour(0), true), (hour(2), false)];
        assert_eq!(
            source_watermark(older, Settled, late_clock),
            Some(hour(0).start_ms)
        );
        // A file that lands later in the idle-closed hour opens it again:
        // the watermark drops back, and once the file is done its rows
        // re-commit the hour as late.
        let relanded = [(hour(2), true)];
        let w = source_watermark(relanded, Settled, late_clock);
        assert_eq!(w, Some(hour(2).start_ms));
        assert_eq!(
            decide(Some(hour(2)), 8, 5, true, w, late_clock.now_ms, 0),
            Decision::Wait
        );
        let w = source_watermark([(hour(2), false)], Settled, late_clock);
        assert_eq!(
            decide(Some(hour(2)), 8, 5, true, w, late_clock.now_ms, 0),
            Decision::Commit { late: true }
        );
    }

    #[test]
    fn idle_close_off_never_closes_the_newest_partition() {
        let done = [(hour(0), false), (hour(2), false)];
        let never = IdleClose {
            after_ms: None,
            now_ms: i64::MAX,
        };
        assert_eq!(
            source_watermark(done, SourceMode::Settled, never),
            Some(hour(2).start_ms)
        );
        // A saturating end + idle_close never wraps into the past.
        let huge = idle(i64::MAX, hour(2).end_ms + DAY_MS);
        assert_eq!(
            source_watermark(done, SourceMode::Settled, huge),
            Some(hour(2).start_ms)
        );
    }

    #[test]
    fn idle_close_does_not_change_marker_mode() {
        let cases: [&[(Period, bool)]; 5] = [
            &[(hour(0), false), (hour(1), false)],
            &[(hour(0), false), (hour(1), true)],
            &[(hour(0), true), (hour(1), false)],
            &[(hour(1), true)],
            &[],
        ];
        for parts in cases {
            let off = source_watermark(parts.iter().copied(), SourceMode::Marker, OFF);
            for now in [hour(1).start_ms, hour(1).end_ms, hour(1).end_ms + DAY_MS] {
                for after in [0, HOUR_MS] {
                    let on = source_watermark(
                        parts.iter().copied(),
                        SourceMode::Marker,
                        idle(after, now),
                    );
                    assert_eq!(on, off, "{parts:?} now={now} idle_close={after}");
                }
            }
        }
        // An unmarked newest partition (its files wait for the marker)
        // stays open however long it is idle.
        let unmarked = [(hour(0), false), (hour(1), true)];
        assert_eq!(
            source_watermark(unmarked, SourceMode::Marker, idle(0, i64::MAX)),
            Some(hour(1).start_ms)
        );
    }
}
