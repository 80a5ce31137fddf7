//! The metrics text (`Manager::metrics_text`): the counters plus gauges read from the store
//! and the status view.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::error::Result;
use crate::manager::Manager;

use crate::metrics::{family, label};

impl Manager {
    /// Everything the manager measures, in Prometheus' text format: the counters since it
    /// started, and gauges read now from the store and the live statuses.
    pub async fn metrics_text(&self) -> Result<String> {
        let mut out = String::new();
        let listing = self.list_all().await?;
        let mut containers: BTreeMap<(String, String), u64> = BTreeMap::new();
        for spec in &listing.containers {
            *containers
                .entry((spec.status.to_string(), spec.container_type.to_string()))
                .or_default() += 1;
        }
        family(
            &mut out,
            "cm_containers",
            "gauge",
            "Containers by state and type.",
        );
        for ((state, kind), count) in &containers {
            let _ = writeln!(
                out,
                "cm_containers{{state=\"{}\",type=\"{}\"}} {count}",
                label(state),
                label(kind)
            );
        }
        let nodes = self.known_nodes();
        if !nodes.is_empty() {
            let mut by_state: BTreeMap<&str, u64> = BTreeMap::new();
            for node in &nodes {
                *by_state.entry(node.state.as_str()).or_default() += 1;
            }
            family(
                &mut out,
                "cm_nodes",
                "gauge",
                "Nodes of the Swarm runtime by state, as last listed.",
            );
            for (state, count) in by_state {
                let _ = writeln!(out, "cm_nodes{{state=\"{state}\"}} {count}");
            }
        }
        let pool = self.config().port_pool;
        let leased = self.leased_ports().await?;
        let in_pool = leased.iter().filter(|p| pool.contains(**p)).count();
        family(&mut out, "cm_port_pool_size", "gauge", "Host ports in the pool.");
        let _ = writeln!(out, "cm_port_pool_size {}", pool.len());
        family(
            &mut out,
            "cm_port_pool_leased",
            "gauge",
            "Host ports of the pool leased to containers.",
        );
        let _ = writeln!(out, "cm_port_pool_leased {in_pool}");
        let subnets = self.adapters().store.subnet_leases().await?.len();
        family(
            &mut out,
            "cm_subnet_pool_size",
            "gauge",
            "User networks the subnet pool can hold.",
        );
        let _ = writeln!(
            out,
            "cm_subnet_pool_size {}",
            self.config().subnet_pool.capacity()
        );
        family(
            &mut out,
            "cm_subnet_pool_leased",
            "gauge",
            "Subnets leased to users.",
        );
        let _ = writeln!(out, "cm_subnet_pool_leased {subnets}");
        let (execs, follows) = self.in_flight();
        family(
            &mut out,
            "cm_exec_in_flight",
            "gauge",
            "Commands running in containers now.",
        );
        let _ = writeln!(out, "cm_exec_in_flight {execs}");
        family(
            &mut out,
            "cm_log_follows_in_flight",
            "gauge",
            "Followed logs streaming now.",
        );
        let _ = writeln!(out, "cm_log_follows_in_flight {follows}");
        self.metrics().render(&mut out);
        Ok(out)
    }
}
