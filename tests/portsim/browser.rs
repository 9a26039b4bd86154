//! The HTML report (`portsim run SCENARIO --out DIR` writes `DIR/report.html`)
//! opened in headless Chromium: it must load without console errors, uncaught
//! exceptions or failed resource loads, fetch nothing from the network, and
//! render something other than an empty page.
//!
//! Shape:
//! - Chromium is driven over the DevTools protocol on a pipe
//!   (`--remote-debugging-pipe`: commands in on fd 3, replies and events out on
//!   fd 4, one JSON message per NUL-terminated record). Scraping
//!   `--enable-logging=stderr` is not enough: it shows `console.*` calls and
//!   uncaught exceptions, but every page message at the same level, and
//!   neither failed resource loads nor the requests a page makes. The protocol
//!   reports each of these as an event, only for the page under test, so
//!   Chromium's own noise (D-Bus, GPU, updater) never counts.
//! - The check is proved able to fail: a broken page (an uncaught exception, a
//!   `console.error`, a missing image, a remote image) must be reported, and a
//!   blank page must be classified as blank; a valid page with an inline SVG
//!   must pass. The report test then runs the binary and applies the same
//!   checks, plus a static scan of the HTML for remote references.
//! - Chromium is looked up in `PORTSIM_CHROMIUM`, then on `PATH`, then at
//!   `/usr/bin/chromium`. Without it the tests skip with a message on stderr,
//!   unless `PORTSIM_REQUIRE_BROWSER` is set (`.ci/run` sets it and installs
//!   Chromium), in which case they fail.
//! - Every wait is bounded: past 60 s the browser and its child processes are
//!   killed and the test fails.
//! - Unix only: the pipe is set up by `sh`, and the browser runs in its own
//!   process group so that it can be killed as a whole.

#![cfg(unix)]

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::{portsim, text};

/// The longest a whole browser session may take before it is killed.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Viewport of the screenshot.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 2400;

/// What Chromium saw while loading a page.
#[derive(Debug)]
pub struct BrowserResult {
    /// The viewport after the load event, as PNG bytes.
    pub screenshot: Vec<u8>,
    /// Uncaught exceptions, `console.error`/`console.assert` calls, error-level
    /// browser log entries (e.g. "Failed to load resource") and failed loads.
    pub errors: Vec<String>,
    /// URLs of requests the page made to anything but `file:` and `data:`.
    pub remote_requests: Vec<String>,
}

/// The Chromium executable: `PORTSIM_CHROMIUM`, else the first of `chromium`,
/// `chromium-browser`, `google-chrome` on `PATH`, else `/usr/bin/chromium`.
fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PORTSIM_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    let fallback = PathBuf::from("/usr/bin/chromium");
    fallback.is_file().then_some(fallback)
}

/// True when Chromium is available. Otherwise fails the test if
/// `PORTSIM_REQUIRE_BROWSER` is set, or says on stderr that it is skipped.
fn have_browser(test: &str) -> bool {
    if let Some(p) = find_chromium() {
        assert!(
            p.is_file(),
            "{test}: PORTSIM_CHROMIUM={} is not a file",
            p.display()
        );
        return true;
    }
    if std::env::var_os("PORTSIM_REQUIRE_BROWSER").is_some() {
        panic!(
            "{test}: chromium not found (looked at $PORTSIM_CHROMIUM, chromium, chromium-browser and \
             google-chrome on PATH, /usr/bin/chromium) and PORTSIM_REQUIRE_BROWSER is set; \
             install it (`apt-get install chromium`) or point PORTSIM_CHROMIUM at it"
        );
    }
    // Straight to stderr, not through `eprintln!`, which the test harness
    // captures and hides for passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "{test}: skipped: chromium not found (set PORTSIM_REQUIRE_BROWSER=1 to make this an error; \
         .ci/run installs it)"
    );
    false
}

