//! Statistics and health of a decoder in service.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{check, Result};

/// Limits that [`crate::monitoring::Health`] checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Error rate above which the decoder is degraded.
    pub degraded_error_rate: f64,
    /// Error rate above which the decoder is unhealthy.
    pub unhealthy_error_rate: f64,
    /// p99 latency (microseconds) above which the decoder is degraded.
    pub p99_latency_budget_us: f64,
    /// Share of low-confidence results above which the decoder is degraded.
    pub low_confidence_rate: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            degraded_error_rate: 0.05,
            unhealthy_error_rate: 0.5,
            p99_latency_budget_us: 10_000.0,
            low_confidence_rate: 0.5,
        }
    }
}

impl HealthConfig {
    /// Checks the values, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        check(
            (0.0..=1.0).contains(&self.degraded_error_rate)
                && (0.0..=1.0).contains(&self.unhealthy_error_rate)
                && self.degraded_error_rate <= self.unhealthy_error_rate,
            "health error rates must be in [0, 1] with degraded <= unhealthy",
        )?;
        check(
            self.p99_latency_budget_us.is_finite() && self.p99_latency_budget_us > 0.0,
            "health.p99_latency_budget_us must be positive",
        )?;
        check(
            (0.0..=1.0).contains(&self.low_confidence_rate),
            "health.low_confidence_rate must be in [0, 1]",
        )
    }
}

/// Latencies kept for percentiles (the most recent ones).
const LATENCY_WINDOW: usize = 16_384;

/// Counters and recent latencies, updated by every decode.
#[derive(Debug, Default)]
pub struct Monitor {
    inner: Mutex<MonitorState>,
}

#[derive(Debug, Default)]
struct MonitorState {
    decoded: u64,
    errors: u64,
    low_confidence: u64,
    confidence_sum: f64,
    latencies_us: VecDeque<f64>,
}

/// A snapshot of a decoder's counters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statistics {
    /// Successful decodes.
    pub decoded: u64,
    /// Failed decodes.
    pub errors: u64,
    /// `errors / (decoded + errors)`, 0 before any request.
    pub error_rate: f64,
    /// Results flagged below the similarity threshold.
    pub low_confidence: u64,
    /// Mean confidence of successful decodes.
    pub mean_confidence: f64,
    /// Pattern-cache hits.
    pub cache_hits: u64,
    /// Pattern-cache misses.
    pub cache_misses: u64,
    /// `cache_hits / (cache_hits + cache_misses)`, 0 before any lookup.
    pub cache_hit_rate: f64,
    /// Median decode latency over recent requests, microseconds.
    pub latency_p50_us: f64,
    /// 95th percentile latency, microseconds.
    pub latency_p95_us: f64,
    /// 99th percentile latency, microseconds.
    pub latency_p99_us: f64,
}

/// Overall state reported by `health()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Everything within limits.
    Healthy,
    /// Serving, but some limit is exceeded.
    Degraded,
    /// Not fit to serve.
    Unhealthy,
}

/// Health status with the reasons for anything but healthy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// The overall status.
    pub status: HealthStatus,
    /// Why the status is not healthy (empty when healthy).
    pub reasons: Vec<String>,
}

impl Monitor {
    /// Records a decode that succeeded.
    pub fn record_success(&self, latency: Duration, confidence: f32, low_confidence: bool) {
        self.record_successes(latency, [(confidence, low_confidence)]);
    }

    /// Records decodes that succeeded, each with the same latency (a batch's time per row),
    /// under one lock; the same as [`Monitor::record_success`] for each, in order.
    pub fn record_successes(
        &self,
        latency: Duration,
        results: impl IntoIterator<Item = (f32, bool)>,
    ) {
        let mut s = self.lock();
        for (confidence, low_confidence) in results {
            s.decoded += 1;
            s.confidence_sum += f64::from(confidence);
            s.low_confidence += u64::from(low_confidence);
            s.push_latency(latency);
        }
    }

