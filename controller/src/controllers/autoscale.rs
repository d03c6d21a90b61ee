//! The autoscaler's pure heart (on the leader): the Kubernetes HPA's algorithm over the CPU
//! and memory each ready replica's agent measured. No I/O and no clock (`now` is given);
//! tested hardest.
//!
//! - Per metric, the average use of the measured replicas in percent of what each may use
//!   (`resources.cpus`, or one CPU; `resources.memory`), against the target: `ratio =
//!   average / target`. Within 10 % of 1 nothing changes.
//! - `desired = ceil(replicas × ratio)`, the highest over the metrics. Replicas not measured
//!   (not ready, or too new) count as using nothing when that would scale up, and as using
//!   the target when that would scale down: neither way do they push the decision.
//! - Scaling up is immediate but bounded (at most doubling, or 4 more); scaling down takes
//!   the highest recommendation of the stabilization window, so a short dip removes nothing.
//! - Never outside `minReplicas`..`maxReplicas`.

use std::collections::VecDeque;
use std::time::Duration;

use nanocl_api_types::cargo::v1::{AutoscaleSpec, DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS};
use tokio::time::Instant;

/// Within this much of the target nothing changes.
pub const TOLERANCE: f64 = 0.1;

/// What one ready replica used.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// CPUs (1.0 = one CPU busy).
    pub cpus: f64,
    /// Bytes.
    pub memory: u64,
}

/// What each replica may use, the denominators of the percentages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Requests {
    /// CPUs (`resources.cpus`, else 1).
    pub cpus: f64,
    /// Bytes (`resources.memory`), when set.
    pub memory: Option<u64>,
}

/// The autoscaler's view of a cargo now.
#[derive(Clone, Debug, PartialEq)]
pub struct Recommendation {
    /// The replica count it asks for, before stabilization.
    pub replicas: u32,
    /// Average CPU use in percent, when measured.
    pub cpu_percent: Option<f64>,
    /// Average memory use in percent, when measured and targeted.
    pub memory_percent: Option<f64>,
    /// CamelCase, see `AutoscaleStatus::reason`.
    pub reason: &'static str,
    /// For people.
    pub message: String,
}

fn bounds(spec: &AutoscaleSpec) -> (u32, u32) {
    let min = u32::try_from(spec.min_replicas.unwrap_or(1).max(1)).unwrap_or(1);
    let max = u32::try_from(spec.max_replicas).unwrap_or(min).max(min);
    (min, max)
}

/// `replicas` kept within the spec's bounds.
pub fn clamp(spec: &AutoscaleSpec, replicas: u32) -> u32 {
    let (min, max) = bounds(spec);
    replicas.clamp(min, max)
}

/// The count asked for by one metric: its samples' average against `target` percent of
/// `request`, `current` replicas running, `samples.len()` of them measured.
fn by_metric(current: u32, used: &[f64], request: f64, target: f64) -> (Option<u32>, f64) {
    let measured = used.len() as f64;
    let average = used.iter().sum::<f64>() / measured / request * 100.0;
    let ratio = average / target;
    if (ratio - 1.0).abs() <= TOLERANCE {
        return (None, average);
    }
    let missing = f64::from(current) - measured;
    if missing <= 0.0 {
        return (Some((measured * ratio).ceil() as u32), average);
    }
    // The unmeasured ones never push: at 0 % when scaling up, at the target when down.
    let total = used.iter().sum::<f64>() / request * 100.0;
    let assumed = if ratio > 1.0 { 0.0 } else { target };
    let ratio = (total + missing * assumed) / (f64::from(current) * target);
    if (ratio - 1.0).abs() <= TOLERANCE || (ratio > 1.0) != (average > target) {
        return (None, average);
    }
    (Some((f64::from(current) * ratio).ceil() as u32), average)
}

