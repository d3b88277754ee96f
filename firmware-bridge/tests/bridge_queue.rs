//! The on-disk queue on real files: it survives a reopen, drops a torn last record, drops the
//! oldest when full (and counts them, across reopens), and keeps the order.

use std::io::Write;

use makrcave_bridge::queue::{DiskQueue, RecordKind};

fn drain(queue: &mut DiskQueue) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(record) = queue.pop_front().unwrap() {
        out.push(String::from_utf8(record.payload).unwrap());
    }
    out
}

fn push_all(queue: &mut DiskQueue, texts: &[&str]) {
    for (i, text) in texts.iter().enumerate() {
        let kind = if i % 2 == 0 { RecordKind::Telemetry } else { RecordKind::Event };
        queue.push(kind, text.as_bytes()).unwrap();
    }
}

#[test]
fn records_survive_a_reopen_in_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut queue = DiskQueue::open(dir.path(), 64 * 1024).unwrap();
        push_all(&mut queue, &["t1", "e1", "t2", "e2"]);
        // The broker acknowledged the first one.
        assert_eq!(queue.pop_front().unwrap().unwrap().payload, b"t1");
    }
    let mut queue = DiskQueue::open(dir.path(), 64 * 1024).unwrap();
    assert_eq!(queue.len(), 3);
    assert_eq!(queue.front().unwrap().kind, RecordKind::Event);
    assert_eq!(drain(&mut queue), vec!["e1", "t2", "e2"]);
    drop(queue);
    assert!(DiskQueue::open(dir.path(), 64 * 1024).unwrap().is_empty());
}

#[test]
fn a_torn_last_record_is_dropped_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut queue = DiskQueue::open(dir.path(), 64 * 1024).unwrap();
        push_all(&mut queue, &["a", "b", "c"]);
    }
    // A power cut in the middle of an append: a header announcing 100 bytes, and 5 of them.
    let log = dir.path().join("queue.0.log");
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(&100u32.to_le_bytes()).unwrap();
    file.write_all(&[1, 2, 3, 4, 1, b'{', b'"', b'x', b'"']).unwrap();
    drop(file);
    let len_with_tail = std::fs::metadata(&log).unwrap().len();
    {
        let mut queue = DiskQueue::open(dir.path(), 64 * 1024).unwrap();
        assert_eq!(queue.len(), 3);
        assert!(std::fs::metadata(&log).unwrap().len() < len_with_tail, "the torn tail is cut off the file");
        // New records go after the good ones, not after the garbage.
        queue.push(RecordKind::Event, b"d").unwrap();
    }
    let mut queue = DiskQueue::open(dir.path(), 64 * 1024).unwrap();
    assert_eq!(drain(&mut queue), vec!["a", "b", "c", "d"]);
}

#[test]
fn a_full_queue_drops_the_oldest_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    // Each record takes 8 (header) + 1 (kind) + 100 bytes: 40 fit in 4400 bytes.
    let max = 4400;
    let payload = |i: usize| format!("{i:0100}");
    {
        let mut queue = DiskQueue::open(dir.path(), max).unwrap();
        for i in 0..50 {
            queue.push(RecordKind::Telemetry, payload(i).as_bytes()).unwrap();
        }
        assert_eq!(queue.len(), 40);
        assert_eq!(queue.dropped(), 10);
    }
    let mut queue = DiskQueue::open(dir.path(), max).unwrap();
    assert_eq!(queue.dropped(), 10, "the count survives a reopen");
    let kept = drain(&mut queue);
    let expected: Vec<String> = (10..50).map(payload).collect();
    assert_eq!(kept, expected, "the newest 40, oldest first");
}

#[test]
fn order_holds_across_compactions_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let max = 4096;
    let mut next_in = 0usize;
    let mut next_out = 0usize;
    // Many times the bound flows through: the log is compacted into new generations.
    for _round in 0..5 {
        let mut queue = DiskQueue::open(dir.path(), max).unwrap();
        for _ in 0..60 {
            queue.push(RecordKind::Event, format!("r{next_in:05}").as_bytes()).unwrap();
            next_in += 1;
            if next_in % 3 != 0 {
                let record = queue.pop_front().unwrap().unwrap();
                assert_eq!(record.payload, format!("r{next_out:05}").as_bytes());
                next_out += 1;
            }
        }
        assert_eq!(queue.dropped(), 0);
    }
    let mut queue = DiskQueue::open(dir.path(), max).unwrap();
    let rest = drain(&mut queue);
    let expected: Vec<String> = (next_out..next_in).map(|i| format!("r{i:05}")).collect();
    assert_eq!(rest, expected);
    let logs = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".log"))
        .count();
    assert_eq!(logs, 1, "old generations are removed");
}
