"""Unit tests of the Python SDK (run with `python3 -m unittest` or pytest from guest-sdk/python;
tests/examples.rs runs them in the README's test command)."""

import doctest
import json
import math
import unittest

import oar_guest
from oar_guest import Context, PlanError, Refused, Table, col, lit, per_unit
from oar_guest import _facts, _json, _validate, expr, host, table, testing
from oar_guest._facts import Env, Known
from oar_guest.testing import FakeHost, cdr_schema, meters_schema


def ctx_with(host_: FakeHost) -> Context:
    return Context(host_.with_dataset(cdr_schema()))


class JsonText(unittest.TestCase):
    def test_floats_are_written_as_rust_writes_them(self):
        cases = {1.0: "1.0", 0.1: "0.1", 1e-7: "1e-7", 7.5e-08: "7.5e-8", 1e16: "1e16",
                 123456.0: "123456.0", -0.5: "-0.5", 2.5e-5: "2.5e-5", 1e21: "1e21"}
        for x, text in cases.items():
            self.assertEqual(_json.dumps(x), text)

    def test_text_keeps_non_ascii_and_escapes_controls(self):
        self.assertEqual(_json.dumps("Zürich\n\"q\""), '"Zürich\\n\\"q\\""')

    def test_non_finite_numbers_are_refused(self):
        with self.assertRaises(ValueError):
            _json.dumps(float("nan"))


class Builder(unittest.TestCase):
    def test_a_plan_is_the_rust_sdks_json(self):
        q = ctx_with(FakeHost()).dataset("cdr").derive("day", col("timestamp").date())
        q = q.group_by(["region", "day"]).count_units("subscribers").max_groups_per_unit(14)
        self.assertEqual(
            q.plan_json(1.0),
            '{"dataset":"cdr","steps":[{"op":"derive","name":"day","expr":{"kind":"date",'
            '"expr":{"kind":"column","name":"timestamp"}}}],"group_by":["region","day"],'
            '"aggregates":[{"agg":"count_units","name":"subscribers"}],'
            '"bounds":{"max_groups_per_unit":14},"epsilon":1.0}',
        )

    def test_operators_build_comparisons_logic_and_arithmetic(self):
        e = ((col("kwh") * 2 + 1) >= lit(3.0)) & ~col("flag").is_in([True])
        j = e.to_json()
        self.assertEqual(j["kind"], "and")
        self.assertEqual(j["left"]["op"], "ge")
        self.assertEqual(j["left"]["left"]["op"], "add")
        self.assertEqual(j["right"]["kind"], "not")
        self.assertEqual(e.columns(), ["kwh", "flag"])
        reflected = (2 - col("kwh")).to_json()
        self.assertEqual((reflected["op"], reflected["left"]["value"]), ("sub", 2))
        self.assertEqual(reflected["right"], {"kind": "column", "name": "kwh"})

    def test_per_unit_steps_carry_rows_and_by_only_when_given(self):
        plain = per_unit.count(col("cell_id")).to_step("calls")
        self.assertNotIn("rows", plain)
        self.assertNotIn("by", plain)
        step = per_unit.mode(col("region")).rows(col("timestamp").hour() < 6).by(["day"])
        self.assertEqual(step.to_step("home")["by"], ["day"])

    def test_totals_key_selection_and_aggregates_appear_in_rust_order(self):
        q = ctx_with(FakeHost()).dataset("cdr").group_by("region").count_units("n")
        q = q.quantile("q", "x", 0.9, (0.0, 10.0), 20).with_totals().select_keys()
        plan = q.plan(1)
        self.assertEqual(list(plan), ["dataset", "steps", "group_by", "aggregates", "bounds",
                                      "epsilon", "totals", "key_selection"])
        self.assertEqual(list(plan["aggregates"][1]), ["agg", "name", "column", "q", "bounds", "bins"])


