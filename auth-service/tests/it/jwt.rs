//! Access token verification: a crafted valid token passes, and each defect is refused.

use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::common::{public_pem, s, test_key, TestApp};

/// Claims valid for the session of a real login.
fn claims(login: &Value, now: i64) -> Value {
    let access = s(login, "access_token");
    let payload = access.split('.').nth(1).unwrap();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["iat"] = json!(now);
    claims["nbf"] = json!(now);
    claims["exp"] = json!(now + 300);
    claims["jti"] = json!(uuid::Uuid::new_v4().to_string());
    claims
}

/// Signs with the key's own algorithm, under the given kid and typ.
fn sign_as(pem: &str, kid: &str, typ: &str, claims: &Value) -> String {
    crate::common::sign(pem, json!({ "kid": kid, "typ": typ }), claims)
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[sqlx::test]
async fn access_token_negatives(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let login = app.signed_in("jwt@example.com").await;
    let now = app.clock_now();
    let (pem, kid) = test_key(0);
    let me = |token: String| {
        let app = &app;
        async move { app.get("/api/auth/me", Some(&token)).await }
    };

    // Positive control: a token we craft the way the service does is accepted.
    let good = claims(&login, now);
    let res = me(sign_as(&pem, &kid, "at+jwt", &good)).await;
    assert_eq!(res.status, StatusCode::OK, "control token refused: {:?}", res.body);

    // alg none, no signature.
    let none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "at+jwt", "kid": kid })),
        b64(&good)
    );
    assert_eq!(me(none).await.status, StatusCode::UNAUTHORIZED, "alg none");

    // HS256 keyed with the public key (the classic algorithm confusion attack).
    let public = public_pem(&pem);
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.clone());
    header.typ = Some("at+jwt".into());
    let hs = jsonwebtoken::encode(&header, &good, &EncodingKey::from_secret(public.as_bytes())).unwrap();
    assert_eq!(
        me(hs).await.status,
        StatusCode::UNAUTHORIZED,
        "HS256 with the public key"
    );

    // Signed by a key the service does not know, with its own kid, and with our kid.
    let (other_pem, other_kid) = test_key(1);
    assert_eq!(
        me(sign_as(&other_pem, &other_kid, "at+jwt", &good)).await.status,
        StatusCode::UNAUTHORIZED,
        "unknown kid"
    );
    assert_eq!(
        me(sign_as(&other_pem, &kid, "at+jwt", &good)).await.status,
        StatusCode::UNAUTHORIZED,
        "bad signature"
    );

    // No kid.
    let no_kid = crate::common::sign(&pem, json!({ "typ": "at+jwt" }), &good);
    assert_eq!(me(no_kid).await.status, StatusCode::UNAUTHORIZED, "missing kid");

    // Expired (beyond the leeway), not yet valid.
    let mut expired = good.clone();
    expired["exp"] = json!(now - 60);
    expired["iat"] = json!(now - 1000);
    expired["nbf"] = json!(now - 1000);
    assert_eq!(
        me(sign_as(&pem, &kid, "at+jwt", &expired)).await.status,
        StatusCode::UNAUTHORIZED,
        "expired"
    );
    let mut future = good.clone();
    future["nbf"] = json!(now + 120);
    assert_eq!(
        me(sign_as(&pem, &kid, "at+jwt", &future)).await.status,
        StatusCode::UNAUTHORIZED,
        "nbf in the future"
    );

    // Wrong audience, wrong issuer, missing audience.
    let mut aud = good.clone();
    aud["aud"] = json!("someone-else");
    assert_eq!(
        me(sign_as(&pem, &kid, "at+jwt", &aud)).await.status,
        StatusCode::UNAUTHORIZED,
        "wrong aud"
    );
    let mut iss = good.clone();
    iss["iss"] = json!("https://evil.test");
    assert_eq!(
        me(sign_as(&pem, &kid, "at+jwt", &iss)).await.status,
        StatusCode::UNAUTHORIZED,
        "wrong iss"
    );
    let mut no_aud = good.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        me(sign_as(&pem, &kid, "at+jwt", &no_aud)).await.status,
        StatusCode::UNAUTHORIZED,
        "no aud"
    );

    // Wrong typ (e.g. an ID token).
    assert_eq!(
        me(sign_as(&pem, &kid, "JWT", &good)).await.status,
        StatusCode::UNAUTHORIZED,
        "typ JWT"
    );

    // Tampered payload.
    let token = sign_as(&pem, &kid, "at+jwt", &good);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut tampered = good.clone();
    tampered["sub"] = json!(uuid::Uuid::new_v4().to_string());
    parts[1] = b64(&tampered);
    assert_eq!(me(parts.join(".")).await.status, StatusCode::UNAUTHORIZED, "tampered");

    // Valid signature, but a session that does not exist.
    let mut other_session = good.clone();
    other_session["sid"] = json!(uuid::Uuid::new_v4().to_string());
    assert_eq!(
        me(sign_as(&pem, &kid, "at+jwt", &other_session)).await.status,
        StatusCode::UNAUTHORIZED,
        "unknown sid"
    );

    let res = me("garbage".into()).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers["www-authenticate"], "Bearer error=\"invalid_token\"");
    assert_eq!(
        app.get("/api/auth/me", None).await.status,
        StatusCode::UNAUTHORIZED,
        "no token"
    );
}

#[sqlx::test]
async fn issued_tokens_have_the_expected_shape(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let login = app.signed_in("shape@example.com").await;
    let access = s(&login, "access_token");
    let header = jsonwebtoken::decode_header(access).unwrap();
    assert_eq!(header.alg, Algorithm::ES256, "the default algorithm of new keys");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.kid.as_deref(), Some(test_key(0).1.as_str()));
    let claims = claims(&login, 0);
    assert_eq!(claims["iss"], "https://auth.test");
    assert_eq!(claims["aud"], "suma-test");
    assert_eq!(claims["sid"], login["session_id"]);
}

impl TestApp {
    /// The app clock as seconds since the epoch.
    pub fn clock_now(&self) -> i64 {
        use auth_service::clock::Clock as _;
        self.clock.now().timestamp()
    }
}
