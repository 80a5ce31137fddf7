//! Embedding cm-core in another Rust service: build a `Manager` from a `Config` and a set of
//! adapters, then call the use cases. Here the adapters are cm-core's in-memory fakes, so the
//! example runs anywhere (`cargo run -p cm-core --example embedding --features testing`); a real
//! service passes cm-docker, cm-store, cm-nginx and cm-ssh instead, as `cm_wiring` does.

#![allow(clippy::print_stdout)]

use std::sync::Arc;

use cm_core::testing::{FakeKeyParser, FakeProbe, FakeProxy, FakeRuntime, FixedClock, MemoryStore};
use cm_core::{
    Action, Adapters, Config, CreateForm, CreateRequest, DeleteOptions, Manager, NoFailPoints, Principal,
};

#[tokio::main]
async fn main() -> cm_core::Result<()> {
    // The configuration: the seed's four types, with one override, from TOML text.
    let config = Config::from_toml("[types.cli_v4]\nmemory = \"1g\"\n")?;

    // One adapter per port. A real service would use DockerRuntime, SqliteStore, NginxProxy,
    // Ed25519KeyParser, TcpPortProbe and SystemClock here.
    let adapters = Adapters {
        runtime: Arc::new(FakeRuntime::new()),
        store: Arc::new(MemoryStore::default()),
        proxy: Arc::new(FakeProxy::default()),
        keys: Arc::new(FakeKeyParser),
        probe: Arc::new(FakeProbe::default()),
        clock: Arc::new(FixedClock::default()),
        fail_points: Arc::new(NoFailPoints),
    };
    let manager = Manager::new(config, adapters);

    // Input from outside becomes validated types before anything is touched.
    let form = CreateForm {
        user_id: "usr_123".into(),
        container_type: "cli_v4".into(),
        ..CreateForm::default()
    };
    let request = CreateRequest::parse(&form, manager.config())?;
    let created = manager.create(request, &|step| println!("  {step}")).await?;
    println!(
        "created {} on port {} at {}",
        created.spec.container_name, created.spec.port, created.spec.url_path
    );

    for spec in manager.list_all().await?.containers {
        println!("{} is {}", spec.container_name, spec.status);
    }

    let options = DeleteOptions {
        force: true,
        purge: true,
    };
    // Every use case on one container takes a handle: resolved once, and authorized for the
    // principal acting (an embedding service acts as the admin, or as a user with a token's rights).
    let container = manager
        .authorized(&Principal::Admin, "usr_123_cli_v4", Action::DeleteContainer)
        .await?;
    manager.delete(&container, options).await?;
    println!("deleted, with its data");
    Ok(())
}
