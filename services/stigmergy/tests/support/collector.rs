//! An OpenTelemetry collector stand-in: an HTTP server on loopback that keeps every OTLP/HTTP
//! export it receives (path, content type, protobuf body).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

pub struct Collector {
    pub address: SocketAddr,
    received: Received,
}

async fn collect(
    request: HttpRequest,
    body: web::Bytes,
    received: web::Data<Received>,
) -> HttpResponse {
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    received
        .lock()
        .unwrap()
        .push((request.path().to_owned(), content_type, body.to_vec()));
    HttpResponse::Ok()
        .content_type("application/x-protobuf")
        .finish()
}

impl Collector {
    /// Starts listening; must run inside a Tokio runtime.
    pub fn start() -> Self {
        let received: Received = Arc::default();
        let data = web::Data::new(received.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(collect))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self { address, received }
    }

    /// `http://host:port`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every export received so far.
    pub fn exports(&self) -> Vec<(String, String, Vec<u8>)> {
        self.received.lock().unwrap().clone()
    }

    /// The bodies of the exports that contain every one of `needles`.
    pub fn exports_with(&self, needles: &[&[u8]]) -> usize {
        self.exports()
            .iter()
            .filter(|(_, _, body)| needles.iter().all(|needle| contains(body, needle)))
            .count()
    }
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
