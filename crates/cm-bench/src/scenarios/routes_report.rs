//! The summary lines and the discussion of section 5 (routes), and of the route check rows of
//! section 2, computed from the rows the routes and scale scenarios wrote.

use std::fmt::Write as _;

use serde_json::Value;

use super::routes::{CM_HTTP_LABEL, TARGETS};
use super::scale::{CHECK_ADMIN, CHECK_USER};
use super::{cm_median, engine_median, goal, n_of, rows};
use crate::report::{Report, Row, fmt};
use crate::stats::median;

fn first<'a>(report: &'a Report, prefix: &str) -> Option<&'a Row> {
    rows(report, "routes", prefix).first().copied()
}

fn ratio(row: &Row) -> f64 {
    row.ratio.unwrap_or(f64::NAN)
}

/// cm's median minus the engine's.
fn added(row: &Row) -> f64 {
    cm_median(row) - engine_median(row)
}

fn signed_ms(value: f64) -> String {
    if value < 0.0 {
        format!("−{}", fmt(-value, "ms"))
    } else {
        format!("+{}", fmt(value, "ms"))
    }
}

/// Whether the ranges (min-max) of a row's two sides overlap.
fn overlap(row: &Row) -> bool {
    match (row.cm_summary, row.engine_summary) {
        (Some(c), Some(e)) => c.min <= e.max && e.min <= c.max,
        _ => false,
    }
}

/// The per-request rows of one answer and connection count.
fn per_request<'a>(report: &'a Report, label: &str, connections: usize, rest: &str) -> Option<&'a Row> {
    let conns = format!(
        "{connections} connection{}",
        if connections == 1 { "" } else { "s" }
    );
    first(report, &format!("per request, {label}, {conns}: {rest}"))
}

const SMALL: &str = "512-byte answer";
const MIB: &str = "1 MiB answer";

