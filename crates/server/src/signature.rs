//! The webhook's `X-Session-Revocation-Signature` (DESIGN.md §2, seed 004).
//!
//! Two forms are accepted: `sha256=<hex>`, the HMAC-SHA256 of the raw body
//! with the tenant's `sr_…` secret (what the seed's Python example sends),
//! and the stronger `t=<unix seconds>,v1=<hex>`, the HMAC of `"<t>.<raw
//! body>"`, refused more than five minutes from our clock so a captured
//! request cannot be replayed later. A tenant may refuse the plain form.
//! Comparisons go through `hmac`'s `verify_slice`, which is constant-time,
//! so the answer's timing says nothing about how much of a guess was right.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "x-session-revocation-signature";

/// How far a timestamped signature may be from our clock, either way.
pub const WINDOW_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// A parsed signature header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// `sha256=<hex>` over the message.
    Plain(Vec<u8>),
    /// `t=<unix>,v1=<hex>[,v1=<hex>…]` over `"<t>.<message>"`.
    Timestamped { t: i64, v1: Vec<Vec<u8>> },
}

/// Why a signature was refused; the message goes back to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("malformed X-Session-Revocation-Signature header: expected 'sha256=<hex>' or 't=<unix seconds>,v1=<hex>'")]
    Malformed,
    #[error("this tenant requires the timestamped signature form 't=<unix seconds>,v1=<hex>'")]
    TimestampRequired,
    #[error("the signature timestamp is more than 5 minutes from the server's clock; sign with the current time")]
    Stale,
    #[error(
        "invalid signature: sign the raw request body with HMAC-SHA256 and the current sr_… secret"
    )]
    Mismatch,
}

fn digest_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    hex::decode(s).ok()
}

impl Signature {
    pub fn parse(header: &str) -> Result<Self, SignatureError> {
        let header = header.trim();
        if let Some(hex) = header.strip_prefix("sha256=") {
            return digest_hex(hex)
                .map(Signature::Plain)
                .ok_or(SignatureError::Malformed);
        }
        let mut t = None;
        let mut v1 = Vec::new();
        for part in header.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or(SignatureError::Malformed)?;
            match k.trim() {
                "t" => {
                    let v = v.trim();
                    if t.is_some() || v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(SignatureError::Malformed);
                    }
                    t = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?);
                }
                "v1" => v1.push(digest_hex(v).ok_or(SignatureError::Malformed)?),
                // Other schemes (a future v2) are skipped, as Stripe-style headers do.
                _ => {}
            }
        }
        match (t, v1.is_empty()) {
            (Some(t), false) => Ok(Signature::Timestamped { t, v1 }),
            _ => Err(SignatureError::Malformed),
        }
    }

    /// Check the signature of `message` (the raw body, or `"<path>?<query>"`
    /// for a poll) against `secret` at `now` (unix seconds).
    pub fn verify(
        &self,
        secret: &[u8],
        message: &[u8],
        now: i64,
        require_timestamp: bool,
    ) -> Result<(), SignatureError> {
        let mac = || HmacSha256::new_from_slice(secret).map_err(|_| SignatureError::Mismatch);
        match self {
            Signature::Plain(_) if require_timestamp => Err(SignatureError::TimestampRequired),
            Signature::Plain(sig) => {
                let mut m = mac()?;
                m.update(message);
                m.verify_slice(sig).map_err(|_| SignatureError::Mismatch)
            }
            Signature::Timestamped { t, v1 } => {
                if (now - t).abs() > WINDOW_SECS {
                    return Err(SignatureError::Stale);
                }
                let mut m = mac()?;
                m.update(t.to_string().as_bytes());
                m.update(b".");
                m.update(message);
                // Each candidate is checked in constant time; any may match
                // (several are sent while a secret is being rotated).
                let mut ok = false;
                for sig in v1 {
                    ok |= m.clone().verify_slice(sig).is_ok();
                }
                if ok {
                    Ok(())
                } else {
                    Err(SignatureError::Mismatch)
                }
            }
        }
    }
}

/// `sha256=<hex>` of `message`: what a client sends (used by tests and docs).
pub fn sign_plain(secret: &[u8], message: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_of(secret, message)))
}

