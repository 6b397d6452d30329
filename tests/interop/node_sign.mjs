#!/usr/bin/env node
// An OAR API client that signs its requests with npm's `http-message-signatures` (RFC 9421),
// using only Node's built-in fetch and crypto otherwise.
//
// It proves that a standard RFC 9421 implementation we did not write can talk to an OAR
// server: every request covers "@method" "@authority" "@path" "@query" "content-digest" with
// the parameters created, keyid (hex of the ed25519 public key), alg="ed25519", a random
// nonce, and the library's default expires (created + 300 s), under the library's default
// label.
//
// Usage:
//   node node_sign.mjs BASE_URL SEED_HEX MODULE_HASH OUT_DIR
//       POST BASE_URL/v1/runs {"module_hash": MODULE_HASH, "params": {}}, wait until the run
//       succeeds (300 s at most), fetch its release and write its files to OUT_DIR.
//   node node_sign.mjs --offline SEED_HEX BODY
//       Print, as JSON, the signature headers of POST http://127.0.0.1:8420/v1/runs with BODY.
//
// SEED_HEX is the requester's 32-byte ed25519 seed in hex (64 digits).
// Install (in this folder): npm ci

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import hms from 'http-message-signatures';

const { httpbis } = hms;
const COMPONENTS = ['@method', '@authority', '@path', '@query', 'content-digest'];
const OFFLINE_URL = 'http://127.0.0.1:8420/v1/runs';
const RUN_TIMEOUT_MS = 300_000;
// PKCS#8 DER header of an ed25519 private key; the 32-byte seed follows it.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function fail(message) {
  console.error(`node_sign.mjs: error: ${message}`);
  process.exit(1);
}

function requesterKey(seedHex) {
  if (!/^[0-9a-fA-F]{64}$/.test(seedHex)) {
    fail('SEED_HEX must be 64 hex digits (a 32-byte ed25519 seed)');
  }
  const privateKey = crypto.createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, Buffer.from(seedHex, 'hex')]),
    format: 'der',
    type: 'pkcs8',
  });
  const jwk = crypto.createPublicKey(privateKey).export({ format: 'jwk' });
  const keyid = Buffer.from(jwk.x, 'base64url').toString('hex');
  return {
    keyid,
    signingKey: {
      id: keyid,
      alg: 'ed25519',
      sign: async (data) => crypto.sign(null, data, privateKey),
    },
  };
}

function contentDigest(body) {
  return `sha-256=:${crypto.createHash('sha256').update(body).digest('base64')}:`;
}

/** The request's headers with Content-Digest, Signature-Input and Signature added. */
async function signedHeaders(key, method, url, body) {
  const headers = { 'content-digest': contentDigest(body) };
  if (body.length > 0) {
    headers['content-type'] = 'application/json';
  }
  const signed = await httpbis.signMessage(
    {
      key: key.signingKey,
      fields: COMPONENTS,
      params: ['created', 'expires', 'keyid', 'alg', 'nonce'],
      paramValues: { nonce: crypto.randomBytes(18).toString('base64url') },
    },
    { method, url, headers },
  );
  return signed.headers;
}

async function call(key, method, url, body = Buffer.alloc(0)) {
  const headers = await signedHeaders(key, method, url, body);
  let response;
  try {
    response = await fetch(url, { method, headers, body: body.length > 0 ? body : undefined });
  } catch (e) {
    fail(`${method} ${url}: cannot reach the server: ${e.cause?.message ?? e.message}`);
  }
  const text = await response.text();
  if (!response.ok) {
    fail(`${method} ${url}: HTTP ${response.status}: ${text.trim()}`);
  }
  try {
    return { status: response.status, json: JSON.parse(text) };
  } catch {
    fail(`${method} ${url}: HTTP ${response.status} but the body is not JSON: ${text.slice(0, 500)}`);
  }
}

async function run(baseUrl, seedHex, moduleHash, outDir) {
  const key = requesterKey(seedHex);
  const base = baseUrl.replace(/\/+$/, '');
  const body = Buffer.from(JSON.stringify({ module_hash: moduleHash, params: {} }));
  const submitted = await call(key, 'POST', `${base}/v1/runs`, body);
  if (submitted.status !== 202 || !submitted.json.job_id) {
    fail(`POST ${base}/v1/runs: expected 202 with a job_id, got HTTP ${submitted.status}: ${JSON.stringify(submitted.json)}`);
  }
  const jobId = submitted.json.job_id;
  console.error(`submitted run ${jobId}`);

  const deadline = Date.now() + RUN_TIMEOUT_MS;
  for (;;) {
    const { json: job } = await call(key, 'GET', `${base}/v1/runs/${jobId}`);
    if (job.status === 'succeeded') break;
    if (job.status === 'failed') fail(`run ${jobId} failed: ${JSON.stringify(job)}`);
    if (Date.now() > deadline) {
      fail(`run ${jobId} did not finish within ${RUN_TIMEOUT_MS / 1000} s (last status ${job.status})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }

  const { json: release } = await call(key, 'GET', `${base}/v1/runs/${jobId}/release`);
  if (!release.files || typeof release.files !== 'object') {
    fail(`GET ${base}/v1/runs/${jobId}/release: no files in the answer: ${JSON.stringify(release)}`);
  }
  fs.mkdirSync(outDir, { recursive: true });
  const names = Object.keys(release.files);
  for (const name of names) {
    if (!name || name !== path.basename(name) || name === '.' || name === '..') {
      fail(`the release names a file ${JSON.stringify(name)} outside OUT_DIR; refusing to write it`);
    }
    fs.writeFileSync(path.join(outDir, name), Buffer.from(release.files[name], 'base64'));
  }
  console.log(`run ${jobId}: wrote ${names.length} file(s) from holder ${release.holder} to ${outDir}`);
}

async function offline(seedHex, body) {
  const key = requesterKey(seedHex);
  const headers = await signedHeaders(key, 'POST', OFFLINE_URL, Buffer.from(body));
  console.log(JSON.stringify({
    'signature-input': headers['Signature-Input'],
    signature: headers['Signature'],
    'content-digest': headers['content-digest'],
  }));
}

const args = process.argv.slice(2);
if (args[0] === '--offline' && args.length === 3) {
  await offline(args[1], args[2]);
} else if (args[0] !== '--offline' && args.length === 4) {
  await run(...args);
} else {
  console.error('usage: node node_sign.mjs BASE_URL SEED_HEX MODULE_HASH OUT_DIR\n'
    + '       node node_sign.mjs --offline SEED_HEX BODY');
  process.exit(2);
}