/// The summary lines about routes.
pub fn summary_lines(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    if let (Some(cli), Some(api)) = (
        first(report, "dynamic: create returns, `cm create` vs docker CLI"),
        first(report, "dynamic: create returns, `cm create` vs the engine's API"),
    ) {
        lines.push(format!(
            "Create with routing (dynamic mode, the default): `cm create` {} against {} for the three `docker` \
             commands an operator types (network, volume, run): ratio {:.2} (goal ≤ 1.00: {}); against the \
             engine's API from a warm process ({}): ratio {:.2}.",
            fmt(cm_median(cli), "ms"),
            fmt(engine_median(cli), "ms"),
            ratio(cli),
            goal(ratio(cli) <= 1.0),
            fmt(engine_median(api), "ms"),
            ratio(api),
        ));
    }
    if let Some(total) = first(
        report,
        "dynamic: create started → first 200, through nginx vs the engine's API",
    ) {
        let cli = first(
            report,
            "dynamic: create started → first 200, through nginx vs docker CLI",
        )
        .map_or(f64::NAN, ratio);
        lines.push(format!(
            "Create to the first 200 through nginx (dynamic, admin key as bearer): {} against {} for the \
             engine's API and the app's own port: ratio {:.2} (goal ≤ 1.05: {}); against the `docker` \
             commands and the app's own port: ratio {cli:.2}.",
            fmt(cm_median(total), "ms"),
            fmt(engine_median(total), "ms"),
            ratio(total),
            goal(ratio(total) <= 1.05),
        ));
    }
    let dynamic_reloads = rows(report, "routes", "nginx reloads (dynamic):");
    if !dynamic_reloads.is_empty() {
        let counts: Vec<String> = dynamic_reloads
            .iter()
            .map(|r| {
                format!(
                    "{} for {}",
                    cm_median(r),
                    r.what.trim_start_matches("nginx reloads (dynamic): ")
                )
            })
            .collect();
        let zero = dynamic_reloads.iter().all(|r| cm_median(r) == 0.0);
        let mut text = format!(
            "nginx reloads in dynamic mode: {} (goal 0: {}).",
            counts.join(", "),
            goal(zero)
        );
        if let Some(answer) = first(report, "dynamic: create returned → its route answers") {
            let never = answer.detail["never_within_10s"].as_u64().unwrap_or(0);
            let _ = write!(
                text,
                " A route answered (not a refusal) {} after its create returned (median; at most {}){}.",
                fmt(cm_median(answer), "ms"),
                fmt(answer.cm_summary.map_or(f64::NAN, |s| s.max), "ms"),
                if never == 0 {
                    String::new()
                } else {
                    format!("; {never} only refused for 10 s")
                }
            );
        }
        lines.push(text);
    }
    let p50 = |label: &str| per_request(report, label, 1, "latency p50, dynamic route vs files route");
    let rps = |label: &str| per_request(report, label, 16, "throughput, dynamic route vs files route");
    if let (Some(s50), Some(m50), Some(srps), Some(mrps)) = (p50(SMALL), p50(MIB), rps(SMALL), rps(MIB)) {
        // At the precision shown (wrk reports latencies to 10 µs).
        let shown = |x: f64| (x * 100.0).round() / 100.0;
        let latency_met = shown(added(s50)) <= 0.3 && shown(added(m50)) <= 0.3;
        let rps_met = ratio(srps) >= 0.8 && ratio(mrps) >= 0.8;
        let mut text = format!(
            "Per request (wrk), the dynamic route against the owner-checked files route: p50 with 1 connection \
             {} for a 512-byte answer and {} for 1 MiB (goal ≤ +0.3 ms: {}); req/s with 16 connections \
             {:.0} % and {:.0} % of the files route's (goal ≥ 80 %: {}{}).",
            signed_ms(added(s50)),
            signed_ms(added(m50)),
            goal(latency_met),
            ratio(srps) * 100.0,
            ratio(mrps) * 100.0,
            goal(rps_met),
            if overlap(srps) && overlap(mrps) {
                "; the rounds of the two routes overlap"
            } else {
                ""
            },
        );
        if let (Some(d50), Some(drps)) = (
            per_request(
                report,
                SMALL,
                1,
                "latency p50, dynamic route vs the app's own port",
            ),
            per_request(
                report,
                SMALL,
                16,
                "throughput, dynamic route vs the app's own port",
            ),
        ) {
            let _ = write!(
                text,
                " Against the app's own port (512 bytes): {} at p50 (1 connection), {:.0} % of its req/s \
                 (16 connections).",
                signed_ms(added(d50)),
                ratio(drps) * 100.0,
            );
        }
        lines.push(text);
    }
    let check = |what: &str| {
        rows(
            report,
            "list",
            &format!("API {what}, 16 connections: latency p50"),
        )
        .into_iter()
        .map(|r| format!("{} at N={}", fmt(cm_median(r), "ms"), n_of(r)))
        .collect::<Vec<_>>()
    };
    let (admin, user) = (check(CHECK_ADMIN), check(CHECK_USER));
    if !admin.is_empty() {
        let inspect: Vec<String> = rows(
            report,
            "list",
            &format!("API {CHECK_ADMIN}, 16 connections: latency p50"),
        )
        .into_iter()
        .map(|r| fmt(engine_median(r), "ms"))
        .collect();
        lines.push(format!(
            "Route check in cm-api alone (`GET /_cm/check`, 16 connections), p50: {} with the admin key{}; \
             the engine's inspect of the same container: {}.",
            admin.join(", "),
            if user.is_empty() {
                String::new()
            } else {
                format!(", {} with the owner's token", user.join(", "))
            },
            inspect.join(", "),
        ));
    }
    if let Some(files) = first(report, "files: create returns") {
        let bursts: Vec<String> = rows(report, "routes", "nginx reloads (files):")
            .iter()
            .map(|r| {
                format!(
                    "{} for {}",
                    cm_median(r),
                    r.what.trim_start_matches("nginx reloads (files): ")
                )
            })
            .collect();
        lines.push(format!(
            "Files mode (`mode = \"files\"`, a route file per container): `cm create` returned after {} ({:.2} of \
             the engine's API); nginx reloads per burst of 20 changes: {}.",
            fmt(cm_median(files), "ms"),
            ratio(files),
            bursts.join("; ")
        ));
    }
    lines
}

