//! The span Lambda's Rust runtime opens around every invocation, here around each handler call of
//! the local stack: production log lines (JSON format) carry it as `"span"` and `"spans"`, so the
//! local lines have the same shape and size. Its target names the function (the JSON format does
//! not print span targets), which lets a test's subscriber tell the functions' lines apart (the
//! cost bench counts log bytes per function this way).

use tracing::Span;

/// The functions the local stack runs in-process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    HttpApi,
    Sender,
    DeadlineAlerts,
    EventSender,
}

impl Function {
    /// The span target, and the function's name in template.yaml's `FunctionName` suffix.
    pub const fn name(self) -> &'static str {
        match self {
            Function::HttpApi => "http-api",
            Function::Sender => "sender",
            Function::DeadlineAlerts => "deadline-alerts",
            Function::EventSender => "event-sender",
        }
    }

    pub const ALL: [Function; 4] = [
        Function::HttpApi,
        Function::Sender,
        Function::DeadlineAlerts,
        Function::EventSender,
    ];
}

/// An X-Ray trace header of the shape Lambda hands the runtime (`Lambda-Runtime-Trace-Id`).
fn trace_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string();
    let epoch = chrono::Utc::now().timestamp();
    format!(
        "Root=1-{epoch:08x}-{};Parent={};Sampled=0",
        &hex[..24],
        &parent[..16]
    )
}

/// `lambda_runtime::layers::trace::request_span` for one invocation of `function`: the same name
/// ("Lambda runtime invoke") and fields (`requestId`, `xrayTraceId`).
pub fn span(function: Function) -> Span {
    let request_id = uuid::Uuid::new_v4().to_string();
    let trace = trace_id();
    // The target must be a literal: one arm per function.
    match function {
        Function::HttpApi => {
            tracing::info_span!(target: "http-api", "Lambda runtime invoke", requestId = %request_id, xrayTraceId = %trace)
        }
        Function::Sender => {
            tracing::info_span!(target: "sender", "Lambda runtime invoke", requestId = %request_id, xrayTraceId = %trace)
        }
        Function::DeadlineAlerts => {
            tracing::info_span!(target: "deadline-alerts", "Lambda runtime invoke", requestId = %request_id, xrayTraceId = %trace)
        }
        Function::EventSender => {
            tracing::info_span!(target: "event-sender", "Lambda runtime invoke", requestId = %request_id, xrayTraceId = %trace)
        }
    }
}
