//! The Dashboard's chart of revocations per day, drawn on the server as an
//! SVG: no chart library, no script, and it obeys the CSP (presentation
//! attributes, no inline styles). Only numbers and dates this module formats
//! go into the markup.

use std::fmt::Write as _;

use chrono::NaiveDate;

/// One day's bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Day {
    pub date: NaiveDate,
    pub completed: u64,
    pub failed: u64,
}

const W: u32 = 640;
const H: u32 = 220;
const LEFT: u32 = 36;
const BOTTOM: u32 = 28;
const TOP: u32 = 10;
const OK: &str = "#2e9d57";
const BAD: &str = "#d64545";

/// A gridline step giving at most about four lines up to `max`.
fn step(max: u64) -> u64 {
    let mut s = 1;
    while max / s > 4 {
        s = match s.to_string().chars().next() {
            Some('1') => s * 2,
            Some('2') => s / 2 * 5,
            _ => s * 2,
        };
    }
    s
}

/// Stacked bars (completed below, failed above) of `days`, oldest first.
pub(crate) fn revocations_svg(days: &[Day]) -> String {
    let max = days
        .iter()
        .map(|d| d.completed + d.failed)
        .max()
        .unwrap_or(0)
        .max(1);
    let step = step(max);
    let top_value = max.div_ceil(step) * step;
    let plot_h = f64::from(H - BOTTOM - TOP);
    let plot_w = f64::from(W - LEFT - 8);
    let n = days.len().max(1) as f64;
    let slot = plot_w / n;
    let bar = (slot * 0.7).max(2.0);
    let y = |v: u64| f64::from(TOP) + plot_h - plot_h * v as f64 / top_value as f64;
    let total_completed: u64 = days.iter().map(|d| d.completed).sum();
    let total_failed: u64 = days.iter().map(|d| d.failed).sum();
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg"><title id="chart-title">Revocations per day</title><desc id="chart-desc">{} days: {total_completed} completed, {total_failed} failed.</desc>"##,
        days.len()
    );
    let mut v = 0;
    while v <= top_value {
        let gy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{gy:.1}" y2="{gy:.1}" stroke="#d9dde3" stroke-width="1"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#5b6470">{v}</text>"##,
            W - 8,
            LEFT - 6,
            gy + 4.0
        );
        v += step;
    }
    let label_every = (days.len() / 7).max(1);
    for (i, d) in days.iter().enumerate() {
        let x = f64::from(LEFT) + slot * i as f64 + (slot - bar) / 2.0;
        let base = y(0);
        let yc = y(d.completed);
        let yf = y(d.completed + d.failed);
        if d.completed > 0 {
            let _ = write!(
                s,
                r##"<rect x="{x:.1}" y="{yc:.1}" width="{bar:.1}" height="{:.1}" fill="{OK}"><title>{}: {} completed</title></rect>"##,
                base - yc,
                d.date.format("%b %d"),
                d.completed
            );
        }
        if d.failed > 0 {
            let _ = write!(
                s,
                r##"<rect x="{x:.1}" y="{yf:.1}" width="{bar:.1}" height="{:.1}" fill="{BAD}"><title>{}: {} failed</title></rect>"##,
                yc - yf,
                d.date.format("%b %d"),
                d.failed
            );
        }
        // Counted from the end, so today always has its date.
        if (days.len() - 1 - i).is_multiple_of(label_every) {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle" fill="#5b6470">{}</text>"##,
                x + bar / 2.0,
                H - 8,
                d.date.format("%b %d")
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gridline_steps_are_round_and_few() {
        assert_eq!(step(1), 1);
        assert_eq!(step(4), 1);
        assert_eq!(step(7), 2);
        assert_eq!(step(19), 5);
        assert_eq!(step(40), 10);
        assert_eq!(step(900), 200);
    }

    #[test]
    fn bars_stack_failed_on_completed_and_the_chart_says_its_totals() {
        let d = |day: u32, completed, failed| Day {
            date: NaiveDate::from_ymd_opt(2025, 3, day).unwrap(),
            completed,
            failed,
        };
        let svg = revocations_svg(&[d(1, 0, 0), d(2, 3, 1), d(3, 0, 2)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("3 days: 3 completed, 3 failed."));
        assert_eq!(svg.matches("<rect").count(), 3, "{svg}");
        assert!(svg.contains("Mar 02: 3 completed"));
        assert!(svg.contains("Mar 03: 2 failed"));
        assert!(!svg.contains("style="), "the CSP allows no inline styles");
        // An empty chart still draws its axis.
        assert!(revocations_svg(&[]).contains("<line"));
    }
}
