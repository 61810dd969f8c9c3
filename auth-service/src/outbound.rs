//! Outbound messages: email through a [`Mailer`] (SMTP with lettre) and text messages through an
//! [`SmsSender`] (Twilio's REST API with reqwest).
//!
//! Both are narrow traits injected into `AppState` as `Arc<dyn …>`, so handlers never know the transport.
//! Messages are sent off the request path (`AppState::send_email`), so an answer's timing does not depend
//! on whether a message was sent, which would tell existing accounts from unknown ones.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

/// A boxed future, for object-safe async trait methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An email to send (plain text).
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body; may hold a single-use link or code, so it is never logged.
    pub body: String,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A failure to hand a message to its transport.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The message could not be built (e.g. an address that does not parse).
    #[error("cannot build the message: {0}")]
    Build(String),
    /// The SMTP server refused the message or could not be reached.
    #[error("SMTP delivery failed")]
    Smtp(#[source] lettre::transport::smtp::Error),
    /// The SMS API could not be reached.
    #[error("SMS API request failed")]
    Http(#[source] reqwest::Error),
    /// The SMS API answered with an error status.
    #[error("SMS API answered {status}")]
    Status { status: u16 },
    /// No transport is configured for this kind of message.
    #[error("no {0} transport configured")]
    NotConfigured(&'static str),
}

/// Sends email.
pub trait Mailer: Send + Sync {
    /// Hands one message to the transport.
    fn send<'a>(&'a self, email: &'a Email) -> BoxFuture<'a, Result<(), OutboundError>>;
}

/// Sends text messages.
pub trait SmsSender: Send + Sync {
    /// Sends `body` to the E.164 number `to`.
    fn send<'a>(&'a self, to: &'a str, body: &'a str) -> BoxFuture<'a, Result<(), OutboundError>>;
}

/// SMTP through lettre. The URL says how to connect: `smtp://host:port` (plain, for a local relay or the
/// sandbox's capture server), `smtp://host:587?tls=required` (STARTTLS, required), `smtps://host:465`
/// (TLS from the first byte); credentials as `smtp://user:password@host`.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// A mailer for `url` sending as `from`.
    pub fn new(url: &str, from: &str, timeout: Duration) -> Result<Self, OutboundError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| OutboundError::Build(format!("`SMTP_URL`: {e}")))?
            .timeout(Some(timeout))
            .build();
        let from = from
            .parse()
            .map_err(|e| OutboundError::Build(format!("`MAIL_FROM`: {e}")))?;
        Ok(Self { transport, from })
    }
}

impl Mailer for SmtpMailer {
    fn send<'a>(&'a self, email: &'a Email) -> BoxFuture<'a, Result<(), OutboundError>> {
        Box::pin(async move {
            let to: Mailbox = email
                .to
                .parse()
                .map_err(|e| OutboundError::Build(format!("recipient: {e}")))?;
            let message = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(email.subject.clone())
                .header(ContentType::TEXT_PLAIN)
                .body(email.body.clone())
                .map_err(|e| OutboundError::Build(e.to_string()))?;
            self.transport.send(message).await.map_err(OutboundError::Smtp)?;
            Ok(())
        })
    }
}

/// Used when `SMTP_URL` is not set: every send fails (and is logged by the caller), nothing leaves.
pub struct NoMailer;

impl Mailer for NoMailer {
    fn send<'a>(&'a self, _email: &'a Email) -> BoxFuture<'a, Result<(), OutboundError>> {
        Box::pin(async { Err(OutboundError::NotConfigured("email")) })
    }
}

/// Twilio's Messages API: `POST {base}/2010-04-01/Accounts/{sid}/Messages.json` with form fields `To`,
/// `From`, `Body` and HTTP basic auth (account SID, auth token). The base URL is configurable so tests
/// and the sandbox can point it at a local stub.
pub struct TwilioSms {
    client: reqwest::Client,
    base_url: String,
    account_sid: String,
    auth_token: String,
    from: String,
}

impl TwilioSms {
    /// A sender for one Twilio account.
    pub fn new(
        base_url: &str,
        account_sid: &str,
        auth_token: &str,
        from: &str,
        timeout: Duration,
    ) -> Result<Self, OutboundError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(OutboundError::Http)?;
        Ok(Self {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            from: from.to_owned(),
        })
    }
}

impl SmsSender for TwilioSms {
    fn send<'a>(&'a self, to: &'a str, body: &'a str) -> BoxFuture<'a, Result<(), OutboundError>> {
        Box::pin(async move {
            let url = format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                self.base_url, self.account_sid
            );
            let res = self
                .client
                .post(url)
                .basic_auth(&self.account_sid, Some(&self.auth_token))
                .form(&[("To", to), ("From", self.from.as_str()), ("Body", body)])
                .send()
                .await
                .map_err(OutboundError::Http)?;
            if !res.status().is_success() {
                return Err(OutboundError::Status {
                    status: res.status().as_u16(),
                });
            }
            Ok(())
        })
    }
}

/// Used when no SMS provider is configured.
pub struct NoSms;

impl SmsSender for NoSms {
    fn send<'a>(&'a self, _to: &'a str, _body: &'a str) -> BoxFuture<'a, Result<(), OutboundError>> {
        Box::pin(async { Err(OutboundError::NotConfigured("SMS")) })
    }
}
