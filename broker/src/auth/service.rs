//! The `UserAdmin` gRPC service: `rill user create|delete|list` and `rill token create`. The store's writes
//! (PBKDF2 and an fsynced file, or a proposal to the controller on a cluster node) run on the blocking pool.

use std::sync::Arc;

use rill_protocol::v1::user_admin_server::{UserAdmin, UserAdminServer};
use rill_protocol::v1::{
    CreateTokenRequest, CreateTokenResponse, CreateUserRequest, CreateUserResponse, DeleteUserRequest,
    DeleteUserResponse, ListUsersRequest, ListUsersResponse, User,
};
use tonic::{Request, Response, Status};

use super::scram::{ScramMechanism, DEFAULT_ITERATIONS};
use super::{AuthError, Principal, UserStore};

pub struct UserAdminService {
    users: Arc<UserStore>,
    /// With authorization on, managing users needs ALTER on the cluster, listing them DESCRIBE.
    authorizer: Arc<super::Authorizer>,
}

impl UserAdminService {
    pub fn server(users: Arc<UserStore>, authorizer: Arc<super::Authorizer>) -> UserAdminServer<Self> {
        UserAdminServer::new(Self::new(users, authorizer))
    }

    /// The service itself, for a caller in this process (the console) that calls its handlers directly.
    pub fn new(users: Arc<UserStore>, authorizer: Arc<super::Authorizer>) -> Self {
        Self { users, authorizer }
    }

    fn authorize<T>(&self, request: &Request<T>, operation: super::acl::Operation) -> Result<(), Status> {
        let principal = request.extensions().get::<Principal>().cloned().unwrap_or(Principal::Anonymous);
        self.authorizer
            .check(&principal, operation, &super::acl::Resource::cluster())
            .map_err(|denied| Status::from(crate::error::BrokerError::from(denied)))
    }

    /// Runs `work` on the store on the blocking pool.
    async fn with_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&UserStore) -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, Status> {
        let users = Arc::clone(&self.users);
        tokio::task::spawn_blocking(move || work(&users))
            .await
            .map_err(|err| AuthError::Internal(format!("user store task failed: {err}")))?
            .map_err(Status::from)
    }
}

fn principal_of<T>(request: &Request<T>) -> String {
    request.extensions().get::<Principal>().map_or_else(|| Principal::Anonymous.to_string(), ToString::to_string)
}

#[tonic::async_trait]
impl UserAdmin for UserAdminService {
    async fn create_user(&self, request: Request<CreateUserRequest>) -> Result<Response<CreateUserResponse>, Status> {
        self.authorize(&request, super::acl::Operation::Alter)?;
        let by = principal_of(&request);
        let CreateUserRequest { name, password, mechanisms, with_token } = request.into_inner();
        let mechanisms = mechanisms
            .iter()
            .map(|m| ScramMechanism::parse(m).ok_or_else(|| AuthError::InvalidMechanism { name: m.clone() }))
            .collect::<Result<Vec<_>, _>>()?;
        let user = name.clone();
        let token = self
            .with_store(move |users| {
                users.create(&user, password.as_bytes(), &mechanisms, DEFAULT_ITERATIONS)?;
                with_token.then(|| users.create_token(&user)).transpose()
            })
            .await?;
        tracing::info!(user = %name, principal = %by, with_token, "user created");
        Ok(Response::new(CreateUserResponse { token }))
    }

    async fn delete_user(&self, request: Request<DeleteUserRequest>) -> Result<Response<DeleteUserResponse>, Status> {
        self.authorize(&request, super::acl::Operation::Alter)?;
        let by = principal_of(&request);
        let name = request.into_inner().name;
        let user = name.clone();
        self.with_store(move |users| users.delete(&user)).await?;
        tracing::info!(user = %name, principal = %by, "user deleted");
        Ok(Response::new(DeleteUserResponse {}))
    }

    async fn list_users(&self, request: Request<ListUsersRequest>) -> Result<Response<ListUsersResponse>, Status> {
        self.authorize(&request, super::acl::Operation::Describe)?;
        let users = self.with_store(|users| Ok(users.list())).await?;
        let users = users
            .into_iter()
            .map(|user| User {
                name: user.name,
                mechanisms: user.mechanisms.iter().map(|m| m.name().to_owned()).collect(),
                token_count: u32::try_from(user.token_count).unwrap_or(u32::MAX),
            })
            .collect();
        Ok(Response::new(ListUsersResponse { users }))
    }

    async fn create_token(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        self.authorize(&request, super::acl::Operation::Alter)?;
        let by = principal_of(&request);
        let name = request.into_inner().user;
        let user = name.clone();
        let token = self.with_store(move |users| users.create_token(&user)).await?;
        tracing::info!(user = %name, principal = %by, "token issued");
        Ok(Response::new(CreateTokenResponse { token }))
    }
}
