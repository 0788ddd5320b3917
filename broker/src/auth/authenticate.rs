//! Bearer tokens on gRPC: a tower layer under tonic that reads each request's `authorization: Bearer TOKEN`,
//! puts the caller's [`Principal`] in the request's extensions (where handlers and ACLs read it; without a
//! token, the client certificate's, `certificate.rs`), and refuses the request UNAUTHENTICATED (reason
//! `unauthenticated`) when the token is not one of the node's (or the cluster's) users, or when there is none
//! and `auth.require_auth` is on. With `auth.oauth` set, a bearer token that is a JWT is checked against the
//! identity provider's keys instead (`oauth.rs`) and acts as the principal it names. A node that forwards a call to another (the controller leader, a partition
//! leader) sends the caller on (`forwarded.rs`): its token, or the principal it authenticated in a header this
//! layer honours only from a node: a connection whose client certificate is a node's (`auth.node_principals`),
//! or a call carrying the cluster secret, checked by [`NodeCallGate`] as for an internal call. Health
//! checks pass without one (load balancers and orchestrators probe them). A cluster's node-to-node calls
//! (`rill.internal`) carry no user's credential but a node's: its certificate or the cluster secret, which
//! [`NodeCallGate`] checks; a refusal is counted and logged by the [`Authorizer`].

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rill_protocol::reason::Reason;

use super::forwarded::{self, FORWARDED_PRINCIPAL};
use super::node_calls::{NodeCallGate, CLUSTER_SECRET, INTERNAL_PREFIX};
use super::oauth::OAuthValidator;
use super::{Authorizer, Principal, UserStore};

const HEALTH_PREFIX: &str = "/grpc.health.v1.";

#[derive(Clone)]
pub struct AuthenticateLayer {
    users: Arc<UserStore>,
    is_required: bool,
    /// `auth.node_principals`: the certificate principals (`User:NAME`) of the cluster's nodes.
    node_principals: Arc<HashSet<String>>,
    node_calls: Arc<NodeCallGate>,
    /// Counts and logs refused node-to-node calls.
    authorizer: Arc<Authorizer>,
    oauth: Option<Arc<OAuthValidator>>,
}

impl AuthenticateLayer {
    pub fn new(
        users: Arc<UserStore>,
        is_required: bool,
        node_principals: &[String],
        node_calls: NodeCallGate,
        authorizer: Arc<Authorizer>,
    ) -> Self {
        Self {
            users,
            is_required,
            node_principals: Arc::new(node_principals.iter().cloned().collect()),
            node_calls: Arc::new(node_calls),
            authorizer,
            oauth: None,
        }
    }

    /// Also takes JWTs from the identity provider `oauth` checks.
    pub fn with_oauth(self, oauth: Option<Arc<OAuthValidator>>) -> Self {
        Self { oauth, ..self }
    }
}

impl<S> tower::Layer<S> for AuthenticateLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            users: self.users.clone(),
            is_required: self.is_required,
            node_principals: Arc::clone(&self.node_principals),
            node_calls: Arc::clone(&self.node_calls),
            authorizer: Arc::clone(&self.authorizer),
            oauth: self.oauth.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    users: Arc<UserStore>,
    is_required: bool,
    node_principals: Arc<HashSet<String>>,
    node_calls: Arc<NodeCallGate>,
    authorizer: Arc<Authorizer>,
    oauth: Option<Arc<OAuthValidator>>,
}

/// The principal of the client certificate `request`'s connection presented, verified in the handshake.
fn certificate_principal<B>(request: &http::Request<B>) -> Option<Principal> {
    request
        .extensions()
        .get::<crate::tls::ConnectionInfo>()
        .and_then(|info| info.peer_certificates.as_ref()?.first().and_then(super::certificate::principal_of))
}

/// Why a request is refused; the words are the same for a missing and an unknown token but for the hint.
fn refusal(has_token: bool) -> tonic::Status {
    let message = if has_token {
        "the bearer token is not valid (unknown, revoked, or its user deleted)"
    } else {
        "authentication is required: send a bearer token (`rill --token TOKEN`, RILL_TOKEN; `rill token create USER`)"
    };
    Reason::Unauthenticated.status(message)
}

