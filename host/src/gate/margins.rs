//! Totals and sub-totals ("margins") and the secondary suppression that protects them.
//!
//! A plan with `totals` is released as one table per subset of its keys: the detail table, every
//! sub-total and the grand total, each computed from the data by the normal gate with an equal
//! share of the plan's epsilon. [`merge`] puts them in one table, where a dropped key shows the
//! value [`TOTAL`]. A released total could reveal a suppressed cell by subtraction (total minus
//! the other released cells of its line), so [`secondary_suppression`] withholds more cells
//! until every line of every dimension has either no suppressed cell, or at least two, or a
//! suppressed total. It only looks at released values and the suppression pattern, so it is
//! post-processing and costs no privacy.

use oar_guest::table::{Suppression, Table};
use oar_guest::Value;
use std::collections::HashMap;

/// The key value of a margin.
pub const TOTAL: &str = "Total";
/// Most keys a plan with totals may group by (2^k tables are released).
pub const MAX_TOTAL_KEYS: usize = 3;

/// One table from the gated parts of a plan with totals (detail first): merged, secondarily
/// suppressed, with privacy facts covering the whole release.
pub fn release_with_totals(plan: &oar_guest::plan::Plan, parts: Vec<(Vec<bool>, Table)>) -> Table {
    let infos: Vec<oar_guest::table::ReleaseInfo> = parts
        .iter()
        .filter_map(|(_, t)| t.release.clone())
        .collect();
    let value_columns = parts[0].1.value_columns.clone();
    let mut table = merge(&plan.group_by, &value_columns, parts);
    // Rank candidates for secondary suppression by the noisy unit count if there is one.
    let rank = plan
        .aggregates
        .iter()
        .position(|a| matches!(a, oar_guest::plan::Aggregate::CountUnits { .. }))
        .unwrap_or(0);
    let secondary = secondary_suppression(&mut table, rank);
    let detail = infos[0].clone();
    let released = table.released().count();
    table.release = Some(oar_guest::table::ReleaseInfo {
        epsilon: plan.epsilon,
        delta: infos.iter().map(|i| i.delta).sum(),
        threshold: infos.iter().map(|i| i.threshold).fold(0.0, f64::max),
        released_cells: released,
        suppressed_cells: table.rows.len() - released,
        suppressed_minimum_units: super::count_suppressed(&table, Suppression::MinimumUnits),
        suppressed_dominance: super::count_suppressed(&table, Suppression::Dominance),
        suppressed_secondary: secondary,
        ..detail
    });
    table
}

/// Every subset of `k` keys as a mask of the keys kept, detail (all kept) first.
pub fn subsets(k: usize) -> Vec<Vec<bool>> {
    let mut out: Vec<Vec<bool>> = (0..1usize << k)
        .map(|bits| (0..k).map(|j| bits & (1 << j) == 0).collect())
        .collect();
    out.sort_by_key(|mask| std::cmp::Reverse(mask.iter().filter(|&&kept| kept).count()));
    out
}

/// Merges per-subset tables (each with only its kept keys) into one table over all `keys`,
/// with [`TOTAL`] in the dropped positions.
pub fn merge(keys: &[String], value_columns: &[String], parts: Vec<(Vec<bool>, Table)>) -> Table {
    let mut merged = Table::new(keys.iter().cloned(), value_columns.iter().cloned());
    for (mask, part) in parts {
        for row in part.rows {
            let mut values = row.keys.into_iter();
            let full: Vec<Value> = mask
                .iter()
                .map(|&kept| {
                    if kept {
                        values.next().expect("one key value per kept key")
                    } else {
                        Value::Str(TOTAL.into())
                    }
                })
                .collect();
            match row.suppressed {
                Some(why) => merged.push_suppressed(full, why),
                None => merged.push(full, row.values),
            }
        }
    }
    merged
}

fn is_total(v: &Value) -> bool {
    matches!(v, Value::Str(s) if s == TOTAL)
}

fn key_of(keys: &[Value]) -> String {
    serde_json::to_string(keys).expect("keys serialize")
}

