//! The moto server process (tests and `make run`): started on a free 127.0.0.1 port, stopped (by its PID) on drop.
//!
//! Tests use unique resource names (e.g. a uuid stack name), so they can share one server
//! ([`MotoServer::shared`]) or each start their own ([`MotoServer::start`]).

use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long moto may take to answer its first request (it imports a lot of Python).
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct MotoServer {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    child: Child,
    log: PathBuf,
}

/// The workspace root (where template.yaml and .venv live).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The moto_server binary: `MOTO_SERVER_BIN` if set, else the workspace's `.venv`.
pub fn moto_server_bin() -> PathBuf {
    match std::env::var_os("MOTO_SERVER_BIN") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => workspace_root().join(".venv/bin/moto_server"),
    }
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Whether something answers HTTP on `addr`.
fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 8];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

impl MotoServer {
    /// Start a new moto server and wait until it answers HTTP.
    pub fn start() -> std::io::Result<MotoServer> {
        Self::start_with_env(&[])
    }

    /// [`MotoServer::start`] with extra environment variables for the server process, e.g.
    /// `MOTO_METER_FILE` (infra/python/moto_meter.py: one line per request, for the cost bench).
    pub fn start_with_env(env: &[(&str, &str)]) -> std::io::Result<MotoServer> {
        let bin = moto_server_bin();
        if !bin.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "moto_server not found at {}: run `make venv` (or set MOTO_SERVER_BIN)",
                    bin.display()
                ),
            ));
        }
        let port = free_port()?;
        let log = std::env::temp_dir().join(format!("moto-{port}-{}.log", uuid::Uuid::new_v4()));
        let log_file = std::fs::File::create(&log)?;
        let stderr = log_file.try_clone()?;
        // The venv's Python runs moto_server through the launcher that gives moto DynamoDB's
        // atomic conditional writes (infra/python/moto_server_serialized.py).
        let python = bin.with_file_name("python3");
        let launcher = workspace_root().join("infra/python/moto_server_serialized.py");
        if !python.exists() || !launcher.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "{} or {} is missing: run `make venv`",
                    python.display(),
                    launcher.display()
                ),
            ));
        }
        let child = Command::new(&python)
            .arg(&launcher)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(stderr)
            .spawn()?;
        let mut server = MotoServer {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
            log,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        loop {
            if answers_http(addr) {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = std::fs::read_to_string(&server.log).unwrap_or_default();
                return Err(std::io::Error::other(format!(
                    "moto_server exited with {status} before answering:\n{log}"
                )));
            }
            if started.elapsed() > START_TIMEOUT {
                let log = std::fs::read_to_string(&server.log).unwrap_or_default();
                // `server` is dropped on return, which stops the process.
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "moto_server on port {port} did not answer within {START_TIMEOUT:?}:\n{log}"
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A server shared by the tests that are running: started by the first caller, stopped when
    /// the last holder drops it (a later caller then starts a new one).
    pub fn shared() -> std::io::Result<Arc<MotoServer>> {
        static SHARED: Mutex<Weak<MotoServer>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(server) = slot.upgrade() {
            return Ok(server);
        }
        let server = Arc::new(MotoServer::start()?);
        *slot = Arc::downgrade(&server);
        Ok(server)
    }

    /// The PID of the moto process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SDK configuration for this server: region us-east-1, static test credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint).await
    }
}

/// SDK configuration for an emulator at `endpoint`: region us-east-1, static test credentials.
/// The SDK's default timeouts, not the production clients' (`shared::adapters::aws::timeout_config`): moto
/// answers one DynamoDB request at a time (the serializing launcher), so under load a request
/// waits its turn far longer than DynamoDB ever takes, and a timed-out attempt stays in moto's
/// queue while its retry joins it.
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Child::kill signals exactly this PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
