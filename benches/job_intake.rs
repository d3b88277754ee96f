//! Job intake: binary STL files of 10, 50 and 100 MB (BENCH_INTAKE_MB) posted to
//! `POST /api/v1/makerspaces/{id}/jobs` of one makrcave (`makrcave serve` as a child process,
//! release build, SQLite, files in its data folder).
//!
//! For each file: the time from the first byte sent to the answer (upload, SHA-256, analysis,
//! storage, the job row), and makrcave's peak resident memory during it over its memory just
//! before. The peak is the kernel's own high-water mark (`VmHWM`), reset before each upload
//! through `/proc/PID/clear_refs`, so no short peak falls between two samples.
//!
//! The client streams each file from disk over a plain HTTP/1.1 connection (a multipart body
//! with its length), so that neither side needs the file in memory: what is measured is
//! makrcave's intake, whose memory must not grow with the file.
//!
//! Run with `scripts/bench job_intake`.

#[allow(dead_code)]
#[path = "../tests/integration/spawn.rs"]
mod spawn;

#[allow(dead_code)]
mod farm;

use std::io::Write;
use std::time::{Duration, Instant};

use farm::{Makrcave, SPACE};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes of one binary STL triangle: normal, three vertices, attribute count.
const TRIANGLE_BYTES: u64 = 50;
/// A small tetrahedron is four triangles.
const TETRAHEDRON_BYTES: u64 = 4 * TRIANGLE_BYTES;

/// Writes a binary STL of about `mb` megabytes: a grid of small closed tetrahedra (so that the
/// analysis has a real volume and bounding box to find), each file a little different so that
/// none is already stored.
fn write_stl(path: &std::path::Path, mb: u64, salt: u32) -> u64 {
    let tetrahedra = (mb * 1_000_000 - 84) / TETRAHEDRON_BYTES;
    let file = std::fs::File::create(path).expect("create the STL");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut header = [0u8; 80];
    header[..16].copy_from_slice(b"makrcave bench  ");
    header[16..20].copy_from_slice(&salt.to_le_bytes());
    out.write_all(&header).expect("write");
    out.write_all(&((tetrahedra * 4) as u32).to_le_bytes()).expect("write");
    let side = (tetrahedra as f64).cbrt().ceil() as u64;
    for i in 0..tetrahedra {
        let (x, y, z) = ((i % side) as f32 * 2.0, ((i / side) % side) as f32 * 2.0, (i / side / side) as f32 * 2.0);
        let a = [x, y, z];
        let b = [x + 1.0, y, z];
        let c = [x, y + 1.0, z];
        let d = [x, y, z + 1.0];
        // Outward faces of the tetrahedron a-b-c-d.
        for face in [[a, c, b], [a, b, d], [a, d, c], [b, c, d]] {
            out.write_all(&[0u8; 12]).expect("write");
            for vertex in face {
                for coordinate in vertex {
                    out.write_all(&coordinate.to_le_bytes()).expect("write");
                }
            }
            out.write_all(&[0u8; 2]).expect("write");
        }
    }
    out.flush().expect("flush");
    84 + tetrahedra * TETRAHEDRON_BYTES
}

/// A `/proc/PID/status` field in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("makrcave is alive");
    let line = status.lines().find(|l| l.starts_with(field)).expect("a field of /proc/PID/status");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a size in kB")
}

/// Posts the file at `path` as a job, streaming it from disk; answers the status, the body
/// and the time to the answer.
async fn post_file(server: &Makrcave, path: &std::path::Path, size: u64) -> (u16, Value, Duration) {
    let boundary = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.stl\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let length = head.len() as u64 + size + tail.len() as u64;
    let address = server.base.trim_start_matches("http://").to_string();
    let request = format!(
        "POST /api/v1/makerspaces/{SPACE}/jobs HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\
         Connection: close\r\n\r\n",
        server.token
    );
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect to makrcave");
    stream.write_all(request.as_bytes()).await.expect("send the head");
    stream.write_all(head.as_bytes()).await.expect("send");
    let mut file = tokio::fs::File::open(path).await.expect("open the STL");
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = file.read(&mut buffer).await.expect("read the STL");
        if read == 0 {
            break;
        }
        stream.write_all(&buffer[..read]).await.expect("send the file");
    }
    stream.write_all(tail.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read the answer");
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    // The body may be chunked: the JSON is between the first `{` and the last `}`.
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) if a < b => serde_json::from_str(&body[a..=b]).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, json, took)
}

async fn run(sizes: Vec<u64>) {
    let server = Makrcave::start().await;
    let pid = server.pid();
    let folder = tempfile::tempdir().expect("temp dir");
    println!("job intake: binary STL posted to POST /api/v1/makerspaces/{{id}}/jobs (makrcave release, SQLite)");
    // A first small upload warms the allocator and the database pool, so that the first
    // measured file does not carry them.
    let warm = folder.path().join("warm.stl");
    let warm_size = write_stl(&warm, 1, 0);
    let (status, body, _) = post_file(&server, &warm, warm_size).await;
    assert_eq!(status, 201, "warm-up upload: {body} {}", server.log());
    for (n, mb) in sizes.into_iter().enumerate() {
        let path = folder.path().join(format!("big-{mb}.stl"));
        let size = write_stl(&path, mb, n as u32 + 1);
        let before = status_kib(pid, "VmRSS:");
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset makrcave's peak memory");
        let (status, body, took) = post_file(&server, &path, size).await;
        let peak = status_kib(pid, "VmHWM:");
        assert_eq!(status, 201, "upload of {mb} MB: {body} {}", server.log());
        let triangles = &body["file"]["triangles"];
        println!(
            "  {:>5.1} MB ({triangles} triangles): {:>6.2} s, {:>6.1} MB/s; makrcave RSS {:.1} MiB before, peak {:.1} MiB (+{:.1} MiB)",
            size as f64 / 1e6,
            took.as_secs_f64(),
            size as f64 / 1e6 / took.as_secs_f64(),
            before as f64 / 1024.0,
            peak as f64 / 1024.0,
            peak.saturating_sub(before) as f64 / 1024.0,
        );
        std::fs::remove_file(&path).expect("remove the STL");
    }
    println!("  load: {}", farm::load());
}

fn main() {
    let sizes = match std::env::var("BENCH_INTAKE_MB") {
        Ok(list) => list.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) => vec![10, 50, 100],
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    rt.block_on(run(sizes));
}
