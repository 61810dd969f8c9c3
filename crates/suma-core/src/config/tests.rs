//! Checks of the example file's secrets that belong to no section module of their own.

use std::path::Path;

use super::parse_str;

const EXAMPLE: &str = include_str!("../../../../deploy/suma.yaml");

/// The example with production's JWT signing key given `jwt` (a flow mapping).
fn with_jwt(jwt: &str) -> String {
    let secret = "      - id: /suma-finance/auth/production/jwt-signing-key\n        kind: jwt-signing-key\n";
    assert!(EXAMPLE.contains(secret), "the example names production's JWT key");
    EXAMPLE.replacen(secret, &format!("{secret}        jwt: {jwt}\n"), 1)
}

#[test]
fn a_jwt_key_is_es256_by_default_and_sized_only_when_it_is_rsa() {
    let config = parse_str(EXAMPLE, Path::new("suma.yaml")).expect("the example is valid");
    let secret = config.environments["staging"]
        .secrets
        .iter()
        .find(|s| s.id.ends_with("jwt-signing-key"))
        .expect("staging has a JWT key");
    assert_eq!(secret.jwt.algorithm, jwt_keys::Algorithm::Es256);

    let table = [
        ("{ algorithm: ES256, key_bits: 1000 }", None),
        ("{ algorithm: EdDSA }", None),
        ("{ algorithm: PS256, key_bits: 3072 }", None),
        (
            "{ algorithm: RS256, key_bits: 1000 }",
            Some("1000 is not an RSA key size suma generates"),
        ),
        (
            "{ algorithm: PS256, key_bits: 5000 }",
            Some("5000 is not an RSA key size suma generates"),
        ),
        ("{ algorithm: HS256 }", Some("HS256")),
    ];
    for (jwt, refusal) in table {
        let outcome = parse_str(&with_jwt(jwt), Path::new("suma.yaml"));
        match (refusal, outcome) {
            (None, Ok(_)) => {}
            (Some(expected), Err(errors)) => {
                let text = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
                assert!(text.contains(expected), "{jwt}: {text}");
            }
            (refusal, outcome) => panic!("{jwt}: expected {refusal:?}, got {:?}", outcome.err()),
        }
    }
}

/// The example writes canary steps in flow style (`- { weight: 10, duration: 5m }`): a problem inside
/// one is reported at the key itself, not at the environment.
#[test]
fn a_problem_inside_a_flow_style_step_is_located_at_its_key() {
    let step = "- { weight: 10, duration: 5m }";
    assert!(EXAMPLE.contains(step), "the example writes its steps in flow style");
    let text = EXAMPLE.replacen(step, "- { weight: 10, duration: 0s }", 1);
    let errors = parse_str(&text, Path::new("suma.yaml")).unwrap_err();
    let error = errors
        .iter()
        .find(|e| e.key.ends_with("canary.steps.0.duration"))
        .unwrap_or_else(|| panic!("the step's duration is named: {errors:?}"));
    let line = text.lines().position(|l| l.contains("duration: 0s")).unwrap();
    let column = text.lines().nth(line).unwrap().find("duration").unwrap();
    assert_eq!(error.position, Some((line + 1, column + 1)), "{error}");
}
