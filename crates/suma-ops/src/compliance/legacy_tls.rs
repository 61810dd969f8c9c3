//! Does a server still accept TLS 1.0 or 1.1? Modern TLS libraries (rustls among them) cannot even
//! offer those versions, so the probe speaks just enough of the protocol itself, as TLS scanners do:
//! it sends a ClientHello capped at the old version with the cipher suites old clients offered, and
//! reads the server's first record. A ServerHello at that version means the server would go on with
//! the handshake (the probe stops there); an alert or a closed connection means it refuses. No key
//! exchange happens, so nothing here is cryptography. [`client_hello`] and [`parse_reply`] are pure.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub const TLS1_0: u16 = 0x0301;
pub const TLS1_1: u16 = 0x0302;

/// `TLS 1.0`, `TLS 1.1`, `TLS 1.2`, ... for a protocol version number.
pub fn version_name(version: u16) -> String {
    match version {
        0x0300 => "SSL 3.0".to_owned(),
        0x0301..=0x0304 => format!("TLS 1.{}", version - 0x0301),
        other => format!("version {other:#06x}"),
    }
}

/// What old clients offered: ECDHE and plain RSA key exchange with AES-CBC and 3DES, and the
/// renegotiation SCSV. A server that accepts the old protocol accepts one of these.
const LEGACY_SUITES: &[u16] = &[
    0xc013, 0xc014, 0xc009, 0xc00a, 0x0033, 0x0039, 0x002f, 0x0035, 0x000a, 0x00ff,
];

/// A ClientHello record offering at most `version`. `server_name` goes into SNI unless it is an IP
/// address (SNI carries host names only).
pub fn client_hello(server_name: &str, version: u16, random: [u8; 32]) -> Vec<u8> {
    let mut extensions = Vec::new();
    if server_name.parse::<std::net::IpAddr>().is_err() {
        let name = server_name.as_bytes();
        let mut sni = Vec::new();
        push_u16(&mut sni, (name.len() + 3) as u16);
        sni.push(0); // host_name
        push_u16(&mut sni, name.len() as u16);
        sni.extend_from_slice(name);
        push_extension(&mut extensions, 0x0000, &sni);
    }
    // supported_groups: x25519, secp256r1, secp384r1.
    push_extension(&mut extensions, 0x000a, &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18]);
    // ec_point_formats: uncompressed.
    push_extension(&mut extensions, 0x000b, &[1, 0]);

    let mut body = Vec::new();
    push_u16(&mut body, version);
    body.extend_from_slice(&random);
    body.push(0); // no session id
    push_u16(&mut body, (LEGACY_SUITES.len() * 2) as u16);
    for suite in LEGACY_SUITES {
        push_u16(&mut body, *suite);
    }
    body.extend_from_slice(&[1, 0]); // compression: null only
    push_u16(&mut body, extensions.len() as u16);
    body.extend_from_slice(&extensions);

    let mut handshake = vec![1]; // client_hello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);

    let mut record = vec![22]; // handshake
    push_u16(&mut record, TLS1_0);
    push_u16(&mut record, handshake.len() as u16);
    record.extend_from_slice(&handshake);
    record
}

fn push_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn push_extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    push_u16(out, kind);
    push_u16(out, data.len() as u16);
    out.extend_from_slice(data);
}

/// The server's answer to the ClientHello, from the bytes read so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerReply {
    /// The server chose `version` and goes on with the handshake.
    Hello { version: u16 },
    /// The server refused with this alert (70 is protocol_version, 40 handshake_failure).
    Alert { description: u8 },
    /// More bytes are needed.
    Incomplete,
    /// Not TLS, or not what a server sends first.
    Unexpected(String),
}

pub fn parse_reply(bytes: &[u8]) -> ServerReply {
    if bytes.len() < 5 {
        return ServerReply::Incomplete;
    }
    let content_type = bytes[0];
    let fragment = &bytes[5..];
    match content_type {
        21 => match fragment {
            [_level, description, ..] => ServerReply::Alert {
                description: *description,
            },
            _ => ServerReply::Incomplete,
        },
        22 => {
            // handshake type (1), length (3), server_version (2)
            if fragment.len() < 6 {
                return ServerReply::Incomplete;
            }
            if fragment[0] != 2 {
                return ServerReply::Unexpected(format!("handshake message {} before ServerHello", fragment[0]));
            }
            ServerReply::Hello {
                version: u16::from_be_bytes([fragment[4], fragment[5]]),
            }
        }
        other => ServerReply::Unexpected(format!("record type {other}")),
    }
}

