//! The axum router: middleware (who is asking, CSRF on every state-changing request,
//! security headers, the access log) and the handlers of every route in
//! [`super::access::ROUTES`]. Pages and API endpoints share the views in
//! [`super::views`]; every gate goes through [`gate`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::access::{Need, ROUTES};
use super::auth::{
    LOGIN_CSRF_COOKIE, Principal, Refused, SESSION_COOKIE, cookie, cookie_value, same_token,
};
use super::{App, ServeError, views};

type Shared = Arc<App>;

/// Who is asking (none: not signed in).
#[derive(Clone)]
pub struct Auth(pub Option<Principal>);

/// The router of the app, every route behind the middleware.
pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/static/app.css", get(stylesheet))
        // Browsers ask for it on every page; without a route it would be sent to sign-in.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/", get(|| async { Redirect::to("/risk") }))
        .route("/risk", get(risk_page))
        .route("/cohorts", get(cohort_page))
        .route("/patients/{ref}", get(patient_page))
        .route("/population", get(population_page))
        .route("/quality", get(quality_page))
        .route("/admin/audit", get(audit_page))
        .route("/api/v1/me", get(api_me))
        .route("/api/v1/risk/distribution", get(api_distribution))
        .route("/api/v1/cohort", get(api_cohort))
        .route("/api/v1/patients/{ref}", get(api_patient))
        .route("/api/v1/population", get(api_population))
        .route("/api/v1/quality", get(api_quality))
        .route("/api/v1/audit", get(api_audit))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), authenticate))
        .layer(middleware::from_fn_with_state(app.clone(), access_log))
        .with_state(app)
}

/// The templates, embedded in the binary.
pub fn templates() -> Result<minijinja::Environment<'static>, ServeError> {
    let mut env = minijinja::Environment::new();
    for (name, text) in [
        ("base.html", include_str!("../../templates/serve/base.html")),
        (
            "login.html",
            include_str!("../../templates/serve/login.html"),
        ),
        ("risk.html", include_str!("../../templates/serve/risk.html")),
        (
            "cohorts.html",
            include_str!("../../templates/serve/cohorts.html"),
        ),
        (
            "patient.html",
            include_str!("../../templates/serve/patient.html"),
        ),
        (
            "population.html",
            include_str!("../../templates/serve/population.html"),
        ),
        (
            "quality.html",
            include_str!("../../templates/serve/quality.html"),
        ),
        (
            "audit.html",
            include_str!("../../templates/serve/audit.html"),
        ),
        (
            "error.html",
            include_str!("../../templates/serve/error.html"),
        ),
    ] {
        env.add_template(name, text)?;
    }
    Ok(env)
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

fn refusal(api: bool, status: StatusCode, message: &str) -> Response {
    if api {
        return (status, axum::Json(json!({ "error": message }))).into_response();
    }
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.to_string(),
    )
        .into_response()
}

/// Resolve the principal (identity header, else session cookie) and check the CSRF
/// token of every state-changing request before any handler runs.
async fn authenticate(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let api = is_api(req.uri().path());
    let headers = req.headers();
    let header_value = headers
        .get(app.auth.identity_header())
        .map(|v| v.to_str().unwrap_or(""));
    let who = match app.auth.from_identity_header(header_value) {
        Ok(Some(p)) => Some(p),
        Ok(None) => app.auth.from_session(cookie_value(headers, SESSION_COOKIE)),
        Err(Refused::UntrustedHeader) => {
            return refusal(
                api,
                StatusCode::UNAUTHORIZED,
                "identity header refused: no identity provider is trusted",
            );
        }
        Err(Refused::BadHeader) => {
            return refusal(
                api,
                StatusCode::UNAUTHORIZED,
                "identity header refused: not validly signed",
            );
        }
    };
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let mut req = req;
    if !safe {
        match csrf_checked(req, who.as_ref()).await {
            Ok(r) => req = r,
            Err(resp) => return resp,
        }
    }
    req.extensions_mut().insert(Auth(who));
    let mut resp = next.run(req).await;
    security_headers(resp.headers_mut());
    resp
}

