//! `GET /openapi.json`: the OpenAPI 3.1 document of this API (`docs/openapi.json`, compiled in).

use crate::response::typed;
use lambda_http::{Body, Response};

/// The document as compiled in.
pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

/// The document as served: with `PUBLIC_BASE_URL` configured (the local runner sets it to the
/// address it really listens on), `servers` is that URL alone, so "try it" tools call this API and
/// not the placeholders of the compiled-in document (`127.0.0.1:3000`, `{api}.execute-api…`).
pub fn openapi_document(public_base_url: Option<&str>) -> String {
    let Some(base) = public_base_url else {
        return OPENAPI_JSON.to_owned();
    };
    match serde_json::from_str::<serde_json::Value>(OPENAPI_JSON) {
        Ok(mut doc) => {
            doc["servers"] = serde_json::json!([{
                "url": base.trim_end_matches('/'),
                "description": "This API (PUBLIC_BASE_URL)",
            }]);
            doc.to_string()
        }
        // Unreachable while docs/openapi.json parses (the api_contract test reads it).
        Err(_) => OPENAPI_JSON.to_owned(),
    }
}

/// The served answer (cacheable: the document changes only with a deployment).
pub fn serve(public_base_url: Option<&str>) -> Response<Body> {
    typed(openapi_document(public_base_url), "application/json")
}

#[cfg(test)]
mod tests {
    use super::openapi_document;

    /// Issue 14, "Ports": the served document names the address the API really listens on.
    #[test]
    fn the_served_openapi_servers_entry_is_the_public_base_url() {
        let doc: serde_json::Value =
            serde_json::from_str(&openapi_document(Some("http://127.0.0.1:43123/"))).unwrap();
        assert_eq!(
            doc["servers"],
            serde_json::json!([{"url": "http://127.0.0.1:43123", "description": "This API (PUBLIC_BASE_URL)"}])
        );
        assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));
        // Without a public URL the compiled-in document is served unchanged.
        assert_eq!(openapi_document(None), super::OPENAPI_JSON);
    }
}
