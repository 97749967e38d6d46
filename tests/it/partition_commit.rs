//! Partition commit with the real binary and a real webhook receiver: hour
//! partitions of t_click (dt, hour) get `_SUCCESS` and one notification once
//! the source has moved past them, the newest (still open) hour gets
//! neither while `idle_close` is off, a failing webhook is retried, and a late file re-commits its
//! partition with `late: true`.

use crate::support::*;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver got: (status it answered, request line, JSON body).
type Got = Arc<Mutex<Vec<(u16, String, serde_json::Value)>>>;

/// A webhook receiver on a free loopback port: answers 500 to the first
/// request and 200 to the others.
fn start_receiver() -> (String, Got) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let got: Got = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            serve(&mut s, &g);
        }
    });
    (addr, got)
}

fn serve(s: &mut TcpStream, got: &Got) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
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
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body: serde_json::Value = serde_json::from_slice(&buf[head_end..head_end + len])
        .unwrap_or_else(|e| serde_json::Value::String(format!("not JSON: {e}")));
    let mut g = got.lock().unwrap();
    let status = if g.is_empty() { 500 } else { 200 };
    g.push((status, head.lines().next().unwrap_or("").to_string(), body));
    drop(g);
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

/// The bodies answered with 200.
fn delivered(got: &Got) -> Vec<serde_json::Value> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(st, _, _)| *st == 200)
        .map(|(_, _, b)| b.clone())
        .collect()
}

fn wait_for(
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
fn partition_contents(dir: &std::path::Path) -> (u64, u64) {
    let files = visible_files(dir, &[]);
    let rows = files
        .iter()
        .flat_map(|(_, b)| b.iter().map(|b| b.num_rows() as u64))
        .sum();
    (rows, files.len() as u64)
}

const HOUR0: &str = "dt=2026-11-20/hour=00";
const HOUR1: &str = "dt=2026-11-20/hour=01";
const HOUR2: &str = "dt=2026-11-20/hour=02";

fn expected_body(
    env: &Env,
    partition: &str,
    late: bool,
    got: &serde_json::Value,
) -> serde_json::Value {
    let (rows, files) = partition_contents(&env.sink().join("t_click").join(partition));
    serde_json::json!({
        "table": "t_click",
        "partition": partition,
        "path": format!("t_click/{partition}"),
        "rows": rows,
        "files": files,
        "late": late,
        // Checked for shape below; taken from the body.
        "committed_at": got["committed_at"].clone(),
    })
}

#[test]
fn closed_hours_are_committed_once_with_retries_and_late_data_recommits() {
    let (addr, got) = start_receiver();
    // idle_close off: the hours are in the past, so an idle newest hour
    // would close at once; here it must wait for a newer one.
    let mut env = Env::new(&format!(
        r#"
[partition_commit]
time_columns = {{ dt = "%Y-%m-%d", hour = "%H" }}
delay = "0s"
idle_close = "off"
success_file = true
webhook = {{ url = "http://{addr}/hook", timeout = "2s", retries = 3, backoff = "100ms" }}
"#
    ));
    env.add_file(0, 800);
    env.add_file(1, 800);
    let (mut child, rx) =
        spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
    let mut log = String::new();
    let click = env.sink().join("t_click");

    // Hour 00 closes (the source has hour 01); hour 01 is the newest, open.
    wait_for("the commit of hour 00", &mut log, &rx, || {
        delivered(&got).iter().any(|b| b["partition"] == HOUR0)
    });
    assert!(click.join(HOUR0).join("_SUCCESS").exists());
    assert!(!click.join(HOUR1).join("_SUCCESS").exists(), "{log}");

    // A file of hour 02 closes hour 01; hour 02 stays open.
    env.add_file(2, 800);
    wait_for("the commit of hour 01", &mut log, &rx, || {
        delivered(&got).iter().any(|b| b["partition"] == HOUR1)
    });
    wait_for("hour 02 rows", &mut log, &rx, || click.join(HOUR2).exists());
    // A few more ticks: hour 02 must stay uncommitted.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(click.join(HOUR0).join("_SUCCESS").exists());
    assert!(click.join(HOUR1).join("_SUCCESS").exists());
    assert!(!click.join(HOUR2).join("_SUCCESS").exists(), "{log}");
    // Tables without an hour or day partition are never committed, and the
    // day of t_android (dt) is not over for the source.
    assert!(!env.sink().join("t_all/hour=00/_SUCCESS").exists());
    assert!(!env.sink().join("t_android/dt=2026-11-20/_SUCCESS").exists());

    {
        let all = got.lock().unwrap();
        // The first attempt got a 500 and was retried with the same body.
        assert_eq!(all[0].0, 500);
        assert_eq!(all[1].0, 200);
        assert_eq!(all[0].2, all[1].2);
        assert!(
            all.iter().all(|(_, line, _)| line == "POST /hook HTTP/1.1"),
            "{all:?}"
        );
    }
    let bodies = delivered(&got);
    assert_eq!(
        bodies.len(),
        2,
        "one notification per closed hour: {bodies:#?}"
    );
    for (b, part) in bodies.iter().zip([HOUR0, HOUR1]) {
        assert_eq!(b, &expected_body(&env, part, false, b));
        let at = b["committed_at"].as_str().unwrap();
        assert!(
            at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
            "{at}"
        );
    }
    let rows0 = bodies[0]["rows"].as_u64().unwrap();
    assert!(rows0 > 0);

    // A late file of hour 00: processed, then hour 00 is committed again.
    env.add_file(0, 800);
    wait_for("the late commit of hour 00", &mut log, &rx, || {
        delivered(&got).iter().any(|b| b["late"] == true)
    });
    std::thread::sleep(Duration::from_millis(1000));
    let bodies = delivered(&got);
    assert_eq!(bodies.len(), 3, "{bodies:#?}");
    let late = &bodies[2];
    assert_eq!(late, &expected_body(&env, HOUR0, true, late));
    assert!(late["rows"].as_u64().unwrap() > rows0);
    // More files than the first commit (the late file's rows may span epochs).
    assert!(late["files"].as_u64().unwrap() > bodies[0]["files"].as_u64().unwrap());
    let parts: BTreeSet<String> = bodies
        .iter()
        .map(|b| b["partition"].as_str().unwrap().to_string())
        .collect();
    assert!(!parts.contains(HOUR2), "{parts:?}");

    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    wait_for("the log", &mut log, &rx, || true);
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
        log.push_str(&l);
        log.push('\n');
    }
    assert!(
        log.contains("late data: partition committed again"),
        "{log}"
    );
    let listed = log
        .lines()
        .find(|l| l.contains("committable="))
        .unwrap_or_default();
    assert!(
        listed.contains("t_click (hour)") && listed.contains("t_android (day)"),
        "{listed}"
    );
    let never = listed.split("never_committed=").nth(1).unwrap_or_default();
    assert!(
        never.contains("t_all") && never.contains("t_dept"),
        "{listed}"
    );

    // Tracked: t_click's three hours and t_android's day; t_all (hour only)
    // and t_dept (dept) have no period and are not tracked.
    let show = env
        .cmd(&["state", "show", "--config", env.config().to_str().unwrap()])
        .output()
        .unwrap();
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.contains("partition commit: 4 partitions tracked, 2 committed (1 late re-commits), 2 with rows not announced yet"),
        "{show}"
    );
}