/// What the autoscaler asks for, given `current` replicas and the samples of the ready ones.
pub fn recommend(
    spec: &AutoscaleSpec,
    requests: Requests,
    current: u32,
    samples: &[Sample],
) -> Recommendation {
    let (min, max) = bounds(spec);
    if samples.is_empty() {
        let replicas = current.clamp(min, max);
        return Recommendation {
            replicas,
            cpu_percent: None,
            memory_percent: None,
            reason: "MetricsMissing",
            message: "no ready replica has been measured yet".to_owned(),
        };
    }
    let mut wanted: Option<u32> = None;
    let mut parts = Vec::new();
    let mut cpu_percent = None;
    let mut memory_percent = None;
    if let Some(target) = spec.target_cpu_utilization_percent {
        let used: Vec<f64> = samples.iter().map(|s| s.cpus).collect();
        let (n, average) = by_metric(current, &used, requests.cpus.max(1e-9), f64::from(target));
        cpu_percent = Some(average);
        parts.push(format!("CPU {average:.0}% of {target}%"));
        wanted = wanted.max(n);
    }
    if let (Some(target), Some(request)) = (spec.target_memory_utilization_percent, requests.memory)
    {
        let used: Vec<f64> = samples.iter().map(|s| s.memory as f64).collect();
        let (n, average) = by_metric(current, &used, request.max(1) as f64, f64::from(target));
        memory_percent = Some(average);
        parts.push(format!("memory {average:.0}% of {target}%"));
        wanted = wanted.max(n);
    }
    let measured = format!(
        "{} ({} replica(s) measured)",
        parts.join(", "),
        samples.len()
    );
    let Some(raw) = wanted else {
        return Recommendation {
            replicas: current.clamp(min, max),
            cpu_percent,
            memory_percent,
            reason: "WithinTolerance",
            message: measured,
        };
    };
    // Scaling up at most doubles, or adds 4 (the HPA's default policy).
    let step = current.saturating_mul(2).max(current + 4);
    let replicas = raw.min(step).clamp(min, max);
    let reason = match replicas.cmp(&current) {
        std::cmp::Ordering::Greater => "ScaledUp",
        std::cmp::Ordering::Less => "ScaledDown",
        std::cmp::Ordering::Equal if raw > max => "AtMaxReplicas",
        std::cmp::Ordering::Equal if raw < min => "AtMinReplicas",
        std::cmp::Ordering::Equal => "WithinTolerance",
    };
    Recommendation {
        replicas,
        cpu_percent,
        memory_percent,
        reason,
        message: measured,
    }
}

/// The recommendations of one cargo within its scale-down stabilization window.
#[derive(Clone, Debug, Default)]
pub struct Window(VecDeque<(Instant, u32)>);

impl Window {
    /// A window that starts with `current` recommended now: a leader that just took over
    /// (and knows no history) removes nothing before a whole window has passed.
    pub fn starting(now: Instant, current: u32) -> Window {
        Window(VecDeque::from([(now, current)]))
    }

    /// Records `recommended` and answers the count to run: `recommended` when it is not
    /// lower than `current`, else the highest recommendation of the last `window` (never
    /// above `current`); and, when that holds the count up, how long until the window moves.
    pub fn decide(
        &mut self,
        now: Instant,
        window: Duration,
        current: u32,
        recommended: u32,
    ) -> (u32, Option<Duration>) {
        self.0
            .retain(|(at, _)| now.saturating_duration_since(*at) < window);
        self.0.push_back((now, recommended));
        if recommended >= current {
            return (recommended, None);
        }
        let highest = self.0.iter().map(|(_, n)| *n).max().unwrap_or(recommended);
        let decided = highest.min(current);
        if decided <= recommended {
            return (decided, None);
        }
        // The oldest recommendation above this one leaves the window first.
        let next = self
            .0
            .iter()
            .filter(|(_, n)| *n > recommended)
            .map(|(at, _)| window.saturating_sub(now.saturating_duration_since(*at)))
            .min();
        (decided, next)
    }
}

