//! Hostile input, table driven, through the real local stack: every public route with bad input
//! answers the right 4xx with a JSON `{"error":{"code","message"}}` (or, for a browser asking for
//! HTML, a plain 4xx page), and afterwards the table holds exactly what it held before and nobody
//! received a message.

use hmac::{Hmac, Mac};
use integration_tests::worlds::stack::{TestStack, start_stack};
use messenger_sandbox as sb;
use sha2::Sha256;
use std::collections::BTreeSet;

const API_KEY: &str = "hostile-site-key";

/// One hostile request and what it must get.
struct Row {
    what: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    /// The JSON error code expected, or `None` for an HTML error page.
    code: Option<&'static str>,
}

fn row(
    what: &'static str,
    method: &'static str,
    path: impl Into<String>,
    headers: Vec<(&'static str, String)>,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: &'static str,
) -> Row {
    Row {
        what,
        method,
        path: path.into(),
        headers,
        body: body.into(),
        status,
        code: Some(code),
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn json_ct() -> (&'static str, String) {
    ("content-type", "application/json".into())
}

fn form_ct() -> (&'static str, String) {
    ("content-type", "application/x-www-form-urlencoded".into())
}

fn bearer(key: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {key}"))
}

/// A well-formed opt-in webhook envelope (compact JSON).
fn opt_in_body() -> String {
    serde_json::json!({
        "object": "page",
        "entry": [{"id": sb::DEFAULT_PAGE_ID, "time": 1, "messaging": [{
            "sender": {"id": "1"},
            "recipient": {"id": sb::DEFAULT_PAGE_ID},
            "timestamp": 1,
            "optin": {"type": "notification_messages", "payload": "hostile",
                      "notification_messages_token": "hostile-token",
                      "notification_messages_status": "RESUME_NOTIFICATIONS"}
        }]}]
    })
    .to_string()
}

/// A `signed_request` (`sig.payload`, base64url) over `payload`, signed with `secret`.
fn signed_request(secret: &str, payload: &serde_json::Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = b64.encode(payload.to_string());
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    mac.update(payload.as_bytes());
    format!("{}.{payload}", b64.encode(mac.finalize().into_bytes()))
}

fn form(signed: &str) -> String {
    format!(
        "signed_request={}",
        url::form_urlencoded::byte_serialize(signed.as_bytes()).collect::<String>()
    )
}

fn signed_request_rows(path: &'static str) -> Vec<Row> {
    let now = chrono::Utc::now().timestamp();
    let payload =
        serde_json::json!({"algorithm": "HMAC-SHA256", "issued_at": now, "user_id": "31415926535"});
    let wrong_secret = form(&signed_request("not-the-app-secret", &payload));
    let wrong_algorithm = form(&signed_request(
        sb::DEFAULT_APP_SECRET,
        &serde_json::json!({"algorithm": "HMAC-SHA1", "issued_at": now, "user_id": "31415926535"}),
    ));
    let no_user = form(&signed_request(
        sb::DEFAULT_APP_SECRET,
        &serde_json::json!({"algorithm": "HMAC-SHA256", "issued_at": now}),
    ));
    let valid = form(&signed_request(sb::DEFAULT_APP_SECRET, &payload));
    // Issue 10, "signed_request too lenient": correctly signed, yet not a callback to honour.
    let six_days_ago = now - 6 * 86_400;
    let stale = form(&signed_request(
        sb::DEFAULT_APP_SECRET,
        &serde_json::json!({"algorithm": "HMAC-SHA256", "issued_at": six_days_ago,
            "expires": six_days_ago + 3600, "user_id": "31415926535"}),
    ));
    let path_user = form(&signed_request(
        sb::DEFAULT_APP_SECRET,
        &serde_json::json!({"algorithm": "HMAC-SHA256", "issued_at": now, "user_id": "../../x#y"}),
    ));
    let sdk_shape = form(&signed_request(
        sb::DEFAULT_APP_SECRET,
        &serde_json::json!({"algorithm": "HMAC-SHA256", "code": "AQDx", "issued_at": now,
            "user_id": "31415926535"}),
    ));
    vec![
        row(
            "signed_request six days old and expired",
            "POST",
            path,
            vec![form_ct()],
            stale,
            400,
            "invalid_signed_request",
        ),
        row(
            "signed_request with a path-like user_id",
            "POST",
            path,
            vec![form_ct()],
            path_user,
            400,
            "invalid_signed_request",
        ),
        row(
            "signed_request of the JavaScript SDK (code)",
            "POST",
            path,
            vec![form_ct()],
            sdk_shape,
            400,
            "invalid_signed_request",
        ),
        row(
            "signed_request as JSON",
            "POST",
            path,
            vec![json_ct()],
            format!("{{\"signed_request\":\"{valid}\"}}"),
            415,
            "unsupported_media_type",
        ),
        row(
            "no content type",
            "POST",
            path,
            vec![],
            valid.clone(),
            415,
            "unsupported_media_type",
        ),
        row(
            "form without signed_request",
            "POST",
            path,
            vec![form_ct()],
            "other=1",
            400,
            "invalid_signed_request",
        ),
        row(
            "empty form",
            "POST",
            path,
            vec![form_ct()],
            "",
            400,
            "invalid_signed_request",
        ),
        row(
            "signed_request garbage",
            "POST",
            path,
            vec![form_ct()],
            "signed_request=garbage",
            400,
            "invalid_signed_request",
        ),
        row(
            "signed_request not base64",
            "POST",
            path,
            vec![form_ct()],
            "signed_request=%21%21.%21%21",
            400,
            "invalid_signed_request",
        ),
        row(
            "signed_request three parts",
            "POST",
            path,
            vec![form_ct()],
            "signed_request=a.b.c",
            400,
            "invalid_signed_request",
        ),
        row(
            "signed_request payload not JSON",
            "POST",
            path,
            vec![form_ct()],
            "signed_request=YWJj.YWJj",
            400,
            "invalid_signed_request",
        ),
        row(
            "signed_request wrong secret",
            "POST",
            path,
            vec![form_ct()],
            wrong_secret,
            400,
            "invalid_signed_request",
        ),
        row(
            "signed_request wrong algorithm",
            "POST",
            path,
            vec![form_ct()],
            wrong_algorithm,
            400,
            "invalid_signed_request",
        ),
        row(
            "signed_request without user_id",
            "POST",
            path,
            vec![form_ct()],
            no_user,
            400,
            "invalid_signed_request",
        ),
        row(
            "form body invalid UTF-8",
            "POST",
            path,
            vec![form_ct()],
            b"signed_request=\xff\xfe.\xc3\x28".to_vec(),
            400,
            "invalid_signed_request",
        ),
        row(
            "GET instead of POST",
            "GET",
            path,
            vec![],
            "",
            405,
            "method_not_allowed",
        ),
    ]
}

fn table(api_base_url: &str, site: &str, replay_state: &str, replay_cookie: &str) -> Vec<Row> {
    let _ = api_base_url;
    let body = opt_in_body();
    let good_sig = sign(sb::DEFAULT_APP_SECRET, body.as_bytes());
    let reserialised = match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(v) => match serde_json::to_string_pretty(&v) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        },
        Err(e) => panic!("{e}"),
    };
    let nested = "[".repeat(10_000);
    let invalid_utf8: Vec<u8> = b"{\"object\":\"page\",\"entry\":[\xff\xfe]}".to_vec();
    let huge = format!(
        "{{\"object\":\"page\",\"entry\":[],\"pad\":\"{}\"}}",
        "x".repeat(1024 * 1024 + 10)
    );
    let signed = |b: &[u8]| {
        vec![
            json_ct(),
            ("x-hub-signature-256", sign(sb::DEFAULT_APP_SECRET, b)),
        ]
    };
    let wh = "/webhooks/messenger";
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let host = site.trim_start_matches("http://");
    let mut rows = vec![
        // The webhook.
        row(
            "unsigned webhook",
            "POST",
            wh,
            vec![json_ct()],
            body.clone(),
            401,
            "invalid_signature",
        ),
        row(
            "webhook signed with another secret",
            "POST",
            wh,
            vec![
                json_ct(),
                ("x-hub-signature-256", sign("wrong-secret", body.as_bytes())),
            ],
            body.clone(),
            401,
            "invalid_signature",
        ),
        row(
            "signature over a re-serialised body",
            "POST",
            wh,
            vec![json_ct(), ("x-hub-signature-256", good_sig.clone())],
            reserialised,
            401,
            "invalid_signature",
        ),
        row(
            "signature not hex",
            "POST",
            wh,
            vec![json_ct(), ("x-hub-signature-256", "sha256=zz".into())],
            body.clone(),
            401,
            "invalid_signature",
        ),
        row(
            "sha1 signature",
            "POST",
            wh,
            vec![
                json_ct(),
                ("x-hub-signature-256", good_sig.replace("sha256=", "sha1=")),
            ],
            body.clone(),
            401,
            "invalid_signature",
        ),
        row(
            "truncated signature",
            "POST",
            wh,
            vec![
                json_ct(),
                (
                    "x-hub-signature-256",
                    good_sig[..good_sig.len() - 2].to_owned(),
                ),
            ],
            body.clone(),
            401,
            "invalid_signature",
        ),
        row(
            "empty signature",
            "POST",
            wh,
            vec![json_ct(), ("x-hub-signature-256", String::new())],
            body.clone(),
            401,
            "invalid_signature",
        ),
        row(
            "signed invalid UTF-8",
            "POST",
            wh,
            signed(&invalid_utf8),
            invalid_utf8.clone(),
            400,
            "malformed_webhook",
        ),
        row(
            "signed 10,000 nested arrays",
            "POST",
            wh,
            signed(nested.as_bytes()),
            nested.clone(),
            400,
            "malformed_webhook",
        ),
        row(
            "signed JSON that is not an envelope",
            "POST",
            wh,
            signed(b"[1,2,3]"),
            "[1,2,3]",
            400,
            "malformed_webhook",
        ),
        row(
            "signed empty body",
            "POST",
            wh,
            signed(b""),
            "",
            400,
            "malformed_webhook",
        ),
        row(
            "signed body over 1 MiB",
            "POST",
            wh,
            signed(huge.as_bytes()),
            huge.clone(),
            413,
            "body_too_large",
        ),
        row(
            "unsigned body over 1 MiB",
            "POST",
            wh,
            vec![json_ct()],
            huge.clone(),
            413,
            "body_too_large",
        ),
        row(
            "handshake without parameters",
            "GET",
            wh,
            vec![],
            "",
            403,
            "verification_failed",
        ),
        row(
            "handshake with a wrong verify token",
            "GET",
            format!("{wh}?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1"),
            vec![],
            "",
            403,
            "verification_failed",
        ),
        row(
            "handshake with a bad mode",
            "GET",
            format!(
                "{wh}?hub.mode=unsubscribe&hub.verify_token={}&hub.challenge=1",
                sb::DEFAULT_VERIFY_TOKEN
            ),
            vec![],
            "",
            403,
            "verification_failed",
        ),
        row(
            "handshake with a huge challenge",
            "GET",
            format!(
                "{wh}?hub.mode=subscribe&hub.verify_token={}&hub.challenge={}",
                sb::DEFAULT_VERIFY_TOKEN,
                "9".repeat(300)
            ),
            vec![],
            "",
            403,
            "verification_failed",
        ),
        row(
            "handshake with a bad escape",
            "GET",
            format!("{wh}?hub.mode=subscribe&hub.verify_token=%ZZ&hub.challenge=1"),
            vec![],
            "",
            403,
            "verification_failed",
        ),
        row(
            "DELETE on the webhook",
            "DELETE",
            wh,
            vec![],
            "",
            405,
            "method_not_allowed",
        ),
        // The login redirect flow.
        row(
            "login start without return_to",
            "GET",
            "/login/start",
            vec![],
            "",
            400,
            "invalid_return_to",
        ),
        row(
            "login start with a bad escape",
            "GET",
            "/login/start?return_to=%ZZ",
            vec![],
            "",
            400,
            "invalid_return_to",
        ),
        row(
            "login start with an empty return_to",
            "GET",
            "/login/start?return_to=",
            vec![],
            "",
            400,
            "invalid_return_to",
        ),
        row(
            "return_to protocol-relative",
            "GET",
            format!("/login/start?return_to={}", enc("//evil.example/")),
            vec![],
            "",
            400,
            "invalid_return_to",
        ),
        row(
            "return_to a lookalike host",
            "GET",
            format!(
                "/login/start?return_to={}",
                enc(&format!("{site}.evil.example/"))
            ),
            vec![],
            "",
            400,
            "invalid_return_to",
        ),
        row(
            "return_to allowed.example.evil",
            "GET",
            format!(
                "/login/start?return_to={}",
                enc("https://allowed.example.evil/")
            ),
            vec![],
            "",
            400,
            "invalid_return_to",
        ),
        row(
            "return_to javascript:",
            "GET",
            format!("/login/start?return_to={}", enc("javascript:alert(1)")),
            vec![],
            "",
            400,
            "invalid_return_to",
        ),
        row(
            "return_to with userinfo",
            "GET",
            format!(
                "/login/start?return_to={}",
                enc("https://user@evil.example/")
            ),
            vec![],
            "",
            400,
            "invalid_return_to",
        ),
        row(
            "return_to allowed host as userinfo",
            "GET",
            format!(
                "/login/start?return_to={}",
                enc(&format!("http://{host}@evil.example/"))
            ),
            vec![],
            "",
            400,
            "invalid_return_to",
        ),
        row(
            "return_to other scheme same host",
            "GET",
            format!(
                "/login/start?return_to={}",
                enc(&format!("https://{host}/"))
            ),
            vec![],
            "",
            400,
            "invalid_return_to",
        ),
        row(
            "return_to data:",
            "GET",
            format!(
                "/login/start?return_to={}",
                enc("data:text/html,<script>alert(1)</script>")
            ),
            vec![],
            "",
            400,
            "invalid_return_to",
        ),
        row(
            "return_to backslash trick",
            "GET",
            format!("/login/start?return_to={}", enc("/\\evil.example")),
            vec![],
            "",
            400,
            "invalid_return_to",
        ),
        row(
            "login callback without state",
            "GET",
            "/login/callback",
            vec![],
            "",
            400,
            "missing_state",
        ),
        row(
            "login callback with a bad escape",
            "GET",
            "/login/callback?state=%ZZ&code=1",
            vec![],
            "",
            400,
            "state_mismatch",
        ),
        row(
            "login callback with a huge state",
            "GET",
            format!("/login/callback?state={}&code=1", "a".repeat(3000)),
            vec![],
            "",
            400,
            "missing_state",
        ),
        row(
            "login callback with a random state, no cookie",
            "GET",
            format!("/login/callback?state={}&code=1", "ab".repeat(32)),
            vec![],
            "",
            400,
            "state_mismatch",
        ),
        row(
            "login callback with a forged cookie",
            "GET",
            format!("/login/callback?state={}&code=1", "ab".repeat(32)),
            vec![("cookie", "lcm_login_state=forged".into())],
            "",
            400,
            "state_mismatch",
        ),
        row(
            "replayed OAuth state",
            "GET",
            format!("/login/callback?state={replay_state}&code=1"),
            vec![("cookie", replay_cookie.to_owned())],
            "",
            400,
            "state_unknown",
        ),
        row(
            "POST on the login start",
            "POST",
            "/login/start",
            vec![],
            "",
            405,
            "method_not_allowed",
        ),
        Row {
            what: "browser on a replayed callback gets an HTML 400",
            method: "GET",
            path: format!("/login/callback?state={replay_state}&code=1"),
            headers: vec![
                ("cookie", replay_cookie.to_owned()),
                ("accept", "text/html,*/*".into()),
            ],
            body: Vec::new(),
            status: 400,
            code: None,
        },
        // The website-backend API.
        row(
            "API without a key",
            "POST",
            "/v1/logins",
            vec![json_ct()],
            "{\"user_access_token\":\"x\"}",
            401,
            "unauthorized",
        ),
        row(
            "API with a wrong key",
            "POST",
            "/v1/logins",
            vec![json_ct(), bearer("wrong-key")],
            "{\"user_access_token\":\"x\"}",
            401,
            "unauthorized",
        ),
        row(
            "API with Basic auth",
            "GET",
            "/v1/users/1",
            vec![("authorization", format!("Basic {API_KEY}"))],
            "",
            401,
            "unauthorized",
        ),
        row(
            "API key without scheme",
            "GET",
            "/v1/users/1",
            vec![("authorization", API_KEY.into())],
            "",
            401,
            "unauthorized",
        ),
        row(
            "API opt-out without a key",
            "POST",
            "/v1/users/1/opt-out",
            vec![json_ct()],
            "{}",
            401,
            "unauthorized",
        ),
        row(
            "API unknown route without a key",
            "GET",
            "/v1/admin",
            vec![],
            "",
            401,
            "unauthorized",
        ),
        row(
            "API unknown route",
            "GET",
            "/v1/admin",
            vec![bearer(API_KEY)],
            "",
            404,
            "not_found",
        ),
        row(
            "API wrong method",
            "GET",
            "/v1/logins",
            vec![bearer(API_KEY)],
            "",
            405,
            "method_not_allowed",
        ),
        row(
            "API text/plain",
            "POST",
            "/v1/logins",
            vec![("content-type", "text/plain".into()), bearer(API_KEY)],
            "{\"user_access_token\":\"x\"}",
            415,
            "unsupported_media_type",
        ),
        row(
            "API form",
            "POST",
            "/v1/logins",
            vec![form_ct(), bearer(API_KEY)],
            "user_access_token=x",
            415,
            "unsupported_media_type",
        ),
        row(
            "API no content type",
            "POST",
            "/v1/logins",
            vec![bearer(API_KEY)],
            "{\"user_access_token\":\"x\"}",
            415,
            "unsupported_media_type",
        ),
        row(
            "API invalid JSON",
            "POST",
            "/v1/logins",
            vec![json_ct(), bearer(API_KEY)],
            "{",
            400,
            "invalid_json",
        ),
        row(
            "API invalid UTF-8",
            "POST",
            "/v1/logins",
            vec![json_ct(), bearer(API_KEY)],
            b"{\"user_access_token\":\"\xff\xfe\"}".to_vec(),
            400,
            "invalid_json",
        ),
        row(
            "API 10,000 nested arrays",
            "POST",
            "/v1/logins",
            vec![json_ct(), bearer(API_KEY)],
            nested.clone(),
            400,
            "invalid_request",
        ),
        row(
            "API body over 16 KiB",
            "POST",
            "/v1/logins",
            vec![json_ct(), bearer(API_KEY)],
            format!("{{\"user_access_token\":\"{}\"}}", "x".repeat(17 * 1024)),
            413,
            "body_too_large",
        ),
        row(
            "API body over 1 MiB",
            "POST",
            "/v1/logins",
            vec![json_ct(), bearer(API_KEY)],
            huge.clone(),
            413,
            "body_too_large",
        ),
        row(
            "API unknown field",
            "POST",
            "/v1/logins",
            vec![json_ct(), bearer(API_KEY)],
            "{\"user_access_token\":\"x\",\"admin\":true}",
            400,
            "invalid_request",
        ),
        row(
            "API token of the wrong type",
            "POST",
            "/v1/logins",
            vec![json_ct(), bearer(API_KEY)],
            "{\"user_access_token\":42}",
            400,
            "invalid_request",
        ),
        row(
            "API empty token",
            "POST",
            "/v1/logins",
            vec![json_ct(), bearer(API_KEY)],
            "{\"user_access_token\":\"  \"}",
            400,
            "invalid_request",
        ),
        row(
            "API token Facebook does not know",
            "POST",
            "/v1/logins",
            vec![json_ct(), bearer(API_KEY)],
            "{\"user_access_token\":\"EAAnot-a-token\"}",
            400,
            "invalid_user_token",
        ),
        // The Facebook callbacks' status page.
        row(
            "deletion status without code",
            "GET",
            "/facebook/data-deletion/status",
            vec![],
            "",
            400,
            "invalid_code",
        ),
        row(
            "deletion status with a bad escape",
            "GET",
            "/facebook/data-deletion/status?code=%ZZ",
            vec![],
            "",
            400,
            "invalid_code",
        ),
        row(
            "deletion status with markup",
            "GET",
            format!("/facebook/data-deletion/status?code={}", enc("<script>")),
            vec![],
            "",
            400,
            "invalid_code",
        ),
        row(
            "deletion status unknown code",
            "GET",
            "/facebook/data-deletion/status?code=abc123",
            vec![("accept", "application/json".into())],
            "",
            404,
            "not_found",
        ),
        // Unknown routes and methods.
        row(
            "unknown route",
            "GET",
            "/admin",
            vec![],
            "",
            404,
            "not_found",
        ),
        row(
            "unknown route with traversal",
            "GET",
            "/webhooks/../admin/%2e%2e/etc/passwd",
            vec![],
            "",
            404,
            "not_found",
        ),
        row(
            "POST on healthz",
            "POST",
            "/healthz",
            vec![json_ct()],
            "{}",
            405,
            "method_not_allowed",
        ),
        row(
            "PUT on openapi.json",
            "PUT",
            "/openapi.json",
            vec![],
            "",
            405,
            "method_not_allowed",
        ),
    ];
    rows.extend(signed_request_rows("/facebook/deauthorize"));
    rows.extend(signed_request_rows("/facebook/data-deletion"));
    rows.extend(follow_up_rows());
    rows
}

/// `POST /v1/users/{asid}/messages` and `GET …/messages/{id}` (issue 12 §2): each refusal before
/// anything is written. (An idempotency mismatch needs an accepted request first: the http-api's
/// `messages` tests cover it, asserting nothing more is written.)
fn follow_up_rows() -> Vec<Row> {
    let path = "/v1/users/1/messages";
    let auth = || vec![json_ct(), bearer(API_KEY)];
    let reply = r#"{"content_type":"text","title":"t","payload":"p"}"#;
    let fourteen = format!(
        r#"{{"text":"hi","quick_replies":[{}]}}"#,
        vec![reply; 14].join(",")
    );
    let long = serde_json::json!({ "text": "x".repeat(2000) }).to_string();
    let mut key_too_long = auth();
    key_too_long.push(("idempotency-key", "k".repeat(256)));
    vec![
        row(
            "follow-up without a key",
            "POST",
            path,
            vec![json_ct()],
            r#"{"text":"hi"}"#,
            401,
            "unauthorized",
        ),
        row(
            "follow-up with a wrong key",
            "POST",
            path,
            vec![json_ct(), bearer("wrong-key")],
            r#"{"text":"hi"}"#,
            401,
            "unauthorized",
        ),
        row(
            "follow-up bad JSON",
            "POST",
            path,
            auth(),
            "{\"text\":",
            400,
            "invalid_json",
        ),
        row(
            "follow-up of 2000 characters",
            "POST",
            path,
            auth(),
            long,
            400,
            "invalid_message",
        ),
        row(
            "follow-up with 14 quick replies",
            "POST",
            path,
            auth(),
            fourteen,
            400,
            "invalid_message",
        ),
        row(
            "follow-up with an unknown field",
            "POST",
            path,
            auth(),
            r#"{"text":"hi","tag":"HUMAN_AGENT"}"#,
            400,
            "invalid_request",
        ),
        row(
            "follow-up with an overlong Idempotency-Key",
            "POST",
            path,
            key_too_long,
            r#"{"text":"hi"}"#,
            400,
            "invalid_idempotency_key",
        ),
        row(
            "follow-up to an unknown asid",
            "POST",
            path,
            auth(),
            r#"{"text":"hi"}"#,
            404,
            "unknown_person",
        ),
        row(
            "follow-up to a malformed asid",
            "POST",
            "/v1/users/abc/messages",
            auth(),
            r#"{"text":"hi"}"#,
            400,
            "invalid_asid",
        ),
        row(
            "follow-up state of an unknown id",
            "GET",
            "/v1/users/1/messages/fu_00000000000000000000000000000000",
            vec![bearer(API_KEY)],
            "",
            404,
            "not_found",
        ),
        row(
            "follow-up state without a key",
            "GET",
            "/v1/users/1/messages/fu_00000000000000000000000000000000",
            vec![],
            "",
            401,
            "unauthorized",
        ),
    ]
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Every item of the table, each as its sorted `name=value` text.
async fn snapshot(s: &TestStack) -> BTreeSet<String> {
    let out = match aws_sdk_dynamodb::Client::new(&s.sdk)
        .scan()
        .table_name(&s.local.provisioned.table_name)
        .send()
        .await
    {
        Ok(o) => o,
        Err(e) => panic!("scan: {e}"),
    };
    assert!(
        out.last_evaluated_key().is_none(),
        "one page is enough here"
    );
    out.items()
        .iter()
        .map(|item| {
            let mut fields: Vec<String> = item.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            fields.sort();
            fields.join(",")
        })
        .collect()
}

/// A real login start, then a callback that consumes the state: the callback URL's state and the
/// cookie, for a replay.
async fn consumed_state(s: &TestStack) -> (String, String) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let start = match client
        .get(format!(
            "{}/login/start?return_to={}",
            s.local.api_base_url,
            encode(&format!("{}/done", s.local.site_base_url))
        ))
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => panic!("start: {e}"),
    };
    assert_eq!(start.status(), 302);
    let location = start.headers()["location"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    let cookie = start.headers()["set-cookie"]
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    let dialog = match url::Url::parse(&location) {
        Ok(u) => u,
        Err(e) => panic!("{location}: {e}"),
    };
    let state = dialog
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    assert_eq!(state.len(), 64);
    // The person cancels: the state is consumed and the browser goes back.
    let back = match client
        .get(format!(
            "{}/login/callback?state={state}&error=access_denied",
            s.local.api_base_url
        ))
        .header("cookie", &cookie)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => panic!("callback: {e}"),
    };
    assert_eq!(back.status(), 302);
    (state, cookie)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_public_route_refuses_hostile_input_and_writes_nothing() {
    let s = start_stack(|mut settings| {
        settings.secrets.api_keys = vec![API_KEY.into()];
        settings
    })
    .await;
    // Something in the table, so "unchanged" is not trivially "empty".
    let login_id = s.opt_in().await;
    s.wait_for_state(&login_id, shared::domain::opt_in::State::Sent)
        .await;
    let (replay_state, replay_cookie) = consumed_state(&s).await;
    let inbox_before = s.sandbox.inbox();
    assert_eq!(inbox_before.len(), 1);
    let before = snapshot(&s).await;
    assert!(!before.is_empty());

    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let rows = table(
        &s.local.api_base_url,
        &s.local.site_base_url,
        &replay_state,
        &replay_cookie,
    );
    let secrets = [
        sb::DEFAULT_APP_SECRET,
        sb::DEFAULT_PAGE_ACCESS_TOKEN,
        sb::DEFAULT_CLIENT_TOKEN,
        sb::DEFAULT_VERIFY_TOKEN,
        API_KEY,
    ];
    let mut failures = Vec::new();
    for r in &rows {
        let method = match reqwest::Method::from_bytes(r.method.as_bytes()) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        let mut request = client
            .request(method, format!("{}{}", s.local.api_base_url, r.path))
            .body(r.body.clone());
        for (name, value) in &r.headers {
            request = request.header(*name, value);
        }
        let response = match request.send().await {
            Ok(resp) => resp,
            Err(e) => {
                failures.push(format!("{}: no answer: {e}", r.what));
                continue;
            }
        };
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.unwrap_or_default();
        if status != r.status {
            failures.push(format!(
                "{}: status {status}, expected {} ({text:.300})",
                r.what, r.status
            ));
            continue;
        }
        for secret in secrets {
            if text.contains(secret) {
                failures.push(format!("{}: the answer contains a secret", r.what));
            }
        }
        if text.contains("panicked") || text.contains("RUST_BACKTRACE") || text.contains(".rs:") {
            failures.push(format!("{}: the answer looks like a stack trace", r.what));
        }
        match r.code {
            Some(code) => {
                let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let ok = content_type.starts_with("application/json")
                    && json["error"]["code"] == code
                    && json["error"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty())
                    && json.as_object().is_some_and(|o| o.len() == 1);
                if !ok {
                    failures.push(format!(
                        "{}: expected error {code}, got {content_type} {text:.300}",
                        r.what
                    ));
                }
            }
            None => {
                if !content_type.starts_with("text/html") || !text.contains("<html") {
                    failures.push(format!(
                        "{}: expected an HTML page, got {content_type}",
                        r.what
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );

    let after = snapshot(&s).await;
    let added: Vec<_> = after.difference(&before).collect();
    let removed: Vec<_> = before.difference(&after).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "the table changed: added {added:?}, removed {removed:?}"
    );
    // Nobody received anything beyond the one message sent before the table.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let inbox_after = s.sandbox.inbox();
    assert_eq!(inbox_after.len(), inbox_before.len(), "{inbox_after:?}");
    s.stop().await;
}
