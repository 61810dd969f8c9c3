//! PEM text (RFC 7468): the first block of a text, and the `alg:` line of its explanatory text.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::{Algorithm, KeyError};

/// One PEM block: its label and its DER body, with the algorithm the text before it declares.
pub(crate) struct Block {
    pub(crate) label: String,
    pub(crate) der: Vec<u8>,
    pub(crate) declared: Option<Algorithm>,
}

/// Reads the first PEM block of `text`.
pub(crate) fn parse(text: &str) -> Result<Block, KeyError> {
    let start = text.find("-----BEGIN ").ok_or(KeyError::NotPem)?;
    let mut declared = None;
    for line in text[..start].lines() {
        let line = line.trim();
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("alg") {
            declared = Some(value.parse()?);
        }
    }
    let rest = &text[start + "-----BEGIN ".len()..];
    let (label, rest) = rest.split_once("-----").ok_or(KeyError::NotPem)?;
    let label = label.to_owned();
    let malformed = |problem: &str| KeyError::MalformedPem {
        label: label.clone(),
        problem: problem.to_owned(),
    };
    let end = format!("-----END {label}-----");
    let body = &rest[..rest.find(&end).ok_or_else(|| malformed("no END line"))?];
    // RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`) or PKCS#8's `ENCRYPTED PRIVATE KEY`.
    if body.contains("Proc-Type:") || label.contains("ENCRYPTED") {
        return Err(KeyError::Encrypted);
    }
    let base64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD
        .decode(base64)
        .map_err(|e| malformed(&format!("not base64 ({e})")))?;
    Ok(Block { label, der, declared })
}

/// `der` as a PEM block under `label`, preceded by `alg: NAME`.
pub(crate) fn encode(algorithm: Algorithm, label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut text = format!("alg: {algorithm}\n-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        // Base64 is ASCII, so every chunk is text.
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_block_and_the_declared_algorithm_and_refuses_what_it_cannot_read() {
        let text = encode(Algorithm::Ps256, "PRIVATE KEY", &[1, 2, 3, 250]);
        let block = parse(&text).unwrap();
        assert_eq!(
            (block.label.as_str(), block.der, block.declared),
            ("PRIVATE KEY", vec![1, 2, 3, 250], Some(Algorithm::Ps256))
        );
        let plain = parse("-----BEGIN PUBLIC KEY-----\nAQID\n-----END PUBLIC KEY-----\n").unwrap();
        assert_eq!(plain.declared, None);
        assert!(matches!(parse("hello"), Err(KeyError::NotPem)));
        assert!(matches!(
            parse("-----BEGIN PUBLIC KEY-----\nAQID\n"),
            Err(KeyError::MalformedPem { .. })
        ));
        assert!(matches!(
            parse("alg: HS256\n-----BEGIN PUBLIC KEY-----\nAQID\n-----END PUBLIC KEY-----\n"),
            Err(KeyError::UnknownAlgorithm(_))
        ));
        let encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAQID\n-----END RSA PRIVATE KEY-----\n";
        assert!(matches!(parse(encrypted), Err(KeyError::Encrypted)));
    }
}
