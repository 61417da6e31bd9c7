//! `GET /oauth2/assets/style.css`: the login pages' stylesheet (CSP `style-src 'self'`: no
//! inline styles).

use actix_web::HttpResponse;

pub(crate) async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../assets/style.css"))
}
