//! Just enough of the Chrome DevTools Protocol to drive a headless Chromium in a smoke test:
//! start the browser on a free port, open a page, evaluate JavaScript, and click elements with
//! real mouse events. A minimal WebSocket client (RFC 6455 text frames) over `std::net`, so no
//! extra dependency; blocking by design (run it with `tokio::task::spawn_blocking`).

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `chromium` package installs the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

pub type CdpResult<T> = Result<T, String>;

/// A running headless Chromium, killed (by its own PID) and its profile removed on drop.
pub struct Chromium {
    child: Child,
    profile: PathBuf,
    ws: WebSocket,
    next_id: u64,
    session: Option<String>,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Chromium {
    /// Whether the browser is installed.
    pub fn available() -> bool {
        Path::new(CHROMIUM).exists()
    }

    /// Start Chromium headless with remote debugging on a free 127.0.0.1 port and attach to a new
    /// blank page.
    pub fn launch() -> CdpResult<Self> {
        let profile = std::env::temp_dir().join(format!("chromium-{}", uuid::Uuid::new_v4()));
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--password-store=basic",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {CHROMIUM}: {e}"))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let ws_url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("Chromium did not print its DevTools URL within 30 s".into());
            }
        };
        let ws = WebSocket::connect(&ws_url)?;
        let mut browser = Self {
            child,
            profile,
            ws,
            next_id: 0,
            session: None,
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}))?;
        let target_id = target["targetId"].as_str().ok_or("no targetId")?.to_owned();
        let attached = browser.call(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        )?;
        browser.session = Some(
            attached["sessionId"]
                .as_str()
                .ok_or("no sessionId")?
                .to_owned(),
        );
        browser.call("Page.enable", json!({}))?;
        browser.call("Runtime.enable", json!({}))?;
        Ok(browser)
    }

    /// Send one command (to the attached page once there is one) and wait for its result.
    pub fn call(&mut self, method: &str, params: Value) -> CdpResult<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            message["sessionId"] = json!(s);
        }
        self.ws.send_text(&message.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if Instant::now() > deadline {
                return Err(format!("{method}: no answer within 30 s"));
            }
            let text = self.ws.read_text()?;
            let Ok(value) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if value["id"] == json!(id) {
                if let Some(error) = value.get("error") {
                    return Err(format!("{method}: {error}"));
                }
                return Ok(value["result"].clone());
            }
        }
    }

    pub fn navigate(&mut self, url: &str) -> CdpResult<()> {
        let r = self.call("Page.navigate", json!({"url": url}))?;
        match r.get("errorText") {
            Some(e) => Err(format!("navigation to {url} failed: {e}")),
            None => Ok(()),
        }
    }

    /// Evaluate `expression` in the page; its JSON value.
    pub fn eval(&mut self, expression: &str) -> CdpResult<Value> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(format!("{expression}: {e}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Poll `expression` until it is truthy (navigations in between are fine).
    pub fn wait_for(&mut self, expression: &str, timeout: Duration) -> CdpResult<Value> {
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            // During a navigation the context may be gone for a moment.
            if let Ok(v) = self.eval(expression) {
                let truthy = !matches!(v, Value::Null | Value::Bool(false))
                    && v != json!("")
                    && v != json!(0);
                if truthy {
                    return Ok(v);
                }
                last = v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let href = self.eval("location.href").unwrap_or(Value::Null);
        Err(format!(
            "timed out waiting for {expression} (last value {last}, at {href})"
        ))
    }

    /// Click the element matching `selector` with a real left mouse click at its centre.
    pub fn click(&mut self, selector: &str) -> CdpResult<()> {
        let selector_js = serde_json::to_string(selector).map_err(|e| e.to_string())?;
        let rect = self.wait_for(
            &format!(
                "(() => {{ const e = document.querySelector({selector_js}); if (!e) return null; \
                 e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
                 return {{x: r.left + r.width / 2, y: r.top + r.height / 2}}; }})()"
            ),
            Duration::from_secs(15),
        )?;
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": rect["x"], "y": rect["y"], "button": "left", "clickCount": 1}),
            )?;
        }
        Ok(())
    }

    /// Focus `selector`, select its text and type `text` over it.
    pub fn type_into(&mut self, selector: &str, text: &str) -> CdpResult<()> {
        let selector_js = serde_json::to_string(selector).map_err(|e| e.to_string())?;
        self.wait_for(
            &format!(
                "(() => {{ const e = document.querySelector({selector_js}); if (!e) return false; \
                 e.focus(); e.select(); return true; }})()"
            ),
            Duration::from_secs(15),
        )?;
        self.call("Input.insertText", json!({"text": text}))?;
        Ok(())
    }
}

/// A WebSocket client connection (text frames only; pings answered).
struct WebSocket {
    stream: TcpStream,
}

impl WebSocket {
    fn connect(url: &str) -> CdpResult<Self> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("not a ws:// URL: {url}"))?;
        let (host, path) = rest.split_once('/').ok_or("no path in the DevTools URL")?;
        let mut stream = TcpStream::connect(host).map_err(|e| format!("connect {host}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let key = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes())
        };
        let request = format!(
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).map_err(|e| e.to_string())?;
            head.push(byte[0]);
            if head.len() > 8192 {
                return Err("handshake answer too long".into());
            }
        }
        let head = String::from_utf8_lossy(&head);
        if !head.starts_with("HTTP/1.1 101") {
            return Err(format!("WebSocket handshake refused: {head}"));
        }
        Ok(Self { stream })
    }

    fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> CdpResult<()> {
        let mut frame = vec![0x80 | opcode];
        let len = payload.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len <= usize::from(u16::MAX) {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask: [u8; 4] = uuid::Uuid::new_v4().as_bytes()[..4]
            .try_into()
            .map_err(|_| "mask")?;
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).map_err(|e| e.to_string())
    }

    fn send_text(&mut self, text: &str) -> CdpResult<()> {
        self.send_frame(0x1, text.as_bytes())
    }

    /// The next complete text message.
    fn read_text(&mut self) -> CdpResult<String> {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.stream
                .read_exact(&mut head)
                .map_err(|e| format!("WebSocket read: {e}"))?;
            let fin = head[0] & 0x80 != 0;
            let opcode = head[0] & 0x0f;
            let masked = head[1] & 0x80 != 0;
            let mut len = u64::from(head[1] & 0x7f);
            if len == 126 {
                let mut b = [0u8; 2];
                self.stream.read_exact(&mut b).map_err(|e| e.to_string())?;
                len = u64::from(u16::from_be_bytes(b));
            } else if len == 127 {
                let mut b = [0u8; 8];
                self.stream.read_exact(&mut b).map_err(|e| e.to_string())?;
                len = u64::from_be_bytes(b);
            }
            let mut mask = [0u8; 4];
            if masked {
                self.stream
                    .read_exact(&mut mask)
                    .map_err(|e| e.to_string())?;
            }
            let len = usize::try_from(len).map_err(|_| "frame too large")?;
            let mut payload = vec![0u8; len];
            self.stream
                .read_exact(&mut payload)
                .map_err(|e| e.to_string())?;
            if masked {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= mask[i % 4];
                }
            }
            match opcode {
                0x0..=0x2 => {
                    message.extend_from_slice(&payload);
                    if fin {
                        return String::from_utf8(message).map_err(|e| e.to_string());
                    }
                }
                0x8 => return Err("the browser closed the DevTools connection".into()),
                0x9 => self.send_frame(0xA, &payload)?,
                _ => {}
            }
        }
    }
}
