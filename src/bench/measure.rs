//! What `sluice bench` measures of a run: process CPU time and peak RSS,
//! and the bytes, files and rows of folders. Reads only.

use anyhow::Result;
use std::path::Path;

/// User plus system CPU time of this process so far.
pub fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

pub fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

pub fn dir_bytes(p: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                n += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    n
}

/// Rows of every Parquet file under `dir`, from their footers.
pub fn parquet_rows(dir: &Path) -> Result<u64> {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let r = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&p)?)?;
                n += parquet::file::reader::FileReader::metadata(&r)
                    .file_metadata()
                    .num_rows() as u64;
            }
        }
    }
    Ok(n)
}

/// Committed output files under `sink` (not staging) and their bytes.
/// [`output_files`] of an object-store sink: its `.parquet` objects
/// outside hidden prefixes.
pub fn output_objects(
    sink: &sluice::store::Location,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<(u64, u64)> {
    use futures::TryStreamExt;
    let store = sluice::store::open(sink, &Default::default(), false)?;
    let objs: Vec<object_store::ObjectMeta> = rt.block_on(store.list(None).try_collect())?;
    let visible = objs.iter().filter(|o| {
        let p = o.location.as_ref();
        p.ends_with(".parquet") && !p.split('/').any(|s| s.starts_with('.'))
    });
    Ok(visible.fold((0, 0), |(n, b), o| (n + 1, b + o.size)))
}

pub fn output_files(sink: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    let mut stack = vec![sink.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
            {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                files += 1;
                bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    (files, bytes)
}

pub fn current_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}
