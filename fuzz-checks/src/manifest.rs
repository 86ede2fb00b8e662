//! YAML from outside: the router's routes file and InferenceService manifests (parsed and
//! validated).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use kiln_api::inference_service::load_str;
use kiln_router::{Router, TableHandle};
use serde_json::Value;

/// Whether a string would make `ToSocketAddrs` ask the system resolver: `host:port` whose host
/// is not an IP address.
fn needs_resolver(text: &str) -> bool {
    text.parse::<SocketAddr>().is_err()
        && text
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
}

fn any_string(value: &Value, test: &dyn Fn(&str) -> bool) -> bool {
    match value {
        Value::String(s) => test(s),
        Value::Array(items) => items.iter().any(|v| any_string(v, test)),
        Value::Object(map) => map.iter().any(|(k, v)| test(k) || any_string(v, test)),
        _ => false,
    }
}

/// A routes file, parsed and put into a routing table. Files naming an endpoint by host name are left out: the parser resolves
/// them with the system resolver, which would make the run slow and depend on the network.
pub fn routes_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(value) = serde_saphyr::from_str::<Value>(text)
        && any_string(&value, &needs_resolver)
    {
        return;
    }
    let default_timeout = Duration::from_secs(300);
    let Ok(services) = kiln_router::routes_file::parse(text, default_timeout) else {
        return;
    };
    // What parses goes into the routing table next (`routes_file::apply`): that may refuse
    // it, never panic.
    let _ = table().set_services(services);
}

/// A routing table of a router that is built but not started.
fn table() -> &'static TableHandle {
    static TABLE: OnceLock<TableHandle> = OnceLock::new();
    TABLE.get_or_init(|| {
        Router::builder()
            .seed(1)
            .build()
            .expect("a router builds")
            .table()
    })
}

/// InferenceService manifests through parse and validate. What loads, stored as JSON (as the
/// controller keeps it) and loaded again, gives the same validated services: a restart
/// must not see a different spec, or a new revision would start for nothing.
pub fn inference_service(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(loaded) = load_str(text, None) else {
        return;
    };
    for service in &loaded.services {
        let stored = serde_json::to_string(&service.object).expect("a service serializes");
        let again = match load_str(&stored, None) {
            Ok(again) => again,
            Err(e) => panic!("a loaded service, stored as JSON, no longer loads: {e}\n{stored}"),
        };
        assert_eq!(again.services.len(), 1, "one stored service is one service");
        let again = &again.services[0];
        assert_eq!(
            (&again.name, &again.namespace, &again.labels),
            (&service.name, &service.namespace, &service.labels)
        );
        assert_eq!(
            again.servable, service.servable,
            "a stored service validates differently"
        );
        assert_eq!(again.servable.spec_hash(), service.servable.spec_hash());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_files_naming_a_host_endpoint_are_found_before_the_parser_resolves_them() {
        let text = "services:\n  - name: a\n    revisions:\n      - name: r\n        endpoints: [\"127.0.0.1:1\", \"models.invalid:80\"]\n";
        let value: Value = serde_saphyr::from_str(text).unwrap();
        assert!(any_string(&value, &needs_resolver));
        let text =
            "services: [{name: a, revisions: [{name: r, endpoints: [\"[::1]:80\", nowhere]}]}]";
        let value: Value = serde_saphyr::from_str(text).unwrap();
        assert!(!any_string(&value, &needs_resolver));
    }
}
