//! A module's plans as sentences a lay member of an ethics committee can read: "From dataset
//! cdr, count distinct subscribers per region per day, each subscriber in at most 14 cells,
//! spending ε 0.5." Everything here comes from the plan and the dataset's public descriptor.

use oar_guest::plan::{Aggregate, ArithOp, CompareOp, Expr, Plan, Reduce, Step};
use oar_guest::Value;

/// What a sentence needs to know about the dataset a plan reads (public descriptor facts).
pub struct DatasetWords<'a> {
    /// The privacy unit's column, e.g. `subscriber_id`.
    pub privacy_unit: &'a str,
    /// The dataset's default bound on the cells one unit adds to.
    pub max_groups_per_unit: u32,
    /// The dataset's default bound on one unit's rows per cell.
    pub max_rows_per_group: u32,
}

/// The people a privacy-unit column names, in the plural: `subscriber_id` → "subscribers".
pub fn people(unit_column: &str) -> String {
    let base = unit_column
        .trim_end_matches("_id")
        .trim_end_matches("_key")
        .replace('_', " ");
    if base.is_empty() {
        return "people".into();
    }
    if base.ends_with('s') {
        base
    } else {
        format!("{base}s")
    }
}

fn one_of(people: &str) -> String {
    if people == "people" {
        return "person".into();
    }
    people.strip_suffix('s').unwrap_or(people).to_string()
}

/// The plan as one sentence.
pub fn plan_sentence(plan: &Plan, d: &DatasetWords<'_>) -> String {
    let who = people(d.privacy_unit);
    let one = one_of(&who);
    let mut s = format!("From dataset {}, ", plan.dataset);
    let stats: Vec<String> = plan
        .aggregates
        .iter()
        .map(|a| aggregate_words(a, &who))
        .collect();
    s.push_str(&join_and(&stats));
    if plan.group_by.is_empty() {
        s.push_str(" over the whole dataset");
    } else {
        for k in &plan.group_by {
            s.push_str(&format!(" per {}", words(k)));
        }
    }
    let mut clauses = Vec::new();
    for step in &plan.steps {
        clauses.push(step_words(step, &one));
    }
    let groups = plan
        .bounds
        .max_groups_per_unit
        .unwrap_or(d.max_groups_per_unit);
    clauses.push(format!(
        "each {one} counted in at most {groups} {}",
        plural(groups, "cell")
    ));
    if plan.aggregates.iter().any(|a| {
        matches!(
            a,
            Aggregate::Sum { .. } | Aggregate::Mean { .. } | Aggregate::Quantile { .. }
        )
    }) {
        let rows = plan
            .bounds
            .max_rows_per_group
            .unwrap_or(d.max_rows_per_group);
        clauses.push(format!(
            "at most {rows} of a {one}'s {} in each cell",
            plural(rows, "row")
        ));
    }
    if plan.totals {
        clauses.push("with totals and sub-totals over the groups".into());
    }
    if plan.key_selection {
        clauses.push(
            "keeping only group values common enough to publish (the rest are left out)".into(),
        );
    }
    for c in clauses {
        s.push_str(", ");
        s.push_str(&c);
    }
    s.push_str(&format!(", spending ε {}.", number(plan.epsilon)));
    s
}

fn aggregate_words(a: &Aggregate, who: &str) -> String {
    let clip = |bounds: &Option<[f64; 2]>| match bounds {
        Some([lo, hi]) => format!(
            " (each value kept between {} and {})",
            number(*lo),
            number(*hi)
        ),
        None => " (within the column's declared range)".to_string(),
    };
    match a {
        Aggregate::CountUnits { .. } => format!("count distinct {who}"),
        Aggregate::Sum { column, bounds, .. } => {
            format!("add up {}{}", words(column), clip(bounds))
        }
        Aggregate::Mean { column, bounds, .. } => {
            format!("average {}{}", words(column), clip(bounds))
        }
        Aggregate::Quantile {
            column, q, bounds, ..
        } => {
            let which = if (*q - 0.5).abs() < 1e-12 {
                "median".to_string()
            } else {
                format!("{}th percentile", number(q * 100.0))
            };
            format!("find the {which} of {}{}", words(column), clip(bounds))
        }
    }
}

fn step_words(step: &Step, one: &str) -> String {
    match step {
        Step::Filter { predicate } => format!("counting only rows where {}", expr(predicate)),
        Step::Derive { name, expr: e } => format!("with {} = {}", words(name), expr(e)),
        Step::PerUnit {
            name,
            reduce,
            expr: e,
            rows,
            by,
        } => {
            let mut s = format!(
                "with each {one}'s {} = {} {} of their rows",
                words(name),
                reduce_words(*reduce),
                expr(e)
            );
            if let Some(r) = rows {
                s.push_str(&format!(" where {}", expr(r)));
            }
            for b in by {
                s.push_str(&format!(" per {}", words(b)));
            }
            s
        }
    }
}

