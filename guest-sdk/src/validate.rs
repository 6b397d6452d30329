//! The checks [`Query::release`](crate::Query::release) runs before anything reaches the host.
//!
//! Each check mirrors one the host makes, answering in terms of the plan the author wrote: the
//! column, key, aggregate or bound at fault, and what to write instead. Checks never go further
//! than the host: a fact the SDK cannot be sure of (see [`crate::facts`]) lets the plan through,
//! and the host decides.

use crate::facts::{Env, Facts, Known};
use crate::plan::{Aggregate, Plan, Step};
use crate::{ColumnType, DatasetSchema, Error, Expr};

/// Checks `plan` against `schema`: columns exist, group keys have public domains, aggregates
/// have distinct names, numeric inputs and valid bounds.
pub(crate) fn check_plan(schema: &DatasetSchema, plan: &Plan) -> Result<(), Error> {
    size(plan)?;
    let env = steps(schema, &plan.steps)?;
    if plan.aggregates.is_empty() {
        return Err(Error::InvalidPlan(
            "no aggregate: add count_units, sum, mean or quantile before release".into(),
        ));
    }
    for key in &plan.group_by {
        group_key(&env, key, plan.key_selection)?;
    }
    aggregate_names(&plan.aggregates)?;
    for a in &plan.aggregates {
        aggregate(&env, a)?;
    }
    Ok(())
}

/// The host's plan-size limits ([`Plan::over_size_limit`]).
fn size(plan: &Plan) -> Result<(), Error> {
    match plan.over_size_limit() {
        Some((what, n, max)) => Err(Error::InvalidPlan(format!(
            "the plan has {n} {what}; the host allows at most {max} per query (split it into several queries)"
        ))),
        None => Ok(()),
    }
}

/// Walks the row-level steps in order, checking each reads only columns available at that point;
/// returns the columns available after the last.
fn steps<'s>(schema: &'s DatasetSchema, steps: &[Step]) -> Result<Env<'s>, Error> {
    let mut env = Env::new(schema);
    for step in steps {
        match step {
            Step::Filter { predicate } => reads(&env, predicate)?,
            Step::Derive { name, expr } => {
                reads(&env, expr)?;
                let facts = env.of_expr(expr);
                env.define(name, facts);
            }
            Step::PerUnit {
                name,
                reduce,
                expr,
                rows,
                by,
            } => {
                reads(&env, expr)?;
                if let Some(r) = rows {
                    reads(&env, r)?;
                }
                for k in by {
                    column(&env, k)?;
                }
                let facts = env.of_per_unit(*reduce, expr);
                env.define(name, facts);
            }
        }
    }
    Ok(env)
}

/// Checks every column `expr` reads exists.
fn reads(env: &Env<'_>, expr: &Expr) -> Result<(), Error> {
    for c in expr.columns() {
        column(env, c)?;
    }
    Ok(())
}

/// The facts of column `name`, or the error naming it and the columns that do exist.
fn column(env: &Env<'_>, name: &str) -> Result<Facts, Error> {
    let schema = env.schema();
    if name == schema.privacy_unit {
        return Err(Error::PrivacyUnit {
            dataset: schema.name.clone(),
            column: name.to_string(),
        });
    }
    env.get(name).ok_or_else(|| Error::UnknownColumn {
        dataset: schema.name.clone(),
        column: name.to_string(),
        available: env.names().join(", "),
    })
}

