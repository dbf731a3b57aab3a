//! Headless Chromium for the tests that render a page: the experiment's
//! HTML report and the admin endpoint's dashboard. `.ci/run` installs
//! Debian's `chromium`; without it these tests cannot check rendering, so
//! they fail.

// Each test file uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs headless Chromium with the throwaway profile `profile`.
pub fn chromium(profile: &Path, args: &[&str]) -> Output {
    Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
        // Nothing beyond the page: a closed network refuses the rest.
        .args(["--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs (Debian package `chromium`, installed by .ci/run)")
}

/// The DOM of `page` after its scripts ran for `budget_ms` of virtual time.
pub fn rendered(profile: &Path, page: &str, budget_ms: u32) -> String {
    let out = chromium(profile, &[&format!("--virtual-time-budget={budget_ms}"), "--dump-dom", page]);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("<body"), "chromium rendered nothing of {page}: {}", String::from_utf8_lossy(&out.stderr));
    dom
}

/// A screenshot of `page` into `png`, checked to be a PNG with something on
/// it (a blank page compresses to almost nothing).
pub fn screenshot(profile: &Path, page: &str, size: &str, png: &Path) {
    let out = chromium(profile, &[&format!("--window-size={size}"), &format!("--screenshot={}", png.display()), page]);
    let bytes = std::fs::read(png).unwrap_or_else(|e| panic!("no screenshot ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 10_000, "a blank page compresses to almost nothing: {} bytes", bytes.len());
}

/// The value of attribute `name` on the first element that has it in `dom`.
pub fn attribute<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    dom.split(&format!(" {name}=\"")).nth(1).and_then(|rest| rest.split('"').next())
}
