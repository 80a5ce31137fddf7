//! The route check and route tickets against the in-memory fakes: who gets through, in which
//! order the questions are asked, and when a ticket stops working.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use cm_core::testing::{CountingEntropy, FakeWorld, FixedClock, MemoryCredentials, create_request};
use cm_core::{
    Action, Auth, Config, ContainerStatus, ErrorKind, Principal, RouteAnswer, RouteDenial, Secret,
    StatusView, TypeName, UserId,
};

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn kind(name: &str) -> TypeName {
    TypeName::parse(name).unwrap()
}

fn denied(answer: RouteAnswer) -> RouteDenial {
    match answer {
        RouteAnswer::Deny { denial } => denial,
        allowed => panic!("expected a refusal, got {allowed:?}"),
    }
}

#[tokio::test]
async fn only_the_owner_and_the_admin_reach_an_owner_type() {
    let config =
        Config::from_toml("[types.open_web]\nimage = \"toolboxv2:latest\"\naccess = \"public\"\n").unwrap();
    let world = FakeWorld::with_config(config);
    let m = &world.manager;
    let spec = m
        .create(create_request("alice", "preview_server"), &|_| {})
        .await
        .unwrap()
        .spec;
    let form = cm_core::CreateForm {
        user_id: "alice".into(),
        container_type: "open_web".into(),
        ..cm_core::CreateForm::default()
    };
    let open_web = cm_core::CreateRequest::parse(&form, m.config()).unwrap();
    m.create(open_web, &|_| {}).await.unwrap();
    let alice = Principal::User(user("alice"));
    let bob = Principal::User(user("bob"));
    let (a, preview) = (user("alice"), kind("preview_server"));

    let allowed = m.check_route(Some(&alice), &a, &preview).await.unwrap();
    assert_eq!(
        allowed,
        RouteAnswer::Allow {
            upstream: ([127, 0, 0, 1], spec.port).into(),
            strip_prefix: true
        }
    );
    assert!(matches!(
        m.check_route(Some(&Principal::Admin), &a, &preview)
            .await
            .unwrap(),
        RouteAnswer::Allow { .. }
    ));
    assert_eq!(
        denied(m.check_route(None, &a, &preview).await.unwrap()),
        RouteDenial::SignIn
    );
    assert_eq!(
        denied(m.check_route(Some(&bob), &a, &preview).await.unwrap()),
        RouteDenial::Forbidden
    );
    // A stranger hears "forbidden" whether the container exists or not.
    assert_eq!(
        denied(m.check_route(Some(&bob), &a, &kind("custom")).await.unwrap()),
        RouteDenial::Forbidden
    );
    assert_eq!(
        denied(m.check_route(None, &a, &kind("custom")).await.unwrap()),
        RouteDenial::SignIn
    );
    assert_eq!(
        denied(m.check_route(Some(&alice), &a, &kind("custom")).await.unwrap()),
        RouteDenial::Unknown
    );
    // A public type is open to anyone.
    assert!(matches!(
        m.check_route(None, &a, &kind("open_web")).await.unwrap(),
        RouteAnswer::Allow { .. }
    ));
}

#[tokio::test]
async fn a_stopped_container_is_refused_from_the_live_view_without_asking_the_engine() {
    let world = FakeWorld::new();
    let view = StatusView::new();
    let manager = world.manager.clone().with_status_view(view.clone());
    let feeder = manager.clone();
    let feed_view = view.clone();
    let feed = tokio::spawn(async move { feeder.feed_status_view(feed_view, &|| {}).await });
    let spec = manager
        .create(create_request("alice", "preview_server"), &|_| {})
        .await
        .unwrap()
        .spec;
    world
        .runtime
        .set_status(&spec.container_id, ContainerStatus::Exited);
    let alice = Principal::User(user("alice"));
    let mut answer = None;
    for _ in 0..200 {
        let now = manager
            .check_route(Some(&alice), &user("alice"), &kind("preview_server"))
            .await
            .unwrap();
        let done = matches!(now, RouteAnswer::Deny { .. });
        answer = Some(now);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        denied(answer.unwrap()),
        RouteDenial::NotRunning(ContainerStatus::Exited)
    );
    feed.abort();
}

struct Tickets {
    auth: Auth,
    clock: Arc<FixedClock>,
}

