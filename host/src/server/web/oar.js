// OAR pages: signing with a person's OAR key file, in the browser. The secret key is read
// from the file the person opens and used by WebCrypto (Ed25519) on this page only; it is
// never sent anywhere. Signatures are made exactly as `oar` makes them: over the context, a
// zero byte and a SHA-256 digest.
"use strict";

const encoder = new TextEncoder();

function hexToBytes(hex) {
  if (typeof hex !== "string" || !/^([0-9a-fA-F]{2})+$/.test(hex)) {
    throw new Error("The key file's secret is not hexadecimal.");
  }
  return new Uint8Array(hex.match(/../g).map((b) => parseInt(b, 16)));
}

function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// PKCS #8 wrapping of a raw Ed25519 seed (RFC 8410).
const PKCS8_ED25519 = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

async function openKeyFile(input) {
  const file = input.files && input.files[0];
  if (!file) throw new Error("Choose your key file (the .key file `oar keygen` wrote) first.");
  let parsed;
  try {
    parsed = JSON.parse(await file.text());
  } catch (e) {
    throw new Error("This file is not an OAR key file (it is not JSON).");
  }
  if (parsed.kind === "oar-public-key") {
    throw new Error("This is your public key (.pub). Choose the secret key file (.key) instead.");
  }
  if (parsed.kind !== "oar-secret-key" || parsed.algorithm !== "ed25519") {
    throw new Error("This file is not an OAR secret key file.");
  }
  const seed = hexToBytes(parsed.secret);
  if (seed.length !== 32) throw new Error("The key file's secret is not 32 bytes.");
  const pkcs8 = new Uint8Array([...PKCS8_ED25519, ...seed]);
  const key = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
  return { key, publicKey: parsed.public };
}

async function signDigest(key, context, digest) {
  const message = new Uint8Array([...encoder.encode(context), 0, ...digest]);
  return bytesToHex(new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key, message)));
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  let answer = {};
  try {
    answer = await response.json();
  } catch (e) {
    answer = {};
  }
  if (!response.ok) throw new Error(answer.detail || answer.error || "The server refused (" + response.status + ").");
  return answer;
}

function wire(formId, act) {
  const form = document.getElementById(formId);
  if (!form) return;
  const status = form.querySelector("[role=status]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = "Signing…";
    status.className = "muted";
    try {
      const { key, publicKey } = await openKeyFile(form.querySelector("input[type=file]"));
      await act(form, key, publicKey, status);
    } catch (e) {
      status.textContent = e.message || String(e);
      status.className = "warn";
    }
  });
}

wire("signin", async (form, key, publicKey) => {
  const challenge = form.dataset.challenge;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(challenge)));
  const signature = await signDigest(key, "oar-web-signin-v1", digest);
  await post("/signin", { challenge, key: publicKey, signature });
  window.location.assign(form.dataset.next || "/");
});

wire("approve", async (form, key, publicKey, status) => {
  const signature = await signDigest(key, "oar-approval-v1", hexToBytes(form.dataset.digest));
  const answer = await post(form.dataset.action, { approval_digest: form.dataset.digest, member: publicKey, signature });
  status.textContent = answer.message;
  status.className = "ok";
  window.location.reload();
});
