//! A scripted twin of the Send API: initial messages and follow-ups answer from one script.

use crate::adapters::memory::sync::lock;
use crate::domain::follow_up::{Delivery, FollowUpMessage};
use crate::facebook::graph_error::GraphError;
use crate::ports::messenger::{Messenger, SentMessage};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A scripted [`Messenger`]: answers from a queue of results (success when empty), records sends.
#[derive(Default)]
pub struct MemoryMessenger {
    pub script: Mutex<VecDeque<Result<(), GraphError>>>,
    pub sent: Mutex<Vec<(String, String, String)>>,
    /// (page_id, psid, message, delivery) of every accepted follow-up.
    pub follow_ups: Mutex<Vec<(String, String, FollowUpMessage, Delivery)>>,
    counter: AtomicU64,
}

impl MemoryMessenger {
    pub fn then_fail(&self, error: GraphError) {
        lock(&self.script).push_back(Err(error));
    }

    /// (page_id, login_id, text) of every accepted message.
    pub fn sent(&self) -> Vec<(String, String, String)> {
        lock(&self.sent).clone()
    }

    /// (page_id, psid, message, delivery) of every accepted follow-up.
    pub fn follow_ups(&self) -> Vec<(String, String, FollowUpMessage, Delivery)> {
        lock(&self.follow_ups).clone()
    }

    /// The next scripted answer: a message id, or the scripted error.
    fn answer(&self) -> Result<SentMessage, GraphError> {
        lock(&self.script).pop_front().unwrap_or(Ok(()))?;
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        Ok(SentMessage {
            message_id: format!("m_memory_{n}"),
        })
    }
}

#[async_trait]
impl Messenger for MemoryMessenger {
    async fn send_initial_message(
        &self,
        page_id: &str,
        login_id: &str,
        text: &str,
    ) -> Result<SentMessage, GraphError> {
        let sent = self.answer()?;
        lock(&self.sent).push((page_id.to_owned(), login_id.to_owned(), text.to_owned()));
        Ok(sent)
    }

    async fn send_follow_up(
        &self,
        page_id: &str,
        psid: &str,
        message: &FollowUpMessage,
        delivery: Delivery,
    ) -> Result<SentMessage, GraphError> {
        let sent = self.answer()?;
        lock(&self.follow_ups).push((
            page_id.to_owned(),
            psid.to_owned(),
            message.clone(),
            delivery,
        ));
        Ok(sent)
    }
}