/// Withholds cells until no suppressed cell can be recovered from the released cells and
/// totals; returns how many it withheld.
///
/// The released margins are linear equations: along every line (all keys fixed but one, plus
/// that key's total) the members add up to the total. With the suppressed cells as unknowns, a
/// suppressed cell is recoverable exactly when its unit vector lies in the row space of those
/// equations ([`determined`]: Gaussian elimination over every line at once, not one line at a
/// time; two suppressed 2×2 blocks joined by one bridge cell pass a line-by-line check, yet the
/// bridge is determined). While some cell is determined, the nearest released cell with the
/// smallest value of `rank_column` (the noisy count) is withheld too ([`nearest_released`]).
///
/// Past [`MAX_EXACT_UNKNOWNS`] suppressed cells the elimination would be slow; then every total
/// is withheld, which leaves no suppressed cell determined (each line's equation then holds an
/// unknown total of its own).
pub fn secondary_suppression(table: &mut Table, rank_column: usize) -> usize {
    let lines = lines_of(table);
    let mut withheld = 0;
    let withhold = |table: &mut Table, row: usize| {
        let r = &mut table.rows[row];
        r.values.clear();
        r.suppressed = Some(Suppression::Secondary);
    };
    loop {
        let unknown: Vec<usize> = (0..table.rows.len())
            .filter(|&i| table.rows[i].suppressed.is_some())
            .collect();
        if unknown.len() > MAX_EXACT_UNKNOWNS {
            for (total, _) in &lines {
                if table.rows[*total].suppressed.is_none() {
                    withhold(table, *total);
                    withheld += 1;
                }
            }
            return withheld;
        }
        let Some(cell) = determined(&lines, &unknown) else {
            return withheld;
        };
        let Some(victim) = nearest_released(table, &lines, cell, rank_column) else {
            // Every cell connected to it is withheld already: nothing released pins it down.
            return withheld;
        };
        withhold(table, victim);
        withheld += 1;
    }
}

/// The released cell to withhold for a determined `cell`: among the released cells of its lines,
/// the one with the smallest `rank_column` (the noisy count), preferring a member over a total;
/// if its lines hold none, the same one step further out (the lines of the withheld cells in its
/// lines), and so on.
fn nearest_released(
    table: &Table,
    lines: &[(usize, Vec<usize>)],
    cell: usize,
    rank_column: usize,
) -> Option<usize> {
    let rank = |i: usize| {
        table.rows[i]
            .values
            .get(rank_column)
            .copied()
            .unwrap_or(f64::INFINITY)
    };
    let mut seen = std::collections::HashSet::from([cell]);
    let mut frontier = vec![cell];
    while !frontier.is_empty() {
        let mut members = Vec::new();
        let mut totals = Vec::new();
        let mut next = Vec::new();
        for (total, line) in lines
            .iter()
            .filter(|(t, m)| frontier.iter().any(|c| t == c || m.contains(c)))
        {
            for (&m, is_total) in line
                .iter()
                .map(|m| (m, false))
                .chain(std::iter::once((total, true)))
            {
                if table.rows[m].suppressed.is_none() {
                    if is_total {
                        totals.push(m);
                    } else {
                        members.push(m);
                    }
                } else if seen.insert(m) {
                    next.push(m);
                }
            }
        }
        let best = |cands: &[usize]| {
            cands
                .iter()
                .copied()
                .min_by(|&a, &b| rank(a).total_cmp(&rank(b)).then(a.cmp(&b)))
        };
        if let Some(v) = best(&members).or_else(|| best(&totals)) {
            return Some(v);
        }
        frontier = next;
    }
    None
}

/// Most suppressed cells [`secondary_suppression`] checks exactly.
pub const MAX_EXACT_UNKNOWNS: usize = 600;

