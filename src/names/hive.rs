//! Hive-style `key=value` path segments: parsing source paths into partition
//! values, and escaping output partition values so that no value, whatever
//! the data holds, can leave its table's directory or make a directory name
//! longer than [`MAX_SEGMENT_BYTES`] (see [`segment`]).

/// The directory name Hive uses for NULL and empty partition values.
pub const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// `key=value` pairs of the directory segments of `path` (values unescaped).
pub fn parse_path(path: &str) -> Vec<(String, String)> {
    let mut segs: Vec<&str> = path.split('/').collect();
    segs.pop(); // the file name
    segs.into_iter()
        .filter_map(|s| s.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), unescape(v)))
        .collect()
}

/// Characters Hive escapes in partition values, plus `%` itself and every
/// control character. `/` and `\` are what keep a value inside its directory.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '"' | '#'
                | '%'
                | '\''
                | '*'
                | '/'
                | ':'
                | '='
                | '?'
                | '\\'
                | '{'
                | '}'
                | '['
                | ']'
                | '^'
                | '|'
                | '<'
                | '>'
        )
}

/// Escapes a partition value for a path segment; `None` and `""` become
/// [`DEFAULT_PARTITION`]; a value made only of dots is escaped too.
pub fn escape(value: Option<&str>) -> String {
    let v = match value {
        None | Some("") => return DEFAULT_PARTITION.to_string(),
        Some(v) => v,
    };
    let all_dots = v.chars().all(|c| c == '.');
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if needs_escape(c) || (all_dots && c == '.') {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The longest output partition directory name (`key=value`, escaped) in
/// bytes. Filesystems refuse names over 255 bytes; a longer name would make
/// every commit of its epoch fail.
pub const MAX_SEGMENT_BYTES: usize = 128;

/// The output directory `key=value` of a partition value, escaped (see
/// [`escape`]). When that is longer than [`MAX_SEGMENT_BYTES`], the escaped
/// value is cut at a character boundary (never inside a `%XX` escape) and
/// `~` plus 16 hex digits of a hash of the whole value are appended, so the
/// name fits and distinct values keep distinct directories. The hash is
/// `sluice_udf::hash`'s (fmix64 of FNV-1a 64 of the value's UTF-8 bytes):
/// the same on every run, machine and version.
pub fn segment(key: &str, value: Option<&str>) -> String {
    let escaped = escape(value);
    if key.len() + 1 + escaped.len() <= MAX_SEGMENT_BYTES {
        return format!("{key}={escaped}");
    }
    let h = sluice_udf::hash::fmix64(sluice_udf::hash::fnv1a64(
        value.unwrap_or_default().as_bytes(),
    ));
    let tail = format!("~{h:016x}");
    let room = MAX_SEGMENT_BYTES.saturating_sub(key.len() + 1 + tail.len());
    let mut prefix = String::with_capacity(room);
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        let mut unit = String::from(c);
        if c == '%' {
            // `escape` writes `%` only as the start of a `%XX` escape.
            unit.extend(chars.by_ref().take(2));
        }
        if prefix.len() + unit.len() > room {
            break;
        }
        prefix.push_str(&unit);
    }
    format!("{key}={prefix}{tail}")
}

/// Reverses [`escape`] (and Hive's own escaping of source paths). A `%`
/// not followed by two hex digits is kept as it is; bytes that are not
/// UTF-8 once decoded become U+FFFD.
pub fn unescape(v: &str) -> String {
    percent_encoding::percent_decode_str(v)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_partition_segments() {
        assert_eq!(
            parse_path("dt=2026-11-20/hour=13/part-0.parquet"),
            vec![
                ("dt".into(), "2026-11-20".into()),
                ("hour".into(), "13".into())
            ]
        );
        assert_eq!(
            parse_path("x/k=a%2Fb/f.parquet"),
            vec![("k".into(), "a/b".into())]
        );
        assert!(parse_path("f=1.parquet").is_empty());
        // Hive-escaped source directories, and text that only looks escaped.
        assert_eq!(
            parse_path("hour=07%3A00/日志 #1.parquet"),
            vec![("hour".into(), "07:00".into())]
        );
        for (raw, want) in [
            ("%中", "%中"),
            ("a%", "a%"),
            ("%4", "%4"),
            ("%zz", "%zz"),
            ("%41", "A"),
        ] {
            assert_eq!(unescape(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn no_value_leaves_the_directory() {
        for v in [
            "../x", "a/b", "..", ".", "/", "\\..\\", "a\0b", "x=y", "%2F",
        ] {
            let e = escape(Some(v));
            assert!(!e.contains('/') && !e.contains('\\'), "{v:?} -> {e}");
            assert!(e != ".." && e != ".", "{v:?} -> {e}");
            assert_eq!(unescape(&e), v, "round trip of {v:?}");
        }
        assert_eq!(escape(None), DEFAULT_PARTITION);
        assert_eq!(escape(Some("")), DEFAULT_PARTITION);
        assert_eq!(escape(Some("2026-11-20")), "2026-11-20");
        assert_eq!(escape(Some("a/b")), "a%2Fb");
    }

    #[test]
    fn unescape_takes_any_text() {
        for (v, want) in [
            ("%1中", "%1中"),
            ("%", "%"),
            ("%4", "%4"),
            ("a%41", "aA"),
            ("%41%42", "AB"),
            ("%e4%B8%AD", "中"),
            ("%中1", "%中1"),
            ("%+1", "%+1"),
            ("%%41", "%A"),
            ("中%", "中%"),
        ] {
            assert_eq!(unescape(v), want, "{v:?}");
        }
        assert_eq!(
            parse_path("dt=2026-11-20/hour=%1中/f.parquet"),
            vec![
                ("dt".into(), "2026-11-20".into()),
                ("hour".into(), "%1中".into())
            ]
        );
        // Random text over an alphabet of escapes, hex digits and
        // multi-byte characters: never a panic; escaping round-trips.
        let alphabet = ['%', '4', '1', 'a', 'F', '中', 'é', '😀', '/', '.', 'z'];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            let mut v = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for k in 0..(x % 9) {
                v.push(alphabet[((x >> (3 * k + 8)) % alphabet.len() as u64) as usize]);
            }
            let _ = unescape(&v);
            if !v.is_empty() {
                assert_eq!(unescape(&escape(Some(&v))), v, "{v:?}");
            }
        }
    }

    #[test]
    fn long_values_get_a_bounded_stable_distinct_segment() {
        assert_eq!(segment("dt", Some("2026-11-20")), "dt=2026-11-20");
        assert_eq!(segment("k", None), format!("k={DEFAULT_PARTITION}"));
        let exact = "v".repeat(MAX_SEGMENT_BYTES - 2);
        assert_eq!(segment("k", Some(&exact)), format!("k={exact}"));
        let cjk = "分区值".repeat(40); // 360 bytes
        let slashes = "a/".repeat(150); // 450 bytes escaped
        let long = "x".repeat(300);
        let mut seen = std::collections::HashSet::new();
        for v in [long.as_str(), &format!("{long}y"), &cjk, &slashes] {
            let s = segment("key", Some(v));
            assert!(s.len() <= MAX_SEGMENT_BYTES, "{} bytes: {s}", s.len());
            assert!(s.len() > MAX_SEGMENT_BYTES - 4, "{s}");
            assert_eq!(s, segment("key", Some(v)), "deterministic");
            assert!(seen.insert(s.clone()), "two values share {s}");
            assert!(!s.contains('/'), "{s}");
            let (k, rest) = s.split_once('=').unwrap();
            assert_eq!(k, "key");
            let (prefix, hash) = rest.rsplit_once('~').unwrap();
            assert_eq!(hash.len(), 16, "{s}");
            // A prefix of the escaped value, cut between whole escapes and
            // characters: it reads back as a prefix of the value.
            assert!(escape(Some(v)).starts_with(prefix), "{s}");
            assert!(v.starts_with(&unescape(prefix)), "{s}");
        }
        // Pinned: the name of a partition must not change across versions.
        assert_eq!(
            segment("key", Some(&long)).rsplit_once('~').unwrap().1,
            format!(
                "{:016x}",
                sluice_udf::hash::fmix64(sluice_udf::hash::fnv1a64(long.as_bytes()))
            )
        );
    }
}