/// The JWT in `request`'s `authorization: Bearer` header, if it carries one rather than a token of rill's own
/// (`rill_...`): a call a node forwards carries the client's token as it came, and is checked the same way.
fn bearer_jwt<B>(request: &http::Request<B>) -> Option<String> {
    let value = request.headers().get(http::header::AUTHORIZATION)?.to_str().ok()?;
    super::oauth::jwt_in_bearer(value).map(str::to_owned)
}

impl<S> Authenticate<S> {
    /// The caller's principal, or the refusal.
    fn principal<B>(&self, request: &http::Request<B>) -> Result<Principal, tonic::Status> {
        let from_certificate = || certificate_principal(request);
        if let Some(claimed) = request.headers().get(FORWARDED_PRINCIPAL) {
            let has_token = request.headers().contains_key(http::header::AUTHORIZATION);
            let connection = from_certificate();
            let sent_secret = request.headers().get(CLUSTER_SECRET).map(http::HeaderValue::as_bytes);
            let caller = forwarded::Caller {
                certificate: connection.as_ref(),
                secret: self.node_calls.secret_shown(sent_secret),
            };
            return match forwarded::accept(claimed.as_bytes(), has_token, caller, &self.node_principals) {
                Ok(Principal::Anonymous) if self.is_required => Err(refusal(false)),
                Ok(principal) => Ok(principal),
                Err(refused) => {
                    tracing::debug!(connection = ?connection, "forwarded principal refused: {refused}");
                    Err(Reason::Unauthenticated.status(refused.to_string()))
                }
            };
        }
        let Some(value) = request.headers().get(http::header::AUTHORIZATION) else {
            // No token: the client certificate's principal, if it has one (mutual TLS authenticates too).
            return match from_certificate() {
                Some(principal) => Ok(principal),
                None if self.is_required => Err(refusal(false)),
                None => Ok(Principal::Anonymous),
            };
        };
        let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
        let user = token.and_then(|token| self.users.user_of_token(token));
        user.map(Principal::User).ok_or_else(|| refusal(true))
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for Authenticate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if path.starts_with(HEALTH_PREFIX) {
            return Box::pin(self.inner.call(request));
        }
        if path.starts_with(INTERNAL_PREFIX) {
            let connection = certificate_principal(&request);
            let sent_secret = request.headers().get(CLUSTER_SECRET).map(http::HeaderValue::as_bytes);
            return match self.node_calls.check(sent_secret, connection.as_ref()) {
                Ok(()) => Box::pin(self.inner.call(request)),
                Err(refused) => {
                    let caller = connection.unwrap_or(Principal::Anonymous).to_string();
                    self.authorizer.deny_node_call(&caller, path, &refused);
                    Box::pin(std::future::ready(Ok(refused.status().into_http())))
                }
            };
        }
        let jwt = match &self.oauth {
            Some(oauth) if !request.headers().contains_key(FORWARDED_PRINCIPAL) => {
                bearer_jwt(&request).map(|token| (Arc::clone(oauth), token))
            }
            _ => None,
        };
        if let Some((oauth, token)) = jwt {
            // The inner service was made ready for this call: it goes into the future, a fresh clone stays.
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            return Box::pin(async move {
                match oauth.validate(&token).await {
                    Ok(valid) => {
                        let principal = Principal::User(valid.user);
                        tracing::debug!(%principal, path = request.uri().path(), "grpc request (OAuth token)");
                        request.extensions_mut().insert(principal);
                        inner.call(request).await
                    }
                    Err(refused) => {
                        tracing::info!(path = request.uri().path(), reason = %refused, "grpc request refused: OAuth token");
                        let message = format!("the bearer token is not valid: {refused}");
                        Ok(Reason::Unauthenticated.status(message).into_http())
                    }
                }
            });
        }
        match self.principal(&request) {
            Ok(principal) => {
                tracing::debug!(%principal, path, "grpc request");
                request.extensions_mut().insert(principal);
                Box::pin(self.inner.call(request))
            }
            Err(status) => {
                tracing::debug!(path, "grpc request refused: unauthenticated");
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}