class EarlyChecks(unittest.TestCase):
    def test_the_unit_is_never_read_or_a_key(self):
        q = ctx_with(FakeHost()).dataset("cdr")
        with self.assertRaises(PlanError) as e:
            q.filter(col("subscriber_id").eq(42)).count_units("n").check()
        self.assertEqual(e.exception.column, "subscriber_id")
        q = ctx_with(FakeHost()).dataset("cdr").group_by(["subscriber_id"]).count_units("n")
        with self.assertRaises(PlanError):
            q.check()

    def test_an_unknown_column_is_named_with_the_columns_there_are(self):
        q = ctx_with(FakeHost()).dataset("cdr").filter(col("regoin").eq("North")).count_units("n")
        with self.assertRaises(PlanError) as e:
            q.check()
        self.assertIn("'regoin'", str(e.exception))
        self.assertIn("region", str(e.exception))

    def test_derived_columns_can_be_read_after_they_are_derived(self):
        q = ctx_with(FakeHost()).dataset("cdr").derive("h", col("timestamp").hour())
        q.filter(col("h") < 6).group_by(["h"]).count_units("n").check()

    def test_repeated_names_and_a_bad_epsilon_are_refused_before_the_host(self):
        h = FakeHost()
        q = ctx_with(h).dataset("cdr").count_units("n").count_units("n")
        with self.assertRaises(PlanError):
            q.release(1.0)
        with self.assertRaises(PlanError):
            ctx_with(h).dataset("cdr").count_units("n").release(0)
        self.assertEqual(h.plans, [])


def refused_early(test: unittest.TestCase, build) -> PlanError:
    """Builds a query on the `meters` dataset, releases it, and checks it failed without sending
    anything to the host; returns the error (validate.rs's `refused_early`)."""
    h = FakeHost().with_dataset(meters_schema())
    q = build(Context(h).dataset("meters"))
    with test.assertRaises(PlanError, msg="the SDK should refuse this plan") as e:
        q.release(1.0)
    test.assertEqual(h.plans, [], f"nothing may reach the host: {e.exception}")
    return e.exception


def accepted(test: unittest.TestCase, build) -> None:
    """Builds a query on the `meters` dataset and checks the SDK lets it through."""
    q = build(Context(FakeHost().with_dataset(meters_schema())).dataset("meters"))
    try:
        q.check()
    except PlanError as e:
        test.fail(f"the SDK refused a plan the host accepts: {e}")


class Facts(unittest.TestCase):
    """The tests of the Rust SDK's facts.rs."""

    def test_dataset_columns_carry_their_declared_facts(self):
        env = Env(meters_schema())
        kwh = env.get("kwh")
        self.assertEqual((kwh.ty, kwh.bounds, kwh.domain), ("float", Known.YES, Known.NO))
        self.assertEqual(env.get("consent").domain, Known.YES, "booleans have a domain")
        self.assertEqual(env.get("tariff").domain, Known.NO)
        self.assertEqual(env.get("read_at").period, Known.YES)
        self.assertIsNone(env.get("meter_id"), "the privacy unit is not a column")

    def test_derived_values_follow_the_hosts_rules(self):
        env = Env(meters_schema())
        hour = env.of_expr(col("read_at").hour().to_json())
        self.assertEqual((hour.bounds, hour.domain), (Known.YES, Known.YES))
        day = env.of_expr(col("read_at").date().to_json())
        self.assertEqual(day.domain, Known.YES, "the period gives date() a domain")
        scaled = env.of_expr((col("kwh") * 2).to_json())
        self.assertEqual((scaled.ty, scaled.bounds), ("float", Known.NO))
        self.assertEqual(env.of_expr((lit(1) + 2).to_json()).ty, "int")
        self.assertEqual(env.of_expr(col("kwh").gt(1.0).to_json()).ty, "bool")
        self.assertIsNone(env.of_expr(col("nope").to_json()).ty, "unknown stays unknown")
        mean = env.of_per_unit("mean", col("kwh").to_json())
        self.assertEqual(mean.bounds, Known.YES, "a per-unit mean keeps its input's bounds")
        self.assertEqual(env.of_per_unit("sum", col("kwh").to_json()).bounds, Known.NO)
        count = env.of_per_unit("count", col("kwh").to_json())
        self.assertEqual((count.ty, count.domain), ("int", Known.NO))

    def test_a_derived_column_shadows_a_dataset_column(self):
        env = Env(meters_schema())
        env.define("kwh", env.of_expr((col("kwh") * 2).to_json()))
        self.assertEqual(env.get("kwh").bounds, Known.NO)
        self.assertEqual(env.names().count("kwh"), 1)


