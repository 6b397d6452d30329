// Cross-checks tests/vectors/canonical.json against a second, independent JCS implementation:
// the npm package `canonicalize` (4.0.0), which sorts keys with JavaScript's UTF-16 string order
// and prints numbers and strings with the engine's own JSON.stringify. It also recomputes every
// document's digest with node:crypto and verifies its Ed25519 signature.
//
//   bash tests/vectors/cross_check.sh      (installs canonicalize in a temporary folder), or
//   CANONICALIZE_DIR=/some/dir node tests/vectors/cross_check.mjs
//
// where /some/dir holds node_modules/canonicalize (`npm install canonicalize@4.0.0` there).
//
// Vectors that expect an error: `rfc8785` refuses integer literals outside +-(2^53-1), which
// JavaScript has no way to tell apart (JSON.parse reads every number as a double), so for those
// the script only reports what canonicalize prints; every other expected error (non-finite
// numbers, lone surrogates) must make JSON.parse or canonicalize throw as well.
import { createHash, createPublicKey, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const WANT_VERSION = "4.0.0";
const here = fileURLToPath(new URL(".", import.meta.url));
const dir = process.env.CANONICALIZE_DIR;
if (!dir) {
  console.error("set CANONICALIZE_DIR to a folder holding node_modules/canonicalize");
  process.exit(2);
}
const pkgDir = join(dir, "node_modules", "canonicalize");
const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
if (pkg.version !== WANT_VERSION) {
  console.error(`canonicalize ${pkg.version} found, ${WANT_VERSION} wanted`);
  process.exit(2);
}
const { default: canonicalize } = await import(
  pathToFileURL(join(pkgDir, pkg.main ?? "lib/canonicalize.js")).href
);

const vectors = JSON.parse(readFileSync(join(here, "canonical.json"), "utf8"));
let passed = 0;
let failed = 0;
let reported = 0;
const fail = (name, msg) => {
  failed++;
  console.log(`FAIL ${name}: ${msg}`);
};

function canon(text) {
  return canonicalize(JSON.parse(text));
}

function partsDigest(parts) {
  const h = createHash("sha256");
  for (const p of parts) {
    const len = Buffer.alloc(8);
    len.writeBigUInt64BE(BigInt(p.length));
    h.update(len);
    h.update(p);
  }
  return h.digest();
}

for (const v of vectors.jcs) {
  if ("canonical" in v) {
    const got = canon(v.input);
    if (got !== v.canonical) {
      fail(v.name, `canonicalize gives ${JSON.stringify(got)}, vector ${JSON.stringify(v.canonical)}`);
      continue;
    }
    // The canonical form is a fixed point.
    const again = canon(v.canonical);
    if (again !== v.canonical) {
      fail(v.name, `not a fixed point: ${JSON.stringify(again)}`);
      continue;
    }
    passed++;
  } else {
    let got;
    try {
      got = canon(v.input);
    } catch (e) {
      passed++;
      continue;
    }
    if (v.expect_error.startsWith("IntegerDomainError")) {
      reported++;
      console.log(`note ${v.name}: rfc8785 refuses; canonicalize reads a double and gives ${got}`);
    } else {
      fail(v.name, `rfc8785 refuses (${v.expect_error}), canonicalize gives ${got}`);
    }
  }
}

for (const d of vectors.documents) {
  const body = canon(d.document);
  if (body !== d.canonical) {
    fail(d.name, `canonicalize gives ${body}`);
    continue;
  }
  const bytes = Buffer.from(body, "utf8");
  const digest =
    d.context === null
      ? createHash("sha256").update(bytes).digest()
      : partsDigest([Buffer.from(d.context, "utf8"), bytes]);
  if (digest.toString("hex") !== d.digest) {
    fail(d.name, `digest ${digest.toString("hex")}`);
    continue;
  }
  if (d.signature) {
    const seed = createHash("sha256").update(d.signer_seed, "utf8").digest();
    // PKCS#8 wrapping of a raw Ed25519 seed, to derive the public key independently.
    const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
    const pub = createPublicKey({ key: der, format: "der", type: "pkcs8" })
      .export({ format: "der", type: "spki" })
      .subarray(-32);
    if (pub.toString("hex") !== d.signer_public) {
      fail(d.name, `public key ${pub.toString("hex")}`);
      continue;
    }
    const spki = Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), pub]);
    const message = Buffer.concat([Buffer.from(d.context, "utf8"), Buffer.from([0]), digest]);
    const key = createPublicKey({ key: spki, format: "der", type: "spki" });
    if (!verify(null, message, key, Buffer.from(d.signature, "hex"))) {
      fail(d.name, "signature does not verify");
      continue;
    }
  }
  passed++;
}

console.log(`canonicalize ${pkg.version}, node ${process.version}: ${reported} integer refusals reported`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
