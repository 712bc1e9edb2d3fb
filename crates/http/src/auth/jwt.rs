//! Access tokens: short-lived JWTs signed with HS256 under the service's key.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// A user's id, or an API client's `client_id`.
    pub sub: String,
    /// A user's role; absent for API clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The organisation the caller acts for.
    pub org: String,
    /// An API client's scopes, space-separated; absent for users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub iat: u64,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
    pub jti: String,
}

/// Signing and checking keys, and what a valid token must say.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("TokenKeys")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

pub const MIN_KEY_BYTES: usize = 32;

impl TokenKeys {
    pub fn new(secret: &[u8], issuer: &str, audience: &str, access_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            access_ttl,
        }
    }

    /// Fills in the registered claims and signs.
    pub fn issue(
        &self,
        sub: String,
        role: Option<String>,
        org: String,
        scope: Option<String>,
        ttl: Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub,
            role,
            org,
            scope,
            iat: now,
            exp: now + ttl.as_secs(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: uuid::Uuid::now_v7().to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// Checks signature, algorithm (HS256 only: `none` and others are refused), expiry, issuer and
    /// audience.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &[u8]) -> TokenKeys {
        TokenKeys::new(secret, "tavana", "tavana-api", Duration::from_secs(900))
    }

    fn token(keys: &TokenKeys) -> String {
        keys.issue(
            "u1".into(),
            Some("admin".into()),
            "o1".into(),
            None,
            keys.access_ttl,
        )
        .expect("signs")
    }

    #[test]
    fn a_token_verifies_with_its_key_only() {
        let ours = keys(&[7; 32]);
        let theirs = keys(&[8; 32]);
        let claims = ours.verify(&token(&ours)).expect("valid");
        assert_eq!(claims.sub, "u1");
        assert!(ours.verify(&token(&theirs)).is_err());
    }

    #[test]
    fn wrong_issuer_or_audience_is_refused() {
        let ours = keys(&[7; 32]);
        let other_issuer = TokenKeys::new(
            &[7; 32],
            "elsewhere",
            "tavana-api",
            Duration::from_secs(900),
        );
        let other_audience =
            TokenKeys::new(&[7; 32], "tavana", "other-api", Duration::from_secs(900));
        assert!(ours.verify(&token(&other_issuer)).is_err());
        assert!(ours.verify(&token(&other_audience)).is_err());
    }
}
