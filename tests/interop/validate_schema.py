"""Validates documents against one of OAR's published JSON Schemas with the `jsonschema` package.

Usage: validate_schema.py SCHEMA.json < cases.json
`cases.json` is a list of {"name": ..., "document": ..., "valid": true|false}. Prints one line per
case whose outcome differs from "valid" and exits 1 if there is any; exits 0 otherwise.
"""

import json
import sys

from jsonschema import Draft202012Validator


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    wrong = 0
    cases = json.load(sys.stdin)
    for case in cases:
        errors = list(validator.iter_errors(case["document"]))
        if bool(errors) == case["valid"]:
            wrong += 1
            why = "; ".join(e.message for e in errors[:3]) or "no error"
            print(f"{case['name']}: expected valid={case['valid']}: {why}")
    print(f"{len(cases) - wrong} of {len(cases)} cases as expected")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
