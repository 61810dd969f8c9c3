//! Two-factor authentication end to end: TOTP enrolment, the login challenge, replay of every kind of
//! code, attempt limits, email and SMS codes, reset and disable guarded by the second factor.

use std::sync::{Arc, Mutex};

use auth_service::clock::Clock as _;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::common::{link_token, s, serve_stub, unique_email, wait_mail, TestApp, PASSWORD};

/// The current TOTP code of the user's credential at the app's clock. The stored secret is sealed, so
/// it is opened with the service's own sealer (the test configuration's `TOTP_ENCRYPTION_KEY`).
pub(crate) async fn current_code(app: &TestApp) -> String {
    let (user_id, stored, format): (uuid::Uuid, Vec<u8>, i16) =
        sqlx::query_as("SELECT user_id, secret, secret_format FROM totp_credentials")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    let (secret, _) = app.state.totp_sealer.open(user_id, &stored, format).unwrap();
    let step = auth_service::totp::step_of(app.clock.now().timestamp());
    auth_service::totp::code_at(&secret, step)
}

/// Signs up, verifies the address, enables TOTP; returns (access token, recovery codes).
pub(crate) async fn enrolled(app: &TestApp, email: &str) -> (String, Vec<String>) {
    let login = app.verified_signed_in(email).await;
    let access = s(&login, "access_token").to_owned();
    let setup = app
        .call(Method::POST, "/api/auth/2fa/totp/setup", None, Some(&access))
        .await;
    assert_eq!(setup.status, StatusCode::OK, "{:?}", setup.body);
    assert!(s(&setup.body, "otpauth_uri").starts_with("otpauth://totp/"));
    assert_eq!(s(&setup.body, "secret").len(), 32, "160-bit base32 secret");
    let wrong = app
        .call(
            Method::POST,
            "/api/auth/2fa/totp/confirm",
            Some(json!({ "code": "000000" })),
            Some(&access),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body["error"], "invalid_code");
    let code = current_code(app).await;
    let confirm = app
        .call(
            Method::POST,
            "/api/auth/2fa/totp/confirm",
            Some(json!({ "code": code })),
            Some(&access),
        )
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{:?}", confirm.body);
    let codes: Vec<String> = confirm.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    // Each code carries at least 112 bits (ASVS for codes stored as an unsalted hash): 24 base32
    // characters, 120 bits.
    for code in &codes {
        let symbols = code.chars().filter(|c| c.is_ascii_alphanumeric()).count();
        assert!(symbols * 5 >= 112, "{code}: {} bits", symbols * 5);
    }
    (access, codes)
}

async fn challenge(app: &TestApp, email: &str) -> String {
    let res = app.login(email, PASSWORD).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!(res.body["two_factor_required"], true);
    assert!(
        res.body.get("access_token").is_none(),
        "no tokens before the second factor"
    );
    s(&res.body, "challenge_id").to_owned()
}

async fn verify(app: &TestApp, challenge: &str, code: &str) -> crate::common::Resp {
    app.post(
        "/api/auth/2fa/verify",
        json!({ "challenge_id": challenge, "code": code }),
    )
    .await
}

#[sqlx::test]
async fn totp_login_challenge_and_every_code_works_once(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("totp");
    let (_, recovery) = enrolled(&app, &email).await;
    wait_mail(&email, "two-factor settings changed").await;

    // The code that confirmed the enrolment cannot be replayed at login.
    let used = current_code(&app).await;
    let c1 = challenge(&app, &email).await;
    let res = verify(&app, &c1, &used).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.body["error"], "invalid_code");

    app.clock.advance(chrono::Duration::seconds(30));
    let code = current_code(&app).await;
    let res = verify(&app, &c1, &code).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    let access = s(&res.body, "access_token").to_owned();
    assert_eq!(app.get("/api/auth/me", Some(&access)).await.status, StatusCode::OK);
    // The challenge completed: it is gone.
    assert_eq!(verify(&app, &c1, &code).await.status, StatusCode::BAD_REQUEST);
    // The same TOTP code on a new challenge: replay refused.
    let c2 = challenge(&app, &email).await;
    assert_eq!(verify(&app, &c2, &code).await.status, StatusCode::UNAUTHORIZED);

    // A recovery code works once (any case, any separator).
    let res = verify(&app, &c2, &recovery[0].to_uppercase().replace('-', " ")).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    let c3 = challenge(&app, &email).await;
    assert_eq!(verify(&app, &c3, &recovery[0]).await.status, StatusCode::UNAUTHORIZED);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM recovery_codes WHERE used_at IS NOT NULL")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(stored, 1);

    let methods: Vec<Value> = app
        .audit("two_factor")
        .await
        .into_iter()
        .map(|(result, _, meta)| json!([result, meta["method"]]))
        .collect();
    assert_eq!(
        methods,
        [
            json!(["enabled", null]),
            json!(["verified", "totp"]),
            json!(["verified", "recovery_code"])
        ]
    );
}

