//! Charts of released tables as inline SVG, drawn on the server: bars with 95% error bars for
//! one key, a heat map for two. No script, no style attribute (the pages' content security
//! policy allows neither inline); every figure has a text title and the table beside it.
//! They draw only released values and intervals; a suppressed cell is drawn as withheld.

use maud::{html, Markup};
use oar_guest::table::Table;

/// Most bars or heat-map columns drawn; a note says when a table has more.
pub const MAX_BARS: usize = 48;
/// Most heat-map rows drawn.
pub const MAX_HEAT_ROWS: usize = 40;

/// The first value column's half-width of its 95% interval, if the host recorded one.
fn half_width(t: &Table, column: usize) -> Option<f64> {
    let name = t.value_columns.get(column)?;
    t.release
        .as_ref()?
        .accuracy
        .iter()
        .find(|a| &a.column == name)
        .map(|a| a.ci95_half_width)
        .filter(|h| h.is_finite())
}

fn label(keys: &[oar_guest::Value]) -> String {
    keys.iter()
        .map(|k| k.key_text())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The chart people would rather look at for `t`, if it has one: a heat map for two keys, bars
/// otherwise. `None` for a table without values or keys.
pub fn chart(t: &Table, title: &str) -> Option<Markup> {
    if t.value_columns.is_empty() || t.key_columns.is_empty() || t.rows.is_empty() {
        return None;
    }
    if t.key_columns.len() == 2 {
        Some(heat_map(t, title))
    } else {
        Some(bars(t, title))
    }
}

/// Bars of the first value column, each with its 95% interval.
pub fn bars(t: &Table, title: &str) -> Markup {
    let hw = half_width(t, 0).unwrap_or(0.0);
    let rows: Vec<_> = t.rows.iter().take(MAX_BARS).collect();
    let top = rows
        .iter()
        .filter(|r| r.suppressed.is_none())
        .filter_map(|r| r.values.first())
        .map(|v| v + hw)
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let (w, h, left, bottom, top_pad) = (760.0, 320.0, 56.0, 96.0, 16.0);
    let plot_h = h - bottom - top_pad;
    let step = (w - left - 8.0) / rows.len().max(1) as f64;
    let bar_w = (step * 0.7).max(2.0);
    let y = |v: f64| top_pad + plot_h * (1.0 - (v.max(0.0) / top).min(1.0));
    let id = format!("chart-{}", slug(title));
    let column = &t.value_columns[0];
    html! {
        figure {
            svg role="img" aria-labelledby=(id) viewBox={"0 0 " (w) " " (h)} width="100%" {
                title id=(id) { (title) ": " (column) " by " (t.key_columns.join(" and ")) ", with 95% intervals" }
                line x1=(left) y1=(top_pad) x2=(left) y2=(top_pad + plot_h) stroke="#333" {}
                line x1=(left) y1=(top_pad + plot_h) x2=(w - 8.0) y2=(top_pad + plot_h) stroke="#333" {}
                @for tick in [0.0, 0.5, 1.0] {
                    text x=(left - 4.0) y=(y(top * tick) + 4.0) text-anchor="end" font-size="11" fill="#222" { (short(top * tick)) }
                }
                @for (i, r) in rows.iter().enumerate() {
                    @let x = left + step * i as f64 + (step - bar_w) / 2.0;
                    @let cx = x + bar_w / 2.0;
                    @match (r.suppressed.as_ref(), r.values.first()) {
                        (None, Some(v)) => {
                            rect x=(x) y=(y(*v)) width=(bar_w) height=((top_pad + plot_h - y(*v)).max(0.0)) fill="#1f5f99" {
                                title { (label(&r.keys)) ": " (short(*v)) " ± " (short(hw)) }
                            }
                            @if hw > 0.0 {
                                line x1=(cx) x2=(cx) y1=(y(v + hw)) y2=(y(v - hw)) stroke="#111" stroke-width="1.5" {}
                                line x1=(cx - bar_w / 4.0) x2=(cx + bar_w / 4.0) y1=(y(v + hw)) y2=(y(v + hw)) stroke="#111" {}
                                line x1=(cx - bar_w / 4.0) x2=(cx + bar_w / 4.0) y1=(y(v - hw)) y2=(y(v - hw)) stroke="#111" {}
                            }
                        }
                        _ => {
                            text x=(cx) y=(top_pad + plot_h - 4.0) text-anchor="middle" font-size="12" fill="#8a1c1c" {
                                "×" title { (label(&r.keys)) ": withheld" }
                            }
                        }
                    }
                    text x=(cx) y=(top_pad + plot_h + 12.0) font-size="10" fill="#222" text-anchor="end"
                        transform={"rotate(-60 " (cx) " " (top_pad + plot_h + 12.0) ")"} { (label(&r.keys)) }
                }
            }
            figcaption {
                "Bars: released " (column) "; lines: 95% intervals (±" (short(hw)) "); × marks a withheld cell."
                @if t.rows.len() > MAX_BARS { " The first " (MAX_BARS) " of " (t.rows.len()) " cells are drawn; the table below has them all." }
            }
        }
    }
}

/// A heat map of the first value column over the two keys (rows: first key, columns: second).
pub fn heat_map(t: &Table, title: &str) -> Markup {
    let mut row_keys: Vec<String> = Vec::new();
    let mut col_keys: Vec<String> = Vec::new();
    for r in &t.rows {
        let (a, b) = (r.keys[0].key_text(), r.keys[1].key_text());
        if !row_keys.contains(&a) {
            row_keys.push(a);
        }
        if !col_keys.contains(&b) {
            col_keys.push(b);
        }
    }
    row_keys.truncate(MAX_HEAT_ROWS);
    col_keys.truncate(MAX_BARS);
    let values: Vec<f64> = t
        .rows
        .iter()
        .filter(|r| r.suppressed.is_none())
        .filter_map(|r| r.values.first().copied())
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (cell_w, cell_h, left, top_pad) = (22.0, 18.0, 120.0, 70.0);
    let w = left + cell_w * col_keys.len() as f64 + 8.0;
    let h = top_pad + cell_h * row_keys.len() as f64 + 8.0;
    let id = format!("chart-{}", slug(title));
    let column = &t.value_columns[0];
    let shade = |v: f64| {
        let f = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        PALETTE[((f * (PALETTE.len() - 1) as f64).round() as usize).min(PALETTE.len() - 1)]
    };
    html! {
        figure {
            svg role="img" aria-labelledby=(id) viewBox={"0 0 " (w) " " (h)} width=(w.min(900.0)) {
                title id=(id) { (title) ": " (column) " by " (t.key_columns[0]) " (rows) and " (t.key_columns[1]) " (columns)" }
                @for (j, c) in col_keys.iter().enumerate() {
                    @let x = left + cell_w * j as f64 + cell_w / 2.0;
                    text x=(x) y=(top_pad - 4.0) font-size="10" fill="#222" transform={"rotate(-60 " (x) " " (top_pad - 4.0) ")"} { (c) }
                }
                @for (i, rk) in row_keys.iter().enumerate() {
                    text x=(left - 4.0) y=(top_pad + cell_h * i as f64 + 13.0) font-size="11" text-anchor="end" fill="#222" { (rk) }
                }
                @for r in &t.rows {
                    @let a = r.keys[0].key_text();
                    @let b = r.keys[1].key_text();
                    @if let (Some(i), Some(j)) = (row_keys.iter().position(|k| k == &a), col_keys.iter().position(|k| k == &b)) {
                        @let (x, y) = (left + cell_w * j as f64, top_pad + cell_h * i as f64);
                        @match (r.suppressed.as_ref(), r.values.first()) {
                            (None, Some(v)) => {
                                rect x=(x) y=(y) width=(cell_w - 1.0) height=(cell_h - 1.0) fill=(shade(*v)) {
                                    title { (a) " / " (b) ": " (short(*v)) }
                                }
                            }
                            _ => {
                                rect x=(x) y=(y) width=(cell_w - 1.0) height=(cell_h - 1.0) fill="#e6e6e6" {
                                    title { (a) " / " (b) ": withheld" }
                                }
                                text x=(x + cell_w / 2.0) y=(y + 13.0) font-size="11" text-anchor="middle" fill="#8a1c1c" { "×" }
                            }
                        }
                    }
                }
            }
            figcaption {
                "Darker is more: " (column) " from " (short(lo.min(hi))) " to " (short(hi.max(lo))) "; × marks a withheld cell."
                @if row_keys.len() == MAX_HEAT_ROWS || col_keys.len() == MAX_BARS { " Only part of the table is drawn; the table below has every cell." }
            }
        }
    }
}

/// A sequential palette, light to dark (the darker half carries white-on-dark contrast only in
/// titles, never text drawn on it).
const PALETTE: [&str; 6] = [
    "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c",
];

/// A number shortened for an axis or a tooltip.
pub fn short(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    if x.abs() >= 100.0 {
        format!("{}", x.round() as i64)
    } else if x.abs() >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oar_guest::table::{Accuracy, ReleaseInfo, Row, Suppression};
    use oar_guest::Value;

    fn table(keys: usize) -> Table {
        let mut t = Table::new(
            ["region", "day"].into_iter().take(keys).collect::<Vec<_>>(),
            ["n"],
        );
        for (i, region) in ["North", "South", "East"].iter().enumerate() {
            for day in ["2026-01-01", "2026-01-02"]
                .iter()
                .take(if keys == 2 { 2 } else { 1 })
            {
                let mut k = vec![Value::from(*region)];
                if keys == 2 {
                    k.push(Value::from(*day));
                }
                t.rows.push(if i == 2 {
                    Row {
                        keys: k,
                        values: vec![],
                        suppressed: Some(Suppression::MinimumUnits),
                    }
                } else {
                    Row {
                        keys: k,
                        values: vec![100.0 * (i + 1) as f64],
                        suppressed: None,
                    }
                });
            }
        }
        t.release = Some(ReleaseInfo {
            accuracy: vec![Accuracy {
                column: "n".into(),
                mechanism: "laplace".into(),
                noise_scale: 2.0,
                ci95_half_width: 6.0,
            }],
            ..Default::default()
        });
        t
    }

    #[test]
    fn one_key_draws_bars_with_intervals_and_marks_withheld_cells() {
        let svg = chart(&table(1), "population").unwrap().into_string();
        assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
        assert!(svg.contains("North: 100 ± 6.0"));
        assert!(svg.contains("East: withheld"));
        assert!(!svg.contains("style="), "the CSP forbids inline style");
    }

    #[test]
    fn two_keys_draw_a_heat_map() {
        let svg = chart(&table(2), "population").unwrap().into_string();
        assert_eq!(svg.matches("<rect").count(), 6);
        assert!(svg.contains("East / 2026-01-02: withheld"));
        assert!(svg.contains("by region (rows) and day (columns)"));
    }

    #[test]
    fn a_table_without_values_has_no_chart() {
        assert!(chart(&Table::new(["a"], Vec::<String>::new()), "t").is_none());
    }
}
