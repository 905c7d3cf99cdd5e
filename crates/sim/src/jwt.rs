//! JSON Web Token helpers for the token endpoints.
//!
//! Okta (`private_key_jwt`) and Google (service-account JWT bearer) receive RS256 assertions
//! that the sims verify against the public halves of the demo keys. Okta and Entra hand out
//! JWT-shaped access tokens; clients may decode them (Entra's `roles`), but only the sim that
//! issued one accepts it, by lookup, so its signature is random bytes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Header, Validation};
use serde_json::{Map, Value};

pub(crate) type Claims = Map<String, Value>;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JwtError {
    /// Not three base64url JSON parts.
    Malformed,
    /// Not RS256.
    Algorithm,
    /// Signed by another key, or tampered with.
    Signature,
}

/// Checks the RS256 signature only; claims are the caller's to judge, so it can give the
/// provider's own message for each.
pub(crate) fn verify_rs256(token: &str, public_pem: &str) -> Result<(Header, Claims), JwtError> {
    let header = decode_header(token).map_err(|_| JwtError::Malformed)?;
    if header.alg != Algorithm::RS256 {
        return Err(JwtError::Algorithm);
    }
    let key = DecodingKey::from_rsa_pem(public_pem.as_bytes()).map_err(|_| JwtError::Signature)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    match decode::<Claims>(token, &key, &validation) {
        Ok(data) => Ok((header, data.claims)),
        Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => Err(JwtError::Signature),
        Err(_) => Err(JwtError::Malformed),
    }
}

/// A JWT-shaped token with the given header and claims and a random signature.
pub(crate) fn mint(header: &Value, claims: &Value) -> String {
    let sig: [u8; 32] = rand::random();
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) fn str_claim<'a>(claims: &'a Claims, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

/// A NumericDate claim; fractional seconds are allowed by RFC 7519.
pub(crate) fn time_claim(claims: &Claims, name: &str) -> Option<i64> {
    let v = claims.get(name)?;
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Assertion builders for tests, as a connector would make them.
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::Value;

    pub fn sign(claims: &Value, kid: &str, private_pem: &str) -> String {
        let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(kid.to_string());
        let key = EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("demo key parses");
        encode(&header, claims, &key).expect("signing works")
    }
}
