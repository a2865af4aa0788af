//! Drift alarms (issue 13 §2): the daily in-stack run of doctor's Graph checks. Pure: what Meta
//! answered ([`SetupAnswers`], read by `adapters::graph_admin`) becomes one [`Finding`] per
//! [`DriftCheck`], with the same lines and fix texts `ops doctor` prints
//! ([`crate::domain::preflight`]); the status store keeps each check's last-known status so that
//! only a NEW problem (ok → failing) alerts, and a recovery (failing → ok) is recorded.
//!
//! A problem is one check, not one line: a Page token that was invalidated and now also lacks a
//! scope is still the one "Page token" problem (its alert lists every failing line). An answer
//! Graph could not give (a network failure, a call made with a token that the token check already
//! reports) leaves that check's status unknown: neither alerted nor recovered.

use crate::domain::alert::{Alert, AlertKind};
use crate::domain::opt_in::Millis;
use crate::domain::preflight::{self, Check, Status, Target};
use crate::facebook::graph_error::GraphError;
use crate::facebook::page_setup::{AppSubscription, SubscribedApp, TokenDebug};

/// What Meta answered about the Page's setup, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupAnswers {
    /// `debug_token` of the Page token, asked with the app token.
    pub token: Result<TokenDebug, GraphError>,
    /// `GET /{page-id}/subscribed_apps` (Page token).
    pub page_apps: Result<Vec<SubscribedApp>, GraphError>,
    /// `GET /{app-id}/subscriptions` (app token).
    pub app_subscriptions: Result<Vec<AppSubscription>, GraphError>,
    /// The version Graph says served the calls (`facebook-api-version`), when it said one.
    pub served_version: Option<String>,
}

/// One check of the drift run: the unit of "a problem" (one alert when it starts failing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriftCheck {
    PageToken,
    PageSubscription,
    AppSubscription,
    GraphVersion,
}

impl DriftCheck {
    pub const ALL: [DriftCheck; 4] = [
        DriftCheck::PageToken,
        DriftCheck::PageSubscription,
        DriftCheck::AppSubscription,
        DriftCheck::GraphVersion,
    ];

    /// The stored name (the status item's key).
    pub fn as_str(self) -> &'static str {
        match self {
            DriftCheck::PageToken => "page_token",
            DriftCheck::PageSubscription => "page_subscription",
            DriftCheck::AppSubscription => "app_subscription",
            DriftCheck::GraphVersion => "graph_version",
        }
    }

    /// For people: the alert's subject and detail.
    pub fn title(self) -> &'static str {
        match self {
            DriftCheck::PageToken => "the Page token",
            DriftCheck::PageSubscription => "the Page's webhook subscription",
            DriftCheck::AppSubscription => "the app's webhook subscription",
            DriftCheck::GraphVersion => "the Graph API version",
        }
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// The ✘ lines, each with its fix.
    Failing(Vec<Check>),
    /// Not known this time (said why): the stored status stays as it is.
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: DriftCheck,
    pub verdict: Verdict,
}

fn verdict_of(lines: Vec<Check>) -> Verdict {
    let failing: Vec<Check> = lines
        .into_iter()
        .filter(|c| c.status == Status::Fail)
        .collect();
    if failing.is_empty() {
        Verdict::Ok
    } else {
        Verdict::Failing(failing)
    }
}

/// Only a refused token (Graph's 190) says something about the setup; anything else (a timeout,
/// a connection refused, a rate limit, an unreadable answer) is Graph's or the network's moment.
fn unknown_unless_refused<T>(answer: &Result<T, GraphError>) -> Option<Verdict> {
    match answer {
        Ok(_) => None,
        Err(GraphError::Api { body, .. }) if body.code == 190 => None,
        Err(other) => Some(Verdict::Unknown(format!(
            "Graph could not be asked ({other})"
        ))),
    }
}

