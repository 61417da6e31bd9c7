//! Rich authorization requests (RFC 9396) against a real Redis: `authorization_details`
//! pushed (plain or inside a request object), shown on the consent page, returned in the
//! token response and carried in the access token; refused for types the client may not use.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::jar::{KEY, claims, es256, push_object, sign};

const PAYMENT: &str = r#"[{"type":"payment_initiation","instructedAmount":{"currency":"EUR","amount":"123.50"},"creditorName":"Merchant A"}]"#;

#[tokio::test]
async fn authorization_details_are_consented_to_and_granted() {
    let app = spawn_app_with(Backend::Redis, |s| {
        s.clients[0].authorization_details_types = vec!["payment_initiation".into()];
        s.clients[2].authorization_details_types = vec!["payment_initiation".into()];
    })
    .await;
    let m = app.metadata().await;
    assert_eq!(
        m["authorization_details_types_supported"],
        json!(["payment_initiation"])
    );

    let res = app
        .push(&with(
            push_params("app"),
            &[("authorization_details", Some(PAYMENT))],
        ))
        .await;
    let uri = request_uri_of(res).await;
    let browser = http_client();
    let html = app.authorize(&browser, "app", &uri).await.text().await.unwrap();
    // The user sees what they grant before the code is issued (RFC 9396 §7).
    let consent = app.login(&browser, &html, "alice", PASSWORD).await;
    assert_eq!(consent.status(), 200);
    let page = consent.text().await.unwrap();
    assert!(
        page.contains("payment_initiation") && page.contains("Merchant A"),
        "{page}"
    );
    let res = app.consent(&browser, &page, "allow").await;
    assert_eq!(res.status(), 303);
    let code = location_params(&res)["code"].clone();
    let tokens: Value = app.post_token(&token_params(&code)).await.json().await.unwrap();
    let granted: Value = serde_json::from_str(PAYMENT).unwrap();
    assert_eq!(tokens["authorization_details"], granted, "{tokens}");
    let at = crate::token::jwt_part(tokens["access_token"].as_str().unwrap(), 1);
    assert_eq!(at["authorization_details"], granted);

    // Inside a signed request object, too.
    let mut c = claims(&app);
    c["authorization_details"] = granted.clone();
    assert_eq!(push_object(&app, &sign(es256(), c, KEY), &[]).await.status(), 201);
}

#[tokio::test]
async fn unknown_or_malformed_authorization_details_are_refused() {
    let app = spawn_app_with(Backend::Memory, |s| {
        s.clients[0].authorization_details_types = vec!["payment_initiation".into()];
    })
    .await;
    for details in [
        r#"[{"type":"account_information"}]"#,
        r#"[{"amount":"1"}]"#,
        r#"{"type":"payment_initiation"}"#,
        "[]",
        "not json",
    ] {
        let res = app
            .push(&with(
                push_params("app"),
                &[("authorization_details", Some(details))],
            ))
            .await;
        assert_oauth_error(res, 400, "invalid_authorization_details").await;
    }
    // A client without types may not use any.
    let params = with(
        push_params("post-app"),
        &[
            ("authorization_details", Some(PAYMENT)),
            ("client_secret", Some(SECRET)),
        ],
    );
    let res = app.push_unauthenticated(&params).await;
    assert_oauth_error(res, 400, "invalid_authorization_details").await;
}
