//! The webhook dispatcher: runs inside the service, on a thread of its own, while the server
//! runs. Each tick it makes the deliveries of new changes (`webhooks::enqueue`), then sends the
//! deliveries that are due, each signed with its endpoint's secret, and records every attempt.
//!
//! All it knows lives in the database, so any number of replicas can run it together: deliveries
//! are made under the endpoint's lock and a UNIQUE index, and sends are claimed with a lease.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix_web::http::header::HeaderValue;
use tavana_domain::partner::sign;
use tavana_persistence::Database;
use tavana_persistence::webhooks::{self, AttemptOutcome, Claim, RetryPolicy};

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Pause between the dispatcher's rounds.
    pub poll: Duration,
    /// Attempts per delivery before it is given up as failed.
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubled after each further one (capped at 6 hours).
    pub backoff_base: Duration,
    /// Failed deliveries in a row that disable an endpoint.
    pub max_failures: u32,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Accept `http://` endpoint URLs on a loopback host (127.0.0.1, localhost, [::1]); for tests
    /// and local development only.
    pub allow_http_loopback: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(1000),
            max_attempts: 6,
            backoff_base: Duration::from_millis(30_000),
            max_failures: 5,
            timeout: Duration::from_millis(10_000),
            allow_http_loopback: false,
        }
    }
}

impl WebhookSettings {
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            backoff_base: self.backoff_base,
            backoff_cap: BACKOFF_CAP,
            max_failures: self.max_failures.max(1),
        }
    }
}

const BACKOFF_CAP: Duration = Duration::from_secs(6 * 3600);
/// Deliveries made per endpoint per round.
const ENQUEUE_BATCH: i64 = 500;
/// Deliveries sent per round.
const SEND_BATCH: i64 = 32;

/// Starts the dispatcher on a thread with its own runtime (the server may be built outside any).
/// It stops at its next round once `alive` has no strong reference left.
pub fn start(db: Database, settings: WebhookSettings, alive: Weak<()>) -> std::io::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Tavana-Webhooks/1")
        .build()
        .map_err(std::io::Error::other)?;
    std::thread::Builder::new()
        .name("webhook-dispatcher".to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    tracing::error!(%error, "webhook dispatcher not started");
                    return;
                }
            };
            let dispatcher = Dispatcher {
                db,
                settings,
                client,
            };
            runtime.block_on(async move {
                while alive.strong_count() > 0 {
                    dispatcher.round().await;
                    tokio::time::sleep(dispatcher.settings.poll).await;
                }
            });
        })?;
    Ok(())
}

/// A handle that keeps a dispatcher running while it lives.
pub fn keep_alive() -> (Arc<()>, Weak<()>) {
    let alive = Arc::new(());
    let weak = Arc::downgrade(&alive);
    (alive, weak)
}

struct Dispatcher {
    db: Database,
    settings: WebhookSettings,
    client: reqwest::Client,
}

impl Dispatcher {
    /// One round: make new deliveries, then send what is due.
    async fn round(&self) {
        let db = self.db.clone();
        let made = tokio::task::spawn_blocking(move || {
            let mut conn = db.get()?;
            webhooks::enqueue(&mut conn, chrono::Utc::now().date_naive(), ENQUEUE_BATCH)
        })
        .await;
        match made {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(deliveries = n, "webhook deliveries made"),
            Ok(Err(error)) => tracing::warn!(%error, "webhook deliveries not made"),
            Err(error) => tracing::error!(%error, "webhook enqueue panicked"),
        }
        let db = self.db.clone();
        // Long enough for every send of the batch to finish and be recorded.
        let lease = self.settings.timeout * 2 + Duration::from_secs(30);
        let claims = tokio::task::spawn_blocking(move || {
            let mut conn = db.get()?;
            webhooks::claim_due(&mut conn, lease, SEND_BATCH)
        })
        .await;
        let claims = match claims {
            Ok(Ok(claims)) => claims,
            Ok(Err(error)) => {
                tracing::warn!(%error, "due webhook deliveries not read");
                return;
            }
            Err(error) => {
                tracing::error!(%error, "webhook claim panicked");
                return;
            }
        };
        futures_util::future::join_all(claims.into_iter().map(|claim| self.deliver(claim))).await;
    }

    /// Sends one delivery and records the attempt.
    async fn deliver(&self, claim: Claim) {
        let outcome = send(&self.client, &claim).await;
        let db = self.db.clone();
        let retry = self.settings.retry();
        let delivery = claim.delivery_id.clone();
        let recorded = tokio::task::spawn_blocking(move || {
            let mut conn = db.get()?;
            webhooks::record_attempt(&mut conn, &delivery, &outcome, &retry)
        })
        .await;
        match recorded {
            Ok(Ok(webhooks::AfterAttempt::Failed { disabled: true })) => tracing::warn!(
                endpoint = %claim.endpoint_id,
                "webhook endpoint disabled after repeated failed deliveries"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(delivery = %claim.delivery_id, %error, "webhook attempt not recorded");
            }
            Err(error) => tracing::error!(%error, "webhook record panicked"),
        }
    }
}

/// The `Tavana-Signature` header value of a body sent at `timestamp` (Unix seconds).
pub fn signature_header(secret: &str, timestamp: i64, body: &str) -> String {
    format!(
        "t={timestamp},v1={}",
        sign(secret, timestamp, body.as_bytes())
    )
}

async fn send(client: &reqwest::Client, claim: &Claim) -> AttemptOutcome {
    let started = Instant::now();
    let attempted_at = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now().naive_utc(), 6);
    let timestamp = chrono::Utc::now().timestamp();
    let mut request = client
        .post(&claim.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            "Tavana-Signature",
            signature_header(&claim.secret, timestamp, &claim.payload),
        )
        .header("Tavana-Delivery", &claim.delivery_id);
    // Event types are ASCII names; a bad one would only lose the header, never the delivery.
    if let Ok(event) = HeaderValue::from_str(&claim.event_type) {
        request = request.header("Tavana-Event", event.as_bytes());
    }
    let result = request.body(claim.payload.clone()).send().await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    match result {
        Ok(response) => AttemptOutcome {
            attempted_at,
            status_code: Some(response.status().as_u16()),
            error: None,
            duration_ms,
        },
        Err(error) => AttemptOutcome {
            attempted_at,
            status_code: None,
            error: Some(describe(&error)),
            duration_ms,
        },
    }
}

/// A short reason for a send that got no answer.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut message = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message.chars().take(500).collect()
}
