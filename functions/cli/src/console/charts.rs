//! Inline SVG bar charts, rendered on the server (no script, no CDN).

use std::fmt::Write as _;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 36.0;
const BOTTOM: f64 = 20.0;

/// One series of a grouped bar chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub class: &'a str,
    pub values: Vec<u64>,
}

/// Grouped bars, one group per label; `limit` draws a dashed line (e.g. the rate cap).
pub fn bars(title: &str, labels: &[String], series: &[Series<'_>], limit: Option<f64>) -> String {
    let groups = labels.len().max(1);
    let top = series.iter().flat_map(|one| one.values.iter().copied()).max().unwrap_or(0) as f64;
    let top = top.max(limit.unwrap_or(0.0)).max(1.0) * 1.1;
    let plot_width = WIDTH - LEFT;
    let plot_height = HEIGHT - BOTTOM;
    let group_width = plot_width / groups as f64;
    let bar_width = (group_width * 0.8) / series.len().max(1) as f64;
    let y = |value: f64| plot_height - value / top * plot_height;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}" xmlns="http://www.w3.org/2000/svg">"#
    );
    let _ = write!(svg, r#"<title>{title}</title>"#);
    for step in [0.0, 0.5, 1.0] {
        let value = top / 1.1 * step;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{WIDTH}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{x}" y="{ty:.1}" text-anchor="end">{label}</text>"#,
            y = y(value),
            x = LEFT - 4.0,
            ty = y(value) + 4.0,
            label = if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.1}") }
        );
    }
    for (group, label) in labels.iter().enumerate() {
        let x0 = LEFT + group as f64 * group_width + group_width * 0.1;
        for (index, one) in series.iter().enumerate() {
            let value = one.values.get(group).copied().unwrap_or(0) as f64;
            let _ = write!(
                svg,
                r#"<rect class="{class}" x="{x:.1}" y="{top:.1}" width="{w:.1}" height="{h:.1}"><title>{label}: {value} {name}</title></rect>"#,
                class = one.class,
                x = x0 + index as f64 * bar_width,
                top = y(value),
                w = bar_width.max(0.5),
                h = plot_height - y(value),
                name = one.name,
            );
        }
        let every = groups.div_ceil(8).max(1);
        if group % every == 0 {
            let _ =
                write!(svg, r#"<text class="axis" x="{x:.1}" y="{HEIGHT}" text-anchor="start">{label}</text>"#, x = x0);
        }
    }
    if let Some(limit) = limit {
        let _ = write!(
            svg,
            r#"<line class="cap" x1="{LEFT}" x2="{WIDTH}" y1="{y:.1}" y2="{y:.1}"><title>cap: {limit} per second</title></line>"#,
            y = y(limit)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_one_bar_per_value_and_the_cap_line() {
        let labels: Vec<String> = (0..3).map(|hour| format!("{hour}:00")).collect();
        let series = [
            Series { name: "accepted", class: "accepted", values: vec![1, 2, 3] },
            Series { name: "applied", class: "applied", values: vec![0, 2, 3] },
        ];
        let svg = bars("Events per hour", &labels, &series, Some(10.0));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 6);
        assert_eq!(svg.matches(r#"class="cap""#).count(), 1);
        assert!(svg.contains("2:00: 3 applied"));
    }
}
