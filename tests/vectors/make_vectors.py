#!/usr/bin/env python3
"""Computes OAR's canonical-encoding test vectors with tools independent of the Rust code.

Canonical JSON is RFC 8785 (JCS) as computed by the PyPI package `rfc8785` (Trail of Bits), fed
with what Python's `json.loads` reads: integer literals become Python ints (which `rfc8785`
refuses outside the I-JSON range +-(2**53 - 1)), every other number a binary64 float. Digests use
`hashlib`, signatures the `cryptography` package's Ed25519. Versions are pinned in
`requirements.txt`.

`canonical.json` gets two lists:

- `documents`: an approval record, a manifest and a revocation list as a person might write them
  (indented, keys in another order), with their canonical bytes, digests and signatures;
- `jcs`: plain canonicalization vectors, a JSON text in and either the canonical text out or the
  error that `rfc8785` raised (`expect_error`). They cover the RFC 8785 examples (section 3.2.3's
  sorting example, section 3.2.4's example, Appendix B's numbers, whose RFC-given outputs this script
  asserts) and the hard cases: UTF-16 key order with astral-plane keys, ECMAScript number forms,
  the I-JSON integer range, escapes and characters that stay literal.

`tests/canonical_vectors.rs` checks that the Rust implementation reproduces every byte;
`cross_check.mjs` checks every canonical form against the npm package `canonicalize` (and the
digests and signatures against Node's crypto). To regenerate and cross-check, from the repository
root:

    python3 tests/vectors/make_vectors.py     # makes a venv with the pinned packages if needed
    bash tests/vectors/cross_check.sh         # installs canonicalize 4.0.0 in a temporary folder

or by hand: `python3 -m venv /tmp/v && /tmp/v/bin/pip install -r tests/vectors/requirements.txt
&& /tmp/v/bin/python tests/vectors/make_vectors.py`.
"""
import hashlib
import json
import os
import pathlib
import random
import struct
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"


def pinned():
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip()] = version.strip()
    return pins


def ensure_pinned_environment():
    """Re-runs this script in a venv holding exactly the pinned packages unless this one does."""
    from importlib import metadata

    pins = pinned()
    try:
        if all(metadata.version(name) == version for name, version in pins.items()):
            return pins
    except metadata.PackageNotFoundError:
        pass
    if os.environ.get("OAR_VECTORS_BOOTSTRAPPED"):
        sys.exit(f"the venv at {sys.prefix} does not hold the versions in {REQUIREMENTS}")
    venv = pathlib.Path(
        os.environ.get("OAR_VECTORS_VENV", pathlib.Path(tempfile.gettempdir()) / "oar-vectors-venv")
    )
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True
    )
    print(f"running in {venv}", file=sys.stderr)
    env = dict(os.environ, OAR_VECTORS_BOOTSTRAPPED="1")
    os.execve(str(python), [str(python), str(pathlib.Path(__file__).resolve()), *sys.argv[1:]], env)


PINS = ensure_pinned_environment()

import rfc8785  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402


def canonical(value):
    return rfc8785.dumps(value)


# ---------------------------------------------------------------------------------------------
# Signed documents.


def parts_digest(*parts):
    # keys::sha256_parts: each part preceded by its length as a big-endian u64.
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "big"))
        h.update(p)
    return h.digest()


def key(seed):
    # KeyPair::from_seed: the ed25519 secret is SHA-256 of the seed text.
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())


def public_hex(k):
    raw = k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def document_vector(name, context, doc, seed):
    # The document as a person might write it: indented, keys in another order, non-ASCII escaped.
    written = json.dumps(dict(reversed(list(doc.items()))), indent=3, ensure_ascii=True)
    # Canonicalize what a reader of the written text gets, not the dict above.
    body = canonical(json.loads(written))
    if context is None:
        digest = hashlib.sha256(body).digest()
        signature = None
    else:
        digest = parts_digest(context.encode(), body)
        signature = key(seed).sign(context.encode() + b"\x00" + digest).hex()
    out = {
        "name": name,
        "context": context,
        "document": written,
        "canonical": body.decode("utf-8"),
        "digest": digest.hex(),
    }
    if signature:
        out.update(signer_seed=seed, signer_public=public_hex(key(seed)), signature=signature)
    return out


