"""The module's tests. ``oar test`` runs them (``python3 -m unittest discover -s tests`` with the
SDK importable and ``OAR`` naming the oar binary); pytest runs them too.

- :class:`PostProcessing` checks ``combine`` and the plans with a scripted host (``FakeHost``):
  no data, no host, milliseconds.
- :class:`ThroughTheGate` runs ``run`` natively against the real host (``oar local-host``):
  scope checks, privacy gate, budget ledger and limits, on synthetic data.
"""

from __future__ import annotations

import doctest
import unittest
from pathlib import Path

import app
from oar_guest import Context, Table, col
from oar_guest.local import Harness, RunFailed
from oar_guest.testing import FakeHost, cdr_schema

MANIFEST = Path(__file__).resolve().parent.parent / "manifest.toml"


def load_tests(loader, tests, ignore):  # the docstring examples in app.py are tests too
    tests.addTests(doctest.DocTestSuite(app))
    return tests


class PostProcessing(unittest.TestCase):
    def test_a_region_suppressed_in_either_release_is_suppressed(self) -> None:
        everyone = Table(["region"], ["subscribers"])
        everyone.push(["R01"], [120.0])
        everyone.push_suppressed(["R21"], "minimum_units")
        night = Table(["region"], ["at_night"])
        night.push(["R01"], [30.0])
        night.push_suppressed(["R21"], "minimum_units")
        out = app.combine(everyone, night)
        self.assertEqual(out.get(["R01"], "night_share"), 0.25)
        self.assertEqual(out.rows[1].suppressed, "derived")

    def test_two_releases_each_spend_half_the_epsilon(self) -> None:
        host = FakeHost().with_dataset(cdr_schema()).with_outputs([app.OUTPUT])
        app.run(Context(host), {"epsilon": 0.8})
        plans = host.plans
        self.assertEqual([p["epsilon"] for p in plans], [0.4, 0.4])
        self.assertEqual(plans[0]["bounds"], {"max_groups_per_unit": 2})
        self.assertIn(app.OUTPUT, host.emitted)

    def test_an_unknown_parameter_is_refused_by_name(self) -> None:
        with self.assertRaisesRegex(Exception, "unknown parameter 'epsillon'"):
            app.params({"epsillon": 1.0})


class ThroughTheGate(unittest.TestCase):
    harness: Harness

    @classmethod
    def setUpClass(cls) -> None:
        cls.harness = Harness(MANIFEST)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.harness.close()

    def test_publishes_one_row_per_region_and_never_the_small_island(self) -> None:
        record = self.harness.run(app.run, {"epsilon": 1.0})
        self.assertEqual(len(record.charges), 2, "two releases")
        table = record.outputs[app.OUTPUT]
        self.assertEqual(len(table.rows), 21, "20 mainland regions and the island")
        for row in table.rows:
            if row.keys == ["R21"]:
                # Six residents: always below the minimum of 10.
                self.assertIsNotNone(row.suppressed)
            elif row.suppressed is None:
                self.assertTrue(0.0 <= table.get(row.keys, "night_share") <= 1.0)
        self.assertGreaterEqual(len(table.released()), 12)

    def test_a_column_outside_the_manifest_is_refused_and_nothing_is_charged(self) -> None:
        def reads_cell_ids(ctx, given):
            ctx.dataset("cdr").filter(col("cell_id").eq("R01-C01")).count_units("n").release(0.5)

        with self.assertRaises(RunFailed) as failed:
            self.harness.run(reads_cell_ids)
        self.assertIn("cell_id", str(failed.exception))
        self.assertEqual(failed.exception.record.charges, [])


if __name__ == "__main__":
    unittest.main()
