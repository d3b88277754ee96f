//! One way down: web -> services -> (actors, store, protocols) -> domain. These tests read
//! the source tree and keep the layering true (DESIGN.md, "Layout"):
//! - no handler module of `src/web/` uses another handler module (shared extractors, errors,
//!   validation and OpenAPI helpers are fine);
//! - nothing outside `src/web/` uses `src/web/`, apart from the application's wiring;
//! - nothing in `src/services/` or below uses `actix_web`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Modules of `src/web/` that every handler module may use: extractors, errors, validation, paging,
/// CSV files, multipart bodies, the OpenAPI document, and the web root (`AppState`, `ErrorBody`).
const SHARED_WEB: &[&str] = &[
    "auth",
    "csv_io",
    "error",
    "idempotency",
    "jwks",
    "multipart",
    "openapi",
    "paging",
    "rate_limit",
    "service_errors",
    "validate",
];
/// Modules of `src/web/` that wire the handlers together (routes, the OpenAPI document).
const WEB_WIRING: &[&str] = &["src/web/mod.rs", "src/web/openapi.rs"];
/// Files outside `src/web/` that wire the application together and so may use it.
const APP_WIRING: &[&str] = &["src/app.rs", "src/main.rs"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code without comment lines, and its path relative to the crate.
fn code_of(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).expect("a readable source file");
    let code = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let relative = path.strip_prefix(root()).expect("inside the crate").to_string_lossy().replace('\\', "/");
    (relative, code)
}

/// The `src/web/` modules a piece of code names: `crate::web::NAME` and
/// `crate::web::{NAME, ...}` (the first segment only).
fn web_modules_named(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::web::") {
        let rest = &code[at + "crate::web::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|g| first_segment(g.trim())).filter(|s| !s.is_empty()));
        } else {
            out.insert(first_segment(rest));
        }
    }
    out
}

fn first_segment(path: &str) -> String {
    path.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// The handler module a file of `src/web/` belongs to (`skills` for `src/web/skills/x.rs`).
fn web_module_of(relative: &str) -> Option<String> {
    let rest = relative.strip_prefix("src/web/")?;
    Some(first_segment(rest.split('/').next().unwrap_or(rest)))
}

fn all_sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files.sort();
    assert!(files.len() > 20, "the source tree was not found");
    files.iter().map(|f| code_of(f)).collect()
}

#[test]
fn no_web_handler_module_uses_another() {
    let mut offences = Vec::new();
    for (file, code) in all_sources().iter().filter(|(f, _)| f.starts_with("src/web/")) {
        if WEB_WIRING.contains(&file.as_str()) {
            continue;
        }
        let own = web_module_of(file).expect("a web file");
        for named in web_modules_named(code) {
            // Types of the web root (AppState, ErrorBody) start with a capital letter.
            let is_root_item = named.chars().next().is_some_and(|c| c.is_uppercase());
            if named != own && !is_root_item && !SHARED_WEB.contains(&named.as_str()) {
                offences.push(format!("{file} uses crate::web::{named}"));
            }
        }
        // Inside a handler folder (skills/), a file may use its folder's shapes only.
        for (at, _) in code.match_indices("super::") {
            let named = first_segment(&code[at + "super::".len()..]);
            if file.matches('/').count() > 2 && named != "shapes" && !named.is_empty() {
                offences.push(format!("{file} uses super::{named}"));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "web handler modules must not use each other; move shared workflow logic to src/services/:\n{}",
        offences.join("\n")
    );
}

#[test]
fn nothing_below_the_web_layer_uses_it() {
    let offences: Vec<String> = all_sources()
        .into_iter()
        .filter(|(f, _)| !f.starts_with("src/web/") && !APP_WIRING.contains(&f.as_str()))
        .filter(|(_, code)| code.contains("crate::web"))
        .map(|(f, _)| f)
        .collect();
    assert!(offences.is_empty(), "only the application's wiring may use crate::web:\n{}", offences.join("\n"));
}

#[test]
fn services_and_below_know_nothing_of_actix_web() {
    let offences: Vec<String> = all_sources()
        .into_iter()
        .filter(|(f, _)| !f.starts_with("src/web/") && !APP_WIRING.contains(&f.as_str()))
        .filter(|(_, code)| code.contains("actix_web"))
        .map(|(f, _)| f)
        .collect();
    assert!(offences.is_empty(), "services and the layers below must not use actix_web:\n{}", offences.join("\n"));
}

#[test]
fn the_checks_see_a_violation() {
    // The scanners themselves: a grouped import and a path both count.
    let named = web_modules_named("use crate::web::{kiosk, error::ApiError};\nlet x = crate::web::members::load();");
    assert_eq!(named.into_iter().collect::<Vec<_>>(), vec!["error", "kiosk", "members"]);
    assert_eq!(web_module_of("src/web/skills/catalog.rs").as_deref(), Some("skills"));
    assert_eq!(web_module_of("src/web/kiosk.rs").as_deref(), Some("kiosk"));
}
