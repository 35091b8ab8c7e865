//! The authorization code flow's refusals: the metadata (RFC 8414),
//! registration (RFC 7591), the authorization request (a page while the
//! client or its redirect URI is in doubt, an `error` sent back to the
//! client after, RFC 6749 section 4.1.2.1, with RFC 9207's `iss`), the
//! provider's callback and the waiting page (this browser's flows only),
//! the code and refresh grants, and revocation (RFC 7009).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::BodyExt as _;
use mandate_broker::oauth::Resource;
use mandate_broker::oauth::authorize::{CodeFlow, CodeFlowConfig};
use mandate_broker::oauth::keys::TokenKeys;
use mandate_broker::router;
use mandate_core::{Claims as _, SigningKey, TokenId, base64url};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::oauth::{FILES, dpop, refused_with};
use crate::{HOST, Harness, NOW, URL, agent, call, get, harness, post};

/// A second resource: with two, an authorization request must name one.
const LEDGER: &str = "https://ledger.example/";
/// The client the hand-sealed refresh tokens are for.
const REFRESH_CLIENT: &str = "mandate-client.x";
/// The broker's own client id at the sign-in provider.
const BROKER_CLIENT: &str = "mandate-broker";
/// A sign-in provider for tests that never reach one.
const IDP: &str = "https://idp.example";
/// The client's redirect URI.
const CB: &str = "http://127.0.0.1:9/cb";
/// Where an attacker would have the browser sent.
const EVIL: &str = "https://evil.example/cb";
/// The client's `state`.
const STATE: &str = "client-state-7f3a";
/// A PKCE challenge (RFC 7636 appendix B).
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const METADATA: &str = "/.well-known/oauth-authorization-server";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// An answer's status, headers and text.
type Reply = (StatusCode, HeaderMap, String);

/// The harness's broker, serving [`FILES`] and [`LEDGER`], and `flow`.
fn app(h: &Harness, flow: Option<CodeFlow>) -> Router {
    let state = h.state.clone().serving(vec![
        Resource::parse(FILES).unwrap(),
        Resource::parse(LEDGER).unwrap(),
    ]);
    router(match flow {
        Some(flow) => state.with_code_flow(flow),
        None => state,
    })
}

/// The code flow, signing users in at `issuer` as [`BROKER_CLIENT`].
fn code_flow(issuer: &str, loopback_clients: bool) -> CodeFlow {
    let mut config = CodeFlowConfig::parse(&format!("{issuer}={BROKER_CLIENT}")).unwrap();
    config.loopback_clients = loopback_clients;
    CodeFlow::new(config).unwrap()
}

/// Serves JSON documents on 127.0.0.1, each at its path; `documents` is
/// given the server's URL. Returns the URL and a count of the documents
/// fetched.
async fn serve(
    documents: impl FnOnce(&str) -> Vec<(&'static str, Value)>,
) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let fetched = Arc::new(AtomicUsize::new(0));
    let mut site = Router::new();
    for (path, document) in documents(&url) {
        let fetched = Arc::clone(&fetched);
        site = site.route(
            path,
            axum::routing::get(move || {
                fetched.fetch_add(1, Ordering::SeqCst);
                async move { axum::Json(document) }
            }),
        );
    }
    drop(tokio::spawn(async move {
        axum::serve(listener, site).await.unwrap();
    }));
    (url, fetched)
}

/// A sign-in provider whose discovery names its endpoints (the test
/// issuer's names none); it serves nothing else.
async fn provider() -> String {
    let (url, _) = serve(|url| {
        vec![(
            "/.well-known/openid-configuration",
            json!({
                "issuer": url,
                "authorization_endpoint": format!("{url}/authorize"),
                "token_endpoint": format!("{url}/token"),
                "jwks_uri": format!("{url}/jwks"),
            }),
        )]
    })
    .await;
    url
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let (parts, body) = app.clone().oneshot(req).await.unwrap().into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (parts.status, parts.headers, text)
}

/// A browser's `GET`, with its `cookie` header if it has one.
fn browse(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut req = get(path, None);
    if let Some(c) = cookie {
        req.headers_mut()
            .insert(COOKIE, HeaderValue::from_str(c).unwrap());
    }
    req
}

/// A form `POST`.
fn form(path: &str, pairs: &[(&str, &str)]) -> Request<Body> {
    Request::post(path)
        .header("host", HOST)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(serde_urlencoded::to_string(pairs).unwrap()))
        .unwrap()
}

async fn register(app: &Router, metadata: &Value) -> (StatusCode, Value) {
    call(app, post("/oauth/register", metadata.to_string())).await
}

/// The `client_id` of a client registered with `redirect_uris`.
async fn registered(app: &Router, redirect_uris: &[&str]) -> String {
    let metadata = json!({ "client_name": "Editor", "redirect_uris": redirect_uris });
    let (status, body) = register(app, &metadata).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["client_id"].as_str().unwrap().to_owned()
}

/// `client_id` with the redirect URIs it seals replaced by `uris`, and the
/// broker's seal kept.
fn with_redirect_uris(client_id: &str, uris: &[&str]) -> String {
    let sealed = client_id.strip_prefix("mandate-client.").unwrap();
    let (payload, seal) = sealed.split_once('.').unwrap();
    let mut payload: Value = serde_json::from_slice(&base64url::decode(payload).unwrap()).unwrap();
    let list = payload
        .as_object_mut()
        .unwrap()
        .values_mut()
        .find(|v| v.is_array())
        .expect("the sealed redirect URIs");
    *list = json!(uris);
    let payload = base64url::encode(payload.to_string().as_bytes());
    format!("mandate-client.{payload}.{seal}")
}

