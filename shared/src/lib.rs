//! Everything that is not wiring, in layers: `domain` (pure types and rules), `facebook` (Meta's
//! wire formats and crypto), `ports` (traits), `use_cases` (one place per promise), `config`,
//! `adapters` (AWS, Graph, and the in-memory twins behind the `testing` feature) and `bootstrap`
//! (cold-start loading and the AWS wiring).

pub mod adapters;
pub mod bootstrap;
pub mod config;
pub mod domain;
pub mod facebook;
pub mod ports;
pub mod use_cases;

// MOVE-COMPAT: removed after the import rewrite (/work/rewrite_imports.py). The old public
// paths, re-exported so the other crates compile unchanged until then.
#[doc(hidden)]
pub mod actions {
    pub use crate::use_cases::alert::*;
    pub use crate::use_cases::expire::*;
}
#[doc(hidden)]
pub mod attention {
    pub use crate::domain::attention::*;
}
#[doc(hidden)]
pub mod aws {
    pub use crate::adapters::aws::*;
}
#[doc(hidden)]
pub mod erasure {
    pub use crate::domain::erasure::*;
    pub use crate::ports::erasure::*;
}
#[doc(hidden)]
pub mod login {
    pub use crate::config::login::*;
    pub use crate::domain::login::*;
    pub use crate::domain::message::{
        FIRST_NAME_PLACEHOLDER, MAX_FIRST_NAME_CHARS, clean_first_name, needs_first_name,
        render_initial_message, rendered_length_problem,
    };
    pub use crate::ports::logins::*;
}
#[doc(hidden)]
pub mod metrics {
    pub use crate::adapters::emf::*;
    #[cfg(any(test, feature = "testing"))]
    pub use crate::adapters::memory::metrics::*;
    pub use crate::domain::metrics::*;
    pub use crate::ports::metrics::*;
}
#[doc(hidden)]
pub mod page {
    pub use crate::domain::page::*;
}
#[doc(hidden)]
pub mod report {
    pub use crate::domain::report::*;
    pub use crate::ports::history::*;
}
#[doc(hidden)]
pub mod send_tuning {
    pub use crate::config::send::*;
}
#[doc(hidden)]
pub mod signed_request {
    pub use crate::facebook::signed_request::*;
}
#[doc(hidden)]
pub mod table {
    pub use crate::adapters::dynamodb::table::*;
}
// MOVE-COMPAT end
