//! Rendering route files and the http-level map snippet from embedded minijinja templates.
//!
//! Only validated cm-core values ([`UserId`], [`TypeName`], a `u16` port, a `bool`) reach the
//! templates: the template cannot protect nginx from injection, the types do.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior, context};

use cm_core::{Error, HostMode, Result, Route, RoutingMode, TypeName, UserId};

const ROUTE_TEMPLATE: &str = "route.conf";
const MAP_TEMPLATE: &str = "cm-map.conf";
const SITE_TEMPLATE: &str = "site.conf";

/// The cookies nginx removes from what it forwards to apps: the route sign-in, the dashboard's
/// session and the ToolBox worker's session (`tb_session`, a credential of the host's ToolBox
/// that the route check may accept). Each is removed twice (a browser may hold two of one name
/// for different paths); every step is one `map` from `source` to `target`. A last map (in the
/// template) fails closed: if one is still there (an app planted more), the app gets no cookies
/// at all.
const COOKIE_STEPS: [(&str, &str, &str); 6] = [
    ("http_cookie", "cm_cookie_1", "cm_route"),
    ("cm_cookie_1", "cm_cookie_2", "cm_route"),
    ("cm_cookie_2", "cm_cookie_3", "cm_session"),
    ("cm_cookie_3", "cm_cookie_4", "cm_session"),
    ("cm_cookie_4", "cm_cookie_5", "tb_session"),
    ("cm_cookie_5", "cm_cookie_6", "tb_session"),
];

fn cookie_steps() -> Vec<minijinja::Value> {
    COOKIE_STEPS
        .iter()
        .map(|&(source, target, name)| context! { source => source, target => target, name => name })
        .collect()
}

/// What `cm nginx setup` writes: one http-level file with the maps, the cm-api upstream and the
/// server that serves the containers.
#[derive(Debug, Clone)]
pub struct Site {
    /// Dynamic (one location asking cm-api) or files (the server includes `enabled_dir`).
    pub mode: RoutingMode,
    /// Path or subdomain routing.
    pub host: HostMode,
    /// Where nginx listens for container traffic.
    pub listen: SocketAddr,
    /// The `server_name` (path routing), checked by the configuration.
    pub server_name: String,
    /// The base domain (subdomain routing), checked by the configuration.
    pub base_domain: Option<String>,
    /// Where cm-api listens.
    pub api: SocketAddr,
    /// The directory of linked route files (files mode).
    pub enabled_dir: PathBuf,
}

/// Renders the site file of `site`.
pub fn render_site(site: &Site) -> Result<String> {
    let enabled_dir = site.enabled_dir.display().to_string();
    // A path goes into nginx syntax unquoted: only characters that can not end or open a token.
    let safe_path = enabled_dir
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c));
    if site.mode == RoutingMode::Files && !safe_path {
        return Err(Error::invalid(format!(
            "the nginx enabled_dir {enabled_dir:?} may hold only letters, digits and / . _ - + @"
        )));
    }
    let (host, base_domain) = match (site.host, &site.base_domain) {
        (HostMode::Path, _) => ("path", String::new()),
        (HostMode::Subdomain, Some(domain)) => ("subdomain", domain.clone()),
        (HostMode::Subdomain, None) => {
            return Err(Error::invalid("subdomain routing needs [routing] base_domain"));
        }
    };
    render(
        SITE_TEMPLATE,
        context! {
            mode => match site.mode { RoutingMode::Dynamic => "dynamic", RoutingMode::Files => "files" },
            host => host,
            listen => site.listen.to_string(),
            server_name => site.server_name.as_str(),
            base_domain_regex => base_domain.replace('.', "\\."),
            base_domain => base_domain,
            api => site.api.to_string(),
            enabled_dir => enabled_dir,
            cookie_steps => cookie_steps(),
        },
    )
}

/// The file name of a route in `box-available/` and `box-enabled/`: `container-{user_id}-{type}.conf`.
///
/// The name is unambiguous because a type name never contains `-`.
pub fn route_file_name(user: &UserId, kind: &TypeName) -> String {
    format!("{FILE_PREFIX}{user}-{kind}{FILE_SUFFIX}")
}

