//! The pages defend themselves: the dashboard and the kiosk page come with a
//! Content-Security-Policy that allows only their own files, and may not be framed. (The
//! browser test in `browser.rs` checks that Chromium runs them under it without a violation.)

use crate::common::TestApp;

/// The answer's header `name`, or "" when it is missing.
fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

#[actix_web::test]
async fn the_pages_send_a_content_security_policy_and_refuse_framing() {
    let t = TestApp::spawn().await;
    for path in ["/", "/?view=today", "/kiosk", "/kiosk?machine=m1"] {
        let res = t.http.get(t.url(path)).send().await.expect("GET a page");
        assert_eq!(res.status(), 200, "{path}");
        let csp = header(&res, "content-security-policy");
        let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
        for wanted in ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"] {
            assert!(directives.contains(&wanted), "{path}: {wanted} in {csp:?}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{path}: {csp}");
        assert_eq!(header(&res, "x-frame-options"), "DENY", "{path}");
        assert_eq!(header(&res, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&res, "referrer-policy"), "no-referrer", "{path}");

        // Nothing inline that the policy would refuse: scripts and styles come from files.
        let html = res.text().await.expect("the page").to_ascii_lowercase();
        assert!(!html.contains("<style"), "{path}: an inline <style>");
        assert!(!html.contains(" style="), "{path}: a style attribute");
        for (at, _) in html.match_indices("<script") {
            let tag = &html[at..at + html[at..].find('>').expect("a closed tag")];
            assert!(tag.contains(" src="), "{path}: an inline script {tag}>");
        }
        let handler = html.split(|c: char| c.is_whitespace()).find(|w| {
            let name = w.split('=').next().unwrap_or_default();
            w.contains('=') && name.len() > 2 && name.starts_with("on") && name.chars().all(|c| c.is_ascii_lowercase())
        });
        assert!(handler.is_none(), "{path}: an inline event handler {handler:?}");
    }
    // The files the pages load are never sniffed into another type.
    for file in ["dashboard.js", "today.js", "kiosk.js", "style.css"] {
        let res = t.http.get(t.url(&format!("/static/{file}"))).send().await.expect("GET a file");
        assert_eq!(res.status(), 200, "{file}");
        assert_eq!(header(&res, "x-content-type-options"), "nosniff", "{file}");
    }
    t.stop().await;
}
