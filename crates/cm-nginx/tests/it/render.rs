//! Rendered configuration: snapshots, and proof that only validated values reach it.

use proptest::prelude::*;

use cm_core::{TypeName, UserId};
use cm_nginx::{render_map_snippet, render_route, route_file_name};

use crate::helpers::route;

/// Renders a route and compares it with the committed snapshot `name`.
fn check(name: &str, user: &str, kind: &str, port: u16, strip_prefix: bool) {
    let text = render_route(&route(user, kind, port, strip_prefix)).unwrap();
    insta::assert_snapshot!(name, text);
}

#[test]
fn route_with_the_prefix_stripped() {
    check("route_strip_prefix", "alice", "cli_v4", 9001, true);
}

#[test]
fn route_with_the_prefix_kept() {
    check("route_keep_prefix", "Bob-2_x", "project_dev", 9500, false);
}

#[test]
fn map_snippet() {
    insta::assert_snapshot!("cm_map", render_map_snippet());
}

#[test]
fn routes_set_no_cors_and_strip_credentials() {
    let text = render_route(&route("alice", "web", 9001, true)).unwrap();
    assert!(
        !text.to_ascii_lowercase().contains("access-control"),
        "no CORS headers at all"
    );
    assert!(text.contains("proxy_set_header Authorization \"\";"));
    assert!(text.contains("proxy_set_header Connection $cm_connection_upgrade;"));
    assert!(!text.contains("Connection \"upgrade\""));
}

#[test]
fn hostile_values_can_not_be_built() {
    let hostile = [
        "",
        "a;b",
        "a}",
        "a{",
        "a b",
        "a\nb",
        "a\rb",
        "a\tb",
        "../etc",
        "a/b",
        "a.b",
        "$host",
        "a\"b",
        "a'b",
        "a#b",
        "a\\b",
        "-lead",
        "_lead",
        "ünï",
        "a\0b",
        "a;}location / {return 200;}",
        &"x".repeat(64),
    ];
    for raw in hostile {
        assert!(UserId::parse(raw).is_err(), "user id {raw:?} must be refused");
        assert!(TypeName::parse(raw).is_err(), "type {raw:?} must be refused");
    }
    // Types are stricter still: no capitals, no '-' (which keeps file names unambiguous).
    for raw in ["Web", "web-2", "9web", &"t".repeat(33)] {
        assert!(TypeName::parse(raw).is_err(), "type {raw:?} must be refused");
    }
}

/// Sentinels that occur nowhere in the templates: rendering them gives the skeleton of a route file.
const USER_SENTINEL: &str = "Zq9Zq9Zq9";
const KIND_SENTINEL: &str = "zqkindzq";
const PORT_SENTINEL: u16 = 54321;

fn skeleton(strip_prefix: bool) -> String {
    render_route(&route(USER_SENTINEL, KIND_SENTINEL, PORT_SENTINEL, strip_prefix)).unwrap()
}

#[test]
fn the_sentinels_only_appear_where_values_go() {
    for strip_prefix in [true, false] {
        let text = render_route(&route("u", "t", 1, strip_prefix)).unwrap();
        for sentinel in [USER_SENTINEL, KIND_SENTINEL, &PORT_SENTINEL.to_string()] {
            assert!(
                !text.contains(sentinel),
                "{sentinel} occurs in the template itself"
            );
        }
    }
}

fn allowed_in_values(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

proptest! {
    /// Any user id and type that parse render to the skeleton with the values dropped in, and
    /// the values themselves hold only `[A-Za-z0-9_-]`: nothing else can reach the file.
    #[test]
    fn rendered_files_carry_only_allowed_characters(
        user in "[A-Za-z0-9][A-Za-z0-9_-]{0,62}",
        kind in "[a-z][a-z0-9_]{0,31}",
        port in 1u16..,
        strip_prefix in any::<bool>(),
    ) {
        let text = render_route(&route(&user, &kind, port, strip_prefix)).unwrap();
        // Port first: a user id may well contain the digits of the port sentinel.
        let expected = skeleton(strip_prefix)
            .replace(&PORT_SENTINEL.to_string(), &port.to_string())
            .replace(KIND_SENTINEL, &kind)
            .replace(USER_SENTINEL, &user);
        prop_assert_eq!(&text, &expected);
        prop_assert!(user.chars().chain(kind.chars()).all(allowed_in_values));
        prop_assert!(text.chars().all(|c| c == '\n' || (' '..='~').contains(&c)));
        let file = route_file_name(&UserId::parse(&user).unwrap(), &TypeName::parse(&kind).unwrap());
        prop_assert!(file.chars().all(|c| allowed_in_values(c) || c == '.'));
    }
}
