//! DescribeUserScramCredentials (v0) and AlterUserScramCredentials (v0), KIP-554: the SCRAM users `rill user`
//! manages (`auth/users.rs`), through Kafka's admin API, so `kafka-configs.sh --entity-type users --alter
//! --add-config 'SCRAM-SHA-256=[iterations=8192,password=...]'`, an AdminClient's `alterUserScramCredentials` and
//! operators built on them manage rill's users unchanged.
//!
//! The client runs the PBKDF2 and sends the salt and the SaltedPassword, never the password; the broker derives
//! the StoredKey and ServerKey it keeps from them (`ScramCredential::from_salted_password`). Each user's changes
//! are applied together or not at all, on a cluster through the replicated metadata (any node). A user is created
//! by its first credential and removed with its last, its tokens with it. Kafka's refusals, per user:
//! DUPLICATE_RESOURCE for a mechanism named twice, UNSUPPORTED_SASL_MECHANISM for an unknown one,
//! UNACCEPTABLE_CREDENTIAL for an iteration count outside 4096..=16384, an empty salt, a SaltedPassword of the
//! wrong length or a user name rill does not allow, RESOURCE_NOT_FOUND for a deletion of a credential that does
//! not exist. Describing needs DESCRIBE on the cluster, altering ALTER (CLUSTER_AUTHORIZATION_FAILED otherwise).

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::topic_configs::text;
use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::auth::scram::{ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::auth::{AuthError, Principal};

/// Kafka's codes for the SCRAM mechanisms (its `ScramMechanism` type).
fn mechanism_of(code: i8) -> Option<ScramMechanism> {
    match code {
        1 => Some(ScramMechanism::Sha256),
        2 => Some(ScramMechanism::Sha512),
        _ => None,
    }
}

fn code_of(mechanism: ScramMechanism) -> i8 {
    match mechanism {
        ScramMechanism::Sha256 => 1,
        ScramMechanism::Sha512 => 2,
    }
}

type Refusal = (ResponseError, String);

pub fn describe(
    kafka: &KafkaContext,
    request: &DescribeUserScramCredentialsRequest,
    principal: &Principal,
) -> DescribeUserScramCredentialsResponse {
    let answer = DescribeUserScramCredentialsResponse::default();
    if let Err(code) = kafka.authorize(principal, Operation::Describe, &Resource::cluster()) {
        return answer
            .with_error_code(code)
            .with_error_message(Some(text("describing SCRAM credentials needs DESCRIBE on the cluster")));
    }
    let users = &kafka.node.users;
    // Null or empty asks for every user, as in Kafka.
    let names: Vec<String> = match request.users.as_ref().filter(|asked| !asked.is_empty()) {
        None => users.list().into_iter().map(|user| user.name).collect(),
        Some(asked) => asked.iter().map(|user| user.name.to_string()).collect(),
    };
    let results = names
        .iter()
        .map(|name| {
            let result = DescribeUserScramCredentialsResult::default().with_user(text(name.clone()));
            if names.iter().filter(|other| *other == name).count() > 1 {
                return refused(
                    result,
                    (ResponseError::DuplicateResource, format!("user {name:?} is asked for twice")),
                );
            }
            match users.credentials(name) {
                Some(credentials) => result.with_credential_infos(
                    credentials
                        .into_iter()
                        .map(|(mechanism, iterations)| {
                            CredentialInfo::default()
                                .with_mechanism(code_of(mechanism))
                                .with_iterations(i32::try_from(iterations).unwrap_or(i32::MAX))
                        })
                        .collect(),
                ),
                None => refused(
                    result,
                    (
                        ResponseError::ResourceNotFound,
                        format!("attempt to describe a user credential that does not exist: {name:?}"),
                    ),
                ),
            }
        })
        .collect();
    answer.with_results(results)
}

fn refused(
    result: DescribeUserScramCredentialsResult,
    (error, message): Refusal,
) -> DescribeUserScramCredentialsResult {
    result.with_error_code(error.code()).with_error_message(Some(text(message)))
}

/// One user's changes, as read and checked from the request.
#[derive(Default)]
struct UserChanges {
    upserts: Vec<(ScramMechanism, ScramCredential)>,
    deletes: Vec<ScramMechanism>,
    refusal: Option<Refusal>,
}

pub async fn alter(
    kafka: &KafkaContext,
    request: AlterUserScramCredentialsRequest,
    principal: &Principal,
) -> AlterUserScramCredentialsResponse {
    // Users in the order the request first names them; each answered once.
    let mut order: Vec<String> = Vec::new();
    let mut changes: BTreeMap<String, UserChanges> = BTreeMap::new();
    fn entry<'a>(
        order: &mut Vec<String>,
        changes: &'a mut BTreeMap<String, UserChanges>,
        name: &StrBytes,
    ) -> &'a mut UserChanges {
        let name = name.to_string();
        if !changes.contains_key(&name) {
            order.push(name.clone());
        }
        changes.entry(name).or_default()
    }
    for deletion in &request.deletions {
        let user = entry(&mut order, &mut changes, &deletion.name);
        match mechanism_of(deletion.mechanism) {
            Some(mechanism) => user.deletes.push(mechanism),
            None => user.refusal = user.refusal.take().or(Some(unsupported(deletion.mechanism))),
        }
    }
    for upsertion in &request.upsertions {
        let name = upsertion.name.to_string();
        let user = entry(&mut order, &mut changes, &upsertion.name);
        let credential =
            mechanism_of(upsertion.mechanism).ok_or_else(|| unsupported(upsertion.mechanism)).and_then(|mechanism| {
                credential_of(&name, mechanism, upsertion.iterations, &upsertion.salt, &upsertion.salted_password)
                    .map(|credential| (mechanism, credential))
            });
        match credential {
            Ok(upsert) => user.upserts.push(upsert),
            Err(refusal) => user.refusal = user.refusal.take().or(Some(refusal)),
        }
    }
    let authorized = kafka.authorize(principal, Operation::Alter, &Resource::cluster());
    let mut results = Vec::with_capacity(order.len());
    for name in order {
        let mut user = changes.remove(&name).unwrap_or_default();
        let mut named: Vec<ScramMechanism> = user.deletes.clone();
        named.extend(user.upserts.iter().map(|(mechanism, _)| *mechanism));
        named.sort_unstable();
        if let Some(twice) = named.windows(2).find(|pair| pair[0] == pair[1]) {
            let message = format!("{} is named more than once for user {name:?}", twice[0].name());
            user.refusal = user.refusal.or(Some((ResponseError::DuplicateResource, message)));
        }
        let outcome = match (&authorized, user.refusal) {
            (Err(code), _) => Err((*code, "altering SCRAM credentials needs ALTER on the cluster".to_owned())),
            (Ok(()), Some((error, message))) => Err((error.code(), message)),
            (Ok(()), None) => apply(kafka, &name, user.upserts, user.deletes).await,
        };
        let result = AlterUserScramCredentialsResult::default().with_user(text(name));
        results.push(match outcome {
            Ok(()) => result,
            Err((code, message)) => result.with_error_code(code).with_error_message(Some(text(message))),
        });
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn unsupported(code: i8) -> Refusal {
    (
        ResponseError::UnsupportedSaslMechanism,
        format!("unknown SCRAM mechanism {code}: 1 (SCRAM-SHA-256) and 2 (SCRAM-SHA-512) are supported"),
    )
}

/// The credential an upsertion asks for, checked as Kafka checks it.
fn credential_of(
    name: &str,
    mechanism: ScramMechanism,
    iterations: i32,
    salt: &[u8],
    salted_password: &[u8],
) -> Result<ScramCredential, Refusal> {
    let unacceptable = |message: String| (ResponseError::UnacceptableCredential, message);
    if let Err(err) = crate::auth::users::validate_name(name) {
        return Err(unacceptable(err.to_string()));
    }
    let iterations =
        u32::try_from(iterations).ok().filter(|n| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(n)).ok_or_else(|| {
            unacceptable(format!(
                "{iterations} iterations for {}: the count must be from {MIN_ITERATIONS} to {MAX_ITERATIONS}",
                mechanism.name()
            ))
        })?;
    if salt.is_empty() {
        return Err(unacceptable(format!("the {} credential has an empty salt", mechanism.name())));
    }
    if salted_password.len() != mechanism.output_bytes() {
        return Err(unacceptable(format!(
            "a {} salted password is {} bytes, not {}",
            mechanism.name(),
            mechanism.output_bytes(),
            salted_password.len()
        )));
    }
    Ok(ScramCredential::from_salted_password(mechanism, salt, iterations, salted_password))
}

/// One user's checked changes, in the user store (a cluster's through its controller, which may wait).
async fn apply(
    kafka: &KafkaContext,
    name: &str,
    upserts: Vec<(ScramMechanism, ScramCredential)>,
    deletes: Vec<ScramMechanism>,
) -> Result<(), (i16, String)> {
    let users = std::sync::Arc::clone(&kafka.node.users);
    let user = name.to_owned();
    let changed = tokio::task::spawn_blocking(move || users.alter_credentials(&user, &upserts, &deletes))
        .await
        .map_err(|err| (ResponseError::UnknownServerError.code(), format!("the change did not finish: {err}")))?;
    changed.map_err(|err| {
        let error = match &err {
            AuthError::UnknownUser { .. } | AuthError::UnknownCredential { .. } => ResponseError::ResourceNotFound,
            AuthError::InvalidUserName { .. } => ResponseError::UnacceptableCredential,
            AuthError::TooManyUsers { .. } => ResponseError::PolicyViolation,
            AuthError::Unavailable { .. } => ResponseError::NotController,
            _ => ResponseError::UnknownServerError,
        };
        (error.code(), err.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upsertion_is_checked_as_kafka_checks_it() {
        let salted = vec![7u8; 32];
        let sha256 = ScramMechanism::Sha256;
        let credential = credential_of("ops", sha256, 8192, b"salt", &salted).expect("acceptable");
        assert_eq!(credential, ScramCredential::from_salted_password(sha256, b"salt", 8192, &salted));
        assert!(credential.is_well_formed(sha256));
        for (iterations, salt, salted, why) in [
            (4095, &b"salt"[..], &salted[..], "from 4096 to 16384"),
            (16385, b"salt", &salted, "from 4096 to 16384"),
            (8192, b"", &salted, "empty salt"),
            (8192, b"salt", &salted[..31], "32 bytes, not 31"),
        ] {
            let (error, message) = credential_of("ops", sha256, iterations, salt, salted).unwrap_err();
            assert_eq!(error, ResponseError::UnacceptableCredential);
            assert!(message.contains(why), "{message}");
        }
        let (error, _) = credential_of("", sha256, 8192, b"salt", &salted).unwrap_err();
        assert_eq!(error, ResponseError::UnacceptableCredential, "an empty name");
        assert_eq!(mechanism_of(3), None);
        assert_eq!(ScramMechanism::ALL.map(|m| mechanism_of(code_of(m))), ScramMechanism::ALL.map(Some));
    }
}
