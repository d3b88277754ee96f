//! A Bambu printer without a Bambu printer: a real Mosquitto plays the printer's broker (a TLS
//! listener with a certificate naming the serial, issued by a test CA made with `openssl`, and
//! a password file with `bblp` and the access code), a real vsftpd plays its storage (implicit
//! FTPS with the same certificate, `bblp` and the access code, session reuse required on data
//! connections as X1 printers require it), and a scripted printer, a plain MQTT client on a
//! second loopback listener, publishes the documented report shapes and answers requests as a
//! printer does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};

use crate::spawn::{free_port, mosquitto, wait_listening};

pub const SERIAL: &str = "01P00A123456789";
/// The printer's access code. The storage's login is set up once by scripts/lib.sh
/// (`BAMBU_TEST_ACCESS_CODE`, the same value): PAM reads its users from outside the test.
pub const ACCESS_CODE: &str = "29071953";
/// The scripted printer's own login on the plain listener.
const PRINTER_USER: &str = "printer";
const PRINTER_PASSWORD: &str = "printer-password";

/// The printer's broker: Mosquitto with a TLS listener (makrcave's side) and a plain one (the
/// scripted printer's side), stopped on drop.
pub struct PrinterBroker {
    pub tls_port: u16,
    plain_port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl PrinterBroker {
    /// The broker of the one printer `SERIAL`.
    pub fn start() -> PrinterBroker {
        Self::start_with_code(ACCESS_CODE)
    }

    /// A broker whose `bblp` logs in with `access_code` (the storage's stays [`ACCESS_CODE`]).
    pub fn start_with_code(access_code: &str) -> PrinterBroker {
        Self::start_for(&[SERIAL], access_code)
    }

    /// One broker for the printers `serials` (a bench's farm), `bblp` logging in with
    /// `access_code`: its certificate names every serial (the first as its CN, all as subject
    /// alternative names).
    pub fn start_for(serials: &[&str], access_code: &str) -> PrinterBroker {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        // A CA of our own, and the printer's certificate from it with the serial as its name,
        // as Bambu's CA issues them.
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.crt", "-days", "30", "-subj", "/CN=Test Bambu CA"]);
        openssl(d, &ca);
        let subject = format!("/CN={}", serials[0]);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", &subject]);
        openssl(d, &csr);
        let names: Vec<String> = serials.iter().map(|s| format!("DNS:{s}")).collect();
        std::fs::write(d.join("ext"), format!("subjectAltName={}\n", names.join(","))).expect("write ext");
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "30",
                "-extfile",
                "ext",
            ],
        );
        let passwd = d.join("passwd");
        std::fs::write(&passwd, "").expect("create the password file");
        for (user, password) in [("bblp", access_code), (PRINTER_USER, PRINTER_PASSWORD)] {
            let status = Command::new("mosquitto_passwd")
                .arg("-b")
                .arg(&passwd)
                .args([user, password])
                .status()
                .expect("run mosquitto_passwd");
            assert!(status.success(), "mosquitto_passwd");
        }
        let (tls_port, plain_port) = (free_port(), free_port());
        let config = d.join("mosquitto.conf");
        // `user root`: Mosquitto started as root otherwise drops to its own user before it
        // reads the key and the password file in this private directory.
        std::fs::write(
            &config,
            format!(
                "user root\nper_listener_settings false\nallow_anonymous false\npassword_file {passwd}\n\
                 persistence false\nlog_dest stderr\nlog_type error\n\
                 listener {tls_port} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n\
                 listener {plain_port} 127.0.0.1\n",
                passwd = passwd.display(),
                d = d.display(),
            ),
        )
        .expect("write mosquitto.conf");
        let mut broker = PrinterBroker { tls_port, plain_port, dir, child: None };
        broker.launch();
        broker
    }

    fn launch(&mut self) {
        let config = self.dir.path().join("mosquitto.conf");
        self.child = Some(mosquitto(&config, &[self.tls_port, self.plain_port]));
    }

    /// The printer switched off: every client is disconnected at once.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The printer back on, on the same ports.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The SHA-256 of the printer's certificate, as `openssl` prints it (with colons).
    pub fn fingerprint(&self) -> String {
        let out = openssl(self.dir.path(), &["x509", "-in", "server.crt", "-noout", "-fingerprint", "-sha256"]);
        out.trim().rsplit('=').next().expect("a fingerprint").to_string()
    }
}

impl Drop for PrinterBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The PAM service scripts/lib.sh sets up for the storage's login.
const FTP_PAM_SERVICE: &str = "makrcave-test-ftp";