approval = {
    "module_name": "population",
    "module_hash": "ab" * 32,
    "manifest_hash": "cd" * 32,
    # Non-ASCII, an astral-plane character, U+2028, quotes, a backslash and a newline.
    "purpose": "Présence par région \U0001F4CA\u2028(«test» \"vector\" \\ </script>)\n",
    "datasets": [{"name": "cdr", "columns": ["timestamp", "region"]}],
    # 0.1 has no exact binary form; 56.0 is written with a fraction and canonicalizes to 56.
    "epsilon_per_run": 0.1,
    "epsilon_total": 56.0,
    "valid_from": "2026-01-01T00:00:00Z",
    "valid_until": "2026-12-31T23:59:59Z",
    "conditions": "publish within 30 days\tonly\u0001\u001f\u007f",
}
manifest = {
    "name": "population",
    "version": "0.1.0",
    "author": "Office for Statistics (example) \u00e9\u20ac\U0001F600",
    "purpose": "Present population per region per day.",
    "max_epsilon_per_run": 1e-7,
    "datasets": [{"name": "cdr", "columns": ["timestamp", "region"]}],
    "outputs": [{"name": "population_by_region_day", "description": "Noisy counts.\r\n"}],
}
revocations = {
    "serial": 9007199254740991,
    "issued_at": "2026-06-01T12:00:00Z",
    "entries": [
        {"kind": "module", "id": "ab" * 32, "reason": "bug in bounds", "revoked_at": "2026-06-01T12:00:00Z"},
        {"kind": "key", "id": "ef" * 32, "reason": "laptop lost", "revoked_at": "2026-05-30T08:30:00Z"},
    ],
}
documents = [
    document_vector("approval record", "oar-approval-v1", approval, "example member 1"),
    document_vector("manifest", None, manifest, None),
    document_vector("revocation list", "oar-revocation-v1", revocations, "example holder"),
]


# ---------------------------------------------------------------------------------------------
# Plain canonicalization vectors: JSON text in, canonical text (or an error) out.

jcs = []


def vec(name, text, rfc=None):
    """Adds a vector; `rfc`, when given, is the output RFC 8785 itself prints for this input."""
    value = json.loads(text)
    try:
        out = canonical(value).decode("utf-8")
    except rfc8785.CanonicalizationError as e:
        assert rfc is None, name
        jcs.append({"name": name, "input": text, "expect_error": f"{type(e).__name__}: {e}"})
        return
    if rfc is not None:
        assert out == rfc, f"{name}: rfc8785 printed {out!r}, RFC 8785 says {rfc!r}"
    jcs.append({"name": name, "input": text, "canonical": out})


def from_bits(bits):
    return struct.unpack(">d", bytes.fromhex(bits))[0]


# RFC 8785 section 3.2.3: sorting by UTF-16 code units.
vec(
    "RFC 8785 3.2.3 sorting example",
    '{\n  "\\u20ac": "Euro Sign",\n  "\\r": "Carriage Return",\n  "\\ufb33": "Hebrew Letter Dalet'
    ' With Dagesh",\n  "1": "One",\n  "\\ud83d\\ude00": "Emoji: Grinning Face",\n  "\\u0080":'
    ' "Control",\n  "\\u00f6": "Latin Small Letter O With Diaeresis"\n}',
    rfc='{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With'
    ' Diaeresis","\u20ac":"Euro Sign","\U0001F600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter'
    ' Dalet With Dagesh"}',
)
# RFC 8785 section 3.2.4 (the example of 3.2.2's rules).
vec(
    "RFC 8785 3.2.4 example",
    '{\n  "numbers": [333333333.33333329, 1E30, 4.50,\n              2e-3, 0.000000000000000000000000001],'
    '\n  "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",\n  "literals": [null, true, false]\n}',
    rfc='{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
)
# RFC 8785 Appendix B: binary64 values (as bit patterns) and their ECMAScript form. The RFC also
# lists NaN and Infinity, which JSON text cannot carry (see the 1e400 vectors for overflow).
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]
for bits, es in APPENDIX_B:
    # Python's repr is a shortest round-trip float literal (always with '.' or 'e').
    vec(f"RFC 8785 appendix B {bits}", repr(from_bits(bits)), rfc=es)

