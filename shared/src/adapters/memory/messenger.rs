//! A scripted twin of the Send API.

use crate::adapters::memory::sync::lock;
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
}

#[async_trait]
impl Messenger for MemoryMessenger {
    async fn send_initial_message(
        &self,
        page_id: &str,
        login_id: &str,
        text: &str,
    ) -> Result<SentMessage, GraphError> {
        let next = lock(&self.script).pop_front().unwrap_or(Ok(()));
        next?;
        lock(&self.sent).push((page_id.to_owned(), login_id.to_owned(), text.to_owned()));
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        Ok(SentMessage {
            message_id: format!("m_memory_{n}"),
        })
    }
}
