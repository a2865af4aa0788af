//! A tiny browser for end-to-end tests: follows redirects one hop at a time (so every hop can be
//! looked at), keeps cookies per host like a browser (host-only, path prefix, `Max-Age`, `Secure`
//! only on https or loopback), drops URL fragments, and submits forms.

use reqwest::Url;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub host: String,
    pub name: String,
    pub value: String,
    pub path: String,
    pub secure: bool,
    pub http_only: bool,
    pub same_site: Option<String>,
}

/// The page a navigation ended on.
#[derive(Debug, Clone)]
pub struct Page {
    pub url: Url,
    pub status: u16,
    pub body: String,
    /// Every URL requested, in order (the first is the one asked for).
    pub hops: Vec<Url>,
    /// The `Set-Cookie` headers seen on the way, in order.
    pub set_cookies: Vec<String>,
}

impl Page {
    pub fn query(&self, name: &str) -> Option<String> {
        self.url
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

pub struct Browser {
    http: reqwest::Client,
    jar: Mutex<Vec<Cookie>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client"),
            jar: Mutex::new(Vec::new()),
        }
    }

    pub fn cookies(&self) -> Vec<Cookie> {
        self.jar.lock().unwrap().clone()
    }

    fn cookie_header(&self, url: &Url) -> Option<String> {
        let host = url.host_str()?;
        let secure_ok = url.scheme() == "https" || is_loopback(url);
        let pairs: Vec<String> = self
            .jar
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.host == host && url.path().starts_with(&c.path))
            .filter(|c| !c.secure || secure_ok)
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn store(&self, url: &Url, header: &str) {
        let Some(host) = url.host_str() else { return };
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
            return;
        };
        let mut cookie = Cookie {
            host: host.to_owned(),
            name: name.trim().to_owned(),
            value: value.trim().to_owned(),
            path: "/".to_owned(),
            secure: false,
            http_only: false,
            same_site: None,
        };
        let mut delete = false;
        for attribute in parts {
            let (k, v) = attribute
                .trim()
                .split_once('=')
                .unwrap_or((attribute.trim(), ""));
            match k.to_ascii_lowercase().as_str() {
                "path" => cookie.path = v.to_owned(),
                "max-age" => delete = v.parse::<i64>().is_ok_and(|n| n <= 0),
                "secure" => cookie.secure = true,
                "httponly" => cookie.http_only = true,
                "samesite" => cookie.same_site = Some(v.to_owned()),
                _ => {}
            }
        }
        if cookie.secure && !(url.scheme() == "https" || is_loopback(url)) {
            return;
        }
        let mut jar = self.jar.lock().unwrap();
        jar.retain(|c| !(c.host == cookie.host && c.name == cookie.name && c.path == cookie.path));
        if !delete {
            jar.push(cookie);
        }
    }

    async fn request(
        &self,
        method: reqwest::Method,
        url: Url,
        form: Option<&[(String, String)]>,
        page: &mut Page,
    ) -> reqwest::Response {
        let mut url = url;
        url.set_fragment(None);
        page.hops.push(url.clone());
        let mut request = self.http.request(method, url.clone());
        if let Some(cookie) = self.cookie_header(&url) {
            request = request.header("cookie", cookie);
        }
        request = request.header("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
        if let Some(fields) = form {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish();
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let response = request.send().await.expect("request sent");
        for v in response.headers().get_all("set-cookie") {
            if let Ok(v) = v.to_str() {
                page.set_cookies.push(v.to_owned());
                self.store(&url, v);
            }
        }
        page.url = url;
        response
    }

    /// Navigate to `url`, following redirects (at most 10).
    pub async fn get(&self, url: &str) -> Page {
        self.navigate(reqwest::Method::GET, Url::parse(url).expect("URL"), None)
            .await
    }

    /// Submit a form (`application/x-www-form-urlencoded`), following redirects.
    pub async fn post_form(&self, url: &str, fields: &[(String, String)]) -> Page {
        self.navigate(
            reqwest::Method::POST,
            Url::parse(url).expect("URL"),
            Some(fields),
        )
        .await
    }

    async fn navigate(
        &self,
        method: reqwest::Method,
        url: Url,
        form: Option<&[(String, String)]>,
    ) -> Page {
        let mut page = Page {
            url: url.clone(),
            status: 0,
            body: String::new(),
            hops: Vec::new(),
            set_cookies: Vec::new(),
        };
        let mut response = self.request(method, url, form, &mut page).await;
        for _ in 0..10 {
            if !response.status().is_redirection() {
                break;
            }
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .expect("a redirect has a Location")
                .to_owned();
            let next = page.url.join(&location).expect("Location is a URL");
            // A 302/303 after a POST becomes a GET, as browsers do.
            response = self
                .request(reqwest::Method::GET, next, None, &mut page)
                .await;
        }
        page.status = response.status().as_u16();
        page.body = response.text().await.unwrap_or_default();
        page
    }
}

/// Undo the HTML escapes the pages use.
pub fn unescape_html(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of `attribute` in the first tag that contains `marker` (e.g. `id="allow"`).
pub fn attribute_of(html: &str, marker: &str, attribute: &str) -> Option<String> {
    let at = html.find(marker)?;
    let start = html[..=at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let needle = format!("{attribute}=\"");
    let from = tag.find(&needle)? + needle.len();
    let len = tag[from..].find('"')?;
    Some(unescape_html(&tag[from..from + len]))
}

/// The hidden inputs of the page's form, as (name, value).
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<input type=\"hidden\"") {
        let tag_end = rest[i..].find('>').map_or(rest.len(), |e| i + e);
        let tag = &rest[i..tag_end];
        let get = |attr: &str| {
            let needle = format!("{attr}=\"");
            tag.find(&needle).and_then(|f| {
                let from = f + needle.len();
                tag[from..]
                    .find('"')
                    .map(|l| unescape_html(&tag[from..from + l]))
            })
        };
        if let (Some(n), Some(v)) = (get("name"), get("value")) {
            fields.push((n, v));
        }
        rest = &rest[tag_end..];
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_attributes_are_read() {
        let html = r#"<form action="/v25.0/dialog/oauth"><input type="hidden" name="state" value="a&amp;b"><input type="hidden" name="x" value="&quot;q&quot;"><a id="go" class="fb" href="http://h/p?a=1&amp;b=2">Go</a>"#;
        assert_eq!(
            hidden_fields(html),
            vec![("state".into(), "a&b".into()), ("x".into(), "\"q\"".into())]
        );
        assert_eq!(
            attribute_of(html, "id=\"go\"", "href").as_deref(),
            Some("http://h/p?a=1&b=2")
        );
        assert_eq!(
            attribute_of(html, "<form", "action").as_deref(),
            Some("/v25.0/dialog/oauth")
        );
    }

    #[test]
    fn cookies_follow_host_path_secure_and_max_age() {
        let b = Browser::new();
        let api = Url::parse("http://127.0.0.1:3000/login/start").unwrap();
        b.store(
            &api,
            "s=1; Path=/login/callback; Max-Age=600; HttpOnly; Secure; SameSite=Lax",
        );
        let cb = Url::parse("http://127.0.0.1:3000/login/callback?x").unwrap();
        assert_eq!(b.cookie_header(&cb).as_deref(), Some("s=1"));
        assert_eq!(b.cookie_header(&api), None, "path");
        let remote = Url::parse("http://example.com/login/start").unwrap();
        b.store(&remote, "t=1; Secure");
        assert_eq!(b.cookies().len(), 1, "Secure over plain http refused");
        b.store(&api, "s=; Path=/login/callback; Max-Age=0");
        assert!(b.cookies().is_empty());
    }
}
