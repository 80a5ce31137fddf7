//! Templates, HTML answers, error pages and the security headers of every dashboard answer.
//!
//! Templates are embedded with `include_str!`; each name ends in `.html`, so minijinja escapes
//! every value for HTML, and undefined variables are errors (strict), not empty strings.

use std::fmt;
use std::sync::LazyLock;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};
use minijinja::{Environment, UndefinedBehavior, Value, context};
use serde::Serialize;

use super::assets;
use super::views::to_value;
use crate::sessions::clear_session_cookie;

/// The Content-Security-Policy of every answer: our own files only, no inline script or style,
/// no framing, forms post only to us.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("macros.html", include_str!("../../templates/macros.html")),
    ("login.html", include_str!("../../templates/login.html")),
    ("dashboard.html", include_str!("../../templates/dashboard.html")),
    ("container.html", include_str!("../../templates/container.html")),
    (
        "health_card.html",
        include_str!("../../templates/health_card.html"),
    ),
    ("delete.html", include_str!("../../templates/delete.html")),
    ("confirm.html", include_str!("../../templates/confirm.html")),
    ("create.html", include_str!("../../templates/create.html")),
    ("users.html", include_str!("../../templates/users.html")),
    ("nodes.html", include_str!("../../templates/nodes.html")),
    ("keys.html", include_str!("../../templates/keys.html")),
    ("settings.html", include_str!("../../templates/settings.html")),
    ("logs.html", include_str!("../../templates/logs.html")),
    ("audit.html", include_str!("../../templates/audit.html")),
    ("audit_rows.html", include_str!("../../templates/audit_rows.html")),
    ("error.html", include_str!("../../templates/error.html")),
];

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Block tags on their own lines leave no blank lines behind.
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    for (name, source) in TEMPLATES {
        if let Err(e) = env.add_template(name, source) {
            panic!("dashboard template {name} does not parse: {e:#}");
        }
    }
    // Our own URLs (no user input), so marked safe rather than escaped.
    env.add_function("asset", |name: &str| Value::from_safe_string(assets::url(name)));
    env
});

/// The navigation bar's view of who is logged in.
#[derive(Debug, Clone, Serialize)]
pub struct Chrome {
    /// `admin`, or the user id.
    pub who: String,
    /// True for the admin.
    pub is_admin: bool,
    /// What the viewer may do to the containers it sees (everything for the admin; for a user,
    /// the configured `[auth] user_actions`), so pages offer only what works.
    pub may: May,
    /// The session's CSRF token, for the forms of the page (logout included).
    pub csrf: String,
    /// The page the navigation marks as current.
    pub active: &'static str,
}

/// The actions a page may offer.
#[derive(Debug, Clone, Serialize)]
pub struct May {
    pub start: bool,
    pub stop: bool,
    pub restart: bool,
    pub logs: bool,
    pub delete: bool,
    pub purge: bool,
    pub add_ssh_key: bool,
    pub remove_ssh_key: bool,
}

/// A failed page request.
pub enum PageError {
    /// No session (or an ended one): 303 to the login page.
    Login {
        /// Remove the stale cookie.
        clear_cookie: bool,
        /// The request came over https.
        https: bool,
    },
    /// An error page.
    Page {
        /// The status.
        status: StatusCode,
        /// A short title.
        title: String,
        /// What happened, for humans.
        message: String,
        /// The navigation, when someone is logged in (boxed: it is large, errors stay small).
        chrome: Option<Box<Chrome>>,
    },
    /// An error for the scripts under `/ui/`: `{"error": message}`.
    Json {
        /// The status.
        status: StatusCode,
        /// What happened.
        message: String,
    },
}

impl PageError {
    /// A page with a status and a message.
    pub fn page(status: StatusCode, message: impl Into<String>, chrome: Option<Chrome>) -> Self {
        let title = match status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::CONFLICT => "Conflict",
            StatusCode::SERVICE_UNAVAILABLE => "Unavailable",
            s if s.is_client_error() => "Request refused",
            _ => "Something went wrong",
        };
        PageError::Page {
            status,
            title: title.to_owned(),
            message: message.into(),
            chrome: chrome.map(Box::new),
        }
    }

    /// A bug.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::page(StatusCode::INTERNAL_SERVER_ERROR, message, None)
    }
}

impl fmt::Debug for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageError::Login { .. } => f.write_str("login required"),
            PageError::Page { status, message, .. } | PageError::Json { status, message } => {
                write!(f, "{status}: {message}")
            }
        }
    }
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::Login { .. } => StatusCode::SEE_OTHER,
            PageError::Page { status, .. } | PageError::Json { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            PageError::Login { clear_cookie, https } => {
                let mut answer = HttpResponse::SeeOther();
                answer.insert_header((header::LOCATION, "/login"));
                answer.insert_header((header::CACHE_CONTROL, "no-store"));
                if *clear_cookie {
                    answer.insert_header((header::SET_COOKIE, clear_session_cookie(*https)));
                }
                answer.finish()
            }
            PageError::Page {
                status,
                title,
                message,
                chrome,
            } => {
                let ctx = context! {
                    title => title,
                    message => message,
                    status => status.as_u16(),
                    chrome => to_value(chrome),
                    flashes => Vec::<Value>::new(),
                };
                html(*status, render("error.html", ctx))
            }
            PageError::Json { status, message } => HttpResponse::build(*status)
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(serde_json::json!({ "error": message })),
        }
    }
}

/// Renders a template; a failure (a bug) is logged and becomes a plain error text.
pub fn render(name: &str, ctx: Value) -> Result<String, String> {
    ENVIRONMENT
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| {
            tracing::error!(template = name, error = %format!("{e:#}"), "dashboard template failed");
            "the page could not be rendered".to_owned()
        })
}

/// An HTML answer (never cached: pages show session data).
pub fn html(status: StatusCode, body: Result<String, String>) -> HttpResponse {
    match body {
        Ok(text) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(text),
        Err(text) => HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(text),
    }
}

/// The page for unknown paths.
pub fn not_found_page() -> HttpResponse {
    PageError::page(
        StatusCode::NOT_FOUND,
        "there is no page here: go back to the containers",
        None,
    )
    .error_response()
}

/// A 303 to a page of ours.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The middleware adding the security headers to every dashboard answer (error pages included).
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=()",
        ),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_escapes_html() {
        for (name, _) in TEMPLATES {
            assert!(ENVIRONMENT.get_template(name).is_ok(), "{name}");
        }
        let page = render(
            "error.html",
            context! {
                title => "<b>t</b>",
                message => "<script>alert(1)</script>",
                status => 400,
                chrome => Value::from(()),
                flashes => Vec::<Value>::new(),
            },
        )
        .expect("the error page renders");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{page}"
        );
        assert!(!page.contains("<script>alert"), "{page}");
    }

    #[test]
    fn undefined_variables_are_errors() {
        assert!(render("error.html", context! { title => "x" }).is_err());
    }
}
