//! Password hashing with argon2id, and secrets (refresh tokens, client secrets) hashed with SHA-256.

use std::sync::OnceLock;

use actix_web::web;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// At most one password hash or check per core at once, each taking 19 MiB: logins sent from many
/// addresses at once wait here, in their order and holding no thread, instead of filling the
/// memory and the blocking threads that database work needs too. More would not be faster:
/// hashing keeps a core busy.
fn gate() -> &'static Semaphore {
    static GATE: OnceLock<Semaphore> = OnceLock::new();
    GATE.get_or_init(|| Semaphore::new(permits()))
}

fn permits() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

/// Runs a password hash or check (`work`) on a blocking thread once the gate lets it through.
pub async fn gated<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = gate().acquire().await.map_err(ApiError::internal)?;
    web::block(work).await.map_err(ApiError::internal)
}

/// An argon2id hash in PHC format (`$argon2id$v=19$…`), with a random salt.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches `stored`. With `stored = None` (unknown user) a dummy hash is
/// checked instead, so that an unknown username costs the same time as a wrong password.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    let dummy = dummy_hash();
    let (hash, real) = match stored {
        Some(hash) => (hash, true),
        None => (dummy, false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    matches && real
}

/// A hash made with the same parameters as real ones, checked for unknown users.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY
        .get_or_init(|| hash_password("tavana-dummy-password-for-equal-timing").unwrap_or_default())
}

/// Makes the dummy hash now, so that the first login with an unknown username does not pay for it.
pub fn warm_up() {
    dummy_hash();
}

/// A random secret of 32 bytes, URL-safe base64: refresh tokens, client secrets, passwords.
pub fn random_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of a high-entropy secret, hex. (Passwords need argon2; random 256-bit secrets do not.)
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let first = hash_password("correct horse battery staple").expect("hash");
        let second = hash_password("correct horse battery staple").expect("hash");
        assert!(first.starts_with("$argon2id$"));
        assert_ne!(first, second, "random salt");
        assert!(verify_password(
            "correct horse battery staple",
            Some(&first)
        ));
        assert!(!verify_password("wrong horse battery staple", Some(&first)));
    }

    #[test]
    fn unknown_users_never_verify() {
        assert!(!verify_password(
            "tavana-dummy-password-for-equal-timing",
            None
        ));
        assert!(!verify_password("anything", Some("not a hash")));
    }

    /// Of eight pieces of work sent at once, no more go through the gate together than it has
    /// permits, and every one gets through.
    #[actix_web::test]
    async fn the_gate_lets_so_many_through_at_once() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (inside, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let work = (0..8).map(|n| {
            let (inside, most) = (inside.clone(), most.clone());
            gated(move || {
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(50));
                inside.fetch_sub(1, Ordering::SeqCst);
                n
            })
        });
        let done: Vec<usize> = futures_util::future::join_all(work)
            .await
            .into_iter()
            .map(|r| r.expect("done"))
            .collect();
        assert_eq!(done, (0..8).collect::<Vec<_>>());
        assert!(most.load(Ordering::SeqCst) <= permits());
    }

    #[test]
    fn secrets_are_random_and_hash_stably() {
        let a = random_secret().expect("random");
        let b = random_secret().expect("random");
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_eq!(hash_secret(&a).len(), 64);
    }
}