/// The printer's storage: vsftpd with implicit TLS on a free port, stopped on drop. Its
/// certificate is the printer's; it logs in `bblp` with [`ACCESS_CODE`] and requires data
/// connections to resume the control connection's TLS session (`require_ssl_reuse`).
pub struct PrinterStorage {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl PrinterStorage {
    pub fn start(broker: &PrinterBroker) -> PrinterStorage {
        Self::start_with(broker, "")
    }

    /// With more vsftpd settings, one a line (`local_max_rate=...`).
    pub fn start_with(broker: &PrinterBroker, extra: &str) -> PrinterStorage {
        let binary = std::env::var("VSFTPD_BIN").unwrap_or_else(|_| "/usr/sbin/vsftpd".into());
        assert!(
            Path::new(&binary).exists(),
            "vsftpd is required by this test and was not found: run scripts/test (it installs it), or apt-get install vsftpd"
        );
        assert!(
            Path::new("/etc/pam.d").join(FTP_PAM_SERVICE).exists(),
            "the login of the test FTP server is not set up: run scripts/test (scripts/lib.sh, ensure_bambu_ftp_login)"
        );
        // vsftpd logs users in through PAM and changes to their user for each session.
        assert!(
            rustix::process::geteuid().is_root(),
            "vsftpd must be started as root: run the Bambu tests as root (as CI does)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        // The card, written by the virtual user's local account (`ftp`); the empty folder
        // vsftpd shuts its unprivileged process in.
        let card = d.join("card");
        let empty = d.join("empty");
        for (folder, mode) in [(d.to_path_buf(), 0o755), (card.clone(), 0o777), (empty.clone(), 0o755)] {
            std::fs::create_dir_all(&folder).expect("create a folder");
            std::fs::set_permissions(&folder, std::os::unix::fs::PermissionsExt::from_mode(mode)).expect("chmod");
        }
        let (port, passive) = (free_port(), free_port());
        let certs = broker.dir.path();
        let config = d.join("vsftpd.conf");
        std::fs::write(
            &config,
            format!(
                "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\nbackground=NO\n\
                 anonymous_enable=NO\nlocal_enable=YES\nwrite_enable=YES\nlocal_umask=022\n\
                 guest_enable=YES\nguest_username=ftp\nvirtual_use_local_privs=YES\npam_service_name={FTP_PAM_SERVICE}\n\
                 local_root={card}\nchroot_local_user=YES\nallow_writeable_chroot=YES\nsecure_chroot_dir={empty}\n\
                 ssl_enable=YES\nimplicit_ssl=YES\nrequire_ssl_reuse=YES\nforce_local_logins_ssl=YES\n\
                 force_local_data_ssl=YES\nssl_ciphers=HIGH\n\
                 rsa_cert_file={certs}/server.crt\nrsa_private_key_file={certs}/server.key\n\
                 pasv_enable=YES\npasv_min_port={passive}\npasv_max_port={passive}\n\
                 seccomp_sandbox=NO\nisolate=NO\nisolate_network=NO\n\
                 vsftpd_log_file={log}\nlog_ftp_protocol=YES\nxferlog_enable=YES\n{extra}\n",
                card = card.display(),
                empty = empty.display(),
                certs = certs.display(),
                log = d.join("vsftpd.log").display(),
            ),
        )
        .expect("write vsftpd.conf");
        let mut child = Command::new(&binary)
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start vsftpd");
        wait_listening("vsftpd", &mut child, &[port]);
        PrinterStorage { port, dir, child }
    }

    /// The printer's SD card: where uploaded files land.
    pub fn card(&self) -> PathBuf {
        self.dir.path().join("card")
    }

    /// What vsftpd logged (the FTP commands and replies), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("vsftpd.log")).unwrap_or_default()
    }
}

impl Drop for PrinterStorage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An X1's full report, with the newlines the X1 puts in its JSON.
fn x1_full(print: &Value) -> String {
    serde_json::to_string_pretty(&json!({"print": print})).expect("json")
}

/// The scripted printer: its state, the requests it received, and how it answers.
#[derive(Clone)]
pub struct ScriptedPrinter {
    client: AsyncClient,
    serial: Arc<str>,
    state: Arc<Mutex<Value>>,
    /// `Some(reason)`: job commands are refused with this reason.
    refuse: Arc<Mutex<Option<String>>>,
    pub requests: Arc<Mutex<Vec<Value>>>,
}

impl ScriptedPrinter {
    /// The printer `SERIAL`: see [`ScriptedPrinter::start_as`].
    pub async fn start(broker: &PrinterBroker) -> ScriptedPrinter {
        Self::start_as(broker, SERIAL).await
    }

