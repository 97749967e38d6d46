//! Hive time-partition pruning (`source.partition_pruning = "hive"`): which
//! top-level `dt=` folders of the source a scan lists. Pure.
//!
//! A top-level folder whose value is a day (`dt=2026-11-20`,
//! `day=20261120`, any key) is listed when its day ends after
//! `floor - SLACK`, the floor being `watermark - lookback`; folders that
//! are not days, and files at the root, are always listed. The slack covers
//! partitions written in a local time zone and files stamped a little
//! before the partition's hours. A file landing in a pruned folder is found
//! by the next full (reconcile) listing and counted as late.

/// Partitions ending this long before the floor are still listed.
pub const SLACK_MS: i64 = 86_400_000;
const DAY_MS: i64 = 86_400_000;

/// The start (UTC ms) of the day a `key=YYYY-MM-DD` / `key=YYYYMMDD`
/// segment names.
pub fn day_of_segment(seg: &str) -> Option<i64> {
    let (k, v) = seg.split_once('=')?;
    if k.is_empty() {
        return None;
    }
    let digits: String = v.chars().filter(|c| *c != '-').collect();
    let dashed_ok =
        v.len() == 10 && v.as_bytes().get(4) == Some(&b'-') && v.as_bytes().get(7) == Some(&b'-');
    if digits.len() != 8
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !(v.len() == 8 || dashed_ok)
    {
        return None;
    }
    let y: i64 = digits.get(0..4)?.parse().ok()?;
    let m: i64 = digits.get(4..6)?.parse().ok()?;
    let d: i64 = digits.get(6..8)?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d) * DAY_MS)
}

/// Days since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// True when a scan pruned at `floor_ms` skips the top-level folder `seg`.
pub fn skips(seg: &str, floor_ms: i64) -> bool {
    day_of_segment(seg).is_some_and(|start| start + DAY_MS + SLACK_MS <= floor_ms)
}

/// True when `path` (relative to the root) lies in a folder a scan pruned
/// at `floor_ms` skips.
pub fn skips_path(path: &str, floor_ms: i64) -> bool {
    match path.split_once('/') {
        Some((top, _)) => skips(top, floor_ms),
        None => false,
    }
}

/// Of the top-level folders, those a pruned scan lists; `None` when none
/// of them is a day (not time-partitioned: list everything).
pub fn kept(folders: &[String], floor_ms: i64) -> Option<Vec<&str>> {
    if !folders.iter().any(|f| day_of_segment(f).is_some()) {
        return None;
    }
    Some(
        folders
            .iter()
            .map(String::as_str)
            .filter(|f| !skips(f, floor_ms))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_in_both_spellings() {
        assert_eq!(day_of_segment("dt=1970-01-02"), Some(DAY_MS));
        assert_eq!(day_of_segment("day=19700102"), Some(DAY_MS));
        // 2026-11-20 00:00 UTC.
        assert_eq!(day_of_segment("dt=2026-11-20"), Some(1_795_132_800_000));
        for bad in [
            "dt=2026-11",
            "hour=13",
            "dt=2026-13-01",
            "x",
            "=20261120",
            "dt=2026/11/20",
            "dt=2026-1120",
        ] {
            assert_eq!(day_of_segment(bad), None, "{bad}");
        }
    }

    #[test]
    fn folders_before_the_floor_and_its_slack_are_skipped() {
        let day = |s: &str| day_of_segment(s).unwrap();
        let floor = day("dt=2026-11-20") + 3_600_000; // 01:00 on the 20th
        let folders: Vec<String> = [
            "dt=2026-11-17",
            "dt=2026-11-18",
            "dt=2026-11-19",
            "dt=2026-11-20",
            "dt=2026-11-21",
            "misc",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            kept(&folders, floor).unwrap(),
            ["dt=2026-11-19", "dt=2026-11-20", "dt=2026-11-21", "misc"]
        );
        assert!(skips_path("dt=2026-11-18/hour=03/a.parquet", floor));
        assert!(!skips_path("dt=2026-11-19/hour=03/a.parquet", floor));
        assert!(!skips_path("a.parquet", floor));
        let plain: Vec<String> = vec!["a".into(), "b".into()];
        assert_eq!(kept(&plain, floor), None);
    }
}