# Numbers.
NUMBERS = [
    ("float with a zero fraction", "56.0"),
    ("float with zeros after the point", "56.000"),
    ("exponent form begins at 1e21", "1e21"),
    ("just below 1e21", "999999999999999900000.0"),
    ("1e20 written as a float", "1e20"),
    ("exponent form ends below 1e-6", "1e-7"),
    ("1e-6", "1e-6"),
    ("1.5e-7", "1.5e-7"),
    ("negative zero integer", "-0"),
    ("negative zero float", "-0.0"),
    ("zero float", "0.0"),
    ("0.1", "0.1"),
    ("0.1 + 0.2", "0.30000000000000004"),
    ("largest double", "1.7976931348623157e308"),
    ("smallest subnormal", "5e-324"),
    ("smallest normal", "2.2250738585072014e-308"),
    ("underflow to zero", "1e-400"),
    ("negative underflow to zero", "-1e-400"),
    ("overflow to infinity", "1e400"),
    ("negative overflow to infinity", "-1e400"),
    ("upper-case exponent", "1E+2"),
    ("exponent with plus sign", "2.5e+3"),
    ("negative float", "-1.5"),
    ("small integer", "100"),
    ("negative integer", "-42"),
    ("largest I-JSON integer 2^53-1", "9007199254740991"),
    ("smallest I-JSON integer -(2^53-1)", "-9007199254740991"),
    ("integer 2^53 (outside I-JSON)", "9007199254740992"),
    ("integer -(2^53)", "-9007199254740992"),
    ("integer 2^53+1", "9007199254740993"),
    ("2^53+1 written as a float rounds to 2^53", "9007199254740993.0"),
    ("2^53+1 written with an exponent", "9.007199254740993e15"),
    ("integer 2^63", "9223372036854775808"),
    ("integer 2^64 (beyond 64 bits)", "18446744073709551616"),
    ("integer -(2^63)-1 (beyond 64 bits)", "-9223372036854775809"),
    ("integer 1e21 spelled out (beyond 64 bits)", "1000000000000000000000"),
    ("integer inside an object", '{"n":9007199254740993}'),
    ("integer beyond 64 bits inside an array", "[1,18446744073709551616]"),
    ("correctly rounded long decimal", "0.1000000000000000055511151231257827021181583404541015625"),
    ("many digits", "3.14159265358979323846264338327950288"),
]
for name, text in NUMBERS:
    vec(name, text)

# Seeded random doubles, one array per kind, so the number formatting is checked widely.
rng = random.Random(8785)


def finite_from_bits():
    while True:
        f = struct.unpack(">d", rng.getrandbits(64).to_bytes(8, "big"))[0]
        if f == f and f not in (float("inf"), float("-inf")):
            return f


def as_array(values):
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


vec("random binary64 bit patterns", as_array(finite_from_bits() for _ in range(400)))
vec(
    "random doubles of every decimal magnitude",
    as_array(rng.uniform(1, 10) * 10.0 ** rng.randint(-12, 25) * rng.choice((1, -1)) for _ in range(400)),
)
vec(
    "random integral doubles between 2^53 and 1e23",
    as_array(float(rng.randint(2**53, 10**23)) for _ in range(200)),
)
vec("random short decimals", as_array(round(rng.uniform(-1000, 1000), rng.randint(0, 6)) for _ in range(200)))