/// Load `html_path` in a fresh headless Chromium, wait for the load event,
/// take a screenshot of the viewport and report what the page did.
pub fn open_in_browser(html_path: &Path) -> BrowserResult {
    let chromium = find_chromium().expect("chromium is installed (checked by have_browser)");
    let html_path = html_path
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", html_path.display()));
    let mut cdp = Cdp::launch(&chromium);

    let target = cdp.call(None, "Target.createTarget", json!({ "url": "about:blank" }));
    let target_id = target["targetId"].as_str().expect("a targetId").to_owned();
    let attached = cdp.call(
        None,
        "Target.attachToTarget",
        json!({ "targetId": target_id, "flatten": true }),
    );
    let session = attached["sessionId"]
        .as_str()
        .expect("a sessionId")
        .to_owned();
    let s = Some(session.as_str());
    for domain in ["Page", "Runtime", "Log", "Network"] {
        cdp.call(s, &format!("{domain}.enable"), json!({}));
    }
    cdp.call(
        s,
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false }),
    );

    let url = file_url(&html_path);
    let mut errors = Vec::new();
    let nav = cdp.call(s, "Page.navigate", json!({ "url": url }));
    if let Some(e) = nav["errorText"].as_str() {
        errors.push(format!("navigation to {url} failed: {e}"));
    } else {
        cdp.wait_event(s, "Page.loadEventFired");
    }
    let shot = cdp.call(s, "Page.captureScreenshot", json!({ "format": "png" }));
    let screenshot = base64_decode(shot["data"].as_str().expect("screenshot data"));
    cdp.close();

    let events: Vec<&Value> = cdp
        .events
        .iter()
        .filter(|e| e["sessionId"] == session)
        .collect();
    let of = |method: &'static str| {
        events
            .iter()
            .filter(move |e| e["method"] == method)
            .map(|e| &e["params"])
    };
    let urls: HashMap<String, &str> = of("Network.requestWillBeSent")
        .map(|p| {
            let url = p["request"]["url"].as_str().unwrap_or_default();
            (p["requestId"].to_string(), url)
        })
        .collect();
    // A failed load also shows as a "Failed to load resource" log entry for
    // the same URL; report it once.
    let failed: HashSet<&str> = of("Network.loadingFailed")
        .filter_map(|p| urls.get(&p["requestId"].to_string()).copied())
        .collect();
    let mut remote_requests = Vec::new();
    for event in &events {
        let p = &event["params"];
        match event["method"].as_str().unwrap_or_default() {
            "Runtime.exceptionThrown" => {
                let d = &p["exceptionDetails"];
                let what = d["exception"]["description"]
                    .as_str()
                    .or(d["text"].as_str())
                    .unwrap_or("?");
                errors.push(format!(
                    "uncaught exception: {what} ({}:{})",
                    d["url"].as_str().unwrap_or("?"),
                    d["lineNumber"]
                ));
            }
            "Runtime.consoleAPICalled" => {
                let kind = p["type"].as_str().unwrap_or_default();
                if kind == "error" || kind == "assert" {
                    let args: Vec<String> = p["args"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| match &a["value"] {
                            Value::String(s) => s.clone(),
                            Value::Null => a["description"].as_str().unwrap_or("?").to_owned(),
                            v => v.to_string(),
                        })
                        .collect();
                    errors.push(format!("console.{kind}: {}", args.join(" ")));
                }
            }
            "Log.entryAdded" => {
                let entry = &p["entry"];
                let url = entry["url"].as_str().unwrap_or("?");
                let reported = entry["source"] == "network" && failed.contains(url);
                if entry["level"] == "error" && !reported {
                    errors.push(format!(
                        "{} error: {} ({})",
                        entry["source"].as_str().unwrap_or("?"),
                        entry["text"].as_str().unwrap_or("?"),
                        url,
                    ));
                }
            }
            "Network.requestWillBeSent" => {
                let u = p["request"]["url"].as_str().unwrap_or_default();
                if !(u.starts_with("file:") || u.starts_with("data:")) {
                    remote_requests.push(u.to_owned());
                }
            }
            "Network.loadingFailed" => {
                let u = urls.get(&p["requestId"].to_string()).unwrap_or(&"?");
                errors.push(format!(
                    "failed to load {u}: {}",
                    p["errorText"].as_str().unwrap_or("?")
                ));
            }
            _ => {}
        }
    }
    BrowserResult {
        screenshot,
        errors,
        remote_requests,
    }
}

/// A Chromium process and its DevTools pipe.
struct Cdp {
    child: Child,
    commands: Option<ChildStdin>,
    replies: Receiver<Value>,
    next_id: u64,
    deadline: Instant,
    /// Every event received so far, in order.
    events: Vec<Value>,
    /// Chromium's stderr, shown when it stops answering.
    log: PathBuf,
    _profile: tempfile::TempDir,
}

