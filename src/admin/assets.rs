//! The web console's files, embedded at build time from `web/console/` (see `build.rs`), and
//! the answer that serves one.
//!
//! They hold no data and no secret, so they are served to anyone who can reach the admin
//! address, before the API's refusals: the page must load to ask a remote user for the token.
//! Everything the page shows comes from the API, under its refusals.

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;

mod files {
    include!(concat!(env!("OUT_DIR"), "/console_files.rs"));
}

/// No inline script or style, nothing from another origin, never in a frame.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// An embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub name: &'static str,
    pub bytes: &'static [u8],
}

impl Asset {
    pub fn content_type(&self) -> &'static str {
        match self.name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("html") => "text/html; charset=utf-8",
            Some("js" | "mjs") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            Some("png") => "image/png",
            Some("json") => "application/json",
            Some("woff2") => "font/woff2",
            _ => "application/octet-stream",
        }
    }
}

/// Every embedded file.
pub fn all() -> impl Iterator<Item = Asset> {
    files::FILES
        .iter()
        .map(|&(name, bytes)| Asset { name, bytes })
}

/// The file a `GET`/`HEAD` of `path` asks for: `/` is the page, `/assets/…` its files. Nothing
/// else is the console's (the API lives under its own prefix).
pub fn find(method: &Method, path: &str) -> Option<Asset> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let name = match path {
        "/" | "/index.html" => "index.html",
        _ => path
            .strip_prefix('/')
            .filter(|p| p.starts_with("assets/"))?,
    };
    all().find(|asset| asset.name == name)
}

/// The answer carrying `asset`. The page is never cached, so an upgraded helper serves its own
/// page; its files are revalidated too (they are small, and loopback is fast).
pub fn response(asset: Asset) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(asset.bytes)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    let set = |headers: &mut http::HeaderMap, name, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_TYPE, asset.content_type());
    set(headers, header::CACHE_CONTROL, "no-cache");
    set(headers, header::CONTENT_SECURITY_POLICY, CSP);
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_files_are_found_and_nothing_else() {
        let page = find(&Method::GET, "/").expect("the page is embedded");
        assert_eq!(page.name, "index.html");
        assert!(page.content_type().starts_with("text/html"));
        assert!(find(&Method::HEAD, "/index.html").is_some());
        assert!(find(&Method::POST, "/").is_none());
        for asset in all() {
            assert_eq!(
                find(&Method::GET, &format!("/{}", asset.name)).map(|a| a.name),
                (asset.name.starts_with("assets/") || asset.name == "index.html")
                    .then_some(asset.name),
            );
        }
        for path in [
            "/assets/",
            "/assets/../index.html",
            "/web/console/index.html",
            "/x",
        ] {
            assert!(find(&Method::GET, path).is_none(), "{path}");
        }
    }

    #[test]
    fn the_first_load_stays_small() {
        // The budget is 300 KB compressed for the first page load; every file at once,
        // uncompressed, is already under it.
        let total: usize = all().map(|a| a.bytes.len()).sum();
        assert!(
            total < 300 * 1024,
            "the console's files weigh {total} bytes"
        );
    }

    #[test]
    fn the_embedded_list_names_no_checkout() {
        // Cargo reuses the build script's output across checkouts sharing a target directory:
        // an absolute path in it would embed another checkout's files, or fail to build once
        // that checkout is gone.
        let list = include_str!(concat!(env!("OUT_DIR"), "/console_files.rs"));
        assert!(!list.contains(env!("CARGO_MANIFEST_DIR")), "{list}");
        assert!(
            list.contains("concat!(env!(\"CARGO_MANIFEST_DIR\")"),
            "{list}"
        );
    }
}