/// The stabilization window of `spec`.
pub fn window(spec: &AutoscaleSpec) -> Duration {
    Duration::from_secs(u64::from(
        spec.scale_down_stabilization_seconds
            .unwrap_or(DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(min: i32, max: i32, cpu: Option<i32>, memory: Option<i32>) -> AutoscaleSpec {
        AutoscaleSpec {
            min_replicas: Some(min),
            max_replicas: max,
            target_cpu_utilization_percent: cpu,
            target_memory_utilization_percent: memory,
            scale_down_stabilization_seconds: Some(60),
        }
    }

    fn busy(cpus: f64, n: usize) -> Vec<Sample> {
        vec![Sample { cpus, memory: 0 }; n]
    }

    const TENTH: Requests = Requests {
        cpus: 0.1,
        memory: Some(100 << 20),
    };

    #[test]
    fn a_busy_cargo_should_scale_up_by_the_ratio_within_the_step_and_the_maximum() {
        // 0.1 CPU each, target 50 %: 2 replicas at 100 % want 4.
        let r = recommend(&spec(1, 10, Some(50), None), TENTH, 2, &busy(0.1, 2));
        assert_eq!((r.replicas, r.reason), (4, "ScaledUp"));
        assert_eq!(r.cpu_percent, Some(100.0));
        assert_eq!(r.message, "CPU 100% of 50% (2 replica(s) measured)");
        // 1 replica at 1000 %: 20 wanted, at most 1 + 4 at once.
        let r = recommend(&spec(1, 10, Some(50), None), TENTH, 1, &busy(1.0, 1));
        assert_eq!(r.replicas, 5);
        let r = recommend(&spec(1, 3, Some(50), None), TENTH, 3, &busy(0.1, 3));
        assert_eq!((r.replicas, r.reason), (3, "AtMaxReplicas"));
    }

    #[test]
    fn within_the_tolerance_nothing_should_change() {
        let r = recommend(&spec(1, 10, Some(50), None), TENTH, 4, &busy(0.054, 4));
        assert_eq!((r.replicas, r.reason), (4, "WithinTolerance"));
        let r = recommend(&spec(1, 10, Some(50), None), TENTH, 4, &busy(0.056, 4));
        assert_eq!(r.replicas, 5);
    }

    #[test]
    fn an_idle_cargo_should_go_down_to_the_minimum() {
        let r = recommend(&spec(2, 10, Some(50), None), TENTH, 6, &busy(0.0, 6));
        assert_eq!((r.replicas, r.reason), (2, "ScaledDown"));
        let r = recommend(&spec(2, 10, Some(50), None), TENTH, 2, &busy(0.0, 2));
        assert_eq!((r.replicas, r.reason), (2, "AtMinReplicas"));
    }

    #[test]
    fn unmeasured_replicas_should_never_push_the_decision() {
        // 4 replicas, 2 measured idle: the other 2 count at the target, so 2 idle + 2 at
        // 50 % → ratio 0.5 → 2.
        let r = recommend(&spec(1, 10, Some(50), None), TENTH, 4, &busy(0.0, 2));
        assert_eq!(r.replicas, 2);
        // 4 replicas, 1 measured at 100 %: the other 3 at 0 % → ratio 0.5: no scale-up on
        // the strength of one busy replica; and not a scale-down either.
        let r = recommend(&spec(1, 10, Some(50), None), TENTH, 4, &busy(0.1, 1));
        assert_eq!((r.replicas, r.reason), (4, "WithinTolerance"));
        let none = recommend(&spec(1, 10, Some(50), None), TENTH, 3, &[]);
        assert_eq!((none.replicas, none.reason), (3, "MetricsMissing"));
    }

    #[test]
    fn the_highest_metric_should_win() {
        let samples = vec![
            Sample {
                cpus: 0.0,
                memory: 90 << 20
            };
            2
        ];
        let r = recommend(&spec(1, 10, Some(50), Some(50)), TENTH, 2, &samples);
        assert_eq!(r.replicas, 4, "memory at 90 % of a 50 % target wants 4");
        assert_eq!(r.memory_percent.map(|p| p.round()), Some(90.0));
    }

    #[tokio::test(start_paused = true)]
    async fn scaling_down_should_wait_for_the_window_and_scaling_up_should_not() {
        let window = Duration::from_secs(60);
        let mut w = Window::starting(Instant::now(), 4);
        assert_eq!(w.decide(Instant::now(), window, 4, 6), (6, None));
        tokio::time::advance(Duration::from_secs(10)).await;
        let (n, next) = w.decide(Instant::now(), window, 6, 2);
        assert_eq!(n, 6, "held at the window's highest");
        assert_eq!(next, Some(Duration::from_secs(50)));
        tokio::time::advance(Duration::from_secs(51)).await;
        assert_eq!(w.decide(Instant::now(), window, 6, 2), (2, None));
        assert_eq!(w.decide(Instant::now(), window, 2, 8), (8, None));
    }

    proptest! {
        #[test]
        fn a_decision_should_stay_within_bounds_and_step(
            min in 1i32..5,
            extra in 0i32..20,
            current in 1u32..30,
            used in proptest::collection::vec(0.0f64..2.0, 0..30),
        ) {
            let s = spec(min, min + extra, Some(50), None);
            let samples: Vec<Sample> = used.iter().map(|c| Sample { cpus: *c, memory: 0 }).collect();
            let r = recommend(&s, TENTH, current, &samples);
            prop_assert!(r.replicas >= min as u32 && r.replicas <= (min + extra) as u32);
            let cap = current.saturating_mul(2).max(current + 4).max(min as u32);
            prop_assert!(r.replicas <= cap, "{} > step {cap}", r.replicas);
        }
    }
}