fn tickets(env_admin: Option<&str>) -> Tickets {
    let clock = Arc::new(FixedClock::default());
    let auth = Auth::new(
        Arc::new(MemoryCredentials::default()),
        Arc::new(CountingEntropy::default()),
        clock.clone(),
        env_admin.map(Secret::new),
    )
    .unwrap();
    Tickets { auth, clock }
}

#[tokio::test]
async fn tickets_stand_for_their_credential_until_it_expires_or_is_revoked() {
    let t = tickets(None);
    let admin_key = t.auth.ensure_admin_key().await.unwrap().unwrap();
    let (record, token) = t.auth.create_user_token(&user("alice")).await.unwrap();
    let hour = Duration::from_secs(3600);

    let (who, ticket) = t.auth.issue_ticket(&token, &user("alice"), hour).await.unwrap();
    assert_eq!(who, Principal::User(user("alice")));
    assert!(
        !ticket.expose().contains(token.expose()),
        "no secret in the ticket"
    );
    assert_eq!(format!("{ticket:?}"), "Ticket([redacted])");
    assert_eq!(
        t.auth
            .redeem_ticket(ticket.expose(), &user("alice"))
            .await
            .unwrap(),
        who
    );

    // Wrong credentials get no ticket.
    let refused = t
        .auth
        .issue_ticket(&Secret::new("cmu_wrong"), &user("alice"), hour)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Unauthorized);

    // Any change to the ticket breaks it: the user, the expiry, the MAC.
    let text = ticket.expose().to_owned();
    let tampered = [
        text.replacen("alice", "bobby", 1),
        text.replacen("t1.", "t2.", 1),
        format!("{}0", &text[..text.len() - 1]),
        text[..text.len() - 2].to_owned(),
        String::new(),
        "x".repeat(300),
    ];
    for bad in &tampered {
        if bad != &text {
            assert_eq!(
                t.auth
                    .redeem_ticket(bad, &user("alice"))
                    .await
                    .unwrap_err()
                    .kind(),
                ErrorKind::Unauthorized,
                "{bad}"
            );
        }
    }

    // It is for Alice's containers only: at Bob's it proves nothing.
    let at_bob = t
        .auth
        .redeem_ticket(ticket.expose(), &user("bob"))
        .await
        .unwrap_err();
    assert_eq!(at_bob.kind(), ErrorKind::Unauthorized);

    // It expires.
    t.clock.advance(hour + Duration::from_secs(1));
    assert!(
        t.auth
            .redeem_ticket(ticket.expose(), &user("alice"))
            .await
            .is_err()
    );

    // Revoking the token ends its tickets at once.
    let (_, fresh) = t.auth.issue_ticket(&token, &user("alice"), hour).await.unwrap();
    assert!(t.auth.redeem_ticket(fresh.expose(), &user("alice")).await.is_ok());
    t.auth.revoke_token(&record.id).await.unwrap();
    assert!(
        t.auth
            .redeem_ticket(fresh.expose(), &user("alice"))
            .await
            .is_err()
    );

    // The admin's ticket ends when the key is rotated.
    let (who, admin_ticket) = t
        .auth
        .issue_ticket(&admin_key, &user("alice"), hour)
        .await
        .unwrap();
    assert_eq!(who, Principal::Admin);
    assert_eq!(
        t.auth
            .redeem_ticket(admin_ticket.expose(), &user("alice"))
            .await
            .unwrap(),
        Principal::Admin
    );
    t.auth.rotate_admin_key().await.unwrap();
    assert!(
        t.auth
            .redeem_ticket(admin_ticket.expose(), &user("alice"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn another_process_can_not_read_this_ones_tickets() {
    let one = tickets(Some("an-admin-key-from-env-0123456789"));
    let (_, ticket) = one
        .auth
        .issue_ticket(
            &Secret::new("an-admin-key-from-env-0123456789"),
            &user("alice"),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    // Same entropy source, same key material: the fake entropy counts, so the second Auth draws
    // a different signing key, as two cm-api processes would.
    let clock = Arc::new(FixedClock::default());
    let entropy = Arc::new(CountingEntropy::default());
    let _first = Auth::new(
        Arc::new(MemoryCredentials::default()),
        entropy.clone(),
        clock.clone(),
        Some(Secret::new("an-admin-key-from-env-0123456789")),
    )
    .unwrap();
    let second = Auth::new(
        Arc::new(MemoryCredentials::default()),
        entropy,
        clock,
        Some(Secret::new("an-admin-key-from-env-0123456789")),
    )
    .unwrap();
    assert!(
        second
            .redeem_ticket(ticket.expose(), &user("alice"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_user_resolves_only_among_their_own_containers() {
    let world = FakeWorld::new();
    let m = &world.manager;
    let own = m
        .create(create_request("alice", "cli_v4"), &|_| {})
        .await
        .unwrap()
        .spec;
    let other = m
        .create(create_request("bob", "preview_server"), &|_| {})
        .await
        .unwrap()
        .spec;
    let alice = Principal::User(user("alice"));
    // The admin sees both, so a shared prefix is ambiguous and names both.
    let shared = &own.container_id[..1];
    assert_eq!(
        other.container_id[..1],
        *shared,
        "the fakes' ids share their first digit"
    );
    let ambiguous = m
        .authorized(&Principal::Admin, shared, Action::ReadContainer)
        .await
        .unwrap_err();
    assert_eq!(ambiguous.kind(), ErrorKind::Conflict);
    assert!(ambiguous.message().contains("bob_preview_server"));
    // Alice sees only hers: the same prefix is hers alone, and Bob's name and id are missing,
    // word for word like a name nobody has.
    assert_eq!(
        m.authorized(&alice, shared, Action::ReadContainer)
            .await
            .unwrap()
            .spec()
            .container_id,
        own.container_id
    );
    let missing = m
        .authorized(&alice, "zz_none", Action::ReadContainer)
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    for reference in [
        other.container_name.as_str(),
        other.container_id.as_str(),
        &other.container_id[..4],
    ] {
        let err = m
            .authorized(&alice, reference, Action::ReadContainer)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{reference}");
        assert_eq!(err.message(), missing.message().replace("zz_none", reference));
    }
}

#[tokio::test]
async fn a_ticket_never_outlives_its_token() {
    let t = tickets(None);
    let alice = user("alice");
    let (_, token) = t
        .auth
        .create_expiring_token(&alice, Some(Duration::from_secs(300)))
        .await
        .unwrap();
    let (_, ticket) = t
        .auth
        .issue_ticket(&token, &alice, Duration::from_secs(12 * 3600))
        .await
        .unwrap();
    assert!(t.auth.redeem_ticket(ticket.expose(), &alice).await.is_ok());
    t.clock.advance(Duration::from_secs(301));
    assert!(t.auth.redeem_ticket(ticket.expose(), &alice).await.is_err());
}

#[tokio::test]
async fn a_name_read_another_way_never_routes_to_another_container() {
    // `alice_cli` + `v4` and `alice` + `cli_v4` spell the same container name.
    let config =
        Config::from_toml("[types.v4]\nimage = \"toolboxv2:latest\"\naccess = \"public\"\n").unwrap();
    let world = FakeWorld::with_config(config);
    let m = &world.manager;
    m.create(create_request("alice", "cli_v4"), &|_| {})
        .await
        .unwrap();
    let tricky = user("alice_cli");
    let answer = m
        .check_route(Some(&Principal::User(tricky.clone())), &tricky, &kind("v4"))
        .await
        .unwrap();
    assert_eq!(denied(answer), RouteDenial::Unknown);
    // Nor does the public type `v4` open Alice's owner-only `cli_v4` to anyone.
    assert_eq!(
        denied(m.check_route(None, &tricky, &kind("v4")).await.unwrap()),
        RouteDenial::Unknown
    );
}

#[tokio::test]
async fn tokens_expire_and_note_their_last_use() {
    let t = tickets(None);
    let alice = user("alice");
    let (record, token) = t
        .auth
        .create_expiring_token(&alice, Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(record.expires_at.is_some());
    assert_eq!(
        t.auth.authenticate(&token).await.unwrap(),
        Principal::User(alice.clone())
    );
    let used = t.auth.tokens().await.unwrap()[0].last_used_at.clone();
    assert!(used.is_some(), "the first use is noted");
    t.clock.advance(Duration::from_secs(3601));
    let expired = t.auth.authenticate(&token).await.unwrap_err();
    assert_eq!(expired.kind(), ErrorKind::Unauthorized);
    // Too short or too long a life is refused.
    for bad in [Duration::from_secs(10), Duration::from_secs(20 * 365 * 86400)] {
        let err = t.auth.create_expiring_token(&alice, Some(bad)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}