impl Cdp {
    fn launch(chromium: &Path) -> Cdp {
        let profile = tempfile::tempdir().expect("a profile directory");
        let log = profile.path().join("chromium.log");
        let user_data_dir = profile.path().join("user-data");
        // The shell hands our stdin pipe to Chromium as fd 3 and our stdout
        // pipe as fd 4, which is where `--remote-debugging-pipe` talks.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null"#)
            .arg(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--mute-audio",
                // Nothing resolves: a remote fetch fails at once and is
                // reported, instead of waiting on a closed network.
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "--hide-scrollbars",
                &format!("--window-size={WIDTH},{HEIGHT}"),
                &format!("--user-data-dir={}", user_data_dir.display()),
                "--remote-debugging-pipe",
            ])
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("a log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
        let commands = child.stdin.take();
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || loop {
            let mut buf = Vec::new();
            match out.read_until(0, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if buf.last() == Some(&0) {
                        buf.pop();
                    }
                    let Ok(msg) = serde_json::from_slice::<Value>(&buf) else {
                        continue;
                    };
                    if tx.send(msg).is_err() {
                        return;
                    }
                }
            }
        });
        Cdp {
            child,
            commands,
            replies,
            next_id: 0,
            deadline: Instant::now() + TIMEOUT,
            events: Vec::new(),
            log,
            _profile: profile,
        }
    }

    /// The next message from Chromium, failing the test past the deadline or
    /// if Chromium exits.
    fn next(&mut self, waiting_for: &str) -> Value {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.replies.recv_timeout(left) {
            Ok(msg) => msg,
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                panic!(
                    "chromium took more than {TIMEOUT:?} (waiting for {waiting_for}); killed it. \
                     Its stderr:\n{}",
                    self.log_tail()
                )
            }
            Err(RecvTimeoutError::Disconnected) => panic!(
                "chromium closed its DevTools pipe while we waited for {waiting_for}. Its stderr:\n{}",
                self.log_tail()
            ),
        }
    }

    /// Send a command and return its result, keeping the events that arrive
    /// in the meantime.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("JSON");
        bytes.push(0);
        let pipe = self.commands.as_mut().expect("the pipe is open");
        if let Err(e) = pipe.write_all(&bytes).and_then(|_| pipe.flush()) {
            panic!(
                "cannot send {method} to chromium: {e}. Its stderr:\n{}",
                self.log_tail()
            );
        }
        loop {
            let reply = self.next(method);
            if reply["id"] == id {
                if let Some(err) = reply.get("error") {
                    panic!("chromium rejected {method}: {err}");
                }
                return reply["result"].clone();
            }
            self.events.push(reply);
        }
    }

    /// Wait for an event of the session (it may have arrived already).
    fn wait_event(&mut self, session: Option<&str>, method: &str) -> Value {
        let session = session.map_or(Value::Null, |s| json!(s));
        let matches = |e: &Value| e["method"] == method && e["sessionId"] == session;
        if let Some(e) = self.events.iter().find(|e| matches(e)) {
            return e.clone();
        }
        loop {
            let msg = self.next(method);
            self.events.push(msg.clone());
            if matches(&msg) {
                return msg;
            }
        }
    }

    /// Ask Chromium to quit and wait for it a little; `Drop` kills it if it
    /// does not.
    fn close(&mut self) {
        self.next_id += 1;
        let msg = json!({ "id": self.next_id, "method": "Browser.close" });
        if let Some(mut pipe) = self.commands.take() {
            let mut bytes = serde_json::to_vec(&msg).expect("JSON");
            bytes.push(0);
            let _ = pipe.write_all(&bytes).and_then(|_| pipe.flush());
        }
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill Chromium and the processes it started (renderer, GPU, ...): they
    /// run in the process group it leads.
    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = self.child.kill();
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Cdp {
    fn drop(&mut self) {
        self.kill();
        let _ = self.child.wait();
    }
}

/// `file://` URL of an absolute path, with everything but unreserved
/// characters and `/` percent-encoded.
fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for &b in path.to_str().expect("a UTF-8 path").as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// Standard base64 (as in DevTools replies) to bytes.
fn base64_decode(s: &str) -> Vec<u8> {
    fn value(c: u8) -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", c as char),
        }
    }
    let digits: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | value(c) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// How much a screenshot shows.
#[derive(Debug)]
struct Ink {
    /// Share of pixels that differ noticeably from the most common colour.
    share: f64,
    /// Number of distinct colours.
    colours: usize,
}

/// A pixel differs noticeably when one of its channels is more than this far
/// from the most common colour's.
const NOTICEABLE: u8 = 40;
/// At least this share of the pixels must differ noticeably from the
/// background...
const MIN_SHARE: f64 = 0.01;
/// ...and the screenshot must hold at least this many distinct colours
/// (anti-aliased text alone gives dozens; an empty page gives one).
const MIN_COLOURS: usize = 8;

