//! The OpenAPI document, generated from the handlers' annotations and served at `/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::{account, admin, auth, gdpr, ops, sessions, twofactor};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "auth-service", description = "Accounts, login, tokens, sessions, email verification, password reset, two-factor authentication"),
    paths(
        auth::register, auth::login, auth::refresh, auth::logout, auth::me,
        auth::change_password,
        sessions::list, sessions::revoke,
        account::verify_email, account::resend_verification, account::forgot_password,
        account::reset_password, account::list_devices, account::delete_device,
        twofactor::totp_setup, twofactor::totp_confirm, twofactor::disable, twofactor::set_phone,
        twofactor::send_code, twofactor::verify,
        gdpr::record_consent, gdpr::list_consents, gdpr::export, gdpr::delete_account,
        ops::health, ops::ready, ops::metrics, ops::version, ops::jwks, ops::introspect,
        admin::audit, admin::audit_verify, admin::lock, admin::unlock, admin::revoke_refresh_tokens, admin::revoke_sessions,
    ),
    tags(
        (name = "admin", description = "The security-incident runbook's API. `Authorization: Bearer <JWT>` signed by a key of the service's key set (`kid`, with that key's algorithm: ES256, EdDSA, PS256 or RS256), with the service's `iss` and `aud`, `exp` at most 15 minutes after `iat`, and `roles` containing `admin` (else 403 `forbidden`; 401 for a missing or invalid token). Operator tokens minted by suma with the current signing key have `sub` = `ops:<actor>`, a `jti` and no `sid`: no session is checked. A token with a `sid` must belong to a live session of its `sub`. Other endpoints never accept a token without a session. Every call is audited as `admin_action`."),
    ),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The route serving the document.
pub fn router() -> Router<AppState> {
    let doc = document();
    Router::new().route("/openapi.json", get(move || async move { Json(doc.clone()) }))
}
