//! `--since` / `--until` (durations ago or points in time) and how times are shown
//! (local time by default, UTC with `--utc`).

use std::cell::RefCell;

use dnsq_recorder::store::schema::{self, NS_PER_HOUR};
use jiff::{Span, Timestamp, Zoned, civil, tz::TimeZone};

/// A `--since` / `--until` value as given; [`TimeArg::resolve`] makes it a time.
#[derive(Clone, Debug)]
pub enum TimeArg {
    Now,
    /// `1h`, `30m`, `7d`, `90s`, `1h30m`, `P1D`: that long ago.
    Ago(Span),
    /// With `Z` or an offset.
    At(Timestamp),
    /// Without an offset: in the display time zone (local, or UTC with `--utc`).
    Civil(civil::DateTime),
    /// `10:00`: today.
    Today(civil::Time),
}

const EXPECTED: &str = "expected a duration ago (90s, 30m, 1h, 7d, 1h30m), a time \
     (2026-11-24T10:00, 2026-11-24 10:00:00, 2026-11-24, 10:00, with Z or +01:00 for \
     an explicit offset) or `now`";

/// clap value parser for `--since` / `--until`.
pub fn parse(text: &str) -> Result<TimeArg, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(TimeArg::Now);
    }
    if let Ok(span) = text.parse::<Span>() {
        if span.is_negative() {
            return Err(format!("`{text}`: a duration ago cannot be negative"));
        }
        return Ok(TimeArg::Ago(span));
    }
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(TimeArg::At(ts));
    }
    if let Ok(dt) = text.parse::<civil::DateTime>() {
        return Ok(TimeArg::Civil(dt));
    }
    if let Ok(time) = text.parse::<civil::Time>() {
        return Ok(TimeArg::Today(time));
    }
    Err(format!("`{text}`: {EXPECTED}"))
}

impl TimeArg {
    /// Unix nanoseconds, relative to `now` (which carries the time zone).
    pub fn resolve(&self, now: &Zoned) -> Result<i64, String> {
        let zoned = match self {
            TimeArg::Now => now.clone(),
            TimeArg::Ago(span) => now.checked_sub(*span).map_err(|e| e.to_string())?,
            TimeArg::At(ts) => return Ok(ts.as_nanosecond() as i64),
            TimeArg::Civil(dt) => dt
                .to_zoned(now.time_zone().clone())
                .map_err(|e| e.to_string())?,
            TimeArg::Today(time) => now
                .date()
                .to_datetime(*time)
                .to_zoned(now.time_zone().clone())
                .map_err(|e| e.to_string())?,
        };
        Ok(zoned.timestamp().as_nanosecond() as i64)
    }
}

/// How times are shown.
#[derive(Clone)]
pub struct Clock {
    tz: TimeZone,
    utc: bool,
    /// The second [`Clock::rfc3339`] last formatted, split around the fraction
    /// (`2026-11-24T11:00:00`, `+01:00`): exports format millions of times in
    /// few distinct seconds.
    last_second: RefCell<Option<(i64, String, String)>>,
}

impl Clock {
    pub fn new(utc: bool) -> Self {
        Self {
            tz: if utc {
                TimeZone::UTC
            } else {
                TimeZone::system()
            },
            utc,
            last_second: RefCell::new(None),
        }
    }

    pub fn now(&self) -> Zoned {
        Timestamp::now().to_zoned(self.tz.clone())
    }

    fn zoned(&self, ns: i64) -> Option<Zoned> {
        Timestamp::from_nanosecond(i128::from(ns))
            .ok()
            .map(|ts| ts.to_zoned(self.tz.clone()))
    }

    /// For tables: `2026-11-24 10:00:00` (with a `Z` in UTC).
    pub fn short(&self, ns: i64) -> String {
        self.format(ns, "%Y-%m-%d %H:%M:%S")
    }

    /// `2026-11-24 10:00`.
    pub fn minutes(&self, ns: i64) -> String {
        self.format(ns, "%Y-%m-%d %H:%M")
    }

    /// For `tail`: `2026-11-24 10:00:00.123`.
    pub fn precise(&self, ns: i64) -> String {
        self.format(ns, "%Y-%m-%d %H:%M:%S%.3f")
    }

    fn format(&self, ns: i64, pattern: &str) -> String {
        match self.zoned(ns) {
            Some(z) if self.utc => format!("{}Z", z.strftime(pattern)),
            Some(z) => z.strftime(pattern).to_string(),
            None => ns.to_string(),
        }
    }