/// Median of one metric of one target's wrk runs in a per-request row's detail.
fn target_median(detail: &Value, target: usize, metric: &str) -> f64 {
    let values: Vec<f64> = detail["runs"][target]
        .as_array()
        .map(|runs| runs.iter().filter_map(|r| r[metric].as_f64()).collect())
        .unwrap_or_default();
    median(&values)
}

/// The discussion of section 5.
pub fn paragraph(report: &Report, out: &mut String) {
    create_text(report, out);
    per_request_text(report, out);
    check_text(report, out);
    files_text(report, out);
}

fn create_text(report: &Report, out: &mut String) {
    let (Some(api), Some(cli), Some(total), Some(after)) = (
        first(report, "dynamic: create returns, `cm create` vs the engine's API"),
        first(report, "dynamic: create returns, `cm create` vs docker CLI"),
        first(
            report,
            "dynamic: create started → first 200, through nginx vs the engine's API",
        ),
        first(report, "dynamic: create returned → first 200"),
    ) else {
        return;
    };
    let _ = write!(
        out,
        "**Routes: creating in dynamic mode.** A `cm create` with dynamic routing returned after {} against {} \
         for the engine's API and {} for the three `docker` commands: nothing about nginx is on its path but \
         one `nginx -v` when the process starts (to report whether routing is available); no file is written, \
         checked or reloaded. From the start of the create to the first 200 through nginx took {} against {} \
         for the engine's API and the app's own port ({:.2}). Most of the time after the create returned is \
         the app's own start ({} through nginx, {} on its own port): the route itself is ready at once.",
        fmt(cm_median(api), "ms"),
        fmt(engine_median(api), "ms"),
        fmt(engine_median(cli), "ms"),
        fmt(cm_median(total), "ms"),
        fmt(engine_median(total), "ms"),
        ratio(total),
        fmt(cm_median(after), "ms"),
        fmt(engine_median(after), "ms"),
    );
    if ratio(total) > 1.05 || ratio(cli) > 1.0 {
        let _ = write!(
            out,
            " The goals for the create ({} against the `docker` commands, {:.2} to the first 200) were missed \
             in this run.",
            format_args!("{:.2}", ratio(cli)),
            ratio(total),
        );
        if let Some(plain) = rows(report, "create", "create to running, engine via its API").first() {
            let origin = report.carried_from("create").map_or_else(
                || "in this run".to_owned(),
                |c| format!("in run `{}` (section 1)", c.run_id),
            );
            let _ = write!(
                out,
                " Dynamic routing adds nothing to a create but that `nginx -v`; without routing a `cm create` \
                 took {} against {} for the engine's API {origin} ({:.2}). Here the engine's own create took {}: \
                 the shared machine was busier, and the likely reason is that under such load cm's process start \
                 and its extra engine requests and SQLite commits slow down more than the calls of a warm \
                 process (the spread of cm's samples here: {}).",
                fmt(cm_median(plain), "ms"),
                fmt(engine_median(plain), "ms"),
                ratio(plain),
                fmt(engine_median(api), "ms"),
                api.cm_summary.map_or_else(String::new, |s| format!(
                    "{}–{}",
                    fmt(s.min, "ms"),
                    fmt(s.max, "ms")
                )),
            );
        }
    }
    if let Some(answer) = first(report, "dynamic: create returned → its route answers") {
        let d = &answer.detail;
        let count = |k: &str| d[k].as_u64().unwrap_or(0);
        let _ = write!(
            out,
            " Of {} routes polled from the moment their create returned, {} answered with the app's 200 and {} \
             with 502 (\"not answering yet\", the app still starting) on the first try or within {} (median; \
             polls every {} ms), {} only refused.",
            answer.cm.len() as u64 + count("never_within_10s"),
            count("first_status_200"),
            count("first_status_502"),
            fmt(cm_median(answer), "ms"),
            d["poll_interval_ms"].as_f64().unwrap_or(f64::NAN),
            count("never_within_10s"),
        );
    }
    let reloads = rows(report, "routes", "nginx reloads (dynamic):");
    if !reloads.is_empty() {
        let total: f64 = reloads.iter().map(|r| cm_median(r)).sum();
        let _ = write!(
            out,
            " nginx was reloaded {total:.0} times for all these creates and deletes: cm-api's route check \
             reads the store on every request, so a new record is routable as soon as it is committed."
        );
    }
    out.push_str("\n\n");
}

