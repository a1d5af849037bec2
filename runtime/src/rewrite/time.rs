//! Fresh values for timestamp fields, by the format their role names (`@timestamp(filetime)`).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::codec::Value;

/// Seconds from 1601-01-01 (the FILETIME epoch) to 1970-01-01.
const FILETIME_TO_UNIX: u64 = 11_644_473_600;
/// FILETIME counts 100 ns ticks.
const FILETIME_PER_SEC: u64 = 10_000_000;

/// `now` in the field's format; `None` for a format kept as recorded (text dates).
pub fn fresh_timestamp(format: &str, now: SystemTime) -> Option<Value> {
    let d = now.duration_since(UNIX_EPOCH).ok()?;
    let secs = d.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let of_day = secs % 86_400;
    let v = match format {
        "filetime" => {
            (secs + FILETIME_TO_UNIX) * FILETIME_PER_SEC + u64::from(d.subsec_nanos() / 100)
        }
        "unix" => secs,
        "tod_hours" => of_day / 3600,
        "tod_mins" => of_day / 60 % 60,
        "tod_secs" => of_day % 60,
        "tod_hunds" => u64::from(d.subsec_millis() / 10),
        "tod_day" => day,
        "tod_month" => month,
        "tod_year" => year,
        // 1970-01-01 was a Thursday; Sunday is 0.
        "tod_weekday" => (secs / 86_400 + 4) % 7,
        _ => return None,
    };
    Some(Value::Uint(v))
}

/// A fresh timestamp at the precision of the value it replaces: a clock field the recorded
/// server left at 0 stays 0 (Samba's TIME_OF_DAY_INFO never counts hundredths; a fresh `.16`
/// would tell a replay from the server it was recorded from), and a FILETIME it kept to the
/// whole second stays whole (Samba's account times: samrdump prints a fraction otherwise).
pub fn at_recorded_precision(format: &str, recorded: &Value, fresh: Value) -> Value {
    match (format, recorded, fresh) {
        ("tod_hunds", Value::Uint(0), _) => Value::Uint(0),
        ("filetime", Value::Uint(r), Value::Uint(f)) if r % FILETIME_PER_SEC == 0 => {
            Value::Uint(f - f % FILETIME_PER_SEC)
        }
        (_, _, fresh) => fresh,
    }
}

/// Year, month (1-12) and day (1-31) of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (u64, u64, u64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as u64, month as u64, day as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats() {
        // 2026-11-23 11:35:11 UTC, a Monday.
        let t = UNIX_EPOCH + Duration::from_secs(1_795_433_711);
        let get = |f| match fresh_timestamp(f, t) {
            Some(Value::Uint(v)) => v,
            other => panic!("{f}: {other:?}"),
        };
        assert_eq!(
            (get("tod_year"), get("tod_month"), get("tod_day")),
            (2026, 11, 23)
        );
        assert_eq!(
            (get("tod_hours"), get("tod_mins"), get("tod_secs")),
            (11, 35, 11)
        );
        assert_eq!(get("tod_weekday"), 1);
        assert_eq!(
            get("filetime"),
            (1_795_433_711 + 11_644_473_600) * 10_000_000
        );
        assert_eq!(fresh_timestamp("rfc5322", t), None);
    }

    #[test]
    fn hundredths_keep_the_recorded_precision() {
        // 0.74 s past the second: the clock has hundredths to give.
        let t = UNIX_EPOCH + Duration::from_millis(1_795_433_711_740);
        let fresh = |f| fresh_timestamp(f, t).unwrap();
        assert_eq!(fresh("tod_hunds"), Value::Uint(74));
        // Recorded from Samba (always 0): 0 again.
        assert_eq!(
            at_recorded_precision("tod_hunds", &Value::Uint(0), fresh("tod_hunds")),
            Value::Uint(0)
        );
        // Recorded from a server that counts them: the fresh value.
        assert_eq!(
            at_recorded_precision("tod_hunds", &Value::Uint(16), fresh("tod_hunds")),
            Value::Uint(74)
        );
        // A FILETIME recorded to the whole second (Samba's PasswordLastSet): whole seconds.
        let whole = (1_795_433_711 + FILETIME_TO_UNIX) * FILETIME_PER_SEC;
        let recorded = Value::Uint(whole - 3600 * FILETIME_PER_SEC);
        assert_eq!(
            at_recorded_precision("filetime", &recorded, fresh("filetime")),
            Value::Uint(whole)
        );
        // With ticks below the second: the fresh ticks.
        assert_eq!(
            at_recorded_precision("filetime", &Value::Uint(whole + 1), fresh("filetime")),
            Value::Uint(whole + 7_400_000)
        );
        // Other fields are always fresh, even when recorded as 0 (midnight's hour).
        assert_eq!(
            at_recorded_precision("tod_hours", &Value::Uint(0), fresh("tod_hours")),
            Value::Uint(11)
        );
    }
}