/// `t=<t>,v1=<hex>` of `message` at `t`.
pub fn sign_timestamped(secret: &[u8], message: &[u8], t: i64) -> String {
    let mut signed = t.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(message);
    format!("t={t},v1={}", hex::encode(hmac_of(secret, &signed)))
}

fn hmac_of(secret: &[u8], message: &[u8]) -> Vec<u8> {
    match HmacSha256::new_from_slice(secret) {
        Ok(mut m) => {
            m.update(message);
            m.finalize().into_bytes().to_vec()
        }
        // HMAC accepts keys of any length; this arm is unreachable.
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"sr_test_secret";
    const BODY: &[u8] = br#"{"tenant_id":"x","action":"revoke_sessions"}"#;
    const NOW: i64 = 1_700_000_000;

    fn check(header: &str, now: i64, require: bool) -> Result<(), SignatureError> {
        Signature::parse(header)?.verify(SECRET, BODY, now, require)
    }

    #[test]
    fn the_plain_form_verifies_the_body_hmac_and_matches_pythons_hexdigest() {
        // hmac.new(b"sr_test_secret", body, hashlib.sha256).hexdigest()
        let header = sign_plain(SECRET, BODY);
        assert_eq!(header.len(), "sha256=".len() + 64);
        assert_eq!(check(&header, NOW, false), Ok(()));
        // Upper-case hex is the same digest.
        let upper = format!("sha256={}", header[7..].to_uppercase());
        assert_eq!(check(&upper, NOW, false), Ok(()));
    }

    #[test]
    fn a_tampered_body_or_wrong_secret_is_a_mismatch() {
        let header = sign_plain(SECRET, BODY);
        let sig = Signature::parse(&header).unwrap();
        assert_eq!(
            sig.verify(SECRET, b"{}", NOW, false),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            sig.verify(b"sr_other", BODY, NOW, false),
            Err(SignatureError::Mismatch)
        );
        let mut flipped = header.into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            check(std::str::from_utf8(&flipped).unwrap(), NOW, false),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_timestamped_form_is_accepted_up_to_five_minutes_either_way_and_no_further() {
        for skew in [0, 1, -1, 299, -299, 300, -300] {
            let h = sign_timestamped(SECRET, BODY, NOW + skew);
            assert_eq!(check(&h, NOW, true), Ok(()), "skew {skew}");
        }
        for skew in [301, -301, 3600, -86400] {
            let h = sign_timestamped(SECRET, BODY, NOW + skew);
            assert_eq!(
                check(&h, NOW, false),
                Err(SignatureError::Stale),
                "skew {skew}"
            );
        }
    }

    #[test]
    fn the_timestamp_is_part_of_what_is_signed() {
        let h = sign_timestamped(SECRET, BODY, NOW);
        let moved = h.replacen(&format!("t={NOW}"), &format!("t={}", NOW + 1), 1);
        assert_eq!(check(&moved, NOW, false), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_tenant_requiring_timestamps_refuses_the_plain_form() {
        let h = sign_plain(SECRET, BODY);
        assert_eq!(check(&h, NOW, true), Err(SignatureError::TimestampRequired));
    }

    #[test]
    fn any_of_several_v1_signatures_may_match_and_unknown_parts_are_skipped() {
        let good = sign_timestamped(SECRET, BODY, NOW);
        let v1 = good.split("v1=").nth(1).unwrap();
        let h = format!("t={NOW}, v1={}, v0=whatever, v1={v1}", "0".repeat(64));
        assert_eq!(check(&h, NOW, false), Ok(()));
    }

    #[test]
    fn malformed_headers_are_refused() {
        for h in [
            "",
            "sha256=",
            "sha256=xyz",
            "sha256=abcd",
            "sha1=00",
            "t=123",
            "v1=00",
            "t=abc,v1=00",
            &format!("t=-5,v1={}", "0".repeat(64)),
            &format!("t=1,t=2,v1={}", "0".repeat(64)),
            &format!("t=1,v1={}", "z".repeat(64)),
            "garbage",
        ] {
            assert_eq!(Signature::parse(h), Err(SignatureError::Malformed), "{h:?}");
        }
    }
}
