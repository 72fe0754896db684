//! Schedules: a five-field cron expression (what Kubernetes CronJobs take), checked with
//! the `croner` parser, and its Quartz form for Databricks jobs (seconds first, `?` in
//! the day field that is not restricted, days of the week as names because Quartz
//! numbers them 1–7 from Sunday where cron numbers them 0–6).

/// A checked five-field cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    fields: [String; 5],
}

const FIELD_NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
const NAMES: [&str; 19] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", "SUN",
    "MON", "TUE", "WED", "THU", "FRI", "SAT",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Cron {
    /// Parse and check; the error says what is wrong (never panics).
    pub fn parse(text: &str) -> Result<Cron, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "`{text}` is not a cron expression: it needs five fields ({}), found {}",
                FIELD_NAMES.join(" "),
                parts.len()
            ));
        }
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '*' | ',' | '-' | '/' | ' ')))
        {
            return Err(format!(
                "`{text}` is not a portable cron expression: `{c}` is not allowed (use numbers, names, `*`, `,`, `-`, `/`)"
            ));
        }
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build();
        parser
            .parse(text)
            .map_err(|e| format!("`{text}` is not a cron expression: {e}"))?;
        let upper = text.to_ascii_uppercase();
        let without_names = NAMES.iter().fold(upper, |t, n| t.replace(n, ""));
        if without_names.contains('L') || without_names.contains('W') {
            return Err(format!(
                "`{text}`: `L` and `W` are not portable cron (Kubernetes does not take them)"
            ));
        }
        Ok(Cron {
            fields: [0, 1, 2, 3, 4].map(|i| parts[i].to_ascii_uppercase()),
        })
    }

    /// The five-field text (Kubernetes `schedule`).
    pub fn text(&self) -> String {
        self.fields.join(" ")
    }

    /// The Quartz expression Databricks takes (`sec min hour dom month dow`).
    pub fn quartz(&self) -> Result<String, String> {
        let [min, hour, dom, month, dow] = &self.fields;
        let dom_any = dom == "*";
        let dow_any = dow == "*";
        if !dom_any && !dow_any {
            return Err(format!(
                "`{}` restricts both the day of the month and the day of the week; Databricks (Quartz) cannot express that, restrict one",
                self.text()
            ));
        }
        let (dom, dow) = if dow_any {
            (dom.clone(), "?".to_string())
        } else {
            ("?".to_string(), weekday_names(dow)?)
        };
        Ok(format!("0 {min} {hour} {dom} {month} {dow}"))
    }
}

/// Expand a cron day-of-week field into Quartz day names (`1-5` → `MON-FRI` as a list).
fn weekday_names(field: &str) -> Result<String, String> {
    let mut days = [false; 7];
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<usize>()
                    .map_err(|_| format!("day-of-week step `{s}` is not a number"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err("day-of-week step 0".into());
        }
        let (lo, hi) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            (day_number(a)?, day_number(b)?)
        } else {
            let d = day_number(range)?;
            (d, if part.contains('/') { 6 } else { d })
        };
        // 7 is Sunday too; a range ending at 7 wraps to 0.
        let mut d = lo;
        while d <= hi.max(lo) {
            days[d % 7] = true;
            d += step;
        }
    }
    if days.iter().all(|d| *d) {
        return Ok("*".into());
    }
    Ok(DAYS
        .iter()
        .zip(days)
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(","))
}

fn day_number(s: &str) -> Result<usize, String> {
    if let Ok(n) = s.parse::<usize>() {
        return if n <= 7 {
            Ok(n)
        } else {
            Err(format!("day of week `{s}` is not 0–7"))
        };
    }
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("day of week `{s}` is not a number or a name (SUN…SAT)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartz_forms() {
        let q = |s: &str| Cron::parse(s).and_then(|c| c.quartz());
        assert_eq!(q("30 2 * * *").unwrap(), "0 30 2 * * ?");
        assert_eq!(q("0 6 * * 1-5").unwrap(), "0 0 6 ? * MON,TUE,WED,THU,FRI");
        assert_eq!(q("0 6 * * 0,7").unwrap(), "0 0 6 ? * SUN");
        assert_eq!(q("0 6 * * sat").unwrap(), "0 0 6 ? * SAT");
        assert_eq!(q("0 6 * * */2").unwrap(), "0 0 6 ? * SUN,TUE,THU,SAT");
        assert_eq!(q("15 */4 1 * *").unwrap(), "0 15 */4 1 * ?");
        assert_eq!(q("0 6 * * 0-7").unwrap(), "0 0 6 ? * *");
        assert!(q("0 6 1 * 1").unwrap_err().contains("both"));
    }

    #[test]
    fn not_cron() {
        for bad in [
            "daily",
            "0 25 * * *",
            "* * * *",
            "0 0 * * * *",
            "0 0 ? * MON",
            "0 0 L * *",
            "61 1 * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(Cron::parse("30  2 * * mon").unwrap().text(), "30 2 * * MON");
    }
}
