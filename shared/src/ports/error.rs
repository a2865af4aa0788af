//! The one error every port returns: a failure of the adapter's backing service.

/// A failure of an adapter's backing service. The message is for logs only.
#[derive(Debug, thiserror::Error)]
#[error("{service}: {message}")]
pub struct PortError {
    pub service: &'static str,
    pub message: String,
}

impl PortError {
    pub fn new(service: &'static str, message: impl Into<String>) -> Self {
        Self {
            service,
            message: message.into(),
        }
    }
}

pub type PortResult<T> = Result<T, PortError>;
