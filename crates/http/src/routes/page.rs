//! The chat page at `/` and its assets under `/assets/`, compiled into the binary (no CDN: it
//! works offline). Served outside `/api/v1`, so loading it needs no key; the page itself asks
//! for one and trades it for a WebSocket ticket.
//!
//! The page is held to a strict Content-Security-Policy: scripts and styles only from this
//! origin (no inline script or style), connections only back to this origin (`connect-src
//! 'self'` covers the WebSocket), no frames, no plugins, no forms posting elsewhere. Its
//! script puts everything that comes from a person, a model or the data on the page as text.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use actix_web::{HttpResponse, web};

/// The policy the page and its assets are served with.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");
const FAVICON_SVG: &str = include_str!("../../assets/favicon.svg");

/// Registers `/` and `/assets/*`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/assets/app.js", web::get().to(app_js))
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

async fn app_css() -> HttpResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}

async fn favicon() -> HttpResponse {
    asset("image/svg+xml", FAVICON_SVG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script_and_never_parses_html() {
        // Every <script> has a src: the CSP forbids inline script.
        assert!(INDEX_HTML.contains("<script src=\"/assets/app.js\""));
        assert_eq!(INDEX_HTML.matches("<script").count(), 1);
        let handlers = INDEX_HTML.match_indices(" on").any(|(i, _)| {
            let rest = &INDEX_HTML[i + 3..];
            let name = rest.chars().take_while(char::is_ascii_alphabetic).count();
            name > 0 && rest[name..].starts_with('=')
        });
        assert!(!handlers, "no inline event handlers");
        assert!(!INDEX_HTML.contains("style="), "no inline styles");
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"));
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!APP_JS.contains(sink), "app.js uses {sink}");
        }
        assert!(CONTENT_SECURITY_POLICY_VALUE.contains("script-src 'self';"));
        assert!(CONTENT_SECURITY_POLICY_VALUE.contains("connect-src 'self';"));
    }
}
