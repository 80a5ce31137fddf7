//! nginx route rendering: for any user id and type name the validators accept, the rendered route
//! is the route of fixed placeholder names with the names put in their slots and nothing else
//! changed (a name can never add, end or open an nginx token), and rendering never fails.
#![no_main]

use cm_core::{Route, TypeName, UserId};
use libfuzzer_sys::fuzz_target;

const USER: &str = "uzqx9user";
const KIND: &str = "kzqx9kind";

fuzz_target!(|input: (&str, &str, u16, bool)| {
    let (user, kind, port, strip_prefix) = input;
    let (Ok(user), Ok(kind)) = (UserId::parse(user), TypeName::parse(kind)) else {
        return;
    };
    if [USER, KIND]
        .iter()
        .any(|p| user.as_str().contains(p) || kind.as_str().contains(p))
    {
        return;
    }
    let route = |user: UserId, kind: TypeName| Route {
        user,
        kind,
        port,
        strip_prefix,
    };
    let rendered = cm_nginx::render_route(&route(user.clone(), kind.clone())).unwrap();
    let reference = cm_nginx::render_route(&route(
        UserId::parse(USER).unwrap(),
        TypeName::parse(KIND).unwrap(),
    ))
    .unwrap();
    let expected = reference
        .replace(USER, user.as_str())
        .replace(KIND, kind.as_str());
    assert_eq!(rendered, expected);
    let name = cm_nginx::route_file_name(&user, &kind);
    assert!(!name.contains('/') && !name.starts_with('.'), "{name}");
});
