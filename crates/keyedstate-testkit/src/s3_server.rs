//! A real S3-compatible server on loopback for the object-store tests: moto's standalone server
//! (`moto_server`, PyPI `moto[server]`, installed by `scripts/setup.sh`), started on a free port,
//! waited for until it answers HTTP, and stopped on drop, also when a test fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for the server to answer, and for a request that fails with a
/// connection error to succeed: a loaded CI machine starts Python slowly.
const PATIENCE: Duration = Duration::from_secs(60);

/// A running `moto_server`, killed on drop.
pub struct S3Server {
    /// In a mutex so that `&self` calls can see whether it exited.
    child: std::sync::Mutex<Child>,
    port: u16,
    /// moto's own output, quoted when the server fails a test.
    log: PathBuf,
}

impl S3Server {
    /// Starts a server on a free loopback port and waits until it answers an HTTP request
    /// (60 s at most). A listening socket is not enough: an accepted connection of a server
    /// still starting can be reset, which is how a CI run once failed creating a bucket.
    pub fn start() -> S3Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let log =
            std::env::temp_dir().join(format!("keyedstate-moto-{}-{port}.log", std::process::id()));
        let output = std::fs::File::create(&log).expect("a log file for moto_server");
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(output)
            .spawn()
            .expect("moto_server runs (scripts/setup.sh installs it: pip install 'moto[server]')");
        let server = S3Server {
            child: std::sync::Mutex::new(child),
            port,
            log,
        };
        let response = server.request_patiently("GET", "/");
        assert!(
            response.starts_with("HTTP/1."),
            "moto_server on port {port} answered no HTTP: {response}"
        );
        server
    }

    /// `http://127.0.0.1:<port>`: what `AWS_ENDPOINT_URL` is set to.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment that points an S3 client at this server (`AWS_ALLOW_HTTP` for plain
    /// HTTP; moto takes any credentials).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ]
    }

    /// Creates `bucket` (moto takes an unsigned request). A connection error is retried, as
    /// an S3 client retries it: creating a bucket one already owns succeeds in us-east-1.
    pub fn create_bucket(&self, bucket: &str) {
        let response = self.request_patiently("PUT", &format!("/{bucket}"));
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "creating bucket {bucket}: {response}"
        );
    }

    /// The keys of the objects under `prefix` in `bucket` (one listing page, up to 1,000).
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let response =
            self.request_patiently("GET", &format!("/{bucket}?list-type=2&prefix={prefix}"));
        response
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }

    /// [`Self::request`], retried on connection errors for [`PATIENCE`]; panics, quoting
    /// moto's output, when the server exits or does not answer in time.
    fn request_patiently(&self, method: &str, path: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let exited = self.child.lock().unwrap().try_wait();
            if let Ok(Some(status)) = exited {
                panic!(
                    "moto_server on port {} exited ({status}): {}",
                    self.port,
                    self.log_tail()
                );
            }
            match self.request(method, path) {
                Ok(response) => return response,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => panic!(
                    "{method} {path} on moto_server (port {}): {e} after {PATIENCE:?}: {}",
                    self.port,
                    self.log_tail()
                ),
            }
        }
    }

    /// One unsigned request with an empty body on a connection of its own; the whole response.
    fn request(&self, method: &str, path: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    }

    /// The end of moto's output, for a failure message.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(20)..];
        format!("moto_server's output ends:\n{}", tail.join("\n"))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A TCP proxy on a free loopback port in front of a server, that can be taken down and up
/// again: down, it cuts every open connection and closes new ones at once, as a stopped server
/// does, while the server behind it keeps its data (moto keeps objects in memory only).
pub struct Proxy {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Forwards a free loopback port to `target` (a port on 127.0.0.1).
    pub fn start(target: u16) -> Proxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let thread = {
            let (up, stop, open) = (up.clone(), stop.clone(), open.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let client = match listener.accept() {
                        Ok((client, _)) => client,
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                    };
                    if !up.load(Ordering::Relaxed) {
                        drop(client);
                        continue;
                    }
                    let _ = client.set_nonblocking(false);
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                        continue;
                    };
                    let mut open = open.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                    for (mut from, mut to) in [
                        (client.try_clone().unwrap(), server.try_clone().unwrap()),
                        (server, client),
                    ] {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            let _ = to.shutdown(std::net::Shutdown::Both);
                        });
                    }
                }
            })
        };
        Proxy {
            port,
            up,
            stop,
            open,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>` of the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Down: open connections are cut, new ones closed; up: forwarded again.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::Relaxed);
        if !up {
            for stream in self.open.lock().unwrap().drain(..) {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.set_up(false);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl S3Server {
    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }
}
