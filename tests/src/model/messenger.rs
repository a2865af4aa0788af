//! The Graph twin of the model-based test: one [`Messenger`] shared by every sender invocation of
//! a case. It answers each call with the class the model chose (success, transient, 190, the `100`
//! recipient rows, window, unreachable, a crash after acceptance), records every call with the
//! model's clock and a logical tick (so the checks can order a send against an opt-out), and can
//! hold a call open while the model runs another handler (an opt-out during an in-flight send).

use shared::adapters::memory::clock::ManualClock;
use shared::domain::opt_in::Millis;
use shared::facebook::graph_error::{GraphError, GraphErrorBody};
use shared::ports::clock::Clock;
use shared::ports::messenger::{Messenger, SentMessage};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// How Graph answers the next sends (the model keeps a class until it picks another).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 with a message id: the person receives the message.
    Accept,
    /// `1200` "Temporary send message failure": retried.
    Transient,
    /// No answer at all (connection refused): retried.
    NoConnection,
    /// `190` invalid token: our configuration; the Page pauses.
    Token190,
    /// `100` "No matching user found" without a subcode: one bad recipient (Meta's table).
    NoMatchingUser,
    /// `100` "Invalid FBID": one bad recipient (Meta's table).
    InvalidFbid,
    /// `10`/`2018278` outside the window.
    Window,
    /// `551`/`1545041` the person is unreachable.
    Unreachable,
    /// Graph accepts (the person receives it), then the sender process dies before it writes SENT
    /// or acknowledges the SQS record.
    CrashAfterAccept,
}

impl Answer {
    /// Whether this answer delivers the message to the person.
    pub fn delivers(self) -> bool {
        matches!(self, Answer::Accept | Answer::CrashAfterAccept)
    }

    /// Whether Meta's table says this answer is about one recipient (it must never pause the Page).
    pub fn is_recipient_error(self) -> bool {
        matches!(
            self,
            Answer::NoMatchingUser | Answer::InvalidFbid | Answer::Unreachable
        )
    }

    fn error(self) -> GraphError {
        let api = |code: i64, subcode: Option<i64>, message: &str| GraphError::Api {
            status: 400,
            body: GraphErrorBody {
                message: message.to_owned(),
                error_type: Some("OAuthException".into()),
                code,
                error_subcode: subcode,
                fbtrace_id: Some("AmodelTrace".into()),
                is_transient: None,
            },
        };
        match self {
            Answer::Transient => api(
                1200,
                None,
                "(#1200) Temporary send message failure. Please try again later.",
            ),
            Answer::NoConnection => GraphError::Connection,
            Answer::Token190 => api(190, None, "Invalid OAuth access token."),
            Answer::NoMatchingUser => api(100, None, "(#100) No matching user found"),
            Answer::InvalidFbid => api(100, None, "(#100) Bad Parameter Error: Invalid FBID"),
            Answer::Window => api(
                10,
                Some(2_018_278),
                "(#10) This message is sent outside of allowed window.",
            ),
            Answer::Unreachable => api(
                551,
                Some(1_545_041),
                "(#551) This person isn't available right now.",
            ),
            Answer::Accept | Answer::CrashAfterAccept => {
                GraphError::BadResponse("unreachable".into())
            }
        }
    }
}

/// One call to the Send API, as the twin saw it.
#[derive(Debug, Clone)]
pub struct GraphCall {
    pub page_id: String,
    pub login_id: String,
    /// The model's clock when the call was made.
    pub at: Millis,
    /// Logical time when the call reached Graph, and when Graph answered.
    pub started_tick: u64,
    pub answered_tick: u64,
    pub answer: Answer,
    /// The message id Graph returned (or would have, for a crash after acceptance).
    pub message_id: Option<String>,
}

/// A logical clock shared by the model and the twin: every observable event takes the next tick.
#[derive(Debug, Default)]
pub struct Ticks(AtomicU64);

impl Ticks {
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// Hold the next Send API call open: `entered` fires when it reaches Graph, and Graph answers
/// only once `proceed` fires.
pub struct Hold {
    pub entered: oneshot::Sender<()>,
    pub proceed: oneshot::Receiver<()>,
}

pub struct ModelMessenger {
    clock: Arc<ManualClock>,
    ticks: Arc<Ticks>,
    answer: Mutex<Answer>,
    calls: Mutex<Vec<GraphCall>>,
    hold: Mutex<Option<Hold>>,
    crash: Mutex<Option<oneshot::Sender<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ModelMessenger {
    pub fn new(clock: Arc<ManualClock>, ticks: Arc<Ticks>) -> Self {
        Self {
            clock,
            ticks,
            answer: Mutex::new(Answer::Accept),
            calls: Mutex::default(),
            hold: Mutex::default(),
            crash: Mutex::default(),
        }
    }

    pub fn answer_with(&self, answer: Answer) {
        *lock(&self.answer) = answer;
    }

    pub fn answer(&self) -> Answer {
        *lock(&self.answer)
    }

    pub fn calls(&self) -> Vec<GraphCall> {
        lock(&self.calls).clone()
    }

    pub fn hold_next(&self, hold: Hold) {
        *lock(&self.hold) = Some(hold);
    }

    pub fn clear_hold(&self) {
        *lock(&self.hold) = None;
    }

    /// Where a crash after acceptance is announced (the driver then drops the invocation).
    pub fn on_crash(&self, tx: oneshot::Sender<()>) {
        *lock(&self.crash) = Some(tx);
    }
}

#[async_trait::async_trait]
impl Messenger for ModelMessenger {
    async fn send_initial_message(
        &self,
        page_id: &str,
        login_id: &str,
        _text: &str,
    ) -> Result<SentMessage, GraphError> {
        let at = self.clock.now();
        let started_tick = self.ticks.next();
        let hold = lock(&self.hold).take();
        if let Some(hold) = hold {
            let _ = hold.entered.send(());
            let _ = hold.proceed.await;
        }
        let answer = self.answer();
        let answered_tick = self.ticks.next();
        let message_id = {
            let mut calls = lock(&self.calls);
            let message_id = answer
                .delivers()
                .then(|| format!("m_model_{}", calls.len()));
            calls.push(GraphCall {
                page_id: page_id.to_owned(),
                login_id: login_id.to_owned(),
                at,
                started_tick,
                answered_tick,
                answer,
                message_id: message_id.clone(),
            });
            message_id
        };
        match (answer, message_id) {
            (Answer::CrashAfterAccept, _) => {
                if let Some(tx) = lock(&self.crash).take() {
                    let _ = tx.send(());
                }
                // The process is gone: this call never returns.
                std::future::pending::<()>().await;
                Err(GraphError::Timeout)
            }
            (Answer::Accept, Some(message_id)) => Ok(SentMessage { message_id }),
            (other, _) => Err(other.error()),
        }
    }
}
