//! Messages to a PSID (`recipient.id`): Meta's standard window after the person's last message
//! (`10`/`2018278` after it), the `HUMAN_AGENT` tag's longer one, and a reply reopening it.

use std::time::Duration;

use messenger_sandbox::{
    DEFAULT_APP_SECRET, DEFAULT_PAGE_ACCESS_TOKEN, DEFAULT_PAGE_ID, RunningSandbox, SandboxConfig,
};
use serde_json::{Value, json};

/// The person behind `login_id` writes to the Page; their PSID.
async fn person_writes(sb: &RunningSandbox, login_id: &str) -> String {
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/_sandbox/message", sb.base_url))
        .json(&json!({"login_id": login_id, "text": "a question"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["psid"].as_str().expect("the PSID").to_owned()
}

async fn send_to_psid(sb: &RunningSandbox, psid: &str, extra: Value) -> (u16, Value) {
    let proof =
        shared::facebook::crypto::appsecret_proof(DEFAULT_APP_SECRET, DEFAULT_PAGE_ACCESS_TOKEN);
    let url = reqwest::Url::parse_with_params(
        &format!("{}/v25.0/{DEFAULT_PAGE_ID}/messages", sb.base_url),
        &[
            ("access_token", DEFAULT_PAGE_ACCESS_TOKEN),
            ("appsecret_proof", proof.as_str()),
        ],
    )
    .unwrap();
    let mut body = json!({
        "recipient": {"id": psid},
        "messaging_type": "RESPONSE",
        "message": {"text": "a follow-up"},
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let response = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn psid_sends_follow_meta_s_window_and_the_human_agent_tag() {
    let config = SandboxConfig {
        // Nobody listens there: the person's message still counts (Meta received it).
        webhook_url: Some("http://127.0.0.1:9/webhooks/messenger".into()),
        reply_window_ms: 600,
        human_agent_window_ms: 2_000,
        ..SandboxConfig::default()
    };
    let sb = messenger_sandbox::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // Nobody wrote from this PSID: Graph does not know the person.
    let (status, body) = send_to_psid(&sb, "1234", json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(
        (&body["error"]["code"], &body["error"]["error_subcode"]),
        (&json!(100), &json!(2_018_001))
    );

    let psid = person_writes(&sb, "login-a").await;
    let (status, body) = send_to_psid(&sb, &psid, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["message_id"].as_str().unwrap().starts_with("m_"));

    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, body) = send_to_psid(&sb, &psid, json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], 10);
    assert_eq!(body["error"]["error_subcode"], 2_018_278);
    assert_eq!(body["error"]["type"], "OAuthException");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("(#10) This message is sent outside of allowed window")
    );
    // UPDATE is no way around it, nor another tag; HUMAN_AGENT is.
    let (status, _) = send_to_psid(&sb, &psid, json!({"messaging_type": "UPDATE"})).await;
    assert_eq!(status, 400);
    let other_tag = json!({"messaging_type": "MESSAGE_TAG", "tag": "ACCOUNT_UPDATE"});
    assert_eq!(send_to_psid(&sb, &psid, other_tag).await.0, 400);
    let human_agent = json!({"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"});
    let (status, body) = send_to_psid(&sb, &psid, human_agent.clone()).await;
    assert_eq!(status, 200, "{body}");

    // The person replies: the standard window opens again.
    assert_eq!(person_writes(&sb, "login-a").await, psid);
    let (status, body) = send_to_psid(&sb, &psid, json!({})).await;
    assert_eq!(status, 200, "{body}");

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(send_to_psid(&sb, &psid, human_agent).await.0, 400);

    // The inbox shows the follow-ups in the person's conversation.
    let inbox: Value = reqwest::Client::new()
        .get(format!("{}/_sandbox/inbox?login_id=login-a", sb.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = inbox
        .as_array()
        .or_else(|| inbox["messages"].as_array())
        .expect("the inbox lists messages")
        .iter()
        .map(|m| m["messaging_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["RESPONSE", "MESSAGE_TAG", "RESPONSE"]);
}
