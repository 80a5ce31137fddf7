//! Scenario 1, create to running and delete: `cm create` (a fresh process each time) against the same
//! objects made through the engine's API and through the docker CLI, interleaved in rotating
//! order; then the three deletes the same way.

use crate::engine::{api_create, api_delete, cli_create, cli_delete, docker_cli};
use crate::progress;
use crate::report::{Report, Row};
use crate::scenarios::{rotate, timed};
use crate::world::{Bench, CM_PORTS};

/// Runs the scenario.
pub async fn run(bench: &Bench, report: &mut Report) -> anyhow::Result<()> {
    let pairs = if bench.quick { 3 } else { 10 };
    let cm = bench.instance("create", CM_PORTS, "10.240.64.0/20", "")?;
    let raw = "raw-create";
    let docker = &bench.docker;

    progress!("create: warming up (one of each, untimed)");
    let user = bench.user();
    cm.create(&user).await?;
    cm.delete(&user).await?;
    let b = bench.raw_box(raw);
    api_create(docker, &b).await?;
    api_delete(docker, &b).await?;
    let b = bench.raw_box(raw);
    cli_create(&b).await?;
    cli_delete(&b).await?;

    let mut floor = (Vec::new(), Vec::new());
    for i in 0..pairs {
        for side in rotate(i, 2) {
            if side == 0 {
                floor.0.push(cm.run(&["health"]).await?.ms);
            } else {
                let args = ["version", "--format", "{{.Server.Version}}"].map(str::to_owned);
                floor.1.push(docker_cli(&args).await?);
            }
        }
    }

    let (mut create, mut delete) = ([vec![], vec![], vec![]], [vec![], vec![], vec![]]);
    for i in 0..pairs {
        let user = bench.user();
        let by_api = bench.raw_box(raw);
        let by_cli = bench.raw_box(raw);
        for side in rotate(i, 3) {
            let ms = match side {
                0 => cm.create(&user).await?,
                1 => timed(api_create(docker, &by_api)).await?,
                _ => timed(cli_create(&by_cli)).await?,
            };
            create[side].push(ms);
        }
        for side in rotate(i, 3) {
            let ms = match side {
                0 => cm.delete(&user).await?,
                1 => timed(api_delete(docker, &by_api)).await?,
                _ => timed(cli_delete(&by_cli)).await?,
            };
            delete[side].push(ms);
        }
        progress!(
            "create: {}/{pairs}: create cm {:.0} ms, API {:.0} ms, CLI {:.0} ms; delete cm {:.0} ms, API {:.0} ms, CLI {:.0} ms",
            i + 1,
            create[0][i],
            create[1][i],
            create[2][i],
            delete[0][i],
            delete[1][i],
            delete[2][i]
        );
    }
    bench.remove_instance(&cm.label);
    bench.remove_instance(&bench.label(raw));

    let [cm_create, api_create_ms, cli_create_ms] = create;
    let [cm_delete, api_delete_ms, cli_delete_ms] = delete;
    let section = report.section("create");
    section.push(Row::new(
        "create to running, engine via its API",
        "ms",
        cm_create.clone(),
        api_create_ms,
    ));
    section.push(Row::new(
        "create to running, engine via docker CLI (3 processes)",
        "ms",
        cm_create,
        cli_create_ms,
    ));
    section.push(Row::new(
        "delete with volume and network, engine via its API",
        "ms",
        cm_delete.clone(),
        api_delete_ms,
    ));
    section.push(Row::new(
        "delete with volume and network, engine via docker CLI (3 processes)",
        "ms",
        cm_delete,
        cli_delete_ms,
    ));
    section.push(Row::new(
        "process floor: `cm health` vs `docker version` (start, connect, one engine call)",
        "ms",
        floor.0,
        floor.1,
    ));
    Ok(())
}
