//! Subscription handshakes: requests a provider sends to set up a webhook, which are not events.

use alloc::string::String;

use serde::Deserialize;

/// A provider's subscription handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Handshake {
    /// Notion: when a subscription is created, Notion POSTs an **unsigned** body
    /// `{"verification_token": "secret_…"}` once. The token is both the proof the operator pastes
    /// back into Notion's UI and the HMAC key of every later delivery, so the host should surface
    /// it to the operator (and may store it as the endpoint's secret). Because it is unsigned,
    /// presets accept it only when the endpoint has no secret yet, unless configured otherwise.
    NotionVerificationToken,
    /// Slack Events API `url_verification`: a **signed** body
    /// `{"type": "url_verification", "challenge": "…"}` that must be answered with the challenge.
    SlackUrlVerification,
}

/// Longest token or challenge we hand back: both are short in practice.
const MAX_TOKEN_LEN: usize = 512;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotionBody {
    verification_token: String,
}

#[derive(Deserialize)]
struct SlackBody {
    #[serde(rename = "type")]
    ty: String,
    challenge: Option<String>,
}

impl Handshake {
    /// Whether the handshake request carries the provider's signature (and so must be verified
    /// like any delivery before it is answered).
    #[must_use]
    pub const fn is_signed(self) -> bool {
        matches!(self, Handshake::SlackUrlVerification)
    }

    /// The token (Notion) or challenge (Slack) if `body` is this handshake; `None` for an
    /// ordinary event.
    ///
    /// For Notion the body must be a JSON object with `verification_token` (a non-empty string)
    /// and no other member.
    #[must_use]
    pub fn detect(self, body: &[u8]) -> Option<String> {
        let token = match self {
            Handshake::NotionVerificationToken => {
                serde_json::from_slice::<NotionBody>(body)
                    .ok()?
                    .verification_token
            }
            Handshake::SlackUrlVerification => {
                let b: SlackBody = serde_json::from_slice(body).ok()?;
                if b.ty != "url_verification" {
                    return None;
                }
                b.challenge?
            }
        };
        (!token.is_empty() && token.len() <= MAX_TOKEN_LEN).then_some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notion_token_only_alone() {
        let h = Handshake::NotionVerificationToken;
        assert_eq!(
            h.detect(br#"{"verification_token":"secret_abc"}"#)
                .as_deref(),
            Some("secret_abc")
        );
        assert_eq!(
            h.detect(br#"{"verification_token":"secret_abc","type":"x"}"#),
            None
        );
        assert_eq!(h.detect(br#"{"verification_token":""}"#), None);
        assert_eq!(h.detect(br#"{"verification_token":5}"#), None);
        assert_eq!(h.detect(b"not json"), None);
        assert!(!h.is_signed());
    }

    #[test]
    fn slack_challenge() {
        let h = Handshake::SlackUrlVerification;
        let body = br#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        assert_eq!(
            h.detect(body).as_deref(),
            Some("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
        );
        assert_eq!(
            h.detect(br#"{"type":"event_callback","challenge":"x"}"#),
            None
        );
        assert!(h.is_signed());
    }
}
