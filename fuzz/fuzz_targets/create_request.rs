//! A create form as an API client or the dashboard sends it: never a panic; what is accepted
//! has only validated values.
#![no_main]

use cm_core::{Config, CreateForm, CreateRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|fields: (
    String,
    String,
    Option<String>,
    Option<String>,
    Vec<String>,
    Option<String>,
    Option<String>,
    bool,
    Option<String>
)| {
    let (user_id, container_type, image, command, env, memory, cpus, enable_ssh, node) = fields;
    let form = CreateForm {
        user_id,
        container_type,
        image,
        command,
        env,
        memory,
        cpus,
        enable_ssh,
        ssh_keys: Vec::new(),
        node,
    };
    let config = Config::defaults();
    if let Ok(request) = CreateRequest::parse(&form, &config) {
        // Whatever was accepted is one of the configured types.
        assert!(config.types.contains_key(&request.container_type));
        // A node, when given, is a host name: nothing that could reach a constraint or a path.
        if let Some(node) = &request.node {
            assert!(node.as_str().chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'));
        }
    }
});