/// An authorization request by `client_id`, to go back to [`CB`], for
/// `files:read` at [`FILES`], with [`CHALLENGE`] and [`STATE`]; `changes`
/// set a parameter, or with `None` leave it out.
fn authorize(client_id: &str, changes: &[(&str, Option<&str>)]) -> Request<Body> {
    let mut query = vec![
        ("client_id", client_id),
        ("redirect_uri", CB),
        ("response_type", "code"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("resource", FILES),
        ("scope", "files:read"),
        ("state", STATE),
    ];
    for &(name, value) in changes {
        query.retain(|(n, _)| *n != name);
        if let Some(v) = value {
            query.push((name, v));
        }
    }
    let query = serde_urlencoded::to_string(&query).unwrap();
    get(&format!("/oauth/authorize?{query}"), None)
}

fn location(headers: &HeaderMap) -> reqwest::Url {
    let to = headers.get(LOCATION).expect("a Location").to_str().unwrap();
    reqwest::Url::parse(to).unwrap()
}

fn params(url: &reqwest::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// A page for the person in the browser, never a redirect: 400, HTML no
/// other site may frame, repeating none of `hidden`.
fn assert_page(reply: &Reply, hidden: &[&str], case: &str) {
    let (status, headers, text) = reply;
    assert_eq!(*status, StatusCode::BAD_REQUEST, "{case}: {text}");
    assert!(headers.get(LOCATION).is_none(), "{case}: no redirect");
    assert!(headers.get(SET_COOKIE).is_none(), "{case}: no flow");
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8", "{case}");
    assert_eq!(headers["x-frame-options"], "DENY", "{case}");
    assert!(text.starts_with("<!doctype html>"), "{case}: {text}");
    for h in hidden {
        assert!(!text.contains(*h), "{case}: the page repeats {h:?}");
    }
}

/// `to` goes back to the client at `redirect_uri` with `error`, a
/// description and the broker as `iss`; returns its query.
fn assert_error_for(to: &reqwest::Url, redirect_uri: &str, error: &str) -> HashMap<String, String> {
    assert!(
        to.as_str().starts_with(&format!("{redirect_uri}?")),
        "{error}: {to}"
    );
    let q = params(to);
    assert_eq!(q.get("error").map(String::as_str), Some(error), "{to}");
    assert!(q.contains_key("error_description"), "{to}");
    assert_eq!(q.get("iss").map(String::as_str), Some(URL), "{to}");
    q
}

/// A redirect back to the client at `redirect_uri` with `error`, the
/// client's state and the broker as `iss`; and no flow started.
fn assert_back(reply: &Reply, redirect_uri: &str, error: &str) {
    let (status, headers, text) = reply;
    assert_eq!(*status, StatusCode::SEE_OTHER, "{error}: {text}");
    assert!(headers.get(SET_COOKIE).is_none(), "{error}: no flow");
    let q = assert_error_for(&location(headers), redirect_uri, error);
    assert_eq!(q.get("state").map(String::as_str), Some(STATE), "{q:?}");
}

/// A refusal before the user signed in: a page, never a redirect (anyone
/// can register a client, so a redirect would make the broker an open
/// redirector), whose one link goes back to the client at `redirect_uri`
/// with `error` and the broker as `iss`; and no flow started. Returns the
/// link's query.
fn assert_link_back(reply: &Reply, redirect_uri: &str, error: &str) -> HashMap<String, String> {
    let (status, headers, text) = reply;
    assert_eq!(*status, StatusCode::BAD_REQUEST, "{error}: {text}");
    assert!(headers.get(LOCATION).is_none(), "{error}: no redirect");
    assert!(headers.get(SET_COOKIE).is_none(), "{error}: no flow");
    assert_eq!(headers["x-frame-options"], "DENY", "{error}");
    let hrefs: Vec<&str> = text
        .split("href=\"")
        .skip(1)
        .filter_map(|h| h.split('"').next())
        .collect();
    assert_eq!(hrefs.len(), 1, "{error}: one link: {text}");
    let to = reqwest::Url::parse(&hrefs[0].replace("&amp;", "&")).unwrap();
    assert_error_for(&to, redirect_uri, error)
}

/// A sign-in under way.
struct SignIn {
    /// The flow: the broker's `state` at the provider.
    flow: String,
    /// This browser's cookie for it, `name=value`.
    cookie: String,
    /// The `Set-Cookie` header, attributes and all.
    set_cookie: String,
    /// Where the browser was sent to sign in.
    url: reqwest::Url,
}

async fn start(app: &Router, req: Request<Body>) -> SignIn {
    let (status, headers, text) = send(app, req).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{text}");
    assert!(
        headers.contains_key(SET_COOKIE),
        "a flow starts: {headers:?}"
    );
    let url = location(&headers);
    let flow = params(&url)["state"].clone();
    let set_cookie = headers[SET_COOKIE].to_str().unwrap().to_owned();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    SignIn {
        flow,
        cookie,
        set_cookie,
        url,
    }
}

/// A refresh token as the broker seals them (`mrt1.`, its payload, and a
/// seal by the key derived from `broker`'s): for a request that does not
/// exist, at [`FILES`], bound to agent 5's key.
fn refresh_token(broker: &SigningKey, jti: &str, exp: i64) -> String {
    refresh_token_for(broker, TokenId::of("no such request"), jti, exp)
}

/// A refresh token for request `rid`'s grant, to [`REFRESH_CLIENT`], as
/// the broker `broker` seals them.
fn refresh_token_for(broker: &SigningKey, rid: TokenId, jti: &str, exp: i64) -> String {
    let payload = json!({
        "rid": rid.to_string(),
        "cid": REFRESH_CLIENT,
        "res": FILES,
        "jkt": agent(5).thumbprint().to_string(),
        "jti": jti,
        "exp": exp,
    })
    .to_string();
    let seal = TokenKeys::of(broker)
        .derived("refresh", b"")
        .sign_detached("mandate-oauth-refresh/v1", payload.as_bytes());
    format!(
        "mrt1.{}.{}",
        base64url::encode(payload.as_bytes()),
        base64url::encode(seal)
    )
}

/// The harness broker's key.
fn this_broker() -> SigningKey {
    SigningKey::from_seed(&[90; 32])
}

/// A refresh with `token` and `extra` parameters, and with agent 5's DPoP
/// proof `jti` if given.
fn refresh(token: &str, extra: &[(&str, &str)], jti: Option<&str>) -> Request<Body> {
    let mut pairs = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    pairs.extend_from_slice(extra);
    let mut req = form("/oauth/token", &pairs);
    if let Some(jti) = jti {
        let proof = dpop(&agent(5), jti, NOW);
        req.headers_mut()
            .insert("dpop", HeaderValue::from_str(&proof).unwrap());
    }
    req
}

fn description(body: &Value) -> &str {
    body["error_description"].as_str().unwrap_or_default()
}

#[test]
fn the_code_flow_is_configured_as_issuer_equals_client_id() {
    let config = CodeFlowConfig::parse("https://idp.example=mandate-broker").unwrap();
    assert_eq!(
        (config.issuer.as_str(), config.client_id.as_str()),
        ("https://idp.example", "mandate-broker")
    );
    assert!(
        !config.loopback_clients,
        "https:// documents only, unless asked"
    );
    for bad in [
        "https://idp.example",
        "=mandate-broker",
        "https://idp.example=",
        "https://idp.example=a,b",
    ] {
        assert!(CodeFlowConfig::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn the_metadata_lists_the_code_flow_only_when_the_broker_serves_it() {
    let h = harness().await;
    let (status, on) = call(&app(&h, Some(code_flow(IDP, false))), get(METADATA, None)).await;
    assert_eq!(status, StatusCode::OK, "{on}");
    assert_eq!(
        on["authorization_endpoint"],
        format!("{URL}/oauth/authorize")
    );
    assert_eq!(on["registration_endpoint"], format!("{URL}/oauth/register"));
    assert_eq!(on["revocation_endpoint"], format!("{URL}/oauth/revoke"));
    assert_eq!(on["response_types_supported"], json!(["code"]));
    assert_eq!(on["response_modes_supported"], json!(["query"]));
    assert_eq!(on["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(on["authorization_response_iss_parameter_supported"], true);
    assert_eq!(on["client_id_metadata_document_supported"], true);
    assert_eq!(on["token_endpoint_auth_methods_supported"], json!(["none"]));
    assert_eq!(
        on["grant_types_supported"],
        json!([TOKEN_EXCHANGE, "authorization_code", "refresh_token"])
    );

    let (status, off) = call(&app(&h, None), get(METADATA, None)).await;
    assert_eq!(status, StatusCode::OK, "{off}");
    for member in [
        "authorization_endpoint",
        "registration_endpoint",
        "response_modes_supported",
        "code_challenge_methods_supported",
        "authorization_response_iss_parameter_supported",
        "client_id_metadata_document_supported",
    ] {
        assert!(off.get(member).is_none(), "{member}: {off}");
    }
    assert_eq!(off["response_types_supported"], json!([]));
    assert_eq!(off["grant_types_supported"], json!([TOKEN_EXCHANGE]));
    assert_eq!(
        off["revocation_endpoint"],
        format!("{URL}/oauth/revoke"),
        "access tokens are revoked either way"
    );
}

#[tokio::test]
async fn registration_takes_public_clients_with_safe_redirect_uris_only() {
    let h = harness().await;
    let broker = app(&h, Some(code_flow(IDP, false)));
    let uris = [CB, "https://client.example/cb", "com.example.app:/cb"];
    let (status, body) = register(
        &broker,
        &json!({ "client_name": " Editor ", "redirect_uris": uris }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body["client_id"]
            .as_str()
            .unwrap()
            .starts_with("mandate-client."),
        "{body}"
    );
    assert_eq!(body["client_id_issued_at"], NOW);
    assert_eq!(body["client_name"], "Editor");
    assert_eq!(body["redirect_uris"], json!(uris));
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert_eq!(
        body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(body["response_types"], json!(["code"]));
    assert!(body.get("client_secret").is_none(), "a public client");
    // What a public client may say of itself, and members RFC 7591 lets the
    // broker ignore.
    let (status, body) = register(
        &broker,
        &json!({
            "redirect_uris": [CB],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "logo_uri": "https://client.example/logo.png",
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body.get("client_name").is_none(), "{body}");

    let long = format!("https://client.example/{}", "a".repeat(520));
    let redirects = [
        json!([]),
        json!(["javascript:alert(1)"]),
        json!(["data:text/html,hi"]),
        json!(["http://client.example/cb"]),
        json!(["https://client.example/cb#fragment"]),
        json!(["myapp:/cb"]),
        json!(["https://user:pw@client.example/cb"]),
        json!([CB, "/relative"]),
        json!([long]),
        json!([CB, CB, CB, CB, CB, CB]),
    ];
    for uris in redirects {
        let (status, body) = register(
            &broker,
            &json!({ "client_name": "Editor", "redirect_uris": uris }),
        )
        .await;
        refused_with(status, &body, "invalid_redirect_uri");
        for uri in uris.as_array().unwrap() {
            let uri = uri.as_str().unwrap();
            assert!(!description(&body).contains(uri), "{uri} is echoed: {body}");
        }
    }

    let metadata = [
        json!({ "redirect_uris": [CB], "token_endpoint_auth_method": "client_secret_basic" }),
        json!({ "redirect_uris": [CB], "token_endpoint_auth_method": "private_key_jwt" }),
        json!({ "redirect_uris": [CB], "client_secret": "s3cret-s3cret" }),
        json!({ "redirect_uris": [CB], "grant_types": ["authorization_code", "client_credentials"] }),
        json!({ "redirect_uris": [CB], "response_types": ["token"] }),
        json!({ "redirect_uris": [CB], "client_id": "mandate-client.mine" }),
        json!({ "redirect_uris": [CB], "client_name": "Edi\u{7}tor" }),
        json!({ "redirect_uris": [CB], "client_name": "x".repeat(65) }),
        json!({ "redirect_uris": [CB], "client_name": "  " }),
        json!({ "client_name": "Editor" }),
        json!({ "redirect_uris": CB }),
        json!([CB]),
    ];
    for m in metadata {
        let (status, body) = register(&broker, &m).await;
        refused_with(status, &body, "invalid_client_metadata");
        assert!(!body.to_string().contains("s3cret"), "{body}");
    }
    // Not JSON at all: a 400 with RFC 7591's code, never a 5xx.
    for raw in [
        "{not json",
        "",
        "null",
        r#"{"redirect_uris": ["http://127.0.0.1:9/cb"]"#,
    ] {
        let (status, body) = call(&broker, post("/oauth/register", raw)).await;
        refused_with(status, &body, "invalid_client_metadata");
    }
    let huge = json!({ "redirect_uris": [CB], "client_name": "x".repeat(400_000) });
    let (status, body) = call(&broker, post("/oauth/register", huge.to_string())).await;
    assert!(status.is_client_error(), "{status}: {body}");
    assert!(!body.to_string().contains("xxxxxxxx"), "not echoed");
    // A form is stopped at the front door, as on every JSON route.
    let (status, body) = call(&broker, form("/oauth/register", &[("redirect_uris", CB)])).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("body.content_type")
        ),
        "{body}"
    );
    // Without the code flow, there is nothing to register for.
    let (status, body) = register(&app(&h, None), &json!({ "redirect_uris": [CB] })).await;
    refused_with(status, &body, "invalid_client_metadata");
}

#[tokio::test]
async fn an_unknown_client_or_redirect_uri_gets_a_page_never_a_redirect() {
    let h = harness().await;
    let broker = app(&h, Some(code_flow(&provider().await, false)));
    let client = registered(&broker, &[CB]).await;
    let two = registered(&broker, &[CB, "https://client.example/cb"]).await;
    // The broker's seal kept, the redirect URIs it sealed replaced.
    let forged = with_redirect_uris(&client, &[EVIL]);
    let repeated =
        serde_urlencoded::to_string([("client_id", &client), ("client_id", &client)]).unwrap();
    let cases = [
        (
            "no client_id",
            get("/oauth/authorize?response_type=code", None),
        ),
        ("no query", get("/oauth/authorize", None)),
        (
            "client_id repeated",
            get(&format!("/oauth/authorize?{repeated}"), None),
        ),
        ("not sealed", authorize("mandate-client.garbage", &[])),
        (
            "not sealed by this broker",
            authorize(&forged, &[("redirect_uri", Some(EVIL))]),
        ),
        ("not a URL", authorize("a client", &[])),
        (
            "a document URL without a path",
            authorize("https://client.example/", &[]),
        ),
        (
            "http:// without loopback clients",
            authorize("http://127.0.0.1:9/client.json", &[]),
        ),
        (
            "not registered",
            authorize(&client, &[("redirect_uri", Some(EVIL))]),
        ),
        (
            "a longer path",
            authorize(
                &client,
                &[("redirect_uri", Some("http://127.0.0.1:9/cb/x"))],
            ),
        ),
        (
            "another query",
            authorize(
                &client,
                &[("redirect_uri", Some("http://127.0.0.1:9/cb?x=1"))],
            ),
        ),
        (
            "another case",
            authorize(&client, &[("redirect_uri", Some("http://127.0.0.1:9/CB"))]),
        ),
        (
            "two registered, none named",
            authorize(&two, &[("redirect_uri", None)]),
        ),
    ];
    for (case, req) in cases {
        let reply = send(&broker, req).await;
        assert_page(
            &reply,
            &[
                "evil.example",
                "client.example",
                "127.0.0.1",
                "mandate-client",
            ],
            case,
        );
    }
    // Without the code flow, every authorization request gets a page.
    let off = app(&h, None);
    assert_page(&send(&off, authorize(&client, &[])).await, &[], "off");
}

#[tokio::test]
async fn once_the_client_checks_out_refusals_link_back_to_it_with_state_and_iss() {
    let h = harness().await;
    let broker = app(&h, Some(code_flow(&provider().await, false)));
    let client = registered(&broker, &[CB]).await;
    let plus = CHALLENGE.replace('-', "+");
    let longer = format!("{CHALLENGE}A");
    let outside = json!([{ "type": "files", "actions": ["read"], "locations": ["https://elsewhere.example/"] }])
        .to_string();
    let cases = [
        (
            vec![("response_type", Some("token"))],
            "unsupported_response_type",
        ),
        (vec![("response_type", None)], "unsupported_response_type"),
        // The client has one redirect URI: it may leave it out.
        (
            vec![
                ("redirect_uri", None),
                ("response_type", Some("code id_token")),
            ],
            "unsupported_response_type",
        ),
        (vec![("code_challenge_method", None)], "invalid_request"),
        (
            vec![("code_challenge_method", Some("plain"))],
            "invalid_request",
        ),
        (vec![("code_challenge", None)], "invalid_request"),
        (
            vec![("code_challenge", Some(&CHALLENGE[..42]))],
            "invalid_request",
        ),
        (
            vec![("code_challenge", Some(longer.as_str()))],
            "invalid_request",
        ),
        (
            vec![("code_challenge", Some(plus.as_str()))],
            "invalid_request",
        ),
        (
            vec![("dpop_jkt", Some("not-a-thumbprint"))],
            "invalid_request",
        ),
        (
            vec![("resource", Some("https://elsewhere.example/"))],
            "invalid_target",
        ),
        // A location within the resource is not the resource.
        (vec![("resource", Some("https://f/r/"))], "invalid_target"),
        // Two resources are served: the request must name one.
        (vec![("resource", None)], "invalid_target"),
        (vec![("scope", None)], "invalid_scope"),
        (vec![("scope", Some("offline_access"))], "invalid_scope"),
        (vec![("scope", Some("files"))], "invalid_scope"),
        (
            vec![
                ("scope", None),
                ("authorization_details", Some(outside.as_str())),
            ],
            "invalid_authorization_details",
        ),
        (
            vec![
                ("scope", None),
                ("authorization_details", Some("files:read")),
            ],
            "invalid_authorization_details",
        ),
    ];
    for (changes, error) in cases {
        let reply = send(&broker, authorize(&client, &changes)).await;
        let q = assert_link_back(&reply, CB, error);
        assert_eq!(q.get("state").map(String::as_str), Some(STATE), "{q:?}");
    }
    // Without a state, none goes back; `iss` always does.
    let reply = send(
        &broker,
        authorize(
            &client,
            &[("state", None), ("response_type", Some("token"))],
        ),
    )
    .await;
    let q = assert_link_back(&reply, CB, "unsupported_response_type");
    assert!(!q.contains_key("state"), "{q:?}");
    assert_eq!(
        h.store.events_since(0, 10).await.unwrap().len(),
        1,
        "nothing filed: only Alice's binding"
    );
}

#[tokio::test]
async fn a_good_authorization_request_goes_on_to_sign_in_with_a_cookie_for_this_browser() {
    let h = harness().await;
    let provider = provider().await;
    let broker = app(&h, Some(code_flow(&provider, false)));
    let client = registered(&broker, &[CB]).await;
    let (status, headers, text) = send(&broker, authorize(&client, &[])).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{text}");
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    let to = location(&headers);
    assert!(
        to.as_str().starts_with(&format!("{provider}/authorize?")),
        "{to}"
    );
    let q = params(&to);
    assert_eq!(q["response_type"], "code");
    assert_eq!(
        q["client_id"], BROKER_CLIENT,
        "the broker's own client there"
    );
    assert_eq!(q["redirect_uri"], format!("{URL}/oauth/callback"));
    assert_eq!(q["scope"], "openid");
    assert_eq!(q["code_challenge_method"], "S256");
    for fresh in ["state", "nonce", "code_challenge"] {
        assert_eq!(q[fresh].len(), 43, "{fresh}: {to}");
    }
    assert_ne!(q["code_challenge"], CHALLENGE, "the broker's own PKCE");
    assert!(
        !to.as_str().contains(STATE),
        "the client's state stays: {to}"
    );
    assert!(!to.as_str().contains(&client), "the client stays: {to}");

    let flow = &q["state"];
    let set_cookie = headers[SET_COOKIE].to_str().unwrap();
    let mut parts = set_cookie.split("; ");
    let cookie = parts.next().unwrap();
    let secret = cookie
        .strip_prefix(&format!("mandate_flow_{flow}="))
        .unwrap_or_else(|| panic!("the flow's cookie: {set_cookie}"));
    assert_eq!(secret.len(), 43, "{set_cookie}");
    assert!(
        !to.as_str().contains(secret),
        "the secret is the cookie's only"
    );
    let attributes: Vec<&str> = parts.collect();
    for attribute in ["Path=/oauth", "HttpOnly", "SameSite=Lax"] {
        assert!(attributes.contains(&attribute), "{attribute}: {set_cookie}");
    }

    // Another sign-in is a flow of its own: here with
    // authorization_details, a DPoP key, and the one redirect URI left out.
    let details = json!([{ "type": "files", "actions": ["read"], "locations": ["https://f/r/"] }])
        .to_string();
    let jkt = agent(3).thumbprint().to_string();
    let other = start(
        &broker,
        authorize(
            &client,
            &[
                ("scope", None),
                ("authorization_details", Some(details.as_str())),
                ("dpop_jkt", Some(jkt.as_str())),
                ("redirect_uri", None),
            ],
        ),
    )
    .await;
    assert_ne!(other.flow, *flow);
    assert!(
        other.set_cookie.contains("HttpOnly"),
        "{}",
        other.set_cookie
    );
    assert!(
        other
            .url
            .as_str()
            .starts_with(&format!("{provider}/authorize?")),
        "{}",
        other.url
    );
    assert_eq!(
        h.store.events_since(0, 10).await.unwrap().len(),
        1,
        "nothing filed before the user signs in"
    );
}

#[tokio::test]
async fn a_metadata_document_is_fetched_from_its_url_and_must_name_it() {
    let h = harness().await;
    let provider = provider().await;
    let (site, fetched) = serve(|url| {
        vec![
            (
                "/client.json",
                json!({ "client_id": format!("{url}/client.json"), "client_name": "Docs", "redirect_uris": [CB] }),
            ),
            (
                "/impostor.json",
                json!({ "client_id": format!("{url}/client.json"), "client_name": "Docs", "redirect_uris": [CB] }),
            ),
            (
                "/unsafe.json",
                json!({ "client_id": format!("{url}/unsafe.json"), "redirect_uris": [CB, "http://evil.example/cb"] }),
            ),
            (
                "/large.json",
                json!({ "client_id": format!("{url}/large.json"), "redirect_uris": [CB], "logo": "x".repeat(6 * 1024) }),
            ),
        ]
    })
    .await;
    let open = app(&h, Some(code_flow(&provider, true)));
    let signin = start(&open, authorize(&format!("{site}/client.json"), &[])).await;
    assert!(
        signin
            .url
            .as_str()
            .starts_with(&format!("{provider}/authorize?")),
        "{}",
        signin.url
    );
    assert_eq!(fetched.load(Ordering::SeqCst), 1, "fetched to authorize");
    for path in [
        "/impostor.json",
        "/unsafe.json",
        "/large.json",
        "/missing.json",
    ] {
        let reply = send(&open, authorize(&format!("{site}{path}"), &[])).await;
        assert_page(&reply, &["evil.example", site.as_str()], path);
    }
    // Without loopback clients, an http:// client_id is not even fetched.
    let before = fetched.load(Ordering::SeqCst);
    let strict = app(&h, Some(code_flow(&provider, false)));
    let reply = send(&strict, authorize(&format!("{site}/client.json"), &[])).await;
    assert_page(&reply, &[site.as_str()], "http:// without loopback clients");
    assert_eq!(fetched.load(Ordering::SeqCst), before, "not fetched");
    // Nor is an https:// one on this machine, by address or by name, or on
    // a private or link-local address (SSRF): nothing is looked up past the
    // address check. (The document server speaks plain HTTP, so a fetch
    // would fail otherwise: the page says which check refused it.)
    let port = site.rsplit(':').next().unwrap();
    for id in [
        format!("https://127.0.0.1:{port}/client.json"),
        format!("https://localhost:{port}/client.json"),
        format!("https://[::1]:{port}/client.json"),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        "https://10.0.0.1/client.json".to_owned(),
        "https://[fd00::1]/client.json".to_owned(),
        "https://[::ffff:127.0.0.1]/client.json".to_owned(),
    ] {
        let reply = send(&strict, authorize(&id, &[])).await;
        assert_page(&reply, &[id.as_str()], &id);
        assert!(
            reply.2.contains("not on a public address"),
            "{id}: {}",
            reply.2
        );
    }
    assert_eq!(fetched.load(Ordering::SeqCst), before, "not fetched");
}

#[tokio::test]
async fn a_sign_in_provider_that_cannot_be_used_is_reported_to_the_client() {
    let h = harness().await;
    // The test issuer's discovery names no authorization endpoint.
    let broker = app(&h, Some(code_flow(&h.idp.url, false)));
    let client = registered(&broker, &[CB]).await;
    let reply = send(&broker, authorize(&client, &[])).await;
    assert_link_back(&reply, CB, "temporarily_unavailable");
    // A provider whose discovery names another issuer.
    let (liar, _) = serve(|url| {
        vec![(
            "/.well-known/openid-configuration",
            json!({
                "issuer": "https://another.example",
                "authorization_endpoint": format!("{url}/authorize"),
                "token_endpoint": format!("{url}/token"),
            }),
        )]
    })
    .await;
    let broker = app(&h, Some(code_flow(&liar, false)));
    let reply = send(&broker, authorize(&client, &[])).await;
    assert_link_back(&reply, CB, "temporarily_unavailable");
    // One that does not answer: bind a port, note it, close it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let broker = app(
        &h,
        Some(code_flow(&format!("http://127.0.0.1:{port}"), false)),
    );
    let reply = send(&broker, authorize(&client, &[])).await;
    assert_link_back(&reply, CB, "temporarily_unavailable");
}

#[tokio::test]
async fn the_callback_and_the_waiting_page_serve_only_the_browser_that_started_the_flow() {
    let h = harness().await;
    let broker = app(&h, Some(code_flow(&provider().await, false)));
    let client = registered(&broker, &[CB]).await;
    let signin = start(&broker, authorize(&client, &[])).await;
    let (flow, cookie) = (signin.flow.as_str(), signin.cookie.as_str());
    let secret = cookie.split_once('=').unwrap().1;
    let stranger = format!("mandate_flow_{flow}=not-the-secret");
    let twice = format!("{cookie}; {cookie}");
    let callback = format!("/oauth/callback?state={flow}&code=provider-code");
    let wait = format!("/oauth/wait/{flow}");
    let unknown = "A".repeat(43);
    let hidden = [secret, flow, "provider-code"];
    let cases = [
        (
            format!("/oauth/callback?state={unknown}&code=provider-code"),
            Some(cookie),
        ),
        (callback.clone(), None),
        (callback.clone(), Some(stranger.as_str())),
        (callback.clone(), Some(twice.as_str())),
        (format!("/oauth/wait/{unknown}"), Some(cookie)),
        (wait.clone(), None),
        (wait.clone(), Some(stranger.as_str())),
    ];
    for (path, browser) in &cases {
        let reply = send(&broker, browse(path, *browser)).await;
        let case = format!("{path} with {browser:?}");
        assert_page(&reply, &hidden, &case);
        assert!(reply.2.contains("another browser"), "{case}: {}", reply.2);
    }
    for path in [
        "/oauth/callback",
        "/oauth/callback?code=provider-code",
        "/oauth/callback?state=a&state=b",
    ] {
        assert_page(
            &send(&broker, browse(path, Some(cookie))).await,
            &hidden,
            path,
        );
    }
    // This browser, before the user signed in: nothing to wait for yet.
    let reply = send(&broker, browse(&wait, Some(cookie))).await;
    assert_page(&reply, &hidden, "not signed in");
    assert!(reply.2.contains("Sign in first"), "{}", reply.2);

    // The provider says the user did not sign in: back to the client, and
    // the flow is over.
    let denied = format!("/oauth/callback?state={flow}&error=access_denied");
    let reply = send(&broker, browse(&denied, Some(cookie))).await;
    assert_back(&reply, CB, "access_denied");
    let reply = send(&broker, browse(&callback, Some(cookie))).await;
    assert_page(&reply, &hidden, "over");
    assert!(reply.2.contains("another browser"), "{}", reply.2);

    // A code the provider does not redeem (this provider redeems none).
    let second = start(&broker, authorize(&client, &[])).await;
    let path = format!("/oauth/callback?state={}&code=forged-code", second.flow);
    let reply = send(&broker, browse(&path, Some(&second.cookie))).await;
    assert_back(&reply, CB, "access_denied");
    assert_eq!(
        h.store.events_since(0, 10).await.unwrap().len(),
        1,
        "nothing filed: only Alice's binding"
    );

    // Without the code flow, these are pages too.
    let off = app(&h, None);
    for path in [callback.as_str(), wait.as_str()] {
        assert_page(&send(&off, browse(path, Some(cookie))).await, &hidden, path);
    }
}

#[tokio::test]
async fn the_token_endpoint_refuses_unknown_codes_and_forged_refresh_tokens() {
    let h = harness().await;
    let broker = app(&h, Some(code_flow(IDP, false)));
    let client = registered(&broker, &[CB]).await;
    let verifier = "v".repeat(43);
    let forged = refresh_token(&SigningKey::from_seed(&[91; 32]), "f1", NOW + 3600);
    let code = vec![
        ("grant_type", "authorization_code"),
        ("code", "no-such-code"),
        ("code_verifier", verifier.as_str()),
        ("client_id", client.as_str()),
        ("redirect_uri", CB),
    ];
    let cases = [
        (code.clone(), "invalid_grant"),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "no-such-code"),
                ("client_id", client.as_str()),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "garbage"),
            ],
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "mrt1.e30.AAAA"),
            ],
            "invalid_grant",
        ),
        // Sealed as this broker seals them, by another broker's key.
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", forged.as_str()),
            ],
            "invalid_grant",
        ),
        (vec![("grant_type", "refresh_token")], "invalid_request"),
        (
            vec![
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "hunter2"),
            ],
            "unsupported_grant_type",
        ),
        (
            vec![("grant_type", "client_credentials")],
            "unsupported_grant_type",
        ),
    ];
    for (pairs, error) in cases {
        let (status, body) = call(&broker, form("/oauth/token", &pairs)).await;
        refused_with(status, &body, error);
        for secret in [
            forged.as_str(),
            verifier.as_str(),
            "hunter2",
            "no-such-code",
        ] {
            assert!(
                !body.to_string().contains(secret),
                "{secret} echoed: {body}"
            );
        }
    }
    // The same token sealed by this broker passes the seal, so what is
    // refused next is what follows it.
    let genuine = refresh_token(&this_broker(), "g1", NOW + 3600);
    let (status, body) = call(&broker, refresh(&genuine, &[], None)).await;
    refused_with(status, &body, "invalid_dpop_proof");
    let (status, body) = call(&broker, refresh(&genuine, &[("resource", LEDGER)], None)).await;
    refused_with(status, &body, "invalid_target");
    let lapsed = refresh_token(&this_broker(), "g2", NOW);
    let (status, body) = call(&broker, refresh(&lapsed, &[], None)).await;
    refused_with(status, &body, "invalid_grant");
    assert!(description(&body).contains("expired"), "{body}");

    // Without the code flow, there are no codes to redeem and no refresh
    // tokens to use, as the metadata's grant_types_supported says.
    let off = app(&h, None);
    for pairs in [code, vec![("grant_type", "authorization_code")]] {
        let (status, body) = call(&off, form("/oauth/token", &pairs)).await;
        refused_with(status, &body, "unsupported_grant_type");
    }
    let (status, body) = call(&off, refresh(&genuine, &[], None)).await;
    refused_with(status, &body, "unsupported_grant_type");
}

