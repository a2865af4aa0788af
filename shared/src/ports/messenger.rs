//! Sending a message to a person through the Messenger Send API.

use crate::domain::follow_up::{Delivery, FollowUpMessage};
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

    /// A follow-up to the person's PSID (`recipient.id`), with `delivery`'s `messaging_type` (and
    /// tag). Adapters that cannot send one (test models of the initial message) refuse it as a
    /// Graph client error would.
    async fn send_follow_up(
        &self,
        page_id: &str,
        psid: &str,
        message: &FollowUpMessage,
        delivery: Delivery,
    ) -> Result<SentMessage, GraphError> {
        let _ = (page_id, psid, message, delivery);
        Err(GraphError::Http { status: 501 })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub message_id: String,
}
