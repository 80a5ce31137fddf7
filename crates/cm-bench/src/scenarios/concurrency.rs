//! Scenario 3, concurrency: N creates from 4 workers (each a `cm create` process) against N raw creates
//! from 4 tasks on the engine's API and from 4 docker CLI workers. Afterwards: are the N host
//! ports distinct, and do all N containers run?

use std::collections::BTreeSet;
use std::time::Instant;

use futures_util::StreamExt;

use crate::engine::{api_create, cli_create, containers};
use crate::progress;
use crate::report::{Report, Row};
use crate::scenarios::rotate;
use crate::stats::ms_since;
use crate::world::{Bench, CM_PORTS, INSTANCE_LABEL};

const WORKERS: usize = 4;

/// Runs the scenario.
pub async fn run(bench: &Bench, report: &mut Report) -> anyhow::Result<()> {
    let n = if bench.quick { 20 } else { 50 };
    let rounds = if bench.quick { 1 } else { 2 };
    let docker = &bench.docker;
    let mut totals = [vec![], vec![], vec![]];
    let mut collisions = Vec::new();
    let mut running = [vec![], vec![], vec![]];
    for round in 0..rounds {
        for side in rotate(round, 3) {
            let (label, ms, failures) = match side {
                0 => {
                    let cm = bench.instance(
                        &format!("conc-{round}"),
                        CM_PORTS,
                        &format!("10.240.{}.0/20", 80 + 16 * round),
                        "",
                    )?;
                    let users: Vec<String> = (0..n).map(|_| bench.user()).collect();
                    let start = Instant::now();
                    let results: Vec<_> = futures_util::stream::iter(&users)
                        .map(|u| cm.create(u))
                        .buffer_unordered(WORKERS)
                        .collect()
                        .await;
                    let ms = ms_since(start);
                    let listing: Vec<serde_json::Value> =
                        serde_json::from_str(&cm.run(&["list", "--all", "--json"]).await?.stdout)?;
                    let ports: BTreeSet<u64> = listing.iter().filter_map(|c| c["port"].as_u64()).collect();
                    collisions.push((listing.len() - ports.len()) as f64);
                    (cm.label.clone(), ms, failures(results))
                }
                1 => {
                    let raw = format!("raw-conc-api-{round}");
                    let boxes: Vec<_> = (0..n).map(|_| bench.raw_box(&raw)).collect();
                    let start = Instant::now();
                    let results: Vec<_> = futures_util::stream::iter(&boxes)
                        .map(|b| api_create(docker, b))
                        .buffer_unordered(WORKERS)
                        .collect()
                        .await;
                    (bench.label(&raw), ms_since(start), failures(results))
                }
                _ => {
                    let raw = format!("raw-conc-cli-{round}");
                    let boxes: Vec<_> = (0..n).map(|_| bench.raw_box(&raw)).collect();
                    let start = Instant::now();
                    let results: Vec<_> = futures_util::stream::iter(&boxes)
                        .map(cli_create)
                        .buffer_unordered(WORKERS)
                        .collect()
                        .await;
                    (bench.label(&raw), ms_since(start), failures(results))
                }
            };
            let up = containers(docker, &[format!("{INSTANCE_LABEL}={label}")])
                .await?
                .iter()
                .filter(|(_, _, state)| state == "running")
                .count();
            progress!(
                "concurrency: round {}, {}: {n} creates in {:.1} s, {up} running{}",
                round + 1,
                ["cm", "engine API", "docker CLI"][side],
                ms / 1000.0,
                failures
                    .as_ref()
                    .map_or_else(String::new, |f| format!(", FAILURES: {f}"))
            );
            if let Some(f) = failures {
                report.section("concurrency").note(format!(
                    "round {} ({}): {f}",
                    round + 1,
                    ["cm", "engine API", "docker CLI"][side]
                ));
            }
            totals[side].push(ms);
            running[side].push(up as f64);
            bench.remove_instance(&label);
        }
    }
    let [cm_ms, api_ms, cli_ms] = totals;
    let [cm_up, api_up, _] = running;
    let section = report.section("concurrency");
    section.push(Row::new(
        format!("{n} creates from {WORKERS} workers, total, engine via its API"),
        "ms",
        cm_ms.clone(),
        api_ms,
    ));
    section.push(Row::new(
        format!("{n} creates from {WORKERS} workers, total, engine via docker CLI (3 processes each)"),
        "ms",
        cm_ms,
        cli_ms,
    ));
    section.push(Row::new(
        format!("containers running after the {n} creates"),
        "containers",
        cm_up,
        api_up,
    ));
    section.push(Row::new(
        format!("host port collisions among the {n} containers (cm leases; the raw side assigns by hand)"),
        "collisions",
        collisions,
        Vec::new(),
    ));
    Ok(())
}

/// `None` when all succeeded, else how many failed and the first error.
fn failures(results: Vec<anyhow::Result<impl Sized>>) -> Option<String> {
    let errors: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| format!("{e:#}")))
        .collect();
    let first = errors.first()?;
    Some(format!("{} failed, first: {first}", errors.len()))
}