fn per_request_text(report: &Report, out: &mut String) {
    let tables: Vec<&Row> = rows(report, "routes", "per request, ")
        .into_iter()
        .filter(|r| !r.detail.is_null())
        .collect();
    if tables.is_empty() {
        return;
    }
    out.push_str(
        "**Routes: the cost per request.** `wrk` against one container four ways: its dynamic route, its files \
         route (owner-checked by the real cm-api, the same installation), its files route in an nginx that \
         answers the route check itself (the route as it was before the owner check), and the app's own port. \
         Medians of p50 · p99 · req/s:\n\n",
    );
    let _ = writeln!(
        out,
        "| Answer, connections | {} |\n|---|---:|---:|---:|---:|",
        TARGETS.join(" | ")
    );
    for row in &tables {
        let d = &row.detail;
        let mut line = format!(
            "| {} ({} bytes), {} |",
            d["label"].as_str().unwrap_or(""),
            d["body_bytes"].as_u64().unwrap_or(0),
            d["connections"].as_u64().unwrap_or(0)
        );
        for target in 0..TARGETS.len() {
            let _ = write!(
                line,
                " {} · {} · {:.0}/s |",
                fmt(target_median(d, target, "p50_ms"), "ms"),
                fmt(target_median(d, target, "p99_ms"), "ms"),
                target_median(d, target, "rps")
            );
        }
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
    let find = |label: &str, connections: u64| {
        tables.iter().find(|r| {
            r.detail["label"].as_str() == Some(label) && r.detail["connections"].as_u64() == Some(connections)
        })
    };
    if let Some(small) = find(SMALL, 1) {
        let d = &small.detail;
        let p = |t: usize| target_median(d, t, "p50_ms");
        let _ = write!(
            out,
            "Per request the dynamic route and the files route do the same work: nginx's `auth_request` asks \
             cm-api's `/_cm/check` over a kept-alive connection, then opens a new connection to the app (neither \
             proxies through an `upstream` block with `keepalive`, so nginx keeps no connection to apps). They \
             differ only in how nginx finds the container (a regular-expression location, the check's answer in \
             variables and two `map`s, against one \
             prefix location per container with a fixed address): with one connection and 512 bytes, {} \
             against {} at p50 ({}). The owner check itself, the round trip to cm-api, costs the difference \
             between the files route and the same route whose check nginx answers itself: {} against {} ({}). \
             The rest, {} over the app's own port ({} at p50), is nginx's proxying and the new connection per \
             request to the app (through Docker's port publishing, and a new thread of the Python app each \
             time), which wrk's kept-alive connection to the app's own port does not pay.",
            fmt(p(0), "ms"),
            fmt(p(1), "ms"),
            signed_ms(p(0) - p(1)),
            fmt(p(1), "ms"),
            fmt(p(2), "ms"),
            signed_ms(p(1) - p(2)),
            fmt(p(2) - p(3), "ms"),
            fmt(p(3), "ms"),
        );
    }
    if let Some(big) = find(MIB, 1) {
        let d = &big.detail;
        let p = |t: usize| target_median(d, t, "p50_ms");
        let _ = write!(
            out,
            " For 1 MiB every way through nginx was slower than the app's own port ({} and {} against {} at p50, \
             one connection), whatever the check: the likely reason is `proxy_buffering off` in the site's \
             locations (right for streams and WebSockets), with which nginx relays a body through one buffer of \
             `proxy_buffer_size` (4 KiB by default): some 256 reads and writes per MiB, on the same two cores as \
             the app and wrk.",
            fmt(p(0), "ms"),
            fmt(p(1), "ms"),
            fmt(p(3), "ms"),
        );
        let small = find(SMALL, 1).map_or(f64::NAN, |r| target_median(&r.detail, 0, "nginx_cpu_us"));
        let big_cpu = target_median(d, 0, "nginx_cpu_us");
        if big_cpu.is_finite() && small.is_finite() {
            let _ = write!(
                out,
                " The nginx worker spent {big_cpu:.0} µs of CPU on each 1 MiB answer of the dynamic route, \
                 against {small:.0} µs on a 512-byte one."
            );
        }
    }
    let cpu = |d: &Value, target: usize, key: &str| target_median(d, target, key);
    if let Some(busy) = find(SMALL, 16) {
        let d = &busy.detail;
        let (n0, n1, n2) = (
            cpu(d, 0, "nginx_cpu_us"),
            cpu(d, 1, "nginx_cpu_us"),
            cpu(d, 2, "nginx_cpu_us"),
        );
        let (a0, a1) = (cpu(d, 0, "api_cpu_us"), cpu(d, 1, "api_cpu_us"));
        if n0.is_finite() && n1.is_finite() {
            let _ = write!(
                out,
                " CPU time per request (512 bytes, 16 connections, from /proc): the nginx worker spent {:.0} µs \
                 on the dynamic route, {:.0} µs on the files route and {:.0} µs on the route whose check it \
                 answers itself; cm-api spent {:.0} µs and {:.0} µs answering the check.",
                n0, n1, n2, a0, a1,
            );
        }
    }
    if let Some(busy) = find(SMALL, 16) {
        let d = &busy.detail;
        let r = |t: usize| target_median(d, t, "rps");
        let _ = write!(
            out,
            " With 16 connections (512 bytes) the dynamic route served {:.0} req/s, the files route {:.0}, the \
             unchecked route {:.0} and the app's own port {:.0}: one nginx worker, cm-api, the app and wrk share \
             two cores, so every hop a request makes costs throughput.",
            r(0),
            r(1),
            r(2),
            r(3),
        );
        if let Some(row) = per_request(report, SMALL, 16, "throughput, dynamic route vs files route")
            && overlap(row)
        {
            let range = |s: Option<crate::stats::Summary>| {
                s.map_or_else(String::new, |s| format!("{:.0}–{:.0}", s.min, s.max))
            };
            let close = |key: &str| {
                let (a, b) = (cpu(d, 0, key), cpu(d, 1, key));
                (a / b - 1.0).abs() <= 0.1
            };
            let _ = write!(
                out,
                " The rounds of the two routes overlap (dynamic {}, files {} req/s){}.",
                range(row.cm_summary),
                range(row.engine_summary),
                if close("nginx_cpu_us") && close("api_cpu_us") {
                    " and the CPU each request cost nginx and cm-api was within 10 % on both: the load of the \
                     shared machine changed between rounds more than the two routes differ"
                } else {
                    ""
                },
            );
        }
    }
    if let Some(cm_http) = find(CM_HTTP_LABEL, 1) {
        let d = &cm_http.detail;
        let p = |t: usize| target_median(d, t, "p50_ms");
        let _ = write!(
            out,
            " The image's own app, cm-http, is not used for these figures: on its own port with a kept-alive \
             connection it took {} per request at p50 (through the dynamic route {}): it writes headers and body \
             separately with Nagle's algorithm on, so the body waits until the client acknowledges the headers, \
             which the client delays (about 40 ms); on nginx's new connection per request this does not happen.",
            fmt(p(3), "ms"),
            fmt(p(0), "ms"),
        );
    }
    out.push_str("\n\n");
}

fn check_text(report: &Report, out: &mut String) {
    let admin = rows(
        report,
        "list",
        &format!("API {CHECK_ADMIN}, 16 connections: latency p50"),
    );
    let user = rows(
        report,
        "list",
        &format!("API {CHECK_USER}, 16 connections: latency p50"),
    );
    let (Some(a0), Some(a1)) = (admin.first(), admin.last()) else {
        return;
    };
    let rps = rows(
        report,
        "list",
        &format!("API {CHECK_ADMIN}, 16 connections: throughput"),
    );
    let _ = write!(
        out,
        "**Routes: the route check alone.** cm-api answered `GET /_cm/check` (16 connections, directly on its \
         port) in {} at N={} and {} at N={} (p50, admin key; section 2){}: it reads one record by name from \
         the store and the status from the event-fed view, {}. The engine's inspect of the same container, \
         the question a proxy would otherwise ask the engine, took {} and {}.",
        fmt(cm_median(a0), "ms"),
        n_of(a0),
        fmt(cm_median(a1), "ms"),
        n_of(a1),
        match (user.first(), user.last()) {
            (Some(u0), Some(u1)) => format!(
                ", with the owner's user token {} and {} (one more store read: the token's hash)",
                fmt(cm_median(u0), "ms"),
                fmt(cm_median(u1), "ms")
            ),
            _ => String::new(),
        },
        if cm_median(a1) <= cm_median(a0) * 1.5 {
            "and the population hardly changed its latency"
        } else {
            "yet its latency grew with the population (the load generator, the engine and the containers \
             share the two cores)"
        },
        fmt(engine_median(a0), "ms"),
        fmt(engine_median(a1), "ms"),
    );
    if let Some(r) = rps.last() {
        let _ = write!(
            out,
            " At N={} it served {:.0} checks a second with the load generator on the same cores: an upper bound \
             for the requests a second nginx can route here, since every routed request is checked once.",
            n_of(r),
            cm_median(r)
        );
    }
    out.push_str("\n\n");
}

fn files_text(report: &Report, out: &mut String) {
    let (Some(files), Some(api)) = (
        first(report, "files: create returns"),
        first(report, "dynamic: create returns, `cm create` vs the engine's API"),
    ) else {
        return;
    };
    let _ = writeln!(
        out,
        "**Routes: files mode.** With route files, `cm create` returned after {} instead of {} in dynamic mode: \
         the route is written, checked with `nginx -t`, nginx reloaded, and cm waits until the new workers \
         serve. The `cm` command sends its one change at once, then gives up its lock for one window (100 ms) \
         so that other processes' changes share the reload, then waits at least 140 ms for the reload to \
         settle; cm-api also batches the changes of one window; and nginx is reloaded at most once a second.",
        fmt(cm_median(files), "ms"),
        fmt(cm_median(api), "ms"),
    );
    let reloads = rows(report, "routes", "nginx reloads (files):");
    if !reloads.is_empty() {
        let burst = first(report, "files: 20 concurrent `cm create` processes, wall time")
            .map_or(f64::NAN, cm_median);
        let many: Vec<String> = reloads
            .iter()
            .filter(|r| cm_median(r) > 2.0)
            .map(|r| {
                format!(
                    "{} ({})",
                    r.what.trim_start_matches("nginx reloads (files): "),
                    cm_median(r)
                )
            })
            .collect();
        if many.is_empty() {
            out.push_str("Bursts of 20 route changes caused at most 2 reloads each.\n");
        } else {
            let _ = writeln!(
                out,
                "Bursts of 20 creates or deletes shared reloads but still caused several: {}. The engine \
                 finishes the creates one after another (20 concurrent `cm create` took {} in all, one every \
                 {}), so their route changes arrive spread over seconds and a 100 ms window catches only a \
                 few; deletes, which end closer together, share more; `cm routes sync` (all changes at once) \
                 reloads once. Dynamic mode has none of this.",
                many.join(", "),
                fmt(burst, "ms"),
                fmt(burst / 20.0, "ms")
            );
        }
    }
    out.push('\n');
}