    /// Connects to the broker's plain listener as the printer `serial` and starts answering
    /// requests; the printer reports `RUNNING` at 37 % until told otherwise.
    pub async fn start_as(broker: &PrinterBroker, serial: &str) -> ScriptedPrinter {
        let mut options = MqttOptions::new(format!("scripted-printer-{serial}"), "127.0.0.1", broker.plain_port);
        options.set_credentials(PRINTER_USER, PRINTER_PASSWORD);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let printer = ScriptedPrinter {
            client: client.clone(),
            serial: Arc::from(serial),
            state: Arc::new(Mutex::new(json!({
                "command": "push_status", "sequence_id": "2021", "gcode_state": "RUNNING",
                "mc_percent": 37, "mc_remaining_time": 42, "subtask_name": "benchy",
                "nozzle_temper": 219.8, "nozzle_target_temper": 220, "bed_temper": 55.1,
                "bed_target_temper": 55, "chamber_temper": 31, "nozzle_diameter": "0.4", "hms": [],
                "ams": {"ams": [{"id": "0", "tray": [
                    {"id": "0", "tray_type": "PLA", "tray_color": "FFFFFFFF", "remain": 80},
                    {"id": "1", "tray_type": "PETG", "tray_color": "000000FF", "remain": -1}]}],
                    "tray_now": "1"},
            }))),
            refuse: Arc::new(Mutex::new(None)),
            requests: Arc::new(Mutex::new(Vec::new())),
        };
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let me = printer.clone();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    // (Re)connected: listen for requests again (a clean session keeps none),
                    // and say where things stand, as a printer coming back does.
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if me.client.try_subscribe(format!("device/{}/request", me.serial), QoS::AtMostOnce).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        me.full_report();
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let Ok(request) = serde_json::from_slice::<Value>(&p.payload) else { continue };
                        me.requests.lock().expect("lock").push(request.clone());
                        me.answer(&request);
                    }
                    Ok(_) => {}
                    // The broker is down: rumqttc reconnects on the next poll; this pause only
                    // keeps the retries from spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        ready.await.expect("subscribed");
        printer
    }

    fn report(&self, body: String) {
        self.client
            .try_publish(format!("device/{}/report", self.serial), QoS::AtMostOnce, false, body)
            .expect("publish a report");
    }

    /// Publishes the full state (as an X1 does, and as every printer answers `pushall`).
    pub fn full_report(&self) {
        let state = self.state.lock().expect("lock").clone();
        self.report(x1_full(&state));
    }

    /// Publishes a P1-style delta and merges it into the printer's state.
    pub fn delta(&self, delta: Value) {
        if let (Some(state), Some(fields)) = (self.state.lock().expect("lock").as_object_mut(), delta.as_object()) {
            state.extend(fields.clone());
        }
        self.report(json!({"print": delta}).to_string());
    }

    /// From now on, job commands are refused with `reason`.
    pub fn refuse_with(&self, reason: &str) {
        *self.refuse.lock().expect("lock") = Some(reason.to_string());
    }

    /// From now on, job commands are carried out.
    pub fn comply(&self) {
        *self.refuse.lock().expect("lock") = None;
    }

    fn answer(&self, request: &Value) {
        if request["pushing"]["command"] == "pushall" {
            self.full_report();
            return;
        }
        let print = &request["print"];
        let (Some(command), Some(sequence_id)) = (print["command"].as_str(), print["sequence_id"].as_str()) else {
            return;
        };
        let refusal = self.refuse.lock().expect("lock").clone();
        let reply = match &refusal {
            Some(reason) => {
                json!({"print": {"command": command, "sequence_id": sequence_id, "result": "failed", "reason": reason}})
            }
            None => {
                json!({"print": {"command": command, "sequence_id": sequence_id, "result": "success", "reason": ""}})
            }
        };
        self.report(reply.to_string());
        if refusal.is_none() {
            let state = match command {
                // Printing the file named, as a printer reports it: the project's plate, or
                // the G-code file on the card.
                "project_file" | "gcode_file" => {
                    let param = print["param"].as_str().unwrap_or_default();
                    let name = match command {
                        "project_file" => print["subtask_name"].as_str().unwrap_or_default(),
                        _ => param.rsplit('/').next().unwrap_or_default().trim_end_matches(".gcode"),
                    };
                    self.delta(
                        json!({"gcode_state": "RUNNING", "mc_percent": 0, "subtask_name": name, "gcode_file": param}),
                    );
                    return;
                }
                "pause" => "PAUSE",
                "resume" => "RUNNING",
                // A stop ends the print FAILED with this code, as the printer does.
                "stop" => {
                    self.delta(json!({"gcode_state": "FAILED", "print_error": 0x0300_400C}));
                    return;
                }
                _ => return,
            };
            self.delta(json!({"gcode_state": state}));
        }
    }
}
