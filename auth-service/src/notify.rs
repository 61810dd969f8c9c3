//! The texts of the messages the service sends: verification and reset links, codes, and security
//! notifications. Pure functions of their inputs, so the wording is tested without a transport.

use crate::outbound::Email;

/// The verification message sent at registration (and on resend).
pub fn verify_email(to: &str, base_url: &str, token: &str, hours: u64) -> Email {
    Email {
        to: to.to_owned(),
        subject: "Verify your email address".into(),
        body: format!(
            "Welcome!\n\nConfirm this address by opening:\n\n  {}/verify-email?token={token}\n\n\
             or by submitting this code: {token}\n\nThe link works once and expires in {hours} hours. If you did \
             not create an account, ignore this message.\n",
            base_url.trim_end_matches('/')
        ),
    }
}

/// Sent instead of a verification link when someone registers an address that already has an account,
/// so that registration behaves the same for both and the owner learns of the attempt.
pub fn already_registered(to: &str) -> Email {
    Email {
        to: to.to_owned(),
        subject: "Someone tried to register with your address".into(),
        body: "Someone (maybe you) tried to create an account with this address, which already has one. \
               Nothing was changed. If you forgot your password, use \"forgot password\" to reset it.\n"
            .into(),
    }
}

/// The password-reset message.
pub fn reset_password(to: &str, base_url: &str, token: &str, minutes: u64) -> Email {
    Email {
        to: to.to_owned(),
        subject: "Reset your password".into(),
        body: format!(
            "Someone (hopefully you) asked to reset the password of this account. To choose a new one, open:\n\n  \
             {}/reset-password?token={token}\n\nThe link works once and expires in {minutes} minutes. Resetting \
             ends every session. If you did not ask for this, ignore this message; your password is unchanged.\n",
            base_url.trim_end_matches('/')
        ),
    }
}

/// The security events users are told about by email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityEvent {
    /// A sign-in from a device not seen before.
    NewDevice,
    /// The password was changed or reset.
    PasswordChanged,
    /// Two-factor authentication was enabled, disabled, or its recovery codes were used up or renewed.
    TwoFactorChanged,
    /// Too many failed sign-ins locked the account for a while.
    AccountLocked,
}

/// A security notification. `detail` is shown as is (device, time); never a secret.
pub fn security(to: &str, event: SecurityEvent, detail: &str) -> Email {
    let (subject, what) = match event {
        SecurityEvent::NewDevice => (
            "New sign-in to your account",
            "Your account was signed in to from a new device",
        ),
        SecurityEvent::PasswordChanged => ("Your password was changed", "The password of your account was changed"),
        SecurityEvent::TwoFactorChanged => (
            "Your two-factor settings changed",
            "The two-factor authentication settings of your account changed",
        ),
        SecurityEvent::AccountLocked => (
            "Your account was locked",
            "Your account was locked for a while after too many failed sign-in attempts",
        ),
    };
    Email {
        to: to.to_owned(),
        subject: subject.into(),
        body: format!(
            "{what}.\n\n{detail}\n\nIf this was you, nothing to do. If not, reset your password now and review \
             your sessions and devices.\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_carry_the_token_once() {
        let m = verify_email("a@example.com", "https://app.example.com/", "TOKEN123", 24);
        assert!(m.body.contains("https://app.example.com/verify-email?token=TOKEN123"));
        let m = reset_password("a@example.com", "https://app.example.com", "k1.x.y", 60);
        assert!(m.body.contains("https://app.example.com/reset-password?token=k1.x.y"));
        assert!(format!("{m:?}").find("k1.x.y").is_none(), "Debug never shows the body");
    }
}