/// Every check's verdict, from doctor's own check functions (same lines, same fixes).
pub fn evaluate(target: &Target, answers: &SetupAnswers, now: Millis) -> Vec<Finding> {
    let token = unknown_unless_refused(&answers.token)
        .unwrap_or_else(|| verdict_of(preflight::page_token(target, answers.token.as_ref(), now)));
    // A refused subscription read was made with a token the token check judges: one problem,
    // one alert (the token's).
    let page = match &answers.page_apps {
        Err(e) => Verdict::Unknown(format!(
            "subscribed_apps could not be read ({e}); the Page token check covers a refused token"
        )),
        Ok(apps) => verdict_of(vec![preflight::page_subscription(target, Ok(apps))]),
    };
    let app = match &answers.app_subscriptions {
        Err(e) => Verdict::Unknown(format!(
            "subscriptions could not be read ({e}); the Page token check covers a refused app token"
        )),
        Ok(subs) => verdict_of(preflight::app_subscription(target, Ok(subs))),
    };
    let version = {
        let line = preflight::graph_version(
            &target.graph_version,
            answers.served_version.as_deref(),
            now,
        );
        match line.status {
            Status::NotChecked => Verdict::Unknown(line.fix.unwrap_or_default()),
            _ => verdict_of(vec![line]),
        }
    };
    [
        (DriftCheck::PageToken, token),
        (DriftCheck::PageSubscription, page),
        (DriftCheck::AppSubscription, app),
        (DriftCheck::GraphVersion, version),
    ]
    .into_iter()
    .map(|(check, verdict)| Finding { check, verdict })
    .collect()
}