/// Renders the route file of `route`: the `location /container/{user_id}/{type}/` block and the
/// redirect of the bare path, to be included inside a `server` block.
pub fn render_route(route: &Route) -> Result<String> {
    let prefix = format!("/container/{}/{}", route.user, route.kind);
    render(
        ROUTE_TEMPLATE,
        context! {
            user => route.user.as_str(),
            kind => route.kind.as_str(),
            port => route.port,
            strip_prefix => route.strip_prefix,
            prefix => prefix,
        },
    )
}

/// Renders the http-level snippet (`cm-map.conf`) defining `$cm_connection_upgrade` and the cookie maps, which every route
/// uses for WebSocket upgrades. The operator includes it once in the `http` block.
pub fn render_map_snippet() -> String {
    // The map template has no variables, so rendering it can not fail short of a bug that the
    // snapshot test would catch first.
    render(MAP_TEMPLATE, context! { cookie_steps => cookie_steps() })
        .unwrap_or_else(|e| unreachable!("the map snippet renders: {e:?}"))
}

pub(crate) const FILE_PREFIX: &str = "container-";
pub(crate) const FILE_SUFFIX: &str = ".conf";

/// The port recorded in a route file's header line, if it has one.
pub(crate) fn port_of(content: &str) -> Option<u16> {
    content
        .lines()
        .find_map(|line| line.strip_prefix("# cm-route "))
        .and_then(|header| header.split(' ').find_map(|field| field.strip_prefix("port=")))
        .and_then(|port| port.parse().ok())
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Block tags on their own lines leave no blank lines behind; the file ends with a newline.
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build();
        match syntax {
            Ok(syntax) => env.set_syntax(syntax),
            Err(e) => unreachable!("the syntax configuration is valid: {e:?}"),
        }
        // `.conf` names: minijinja's default callback escapes nothing for them, which is right for
        // nginx syntax (HTML escaping would not help there anyway).
        for (name, source) in [
            (ROUTE_TEMPLATE, include_str!("templates/route.conf.j2")),
            (MAP_TEMPLATE, include_str!("templates/cm-map.conf.j2")),
            (SITE_TEMPLATE, include_str!("templates/site.conf.j2")),
            ("maps.conf", include_str!("templates/maps.conf.j2")),
            ("proxy.conf", include_str!("templates/proxy.conf.j2")),
        ] {
            if let Err(e) = env.add_template(name, source) {
                unreachable!("embedded template {name} parses: {e:?}");
            }
        }
        env
    })
}

fn render(name: &str, ctx: minijinja::Value) -> Result<String> {
    environment()
        .get_template(name)
        .and_then(|template| template.render(ctx))
        .map_err(|e| Error::internal(format!("rendering nginx template {name} failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(user: &str, kind: &str, port: u16, strip_prefix: bool) -> Route {
        Route {
            user: UserId::parse(user).unwrap(),
            kind: TypeName::parse(kind).unwrap(),
            port,
            strip_prefix,
        }
    }

    #[test]
    fn the_header_records_the_port() {
        let text = render_route(&route("alice", "cli_v4", 9001, true)).unwrap();
        assert_eq!(port_of(&text), Some(9001));
        assert_eq!(port_of("location / {}"), None);
    }

    #[test]
    fn file_names_put_the_type_last() {
        let name = route_file_name(&UserId::parse("a-b_c").unwrap(), &TypeName::parse("x_1").unwrap());
        assert_eq!(name, "container-a-b_c-x_1.conf");
    }

    #[test]
    fn strip_and_keep_differ_only_in_the_proxy_pass_part() {
        let strip = render_route(&route("u", "t", 9000, true)).unwrap();
        let keep = render_route(&route("u", "t", 9000, false)).unwrap();
        assert!(strip.contains("proxy_pass http://127.0.0.1:9000/;"));
        assert!(keep.contains("proxy_pass http://127.0.0.1:9000;"));
        assert!(!keep.contains("proxy_redirect"));
    }
}
