//! A browser for tests: it completes the provider's login and consent
//! pages over HTTP (oidc-provider's devInteractions), as a person would,
//! and then follows the redirect to the app's loopback listener. It can
//! also play an attacker: change the `nonce` it is sent with, or the
//! `state` it comes back with.

use std::sync::{Arc, Mutex};

use mandate_client::Browser;

/// What the browser does to the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Nothing: an honest sign-in.
    None,
    /// Replaces the `nonce` of the authorization request.
    Nonce,
    /// Replaces the `state` on the way back to the app.
    State,
    /// Before the real answer reaches the app, a stranger on this machine
    /// sends its own: a forged code, an error without a state, and a
    /// connection that never says anything. The honest answer follows.
    StrangerFirst,
}

pub struct TestBrowser {
    pub user: &'static str,
    pub tamper: Tamper,
    /// The first failure of the background login, if any.
    pub failure: Arc<Mutex<Option<String>>>,
}

impl TestBrowser {
    pub fn new(user: &'static str, tamper: Tamper) -> TestBrowser {
        TestBrowser {
            user,
            tamper,
            failure: Arc::default(),
        }
    }
}

impl Browser for TestBrowser {
    fn open(&self, url: &str) -> Result<(), String> {
        let mut url = url.to_owned();
        if self.tamper == Tamper::Nonce {
            url = replace_param(&url, "nonce", "an-attackers-nonce");
        }
        let (user, tamper, failure) = (self.user, self.tamper, Arc::clone(&self.failure));
        tokio::spawn(async move {
            if let Err(e) = login(&url, user, tamper).await {
                *failure.lock().unwrap() = Some(e);
            }
        });
        Ok(())
    }
}

/// A stranger's answers to the app's listener, each turned away with 400
/// while the sign-in keeps waiting; a silent connection stays open.
async fn stranger(callback: &reqwest::Url) -> Result<(), String> {
    let origin = format!("http://127.0.0.1:{}", callback.port().unwrap_or(80));
    let silent = tokio::net::TcpStream::connect(&origin[7..])
        .await
        .map_err(|e| e.to_string())?;
    let http = reqwest::Client::new();
    for query in [
        "code=the-strangers-code&state=forged-state",
        "error=access_denied",
        "code=the-strangers-code",
    ] {
        let res = http
            .get(format!("{origin}/callback?{query}"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if res.status() != reqwest::StatusCode::BAD_REQUEST {
            return Err(format!("the stranger's {query} got {}", res.status()));
        }
    }
    // Held open until the honest answer has been served.
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        drop(silent);
    });
    Ok(())
}

fn replace_param(url: &str, name: &str, value: &str) -> String {
    let mut parsed = reqwest::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            if k == name {
                (k.into_owned(), value.to_owned())
            } else {
                (k.into_owned(), v.into_owned())
            }
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.to_string()
}

/// The form's action, and that it posts `prompt` login or consent.
fn form_action(html: &str) -> Option<String> {
    let start = html.find("action=\"")? + "action=\"".len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&"))
}

async fn login(url: &str, user: &str, tamper: Tamper) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let mut next = url.to_owned();
    for _ in 0..20 {
        let base = reqwest::Url::parse(&next).map_err(|e| e.to_string())?;
        if base.host_str() == Some("127.0.0.1") && base.path() == "/callback" {
            // Back to the app.
            let target = if tamper == Tamper::State {
                replace_param(&next, "state", "forged-state")
            } else {
                next
            };
            if tamper == Tamper::StrangerFirst {
                stranger(&base).await?;
            }
            let res = http.get(&target).send().await.map_err(|e| e.to_string())?;
            if tamper == Tamper::StrangerFirst && res.status() != reqwest::StatusCode::OK {
                return Err(format!("the honest answer got {}", res.status()));
            }
            return Ok(());
        }
        let res = http.get(&next).send().await.map_err(|e| e.to_string())?;
        let res = if res.status().is_redirection() {
            res
        } else {
            // A login or consent page: post its form.
            let html = res.text().await.map_err(|e| e.to_string())?;
            let action = form_action(&html).ok_or("no form on the provider's page")?;
            let action = base.join(&action).map_err(|e| e.to_string())?;
            let form: Vec<(&str, &str)> = if html.contains("name=\"login\"") {
                vec![("prompt", "login"), ("login", user), ("password", "test")]
            } else {
                vec![("prompt", "consent")]
            };
            http.post(action)
                .form(&form)
                .send()
                .await
                .map_err(|e| e.to_string())?
        };
        let location = res
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| format!("the provider answered {} without a redirect", res.status()))?;
        next = base.join(location).map_err(|e| e.to_string())?.to_string();
    }
    Err("too many redirects".into())
}