    /// For JSON and CSV: RFC 3339 with nanoseconds and the offset
    /// (`2026-11-24T11:00:00.123456789+01:00`, or `Z` with `--utc`).
    pub fn rfc3339(&self, ns: i64) -> String {
        let (second, fraction) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
        let mut cache = self.last_second.borrow_mut();
        if cache.as_ref().is_none_or(|(cached, ..)| *cached != second) {
            let Ok(ts) = Timestamp::from_second(second) else {
                return ns.to_string();
            };
            let whole = if self.utc {
                format!("{ts:.0}")
            } else {
                format!("{:.0}", ts.display_with_offset(self.tz.to_offset(ts)))
            };
            // `YYYY-MM-DDTHH:MM:SS` and the offset (`Z`, `+01:00`).
            let split = whole
                .char_indices()
                .skip(19)
                .find(|(_, c)| matches!(c, 'Z' | '+' | '-'))
                .map_or(whole.len(), |(i, _)| i);
            let (time, offset) = whole.split_at(split);
            *cache = Some((second, time.to_owned(), offset.to_owned()));
        }
        match cache.as_ref() {
            Some((_, time, offset)) => format!("{time}.{fraction:09}{offset}"),
            None => ns.to_string(),
        }
    }
}

/// The time window of a command: `since_ns <= time < until_ns`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    pub since_ns: Option<i64>,
    pub until_ns: Option<i64>,
}

impl Window {
    pub fn resolve(
        since: Option<&TimeArg>,
        until: Option<&TimeArg>,
        clock: &Clock,
    ) -> Result<Self, String> {
        let now = clock.now();
        let since_ns = since.map(|t| t.resolve(&now)).transpose()?;
        let until_ns = until.map(|t| t.resolve(&now)).transpose()?;
        if let (Some(since), Some(until)) = (since_ns, until_ns)
            && since >= until
        {
            return Err(format!(
                "--since ({}) is not before --until ({})",
                clock.short(since),
                clock.short(until)
            ));
        }
        Ok(Self { since_ns, until_ns })
    }

    /// The fact tables' hours that cover the window, both included: the window
    /// rounded out to whole hours.
    pub fn hours(&self) -> (i64, i64) {
        (
            self.since_ns
                .map_or(i64::MIN, |ns| ns.div_euclid(NS_PER_HOUR)),
            self.until_ns
                .map_or(i64::MAX, |ns| ns.saturating_sub(1).div_euclid(NS_PER_HOUR)),
        )
    }

