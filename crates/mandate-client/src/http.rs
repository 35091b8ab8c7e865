//! The HTTP client `openidconnect` uses: the workspace's reqwest (rustls
//! with ring), with no redirects followed (they would open the client to
//! SSRF) and a timeout on every exchange.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};

/// A cheap handle on one connection pool.
#[derive(Debug, Clone)]
pub struct Http(reqwest::Client);

/// A transport failure, without the URL (whose query may carry secrets).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// The engine's HTTP client, for providers and brokers alike: rustls with
/// ring, no redirects, a timeout on every exchange.
pub(crate) fn client() -> Result<reqwest::Client, String> {
    // reqwest is built without a default TLS crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.without_url().to_string())
}

/// Like [`client`], but with no overall timeout, for event streams that
/// stay open (the reader times out an idle stream itself).
pub(crate) fn streaming_client() -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.without_url().to_string())
}

impl Http {
    /// A client for talking to providers.
    pub fn new() -> Result<Http, String> {
        client().map(Http)
    }

    /// POSTs `form` to `url` and returns the response's status.
    pub(crate) async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<reqwest::StatusCode, HttpError> {
        let response = self
            .0
            .post(url)
            .form(form)
            .send()
            .await
            .map_err(|e| HttpError(e.without_url().to_string()))?;
        Ok(response.status())
    }
}

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = self
                .0
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| HttpError(e.without_url().to_string()))?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|e| HttpError(e.without_url().to_string()))?;
            let mut out = HttpResponse::new(body.to_vec());
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(out)
        })
    }
}
