// Drives Debian's Chromium with Playwright over an `oar serve` started by tests/web.rs, as the
// people the pages are for would use them, and checks every page with axe-core (WCAG 2 A/AA).
// Screenshots go to $ARTIFACTS. Exits non-zero on the first failed expectation.
//
// Environment: OAR_URL, OAR_ADMIN_URL, ADMIN_TOKEN, MEMBER_KEY (a committee member's .key),
// MEMBER_PUB (its .pub), REQUESTER_KEY, OTHER_REQUESTER_KEY, PENDING_HASH (a module whose
// approval has one signature of two), JOB_ID (a succeeded run of REQUESTER's), ARTIFACTS.
import { chromium } from "playwright-core";
import { AxeBuilder } from "@axe-core/playwright";

const env = process.env;
const base = env.OAR_URL;
const shots = env.ARTIFACTS;

function expect(cond, what) {
  if (!cond) throw new Error("expectation failed: " + what);
  console.log("ok: " + what);
}

async function accessible(page, name) {
  const results = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  const found = results.violations.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  expect(found.length === 0, `${name} passes axe-core WCAG 2.1 AA` + (found.length ? ":\n  " + found.join("\n  ") : ""));
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

async function signIn(page, keyFile, next) {
  await page.goto(base + next);
  expect(new URL(page.url()).pathname === "/signin", `${next} asks to sign in first`);
  await page.setInputFiles("#keyfile", keyFile);
  await Promise.all([page.waitForURL((u) => u.pathname === next), page.click("#signin button[type=submit]")]);
}

async function signOut(page) {
  await Promise.all([page.waitForURL((u) => u.pathname === "/"), page.click("header form button")]);
}

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  // Console errors count too, except the 403s this script asks for on purpose.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().includes("status of 403")) errors.push(m.text() + " at " + page.url());
  });

  // The public pages, without signing in.
  await page.goto(base + "/register");
  expect(await page.locator(`abbr[title="${env.JOB_ID}"]`).count() === 1, "the register lists the finished run");
  await accessible(page, "register");
  for (const [path, name, text] of [["/", "home", "Open Algorithms Runtime"], ["/modules", "modules", "awaiting committee signatures"], ["/datasets", "datasets", "subscriber"], ["/log", "audit-log", "verifies with the holder's key"]]) {
    await page.goto(base + path);
    expect((await page.textContent("main")).includes(text), `${path} shows "${text}"`);
    await accessible(page, name);
  }

  // A wrong file is named as such, and nothing is sent.
  await page.goto(base + "/signin");
  await page.setInputFiles("#keyfile", env.MEMBER_PUB);
  await page.click("#signin button[type=submit]");
  await page.waitForSelector("#signin [role=status].warn");
  expect((await page.textContent("#signin [role=status]")).includes(".pub"), "choosing the .pub file says to choose the .key file");

  // A committee member opens the pending approval, reads it, signs it in the browser.
  const review = "/review/" + env.PENDING_HASH;
  await signIn(page, env.MEMBER_KEY, review);
  const main = await page.textContent("main");
  expect(main.includes("1 of 2"), "the review shows 1 of 2 signatures");
  expect(await page.locator("ol.plans li").count() > 0, "the review renders the module's plans as sentences" + ((await page.locator("ol.plans li").count()) ? "" : ": " + main));
  expect((await page.textContent("ol.plans")).includes("count distinct subscribers"), "a plan reads as a sentence about subscribers");
  expect(main.includes("Expected error"), "the review shows the expected error from a dry run");
  await accessible(page, "review");
  await page.setInputFiles("#approve-key", env.MEMBER_KEY);
  await Promise.all([page.waitForEvent("load"), page.click("#approve button[type=submit]")]);
  await page.waitForSelector("text=You have signed this approval.");
  const after = await page.textContent("main");
  expect(after.includes("2 of 2"), "after signing, the review shows 2 of 2");
  expect(after.includes("Approved: the module may run."), "after signing, the module may run");
  await accessible(page, "review-signed");
  await signOut(page);

  // The requester sees their release with a chart, and the holder's signature verified.
  const run = "/runs/" + env.JOB_ID;
  await signIn(page, env.REQUESTER_KEY, run);
  expect(await page.locator("main svg[role=img]").count() > 0, "the release has a chart");
  expect((await page.textContent("main")).includes("the signature verifies"), "the release's signature is shown verified");
  expect(await page.locator(`a[href$=".csv"]`).count() > 0, "the release offers its CSV");
  expect((await page.textContent("main")).includes("95% interval"), "the release table has intervals");
  await accessible(page, "release");
  await signOut(page);

  // Another requester cannot see it: the same answer as a run that does not exist.
  await signIn(page, env.OTHER_REQUESTER_KEY, run);
  expect((await page.textContent("main")).includes("not yours to see"), "another requester's run is not shown");
  const other = await page.goto(base + run);
  const missing = await page.goto(base + "/runs/no-such-run");
  expect(other.status() === 403 && missing.status() === 403, "someone else's run and a missing run answer alike (403)");
  await signOut(page);

  // The operator's page, on the admin listener, behind the admin token.
  await page.goto(env.OAR_ADMIN_URL + "/operator");
  await page.fill("#token", env.ADMIN_TOKEN);
  await Promise.all([page.waitForURL((u) => u.pathname === "/operator"), page.click("main button[type=submit]")]);
  await page.waitForSelector("text=Jobs by state");
  const ops = await page.textContent("main");
  expect(ops.includes("Privacy budgets") && ops.includes("released its tables"), "the operator sees budgets and the audit entries in words");
  await accessible(page, "operator");

  expect(errors.length === 0, "no script error on any page" + (errors.length ? ": " + errors.join("; ") : ""));
} finally {
  await browser.close();
}
