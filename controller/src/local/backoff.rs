//! Exponential back-off between replacements of crashed replicas.

use std::time::Duration;

/// The delay before the `attempt`-th consecutive replacement (1-based): `min * 2^(attempt-1)`,
/// capped at `max`; no delay for attempt 0.
pub(crate) fn delay(attempt: u32, min: Duration, max: Duration) -> Duration {
    if attempt == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
    min.checked_mul(factor).unwrap_or(max).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        let got: Vec<_> = (0..6).map(|n| delay(n, ms(100), ms(1000))).collect();
        assert_eq!(
            got,
            vec![ms(0), ms(100), ms(200), ms(400), ms(800), ms(1000)]
        );
        assert_eq!(delay(80, ms(100), ms(1000)), ms(1000));
    }
}
