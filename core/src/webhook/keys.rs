//! Reading the key formats people actually paste into configuration.

use alloc::vec::Vec;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ed25519_dalek::{SigningKey, VerifyingKey};

/// Standard alphabet; padding optional. Used for secrets and keys, which people copy without
/// their trailing `=` often enough (the Standard Webhooks Python library pads them back too).
pub(crate) const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Standard alphabet, padding required, canonical trailing bits: used for signatures on the
/// wire, so that one signature has exactly one spelling.
pub(crate) const STRICT_B64: GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410).
const SPKI_ED25519: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER of the ed25519 AlgorithmIdentifier followed by the wrapped 32-byte private key.
const PKCS8_ED25519_KEY: [u8; 11] = [
    0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The body of a PEM block with the given label, decoded.
fn pem(text: &[u8], label: &str) -> Option<Vec<u8>> {
    let text = core::str::from_utf8(text).ok()?.trim();
    let rest = text.strip_prefix("-----BEGIN ")?.strip_prefix(label)?;
    let rest = rest.strip_prefix("-----")?;
    let end = rest.find("-----END ")?;
    let b64: alloc::string::String = rest
        .get(..end)?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    LENIENT_B64.decode(b64).ok()
}

fn array32(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

/// Hex (64 chars, either case) or base64 (padded or not) of exactly `len` bytes.
fn text_key(text: &[u8], len: usize) -> Option<Vec<u8>> {
    let s = core::str::from_utf8(text).ok()?.trim();
    if s.len() == len * 2 {
        if let Ok(v) = hex::decode(s) {
            return Some(v);
        }
    }
    LENIENT_B64.decode(s).ok().filter(|v| v.len() == len)
}

/// An ed25519 public key from: `whpk_<base64>`, a PEM `PUBLIC KEY` (what Woodpecker serves at
/// `/api/signature/public-key`), hex, base64, or 32 raw bytes. A private key in any of the
/// forms [`signing_key`] accepts also works: its public half is used.
pub(crate) fn verifying_key(secret: &[u8]) -> Result<VerifyingKey, &'static str> {
    let bytes = if let Some(b64) = secret.strip_prefix(b"whpk_") {
        LENIENT_B64
            .decode(b64)
            .map_err(|_| "`whpk_` key is not base64")?
    } else if secret.starts_with(b"whsk_") || secret.starts_with(b"-----BEGIN PRIVATE KEY") {
        return signing_key(secret).map(|k| k.verifying_key());
    } else if secret.starts_with(b"-----BEGIN PUBLIC KEY") {
        let der = pem(secret, "PUBLIC KEY").ok_or("PEM public key cannot be decoded")?;
        der.strip_prefix(&SPKI_ED25519[..])
            .ok_or("PEM public key is not ed25519")?
            .to_vec()
    } else if secret.len() == 32 {
        secret.to_vec()
    } else {
        text_key(secret, 32).ok_or("expected an ed25519 public key (whpk_, PEM, hex or base64)")?
    };
    let arr = array32(&bytes).ok_or("ed25519 public key must be 32 bytes")?;
    VerifyingKey::from_bytes(&arr).map_err(|_| "not a valid ed25519 public key")
}

/// An ed25519 private key from: `whsk_<base64>` (32-byte seed or 64-byte seed‖public key), a PEM
/// `PRIVATE KEY` (PKCS#8), hex or base64 of the 32-byte seed, or 32 raw bytes.
pub(crate) fn signing_key(secret: &[u8]) -> Result<SigningKey, &'static str> {
    let bytes = if let Some(b64) = secret.strip_prefix(b"whsk_") {
        LENIENT_B64
            .decode(b64)
            .map_err(|_| "`whsk_` key is not base64")?
    } else if secret.starts_with(b"-----BEGIN PRIVATE KEY") {
        let der = pem(secret, "PRIVATE KEY").ok_or("PEM private key cannot be decoded")?;
        let at = der
            .windows(PKCS8_ED25519_KEY.len())
            .position(|w| w == PKCS8_ED25519_KEY)
            .ok_or("PEM private key is not ed25519")?;
        der.get(at + PKCS8_ED25519_KEY.len()..at + PKCS8_ED25519_KEY.len() + 32)
            .ok_or("PEM private key is truncated")?
            .to_vec()
    } else if secret.len() == 32 {
        secret.to_vec()
    } else {
        text_key(secret, 32)
            .or_else(|| text_key(secret, 64))
            .ok_or("expected an ed25519 private key (whsk_, PEM, hex or base64)")?
    };
    match bytes.len() {
        32 => Ok(SigningKey::from_bytes(
            &array32(&bytes).ok_or("ed25519 seed must be 32 bytes")?,
        )),
        64 => {
            let seed = array32(bytes.get(..32).unwrap_or_default()).ok_or("bad seed")?;
            let key = SigningKey::from_bytes(&seed);
            if key.verifying_key().as_bytes().as_slice() != bytes.get(32..).unwrap_or_default() {
                return Err("the public half does not belong to the private key");
            }
            Ok(key)
        }
        _ => Err("ed25519 private key must be 32 bytes (or 64: seed and public key)"),
    }
}

/// The `whpk_` form of a key, for display and configuration.
pub(crate) fn whpk(key: &VerifyingKey) -> alloc::string::String {
    alloc::format!("whpk_{}", STRICT_B64.encode(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_forms_agree() {
        let seed = [7u8; 32];
        let sk = SigningKey::from_bytes(&seed);
        let pk = sk.verifying_key();
        let hex_seed = hex::encode(seed);
        let b64_seed = STRICT_B64.encode(seed);
        let whsk = alloc::format!("whsk_{b64_seed}");
        for form in [
            &seed[..],
            hex_seed.as_bytes(),
            b64_seed.as_bytes(),
            whsk.as_bytes(),
        ] {
            assert_eq!(signing_key(form).map(|k| k.verifying_key()), Ok(pk));
        }
        let mut der = SPKI_ED25519.to_vec();
        der.extend_from_slice(pk.as_bytes());
        let pem_text = alloc::format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STRICT_B64.encode(&der)
        );
        let whpk_text = whpk(&pk);
        let hex_pk = hex::encode(pk.as_bytes());
        for form in [
            pem_text.as_bytes(),
            whpk_text.as_bytes(),
            hex_pk.as_bytes(),
            whsk.as_bytes(),
        ] {
            assert_eq!(verifying_key(form), Ok(pk));
        }
        let mut pkcs8 = alloc::vec![0x30, 0x2e, 0x02, 0x01, 0x00];
        pkcs8.extend_from_slice(&PKCS8_ED25519_KEY);
        pkcs8.extend_from_slice(&seed);
        let pem_sk = alloc::format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
            STRICT_B64.encode(&pkcs8)
        );
        assert_eq!(
            signing_key(pem_sk.as_bytes()).map(|k| k.verifying_key()),
            Ok(pk)
        );
        // libsodium's 64-byte form: seed then public key.
        let mut full = seed.to_vec();
        full.extend_from_slice(pk.as_bytes());
        let whsk64 = alloc::format!("whsk_{}", STRICT_B64.encode(&full));
        assert_eq!(
            signing_key(whsk64.as_bytes()).map(|k| k.verifying_key()),
            Ok(pk)
        );
        full[40] ^= 1;
        let whsk64 = alloc::format!("whsk_{}", STRICT_B64.encode(&full));
        assert!(signing_key(whsk64.as_bytes()).is_err());
        assert!(verifying_key(b"nonsense").is_err());
        assert!(
            verifying_key(b"-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----").is_err()
        );
    }
}
