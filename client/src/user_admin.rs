//! User administration over the `UserAdmin` service: the users Kafka clients log in as (SASL) and gRPC clients
//! name with bearer tokens (docs/security.md). Answers are the API's own messages, re-exported.

use rill_protocol::v1::user_admin_client::UserAdminClient;
pub use rill_protocol::v1::User as UserInfo;
use rill_protocol::v1::{CreateTokenRequest, CreateUserRequest, DeleteUserRequest, ListUsersRequest};

use crate::connection::{call, request, Client};
use crate::error::{RequestContext, Result};

/// User administration over a [`Client`]'s connection.
#[derive(Debug, Clone)]
pub struct UserAdmin {
    client: Client,
}

impl UserAdmin {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    fn admin(&self) -> UserAdminClient<crate::connection::BrokerChannel> {
        UserAdminClient::new(self.client.channel())
    }

    /// Creates `name` with `password` for `mechanisms` (`SCRAM-SHA-256`, `SCRAM-SHA-512`; both when empty).
    /// With `with_token`, also issues a bearer token and returns it: the only time it can be read.
    pub async fn create_user(
        &self,
        name: &str,
        password: &str,
        mechanisms: &[String],
        with_token: bool,
    ) -> Result<Option<String>> {
        let timeout = self.client.config().request_timeout;
        let message = CreateUserRequest {
            name: name.to_owned(),
            password: password.to_owned(),
            mechanisms: mechanisms.to_vec(),
            with_token,
        };
        let answer =
            call(timeout, RequestContext::default(), self.admin().create_user(request(message, timeout))).await?;
        Ok(answer.token)
    }

    pub async fn delete_user(&self, name: &str) -> Result<()> {
        let timeout = self.client.config().request_timeout;
        let message = DeleteUserRequest { name: name.to_owned() };
        call(timeout, RequestContext::default(), self.admin().delete_user(request(message, timeout))).await?;
        Ok(())
    }

    /// Every user with its mechanisms and token count; no secret.
    pub async fn list_users(&self) -> Result<Vec<UserInfo>> {
        let timeout = self.client.config().request_timeout;
        let answer =
            call(timeout, RequestContext::default(), self.admin().list_users(request(ListUsersRequest {}, timeout)))
                .await?;
        Ok(answer.users)
    }

    /// Issues a bearer token for `user`: returned this once, stored by the broker only as a hash.
    pub async fn create_token(&self, user: &str) -> Result<String> {
        let timeout = self.client.config().request_timeout;
        let message = CreateTokenRequest { user: user.to_owned() };
        let answer =
            call(timeout, RequestContext::default(), self.admin().create_token(request(message, timeout))).await?;
        Ok(answer.token)
    }
}
