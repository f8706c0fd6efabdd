//! The range each duration setting must fall in, checked at load:
//! `(field, least, most)`. A value outside it is an error naming the field
//! and the range; none of them can make the runtime's arithmetic overflow.
//!
//! | field | range |
//! | --- | --- |
//! | `health_check_interval` | 100µs ..= 1min |
//! | `groups[].spin_before_park` | 0 ..= 1s |
//! | `wait_spin` | 0 ..= 1s |
//! | `groups[].call_timeout` | 1ms ..= 7days |
//! | `groups[].scaling.queue_wait_target` | 1µs ..= 1h |
//! | `groups[].scaling.idle_timeout` | 1ms ..= 7days |
//! | `groups[].breaker.recovery_timeout` | 1ms ..= 1day |
//! | `groups[].breaker.max_backoff` | 1ms ..= 1day |
//! | `groups[].breaker.window_duration` | 10ms ..= 1h |
//! | `groups[].breaker.slow_call_duration` | 1µs ..= 1h |
//! | `groups[].breaker.healthy_reset_after` | 1ms ..= 1day |
//! | `retry.initial_backoff` | 0 ..= 1h |
//! | `retry.max_backoff` | 0 ..= 1h |
//! | `groups[].batching.max_queue_delay` | 0 ..= 1s |
//! | `memory.sample_interval` | 1ms ..= 1h |
//! | `affinity.max_wait` | 0 ..= 10s |

#![forbid(unsafe_code)]

use std::ops::RangeInclusive;
use std::time::Duration;

use super::ConfigError;

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// `health_check_interval`.
pub const HEALTH_CHECK_INTERVAL: RangeInclusive<Duration> = Duration::from_micros(100)..=ms(60_000);
/// `groups[].spin_before_park`.
pub const SPIN_BEFORE_PARK: RangeInclusive<Duration> = Duration::ZERO..=ms(1000);
/// `wait_spin`.
pub const WAIT_SPIN: RangeInclusive<Duration> = Duration::ZERO..=ms(1000);
/// `groups[].call_timeout`.
pub const CALL_TIMEOUT: RangeInclusive<Duration> = ms(1)..=Duration::from_secs(7 * 24 * 3600);
/// `groups[].scaling.queue_wait_target`.
pub const QUEUE_WAIT_TARGET: RangeInclusive<Duration> = Duration::from_micros(1)..=HOUR;
/// `groups[].scaling.idle_timeout`.
pub const IDLE_TIMEOUT: RangeInclusive<Duration> = ms(1)..=Duration::from_secs(7 * 24 * 3600);
/// `groups[].breaker.recovery_timeout` and `groups[].breaker.max_backoff`.
pub const BREAKER_COOLDOWN: RangeInclusive<Duration> = ms(1)..=DAY;
/// `retry.initial_backoff` and `retry.max_backoff`.
pub const RETRY_BACKOFF: RangeInclusive<Duration> = Duration::ZERO..=HOUR;
/// `groups[].breaker.window_duration`.
pub const BREAKER_WINDOW: RangeInclusive<Duration> = ms(10)..=HOUR;
/// `groups[].breaker.slow_call_duration`.
pub const SLOW_CALL: RangeInclusive<Duration> = Duration::from_micros(1)..=HOUR;
/// `groups[].breaker.healthy_reset_after`.
pub const BREAKER_HEALTHY_RESET: RangeInclusive<Duration> = ms(1)..=DAY;
/// `groups[].batching.max_queue_delay`.
pub const MAX_QUEUE_DELAY: RangeInclusive<Duration> = Duration::ZERO..=ms(1000);
/// `memory.sample_interval`.
pub const SAMPLE_INTERVAL: RangeInclusive<Duration> = ms(1)..=HOUR;

/// `affinity.max_wait`.
pub const AFFINITY_MAX_WAIT: RangeInclusive<Duration> = Duration::ZERO..=ms(10_000);

/// Checks a duration setting against its range; the error names the field,
/// the value and the range in the units YAML takes (`1h`, `250ms`).
pub(crate) fn check_duration(
    field: impl FnOnce() -> String,
    value: Duration,
    range: RangeInclusive<Duration>,
) -> Result<(), ConfigError> {
    if range.contains(&value) {
        return Ok(());
    }
    let show = |d: Duration| {
        if d.is_zero() {
            "0s".to_owned()
        } else if d > Duration::from_secs(1000 * 365 * 24 * 3600) {
            format!("{}s", d.as_secs())
        } else {
            humantime_serde::re::humantime::format_duration(d).to_string()
        }
    };
    Err(ConfigError::new(
        field(),
        format!(
            "{} is outside {}..={}",
            show(value),
            show(*range.start()),
            show(*range.end())
        ),
    ))
}

/// Checks a count setting against `least..=most`.
pub(crate) fn check_count<T: PartialOrd + std::fmt::Display + Copy>(
    field: impl FnOnce() -> String,
    value: T,
    least: T,
    most: T,
) -> Result<(), ConfigError> {
    if value >= least && value <= most {
        Ok(())
    } else {
        Err(ConfigError::new(
            field(),
            format!("{value} is outside {least}..={most}"),
        ))
    }
}