#[sqlx::test]
async fn a_challenge_allows_five_attempts_and_failures_lock_the_account(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("brute");
    enrolled(&app, &email).await;
    let c = challenge(&app, &email).await;
    for _ in 0..4 {
        assert_eq!(verify(&app, &c, "123456").await.status, StatusCode::UNAUTHORIZED);
    }
    // The fifth wrong code locks the account (MAX_LOGIN_ATTEMPTS = 5), and the challenge is used up.
    let res = verify(&app, &c, "654321").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    app.clock.advance(chrono::Duration::seconds(30));
    let good = current_code(&app).await;
    assert_eq!(
        verify(&app, &c, &good).await.status,
        StatusCode::BAD_REQUEST,
        "challenge exhausted"
    );
    let res = app.login(&email, PASSWORD).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.body["error"], "account_locked");
}

#[sqlx::test]
async fn signing_in_again_buys_no_more_second_factor_guesses(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("regain");
    enrolled(&app, &email).await;
    // Two wrong codes per challenge, with the right password in between: the count carries over.
    for _ in 0..2 {
        let c = challenge(&app, &email).await;
        for code in ["111111", "222222"] {
            assert_eq!(verify(&app, &c, code).await.status, StatusCode::UNAUTHORIZED);
        }
    }
    let c = challenge(&app, &email).await;
    assert_eq!(verify(&app, &c, "333333").await.status, StatusCode::UNAUTHORIZED);
    // The fifth wrong code locked sign-in: the right code on the open challenge is refused, and so is
    // the right password.
    app.clock.advance(chrono::Duration::seconds(30));
    let good = current_code(&app).await;
    let res = verify(&app, &c, &good).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", res.body);
    assert_eq!(res.body["error"], "account_locked");
    let res = app.login(&email, PASSWORD).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", res.body);
    assert_eq!(res.body["error"], "account_locked");
    let mail = wait_mail(&email, "Your account was locked").await;
    assert!(mail.body.contains("wrong two-factor codes"), "{}", mail.body);
    let locked: Vec<String> = app
        .audit("account_locked")
        .await
        .into_iter()
        .map(|(result, ..)| result)
        .collect();
    assert_eq!(locked, ["second_factor"]);
}

#[sqlx::test]
async fn an_account_opens_a_bounded_number_of_challenges(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("challenges");
    enrolled(&app, &email).await;
    for _ in 0..auth_service::http::twofactor::OPEN_CHALLENGES {
        challenge(&app, &email).await;
    }
    let res = app.login(&email, PASSWORD).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", res.body);
    assert_eq!(res.body["error"], "rate_limited");
}

#[sqlx::test]
async fn email_is_not_offered_as_a_second_factor(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("otp");
    enrolled(&app, &email).await;
    let res = app.login(&email, PASSWORD).await;
    assert_eq!(res.body["methods"], json!(["totp", "recovery_code"]), "{:?}", res.body);
    let c = s(&res.body, "challenge_id").to_owned();
    let res = app
        .post("/api/auth/2fa/send", json!({ "challenge_id": c, "channel": "email" }))
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{:?}", res.body);
    assert!(
        crate::common::mails_to(&email)
            .iter()
            .all(|m| !m.subject.contains("sign-in code")),
        "no code was mailed"
    );
}