/// The request again when its CSRF token (form field `csrf` or header `x-csrf-token`)
/// matches the session's (or, for sign-in, the sign-in cookie's); 403 otherwise.
async fn csrf_checked(req: Request, who: Option<&Principal>) -> Result<Request, Response> {
    let api = is_api(req.uri().path());
    let expected = match who {
        Some(p) => Some(p.csrf.clone()),
        None if req.uri().path() == "/login" => {
            cookie_value(req.headers(), LOGIN_CSRF_COOKIE).map(str::to_string)
        }
        None => None,
    };
    let from_header = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (parts, body) = req.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| refusal(api, StatusCode::PAYLOAD_TOO_LARGE, "request body too large"))?;
    let from_form = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|kv| kv.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v));
    let given = from_header.or(from_form);
    match (expected, given) {
        (Some(e), Some(g)) if same_token(&e, &g) => {
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        _ => Err(refusal(
            api,
            StatusCode::FORBIDDEN,
            "CSRF token missing or wrong",
        )),
    }
}

fn security_headers(h: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "no-referrer");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
}

/// One line per request: method, route pattern (never the path's values), status,
/// user, milliseconds; to the `tracing` log and the configured access log.
async fn access_log(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "(unmatched)".into());
    let resp = next.run(req).await;
    let user = resp
        .extensions()
        .get::<LoggedUser>()
        .map(|u| u.0.clone())
        .unwrap_or_else(|| "-".into());
    let line = format!(
        "{} {method} {route} {} user={user} {}ms",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        resp.status().as_u16(),
        started.elapsed().as_millis()
    );
    tracing::info!(target: "onboard::serve::access", "{line}");
    if let Some(log) = &app.access_log {
        let _ = log.append(&line);
    }
    resp
}

/// The user id a handler answered, for the access log.
#[derive(Clone)]
struct LoggedUser(String);

/// The principal when the route's need allows them; else the refusal: sign in (303 to
/// /login for pages, 401 for the API) or 403.
pub fn gate(auth: &Auth, need: Need, api: bool) -> Result<&Principal, Response> {
    match &auth.0 {
        None if api => Err(refusal(true, StatusCode::UNAUTHORIZED, "sign in first")),
        None => Err(Redirect::to("/login").into_response()),
        Some(p) if need.allows(p.role) => Ok(p),
        Some(p) => Err(with_user(
            refusal(
                api,
                StatusCode::FORBIDDEN,
                &format!("the {} role may not see this", p.role.name()),
            ),
            p,
        )),
    }
}

fn with_user(mut r: Response, p: &Principal) -> Response {
    r.extensions_mut().insert(LoggedUser(p.user.clone()));
    r
}

fn need_of(path: &str) -> Need {
    ROUTES
        .iter()
        .find(|r| r.path == path)
        .map(|r| r.need)
        .unwrap_or(Need::Admin)
}

fn internal(api: bool, e: ServeError) -> Response {
    tracing::error!("serve: {e}");
    refusal(
        api,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error (see the server log)",
    )
}

fn page(app: &App, who: Option<&Principal>, name: &str, mut ctx: Value) -> Response {
    ctx["ics_name"] = json!(app.ics_name);
    if let Some(p) = who {
        ctx["me"] = views::me(p);
        ctx["csrf"] = json!(p.csrf);
    }
    let html = app
        .templates
        .get_template(name)
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&ctx))));
    match html {
        Ok(h) => {
            let r = Html(h).into_response();
            match who {
                Some(p) => with_user(r, p),
                None => r,
            }
        }
        Err(e) => internal(false, e.into()),
    }
}

fn api_json(who: &Principal, v: Value) -> Response {
    with_user(axum::Json(v).into_response(), who)
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../templates/serve/app.css"),
    )
        .into_response()
}