/// Decode a PNG and measure it. The page is "not blank" when at least
/// `MIN_SHARE` (1 %) of its pixels differ by more than `NOTICEABLE` in some
/// channel from the most common colour, and it has at least `MIN_COLOURS`
/// distinct colours.
fn ink(png: &[u8]) -> Ink {
    let img = image::load_from_memory_with_format(png, image::ImageFormat::Png)
        .unwrap_or_else(|e| panic!("the screenshot is not a PNG: {e}"))
        .to_rgba8();
    let mut counts: HashMap<[u8; 4], u64> = HashMap::new();
    for p in img.pixels() {
        *counts.entry(p.0).or_default() += 1;
    }
    let (&background, _) = counts
        .iter()
        .max_by_key(|(_, &n)| n)
        .expect("a non-empty image");
    let differing = img
        .pixels()
        .filter(|p| (0..4).any(|c| p.0[c].abs_diff(background[c]) > NOTICEABLE))
        .count();
    Ink {
        share: differing as f64 / (u64::from(img.width()) * u64::from(img.height())) as f64,
        colours: counts.len(),
    }
}

impl Ink {
    fn blank(&self) -> bool {
        self.share < MIN_SHARE || self.colours < MIN_COLOURS
    }
}

/// References in HTML text that would make a browser fetch something remote:
/// `src`/`href`/`data`/`poster` attributes of any tag but `<a>` whose value
/// starts with `http:`, `https:` or `//`, any `<script src=...>` (a report
/// needs no script files), CSS `url(...)` and `@import` of such addresses.
/// Namespace declarations such as `xmlns="http://www.w3.org/2000/svg"` are
/// not references.
fn remote_references(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let remote = |v: &str| {
        let v = v.trim_start_matches(['"', '\'', ' ']);
        v.starts_with("http:") || v.starts_with("https:") || v.starts_with("//")
    };
    let mut found = Vec::new();
    let mut rest = lower.as_str();
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..end];
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
            .collect();
        let attr_values = |attr: &str| {
            let mut values = Vec::new();
            let mut t = tag;
            while let Some(i) = t.find(attr) {
                let before = t[..i].chars().last();
                t = &t[i + attr.len()..];
                if matches!(before, Some(c) if c.is_whitespace() || c == ':') {
                    values.push(t.trim_start());
                }
            }
            values
        };
        let script_file = name == "script" && !attr_values("src=").is_empty();
        let fetches_remote = name != "a"
            && ["src=", "href=", "data=", "poster="]
                .iter()
                .any(|a| attr_values(a).into_iter().any(remote));
        if script_file || fetches_remote {
            found.push(format!("<{tag}>"));
        }
        rest = &rest[end..];
    }
    for pattern in ["url(", "@import"] {
        for (i, _) in lower.match_indices(pattern) {
            let after = &lower[i + pattern.len()..];
            let after = after.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
            let after = after.strip_prefix("url(").unwrap_or(after);
            if remote(after) {
                let snippet: String = lower[i..].chars().take(60).collect();
                found.push(snippet);
            }
        }
    }
    found
}

/// A broken page: an uncaught exception, a `console.error`, a missing image
/// and a remote image.
const BROKEN: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>broken</title></head>
<body>
<p>broken page</p>
<script>throw new Error("boom")</script>
<script>console.error("bad")</script>
<img src="missing.png" alt="missing">
<img src="http://example.invalid/remote.png" alt="remote">
</body></html>
"#;

const BLANK: &str = "<html><body></body></html>";

/// A valid self-contained page: inline CSS and an inline SVG chart with text
/// and coloured rectangles.
const VALID: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>valid</title>
<style>body { font-family: sans-serif; margin: 2em; } h1 { color: #234; }</style>
</head>
<body>
<h1>Ports in use</h1>
<p>Three bars and a caption, all inline.</p>
<svg xmlns="http://www.w3.org/2000/svg" width="800" height="400" viewBox="0 0 800 400">
  <rect x="0" y="0" width="800" height="400" fill="#f4f6fa"/>
  <rect x="60" y="200" width="160" height="180" fill="#d62728"/>
  <rect x="300" y="100" width="160" height="280" fill="#1f77b4"/>
  <rect x="540" y="40" width="160" height="340" fill="#2ca02c"/>
  <text x="400" y="30" text-anchor="middle" font-size="20" fill="#222">TIME_WAIT by second</text>
</svg>
</body></html>
"##;

fn fixture(dir: &Path, name: &str, html: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, html).expect("write a fixture page");
    p
}

