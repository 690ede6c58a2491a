//! A throwaway Kafka-protocol broker for integration tests: `tansu` on a free loopback port,
//! storing its topics in SQLite in a directory of its own, so that a test can stop it, start it
//! again on the same port with the same data, and know it is alone on it. The binary is
//! `$STIGMERGY_TEST_TANSU`, or `tansu` on the `PATH` (`./scripts/test` installs it when missing).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) broker; dropping it kills the process and removes its data.
#[derive(Debug)]
pub struct Broker {
    binary: PathBuf,
    address: SocketAddr,
    dir: tempfile::TempDir,
    process: Option<Child>,
}

impl Broker {
    /// Starts a broker on a free port and waits until it accepts connections.
    ///
    /// # Panics
    /// When the binary cannot be started or does not listen within 30 s.
    pub fn start() -> Self {
        let binary = std::env::var_os("STIGMERGY_TEST_TANSU")
            .map_or_else(|| PathBuf::from("tansu"), PathBuf::from);
        let address = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap_or_else(|e| panic!("no free port for the test broker: {e}"));
        let dir =
            tempfile::tempdir().unwrap_or_else(|e| panic!("no directory for the test broker: {e}"));
        let mut broker = Self {
            binary,
            address,
            dir,
            process: None,
        };
        broker.restart();
        broker
    }

    /// `host:port`, as `kafka://` URLs and `bootstrap.servers` want it.
    pub fn bootstrap(&self) -> String {
        self.address.to_string()
    }

    /// `kafka://host:port`.
    pub fn url(&self) -> String {
        format!("kafka://{}", self.address)
    }

    /// Kills the broker at once (SIGKILL), as a crash would; its data stays.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Starts the broker again, on the same port with the same data, and waits until it
    /// accepts connections.
    ///
    /// # Panics
    /// When the binary cannot be started or does not listen within 30 s.
    pub fn restart(&mut self) {
        self.kill();
        let url = format!("tcp://{}", self.address);
        let log = std::fs::File::create(self.dir.path().join("broker.log"))
            .unwrap_or_else(|e| panic!("cannot create the test broker's log: {e}"));
        let process = Command::new(&self.binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db", "--silent"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the test broker {}: {e}; run ./scripts/test, which installs it, \
                     or `cargo install tansu --locked --features dynostore,libsql`",
                    self.binary.display()
                )
            });
        self.process = Some(process);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&self.address, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the test broker did not listen on {} within 30 s",
                self.address
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