async fn not_found(
    State(app): State<Shared>,
    axum::Extension(auth): axum::Extension<Auth>,
    req: Request,
) -> Response {
    let api = is_api(req.uri().path());
    match gate(&auth, Need::Aggregates, api) {
        Err(r) => r,
        Ok(_) if api => refusal(true, StatusCode::NOT_FOUND, "no such endpoint"),
        Ok(p) => {
            let mut r = page(
                &app,
                Some(p),
                "error.html",
                json!({"status": 404, "message": "No such page."}),
            );
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    }
}

async fn login_form(State(app): State<Shared>, headers: HeaderMap) -> Response {
    login_page(&app, &headers, StatusCode::OK, None)
}

/// The sign-in form. Its CSRF token is the one of the browser's sign-in cookie when it
/// has one, so that a second load of the page (another tab, a redirected favicon
/// request) does not invalidate a form already shown.
fn login_page(
    app: &App,
    headers: &HeaderMap,
    status: StatusCode,
    message: Option<&str>,
) -> Response {
    let kept = cookie_value(headers, LOGIN_CSRF_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()));
    let token = match kept {
        Some(t) => t.to_string(),
        None => match super::auth::random_hex(32) {
            Ok(t) => t,
            Err(e) => return internal(false, e),
        },
    };
    let mut r = page(
        app,
        None,
        "login.html",
        json!({"login_csrf": token, "message": message}),
    );
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(&cookie(LOGIN_CSRF_COOKIE, &token, "/login", 900)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(serde::Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

async fn login(
    State(app): State<Shared>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<LoginForm>,
) -> Response {
    let app2 = app.clone();
    let (user, password) = (f.user, f.password);
    // Argon2 is deliberately slow: keep it off the async workers.
    let signed = tokio::task::spawn_blocking(move || app2.auth.sign_in(&user, &password)).await;
    match signed {
        Ok(Ok(Some(session))) => {
            let mut r = Redirect::to("/risk").into_response();
            let h = r.headers_mut();
            for c in [
                cookie(SESSION_COOKIE, &session, "/", app.auth.session_seconds()),
                cookie(LOGIN_CSRF_COOKIE, "", "/login", 0),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    h.append(header::SET_COOKIE, v);
                }
            }
            r
        }
        Ok(Ok(None)) => login_page(
            &app,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("Unknown user or wrong password."),
        ),
        Ok(Err(e)) => internal(false, e),
        Err(e) => internal(false, ServeError::Setup(e.to_string())),
    }
}

async fn logout(
    State(app): State<Shared>,
    axum::Extension(auth): axum::Extension<Auth>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&auth, need_of("/logout"), false) {
        return r;
    }
    app.auth.sign_out(cookie_value(&headers, SESSION_COOKIE));
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie(SESSION_COOKIE, "", "/", 0)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

type Q = Query<BTreeMap<String, String>>;
type A = axum::Extension<Auth>;

async fn risk_page(State(app): State<Shared>, axum::Extension(auth): A, Query(q): Q) -> Response {
    let who = match gate(&auth, need_of("/risk"), false) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut v = views::distribution(&app.data, who, &q);
    let bands: Vec<(String, super::access::Count)> =
        serde_json::from_value::<Vec<Value>>(v["bands"].clone())
            .unwrap_or_default()
            .iter()
            .map(|b| {
                (
                    b["band"].as_str().unwrap_or("").to_string(),
                    super::access::Count(b["persons"].as_u64()),
                )
            })
            .collect();
    let deciles: Vec<(u8, super::access::Count)> = v["deciles"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["decile"].as_u64().unwrap_or(0) as u8,
                super::access::Count(d["persons"].as_u64()),
            )
        })
        .collect();
    v["pyramid_svg"] = json!(super::charts::pyramid(&bands, &app.data.high_risk_bands));
    v["deciles_svg"] = json!(super::charts::deciles(&deciles));
    page(&app, Some(who), "risk.html", v)
}

async fn api_distribution(
    State(app): State<Shared>,
    axum::Extension(auth): A,
    Query(q): Q,
) -> Response {
    match gate(&auth, need_of("/api/v1/risk/distribution"), true) {
        Ok(who) => api_json(who, views::distribution(&app.data, who, &q)),
        Err(r) => r,
    }
}

async fn api_me(axum::Extension(auth): A) -> Response {
    match gate(&auth, need_of("/api/v1/me"), true) {
        Ok(who) => api_json(who, views::me(who)),
        Err(r) => r,
    }
}

/// The cohort view for a principal allowed patient rows, audited.
fn audited_cohort(
    app: &App,
    who: &Principal,
    q: &BTreeMap<String, String>,
    route: &str,
    api: bool,
) -> Result<Value, Response> {
    let (v, keys) = views::cohort(&app.data, who, q);
    app.audit
        .record(who, route, keys)
        .map_err(|e| internal(api, e))?;
    Ok(v)
}

