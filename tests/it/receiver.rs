//! A webhook receiver for the partition commit tests: a real HTTP/1.1
//! endpoint on a free loopback port that records every request, and the
//! helpers that compare what it got with the sink.

use crate::support::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver got: (status it answered, request line, JSON body).
pub type Got = Arc<Mutex<Vec<(u16, String, serde_json::Value)>>>;

/// Starts a receiver; returns its `host:port`. `fail_first`: it answers 500
/// to the first request (to exercise retries), else always 200.
pub fn start_receiver(fail_first: bool) -> (String, Got) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let got: Got = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let first = g.lock().unwrap().is_empty();
            serve(&mut s, &g, if fail_first && first { 500 } else { 200 });
        }
    });
    (addr, got)
}

/// Starts a receiver that answers every request with the status in the
/// returned cell (`initial` until the test changes it).
pub fn start_switchable_receiver(initial: u16) -> (String, Got, Arc<AtomicU16>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let got: Got = Arc::default();
    let answer = Arc::new(AtomicU16::new(initial));
    let (g, a) = (got.clone(), answer.clone());
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            serve(&mut s, &g, a.load(Ordering::SeqCst));
        }
    });
    (addr, got, answer)
}

fn serve(s: &mut TcpStream, got: &Got, status: u16) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if let Some((head, body)) = read_request(s) {
        let line = head.lines().next().unwrap_or("").to_string();
        got.lock().unwrap().push((status, line, body));
        answer(s, status);
    }
}

/// Reads one request: (its head, the JSON body); `None` if the client
/// went away first.
pub fn read_request(s: &mut impl Read) -> Option<(String, serde_json::Value)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body: serde_json::Value = serde_json::from_slice(&buf[head_end..head_end + len])
        .unwrap_or_else(|e| serde_json::Value::String(format!("not JSON: {e}")));
    Some((head, body))
}

/// Answers `status` with an empty body and closes.
pub fn answer(s: &mut impl Write, status: u16) {
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = s.flush();
}

/// The bodies answered with 200.
pub fn delivered(got: &Got) -> Vec<serde_json::Value> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(st, _, _)| *st == 200)
        .map(|(_, _, b)| b.clone())
        .collect()
}

/// The bodies answered with 200 for `table`'s `partition`.
pub fn delivered_for(got: &Got, table: &str, partition: &str) -> Vec<serde_json::Value> {
    delivered(got)
        .into_iter()
        .filter(|b| b["table"] == table && b["partition"] == partition)
        .collect()
}

/// Polls `cond` for up to 30 s, gathering the daemon's log lines from `rx`
/// into `log` (shown if it times out).
pub fn wait_for(
    what: &str,
    log: &mut String,
    rx: &std::sync::mpsc::Receiver<String>,
    cond: impl Fn() -> bool,
) {
    let t0 = Instant::now();
    while !cond() {
        while let Ok(l) = rx.try_recv() {
            log.push_str(&l);
            log.push('\n');
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (rows, parquet files) of a partition directory.
pub fn partition_contents(dir: &std::path::Path) -> (u64, u64) {
    let files = visible_files(dir, &[]);
    let rows = files
        .iter()
        .flat_map(|(_, b)| b.iter().map(|b| b.num_rows() as u64))
        .sum();
    (rows, files.len() as u64)
}

/// The sub-partitions of a unit directory, from the sink: every directory
/// below it holding visible Parquet files, as (path relative to the unit,
/// rows, files), in path order.
pub fn sub_partitions(unit: &std::path::Path) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![unit.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if p.is_dir() && !name.starts_with('.') && !name.starts_with('_') {
                let (rows, files) = partition_contents(&p);
                let rel = p.strip_prefix(unit).unwrap().to_string_lossy().to_string();
                if std::fs::read_dir(&p).unwrap().any(|f| {
                    f.unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "parquet")
                }) {
                    out.push((rel, rows, files));
                }
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The body a commit of `table`'s `partition` (a unit: time partition) must
/// carry, given what the sink holds now (`committed_at` is taken from `got`).
pub fn expected_body(
    env: &Env,
    table: &str,
    partition: &str,
    late: bool,
    got: &serde_json::Value,
) -> serde_json::Value {
    let unit = env.sink().join(table).join(partition);
    let (rows, files) = partition_contents(&unit);
    let subs: Vec<serde_json::Value> = sub_partitions(&unit)
        .into_iter()
        .map(|(p, rows, files)| serde_json::json!({"partition": p, "rows": rows, "files": files}))
        .collect();
    serde_json::json!({
        "table": table,
        "partition": partition,
        "path": format!("{table}/{partition}"),
        "rows": rows,
        "files": files,
        "late": late,
        "committed_at": got["committed_at"].clone(),
        "sub_partitions": subs,
    })
}