/// Checks `key` exists and has a public domain, or can have its keys selected from the data.
fn group_key(env: &Env<'_>, key: &str, key_selection: bool) -> Result<(), Error> {
    let facts = column(env, key)?;
    if facts.domain != Known::No {
        return Ok(());
    }
    let fail = |detail: String| {
        Err(Error::GroupKey {
            key: key.to_string(),
            detail,
        })
    };
    let ty = match facts.ty {
        Some(ty) => ty,
        None if key_selection => return Ok(()),
        None => {
            return fail(format!(
                "'{key}' has no public domain; group by a column with a declared domain, derive one (date(), hour(), half_hour(), bin(..), a comparison), or call select_keys()"
            ))
        }
    };
    let what = if facts.derived {
        format!("derived column '{key}' ({ty})")
    } else {
        format!("column '{key}' ({ty})")
    };
    match ty {
        ColumnType::Str | ColumnType::Int if key_selection => Ok(()),
        ColumnType::Str | ColumnType::Int => fail(format!(
            "{what} has no public domain; group by a column with a declared domain, derive a key with one (a bin(..) of a number, a comparison), or call select_keys() to release only the keys that enough units have"
        )),
        ColumnType::Datetime => fail(format!(
            "{what} is a point in time, not a key; group by a derived day, hour or half hour instead (derive(\"day\", time(\"{key}\").date()) or .hour() or .half_hour())"
        )),
        ColumnType::Date => fail(format!(
            "{what} has no declared period, so its days are not a public domain"
        )),
        ColumnType::Float => fail(format!(
            "{what} is a real number with no public domain; group by bins of it instead (histogram(..) or derive(.., num(\"{key}\").bin(edges)))"
        )),
        // Booleans always have the domain {false, true}.
        ColumnType::Bool => Ok(()),
    }
}

/// Checks output names are non-empty, not reserved and used once.
fn aggregate_names(aggregates: &[Aggregate]) -> Result<(), Error> {
    for (i, a) in aggregates.iter().enumerate() {
        let name = a.name();
        let problem = if name.is_empty() {
            Some("is empty; give every aggregate an output column name")
        } else if name.starts_with("__") {
            Some("is reserved (names starting with '__' belong to the host); pick another")
        } else if aggregates[..i].iter().any(|b| b.name() == name) {
            Some("is used by two aggregates; give each aggregate its own output column name")
        } else {
            None
        };
        if let Some(detail) = problem {
            return Err(Error::AggregateName {
                name: name.to_string(),
                detail: detail.to_string(),
            });
        }
    }
    Ok(())
}

/// Checks one aggregate's input column, quantile parameters and bounds.
fn aggregate(env: &Env<'_>, a: &Aggregate) -> Result<(), Error> {
    let (name, column_name, bounds) = match a {
        Aggregate::CountUnits { .. } => return Ok(()),
        Aggregate::Sum {
            name,
            column,
            bounds,
        }
        | Aggregate::Mean {
            name,
            column,
            bounds,
        } => (name, column, *bounds),
        Aggregate::Quantile {
            name,
            column,
            q,
            bounds,
            bins,
        } => {
            quantile_parameters(name, *q, *bins)?;
            (name, column, *bounds)
        }
    };
    let facts = column(env, column_name)?;
    if let Some(found) = facts.ty.filter(|t| !t.is_numeric()) {
        return Err(Error::ColumnType {
            aggregate: name.clone(),
            column: column_name.clone(),
            found,
        });
    }
    let fail = |detail: String| {
        Err(Error::Bounds {
            aggregate: name.clone(),
            column: column_name.clone(),
            detail,
        })
    };
    match bounds {
        Some([lo, hi]) if !(lo.is_finite() && hi.is_finite()) => fail(format!(
            "bounds [{lo}, {hi}] are not valid: both must be finite numbers"
        )),
        Some([lo, hi]) if lo > hi => fail(format!(
            "bounds [{lo}, {hi}] are not valid: the lower bound is above the upper one"
        )),
        Some([lo, hi]) if lo == hi && matches!(a, Aggregate::Quantile { .. }) => fail(format!(
            "bounds [{lo}, {hi}] are not valid for a quantile: it needs lower < upper to have bins"
        )),
        Some(_) => Ok(()),
        None if facts.bounds == Known::No => {
            let whose = if facts.derived {
                format!("derived column '{column_name}' has none (arithmetic, per-unit sums and counts do not keep their inputs' bounds)")
            } else {
                format!("the dataset declares none for '{column_name}'")
            };
            fail(format!(
                "{} needs clamping bounds and {whose}; give them explicitly with {}",
                kind(a),
                clamped_call(a)
            ))
        }
        None => Ok(()),
    }
}