/// Keep a screenshot where it can be looked at after a failure.
fn keep_screenshot(name: &str, png: &[u8]) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&p, png).expect("write the screenshot");
    p
}

#[test]
fn broken_page_is_reported() {
    if !have_browser("broken_page_is_reported") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = open_in_browser(&fixture(dir.path(), "broken.html", BROKEN));
    eprintln!("broken page: {:#?}", r.errors);
    let has = |needle: &str| r.errors.iter().any(|e| e.contains(needle));
    assert!(has("boom"), "the uncaught exception: {:#?}", r.errors);
    assert!(
        has("console.error: bad"),
        "the console error: {:#?}",
        r.errors
    );
    assert!(has("missing.png"), "the missing image: {:#?}", r.errors);
    assert_eq!(
        r.remote_requests,
        ["http://example.invalid/remote.png"],
        "the remote image"
    );
}

#[test]
fn blank_page_is_blank() {
    if !have_browser("blank_page_is_blank") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = open_in_browser(&fixture(dir.path(), "blank.html", BLANK));
    assert!(r.errors.is_empty(), "{:#?}", r.errors);
    assert!(r.remote_requests.is_empty(), "{:#?}", r.remote_requests);
    let ink = ink(&r.screenshot);
    eprintln!("blank page: {ink:?}");
    assert!(ink.blank(), "an empty page counted as not blank: {ink:?}");
}

#[test]
fn valid_page_is_clean_and_not_blank() {
    if !have_browser("valid_page_is_clean_and_not_blank") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = open_in_browser(&fixture(dir.path(), "valid.html", VALID));
    assert!(r.errors.is_empty(), "{:#?}", r.errors);
    assert!(r.remote_requests.is_empty(), "{:#?}", r.remote_requests);
    let ink = ink(&r.screenshot);
    eprintln!("valid page: {ink:?}");
    assert!(
        !ink.blank(),
        "the valid page counted as blank: {ink:?}; screenshot at {}",
        keep_screenshot("valid-page.png", &r.screenshot).display()
    );
    assert!(remote_references(VALID).is_empty());
}

#[test]
fn static_scan_finds_remote_references() {
    let page = r#"<html><head>
<script src="app.js"></script>
<link rel="stylesheet" href="https://cdn.example/x.css">
<style>body { background: url( "http://example.invalid/bg.png") }</style>
</head><body>
<a href="https://example.com/docs">docs</a>
<svg xmlns="http://www.w3.org/2000/svg"><image xlink:href="//example.invalid/i.png"/></svg>
<img src='http://example.invalid/a.png'>
</body></html>"#;
    let found = remote_references(page);
    assert_eq!(found.len(), 5, "{found:#?}");
    assert!(remote_references(VALID).is_empty());
    assert!(remote_references(BLANK).is_empty());
}

#[test]
fn report_html_opens_cleanly_in_chromium() {
    if !have_browser("report_html_opens_cleanly_in_chromium") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/api-no-pooling.toml");
    let out = portsim()
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(dir.path())
        .output()
        .expect("run portsim");
    assert!(
        out.status.success(),
        "portsim run failed ({}):\n{}",
        out.status,
        text(&out.stderr)
    );
    let report = dir.path().join("report.html");
    let listing: Vec<String> = std::fs::read_dir(dir.path())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        report.is_file(),
        "report.html was not written by `portsim run --out` (the directory holds {listing:?})"
    );

    let html = std::fs::read_to_string(&report).expect("report.html is UTF-8");
    let refs = remote_references(&html);
    assert!(
        refs.is_empty(),
        "report.html refers to remote resources: {refs:#?}"
    );

    let r = open_in_browser(&report);
    assert!(
        r.errors.is_empty(),
        "report.html has errors in Chromium: {:#?}",
        r.errors
    );
    assert!(
        r.remote_requests.is_empty(),
        "report.html made network requests: {:#?}",
        r.remote_requests
    );
    let ink = ink(&r.screenshot);
    assert!(
        !ink.blank(),
        "report.html renders blank: {ink:?} (rule: at least {MIN_SHARE} of pixels differ by more \
         than {NOTICEABLE} from the background, and at least {MIN_COLOURS} colours); screenshot at {}",
        keep_screenshot("report.png", &r.screenshot).display()
    );
}
