//! Billing, the monthly run: a month's plan fees become charges and each member's open
//! charges of the month an invoice, finalized; a run repeated makes nothing twice; the
//! automatic run does the month before for the spaces that turned it on.

use chrono::{Datelike, Duration, Utc};
use makrcave::domain::access::Role;
use makrcave::domain::billing::runs::month_before;
use makrcave::services::billing_runs;
use serde_json::{json, Value};

use crate::billing::S;
use crate::billing_invoices::{base, charge, invoice};
use crate::common::TestApp;

/// A member on `plan` since 2000 (so that last month's periods are theirs to pay).
async fn member_on_plan(t: &TestApp, space: &str, user: &str, plan: &str) -> String {
    let body = json!({"email": format!("{user}@example.org"), "first_name": user, "last_name": "M", "user_id": user,
        "plan_id": plan, "start_date": "2000-01-01"});
    let (status, m) = t.post(&format!("/api/v1/makerspaces/{space}/members"), &t.super_admin(), body).await;
    assert_eq!(status, 201, "{m}");
    m["id"].as_str().expect("id").to_string()
}

async fn plan(t: &TestApp, space: &str, name: &str, price: f64, period: &str) -> String {
    let body = json!({"name": name, "price": price, "billing_period": period});
    let (status, p) = t.post(&format!("/api/v1/makerspaces/{space}/members/plans"), &t.super_admin(), body).await;
    assert_eq!(status, 201, "{p}");
    p["id"].as_str().expect("id").to_string()
}

fn last_month() -> String {
    month_before(Utc::now().date_naive()).format("%Y-%m").to_string()
}

#[actix_web::test]
async fn a_run_charges_the_months_plan_fees_and_finalizes_one_invoice_per_member_once() {
    let t = TestApp::spawn().await;
    let admin = crate::billing_invoices::space(&t).await;
    let monthly = plan(&t, S, "Maker", 20.0, "monthly").await;
    let weekly = plan(&t, S, "Week pass", 5.0, "weekly").await;
    let free = plan(&t, S, "Friend", 0.0, "monthly").await;
    let ada = member_on_plan(&t, S, "ada", &monthly).await;
    let bob = member_on_plan(&t, S, "bob", &weekly).await;
    member_on_plan(&t, S, "cyd", &free).await;
    // Ada's charge of this month is not last month's: it stays open.
    let today = charge(&t, &admin, &ada, 300, false).await;
    let runs = format!("{}/runs", base());

    // Not an admin, not a month, not over yet.
    let as_ada = t.token("ada", Role::Member, &[S]);
    let (status, _) = t.post(&runs, &as_ada, json!({"month": last_month()})).await;
    assert_eq!(status, 403);
    let (status, body) = t.post(&runs, &admin, json!({"month": "2026-13"})).await;
    assert_eq!(status, 422, "{body}");
    let this_month = Utc::now().format("%Y-%m").to_string();
    let (status, body) = t.post(&runs, &admin, json!({"month": this_month})).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("month_not_over")), "{body}");

    let (status, report) = t.post(&runs, &admin, json!({"month": last_month()})).await;
    assert_eq!(status, 200, "{report}");
    let month = month_before(Utc::now().date_naive());
    let mondays = month
        .iter_days()
        .take_while(|d| d.month() == month.month())
        .filter(|d| d.weekday() == chrono::Weekday::Mon)
        .count();
    assert_eq!(report["plan_fees"].as_u64(), Some(1 + mondays as u64), "one monthly fee, one per Monday: {report}");
    let invoices: Vec<String> =
        report["invoices"].as_array().expect("invoices").iter().map(|i| i.as_str().unwrap().to_string()).collect();
    assert_eq!(invoices.len(), 2, "ada and bob; cyd's plan is free: {report}");

    let mut totals = Vec::new();
    for id in &invoices {
        let (status, inv) = invoice(&t, &admin, id).await;
        assert_eq!((status, inv["status"].as_str()), (200, Some("finalized")), "{inv}");
        assert!(inv["number"].as_str().unwrap().starts_with("INV-"), "{inv}");
        assert_eq!(inv["period_from"], format!("{}-01", last_month()), "{inv}");
        totals.push((inv["member_id"].as_str().unwrap().to_string(), inv["total_minor"].as_i64().unwrap()));
    }
    totals.sort();
    let mut expected = vec![(ada.clone(), 2000), (bob.clone(), 500 * mondays as i64)];
    expected.sort();
    assert_eq!(totals, expected);
    let (_, open) = t.get(&format!("{}/charges?member_id={ada}&status=open", base()), Some(&admin)).await;
    let open_ids: Vec<&str> =
        open["charges"].as_array().expect("charges").iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(open_ids, vec![today["id"].as_str().unwrap()], "this month's charge is left for later: {open}");

    // Again: nothing new.
    let (status, again) = t.post(&runs, &admin, json!({"month": last_month()})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["plan_fees"].as_u64(), again["invoices"].as_array().map(Vec::len)),
        (Some(0), Some(0)),
        "{again}"
    );
    let (_, all) = t.get(&format!("{}/invoices", base()), Some(&admin)).await;
    assert_eq!(all["total"], 2, "{all}");
    t.stop().await;
}

#[actix_web::test]
async fn the_automatic_run_does_the_month_before_once_for_the_spaces_that_turned_it_on() {
    let t = TestApp::spawn().await;
    let svc = t.app().state().services.clone();
    let settings = |on: bool| {
        json!({"currency": "EUR", "tax_rates": [], "prepaid": false, "prepaid_minimum_minor": 0,
            "job_charge_policy": "actual", "monthly_run": on})
    };
    let mut members: Vec<(String, String)> = Vec::new();
    for (space, on) in [("auto", true), ("manual", false)] {
        t.makerspace(space).await;
        let (status, body) =
            t.put(&format!("/api/v1/makerspaces/{space}/billing/settings"), &t.super_admin(), settings(on)).await;
        assert_eq!((status, body["monthly_run"].as_bool()), (200, Some(on)), "{body}");
        let p = plan(&t, space, "Maker", 15.0, "monthly").await;
        members.push((space.to_string(), member_on_plan(&t, space, &format!("m-{space}"), &p).await));
    }
    let now = Utc::now();
    assert_eq!(billing_runs::run_due(&svc, now).await.expect("run"), 1, "only the space that turned it on");
    assert_eq!(billing_runs::run_due(&svc, now).await.expect("run"), 0, "a month is run once");
    // Next month's run is due on its first day.
    let next = (now.date_naive().with_day(1).unwrap() + Duration::days(40)).and_hms_opt(0, 5, 0).unwrap().and_utc();
    assert_eq!(billing_runs::run_due(&svc, next).await.expect("run"), 1);

    let root = t.super_admin();
    for (space, member) in &members {
        let (status, page) =
            t.get(&format!("/api/v1/makerspaces/{space}/billing/invoices?member_id={member}"), Some(&root)).await;
        assert_eq!(status, 200, "{page}");
        let items: &Vec<Value> = page["invoices"].as_array().expect("invoices");
        if space == "auto" {
            // Last month's and this month's, one fee each.
            assert_eq!(items.len(), 2, "{page}");
            for item in items {
                assert_eq!((item["status"].as_str(), item["total_minor"].as_i64()), (Some("finalized"), Some(1500)));
            }
        } else {
            assert!(items.is_empty(), "{page}");
        }
    }
    t.stop().await;
}
