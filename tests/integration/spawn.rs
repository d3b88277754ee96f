//! Free ports, the Mosquitto process and waiting for a server to listen, for the tests and for the benches that start the same
//! real services (benches include this file, `octoprint_server.rs` and `bambu_printer.rs` with
//! `#[path]`: they cannot import from the test crate).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// The `mosquitto` program: `MOSQUITTO_BIN`, or where Debian and others install it.
pub fn mosquitto_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("MOSQUITTO_BIN") {
        return PathBuf::from(bin);
    }
    for candidate in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("Mosquitto is required and was not found: install it (apt-get install mosquitto) or set MOSQUITTO_BIN");
}

/// Starts Mosquitto with `config` and waits until every one of its `ports` accepts
/// connections.
pub fn mosquitto(config: &Path, ports: &[u16]) -> Child {
    let mut child = Command::new(mosquitto_binary())
        .arg("-c")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mosquitto");
    wait_listening("mosquitto", &mut child, ports);
    child
}

/// Waits until a server we started accepts connections on every one of its `ports` on
/// 127.0.0.1; panics when it exits first or takes more than 10 s.
pub fn wait_listening(name: &str, child: &mut Child, ports: &[u16]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for &port in ports {
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name} exited ({status}) before listening on {port}");
            }
            assert!(Instant::now() < deadline, "{name} did not start listening on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
