//! Wall-clock helpers: Unix seconds and KlickTipp's `dd.mm.yyyy hh:mm:ss` format.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or(0)
}

/// UTC, e.g. `28.12.2024 22:52:09`.
pub(crate) fn format_datetime(unix: u64) -> String {
    let (year, month, day) = civil_from_days((unix / 86_400) as i64);
    let seconds = unix % 86_400;
    format!("{day:02}.{month:02}.{year:04} {:02}:{:02}:{:02}", seconds / 3600, seconds % 3600 / 60, seconds % 60)
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(days_since_epoch: i64) -> (i64, u32, u32) {
    let z = days_since_epoch + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::format_datetime;

    #[test]
    fn formats_like_klicktipp() {
        assert_eq!(format_datetime(0), "01.01.1970 00:00:00");
        assert_eq!(format_datetime(1_735_426_329), "28.12.2024 22:52:09");
        assert_eq!(format_datetime(951_782_400), "29.02.2000 00:00:00");
    }
}