    /// How a `lookups` query should name the `hour` column (followed by its
    /// range): `+hour` (the same value) keeps SQLite from ranging over an index
    /// on hour; over a narrow window the column comes after
    /// `process_id IN (every process) AND` ([`schema::LOOKUPS_BY_PROCESS_HOUR`]),
    /// which makes SQLite range over each process's hours in the (process_id,
    /// hour) index (schema 16 has no index on hour alone). `span` is the first
    /// and last hour the table holds (`None`: empty). A window over at least a
    /// fifth of them reads so many rows that one pass over the table in key
    /// order beats the index, which costs a lookup of the row for each entry
    /// (`top processes` over all 30 days of the benchmark's history: 1.2 s
    /// scanning, 4.5–6.5 s through an index).
    pub fn hour_column(&self, span: Option<(i64, i64)>) -> &'static str {
        if self.is_wide(span) {
            "+hour"
        } else {
            schema::LOOKUPS_BY_PROCESS_HOUR
        }
    }

    /// Whether the window covers at least a fifth of `span`, the first and last
    /// hour a fact table holds (`None`: empty): wide enough that reading the
    /// table whole beats ranging over an index on hour.
    pub fn is_wide(&self, span: Option<(i64, i64)>) -> bool {
        let Some((oldest, newest)) = span else {
            return false;
        };
        let (first, last) = self.hours();
        let covered = last
            .min(newest)
            .saturating_sub(first.max(oldest))
            .saturating_add(1)
            .max(0);
        let held = newest.saturating_sub(oldest).saturating_add(1);
        covered.saturating_mul(5) >= held
    }

    /// "in the recorded history", "since …", "between … and …".
    pub fn describe(&self, clock: &Clock) -> String {
        match (self.since_ns, self.until_ns) {
            (None, None) => "in the recorded history".into(),
            (Some(s), None) => format!("since {}", clock.short(s)),
            (None, Some(u)) => format!("before {}", clock.short(u)),
            (Some(s), Some(u)) => format!("between {} and {}", clock.short(s), clock.short(u)),
        }
    }

    /// Like [`Window::describe`], for the fact tables: the bounds rounded out to
    /// whole hours.
    pub fn describe_hours(&self, clock: &Clock) -> String {
        let (first, last) = self.hours();
        Window {
            since_ns: self.since_ns.map(|_| first.saturating_mul(NS_PER_HOUR)),
            until_ns: self
                .until_ns
                .map(|_| last.saturating_add(1).saturating_mul(NS_PER_HOUR)),
        }
        .describe(clock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Zoned {
        text.parse().expect("zoned")
    }

    #[test]
    fn durations_ago() {
        let now = at("2026-11-24T12:00:00+00:00[UTC]");
        let ns = |text: &str| parse(text).expect(text).resolve(&now).expect(text);
        let noon = now.timestamp().as_nanosecond() as i64;
        assert_eq!(ns("1h"), noon - 3_600_000_000_000);
        assert_eq!(ns("30m"), noon - 1_800_000_000_000);
        assert_eq!(ns("90s"), noon - 90_000_000_000);
        assert_eq!(ns("7d"), noon - 7 * 86_400_000_000_000);
        assert_eq!(ns("now"), noon);
    }

    #[test]
    fn points_in_time() {
        let now = at("2026-11-24T12:00:00+01:00[Europe/Paris]");
        let ns = |text: &str| parse(text).expect(text).resolve(&now).expect(text);
        let utc_ten = "2026-11-24T10:00:00Z"
            .parse::<Timestamp>()
            .expect("ts")
            .as_nanosecond() as i64;
        assert_eq!(ns("2026-11-24T10:00:00Z"), utc_ten);
        // Civil times are in the display zone (Paris here: UTC+1).
        assert_eq!(ns("2026-11-24T11:00"), utc_ten);
        assert_eq!(ns("2026-11-24 11:00:00"), utc_ten);
        assert_eq!(ns("11:00"), utc_ten);
        assert_eq!(ns("2026-11-24 12:00+02:00"), utc_ten);
        assert!(parse("yesterday-ish").is_err());
        assert!(parse("-1h").is_err());
    }

    #[test]
    fn hours_round_out() {
        let h = NS_PER_HOUR;
        let window = Window {
            since_ns: Some(10 * h + 5),
            until_ns: Some(12 * h),
        };
        assert_eq!(window.hours(), (10, 11));
        let window = Window {
            since_ns: None,
            until_ns: Some(12 * h + 1),
        };
        assert_eq!(window.hours(), (i64::MIN, 12));
    }

    #[test]
    fn most_of_the_table_is_scanned_not_indexed() {
        let h = NS_PER_HOUR;
        let span = Some((100, 819)); // 720 hours: 30 days
        let window = |since: Option<i64>| Window {
            since_ns: since.map(|hour| hour * h),
            until_ns: None,
        };
        assert_eq!(window(None).hour_column(span), "+hour");
        // The last 7 days of 30: over a fifth.
        assert_eq!(window(Some(820 - 7 * 24)).hour_column(span), "+hour");
        // The last day.
        assert_eq!(
            window(Some(820 - 24)).hour_column(span),
            schema::LOOKUPS_BY_PROCESS_HOUR
        );
        // Entirely after the table's hours: nothing to read, through the index.
        assert_eq!(
            window(Some(900)).hour_column(span),
            schema::LOOKUPS_BY_PROCESS_HOUR
        );
        assert_eq!(
            window(None).hour_column(None),
            schema::LOOKUPS_BY_PROCESS_HOUR
        );
    }

    #[test]
    fn rfc3339_in_utc_and_offsets() {
        let clock = Clock::new(true);
        assert_eq!(
            clock.rfc3339(1_500_000_000),
            "1970-01-01T00:00:01.500000000Z"
        );
        assert_eq!(
            clock.rfc3339(1_500_000_001),
            "1970-01-01T00:00:01.500000001Z"
        );
        assert_eq!(clock.rfc3339(-1), "1969-12-31T23:59:59.999999999Z");
        let plus_one = Clock {
            tz: TimeZone::fixed(jiff::tz::offset(1)),
            utc: false,
            last_second: RefCell::new(None),
        };
        assert_eq!(
            plus_one.rfc3339(1_795_514_400_000_000_007),
            "2026-11-24T11:00:00.000000007+01:00"
        );
        let minus_five = Clock {
            tz: TimeZone::fixed(jiff::tz::offset(-5)),
            utc: false,
            last_second: RefCell::new(None),
        };
        assert_eq!(
            minus_five.rfc3339(1_795_514_400_000_000_007),
            "2026-11-24T05:00:00.000000007-05:00"
        );
        assert_eq!(clock.short(0), "1970-01-01 00:00:00Z");
    }
}
