//! Hive-style `key=value` path segments: parsing source paths into partition
//! values, and escaping output partition values so that no value, whatever
//! the data holds, can leave its table's directory.

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

/// Reverses [`escape`] (and Hive's own escaping of source paths).
pub fn unescape(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|c| (*c as char).to_digit(16)),
                bytes.get(i + 2).and_then(|c| (*c as char).to_digit(16)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
}
