//! The chat page at `/`, the activity page at `/activity` and their assets under `/assets/`,
//! compiled into the binary (no CDN: they work offline). Served outside `/api/v1`, so loading
//! them needs no key; the pages ask for one (the chat page trades it for a WebSocket ticket, the
//! activity page sends it with its `/api/v1/analytics/*` and `/api/v1/history/{id}` reads).
//!
//! The pages are held to a strict Content-Security-Policy: scripts and styles only from this
//! origin (no inline script or style), connections only back to this origin (`connect-src
//! 'self'` covers the WebSocket), no frames, no plugins, no forms posting elsewhere. Their
//! scripts put everything that comes from a person, a model or the data on the page as text.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use actix_web::{HttpResponse, web};

/// The policy the page and its assets are served with.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const ACTIVITY_HTML: &str = include_str!("../../assets/activity.html");
const ACTIVITY_JS: &str = include_str!("../../assets/activity.js");
const APP_CSS: &str = include_str!("../../assets/app.css");
const FAVICON_SVG: &str = include_str!("../../assets/favicon.svg");

/// Registers `/`, `/activity` and `/assets/*`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/activity", web::get().to(activity))
        .route("/assets/app.js", web::get().to(app_js))
        .route("/assets/activity.js", web::get().to(activity_js))
        .route("/assets/app.css", web::get().to(app_css))
        .route("/assets/favicon.svg", web::get().to(favicon));
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        .insert_header((CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_VALUE))
        // The assets change with the binary; revalidating costs nothing locally.
        .insert_header((CACHE_CONTROL, "no-cache"))
        .body(body)
}

async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn activity() -> HttpResponse {
    asset("text/html; charset=utf-8", ACTIVITY_HTML)
}

async fn activity_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", ACTIVITY_JS)
}

async fn app_css() -> HttpResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}

async fn favicon() -> HttpResponse {
    asset("image/svg+xml", FAVICON_SVG)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page loads exactly one script, `script`, by `src`; no inline handler or style; no
    /// absolute URL (nothing from elsewhere).
    fn check_page(name: &str, html: &str, script: &str) {
        // Every <script> has a src: the CSP forbids inline script.
        assert!(
            html.contains(&format!("<script src=\"{script}\"")),
            "{name} loads {script}"
        );
        assert_eq!(html.matches("<script").count(), 1, "{name}: one script");
        let handlers = html.match_indices(" on").any(|(i, _)| {
            let rest = &html[i + 3..];
            let name = rest.chars().take_while(char::is_ascii_alphabetic).count();
            name > 0 && rest[name..].starts_with('=')
        });
        assert!(!handlers, "{name}: no inline event handlers");
        assert!(!html.contains("style="), "{name}: no inline styles");
        assert!(!html.contains("<style"), "{name}: no style element");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{name}: nothing from elsewhere"
        );
    }

    /// A script never turns a string into markup or code.
    fn check_script(name: &str, js: &str) {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "createContextualFragment",
            "DOMParser",
        ] {
            assert!(!js.contains(sink), "{name} uses {sink}");
        }
        // setTimeout/setInterval with a string is eval too.
        for timer in [
            "setTimeout('",
            "setTimeout(\"",
            "setInterval('",
            "setInterval(\"",
        ] {
            assert!(
                !js.contains(timer),
                "{name} evaluates a string with {timer}"
            );
        }
    }

    #[test]
    fn the_page_has_no_inline_script_and_never_parses_html() {
        check_page("index.html", INDEX_HTML, "/assets/app.js");
        check_script("app.js", APP_JS);
        assert!(CONTENT_SECURITY_POLICY_VALUE.contains("script-src 'self';"));
        assert!(CONTENT_SECURITY_POLICY_VALUE.contains("connect-src 'self';"));
    }

    #[test]
    fn the_activity_page_has_no_inline_script_and_never_parses_html() {
        check_page("activity.html", ACTIVITY_HTML, "/assets/activity.js");
        check_script("activity.js", ACTIVITY_JS);
        // Linked both ways; it reads the key the chat page stores, from the same place.
        assert!(INDEX_HTML.contains("href=\"/activity\""));
        assert!(ACTIVITY_HTML.contains("href=\"/\""));
        assert!(ACTIVITY_JS.contains("const KEY = 'bqai.key'"));
        assert!(APP_JS.contains("const KEY = 'bqai.key'"));
        assert!(
            !ACTIVITY_JS.contains("localStorage"),
            "the key stays per tab"
        );
    }

    #[actix_web::test]
    async fn the_activity_page_and_its_script_are_served_with_the_policy() {
        use actix_web::{App, test};
        let app = test::init_service(App::new().configure(configure)).await;
        for (path, kind, body) in [
            ("/activity", "text/html", ACTIVITY_HTML),
            ("/assets/activity.js", "text/javascript", ACTIVITY_JS),
        ] {
            let resp =
                test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            let header = |name| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            assert!(header(CONTENT_TYPE).starts_with(kind), "{path}");
            assert_eq!(
                header(CONTENT_SECURITY_POLICY),
                CONTENT_SECURITY_POLICY_VALUE,
                "{path}"
            );
            assert_eq!(header(CACHE_CONTROL), "no-cache", "{path}");
            let got = test::read_body(resp).await;
            assert_eq!(got, body.as_bytes(), "{path}");
        }
    }
}
