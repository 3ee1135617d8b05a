//! Standard five-field cron schedules as the CronJob controller parses them
//! (`cron.ParseStandard` of `github.com/robfig/cron/v3`): minute, hour, day of month, month,
//! day of week; `*`, `?`, lists, ranges, steps, month and weekday names, and the `@yearly`,
//! `@monthly`, `@weekly`, `@daily`, `@hourly` descriptors. Times are UTC.

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

/// Why a schedule could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// Not five fields and not a known descriptor.
    #[error("expected exactly 5 fields, found {found}: {schedule:?}")]
    FieldCount {
        /// How many fields there were.
        found: usize,
        /// The schedule as written.
        schedule: String,
    },
    /// A field that is not a number, name, range or step within bounds.
    #[error("invalid cron field {field:?}")]
    Field {
        /// The offending field.
        field: String,
    },
}

/// A parsed schedule: the allowed values of each field as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    /// `*` or `?` in day of month or day of week: then both must match, else either.
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn parse_value(s: &str, names: &[&str], offset: u32) -> Option<u32> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return u32::try_from(i).ok().map(|i| i + offset);
    }
    s.parse().ok()
}

/// Parses one field into a bit set; returns (bits, was `*`/`?`).
fn parse_field(
    field: &str,
    min: u32,
    max: u32,
    names: &[&str],
    name_offset: u32,
) -> Result<(u64, bool), CronError> {
    let err = || CronError::Field {
        field: field.to_owned(),
    };
    let mut bits = 0u64;
    let mut star = false;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s.parse::<u32>().map_err(|_| err())?)),
            None => (part, None),
        };
        let (mut lo, mut hi, is_star) = if range == "*" || range == "?" {
            (min, max, true)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                parse_value(a, names, name_offset).ok_or_else(err)?,
                parse_value(b, names, name_offset).ok_or_else(err)?,
                false,
            )
        } else {
            let v = parse_value(range, names, name_offset).ok_or_else(err)?;
            (v, v, false)
        };
        // "N/step" means "N-max/step".
        if step.is_some() && !is_star && !range.contains('-') {
            hi = max;
        }
        let step = step.unwrap_or(1);
        if step == 0 || lo < min || hi > max || lo > hi {
            return Err(err());
        }
        star |= is_star && step == 1;
        while lo <= hi {
            bits |= 1 << lo;
            lo += step;
        }
    }
    Ok((bits, star))
}

impl Schedule {
    /// Parses a standard cron expression.
    ///
    /// # Errors
    /// Fails on a wrong number of fields or a field out of range.
    pub fn parse(schedule: &str) -> Result<Self, CronError> {
        let expanded = match schedule.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError::FieldCount {
                found: fields.len(),
                schedule: schedule.to_owned(),
            });
        }
        let (minute, _) = parse_field(fields[0], 0, 59, &[], 0)?;
        let (hour, _) = parse_field(fields[1], 0, 23, &[], 0)?;
        let (dom, dom_star) = parse_field(fields[2], 1, 31, &[], 0)?;
        let (month, _) = parse_field(fields[3], 1, 12, &MONTHS, 1)?;
        let (dow, dow_star) = parse_field(fields[4], 0, 6, &DAYS, 0)?;
        Ok(Self {
            minute,
            hour,
            dom,
            month,
            dow,
            dom_star,
            dow_star,
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = self.dom & (1 << date.day()) != 0;
        let dow_index = match date.weekday() {
            Weekday::Sunday => 0,
            Weekday::Monday => 1,
            Weekday::Tuesday => 2,
            Weekday::Wednesday => 3,
            Weekday::Thursday => 4,
            Weekday::Friday => 5,
            Weekday::Saturday => 6,
        };
        let dow = self.dow & (1 << dow_index) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first scheduled time strictly after `after` (within five years), in UTC.
    #[must_use]
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = after.to_zoned(TimeZone::UTC).datetime();
        let mut date = start.date();
        for _ in 0..(5 * 366) {
            let month_ok = self.month & (1 << date.month()) != 0;
            if month_ok && self.day_matches(date) {
                for hour in 0..24i8 {
                    if self.hour & (1 << hour) == 0 {
                        continue;
                    }
                    for minute in 0..60i8 {
                        if self.minute & (1 << minute) == 0 {
                            continue;
                        }
                        let t = date.at(hour, minute, 0, 0);
                        if t > start {
                            return t.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp());
                        }
                    }
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// The latest scheduled time in `(after, now]`, if any (`mostRecentScheduleTime`).
    #[must_use]
    pub fn most_recent(&self, after: Timestamp, now: Timestamp) -> Option<Timestamp> {
        let mut t = self.next_after(after)?;
        if t > now {
            return None;
        }
        while let Some(next) = self.next_after(t) {
            if next > now {
                break;
            }
            t = next;
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn steps_ranges_lists_and_names() {
        let s = Schedule::parse("*/15 9-17 * * mon-fri").unwrap();
        assert_eq!(
            s.next_after(ts("2024-01-05T16:50:00Z")),
            Some(ts("2024-01-05T17:00:00Z"))
        );
        // Friday 17:45 is the last of the week; next is Monday 09:00.
        assert_eq!(
            s.next_after(ts("2024-01-05T17:45:00Z")),
            Some(ts("2024-01-08T09:00:00Z"))
        );
        let s = Schedule::parse("0 3 1,15 jan,jul *").unwrap();
        assert_eq!(
            s.next_after(ts("2024-01-01T03:00:00Z")),
            Some(ts("2024-01-15T03:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2024-01-15T03:00:00Z")),
            Some(ts("2024-07-01T03:00:00Z"))
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_restricted() {
        // 13th of the month or any Friday.
        let s = Schedule::parse("0 0 13 * 5").unwrap();
        assert_eq!(
            s.next_after(ts("2024-01-01T00:00:00Z")),
            Some(ts("2024-01-05T00:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2024-01-12T00:00:00Z")),
            Some(ts("2024-01-13T00:00:00Z"))
        );
    }

    #[test]
    fn descriptors_and_most_recent() {
        let s = Schedule::parse("@hourly").unwrap();
        assert_eq!(
            s.most_recent(ts("2024-01-01T00:00:00Z"), ts("2024-01-01T03:30:00Z")),
            Some(ts("2024-01-01T03:00:00Z"))
        );
        assert_eq!(
            s.most_recent(ts("2024-01-01T03:00:00Z"), ts("2024-01-01T03:30:00Z")),
            None
        );
    }

    #[test]
    fn invalid_schedules_are_errors() {
        assert!(matches!(
            Schedule::parse("* * * *"),
            Err(CronError::FieldCount { found: 4, .. })
        ));
        assert!(matches!(
            Schedule::parse("61 * * * *"),
            Err(CronError::Field { .. })
        ));
        assert!(matches!(
            Schedule::parse("* * * * 7"),
            Err(CronError::Field { .. })
        ));
        assert!(matches!(
            Schedule::parse("*/0 * * * *"),
            Err(CronError::Field { .. })
        ));
    }
}
