//! The span Lambda's Rust runtime opens around every invocation, here around each handler call of
//! the local stack: production log lines (JSON format, `shared::logging`) carry it in `"spans"`,
//! so the local lines have the same shape and size. Its target names the function (the JSON format does
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The cost bench tells the functions' log lines apart by this span's target, and production
    /// lines carry the runtime's span name and fields: both must hold for every function.
    #[test]
    fn each_invocation_span_is_the_runtimes_with_the_function_as_target() {
        let registry = lambda_runtime::tracing::subscriber::registry();
        tracing::subscriber::with_default(registry, || {
            for function in Function::ALL {
                let span = span(function);
                let Some(meta) = span.metadata() else {
                    panic!("{function:?}: the span is disabled");
                };
                assert_eq!(meta.name(), "Lambda runtime invoke");
                assert_eq!(meta.target(), function.name());
                let fields: Vec<&str> = meta.fields().iter().map(|f| f.name()).collect();
                assert_eq!(fields, ["requestId", "xrayTraceId"]);
            }
        });
    }

    #[test]
    fn the_trace_header_has_lambdas_shape() {
        let header = trace_id();
        let parts: Vec<&str> = header.split(';').collect();
        assert_eq!(parts.len(), 3, "{header}");
        assert!(
            parts[0].starts_with("Root=1-") && parts[0].len() == 7 + 8 + 1 + 24,
            "{header}"
        );
        assert!(
            parts[1].starts_with("Parent=") && parts[1].len() == 7 + 16,
            "{header}"
        );
        assert_eq!(parts[2], "Sampled=0");
    }
}