    /// Records a decode that failed.
    pub fn record_error(&self, latency: Duration) {
        let mut s = self.lock();
        s.errors += 1;
        s.push_latency(latency);
    }

    /// The current counters, with the cache's.
    pub fn statistics(&self, cache_hits: u64, cache_misses: u64) -> Statistics {
        let s = self.lock();
        let mut sorted: Vec<f64> = s.latencies_us.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let requests = s.decoded + s.errors;
        let lookups = cache_hits + cache_misses;
        Statistics {
            decoded: s.decoded,
            errors: s.errors,
            error_rate: ratio(s.errors, requests),
            low_confidence: s.low_confidence,
            mean_confidence: if s.decoded == 0 {
                0.0
            } else {
                s.confidence_sum / s.decoded as f64
            },
            cache_hits,
            cache_misses,
            cache_hit_rate: ratio(cache_hits, lookups),
            latency_p50_us: percentile(&sorted, 50.0),
            latency_p95_us: percentile(&sorted, 95.0),
            latency_p99_us: percentile(&sorted, 99.0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MonitorState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl MonitorState {
    fn push_latency(&mut self, latency: Duration) {
        if self.latencies_us.len() == LATENCY_WINDOW {
            self.latencies_us.pop_front();
        }
        self.latencies_us.push_back(latency.as_secs_f64() * 1e6);
    }
}

impl Statistics {
    /// Judges the statistics against the limits. `problems` are conditions found elsewhere
    /// (an empty bank, say) that make the decoder unhealthy.
    pub fn health(&self, limits: &HealthConfig, problems: Vec<String>) -> Health {
        let mut unhealthy = problems;
        let mut degraded = Vec::new();
        if self.error_rate > limits.unhealthy_error_rate {
            unhealthy.push(format!(
                "error rate {:.1}% above {:.1}%",
                self.error_rate * 100.0,
                limits.unhealthy_error_rate * 100.0
            ));
        } else if self.error_rate > limits.degraded_error_rate {
            degraded.push(format!(
                "error rate {:.1}% above {:.1}%",
                self.error_rate * 100.0,
                limits.degraded_error_rate * 100.0
            ));
        }
        if self.latency_p99_us > limits.p99_latency_budget_us {
            degraded.push(format!(
                "p99 latency {:.0} us above the budget of {:.0} us",
                self.latency_p99_us, limits.p99_latency_budget_us
            ));
        }
        let low_rate = ratio(self.low_confidence, self.decoded);
        if low_rate > limits.low_confidence_rate {
            degraded.push(format!(
                "{:.1}% of results below the similarity threshold (limit {:.1}%)",
                low_rate * 100.0,
                limits.low_confidence_rate * 100.0
            ));
        }
        let status = if !unhealthy.is_empty() {
            HealthStatus::Unhealthy
        } else if !degraded.is_empty() {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };
        unhealthy.extend(degraded);
        Health {
            status,
            reasons: unhealthy,
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Nearest-rank percentile of sorted values; 0 for none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_and_health() {
        let m = Monitor::default();
        for i in 1..=100 {
            m.record_success(Duration::from_micros(i), 0.5, i > 90);
        }
        let s = m.statistics(3, 1);
        assert_eq!(s.latency_p50_us.round(), 50.0);
        assert_eq!(s.latency_p99_us.round(), 99.0);
        assert_eq!(s.cache_hit_rate, 0.75);
        let limits = HealthConfig::default();
        assert_eq!(s.health(&limits, vec![]).status, HealthStatus::Healthy);
        for _ in 0..20 {
            m.record_error(Duration::from_micros(1));
        }
        let h = m.statistics(0, 0).health(&limits, vec![]);
        assert_eq!(h.status, HealthStatus::Degraded);
        assert!(h.reasons[0].contains("error rate"));
        let h = m
            .statistics(0, 0)
            .health(&limits, vec!["empty bank".into()]);
        assert_eq!(h.status, HealthStatus::Unhealthy);
    }
}