class Validate(unittest.TestCase):
    """The tests of the Rust SDK's validate.rs, case for case; the texts are the Rust SDK's
    `Error` texts (with its `*_clamped` and typed-handle calls spelled in Python)."""

    def test_an_unknown_column_is_named_with_the_available_ones(self):
        err = refused_early(self, lambda q: q.derive("slot", col("read_at").half_hour())
                            .filter(col("kwhh").gt(0.0)).count_units("n"))
        self.assertEqual(err.column, "kwhh")
        self.assertTrue(str(err).startswith("column 'kwhh' is not in dataset 'meters'; "), err)
        available = str(err).split("available columns: ")[1]
        self.assertTrue("kwh" in available and available.endswith("slot"), available)

    def test_a_column_used_before_it_is_derived_is_unknown_at_that_step(self):
        err = refused_early(self, lambda q: q.filter(col("slot").lt(10))
                            .derive("slot", col("read_at").half_hour()).count_units("n"))
        self.assertEqual(err.column, "slot")
        self.assertIn("is not in dataset", str(err))
        # Aggregates and keys see every derived column, whatever the call order.
        accepted(self, lambda q: q.mean("m", "hour").group_by(["hour"])
                 .derive("hour", col("read_at").hour()))

    def test_reading_the_privacy_unit_is_refused_by_name(self):
        err = refused_early(self, lambda q: q.group_by(["meter_id"]).count_units("n"))
        self.assertEqual(err.column, "meter_id")
        self.assertIn("is the privacy unit of dataset 'meters'", str(err))
        self.assertIn("count_units", str(err))

    def test_an_aggregate_over_text_names_the_column_and_its_type(self):
        err = refused_early(self, lambda q: q.group_by(["region"]).sum("total", "tariff"))
        self.assertEqual(err.column, "tariff")
        self.assertTrue(str(err).startswith("aggregate 'total': column 'tariff'"), err)
        self.assertIn("'tariff' has type str", str(err))
        # Derived booleans are not numbers either.
        err = refused_early(self, lambda q: q.derive("big", col("kwh").gt(2.0)).mean("m", "big"))
        self.assertIn("'big' has type bool", str(err))

    def test_missing_bounds_name_the_aggregate_and_the_clamped_call_to_write(self):
        err = refused_early(self, lambda q: q.group_by(["region"]).mean("avg_people", "occupants"))
        self.assertEqual(err.column, "avg_people")
        text = str(err)
        self.assertTrue(text.startswith("aggregate 'avg_people' over column 'occupants': "), text)
        self.assertIn("declares none for 'occupants'", text)
        self.assertIn('mean("avg_people", "occupants", bounds=(lower, upper))', text)

        err = refused_early(self, lambda q: q.per_unit("monthly", per_unit.sum(col("kwh")))
                            .quantile("p90", "monthly", 0.9))
        text = str(err)
        self.assertIn("derived column 'monthly' has none", text)
        self.assertIn('quantile("p90", "monthly", 0.9, bounds=(lower, upper))', text)

        err = refused_early(self, lambda q: q.derive("double", col("kwh") * 2).sum("s", "double"))
        self.assertIn('sum("s", "double", bounds=(lower, upper))', str(err))

    def test_derived_columns_that_keep_bounds_need_none_given(self):
        accepted(self, lambda q: q.derive("h", col("read_at").hour()).mean("mean_hour", "h"))
        accepted(self, lambda q: q.per_unit("usual", per_unit.mean(col("kwh")))
                 .quantile("median_usual", "usual", 0.5))
        accepted(self, lambda q: q.derive("copy", col("kwh")).sum("s", "copy"))
        accepted(self, lambda q: q.per_unit("monthly", per_unit.sum(col("kwh")))
                 .mean("m", "monthly", (0.0, 500.0)))

    def test_bounds_that_are_not_an_interval_are_shown(self):
        err = refused_early(self, lambda q: q.sum("s", "kwh", (5.0, 1.0)))
        self.assertEqual(err.column, "s")
        self.assertTrue(str(err).startswith("aggregate 's' over column 'kwh': "), err)
        self.assertIn("[5, 1]", str(err))
        err = refused_early(self, lambda q: q.mean("m", "kwh", (0.0, math.inf)))
        self.assertTrue("[0, inf]" in str(err) and "finite" in str(err), err)
        err = refused_early(self, lambda q: q.mean("m", "kwh", (math.nan, 1.0)))
        self.assertTrue(str(err).startswith("aggregate 'm' over column 'kwh': "), err)
        err = refused_early(self, lambda q: q.quantile("p", "kwh", 0.5, (1.0, 1.0), 10))
        self.assertIn("lower < upper", str(err))
        accepted(self, lambda q: q.sum("s", "kwh", (1.0, 1.0)))

    def test_a_quantile_outside_zero_one_is_refused(self):
        # As Rust writes each q: 0, 1, 1.5, -0.1, NaN.
        for q, shown in [(0.0, "0"), (1.0, "1"), (1.5, "1.5"), (-0.1, "-0.1"), (math.nan, "NaN")]:
            err = refused_early(self, lambda b: b.quantile("p", "kwh", q))
            self.assertEqual(err.column, "p")
            self.assertTrue(str(err).startswith("quantile 'p': "), err)
            self.assertTrue(str(err).endswith(f"got {shown}"), err)
        err = refused_early(self, lambda b: b.quantile("p", "kwh", 0.5, (0.0, 1.0), 1))
        self.assertIn("at least 2 bins", str(err))
        accepted(self, lambda b: b.median("m", "kwh"))

    def test_a_group_key_without_a_public_domain_is_refused_with_what_to_do(self):
        err = refused_early(self, lambda q: q.group_by(["tariff"]).count_units("n"))
        self.assertEqual(err.column, "tariff")
        self.assertTrue(str(err).startswith("cannot group by 'tariff': "), err)
        self.assertTrue("(str)" in str(err) and "select_keys()" in str(err), err)

        err = refused_early(self, lambda q: q.group_by(["read_at"]).count_units("n"))
        self.assertIn('col("read_at").date()', str(err))
        err = refused_early(self, lambda q: q.group_by(["kwh"]).count_units("n"))
        self.assertIn('col("kwh").bin(edges)', str(err))
        err = refused_early(self, lambda q: q.group_by(["kwh"]).count_units("n").select_keys())
        self.assertTrue(str(err).startswith("cannot group by 'kwh': "),
                        f"no key selection on floats: {err}")
        err = refused_early(self, lambda q: q.derive("double", col("kwh") * 2)
                            .group_by(["double"]).count_units("n"))
        self.assertIn("derived column 'double'", str(err))
        err = refused_early(self, lambda q: q.per_unit("readings", per_unit.count(col("kwh")))
                            .group_by(["readings"]).count_units("n"))
        self.assertEqual(err.column, "readings")
        self.assertTrue(str(err).startswith("cannot group by 'readings': "), err)

    def test_keys_with_declared_implicit_or_derived_domains_are_accepted(self):
        accepted(self, lambda q: q.group_by(["region", "occupants", "consent"]).count_units("n"))
        accepted(self, lambda q: q.derive("day", col("read_at").date())
                 .derive("slot", col("read_at").half_hour())
                 .derive("band", col("kwh").bin([0.0, 1.0, 5.0]))
                 .derive("big", col("kwh").gt(2.0))
                 .per_unit("home", per_unit.mode(col("region")))
                 .group_by(["day", "slot", "band", "big", "home"])
                 .count_units("n"))
        accepted(self, lambda q: q.group_by(["tariff"]).count_units("n").select_keys())
        accepted(self, lambda q: q.per_unit("readings", per_unit.count(col("kwh")))
                 .group_by(["readings"]).select_keys().count_units("n"))

    def test_aggregate_names_must_be_distinct_and_not_reserved(self):
        err = refused_early(self, lambda q: q.count_units("n").sum("n", "kwh"))
        self.assertEqual(err.column, "n")
        self.assertTrue(str(err).startswith("aggregate name 'n' "), err)
        self.assertIn("used by two aggregates", str(err))
        err = refused_early(self, lambda q: q.count_units(""))
        self.assertIn("is empty", str(err))
        err = refused_early(self, lambda q: q.count_units("__n"))
        self.assertIn("reserved", str(err))

    def test_a_plan_over_the_hosts_size_limits_is_refused_before_sending(self):
        def build(q):
            for i in range(_validate.MAX_AGGREGATES + 1):
                q = q.count_units(f"n{i}")
            return q

        err = refused_early(self, build)
        self.assertIn("at most 32", str(err))

    def test_a_plan_without_aggregates_or_with_a_bad_epsilon_is_refused(self):
        err = refused_early(self, lambda q: q.group_by(["region"]))
        self.assertTrue(str(err).startswith("invalid plan: "), err)
        h = FakeHost().with_dataset(meters_schema())
        with self.assertRaises(PlanError) as e:
            Context(h).dataset("meters").count_units("n").release(0.0)
        self.assertIn("epsilon", str(e.exception))
        self.assertEqual(h.plans, [])


