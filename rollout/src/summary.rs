//! The plan in words, for `kiln plan` and `--dry-run` on a terminal: what changes, in
//! which order, under which gates, and the notes.

use std::fmt;

use crate::error::human;
use crate::plan::{RefreshPlan, RolloutPlan};
use crate::spec::Gates;

impl fmt::Display for RolloutPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.group;
        writeln!(
            f,
            "{}: group {} in {} (min {}, max {}, desired {}), run {} by {}",
            self.spec.target,
            g.name,
            self.region,
            g.min_size,
            g.max_size,
            g.desired,
            self.run_id,
            self.owner
        )?;
        let t = &self.template;
        let from = t
            .source_image
            .as_ref()
            .map_or("?".into(), |i| i.to_string());
        if self.no_change {
            // `rollout` returns before the lock: no version, no refresh, no gate.
            writeln!(
                f,
                "  template {}: stays at version {} ({from}), no new version\n  nothing to \
                 change: every instance runs {}",
                t.name, t.source_version, self.image
            )?;
            return self
                .notes
                .iter()
                .try_for_each(|n| writeln!(f, "  note: {n}"));
        }
        writeln!(
            f,
            "  template {}: version {} ({from}) -> new version (likely {}) with {}",
            t.name, t.source_version, t.expected_new_version, self.image
        )?;
        if let Some(r) = &self.refresh {
            write_refresh(f, self.spec.strategy.name(), r)?;
        }
        if let Some(bg) = &self.blue_green {
            writeln!(
                f,
                "  blue/green: green {} with target group {}, {} listener(s) switched, \
                 traffic steps {:?}, blue kept {}",
                bg.green_group,
                bg.green_target_group,
                bg.listeners.len(),
                bg.settings.traffic_steps,
                human(bg.settings.rollback_window)
            )?;
            if let Some(t) = &bg.ab {
                writeln!(
                    f,
                    "  A/B: each step watched {} and compared with blue: canary fails above                      blue's 5xx rate + {} points, or {}x and {} slower, or under {} requests",
                    human(bg.settings.step_bake),
                    t.max_error_rate_increase,
                    t.max_latency_ratio,
                    humantime::format_duration(t.min_latency_increase),
                    t.min_requests
                )?;
            }
        }
        if let Some(ip) = &self.in_place {
            let n: usize = ip.batches.iter().map(Vec::len).sum();
            writeln!(
                f,
                "  in place: {n} instances in {} batches",
                ip.batches.len()
            )?;
        }
        write_gates(f, &self.spec.gates, self)?;
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        Ok(())
    }
}

fn write_refresh(f: &mut fmt::Formatter<'_>, strategy: &str, r: &RefreshPlan) -> fmt::Result {
    let p = &r.preferences;
    let c = &r.capacity;
    writeln!(
        f,
        "  {strategy}: {} (min {}% keeps {} in service, max {}% allows {}), warm-up {} s \
         ({}), about {}",
        r.order.describe(),
        p.min_healthy_percentage,
        c.min_in_service,
        p.max_healthy_percentage,
        c.max_in_service,
        p.instance_warmup.as_secs(),
        r.warmup_source,
        human(r.estimate)
    )?;
    if !p.checkpoint_percentages.is_empty() {
        let delay = p.checkpoint_delay.map_or("?".into(), human);
        writeln!(
            f,
            "  checkpoints {:?}, {delay} each",
            p.checkpoint_percentages
        )?;
    }
    if let Some(to) = r.raise_max_size_to {
        writeln!(
            f,
            "  max size raised to {to} during the rollout, restored after"
        )?;
    }
    writeln!(
        f,
        "  protected instances: {:?}, standby instances: {:?}, auto rollback: {}",
        p.scale_in_protected_instances, p.standby_instances, p.auto_rollback
    )
}

fn write_gates(f: &mut fmt::Formatter<'_>, gates: &Gates, plan: &RolloutPlan) -> fmt::Result {
    let mut parts = Vec::new();
    if gates.target_health {
        parts.push(format!(
            "target health (stop after {} not healthy)",
            human(plan.unhealthy_after)
        ));
    }
    if !gates.alarms.is_empty() {
        parts.push(format!("alarms {}", gates.alarms.join(", ")));
    }
    if let Some(path) = &gates.http_probe {
        parts.push(format!("probe {path}"));
    }
    let list = if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join("; ")
    };
    writeln!(f, "  gates: {list}")
}
