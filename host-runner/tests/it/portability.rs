//! Components built with reprise stay portable: they import only standard
//! WASI interfaces, one world's worth, so they run on any wasi:http host.

use crate::common::guest_wasm;
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

fn engine(component_model_async: bool) -> Engine {
    let mut config = Config::new();
    config.wasm_component_model_async(component_model_async);
    Engine::new(&config).expect("engine")
}

/// The component's import and export names.
fn interface_names(name: &str) -> (Vec<String>, Vec<String>) {
    let engine = engine(true);
    let component = Component::from_file(&engine, guest_wasm(name)).expect("a component");
    let ty = component.component_type();
    let imports = ty
        .imports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let exports = ty
        .exports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    (imports, exports)
}

const P3_SAMPLES: [&str; 12] = [
    "hello_p3",
    "kv_notes_p3",
    "sleep_p3",
    "counter_p3",
    "serial_p3",
    "single_use_p3",
    "retire_p3",
    "backpressure_p3",
    "limits_p3",
    "json_api_p3",
    "axum_p3",
    "proxy_p3",
];
const P2_SAMPLES: [&str; 4] = ["hello_p2", "sleep_p2", "single_use_p2", "proxy_p2"];

#[test]
fn p3_samples_import_only_wasi_and_export_only_the_0_3_handler() {
    for name in P3_SAMPLES {
        let (imports, exports) = interface_names(name);
        assert!(
            imports.iter().all(|i| i.starts_with("wasi:")),
            "{name}: {imports:?}"
        );
        assert_eq!(exports, ["wasi:http/handler@0.3.0"], "{name}");
    }
}

#[test]
fn p2_samples_import_only_wasi_0_2_and_export_only_the_incoming_handler() {
    for name in P2_SAMPLES {
        let (imports, exports) = interface_names(name);
        assert!(
            imports
                .iter()
                .all(|i| i.starts_with("wasi:") && i.contains("@0.2.")),
            "{name} imports something beyond WASI 0.2: {imports:?}"
        );
        assert_eq!(exports, ["wasi:http/incoming-handler@0.2.12"], "{name}");
    }
}

#[test]
fn only_components_that_use_the_host_store_import_it() {
    // The workspace builds every guest with reprise's `kv` and `config`
    // features on (cargo unifies them), so this also shows that unused
    // wrappers add no imports.
    let imports_of = |name| interface_names(name).0;
    for name in P3_SAMPLES.iter().chain(&P2_SAMPLES) {
        let imports = imports_of(name);
        let keyvalue = imports.iter().any(|i| i.starts_with("wasi:keyvalue/"));
        let config = imports.iter().any(|i| i.starts_with("wasi:config/"));
        assert_eq!(
            (keyvalue, config),
            (*name == "kv_notes_p3", false),
            "{name}: {imports:?}"
        );
    }
}

#[test]
fn p2_samples_that_never_retire_load_on_hosts_without_component_model_async() {
    // Their policy needs no backpressure, so the SDK links no
    // `backpressure.inc`/`.dec` built-ins into them.
    let engine = engine(false);
    for name in ["hello_p2", "sleep_p2"] {
        if let Err(error) = Component::from_file(&engine, guest_wasm(name)) {
            panic!("{name} needs component-model async: {error:#}");
        }
    }
    // A policy that retires instances does need them, and says so.
    let error = Component::from_file(&engine, guest_wasm("single_use_p2")).unwrap_err();
    assert!(format!("{error:#}").contains("requires the component model async feature"));
}