async fn cohort_page(State(app): State<Shared>, axum::Extension(auth): A, Query(q): Q) -> Response {
    let who = match gate(&auth, need_of("/cohorts"), false) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match audited_cohort(&app, who, &q, "/cohorts", false) {
        Ok(v) => page(&app, Some(who), "cohorts.html", v),
        Err(r) => r,
    }
}

async fn api_cohort(State(app): State<Shared>, axum::Extension(auth): A, Query(q): Q) -> Response {
    let who = match gate(&auth, need_of("/api/v1/cohort"), true) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match audited_cohort(&app, who, &q, "/api/v1/cohort", true) {
        Ok(v) => api_json(who, v),
        Err(r) => r,
    }
}

/// One patient's view when the principal may see them (404 otherwise: whether a person
/// outside one's scope exists is not told), audited.
async fn audited_patient(
    app: &App,
    auth: &Auth,
    reference: &str,
    route: &str,
    api: bool,
) -> Result<(Principal, Value), Response> {
    let who = gate(auth, need_of(route), api)?;
    let p = app
        .data
        .person(reference)
        .filter(|p| super::access::may_see_person(who, p.practice.as_deref()))
        .ok_or_else(|| {
            with_user(
                refusal(api, StatusCode::NOT_FOUND, "no such patient in your scope"),
                who,
            )
        })?;
    let v = views::patient(app, p).await.map_err(|e| internal(api, e))?;
    app.audit
        .record(who, route, vec![p.key.clone()])
        .map_err(|e| internal(api, e))?;
    Ok((who.clone(), v))
}

async fn patient_page(
    State(app): State<Shared>,
    axum::Extension(auth): A,
    Path(reference): Path<String>,
) -> Response {
    match audited_patient(&app, &auth, &reference, "/patients/{ref}", false).await {
        Ok((who, v)) => page(&app, Some(&who), "patient.html", v),
        Err(r) => r,
    }
}

async fn api_patient(
    State(app): State<Shared>,
    axum::Extension(auth): A,
    Path(reference): Path<String>,
) -> Response {
    match audited_patient(&app, &auth, &reference, "/api/v1/patients/{ref}", true).await {
        Ok((who, v)) => api_json(&who, v),
        Err(r) => r,
    }
}

async fn population_page(
    State(app): State<Shared>,
    axum::Extension(auth): A,
    Query(q): Q,
) -> Response {
    let who = match gate(&auth, need_of("/population"), false) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match views::population(&app, &q).await {
        Ok(v) => page(&app, Some(who), "population.html", v),
        Err(e) => internal(false, e),
    }
}

async fn api_population(
    State(app): State<Shared>,
    axum::Extension(auth): A,
    Query(q): Q,
) -> Response {
    let who = match gate(&auth, need_of("/api/v1/population"), true) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match views::population(&app, &q).await {
        Ok(v) => api_json(who, v),
        Err(e) => internal(true, e),
    }
}

async fn quality_page(State(app): State<Shared>, axum::Extension(auth): A) -> Response {
    match gate(&auth, need_of("/quality"), false) {
        Ok(who) => page(
            &app,
            Some(who),
            "quality.html",
            views::quality(&app.data, who),
        ),
        Err(r) => r,
    }
}

async fn api_quality(State(app): State<Shared>, axum::Extension(auth): A) -> Response {
    match gate(&auth, need_of("/api/v1/quality"), true) {
        Ok(who) => api_json(who, views::quality(&app.data, who)),
        Err(r) => r,
    }
}

async fn audit_page(State(app): State<Shared>, axum::Extension(auth): A) -> Response {
    let who = match gate(&auth, need_of("/admin/audit"), false) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match views::audit(&app, 200) {
        Ok(v) => page(&app, Some(who), "audit.html", v),
        Err(e) => internal(false, e),
    }
}

async fn api_audit(State(app): State<Shared>, axum::Extension(auth): A) -> Response {
    let who = match gate(&auth, need_of("/api/v1/audit"), true) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match views::audit(&app, 1000) {
        Ok(v) => api_json(who, v),
        Err(e) => internal(true, e),
    }
}
