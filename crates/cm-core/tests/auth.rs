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