#[tokio::test]
async fn revocation_answers_alike_for_any_token_and_spends_refresh_tokens() {
    let h = harness().await;
    let broker = app(&h, Some(code_flow(IDP, false)));
    let forged = refresh_token(&SigningKey::from_seed(&[91; 32]), "f1", NOW + 3600);
    for token in ["unknown", "a.b.c", "mrt1.e30.AAAA", forged.as_str()] {
        let revoke = form(
            "/oauth/revoke",
            &[("token", token), ("token_type_hint", "refresh_token")],
        );
        let (status, body) = call(&broker, revoke).await;
        assert_eq!(status, StatusCode::OK, "{token}: {body}");
    }
    for pairs in [
        vec![],
        vec![("token_type_hint", "access_token")],
        vec![("token", "a"), ("token", "b")],
    ] {
        let (status, body) = call(&broker, form("/oauth/revoke", &pairs)).await;
        refused_with(status, &body, "invalid_request");
    }
    // A refresh token of this broker's, revoked, is refused; one not
    // revoked gets further (to the grant behind it, which does not exist).
    let revoked = refresh_token(&this_broker(), "r1", NOW + 3600);
    let kept = refresh_token(&this_broker(), "r2", NOW + 3600);
    let (status, body) = call(&broker, form("/oauth/revoke", &[("token", &revoked)])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(&broker, refresh(&revoked, &[], Some("p1"))).await;
    refused_with(status, &body, "invalid_grant");
    assert!(description(&body).contains("revoked"), "{body}");
    let (status, body) = call(&broker, refresh(&kept, &[], Some("p2"))).await;
    refused_with(status, &body, "invalid_grant");
    assert!(!description(&body).contains("revoked"), "{body}");
}

/// A line of refresh tokens on a real grant: each use gives a new token
/// and an access token; a token used twice ends the whole line (RFC 9700
/// section 4.14.2), and revoking the grant ends every line on it.
#[tokio::test]
async fn a_refresh_token_used_twice_ends_its_line_and_a_revoked_grant_every_line() {
    let h = harness().await;
    let broker = app(&h, Some(code_flow(IDP, false)));
    // The grant the user approved for the client: to the key the broker
    // holds for it, for the request the broker filed.
    let client_agent =
        TokenKeys::of(&this_broker()).derived("client-agent", REFRESH_CLIENT.as_bytes());
    let request = crate::request_token(&client_agent, "rq-line", &h.alice);
    crate::submit(&h.app, &request).await;
    let rid = TokenId::of(&request);
    let grant = crate::users::grant(&h, rid, &client_agent, &["read"], NOW + 3600)
        .sign(&crate::users::alice_key());
    let bearer = h.idp.token("alice", json!({}));
    let (status, body) = call(
        &h.app,
        crate::users::post_json(
            &format!("/v1/requests/{rid}/decision"),
            json!({ "grant": grant }),
            &bearer,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let first = refresh_token_for(&this_broker(), rid, "line-1", NOW + 3600);
    let (status, body) = call(&broker, refresh(&first, &[], Some("l1"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let second = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    // The second token of the line works once.
    let (status, body) = call(&broker, refresh(&second, &[], Some("l2"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let third = body["refresh_token"].as_str().unwrap().to_owned();
    // The first, used again: someone holds a copy. Refused, and the line
    // ends: the newest token of it is refused too.
    let (status, body) = call(&broker, refresh(&first, &[], Some("l3"))).await;
    refused_with(status, &body, "invalid_grant");
    assert!(description(&body).contains("used before"), "{body}");
    let (status, body) = call(&broker, refresh(&third, &[], Some("l4"))).await;
    refused_with(status, &body, "invalid_grant");
    assert!(description(&body).contains("line was ended"), "{body}");

    // Another line on the same grant stands; RFC 7009 revocation of one of
    // its tokens ends it.
    let other = refresh_token_for(&this_broker(), rid, "line-2", NOW + 3600);
    let (status, body) = call(&broker, refresh(&other, &[], Some("l5"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let next = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, _) = call(&broker, form("/oauth/revoke", &[("token", &other)])).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(&broker, refresh(&next, &[], Some("l6"))).await;
    refused_with(status, &body, "invalid_grant");
    assert!(description(&body).contains("line was ended"), "{body}");

    // A third line, then the user revokes the grant: refused.
    let last = refresh_token_for(&this_broker(), rid, "line-3", NOW + 3600);
    let revocation = crate::revocations::revocation(
        &h.alice,
        vec![TokenId::of(&grant)],
        &crate::users::alice_key(),
        "rv-line",
    );
    let (status, body) = call(
        &h.app,
        post(
            "/v1/revocations",
            json!({ "revocation": revocation }).to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(&broker, refresh(&last, &[], Some("l7"))).await;
    refused_with(status, &body, "invalid_grant");
    assert!(description(&body).contains("chain.revoked"), "{body}");
}
