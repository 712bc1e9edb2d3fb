//! Prometheus metrics: request counts and latencies per route and status, and the pool's state.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    /// The route pattern (`/api/v1/areas/{id}`), never the raw path, to bound cardinality.
    route: String,
    status: u16,
}

/// The service's metrics. One per server, shared by its workers.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, Histogram>,
    pool_connections: Gauge,
    pool_idle: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        let pool_connections = Gauge::default();
        let pool_idle = Gauge::default();
        let mut registry = Registry::with_prefix("tavana");
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by method, route and status",
            durations.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Open database connections",
            pool_connections.clone(),
        );
        registry.register(
            "db_pool_idle_connections",
            "Idle database connections",
            pool_idle.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            durations,
            pool_connections,
            pool_idle,
        }
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = RequestLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.durations
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The text exposition format, with the pool's state as of now.
    pub fn render(&self, connections: u32, idle: u32) -> Result<String, std::fmt::Error> {
        self.pool_connections.set(i64::from(connections));
        self.pool_idle.set(i64::from(idle));
        let mut out = String::new();
        let registry = self.registry.lock().map_err(|_| std::fmt::Error)?;
        encode(&mut out, &registry)?;
        Ok(out)
    }
}
