"""Unit tests of the Python SDK (run with `python3 -m unittest` or pytest from guest-sdk/python;
tests/examples.rs runs them in the README's test command)."""

import doctest
import json
import unittest

import oar_guest
from oar_guest import Context, PlanError, Refused, Table, col, lit, per_unit
from oar_guest import _json, expr, host, table, testing
from oar_guest.testing import FakeHost, cdr_schema


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
    for module in (_json, expr, host, table, testing, per_unit, oar_guest):
        tests.addTests(doctest.DocTestSuite(module))
    return tests


if __name__ == "__main__":
    unittest.main()
