//! A real OctoPrint (1.11.8 from PyPI, made by scripts/test in `target/octoprint-venv`) with
//! its virtual printer, for one test: a fresh basedir, a free port, a user with an API key,
//! killed on drop. `MAKRCAVE_TEST_OCTOPRINT` names the `octoprint` program; when it is missing
//! the test fails, never skips.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::spawn::free_port;

/// The version the tests are written against (scripts/lib.sh installs it).
pub const VERSION: &str = "1.11.8";
const USER: &str = "makrcave";

/// What DESIGN.md says a quiet test OctoPrint needs: the virtual printer without simulated
/// line errors, no first-run wizard, nothing that reaches the internet, and the printer's
/// port saved as OctoPrint's own preference (what `{"command":"connect"}` uses).
const CONFIG: &str = "\
accessControl:
  autologinLocal: false
server:
  firstRun: false
  onlineCheck:
    enabled: false
  pluginBlacklist:
    enabled: false
  pythonEolCheck:
    enabled: false
  ipCheck:
    enabled: false
serial:
  port: VIRTUAL
  baudrate: 115200
  autoconnect: false
plugins:
  _disabled:
  - announcements
  - pluginmanager
  - softwareupdate
  - tracking
  - errortracking
  - discovery
  - backup
  health_check:
    disabled:
    - octoprint_freshness
    - python_eol
  virtual_printer:
    enabled: true
    simulated_errors: []
";

pub struct OctoPrint {
    pub port: u16,
    pub api_key: String,
    basedir: tempfile::TempDir,
    child: Option<Child>,
    http: reqwest::Client,
}

impl OctoPrint {
    /// The `octoprint` program of the test virtualenv.
    pub fn program() -> PathBuf {
        let path = std::env::var("MAKRCAVE_TEST_OCTOPRINT")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/octoprint-venv/bin/octoprint"));
        assert!(
            path.exists(),
            "this test needs OctoPrint {VERSION} at {}: run scripts/test (or source scripts/lib.sh and call \
             ensure_octoprint_venv), or set MAKRCAVE_TEST_OCTOPRINT",
            path.display()
        );
        path
    }

    /// Starts a fresh OctoPrint and waits until it answers.
    pub async fn start() -> OctoPrint {
        makrcave::install_crypto_provider();
        let basedir = tempfile::tempdir().expect("temp dir");
        std::fs::write(basedir.path().join("config.yaml"), CONFIG).expect("write config.yaml");
        let status = Command::new(Self::program())
            .arg("--basedir")
            .arg(basedir.path())
            .args(["user", "add", USER, "--password", "not-used-by-the-tests", "--admin"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run octoprint user add");
        assert!(status.success(), "octoprint user add failed");
        let api_key = format!("mk{}", uuid::Uuid::new_v4().simple());
        set_api_key(&basedir.path().join("users.yaml"), &api_key);
        let mut octoprint =
            OctoPrint { port: free_port(), api_key, basedir, child: None, http: reqwest::Client::new() };
        octoprint.launch().await;
        octoprint
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn launch(&mut self) {
        let log = std::fs::File::create(self.basedir.path().join("serve.log")).expect("serve log");
        let child = Command::new(Self::program())
            .arg("--basedir")
            .arg(self.basedir.path())
            .args(["serve", "--host", "127.0.0.1", "--port", &self.port.to_string()])
            // Tests run as root in CI containers; OctoPrint refuses that without this flag.
            .arg("--iknowwhatimdoing")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start octoprint");
        self.child = Some(child);
        // During start-up a temporary server answers 404; only a 200 means ready.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.get("/api/version").await.0 == 200 {
                return;
            }
            if let Some(exit) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("OctoPrint exited ({exit}): {}", self.log());
            }
            assert!(Instant::now() < deadline, "OctoPrint did not answer in time: {}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The end of OctoPrint's own log, for failure messages.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.basedir.path().join("serve.log")).unwrap_or_default();
        text.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Kills OctoPrint at once (what a crash or a power cut does).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and basedir.
    pub async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }

    /// A GET with the API key: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        match self.http.get(format!("{}{path}", self.url())).header("X-Api-Key", &self.api_key).send().await {
            Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or_default()),
            Err(_) => (0, serde_json::Value::Null),
        }
    }

    /// The printer's state text as OctoPrint tells it (`None` when not connected).
    pub async fn printer_state(&self) -> Option<String> {
        let (status, body) = self.get("/api/printer").await;
        (status == 200).then(|| body["state"]["text"].as_str().unwrap_or_default().to_string())
    }
}

/// Gives the user its API key in users.yaml (what OctoPrint's own settings page does).
fn set_api_key(users: &Path, key: &str) {
    let text = std::fs::read_to_string(users).expect("read users.yaml");
    assert!(text.contains("apikey: null"), "users.yaml has the user without a key: {text}");
    std::fs::write(users, text.replacen("apikey: null", &format!("apikey: {key}"), 1)).expect("write users.yaml");
}

impl Drop for OctoPrint {
    fn drop(&mut self) {
        self.kill();
    }
}
