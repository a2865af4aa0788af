//! The API's three descriptions agree: every operation of docs/openapi.json is a route of the
//! HttpApi in template.yaml (API Gateway only forwards declared routes), every route of the
//! template that the function serves is documented, and the per-route throttling settings name
//! declared routes.

use integration_tests::moto::workspace_root;
use serde_yaml_ng::Value;
use std::collections::BTreeSet;

/// Routes the template declares that the function does not serve yet (none).
const NOT_YET_SERVED: [&str; 0] = [];

fn template() -> Value {
    let text = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// The template writes the Facebook routes' segment as `${FacebookPathSegment}`, the OpenAPI
/// document as the path parameter `{segment}`.
const SEGMENT_IN_TEMPLATE: &str = "/${FacebookPathSegment}/";
const SEGMENT_IN_OPENAPI: &str = "/{segment}/";

fn template_routes(t: &Value) -> BTreeSet<String> {
    let events = t["Resources"]["HttpApiFunction"]["Properties"]["Events"]
        .as_mapping()
        .expect("HttpApiFunction has events");
    events
        .values()
        .filter(|e| e["Type"].as_str() == Some("HttpApi"))
        .map(|e| {
            format!(
                "{} {}",
                e["Properties"]["Method"].as_str().unwrap().to_uppercase(),
                e["Properties"]["Path"]
                    .as_str()
                    .unwrap()
                    .replace(SEGMENT_IN_TEMPLATE, SEGMENT_IN_OPENAPI)
            )
        })
        .collect()
}

fn openapi_routes() -> BTreeSet<String> {
    let doc: serde_json::Value = serde_json::from_str(http_api::OPENAPI_JSON).unwrap();
    let mut routes = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        // Path-level `parameters` (the Facebook routes' `{segment}`) is not an operation.
        for method in ops
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "parameters")
        {
            routes.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    routes
}

#[test]
fn openapi_and_template_routes_agree() {
    let t = template();
    let declared = template_routes(&t);
    let documented = openapi_routes();
    let served: BTreeSet<String> = declared
        .iter()
        .filter(|r| !NOT_YET_SERVED.contains(&r.as_str()))
        .cloned()
        .collect();
    assert_eq!(
        documented, served,
        "docs/openapi.json vs template.yaml HttpApi events"
    );
}

#[test]
fn route_throttling_names_declared_routes() {
    let t = template();
    let declared = template_routes(&t);
    let settings = t["Resources"]["HttpApi"]["Properties"]["RouteSettings"]
        .as_mapping()
        .expect("RouteSettings for the routes other than Facebook's");
    let keys: BTreeSet<String> = settings
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(
            declared.contains(key),
            "RouteSettings names {key}, not a route"
        );
    }
    // The Facebook routes take the stage default (their keys hold the segment parameter, which a
    // RouteSettings key cannot); every other route has its own limit.
    assert!(
        !t["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"]["ThrottlingRateLimit"]
            .is_null(),
        "the stage default is the Facebook routes' limit"
    );
    for route in &declared {
        if route.contains(SEGMENT_IN_OPENAPI) {
            assert!(!keys.contains(route), "{route}");
        } else {
            assert!(keys.contains(route), "{route} has no route throttling");
        }
    }
}