# Strings.
STRINGS = [
    ("empty string", '""'),
    ("quote and backslash", r'"say \"hi\" \\ back\\slash"'),
    ("solidus escape is dropped", r'"a\/b"'),
    ("two-character escapes", r'"\b\f\n\r\t"'),
    ("control characters U+0001 and U+001F", r'"\u0001x\u001f"'),
    ("every control character", '"' + "".join(f"\\u{i:04x}" for i in range(0x20)) + '"'),
    ("NUL", r'"a\u0000b"'),
    ("DEL stays literal", r'"\u007f"'),
    ("U+0080 stays literal", r'"\u0080"'),
    ("U+2028 and U+2029 stay literal", r'"\u2028\u2029"'),
    ("script end tag stays literal", r'"</script><!--"'),
    ("upper-case hex escapes", r'"\u00E9\u00C9"'),
    ("non-ASCII written raw", '"Pr\u00e9sence \u20ac"'),
    ("astral character escaped as a surrogate pair", r'"\ud83d\ude00"'),
    ("astral character written raw", '"\U0001F600"'),
    ("BOM and non-characters", r'"\ufeff\uffff\ufffe"'),
    ("lone high surrogate", r'"\ud800"'),
    ("lone low surrogate", r'"\udc00x"'),
    ("reversed surrogate pair", r'"\ude00\ud83d"'),
]
for name, text in STRINGS:
    vec(name, text)

# Object key order and structure.
STRUCTURES = [
    ("astral key sorts before U+FB33 (UTF-16 order, not code points)", '{"\\ufb33":1,"\\ud83d\\ude00":2}'),
    ("astral key sorts after U+D7FF", '{"\\ud83d\\ude00":1,"\\ud7ff":2}'),
    ("astral key sorts before U+E000", '{"\\ue000":1,"\\ud83d\\ude00":2}'),
    ("astral keys among themselves", '{"\\ud83d\\ude01":1,"\\ud83c\\udf00":2,"\\ud83d\\ude00":3}'),
    ("keys that are prefixes", '{"ab":1,"a":2,"":3,"b":4,"aa":5}'),
    ("upper case sorts before lower case", '{"a":1,"B":2,"A":3,"b":4}'),
    ("integer-like keys sort as strings", '{"10":1,"9":2,"1":3,"-1":4,"01":5}'),
    ("keys with escapes", '{"\\n":1,"\\"":2,"\\\\":3," ":4,"\\u0000":5}'),
    ("non-ASCII keys", '{"\\u00e9":1,"z":2,"\\u20ac":3,"\\u00ff":4}'),
    ("empty object", "{}"),
    ("empty array", "[]"),
    ("empty containers nested", '[{},[],{"a":{}},[[]]]'),
    ("nested objects sorted at every level", '{"b":[1,{"d":true,"c":null}],"a":{"z":{"y":1,"x":2},"w":[]}}'),
    ("array order is kept", "[3,1,2,\"b\",\"a\"]"),
    ("deep nesting", "[" * 40 + '{"k":"v"}' + "]" * 40),
    ("whitespace everywhere", ' \t\n\r{ "a" :\n[ 1 , 2 ] ,\r\n"b" : { } }\n '),
    ("literals", "[null,true,false]"),
    ("top-level null", "null"),
    ("top-level true", "true"),
    ("top-level string", '"x"'),
    ("top-level number", "1.0"),
]
for name, text in STRUCTURES:
    vec(name, text)

names = [v["name"] for v in documents + jcs]
assert len(names) == len(set(names)), "vector names must be unique"

about = {
    "generator": "tests/vectors/make_vectors.py",
    "canonicalization": f"rfc8785=={PINS['rfc8785']} (PyPI) over Python's json.loads",
    "signatures": f"cryptography=={PINS['cryptography']} Ed25519; digests hashlib SHA-256",
    "cross_check": "tests/vectors/cross_check.mjs with npm canonicalize@4.0.0 and Node's crypto",
}
path = HERE / "canonical.json"
path.write_text(
    json.dumps({"about": about, "documents": documents, "jcs": jcs}, indent=2, ensure_ascii=True) + "\n"
)
errors = sum("expect_error" in v for v in jcs)
print(f"wrote {path}: {len(documents)} documents, {len(jcs)} jcs vectors ({errors} expect an error)")
