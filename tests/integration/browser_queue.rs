//! The Queue view in a real headless Chromium, with a real OctoPrint (its virtual printer) on
//! the dashboard: jobs submitted through the page's form print one after the other, with the
//! bed confirmed clear on the machine's card between; a member sees only their own jobs.

use std::time::Duration;

use makrcave::domain::access::Role;
use serde_json::{json, Value};

use crate::browser::{csp_violations, Driver};
use crate::common::{eventually, TestApp};
use crate::job_queue::{sliced_gcode, submit};
use crate::octoprint::octoprint_machine;
use crate::octoprint_server::OctoPrint;

/// How long a print of `sliced_gcode` may take on the virtual printer, with its upload.
const PRINT: Duration = Duration::from_secs(60);

/// Records every job row the Queue view draws (its id, its status, the list it is in), so
/// that a status shown briefly (a print of a few seconds) is not missed between two polls.
const WATCH_QUEUE: &str = r#"
    window.seenJobs = [];
    const record = () => {
      for (const li of document.querySelectorAll('#queue li[data-job-id]')) {
        const seen = `${li.dataset.jobId}:${li.dataset.status}:${li.parentElement.id}`;
        if (!window.seenJobs.includes(seen)) window.seenJobs.push(seen);
      }
    };
    new MutationObserver(record).observe(document.getElementById('queue'), { childList: true, subtree: true });
    record();
    return null;
"#;

/// The Queue view as the test sees it.
const READ_QUEUE: &str = r#"
    const rows = (id) => [...document.querySelectorAll(`#${id} li[data-job-id]`)].map((li) => ({
      id: li.dataset.jobId, status: li.dataset.status, priority: Number(li.dataset.priority),
      file: li.querySelector('strong').textContent,
      why: li.querySelector('.why') ? li.querySelector('.why').textContent : null,
      buttons: [...li.querySelectorAll('button')].map((b) => b.className) }));
    return { visible: !document.getElementById('queue').hidden,
             live: document.getElementById('connection').textContent,
             running: rows('queue-running'), waiting: rows('queue-waiting'), finished: rows('queue-finished'),
             result: document.getElementById('job-result').textContent,
             badge: document.getElementById('queue-count').textContent,
             seen: window.seenJobs || [] };
"#;

const READ_CARD: &str = r#"
    const card = document.getElementById('machine-m');
    const bed = card && card.querySelector('.bed');
    return { visible: !document.getElementById('floor').hidden,
             state: card ? card.dataset.state : null, label: card ? card.querySelector('.state').textContent : null,
             bed: bed ? !bed.hidden : null };
"#;

/// Sets an element's value as a person typing would; for a file input, the file's path.
async fn type_into(driver: &Driver, css: &str, text: &str) {
    let id = driver.find(css).await;
    driver
        .call(reqwest::Method::POST, &driver.session_path(&format!("/element/{id}/value")), Some(json!({"text": text})))
        .await;
}

/// Submits `path` through the page's form, asking for PLA, and answers the new job's id.
async fn submit_through_the_page(driver: &Driver, path: &std::path::Path, name: &str) -> String {
    type_into(driver, "#job-file", &path.display().to_string()).await;
    type_into(driver, "#job-material", "PLA").await;
    driver.click("#job-submit").await;
    let page = eventually(Duration::from_secs(10), "the page to say the job is queued", || async {
        let page = driver.script(READ_QUEUE).await;
        (page["result"] == format!("Queued {name}.")).then_some(page)
    })
    .await;
    let rows =
        ["running", "waiting", "finished"].iter().flat_map(|list| page[list].as_array().cloned().unwrap_or_default());
    let row = rows.into_iter().find(|r| r["file"] == name);
    row.and_then(|r| r["id"].as_str().map(str::to_string)).unwrap_or_else(|| panic!("{name} listed: {page}"))
}

async fn wait_seen(driver: &Driver, seen: &str, what: &str, timeout: Duration) -> Value {
    eventually(timeout, what, || async {
        let page = driver.script(READ_QUEUE).await;
        page["seen"].as_array().is_some_and(|s| s.iter().any(|v| v == seen)).then_some(page)
    })
    .await
}

