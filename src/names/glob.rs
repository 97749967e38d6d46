//! Globs on a file name (`source.pattern`): `*` any run, `?` one character,
//! everything else literal. Pure; used by discovery, the startup's schema
//! inference and `state rewind`.

/// Glob on a file name: `*` any run, `?` one character; every other
/// character is literal. Iterative, O(pattern x name) at worst: a `*`
/// only ever moves forward over the name (the recursive matcher this
/// replaces took exponential time on patterns with many `*`).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // The last `*` seen, and where in the name it is matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || Some(c) == n.get(ni) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                // The last `*` takes one more character.
                Some((sp, sn)) => {
                    star = Some((sp, sn + 1));
                    pi = sp + 1;
                    ni = sn + 1;
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.parquet", "a.parquet"));
        assert!(glob_match("part-?.parquet", "part-1.parquet"));
        assert!(!glob_match("*.parquet", "a.parquet.tmp"));
        assert!(glob_match("*", ""));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
        assert!(!glob_match("?", ""));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
        assert!(glob_match("**x", "x"));
        assert!(glob_match("*.parquet", "日志.parquet"));
        assert!(glob_match("?.parquet", "日.parquet"));
        assert!(glob_match("[a].parquet", "[a].parquet"));
        assert!(!glob_match("[a].parquet", "a.parquet"));
    }

    #[test]
    fn many_stars_do_not_backtrack_exponentially() {
        // Recursively this is C(76, 12) paths (never finishes); iteratively
        // at most 13 x 64 steps.
        let pattern = format!("{}b", "*a".repeat(12));
        assert!(!glob_match(&pattern, &"a".repeat(64)));
        assert!(glob_match(&pattern, &format!("{}b", "a".repeat(64))));
    }
}