class HostCalls(unittest.TestCase):
    def test_check_with_host_charges_nothing_and_gives_the_refusal(self):
        h = FakeHost().with_budget("cdr", 1.0)
        ctx = ctx_with(h)
        ctx.dataset("cdr").group_by(["region"]).count_units("n").check_with_host(0.5)
        with self.assertRaises(Refused):
            ctx.dataset("cdr").group_by(["region"]).count_units("n").check_with_host(2.0)
        self.assertEqual(ctx.budget_remaining("cdr"), 1.0)
        self.assertEqual(h.plans, [])

    def test_a_refused_query_raises_with_the_hosts_reason(self):
        ctx = ctx_with(FakeHost().refuse("policy says no"))
        with self.assertRaises(Refused) as e:
            ctx.dataset("cdr").group_by(["region"]).count_units("n").release(1.0)
        self.assertEqual(str(e.exception), "policy says no")

    def test_tables_round_trip_and_report_their_noise(self):
        t = Table(["region"], ["n"], release={"accuracy": [{"column": "n", "noise_scale": 1.5}]})
        t.push(["North"], [12])
        t.push_suppressed(["South"], "minimum_units")
        back = Table.from_json(json.loads(t.dumps()))
        self.assertEqual(back, t)
        self.assertEqual(back.get(["North"], "n"), 12.0)
        self.assertIsNone(back.get(["South"], "n"))
        self.assertAlmostEqual(back.noise_sd("n"), 1.5 * 2 ** 0.5)
        with self.assertRaises(ValueError):
            t.push(["East"], [1, 2])

    def test_emit_checks_the_declared_outputs(self):
        h = FakeHost().with_outputs(["summary"])
        ctx = ctx_with(h)
        ctx.emit("summary", Table(["k"], ["v"]))
        with self.assertRaises(oar_guest.EmitError):
            ctx.emit("other", Table(["k"], ["v"]))


def load_tests(loader, tests, ignore):
    for module in (_facts, _json, _validate, expr, host, table, testing, per_unit, oar_guest):
        tests.addTests(doctest.DocTestSuite(module))
    return tests


if __name__ == "__main__":
    unittest.main()