/// Checks `q` is in (0, 1) and `bins` (if given) is at least 2.
fn quantile_parameters(name: &str, q: f64, bins: Option<u32>) -> Result<(), Error> {
    let detail = if !(q > 0.0 && q < 1.0) {
        format!("q must be strictly between 0 and 1 (0.5 is the median, 0.9 the 90th percentile), got {q}")
    } else if let Some(b) = bins.filter(|b| *b < 2) {
        format!("a quantile needs at least 2 bins, got {b}")
    } else {
        return Ok(());
    };
    Err(Error::Quantile {
        aggregate: name.to_string(),
        detail,
    })
}

/// The aggregate's kind, as the builder method is called.
fn kind(a: &Aggregate) -> &'static str {
    match a {
        Aggregate::CountUnits { .. } => "count_units",
        Aggregate::Sum { .. } => "sum",
        Aggregate::Mean { .. } => "mean",
        Aggregate::Quantile { .. } => "quantile",
    }
}

/// The builder call that gives `a` explicit bounds, spelled with its own names.
fn clamped_call(a: &Aggregate) -> String {
    match a {
        Aggregate::Sum { name, column, .. } => {
            format!("sum_clamped(\"{name}\", \"{column}\", lower, upper)")
        }
        Aggregate::Mean { name, column, .. } => {
            format!("mean_clamped(\"{name}\", \"{column}\", lower, upper)")
        }
        Aggregate::Quantile {
            name, column, q, ..
        } => format!("quantile_clamped(\"{name}\", \"{column}\", {q}, [lower, upper], bins)"),
        Aggregate::CountUnits { .. } => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{meters_schema, FakeHost};
    use crate::{col, num, per_unit, time, ColumnType, Context, Error, Query};

    /// Builds a query on the `meters` dataset, releases it, and checks it failed without
    /// sending anything to the host; returns the error.
    fn refused_early(build: impl for<'c, 'h> FnOnce(Query<'c, 'h>) -> Query<'c, 'h>) -> Error {
        let mut host = FakeHost::new().with_dataset(meters_schema());
        let mut ctx = Context::new(&mut host);
        let err = build(ctx.dataset("meters").unwrap())
            .release(1.0)
            .expect_err("the SDK should refuse this plan");
        assert!(host.plans().is_empty(), "nothing may reach the host: {err}");
        err
    }

    /// Builds a query on the `meters` dataset and checks the SDK lets it through.
    fn accepted(build: impl for<'c, 'h> FnOnce(Query<'c, 'h>) -> Query<'c, 'h>) {
        let mut host = FakeHost::new().with_dataset(meters_schema());
        let mut ctx = Context::new(&mut host);
        let q = build(ctx.dataset("meters").unwrap());
        if let Err(e) = q.check() {
            panic!("the SDK refused a plan the host accepts: {e}");
        }
    }

    #[test]
    fn an_unknown_column_is_named_with_the_available_ones() {
        let err = refused_early(|q| {
            q.derive("slot", col("read_at").half_hour())
                .filter(col("kwhh").gt(0.0))
                .count_units("n")
        });
        let Error::UnknownColumn {
            column, available, ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(column, "kwhh");
        assert!(
            available.contains("kwh") && available.ends_with("slot"),
            "{available}"
        );
    }

    #[test]
    fn a_column_used_before_it_is_derived_is_unknown_at_that_step() {
        let err = refused_early(|q| {
            q.filter(col("slot").lt(10))
                .derive("slot", col("read_at").half_hour())
                .count_units("n")
        });
        assert!(matches!(err, Error::UnknownColumn { ref column, .. } if column == "slot"));
        // Aggregates and keys see every derived column, whatever the call order.
        accepted(|q| {
            q.mean("m", "hour")
                .group_by(["hour"])
                .derive("hour", col("read_at").hour())
        });
    }

    #[test]
    fn reading_the_privacy_unit_is_refused_by_name() {
        let err = refused_early(|q| q.group_by(["meter_id"]).count_units("n"));
        assert!(matches!(err, Error::PrivacyUnit { ref column, .. } if column == "meter_id"));
        assert!(err.to_string().contains("count_units"), "{err}");
    }

    #[test]
    fn an_aggregate_over_text_names_the_column_and_its_type() {
        let err = refused_early(|q| q.group_by(["region"]).sum("total", "tariff"));
        let Error::ColumnType {
            aggregate,
            column,
            found,
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!((aggregate.as_str(), column.as_str()), ("total", "tariff"));
        assert_eq!(*found, ColumnType::Str);
        assert!(err.to_string().contains("'tariff' has type str"), "{err}");
        // Derived booleans are not numbers either.
        let err = refused_early(|q| q.derive("big", col("kwh").gt(2.0)).mean("m", "big"));
        assert!(
            matches!(
                err,
                Error::ColumnType {
                    found: ColumnType::Bool,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn missing_bounds_name_the_aggregate_and_the_clamped_call_to_write() {
        let err = refused_early(|q| q.group_by(["region"]).mean("avg_people", "occupants"));
        let Error::Bounds {
            aggregate, column, ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(
            (aggregate.as_str(), column.as_str()),
            ("avg_people", "occupants")
        );
        let text = err.to_string();
        assert!(text.contains("declares none for 'occupants'"), "{text}");
        assert!(text.contains("mean_clamped(\"avg_people\", \"occupants\", lower, upper)"));

        let err = refused_early(|q| {
            q.per_unit("monthly", per_unit::sum(num("kwh")))
                .quantile("p90", "monthly", 0.9)
        });
        let text = err.to_string();
        assert!(text.contains("derived column 'monthly' has none"), "{text}");
        assert!(text.contains("quantile_clamped(\"p90\", \"monthly\", 0.9, [lower, upper], bins)"));

        let err = refused_early(|q| q.derive("double", num("kwh") * 2).sum("s", "double"));
        assert!(
            err.to_string().contains("sum_clamped(\"s\", \"double\""),
            "{err}"
        );
    }

    #[test]
    fn derived_columns_that_keep_bounds_need_none_given() {
        accepted(|q| q.derive("h", time("read_at").hour()).mean("mean_hour", "h"));
        accepted(|q| {
            q.per_unit("usual", per_unit::mean(num("kwh")))
                .quantile("median_usual", "usual", 0.5)
        });
        accepted(|q| q.derive("copy", col("kwh")).sum("s", "copy"));
        accepted(|q| {
            q.per_unit("monthly", per_unit::sum(num("kwh")))
                .mean_clamped("m", "monthly", 0.0, 500.0)
        });
    }

    #[test]
    fn bounds_that_are_not_an_interval_are_shown() {
        let err = refused_early(|q| q.sum_clamped("s", "kwh", 5.0, 1.0));
        assert!(matches!(err, Error::Bounds { ref aggregate, .. } if aggregate == "s"));
        assert!(err.to_string().contains("[5, 1]"), "{err}");
        let err = refused_early(|q| q.mean_clamped("m", "kwh", 0.0, f64::INFINITY));
        assert!(err.to_string().contains("[0, inf]") && err.to_string().contains("finite"));
        let err = refused_early(|q| q.mean_clamped("m", "kwh", f64::NAN, 1.0));
        assert!(matches!(err, Error::Bounds { .. }), "{err}");
        let err = refused_early(|q| q.quantile_clamped("p", "kwh", 0.5, [1.0, 1.0], 10));
        assert!(err.to_string().contains("lower < upper"), "{err}");
        accepted(|q| q.sum_clamped("s", "kwh", 1.0, 1.0));
    }

    #[test]
    fn a_quantile_outside_zero_one_is_refused() {
        for q in [0.0, 1.0, 1.5, -0.1, f64::NAN] {
            let err = refused_early(|b| b.quantile("p", "kwh", q));
            let Error::Quantile { aggregate, detail } = &err else {
                panic!("{err}")
            };
            assert_eq!(aggregate, "p");
            assert!(detail.contains(&format!("got {q}")), "{detail}");
        }
        let err = refused_early(|b| b.quantile_clamped("p", "kwh", 0.5, [0.0, 1.0], 1));
        assert!(err.to_string().contains("at least 2 bins"), "{err}");
        accepted(|b| b.median("m", "kwh"));
    }

    #[test]
    fn a_group_key_without_a_public_domain_is_refused_with_what_to_do() {
        let err = refused_early(|q| q.group_by(["tariff"]).count_units("n"));
        let Error::GroupKey { key, detail } = &err else {
            panic!("{err}")
        };
        assert_eq!(key, "tariff");
        assert!(
            detail.contains("(str)") && detail.contains("select_keys()"),
            "{detail}"
        );

        let err = refused_early(|q| q.group_by(["read_at"]).count_units("n"));
        assert!(err.to_string().contains(".date()"), "{err}");
        let err = refused_early(|q| q.group_by(["kwh"]).count_units("n"));
        assert!(err.to_string().contains("bin(edges)"), "{err}");
        let err = refused_early(|q| q.group_by(["kwh"]).count_units("n").select_keys());
        assert!(
            matches!(err, Error::GroupKey { .. }),
            "no key selection on floats: {err}"
        );
        let err = refused_early(|q| {
            q.derive("double", num("kwh") * 2)
                .group_by(["double"])
                .count_units("n")
        });
        assert!(err.to_string().contains("derived column 'double'"), "{err}");
        let err = refused_early(|q| {
            q.per_unit("readings", per_unit::count(col("kwh")))
                .group_by(["readings"])
                .count_units("n")
        });
        assert!(matches!(err, Error::GroupKey { ref key, .. } if key == "readings"));
    }

    #[test]
    fn keys_with_declared_implicit_or_derived_domains_are_accepted() {
        accepted(|q| {
            q.group_by(["region", "occupants", "consent"])
                .count_units("n")
        });
        accepted(|q| {
            q.derive("day", time("read_at").date())
                .derive("slot", time("read_at").half_hour())
                .derive("band", num("kwh").bin([0.0, 1.0, 5.0]))
                .derive("big", num("kwh").gt(2.0))
                .per_unit("home", per_unit::mode(col("region")))
                .group_by(["day", "slot", "band", "big", "home"])
                .count_units("n")
        });
        accepted(|q| q.group_by(["tariff"]).count_units("n").select_keys());
        accepted(|q| {
            q.per_unit("readings", per_unit::count(col("kwh")))
                .group_by(["readings"])
                .select_keys()
                .count_units("n")
        });
    }

    #[test]
    fn aggregate_names_must_be_distinct_and_not_reserved() {
        let err = refused_early(|q| q.count_units("n").sum("n", "kwh"));
        assert!(matches!(err, Error::AggregateName { ref name, .. } if name == "n"));
        assert!(err.to_string().contains("used by two aggregates"), "{err}");
        let err = refused_early(|q| q.count_units(""));
        assert!(err.to_string().contains("is empty"), "{err}");
        let err = refused_early(|q| q.count_units("__n"));
        assert!(err.to_string().contains("reserved"), "{err}");
    }

    #[test]
    fn a_plan_over_the_hosts_size_limits_is_refused_before_sending() {
        let err = refused_early(|mut q| {
            for i in 0..=crate::plan::MAX_AGGREGATES {
                q = q.count_units(&format!("n{i}"));
            }
            q
        });
        assert!(err.to_string().contains("at most 32"), "{err}");
    }

    #[test]
    fn a_plan_without_aggregates_or_with_a_bad_epsilon_is_refused() {
        let err = refused_early(|q| q.group_by(["region"]));
        assert!(matches!(err, Error::InvalidPlan(_)), "{err}");
        let mut host = FakeHost::new().with_dataset(meters_schema());
        let mut ctx = Context::new(&mut host);
        let r = ctx.dataset("meters").unwrap().count_units("n").release(0.0);
        assert!(matches!(r, Err(Error::InvalidPlan(ref m)) if m.contains("epsilon")));
        assert!(host.plans().is_empty());
    }
}
