//! Interoperability: access tokens as the service signs them (`SigningKey::sign_jwt`, `typ: at+jwt`), for
//! each algorithm, verified through the JWKS the service publishes (`PublicKey::jwk`) by two independent
//! libraries, PyJWT and jwcrypto, from the sandbox's Python venv (`SUMA_SANDBOX_VENV`, or the sandbox's own;
//! `cargo xtask sandbox up` installs both). A client of the service is what these libraries stand for: if
//! they accept the tokens and refuse a tampered one, the algorithms, the JWK members and the kids are right.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use jwt_keys::{generate, Algorithm, SigningKey};
use serde_json::{json, Value};

/// Verifies every token of the case with both libraries, and a tampered copy of each; prints what each
/// library read (the `sub`) or refused.
const VERIFY: &str = r#"
import json, sys
import jwt
from jwcrypto import jwk, jws

case = json.load(sys.stdin)
pyjwt_keys = jwt.PyJWKSet.from_dict(case["jwks"])
jwcrypto_keys = jwk.JWKSet.from_json(json.dumps(case["jwks"]))

def pyjwt(token, alg):
    kid = jwt.get_unverified_header(token)["kid"]
    claims = jwt.decode(token, key=pyjwt_keys[kid], algorithms=[alg], audience="suma-test", issuer="https://auth.test")
    return claims["sub"]

def jwcrypto(token, alg):
    signed = jws.JWS()
    signed.deserialize(token)
    kid = signed.jose_header["kid"]
    signed.verify(jwcrypto_keys.get_key(kid), alg=alg)
    return json.loads(signed.payload)["sub"]

def outcome(verify, token, alg):
    try:
        return verify(token, alg)
    except Exception as e:
        return "refused: " + type(e).__name__

out = []
for case_token in case["tokens"]:
    token, alg = case_token["token"], case_token["alg"]
    head, payload, signature = token.split(".")
    tampered = ".".join([head, payload, ("A" if signature[0] != "A" else "B") + signature[1:]])
    out.append({
        "alg": alg,
        "pyjwt": outcome(pyjwt, token, alg),
        "jwcrypto": outcome(jwcrypto, token, alg),
        "pyjwt_tampered": outcome(pyjwt, tampered, alg),
        "jwcrypto_tampered": outcome(jwcrypto, tampered, alg),
    })
print(json.dumps(out))
"#;

/// The venv's Python with PyJWT and jwcrypto, if the sandbox has been set up.
fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("SUMA_SANDBOX_VENV").map_or_else(
        || {
            // Cargo's run-time value first: a shared target directory may hold a binary built elsewhere.
            std::env::var_os("CARGO_MANIFEST_DIR")
                .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
                .join("../../target/sandbox/venv")
        },
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    let has_libraries = Command::new(&python)
        .args(["-c", "import jwt, jwcrypto"])
        .output()
        .is_ok_and(|out| out.status.success());
    has_libraries.then_some(python)
}

#[test]
fn pyjwt_and_jwcrypto_verify_every_algorithm_through_the_jwks_and_refuse_a_tampered_signature() {
    let Some(python) = python() else {
        eprintln!(
            "skipped: no Python with PyJWT and jwcrypto (run `cargo xtask sandbox up`, which installs them into its venv)"
        );
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (mut keys, mut tokens) = (Vec::new(), Vec::new());
    for algorithm in Algorithm::ALL {
        let key = SigningKey::from_pem(&generate(algorithm, 2048).unwrap().pem).unwrap();
        let claims = json!({
            "iss": "https://auth.test", "aud": "suma-test", "sub": algorithm.name(),
            "iat": now, "nbf": now, "exp": now + 300,
        });
        tokens.push(json!({ "alg": algorithm.name(), "token": key.sign_jwt(Some("at+jwt"), &claims).unwrap() }));
        keys.push(key.public().jwk());
    }
    let case = json!({ "jwks": { "keys": keys }, "tokens": tokens });

    let mut child = Command::new(&python)
        .args(["-c", VERIFY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(case.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), Algorithm::ALL.len());
    for result in results {
        let alg = result["alg"].as_str().unwrap();
        assert_eq!(result["pyjwt"], alg, "PyJWT: {result}");
        assert_eq!(result["jwcrypto"], alg, "jwcrypto: {result}");
        for library in ["pyjwt_tampered", "jwcrypto_tampered"] {
            assert!(
                result[library].as_str().is_some_and(|o| o.starts_with("refused")),
                "{library}: {result}"
            );
        }
    }
}
