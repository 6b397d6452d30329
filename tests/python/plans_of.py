"""Runs a Python module against a FakeHost and prints the plans it sent, one JSON text per line.

Usage: plans_of.py MODULE_DIR PARAMS_JSON < dataset_schema.json
(PYTHONPATH must reach guest-sdk/python.) Used by tests/examples.rs to compare each Python twin's
plans, byte for byte, with its Rust module's.
"""

import importlib.util
import json
import sys
from pathlib import Path

from oar_guest import Context
from oar_guest.testing import FakeHost


def main() -> int:
    module_dir, params = Path(sys.argv[1]), json.loads(sys.argv[2])
    spec = importlib.util.spec_from_file_location("app", module_dir / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    host = FakeHost().with_dataset(json.load(sys.stdin))
    app.run(Context(host), params)
    for text in host.plan_texts:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