#[sqlx::test]
async fn a_texted_code_goes_through_the_twilio_api(pool: PgPool) {
    type Seen = Arc<Mutex<Vec<(Option<String>, std::collections::HashMap<String, String>)>>>;
    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    let stub = axum::Router::new().route(
        "/2010-04-01/Accounts/{sid}/Messages.json",
        axum::routing::post(
            move |headers: axum::http::HeaderMap,
                  axum::Form(form): axum::Form<std::collections::HashMap<String, String>>| {
                let recorder = recorder.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    recorder.lock().unwrap().push((auth, form));
                    (
                        StatusCode::CREATED,
                        axum::Json(json!({ "sid": "SM123", "status": "queued" })),
                    )
                }
            },
        ),
    );
    let url = serve_stub(stub).await;
    let app = TestApp::with(pool, |c| {
        c.twilio_base_url = url.clone();
        c.twilio_account_sid = Some("AC123".into());
        c.twilio_auth_token = Some("twilio-secret".into());
        c.twilio_from = Some("+15005550006".into());
    })
    .await;
    let email = unique_email("sms");
    let (access, _) = enrolled(&app, &email).await;
    let set_phone = |phone: &'static str, code: Option<String>| {
        let body = json!({ "phone": phone, "password": PASSWORD, "code": code });
        app.call(Method::PUT, "/api/auth/phone", Some(body), Some(&access))
    };
    let bad = set_phone("0612", None).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    // A step-up: with 2FA on, the password and a second factor.
    let res = set_phone("+33612345678", None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{:?}", res.body);
    assert_eq!(res.body["error"], "second_factor_required");
    app.clock.advance(chrono::Duration::seconds(30));
    let res = set_phone("+33612345678", Some(current_code(&app).await)).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{:?}", res.body);

    let login = app.login(&email, PASSWORD).await;
    assert!(login.body["methods"].as_array().unwrap().contains(&json!("sms")));
    let c = s(&login.body, "challenge_id").to_owned();
    let res = app
        .post("/api/auth/2fa/send", json!({ "challenge_id": c, "channel": "sms" }))
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (auth, form) = loop {
        if let Some(m) = seen.lock().unwrap().first().cloned() {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "no SMS reached the stub");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(form["To"], "+33612345678");
    assert_eq!(form["From"], "+15005550006");
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD.encode("AC123:twilio-secret");
    assert_eq!(auth.as_deref(), Some(format!("Basic {expected}").as_str()));
    let code: String = form["Body"].chars().filter(|c| c.is_ascii_digit()).take(6).collect();
    // One text per cool-down (SMS pumping costs money per message).
    let again = app
        .post("/api/auth/2fa/send", json!({ "challenge_id": c, "channel": "sms" }))
        .await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", again.body);
    assert_eq!(again.body["error"], "rate_limited");
    // Bound to its challenge, and single use.
    let other = challenge(&app, &email).await;
    assert_eq!(
        verify(&app, &other, &code).await.status,
        StatusCode::UNAUTHORIZED,
        "other challenge"
    );
    assert_eq!(verify(&app, &c, &code).await.status, StatusCode::OK);
    assert_eq!(verify(&app, &c, &code).await.status, StatusCode::BAD_REQUEST, "used");

    // A new number: the old one is told.
    app.clock.advance(chrono::Duration::seconds(30));
    let res = set_phone("+33699999999", Some(current_code(&app).await)).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{:?}", res.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let texts = seen.lock().unwrap().clone();
        if texts
            .iter()
            .any(|(_, f)| f["To"] == "+33612345678" && f["Body"].contains("was changed"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the old number was not told: {texts:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[sqlx::test]
async fn reset_with_2fa_needs_the_second_factor(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("reset2fa");
    enrolled(&app, &email).await;
    app.post("/api/auth/password/forgot", json!({ "email": email })).await;
    let token = link_token(&wait_mail(&email, "Reset your password").await.body);
    let body = |code: Option<&str>| json!({ "token": token, "new_password": "a brand new passphrase", "code": code });

    let res = app.post("/api/auth/password/reset", body(None)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.body["error"], "second_factor_required");
    let res = app.post("/api/auth/password/reset", body(Some("000000"))).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.body["error"], "invalid_code");
    // The token survived the failures; a valid second factor completes the reset.
    app.clock.advance(chrono::Duration::seconds(30));
    let code = current_code(&app).await;
    let res = app.post("/api/auth/password/reset", body(Some(&code))).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{:?}", res.body);
    // 2FA is still on after the reset.
    challenge_with_password(&app, &email, "a brand new passphrase").await;
}

#[sqlx::test]
async fn an_unverified_account_cannot_add_a_second_factor(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("unverified");
    let login = app.signed_in(&email).await;
    let access = s(&login, "access_token");
    let setup = app
        .call(Method::POST, "/api/auth/2fa/totp/setup", None, Some(access))
        .await;
    assert_eq!(setup.status, StatusCode::FORBIDDEN, "{:?}", setup.body);
    assert_eq!(setup.body["error"], "email_not_verified");
    let phone = app
        .call(
            Method::PUT,
            "/api/auth/phone",
            Some(json!({ "phone": "+447700900123", "password": PASSWORD })),
            Some(access),
        )
        .await;
    assert_eq!(phone.status, StatusCode::FORBIDDEN, "{:?}", phone.body);
}

/// The pre-registration hijack: someone registers the owner's address first and enrols their own
/// authenticator (possible before this service refused it; the test makes that state directly).
async fn pre_registered(app: &TestApp, email: &str) -> String {
    let (squatter_access, _) = enrolled(app, email).await;
    sqlx::query("UPDATE users SET email_verified = FALSE, phone = '+447700900123' WHERE email = $1")
        .bind(email)
        .execute(app.state.db.pool())
        .await
        .unwrap();
    squatter_access
}

async fn assert_owner_holds_the_account(app: &TestApp, email: &str, password: &str, squatter_access: &str) {
    let res = app.login(email, password).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert!(
        res.body.get("access_token").is_some(),
        "no second factor is asked for: {:?}",
        res.body
    );
    assert_eq!(
        app.get("/api/auth/me", Some(squatter_access)).await.status,
        StatusCode::UNAUTHORIZED,
        "the pre-registrant's session ended"
    );
    let cleared: Vec<String> = app
        .audit("two_factor")
        .await
        .into_iter()
        .map(|(result, ..)| result)
        .filter(|r| r == "cleared_unverified")
        .collect();
    assert_eq!(cleared.len(), 1);
    let phone: Option<String> = sqlx::query_scalar("SELECT phone FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(phone, None);
}

#[sqlx::test]
async fn a_reset_of_an_unverified_account_clears_the_factors_enrolled_before_it(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("hijack");
    let squatter = pre_registered(&app, &email).await;
    // The owner resets the password by email: no second factor is demanded (it would be the squatter's).
    app.post("/api/auth/password/forgot", json!({ "email": email })).await;
    let token = link_token(&wait_mail(&email, "Reset your password").await.body);
    let res = app
        .post(
            "/api/auth/password/reset",
            json!({ "token": token, "new_password": "the owner's own passphrase" }),
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{:?}", res.body);
    assert_owner_holds_the_account(&app, &email, "the owner's own passphrase", &squatter).await;
}

#[sqlx::test]
async fn verifying_the_address_clears_the_factors_enrolled_before_it(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("verifyclear");
    let squatter = pre_registered(&app, &email).await;
    app.post("/api/auth/verify-email/resend", json!({ "email": email }))
        .await;
    let mails = crate::common::wait_mails(&email, "Verify your email address", 2).await;
    let token = link_token(&mails.last().unwrap().body);
    let res = app.post("/api/auth/verify-email", json!({ "token": token })).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{:?}", res.body);
    assert_owner_holds_the_account(&app, &email, PASSWORD, &squatter).await;
}

async fn challenge_with_password(app: &TestApp, email: &str, password: &str) {
    let res = app.login(email, password).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body["two_factor_required"], true);
}

#[sqlx::test]
async fn disabling_needs_the_password_and_a_second_factor(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("disable");
    let (access, recovery) = enrolled(&app, &email).await;
    let call = |password: &str, code: &str| {
        app.call(
            Method::POST,
            "/api/auth/2fa/disable",
            Some(json!({ "password": password, "code": code })),
            Some(&access),
        )
    };
    assert_eq!(
        call("wrong password!!", &recovery[1]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(call(PASSWORD, "999999").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(call(PASSWORD, &recovery[1]).await.status, StatusCode::NO_CONTENT);
    let res = app.login(&email, PASSWORD).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(
        res.body.get("access_token").is_some(),
        "tokens again without a challenge"
    );
    assert_eq!(
        crate::common::wait_mails(&email, "two-factor settings changed", 2)
            .await
            .len(),
        2
    );
}

/// The stored row of the (only) TOTP credential: (user, secret as stored, format).
async fn stored_totp(app: &TestApp) -> (uuid::Uuid, Vec<u8>, i16) {
    sqlx::query_as("SELECT user_id, secret, secret_format FROM totp_credentials")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
}

#[sqlx::test]
async fn totp_secrets_are_sealed_at_rest(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("sealed");
    let login = app.verified_signed_in(&email).await;
    let setup = app
        .call(
            Method::POST,
            "/api/auth/2fa/totp/setup",
            None,
            Some(s(&login, "access_token")),
        )
        .await;
    assert_eq!(setup.status, StatusCode::OK);
    let (user, stored, format) = stored_totp(&app).await;
    assert_eq!(format, 1, "sealed");
    assert_eq!(stored.len(), auth_service::totp_seal::SEALED_LEN);
    let (secret, reseal) = app.state.totp_sealer.open(user, &stored, format).unwrap();
    assert!(!reseal);
    assert_eq!(auth_service::totp::base32(&secret), s(&setup.body, "secret"));
    assert!(
        !stored.windows(secret.len()).any(|w| w == secret.as_slice()),
        "the plaintext secret is not in the row"
    );
    let dump: String = sqlx::query_scalar("SELECT string_agg(t::text, '|') FROM totp_credentials t")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert!(!dump.contains(&hex::encode(&secret)));

    // The sealed secret still drives enrolment and a 2FA login.
    let confirm = app
        .call(
            Method::POST,
            "/api/auth/2fa/totp/confirm",
            Some(json!({ "code": current_code(&app).await })),
            Some(s(&login, "access_token")),
        )
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{:?}", confirm.body);
    app.clock.advance(chrono::Duration::seconds(30));
    let c = challenge(&app, &email).await;
    let res = verify(&app, &c, &current_code(&app).await).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
}

#[sqlx::test]
async fn plaintext_secrets_from_before_encryption_work_and_are_sealed_on_use(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let email = unique_email("legacy");
    enrolled(&app, &email).await;
    // What a row written before the encryption migration looks like: the raw secret, format 0.
    let (user, stored, format) = stored_totp(&app).await;
    let (secret, _) = app.state.totp_sealer.open(user, &stored, format).unwrap();
    sqlx::query("UPDATE totp_credentials SET secret = $1, secret_format = 0")
        .bind(&secret)
        .execute(app.state.db.pool())
        .await
        .unwrap();

    app.clock.advance(chrono::Duration::seconds(30));
    let c = challenge(&app, &email).await;
    let res = verify(&app, &c, &current_code(&app).await).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    let (_, resealed, format) = stored_totp(&app).await;
    assert_eq!(format, 1, "sealed on first use");
    assert_eq!(app.state.totp_sealer.open(user, &resealed, 1).unwrap(), (secret, false));
}

#[sqlx::test]
async fn a_rotated_totp_key_opens_old_secrets_and_reseals_them(pool: PgPool) {
    use base64::Engine as _;
    let before = TestApp::new(pool.clone()).await;
    let email = unique_email("rotate");
    enrolled(&before, &email).await;

    let new_key = [0x5au8; 32];
    let after = TestApp::with(pool, |cfg| {
        cfg.totp_encryption_key = Some(base64::engine::general_purpose::STANDARD.encode(new_key));
        cfg.totp_encryption_previous_keys = Some(crate::common::TOTP_KEY.to_owned());
    })
    .await;
    after.clock.advance(chrono::Duration::seconds(60));
    let c = challenge(&after, &email).await;
    let res = verify(&after, &c, &current_code(&after).await).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    let (_, stored, _) = stored_totp(&after).await;
    assert_eq!(
        &stored[1..9],
        &auth_service::totp_seal::key_id(&new_key),
        "sealed again with the newest key"
    );
    // The old key alone no longer opens it.
    let (user, stored, format) = stored_totp(&before).await;
    assert!(before.state.totp_sealer.open(user, &stored, format).is_err());
}
