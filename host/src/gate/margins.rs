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

/// Withholds cells until no suppressed cell can be recovered by subtraction; returns how many
/// it withheld. Along each line (all keys fixed but one, plus that key's total), if the total is
/// released and exactly one member is suppressed, the released member with the smallest value
/// of `rank_column` (the noisy count) is suppressed too; if there is none, the total is.
pub fn secondary_suppression(table: &mut Table, rank_column: usize) -> usize {
    let dims = table.key_columns.len();
    let index: HashMap<String, usize> = table
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| (key_of(&r.keys), i))
        .collect();
    // Lines: (total row, member rows) for every dimension.
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
        for (line, rows) in members {
            if let Some(&total) = index.get(&line) {
                lines.push((total, rows));
            }
        }
    }
    let mut withheld = 0;
    loop {
        let mut changed = false;
        for (total, members) in &lines {
            if table.rows[*total].suppressed.is_some() {
                continue;
            }
            let suppressed = members
                .iter()
                .filter(|&&m| table.rows[m].suppressed.is_some())
                .count();
            if suppressed != 1 {
                continue;
            }
            let victim = members
                .iter()
                .copied()
                .filter(|&m| table.rows[m].suppressed.is_none())
                .min_by(|&a, &b| {
                    let v = |i: usize| table.rows[i].values.get(rank_column).copied();
                    v(a).partial_cmp(&v(b)).unwrap_or(std::cmp::Ordering::Equal)
                })
                .unwrap_or(*total);
            let row = &mut table.rows[victim];
            row.values.clear();
            row.suppressed = Some(Suppression::Secondary);
            withheld += 1;
            changed = true;
        }
        if !changed {
            return withheld;
        }
    }
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