/// Every line of `table`: its total row and its member rows, for every dimension.
fn lines_of(table: &Table) -> Vec<(usize, Vec<usize>)> {
    let dims = table.key_columns.len();
    let index: HashMap<String, usize> = table
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| (key_of(&r.keys), i))
        .collect();
    let mut lines: Vec<(usize, Vec<usize>)> = Vec::new();
    for j in 0..dims {
        let mut members: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, r) in table.rows.iter().enumerate() {
            if is_total(&r.keys[j]) {
                continue;
            }
            let mut line = r.keys.clone();
            line[j] = Value::Str(TOTAL.into());
            members.entry(key_of(&line)).or_default().push(i);
        }
        let mut found: Vec<(usize, Vec<usize>)> = members
            .into_iter()
            .filter_map(|(line, rows)| index.get(&line).map(|&total| (total, rows)))
            .collect();
        found.sort();
        lines.extend(found);
    }
    lines
}

/// The first row among `unknown` whose value the equations of `lines` determine, if any.
///
/// Each line says `Σ members − total = 0`. Restricted to the unknowns (known cells only move
/// the right-hand side), the matrix is brought to reduced row echelon form; an unknown is
/// determined exactly when it is a pivot whose row has no other non-zero entry.
pub fn determined(lines: &[(usize, Vec<usize>)], unknown: &[usize]) -> Option<usize> {
    let column: HashMap<usize, usize> = unknown.iter().enumerate().map(|(c, &r)| (r, c)).collect();
    let width = unknown.len();
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (total, members) in lines {
        let mut row = vec![0.0; width];
        let mut any = false;
        for (&cell, coefficient) in members
            .iter()
            .map(|m| (m, 1.0))
            .chain(std::iter::once((total, -1.0)))
        {
            if let Some(&c) = column.get(&cell) {
                row[c] += coefficient;
                any = true;
            }
        }
        if any {
            rows.push(row);
        }
    }
    const EPS: f64 = 1e-9;
    let mut pivots = Vec::new();
    let mut r = 0;
    for c in 0..width {
        let Some(p) =
            (r..rows.len()).max_by(|&a, &b| rows[a][c].abs().total_cmp(&rows[b][c].abs()))
        else {
            break;
        };
        if rows[p][c].abs() < EPS {
            continue;
        }
        rows.swap(r, p);
        let lead = rows[r][c];
        for x in rows[r].iter_mut() {
            *x /= lead;
        }
        let pivot_row = rows[r].clone();
        for (i, row) in rows.iter_mut().enumerate() {
            if i != r && row[c].abs() >= EPS {
                let f = row[c];
                for (x, p) in row.iter_mut().zip(&pivot_row) {
                    *x -= f * p;
                }
            }
        }
        pivots.push((r, c));
        r += 1;
    }
    pivots
        .into_iter()
        .find(|&(row, c)| {
            rows[row]
                .iter()
                .enumerate()
                .all(|(j, x)| j == c || x.abs() < EPS)
        })
        .map(|(_, c)| unknown[c])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    /// Regions A, B, C by sex F, M, with totals; `small` lists the primary-suppressed cells.
    fn table(small: &[(&str, &str)]) -> Table {
        let mut t = Table::new(["region", "sex"], ["n"]);
        let regions = ["A", "B", "C", TOTAL];
        let sexes = ["F", "M", TOTAL];
        for (i, r) in regions.iter().enumerate() {
            for (j, x) in sexes.iter().enumerate() {
                if small.contains(&(r, x)) {
                    t.push_suppressed(vec![s(r), s(x)], Suppression::MinimumUnits);
                } else {
                    t.push(vec![s(r), s(x)], vec![100.0 + (i * 10 + j) as f64]);
                }
            }
        }
        t
    }

    /// Whether some released total equals a suppressed cell plus released cells only.
    fn recoverable(t: &Table) -> bool {
        let cell = |r: &str, x: &str| {
            t.rows
                .iter()
                .find(|row| row.keys == vec![s(r), s(x)])
                .unwrap()
        };
        let lines_r =
            ["A", "B", "C", TOTAL].map(|r| (cell(r, TOTAL), vec![cell(r, "F"), cell(r, "M")]));
        let lines_x = ["F", "M", TOTAL].map(|x| {
            (
                cell(TOTAL, x),
                vec![cell("A", x), cell("B", x), cell("C", x)],
            )
        });
        lines_r
            .iter()
            .chain(lines_x.iter())
            .any(|(total, members)| {
                total.suppressed.is_none()
                    && members.iter().filter(|m| m.suppressed.is_some()).count() == 1
            })
    }

    #[test]
    fn one_small_cell_takes_a_partner_in_each_of_its_lines() {
        let mut t = table(&[("A", "F")]);
        assert!(recoverable(&t));
        let withheld = secondary_suppression(&mut t, 0);
        assert!(!recoverable(&t));
        // A-M (its row) and B-F (its column, the smallest released), then B-M to close B's row.
        assert!(withheld >= 2, "{withheld}");
        assert!(t
            .rows
            .iter()
            .filter(|r| r.suppressed == Some(Suppression::Secondary))
            .all(|r| r.values.is_empty()));
    }

    /// Two suppressed 2×2 blocks (A,B × E,F and C,D × G,H in a 4 × 4 table) joined by
    /// one suppressed bridge cell: every line holds two suppressed cells or none, so the
    /// line-by-line rule saw nothing to do, yet the bridge is determined by the totals.
    #[test]
    fn a_bridge_between_two_suppressed_blocks_is_protected() {
        let rows = ["A", "B", "C", "D"];
        let cols = ["E", "F", "G", "H"];
        let small = [
            ("A", "E"),
            ("A", "F"),
            ("B", "E"),
            ("B", "F"),
            ("C", "G"),
            ("C", "H"),
            ("D", "G"),
            ("D", "H"),
            ("B", "G"),
        ];
        let mut t = Table::new(["r", "c"], ["n"]);
        for r in rows.iter().chain([&TOTAL]) {
            for c in cols.iter().chain([&TOTAL]) {
                if small.contains(&(r, c)) {
                    t.push_suppressed(vec![s(r), s(c)], Suppression::MinimumUnits);
                } else {
                    t.push(vec![s(r), s(c)], vec![100.0]);
                }
            }
        }
        let unknown: Vec<usize> = (0..t.rows.len())
            .filter(|&i| t.rows[i].suppressed.is_some())
            .collect();
        let bridge = t
            .rows
            .iter()
            .position(|r| r.keys == vec![s("B"), s("G")])
            .unwrap();
        // The bridge is determined: rows A and B less columns E and F leave B-G alone.
        assert!(determined(&lines_of(&t), &unknown).is_some());
        assert!(!unknown.is_empty() && unknown.contains(&bridge));
        let withheld = secondary_suppression(&mut t, 0);
        assert!(withheld >= 1);
        let unknown: Vec<usize> = (0..t.rows.len())
            .filter(|&i| t.rows[i].suppressed.is_some())
            .collect();
        assert_eq!(determined(&lines_of(&t), &unknown), None);
    }

    #[test]
    fn nothing_to_protect_means_nothing_withheld() {
        let mut t = table(&[]);
        assert_eq!(secondary_suppression(&mut t, 0), 0);
        let mut t = table(&[("A", "F"), ("A", "M"), ("B", "F"), ("B", "M")]);
        assert_eq!(secondary_suppression(&mut t, 0), 0);
    }

    #[test]
    fn subsets_and_merge_cover_every_margin() {
        assert_eq!(subsets(2)[0], vec![true, true]);
        assert_eq!(subsets(2).len(), 4);
        assert_eq!(subsets(2)[3], vec![false, false]);
        let mut detail = Table::new(["region"], ["n"]);
        detail.push(vec![s("A")], vec![5.0]);
        let mut total = Table::new(Vec::<String>::new(), ["n"]);
        total.push(vec![], vec![5.0]);
        let m = merge(
            &["region".to_string()],
            &["n".to_string()],
            vec![(vec![true], detail), (vec![false], total)],
        );
        assert_eq!(m.rows[1].keys, vec![s(TOTAL)]);
    }
}