/// Whether `host:port` accepts a handshake capped at `version`: `Ok(true)` when it answers with a
/// ServerHello at that version or below, `Ok(false)` when it refuses (alert, closed connection, or a
/// higher version it should not have chosen).
pub async fn accepts(host: &str, port: u16, version: u16, timeout: Duration) -> Result<bool, String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("connection to {host}:{port} failed: {e}"))?;
        let mut random = [0u8; 32];
        random[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        random[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        stream
            .write_all(&client_hello(host, version, random))
            .await
            .map_err(|e| format!("sending the ClientHello to {host}:{port} failed: {e}"))?;
        let mut read = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = match stream.read(&mut buf).await {
                Ok(n) => n,
                // A reset is how some servers refuse.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(false),
                Err(e) => return Err(format!("reading from {host}:{port} failed: {e}")),
            };
            if n == 0 {
                return Ok(false);
            }
            read.extend_from_slice(&buf[..n]);
            match parse_reply(&read) {
                ServerReply::Incomplete if read.len() < 16 * 1024 => continue,
                ServerReply::Incomplete => return Err(format!("{host}:{port} sent no complete TLS record")),
                ServerReply::Hello { version: chosen } => return Ok(chosen <= version),
                ServerReply::Alert { .. } => return Ok(false),
                ServerReply::Unexpected(what) => return Err(format!("{host}:{port} answered {what}, not TLS")),
            }
        }
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        format!(
            "no TLS answer from {host}:{port} within {}",
            humantime::format_duration(timeout)
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hello_is_a_well_formed_record_capped_at_the_version() {
        let hello = client_hello("auth.example.com", TLS1_1, [7; 32]);
        assert_eq!(hello[0], 22);
        assert_eq!(u16::from_be_bytes([hello[3], hello[4]]) as usize, hello.len() - 5);
        assert_eq!(hello[5], 1, "client_hello");
        let body_len = u32::from_be_bytes([0, hello[6], hello[7], hello[8]]) as usize;
        assert_eq!(body_len, hello.len() - 9);
        assert_eq!(&hello[9..11], &[0x03, 0x02]);
        assert_eq!(&hello[11..43], &[7; 32]);
        // Only SNI, supported_groups and ec_point_formats: no supported_versions (43), so the
        // client version alone caps the handshake.
        let suites = u16::from_be_bytes([hello[44], hello[45]]) as usize;
        let extensions_at = 46 + suites + 2;
        let mut at = extensions_at + 2;
        let mut kinds = Vec::new();
        while at < hello.len() {
            kinds.push(u16::from_be_bytes([hello[at], hello[at + 1]]));
            at += 4 + u16::from_be_bytes([hello[at + 2], hello[at + 3]]) as usize;
        }
        assert_eq!(at, hello.len());
        assert_eq!(kinds, [0x0000, 0x000a, 0x000b]);
        assert!(hello.windows(16).any(|w| w == b"auth.example.com"));
    }

    #[test]
    fn ip_addresses_are_not_sent_as_server_names() {
        let hello = client_hello("127.0.0.1", TLS1_0, [0; 32]);
        assert!(!hello.windows(9).any(|w| w == b"127.0.0.1"));
        assert_eq!(&hello[9..11], &[0x03, 0x01]);
    }

    #[test]
    fn replies_are_read_as_hello_alert_or_incomplete() {
        assert_eq!(
            parse_reply(&[22, 3, 2, 0, 80, 2, 0, 0, 76, 3, 2, 1, 2]),
            ServerReply::Hello { version: TLS1_1 }
        );
        assert_eq!(
            parse_reply(&[21, 3, 1, 0, 2, 2, 70]),
            ServerReply::Alert { description: 70 }
        );
        assert_eq!(parse_reply(&[22, 3, 1]), ServerReply::Incomplete);
        assert_eq!(parse_reply(&[22, 3, 1, 0, 80, 2, 0]), ServerReply::Incomplete);
        assert!(matches!(parse_reply(b"HTTP/1.1 400 Bad"), ServerReply::Unexpected(_)));
    }

    #[test]
    fn version_names() {
        assert_eq!(version_name(TLS1_0), "TLS 1.0");
        assert_eq!(version_name(TLS1_1), "TLS 1.1");
        assert_eq!(version_name(0x0303), "TLS 1.2");
    }
}
