//! Prometheus metrics at `GET /metrics`, in the OpenMetrics text format: every HTTP request by
//! route, method and status with its duration, and the series each service counts (capture's,
//! the gateway's, the projector's), all under the `stigmergy_` prefix. `docs/metrics.md` lists
//! them.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of the OpenMetrics text format, which Prometheus scrapes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The route label of a request no route matched (not its path: paths are unbounded).
const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

type Durations = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Requests and their durations, by route pattern (`/id/{id}`, not the path) and method.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    seconds: Durations,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        fn durations() -> Histogram {
            // 100 µs to about 26 s.
            Histogram::new(exponential_buckets(0.0001, 2.0, 19))
        }
        Self {
            requests: Family::default(),
            seconds: Family::new_with_constructor(durations),
        }
    }
}

impl HttpMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route pattern and status",
            self.requests.clone(),
        );
        registry.register(
            "http_request_seconds",
            "Time to answer an HTTP request (to the start of its answer), by method and route pattern",
            self.seconds.clone(),
        );
    }
}

/// The metrics of one process: a registry to fill before serving, then served as it stands at
/// each scrape.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http: HttpMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("stigmergy");
        let http = HttpMetrics::default();
        http.register(&mut registry);
        Self { registry, http }
    }
}

/// What the HTTP routes share to count requests and answer `/metrics`.
#[derive(Clone, Debug)]
pub struct Exposition {
    registry: Arc<Registry>,
    http: HttpMetrics,
}

impl Metrics {
    /// Where the services register their series.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Stops registering: what the HTTP routes share.
    pub fn expose(self) -> Exposition {
        Exposition {
            registry: Arc::new(self.registry),
            http: self.http,
        }
    }
}

impl Exposition {
    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }
}

/// Mounts `GET /metrics`; wrap the app in [`measure`] to count its requests.
pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/metrics", web::get().to(metrics));
}

async fn metrics(exposition: web::Data<Exposition>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(exposition.encode())
}

/// Middleware (`actix_web::middleware::from_fn(measure)`): counts each request and its duration
/// under its route pattern, when the app has an [`Exposition`].
pub async fn measure(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let http = request
        .app_data::<web::Data<Exposition>>()
        .map(|exposition| exposition.http.clone());
    // Any token is a method to HTTP: those it defines are labelled, the rest counted together.
    let method = match request.method().as_str() {
        known @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE"
        | "PATCH") => known.to_owned(),
        _ => "other".to_owned(),
    };
    let started = Instant::now();
    let response = next.call(request).await?;
    if let Some(http) = http {
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| UNMATCHED.to_owned());
        http.seconds
            .get_or_create(&RouteLabels {
                method: method.clone(),
                route: route.clone(),
            })
            .observe(started.elapsed().as_secs_f64());
        http.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status: response.status().as_u16(),
            })
            .inc();
    }
    Ok(response)
}