fn reduce_words(r: Reduce) -> &'static str {
    match r {
        Reduce::Mode => "the most frequent",
        Reduce::Min => "the smallest",
        Reduce::Max => "the largest",
        Reduce::Mean => "the average",
        Reduce::Sum => "the total",
        Reduce::Count => "the number of",
        Reduce::CountDistinct => "the number of distinct",
        Reduce::Any => "whether any has",
        Reduce::All => "whether all have",
    }
}

/// An expression in words.
pub fn expr(e: &Expr) -> String {
    match e {
        Expr::Column { name } => words(name),
        Expr::Literal { value } => literal(value),
        Expr::Compare { op, left, right } => {
            let op = match op {
                CompareOp::Eq => "is",
                CompareOp::Ne => "is not",
                CompareOp::Lt => "is below",
                CompareOp::Le => "is at most",
                CompareOp::Gt => "is above",
                CompareOp::Ge => "is at least",
            };
            format!("{} {op} {}", expr(left), expr(right))
        }
        Expr::Arith { op, left, right } => {
            let op = match op {
                ArithOp::Add => "plus",
                ArithOp::Sub => "minus",
                ArithOp::Mul => "times",
                ArithOp::Div => "divided by",
            };
            format!("({} {op} {})", expr(left), expr(right))
        }
        Expr::And { left, right } => format!("{} and {}", expr(left), expr(right)),
        Expr::Or { left, right } => format!("({} or {})", expr(left), expr(right)),
        Expr::Not { expr: e } => format!("not ({})", expr(e)),
        Expr::IsIn { expr: e, values } => {
            let listed: Vec<String> = values.iter().map(literal).collect();
            format!("{} is one of {}", expr(e), listed.join(", "))
        }
        Expr::Date { expr: e } => format!("the day of {}", expr(e)),
        Expr::Hour { expr: e } => format!("the hour of {}", expr(e)),
        Expr::HalfHour { expr: e } => format!("the half-hour of {}", expr(e)),
        Expr::Bin { expr: e, edges } => {
            let shown: Vec<String> = edges.iter().map(|x| number(*x)).collect();
            format!("the band of {} (edges {})", expr(e), shown.join(", "))
        }
    }
}

fn literal(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("\u{201c}{s}\u{201d}"),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => number(*f),
    }
}

/// A column name as words: `home_region` → "home region".
pub fn words(name: &str) -> String {
    name.replace('_', " ")
}

/// A number as people write it: no trailing zeros, no exponent for everyday sizes.
pub fn number(x: f64) -> String {
    if x.is_finite() && x == x.trunc() && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        let s = format!("{x:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn plural(n: u32, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

fn join_and(parts: &[String]) -> String {
    match parts {
        [] => "compute nothing".into(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdr() -> DatasetWords<'static> {
        DatasetWords {
            privacy_unit: "subscriber_id",
            max_groups_per_unit: 14,
            max_rows_per_group: 1,
        }
    }

    #[test]
    fn the_population_plan_reads_as_the_issue_words_it() {
        let plan: Plan = serde_json::from_str(
            r#"{"dataset": "cdr", "group_by": ["region", "day"],
                "steps": [{"op": "derive", "name": "day", "expr": {"kind": "date", "expr": {"kind": "column", "name": "timestamp"}}}],
                "aggregates": [{"agg": "count_units", "name": "subscribers"}], "epsilon": 0.5}"#,
        )
        .unwrap();
        assert_eq!(
            plan_sentence(&plan, &cdr()),
            "From dataset cdr, count distinct subscribers per region per day, with day = the day of timestamp, each subscriber counted in at most 14 cells, spending ε 0.5."
        );
    }

    #[test]
    fn sums_name_their_clipping_and_rows_per_cell() {
        let plan: Plan = serde_json::from_str(
            r#"{"dataset": "meters", "group_by": [],
                "steps": [{"op": "filter", "predicate": {"kind": "compare", "op": "ge", "left": {"kind": "column", "name": "kwh"}, "right": {"kind": "literal", "value": 0.5}}}],
                "aggregates": [{"agg": "sum", "name": "t", "column": "kwh", "bounds": [0.0, 5.0]},
                               {"agg": "quantile", "name": "m", "column": "kwh", "q": 0.5}],
                "bounds": {"max_groups_per_unit": 1, "max_rows_per_group": 48}, "epsilon": 1.0, "totals": true}"#,
        )
        .unwrap();
        let words = DatasetWords {
            privacy_unit: "meter_id",
            max_groups_per_unit: 4,
            max_rows_per_group: 2,
        };
        assert_eq!(
            plan_sentence(&plan, &words),
            "From dataset meters, add up kwh (each value kept between 0 and 5) and find the median of kwh (within the column's declared range) over the whole dataset, counting only rows where kwh is at least 0.5, each meter counted in at most 1 cell, at most 48 of a meter's rows in each cell, with totals and sub-totals over the groups, spending ε 1."
        );
    }

    #[test]
    fn people_are_named_from_the_unit_column() {
        assert_eq!(people("subscriber_id"), "subscribers");
        assert_eq!(people("meter_id"), "meters");
        assert_eq!(people("premises"), "premises");
        assert_eq!(people("_id"), "people");
    }
}
