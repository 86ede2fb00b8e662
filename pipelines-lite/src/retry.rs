//! `retryPolicy` with KFP's defaults (back-off 0 s, factor 2.0, cap 3600 s). The cap bounds each
//! delay, as KFP's Argo backend uses `backoffMaxDuration`. Pure: the scheduler asks for the
//! delay before attempt `n` and sleeps through its clock.

use std::time::Duration;

use crate::spec::RetryPolicySpec;

/// A retry policy ready to use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The first delay.
    pub backoff: Duration,
    /// The factor between successive delays.
    pub factor: f64,
    /// The cap on each delay.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 0,
            backoff: Duration::ZERO,
            factor: 2.0,
            max_backoff: Duration::from_secs(3600),
        }
    }
}

/// A `retryPolicy` field Kiln cannot read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("retryPolicy.{field}: {message}")]
pub struct RetryPolicyError {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl RetryPolicy {
    /// Reads the spec, filling KFP's defaults.
    pub fn from_spec(spec: &RetryPolicySpec) -> Result<Self, RetryPolicyError> {
        let d = Self::default();
        let duration = |field: &'static str, text: &Option<String>, default: Duration| match text {
            None => Ok(default),
            Some(t) => parse_duration(t).map_err(|message| RetryPolicyError { field, message }),
        };
        let factor = spec.backoff_factor.unwrap_or(d.factor);
        if !(factor.is_finite() && factor > 0.0) {
            return Err(RetryPolicyError {
                field: "backoffFactor",
                message: format!("{factor} is not a positive number"),
            });
        }
        Ok(Self {
            max_retries: spec.max_retry_count,
            backoff: duration("backoffDuration", &spec.backoff_duration, d.backoff)?,
            factor,
            max_backoff: duration(
                "backoffMaxDuration",
                &spec.backoff_max_duration,
                d.max_backoff,
            )?,
        })
    }

    /// The wait before retry number `retry` (1 for the first retry): `backoff * factor^(retry-1)`,
    /// capped by `max_backoff`.
    pub fn delay_before(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(1000) as i32;
        let secs = self.backoff.as_secs_f64() * self.factor.powi(exp);
        let cap = self.max_backoff.as_secs_f64();
        Duration::from_secs_f64(if secs.is_finite() { secs.min(cap) } else { cap })
    }
}

/// KFP's durations (`backoffDuration: 1s`) in Kiln's one duration grammar (Go's, which
/// also reads protobuf's JSON form `1.5s`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    kiln_api::duration::parse_duration(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kfp_defaults_apply_when_fields_are_absent() {
        let p = RetryPolicy::from_spec(&RetryPolicySpec {
            max_retry_count: 2,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            p,
            RetryPolicy {
                max_retries: 2,
                ..RetryPolicy::default()
            }
        );
        assert_eq!(p.delay_before(1), Duration::ZERO);
    }

    #[test]
    fn delays_grow_by_the_factor_and_stop_at_the_cap() {
        let p = RetryPolicy::from_spec(&RetryPolicySpec {
            max_retry_count: 5,
            backoff_duration: Some("1s".into()),
            backoff_factor: Some(2.0),
            backoff_max_duration: Some("5s".into()),
        })
        .unwrap();
        let delays: Vec<u64> = (1..=5).map(|n| p.delay_before(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
    }

    #[test]
    fn go_durations_parse_and_nonsense_names_its_field() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        let err = RetryPolicy::from_spec(&RetryPolicySpec {
            backoff_duration: Some("soon".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.field, "backoffDuration");
    }
}
