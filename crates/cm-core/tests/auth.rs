//! Authentication against in-memory credentials.

#![allow(clippy::unwrap_used)]

use cm_core::testing::fake_auth;
use cm_core::{AdminKeySource, ErrorKind, Principal, Secret, UserId};

#[tokio::test]
async fn a_generated_admin_key_is_shown_once_and_stored_as_a_hash() {
    let auth = fake_auth(None);
    assert_eq!(auth.admin_key_source(), AdminKeySource::Stored);
    let key = auth
        .ensure_admin_key()
        .await
        .unwrap()
        .expect("a new key on first start");
    assert!(key.expose().starts_with("cmk_") && key.expose().len() == 68);
    assert!(auth.ensure_admin_key().await.unwrap().is_none(), "only once");
    assert_eq!(auth.authenticate(&key).await.unwrap(), Principal::Admin);

    let rotated = auth.rotate_admin_key().await.unwrap();
    assert_eq!(auth.authenticate(&rotated).await.unwrap(), Principal::Admin);
    let old = auth.authenticate(&key).await.unwrap_err();
    assert_eq!(old.kind(), ErrorKind::Unauthorized);
}

#[tokio::test]
async fn an_environment_key_wins_and_can_not_be_rotated_here() {
    assert!(
        cm_core::testing::fake_auth(None)
            .ensure_admin_key()
            .await
            .unwrap()
            .is_some()
    );
    let auth = fake_auth(Some("an-admin-key-from-env"));
    assert!(auth.ensure_admin_key().await.unwrap().is_none());
    let admin = auth
        .authenticate(&Secret::new("an-admin-key-from-env"))
        .await
        .unwrap();
    assert_eq!(admin, Principal::Admin);
    assert_eq!(
        auth.rotate_admin_key().await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    let short = cm_core::Auth::new(
        std::sync::Arc::new(cm_core::testing::MemoryCredentials::default()),
        std::sync::Arc::new(cm_core::testing::CountingEntropy::default()),
        std::sync::Arc::new(cm_core::testing::FixedClock::default()),
        Some(Secret::new("short")),
    );
    assert!(short.is_err(), "a short CONTAINER_ADMIN_KEY is refused");
}

#[tokio::test]
async fn user_tokens_act_for_their_user_until_revoked() {
    let auth = fake_auth(Some("an-admin-key-from-env"));
    let alice = UserId::parse("alice").unwrap();
    let (record, token) = auth.create_user_token(&alice).await.unwrap();
    assert!(token.expose().starts_with("cmu_"));
    assert_eq!(record.id.len(), 12);
    assert_eq!(
        auth.authenticate(&token).await.unwrap(),
        Principal::User(alice.clone())
    );
    assert_eq!(auth.tokens().await.unwrap().len(), 1);
    assert_eq!(auth.revoke_user_tokens(&alice).await.unwrap(), 1);
    assert_eq!(
        auth.authenticate(&token).await.unwrap_err().kind(),
        ErrorKind::Unauthorized
    );
    assert_eq!(
        auth.revoke_user_tokens(&alice).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    let (record, token) = auth.create_user_token(&alice).await.unwrap();
    auth.revoke_token(&record.id).await.unwrap();
    assert!(auth.authenticate(&token).await.is_err());
}

#[tokio::test]
async fn empty_wrong_and_oversized_secrets_are_unauthorized() {
    let auth = fake_auth(Some("an-admin-key-from-env"));
    for bad in ["", "   ", "wrong", &"x".repeat(10_000)] {
        let err = auth.authenticate(&Secret::new(bad)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
    }
}

/// Another identity system (as the ToolBox adapter plugs in): `jwt-alice` is user alice,
/// `jwt-boss` an admin, `jwt-forged` refused; anything else is not its kind of credential.
struct Vouches {
    expires: std::time::SystemTime,
}

#[async_trait::async_trait]
impl cm_core::IdentityVerifier for Vouches {
    async fn verify(&self, presented: &Secret) -> cm_core::Result<Option<cm_core::ExternalIdentity>> {
        let identity = |user: &str, admin| cm_core::ExternalIdentity {
            user: UserId::parse(user).unwrap(),
            admin,
            expires: self.expires,
        };
        match presented.expose() {
            "jwt-alice" => Ok(Some(identity("alice", false))),
            "jwt-boss" => Ok(Some(identity("boss", true))),
            "jwt-forged" => Err(cm_core::Error::new(ErrorKind::Unauthorized, "forged")),
            _ => Ok(None),
        }
    }
}

#[tokio::test]
async fn another_systems_identities_sign_in_until_they_expire_and_so_do_their_tickets() {
    use std::sync::Arc;
    use std::time::Duration;
    let clock = Arc::new(cm_core::testing::FixedClock::default());
    let now = cm_core::Clock::now(clock.as_ref());
    let auth = cm_core::Auth::new(
        Arc::new(cm_core::testing::MemoryCredentials::default()),
        Arc::new(cm_core::testing::CountingEntropy::default()),
        clock.clone(),
        Some(Secret::new("an-admin-key-from-env")),
    )
    .unwrap()
    .with_external(Arc::new(Vouches {
        expires: now + Duration::from_secs(900),
    }));
    let alice = UserId::parse("alice").unwrap();
    assert_eq!(
        auth.authenticate(&Secret::new("jwt-alice")).await.unwrap(),
        Principal::User(alice.clone())
    );
    assert_eq!(
        auth.authenticate(&Secret::new("jwt-boss")).await.unwrap(),
        Principal::Admin
    );
    for refused in ["jwt-forged", "something-else"] {
        let err = auth.authenticate(&Secret::new(refused)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{refused}");
    }
    // Our own credentials still come first.
    assert_eq!(
        auth.authenticate(&Secret::new("an-admin-key-from-env"))
            .await
            .unwrap(),
        Principal::Admin
    );
    // A route ticket asked for a day ends with the identity, 15 minutes from now.
    let (_, ticket) = auth
        .issue_ticket(&Secret::new("jwt-alice"), &alice, Duration::from_secs(86_400))
        .await
        .unwrap();
    assert_eq!(
        auth.redeem_ticket(ticket.expose(), &alice).await.unwrap(),
        Principal::User(alice.clone())
    );
    clock.advance(Duration::from_secs(901));
    assert!(auth.redeem_ticket(ticket.expose(), &alice).await.is_err());
    let expired = auth.authenticate(&Secret::new("jwt-alice")).await.unwrap_err();
    assert_eq!(expired.kind(), ErrorKind::Unauthorized);
}