/// The day a drift run belongs to (UTC, `YYYY-MM-DD`): the sweep enqueues one run per day.
pub fn day(now: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(now)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// The alert of a new problem: every ✘ line with its fix, as doctor prints them.
pub fn problem_alert(page_id: &str, check: DriftCheck, lines: &[Check]) -> Alert {
    let text: Vec<String> = lines.iter().map(Check::line).collect();
    Alert::for_page(
        page_id,
        AlertKind::MetaSetupDrift,
        false,
        format!(
            "the daily check of Meta's side found a new problem with {}:\n{}\nOnce fixed, \
             `ops doctor` shows ✔ and the next daily check records the recovery.",
            check.title(),
            text.join("\n")
        ),
    )
}

/// The alert of a recovery: the check passes again.
pub fn recovered_alert(page_id: &str, check: DriftCheck) -> Alert {
    Alert::for_page(
        page_id,
        AlertKind::MetaSetupRecovered,
        false,
        format!(
            "the daily check of Meta's side finds {} in order again",
            check.title()
        ),
    )
}

/// What Meta answers about a healthy setup of `target`: a valid PAGE token of its Page and app
/// with `pages_messaging` that never expires, the Page and the app subscribed with every field to
/// `target`'s webhook URL, served in the version asked for. The baseline of the tests (twins,
/// sender) that break one answer at a time.
pub fn healthy_answers(target: &Target) -> SetupAnswers {
    use crate::facebook::page_setup::{
        PAGES_MESSAGING, REQUIRED_WEBHOOK_FIELDS, SubscriptionField,
    };
    let fields: Vec<String> = REQUIRED_WEBHOOK_FIELDS
        .iter()
        .map(|f| f.to_string())
        .collect();
    SetupAnswers {
        token: Ok(TokenDebug {
            is_valid: true,
            token_type: Some("PAGE".into()),
            profile_id: Some(target.page_id.clone()),
            app_id: Some(target.app_id.clone()),
            scopes: vec![PAGES_MESSAGING.into()],
            ..TokenDebug::default()
        }),
        page_apps: Ok(vec![SubscribedApp {
            id: target.app_id.clone(),
            subscribed_fields: fields.clone(),
            ..SubscribedApp::default()
        }]),
        app_subscriptions: Ok(vec![AppSubscription {
            object: "page".into(),
            callback_url: target.webhook_url.clone(),
            active: true,
            fields: fields
                .into_iter()
                .map(|name| SubscriptionField {
                    name,
                    version: None,
                })
                .collect(),
        }]),
        served_version: Some(target.graph_version.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::preflight::tests::target;
    use crate::facebook::graph_error::GraphErrorBody;

    const NOW: Millis = 1_795_536_000_000;

    fn healthy() -> SetupAnswers {
        healthy_answers(&target())
    }

    fn refused(code: i64) -> GraphError {
        GraphError::Api {
            status: 400,
            body: GraphErrorBody {
                code,
                message: "Error validating access token".into(),
                ..GraphErrorBody::default()
            },
        }
    }

    #[test]
    fn a_healthy_setup_is_ok_on_every_check() {
        let findings = evaluate(&target(), &healthy(), NOW);
        assert_eq!(findings.len(), DriftCheck::ALL.len());
        for f in findings {
            assert_eq!(f.verdict, Verdict::Ok, "{:?}", f.check);
        }
    }

    #[test]
    fn an_invalidated_token_is_one_problem_not_two() {
        let answers = SetupAnswers {
            token: Ok(TokenDebug {
                is_valid: false,
                ..TokenDebug::default()
            }),
            page_apps: Err(refused(190)),
            ..healthy()
        };
        let findings = evaluate(&target(), &answers, NOW);
        let failing: Vec<&Finding> = findings
            .iter()
            .filter(|f| matches!(f.verdict, Verdict::Failing(_)))
            .collect();
        assert_eq!(failing.len(), 1, "{findings:?}");
        assert_eq!(failing[0].check, DriftCheck::PageToken);
        assert!(matches!(findings[1].verdict, Verdict::Unknown(_)));
        let Verdict::Failing(lines) = &failing[0].verdict else {
            unreachable!()
        };
        let alert = problem_alert("2", DriftCheck::PageToken, lines);
        assert_eq!(alert.kind, AlertKind::MetaSetupDrift);
        assert!(
            alert.detail.contains("✘ Page token is not valid"),
            "{}",
            alert.detail
        );
        // The fix doctor prints, word for word.
        assert!(
            alert
                .detail
                .contains(&format!("fix: {}", target().token_fix()))
        );
    }

    #[test]
    fn a_network_failure_is_unknown_not_a_problem() {
        let down = GraphError::Connection;
        let answers = SetupAnswers {
            token: Err(down.clone()),
            page_apps: Err(down.clone()),
            app_subscriptions: Err(down),
            served_version: None,
        };
        for f in evaluate(&target(), &answers, NOW) {
            assert!(matches!(f.verdict, Verdict::Unknown(_)), "{f:?}");
        }
        // A refused app token is a problem: the app secret is wrong.
        let wrong_secret = SetupAnswers {
            token: Err(refused(190)),
            ..healthy()
        };
        assert!(matches!(
            evaluate(&target(), &wrong_secret, NOW)[0].verdict,
            Verdict::Failing(_)
        ));
    }

    #[test]
    fn subscriptions_and_version_are_their_own_problems() {
        let answers = SetupAnswers {
            page_apps: Ok(vec![]),
            app_subscriptions: Ok(vec![AppSubscription {
                object: "page".into(),
                callback_url: "https://old.example/webhooks/messenger".into(),
                active: false,
                fields: vec![],
            }]),
            served_version: Some("v28.0".into()),
            ..healthy()
        };
        let findings = evaluate(&target(), &answers, NOW);
        assert_eq!(findings[0].verdict, Verdict::Ok);
        for f in &findings[1..] {
            assert!(matches!(f.verdict, Verdict::Failing(_)), "{f:?}");
        }
        let Verdict::Failing(app) = &findings[2].verdict else {
            unreachable!()
        };
        assert_eq!(
            app.len(),
            3,
            "callback, inactive, fields: one problem, three lines"
        );
    }

    #[test]
    fn the_day_is_the_utc_date() {
        // NOW is 2026-11-24T16:00:00Z: the day ends 8 hours later.
        assert_eq!(day(NOW), "2026-11-24");
        assert_eq!(day(NOW + 8 * 3_600_000 - 1), "2026-11-24");
        assert_eq!(day(NOW + 8 * 3_600_000), "2026-11-25");
        assert!(day(NOW) < day(NOW + 86_400_000));
    }
}