#[actix_web::test]
async fn jobs_submitted_on_the_queue_view_print_with_the_bed_cleared_on_the_card_between() {
    let octoprint = OctoPrint::start().await;
    let t = TestApp::spawn().await;
    octoprint_machine(&t, &octoprint, &octoprint.api_key).await;
    // Another printer, offline: a member's job pinned to it waits there all along.
    t.machine("s", "m2", json!({})).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let bob = t.token("bob", Role::Member, &["s"]);
    let item = json!({"id": "pla", "name": "PLA", "category": "filament", "unit": "g",
                      "filament": {"material": "PLA", "color": "#1a1a1a"}});
    let (status, body) = t.post("/api/v1/makerspaces/s/inventory", &admin, item).await;
    assert_eq!(status, 201, "{body}");
    let spool = json!({"id": "sp", "net_g": 1000, "tare_g": 200});
    let (status, body) = t.post("/api/v1/makerspaces/s/inventory/pla/spools", &admin, spool).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        t.post("/api/v1/makerspaces/s/equipment/m/spools", &admin, json!({"spool_id": "sp", "slot": "main"})).await;
    assert_eq!(status, 201, "{body}");
    t.wait_state("s", "m", "the OctoPrint printer idle", |s| s["state"] == "idle").await;
    let (status, pinned) =
        submit(&t, &bob, "s", "bobs.gcode", &sliced_gcode("1"), Some(json!({"equipment_id": "m2"}))).await;
    assert_eq!(status, 201, "{pinned}");
    let bobs = pinned["jobs"][0]["id"].as_str().expect("job id").to_string();
    let files = tempfile::tempdir().expect("a folder for the files");
    let (first_file, second_file) = (files.path().join("first.gcode"), files.path().join("second.gcode"));
    std::fs::write(&first_file, sliced_gcode("1.5")).expect("write first.gcode");
    std::fs::write(&second_file, sliced_gcode("1.5")).expect("write second.gcode");

    let driver = Driver::start().await;
    driver.goto(&format!("{}/?makerspace=s&view=queue#token={admin}", t.base)).await;
    let page = eventually(Duration::from_secs(20), "the Queue view, live, with why Bob's job waits", || async {
        let page = driver.script(READ_QUEUE).await;
        let row = &page["waiting"][0];
        let why = row["why"].as_str().is_some_and(|w| w.contains("Machine m2: offline"));
        (page["visible"] == true && page["live"] == "live" && row["id"] == bobs.as_str() && why).then_some(page)
    })
    .await;
    assert_eq!(page["waiting"][0]["buttons"].as_array().map(Vec::len), Some(3), "an admin's buttons: {page}");
    driver.script(WATCH_QUEUE).await;

    // The first job prints at once; the page shows it on its machine.
    let first = submit_through_the_page(&driver, &first_file, "first.gcode").await;
    wait_seen(&driver, &format!("{first}:printing:queue-running"), "the first job printing on the page", PRINT).await;
    // The second waits: the machine prints, then its bed holds the first part.
    let second = submit_through_the_page(&driver, &second_file, "second.gcode").await;
    wait_seen(&driver, &format!("{first}:done:queue-finished"), "the first job done on the page", PRINT).await;
    let page = eventually(Duration::from_secs(20), "the second job waiting for the bed", || async {
        let page = driver.script(READ_QUEUE).await;
        let row = page["waiting"].as_array().and_then(|w| w.iter().find(|r| r["id"] == second.as_str()).cloned());
        row.filter(|r| r["why"].as_str().is_some_and(|w| w.contains("Machine m: bed not cleared"))).map(|_| page)
    })
    .await;
    assert!(!page["seen"]
        .as_array()
        .expect("seen")
        .iter()
        .any(|s| s == &json!(format!("{second}:printing:queue-running"))));
    // The admin moves it up while it waits (the buttons are theirs).
    driver.click(&format!("#queue-waiting li[data-job-id=\"{second}\"] button.priority-up")).await;
    eventually(Duration::from_secs(10), "the second job at priority 1", || async {
        let page = driver.script(READ_QUEUE).await;
        let row = page["waiting"].as_array().and_then(|w| w.iter().find(|r| r["id"] == second.as_str()).cloned());
        row.filter(|r| r["priority"] == 1).map(|_| ())
    })
    .await;

    // On the Floor, the card says the bed is to clear; its button lets the next job start.
    driver.click("#tab-floor").await;
    let card = eventually(Duration::from_secs(10), "the card awaiting its bed cleared", || async {
        let card = driver.script(READ_CARD).await;
        (card["visible"] == true && card["state"] == "awaiting_clear" && card["bed"] == true).then_some(card)
    })
    .await;
    assert_eq!(card["label"], "Bed to clear", "{card}");
    driver.click("#machine-m .clear-bed").await;
    wait_seen(&driver, &format!("{second}:printing:queue-running"), "the second job printing on the page", PRINT).await;
    driver.click("#tab-queue").await;
    wait_seen(&driver, &format!("{second}:done:queue-finished"), "the second job done on the page", PRINT).await;

    // What the page did is what is stored: the clear by the admin, the priority change.
    let (_, job) = t.get(&format!("/api/v1/makerspaces/s/jobs/{second}"), Some(&admin)).await;
    let reasons: Vec<&str> =
        job["history"].as_array().expect("history").iter().filter_map(|h| h["reason"].as_str()).collect();
    assert!(reasons.contains(&"priority 0 → 1 by boss"), "{job}");
    assert_eq!(job["status"], "done", "{job}");
    let console = driver.console().await;
    assert_eq!(csp_violations(&console), Vec::<&String>::new(), "the whole console: {console:#?}");

    // Bob sees his own job only, and no admin button on it. (A new page: the same address
    // with another fragment would only move within the admin's page.)
    driver.goto("about:blank").await;
    driver.goto(&format!("{}/?makerspace=s&view=queue#token={bob}", t.base)).await;
    let page = eventually(Duration::from_secs(20), "Bob's Queue view, live", || async {
        let page = driver.script(READ_QUEUE).await;
        let ready = page["visible"] == true
            && page["live"] == "live"
            && page["waiting"].as_array().is_some_and(|w| !w.is_empty());
        ready.then_some(page)
    })
    .await;
    assert_eq!(
        (page["waiting"].as_array().map(Vec::len), page["finished"].as_array().map(Vec::len)),
        (Some(1), Some(0)),
        "{page}"
    );
    assert_eq!(page["waiting"][0]["id"], bobs.as_str());
    assert_eq!(page["waiting"][0]["buttons"], json!(["cancel secondary"]), "{page}");
    t.stop().await;
}
