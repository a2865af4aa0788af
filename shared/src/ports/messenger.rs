//! Sending a message to a person through the Messenger Send API.

use crate::facebook::graph_error::GraphError;
use async_trait::async_trait;

/// Sending a message to a person through the Messenger Send API.
#[async_trait]
pub trait Messenger: Send + Sync {
    async fn send_initial_message(
        &self,
        page_id: &str,
        login_id: &str,
        text: &str,
    ) -> Result<SentMessage, GraphError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub message_id: String,
}
