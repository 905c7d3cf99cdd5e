// Browser scenarios of the web UI, run by crates/cli/tests/it/ui.rs against
// a real `sever` server with the provider simulators. Drives Debian's
// Chromium through playwright-core (installed by .ci/run under .ci/).
//
//   node browser.cjs <scenario>
//
// Everything else comes from the environment (SEVER_URL, the people's
// credentials, the simulators' addresses). Prints one JSON object on its
// last line for the Rust test to check further; exits non-zero, with the
// reason, when a check fails.
"use strict";

const fs = require("fs");
const path = require("path");
const assert = require("assert/strict");

const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const BASE = process.env.SEVER_URL;
const SHOTS = process.env.SCREENSHOT_DIR || "";
const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

// Chromium, headless, talking to nothing but the server: the network is
// closed, and without these flags Chromium hangs on background connections.
async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

// The page a failure is shown on.
let lastPage = null;

// A browser context (its own cookie jar) whose page fails the scenario on
// any script error or Content-Security-Policy violation.
async function newPage(browser, viewport = { width: 1280, height: 860 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  lastPage = page;
  page.setDefaultTimeout(10_000);
  page.problems = [];
  page.on("pageerror", (e) => page.problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content.Security.Policy|Refused to/i.test(m.text())) {
      page.problems.push(`CSP: ${m.text()}`);
    }
  });
  return page;
}

function noProblems(page) {
  assert.deepEqual(page.problems, [], "no script error or CSP violation");
}

async function signIn(page, email, password) {
  await page.goto(`${BASE}/ui/login`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((u) => !u.pathname.startsWith("/ui/login"));
}

// Every visible form control has a label a screen reader announces.
async function assertLabelled(page) {
  const unlabelled = await page.$$eval(
    "input:not([type=hidden]), select, textarea",
    (els) =>
      els
        .filter((e) => e.offsetParent !== null || e.closest("dialog[open]"))
        .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label"))
        .map((e) => e.outerHTML.slice(0, 120)),
  );
  assert.deepEqual(unlabelled, [], `unlabelled fields on ${page.url()}`);
}

// Nothing sticks out sideways: the page reads on a narrow screen.
async function assertFits(page) {
  const over = await page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  assert.ok(over <= 1, `${page.url()} is ${over}px wider than the screen`);
}

async function shot(page, name, fullPage = false) {
  if (SHOTS) {
    await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
  }
}

// Pages worth a look that are not in the README (DEBUG_SHOTS=dir).
async function debugShot(page, name) {
  if (process.env.DEBUG_SHOTS) {
    fs.mkdirSync(process.env.DEBUG_SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(process.env.DEBUG_SHOTS, `${name}.png`), fullPage: true });
  }
}

async function statToday(page) {
  await page.goto(`${BASE}/ui/dashboard`);
  return Number(await page.locator("#stat-today").textContent());
}

// Wait for the result panel (which htmx re-fetches every 500 ms) to be final.
async function waitFinal(page) {
  await page.waitForSelector(
    '#result[data-status="completed"], #result[data-status="failed"]',
    { timeout: 30_000 },
  );
  return page.locator("#result").getAttribute("data-status");
}

async function outcomes(page) {
  return page.$$eval("#result tr[data-connector]", (rows) =>
    Object.fromEntries(rows.map((r) => [r.dataset.connector, r.dataset.outcome])),
  );
}

// ---------------------------------------------------------------- scenarios

// Sign in, preview and revoke a person (watching the progress live), see
// each app's outcome and a failure's detail, and see the Dashboard and the
// Requests list change.
async function responder(browser) {
  const page = await newPage(browser);
  await signIn(page, env("ADMIN_EMAIL"), env("ADMIN_PASSWORD"));
  assert.match(page.url(), /\/ui\/responder$/, "people who may revoke start on the Responder");
  const before = await statToday(page);

  await page.goto(`${BASE}/ui/responder`);
  await assertLabelled(page);
  const boxes = page.locator("input[name=targets]");
  assert.equal(await boxes.count(), 5);
  for (let i = 0; i < 5; i++) {
    assert.ok(await boxes.nth(i).isChecked(), "every enabled connector is ticked by default");
  }

  // Preview from the keyboard: type, then Tab to the Preview button and press Enter.
  await page.locator("#username").focus();
  await page.keyboard.type("alice@example.com");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "reason");
  await page.keyboard.type("account takeover, INC-1");
  for (let i = 0; i < 20; i++) {
    if ((await page.evaluate(() => document.activeElement.id)) === "preview-button") break;
    await page.keyboard.press("Tab");
  }
  assert.equal(await page.evaluate(() => document.activeElement.id), "preview-button");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#preview tr[data-lookup]");
  const lookups = await page.$$eval("#preview tr[data-lookup]", (rows) =>
    rows.map((r) => r.dataset.lookup),
  );
  assert.deepEqual(lookups, ["found", "found", "found", "found", "found"]);
  assert.match(await page.locator("#preview").textContent(), /Found in 5 of 5 apps/);
  assert.match(page.url(), /\/ui\/responder$/, "the preview came in place, by htmx");

  // Revoke, confirming in the dialog; Google answers slowly, so the page
  // shows the request running, then final.
  await page.getByRole("button", { name: "Revoke sessions" }).click();
  const dialog = page.locator("#confirm-dialog");
  await dialog.waitFor({ state: "visible" });
  assert.match(await dialog.textContent(), /alice@example\.com in 5 apps/);
  await dialog.getByRole("button", { name: "Revoke now" }).click();
  await page.waitForURL(/\/ui\/responder\?request=/);
  const running = await page.locator("#result").getAttribute("data-status");
  assert.ok(["queued", "running"].includes(running), `live progress first, got ${running}`);
  assert.ok(
    (await page.locator('#result tr[data-outcome="pending"]').count()) >= 1,
    "an app still pending is shown as such",
  );
  assert.equal(await waitFinal(page), "completed");
  assert.deepEqual(await outcomes(page), {
    entra: "revoked",
    google_workspace: "revoked",
    miro: "revoked",
    okta: "tokens_revoked",
    slack_enterprise: "revoked",
  });
  assert.match(await page.locator("#result pre.json").textContent(), /"status": "completed"/);

  // A revocation where one app refuses: the responder sees why.
  await page.goto(`${BASE}/ui/responder`);
  await page.locator("#username").fill("carol@example.com");
  await page.locator("#reason").fill("phishing report INC-2");
  await page.getByRole("button", { name: "Revoke sessions" }).click();
  await dialog.getByRole("button", { name: "Revoke now" }).click();
  await page.waitForURL(/\/ui\/responder\?request=/);
  assert.equal(await waitFinal(page), "failed");
  const carol = await outcomes(page);
  assert.equal(carol.entra, "failed");
  assert.equal(carol.okta, "tokens_revoked");
  const entra = await page.locator('#result tr[data-connector="entra"]').textContent();
  assert.match(entra, /forbidden/);
  assert.match(entra, /HTTP 403/);
  assert.match(entra, /lack a permission/);
  const carolUrl = page.url();
  noProblems(page);
  await shot(page, "responder");

  // The Dashboard counts both, and its feed lists them.
  const after = await statToday(page);
  assert.equal(after, before + 2, "the Dashboard counts today's revocations");
  const feed = await page.locator("#activity").textContent();
  assert.match(feed, /alice@example\.com/);
  assert.match(feed, /carol@example\.com/);
  assert.ok(await page.locator("svg.chart rect").count() >= 1, "the chart has a bar for today");
  await assertLabelled(page);
  noProblems(page);
  await shot(page, "dashboard");

  // Requests: both listed; a search narrows to one; its page has every call.
  await page.goto(`${BASE}/ui/requests`);
  assert.equal(await page.locator("tbody tr").count(), 2);
  await assertLabelled(page);
  await shot(page, "requests");
  await page.getByLabel("Person").fill("CAROL");
  await page.getByRole("button", { name: "Filter" }).click();
  assert.equal(await page.locator("tbody tr").count(), 1);
  await page.getByRole("link", { name: "carol@example.com" }).click();
  await page.waitForSelector("h2:text('Every call to every app')");
  assert.match(await page.content(), /Authorization_RequestDenied|403/);

  // On a phone the Responder still fits the screen.
  const phone = await newPage(browser, { width: 390, height: 844 });
  await signIn(phone, env("ADMIN_EMAIL"), env("ADMIN_PASSWORD"));
  await phone.goto(carolUrl);
  await assertFits(phone);
  await shot(phone, "responder-phone");
  noProblems(phone);
  noProblems(page);
  return { requests: 2 };
}

// Configure a connector and never see its secret again; turn the webhook
// on and see its signing secret once.
async function integrations(browser) {
  const page = await newPage(browser);
  await signIn(page, env("ADMIN_EMAIL"), env("ADMIN_PASSWORD"));
  const token = env("MIRO_TOKEN");
  await page.goto(`${BASE}/ui/integrations`);
  await page.getByRole("link", { name: "Miro" }).click();
  const panel = page.locator("#connector-new-miro");
  await panel.getByLabel(/Instance name/).fill("miro_eu");
  await panel.getByLabel(/API base URL/).fill(env("MIRO_URL"));
  await panel.getByLabel(/Miro API access token/).fill(token);
  await panel.getByRole("button", { name: "Add Miro" }).click();
  await page.waitForURL(/saved=miro_eu/);
  assert.match(await page.locator("#page-notice").textContent(), /Saved miro_eu/);
  await assertLabelled(page);

  const saved = page.locator("#connector-miro_eu");
  const tokenField = saved.getByLabel(/Miro API access token/);
  assert.equal(await tokenField.inputValue(), "", "a stored secret is drawn blank");
  assert.match(await saved.textContent(), /A value is stored; leave blank to keep it/);
  const source = async () => (await page.request.get(`${BASE}/ui/integrations`)).text();
  assert.ok(!(await page.content()).includes(token), "the secret is not in the page");
  assert.ok(!(await source()).includes(token), "the secret is not in the page source");

  // Test it: the sealed token works.
  await saved.getByRole("button", { name: "Test" }).click();
  await page.waitForSelector("#page-notice");
  assert.match(await page.locator("#page-notice").textContent(), /miro_eu: every check passed/);

  // Save again with the secret left blank: the stored one is kept.
  const again = page.locator("#connector-miro_eu");
  await again.getByLabel(/Organization id/).fill(env("MIRO_ORG_ID"));
  await again.getByRole("button", { name: "Save" }).click();
  await page.waitForURL(/saved=miro_eu/);
  await page.locator("#connector-miro_eu").getByRole("button", { name: "Test" }).click();
  assert.match(await page.locator("#page-notice").textContent(), /every check passed/);
  assert.ok(!(await source()).includes(token), "still not in the page source");

  // A bad value is refused in place, naming the field, and nothing is saved.
  const bad = page.locator("#connector-miro_eu");
  await bad.getByLabel(/API base URL/).fill("ftp://files.example");
  await bad.getByRole("button", { name: "Save" }).click();
  assert.match(await page.locator("#connector-miro_eu .notice.error").textContent(), /base_url/);

  // An MCP client that registered itself waits for approval; approve it.
  await page.goto(`${BASE}/ui/integrations`);
  const waiting = page.locator(`tr[data-client="${env("MCP_CLIENT_ID")}"]`);
  assert.match(await waiting.textContent(), /Claude Desktop/);
  await waiting.getByRole("button", { name: "Approve" }).click();
  await page.locator("#confirm-dialog").getByRole("button", { name: "Approve" }).click();
  await page.waitForSelector("#page-notice");
  assert.match(await page.locator("#page-notice").textContent(), /Approved the MCP client Claude Desktop/);
  assert.match(
    await page.locator(`tr[data-client="${env("MCP_CLIENT_ID")}"]`).textContent(),
    /approved .* by user:/,
  );

  // The webhook: its signing secret is shown once, in a dialog.
  await page.goto(`${BASE}/ui/integrations`);
  await page.locator('tr[data-switch="webhook"]').getByRole("button", { name: "Turn on" }).click();
  const dialog = page.locator("#secret-dialog");
  await dialog.waitFor({ state: "visible" });
  const secret = await dialog.getByLabel("Signing secret").inputValue();
  assert.match(secret, /^sr_[A-Za-z0-9_-]{43}$/);
  await dialog.getByRole("button", { name: "I stored it" }).click();
  await dialog.waitFor({ state: "hidden" });
  // Neither reloading the answer (which posts the form again) nor coming
  // back to the page shows it again.
  await page.reload();
  assert.equal(await page.locator("#secret-dialog").count(), 0, "not shown again on reload");
  assert.ok(!(await page.content()).includes(secret));
  await page.goto(`${BASE}/ui/integrations`);
  assert.equal(await page.locator("#secret-dialog").count(), 0, "not shown again");
  assert.ok(!(await page.content()).includes(secret), "the webhook secret is gone from the page");
  assert.ok(!(await source()).includes(secret));
  assert.match(
    await page.locator('tr[data-switch="webhook"]').textContent(),
    /A signing secret is set \(never shown again\)/,
  );
  await page.locator("#connector-okta summary").click();
  await page.evaluate(() => window.scrollTo(0, 0));
  noProblems(page);
  await shot(page, "integrations", true);
  return { webhook_secret: secret };
}

// A viewer sees the pages but cannot revoke: the button is off, and the
// server refuses the form even when the page is tampered with.
async function viewer(browser) {
  const page = await newPage(browser);
  await signIn(page, env("VIEWER_EMAIL"), env("VIEWER_PASSWORD"));
  assert.match(page.url(), /\/ui\/dashboard$/, "viewers start on the Dashboard");
  const nav = await page.locator("nav").textContent();
  assert.match(nav, /Responder/);
  assert.doesNotMatch(nav, /Integrations/);
  await page.goto(`${BASE}/ui/responder`);
  const revoke = page.getByRole("button", { name: "Revoke sessions" });
  assert.ok(await revoke.isDisabled(), "a viewer's Revoke button is off");
  assert.match(await page.locator("#revoke-why").textContent(), /viewer/);

  // Preview is a read: allowed.
  await page.locator("#username").fill("bob@example.com");
  await page.getByRole("button", { name: "Preview" }).click();
  await page.waitForSelector("#preview tr[data-lookup]");

  // Tamper: enable the button and submit anyway.
  await page.evaluate(() => document.getElementById("revoke-button").removeAttribute("disabled"));
  await revoke.click();
  await page.locator("#confirm-dialog").getByRole("button", { name: "Revoke now" }).click();
  await page.waitForSelector("h1:text('Not allowed')");
  assert.match(await page.content(), /may not run revocations/);

  const resp = await page.goto(`${BASE}/ui/integrations`);
  assert.equal(resp.status(), 403);
  noProblems(page);
  return {};
}

// API keys (shown once, revoked), users and roles, and the audit trail
// with its chain check and export.
async function administration(browser) {
  const page = await newPage(browser);
  await signIn(page, env("ADMIN_EMAIL"), env("ADMIN_PASSWORD"));

  await page.goto(`${BASE}/ui/api-keys`);
  await assertLabelled(page);
  await page.getByLabel(/Name/).fill("tines-prod");
  await page.getByLabel(/sessions:revoke/).check();
  await page.getByRole("button", { name: "Create key" }).click();
  const dialog = page.locator("#key-dialog");
  await dialog.waitFor({ state: "visible" });
  const key = await dialog.getByLabel("API key").inputValue();
  assert.match(key, /^sk_[A-Za-z0-9_-]{43}$/);
  await debugShot(page, "keys-created");
  await dialog.getByRole("button", { name: "I stored it" }).click();
  await page.goto(`${BASE}/ui/api-keys`);
  assert.ok(!(await page.content()).includes(key), "a key is shown once");
  const row = page.locator("tr", { hasText: "tines-prod" });
  assert.match(await row.textContent(), /sessions:revoke sessions:read/);
  await row.getByRole("button", { name: "Revoke" }).click();
  await page.locator("#confirm-dialog").getByRole("button", { name: "Revoke key" }).click();
  await page.waitForURL(/revoked=1/);
  assert.match(await page.locator("tr", { hasText: "tines-prod" }).textContent(), /revoked/);
  await debugShot(page, "keys");

  await page.goto(`${BASE}/ui/users`);
  await assertLabelled(page);
  await page.getByLabel("Email").fill("ana.analyst@acme.test");
  await page.getByLabel("Role", { exact: true }).selectOption("analyst");
  await page.getByLabel(/Initial password/).fill("a long enough passphrase");
  await page.getByRole("button", { name: "Add user" }).click();
  assert.match(await page.locator("#page-notice").textContent(), /Created ana\.analyst@acme\.test \(analyst\)/);
  const ana = page.locator('tr[data-user="ana.analyst@acme.test"]');
  await ana.getByLabel(/Role of/).selectOption("viewer");
  await ana.getByRole("button", { name: "Change role" }).click();
  await page.waitForURL(/saved=1/);
  await page.locator('tr[data-user="ana.analyst@acme.test"]').getByRole("button", { name: "Disable" }).click();
  await page.locator("#confirm-dialog").getByRole("button", { name: "Disable" }).click();
  await page.waitForSelector('tr[data-user="ana.analyst@acme.test"] .badge.bad');
  assert.match(await page.locator('tr[data-user="ana.analyst@acme.test"]').textContent(), /viewer[\s\S]*disabled/);
  await debugShot(page, "users");

  await page.goto(`${BASE}/ui/audit`);
  await assertLabelled(page);
  assert.match(await page.locator("#chain-status").textContent(), /Intact/);
  await page.getByLabel("Action").fill("api_key");
  await page.getByRole("button", { name: "Filter" }).click();
  const actions = await page.$$eval("tbody code", (c) => c.map((e) => e.textContent));
  assert.deepEqual(actions.slice(0, 2), ["api_key.revoke", "api_key.create"], "newest first");
  assert.ok(actions.every((a) => a.startsWith("api_key.")), "filtered by action");
  await debugShot(page, "audit");
  const exported = await page.request.get(`${BASE}/ui/audit/export`);
  assert.equal(exported.status(), 200);
  const lines = (await exported.text()).trim().split("\n").map((l) => JSON.parse(l));
  assert.ok(lines.some((r) => r.action === "user.update"));
  assert.ok(lines.every((r) => r.hash && r.prev_hash));

  // The policy: a mistake is listed in place, naming where it is; a fix is stored.
  await page.goto(`${BASE}/ui/policy`);
  await assertLabelled(page);
  const doc = JSON.parse(await page.getByLabel(/Policy document/).inputValue());
  assert.equal(doc.version, "1");
  doc.default = "sometimes";
  await page.getByLabel(/Policy document/).fill(JSON.stringify(doc, null, 2));
  await page.getByRole("button", { name: "Save policy" }).click();
  const problems = await page.locator("#policy-problems").textContent();
  assert.match(problems, /default/);
  assert.match(await page.getByLabel(/Policy document/).inputValue(), /sometimes/, "what was typed stays");
  await debugShot(page, "policy-invalid");
  doc.default = "deny";
  doc.tools.preview_revocation = { limits: [{ counter: "previews", window: "minute", max: 30, scope: "grant" }] };
  await page.getByLabel(/Policy document/).fill(JSON.stringify(doc, null, 2));
  await page.getByRole("button", { name: "Save policy" }).click();
  await page.waitForURL(/saved=1/);
  assert.match(await page.locator("main").textContent(), /stored for this tenant, revision 1/);
  assert.match(await page.getByLabel(/Policy document/).inputValue(), /"max": 30/);
  noProblems(page);
  return { api_key: key };
}

// A request the policy held: its requester cannot approve it; a second
// admin sees who asked, why and what it would touch, and approves one and
// denies the other, with reasons.
async function approvals(browser) {
  const requester = await newPage(browser);
  await signIn(requester, env("ADMIN_EMAIL"), env("ADMIN_PASSWORD"));

  // The policy holds revocations from the UI for approval; one is held.
  await requester.goto(`${BASE}/ui/policy`);
  const doc = JSON.parse(await requester.getByLabel(/Policy document/).inputValue());
  doc.tools.revoke_sessions.require_approval = { channels: ["ui"] };
  await requester.getByLabel(/Policy document/).fill(JSON.stringify(doc, null, 2));
  await requester.getByRole("button", { name: "Save policy" }).click();
  await requester.waitForURL(/saved=1/);
  await requester.goto(`${BASE}/ui/responder`);
  await requester.locator("#username").fill("alice@example.com");
  await requester.locator("#reason").fill("suspicious OAuth grant");
  for (const box of await requester.locator("input[name=targets]").all()) {
    if ((await box.getAttribute("value")) !== "okta") await box.uncheck();
  }
  await requester.getByRole("button", { name: "Revoke sessions" }).click();
  await requester.locator("#confirm-dialog").getByRole("button", { name: "Revoke now" }).click();
  await requester.waitForURL(/\/ui\/responder\?request=/);
  assert.equal(await requester.locator("#result").getAttribute("data-status"), "pending_approval");
  assert.match(await requester.locator("#result").textContent(), /second person's approval/);

  await requester.goto(`${BASE}/ui/approvals`);
  assert.equal(await requester.locator("section[data-approval]").count(), 3);
  assert.match(await requester.locator("main").textContent(), /You asked for this revocation/);
  assert.equal(await requester.getByRole("button", { name: "Approve and revoke" }).count(), 0);

  const page = await newPage(browser);
  await signIn(page, env("SECOND_ADMIN_EMAIL"), env("ADMIN_PASSWORD"));
  await page.goto(`${BASE}/ui/approvals`);
  await assertLabelled(page);
  const erin = page.locator("section[data-approval]", { hasText: "erin@example.com" });
  const text = await erin.textContent();
  assert.match(text, new RegExp(`user:${env("ADMIN_EMAIL").replace(/\./g, "\\.")}`), "who asked");
  assert.match(text, /impossible travel/, "why");
  assert.match(text, /okta \(Okta\), slack_enterprise \(Slack Enterprise Grid\)/, "what it touches");
  assert.match(text, /second person/, "why the policy holds it");
  await debugShot(page, "approvals");
  await erin.getByLabel(/Your reason/).fill("confirmed with Erin's manager by phone");
  await erin.getByRole("button", { name: "Approve and revoke" }).click();
  await page.waitForURL(/done=approved/);
  const frank = page.locator("section[data-approval]", { hasText: "bob@example.com" });
  await frank.getByLabel(/Your reason/).fill("not the same person");
  await frank.getByRole("button", { name: "Deny" }).click();
  await page.waitForURL(/done=denied/);
  const alice = page.locator("section[data-approval]", { hasText: "alice@example.com" });
  assert.match(await alice.textContent(), /suspicious OAuth grant/);
  assert.match(await alice.textContent(), /okta \(Okta\)/);
  await alice.getByLabel(/Your reason/).fill("the OAuth grant is confirmed malicious");
  await alice.getByRole("button", { name: "Approve and revoke" }).click();
  await page.waitForURL(/done=approved/);
  assert.equal(await page.locator("section[data-approval]").count(), 0, "nothing left pending");

  // The approved request runs.
  await page.goto(`${BASE}/ui/approvals?state=all`);
  const approvedId = await page
    .locator("section[data-approval]", { hasText: "erin@example.com" })
    .getAttribute("data-approval");
  await page.goto(`${BASE}/ui/requests/${approvedId}`);
  assert.equal(await waitFinal(page), "completed");
  noProblems(page);
  noProblems(requester);
  return { approved: approvedId };
}

// Bulk jobs: an admin starts one from a pasted list; a viewer cannot start
// one, but follows a job started over the API from running to completed on
// the Bulk page (it refreshes itself), then reads its CSV.
async function bulk(browser) {
  const page = await newPage(browser);
  await signIn(page, env("VIEWER_EMAIL"), env("VIEWER_PASSWORD"));
  await page.getByRole("link", { name: "Bulk", exact: true }).click();
  await page.waitForURL((u) => u.pathname === "/ui/bulk");
  assert.equal(await page.getByRole("button", { name: "Start bulk job" }).count(), 0, "a viewer cannot start a job");
  assert.match(await page.locator("#bulk-why").textContent(), /viewer/);
  const running = page.locator("tr[data-bulk-job][data-state='running']", { hasText: "INC-UI" });
  await running.waitFor();
  const during = {
    value: Number(await running.locator("progress").getAttribute("value")),
    max: Number(await running.locator("progress").getAttribute("max")),
  };
  // No reload: the table refreshes itself until the job is done.
  await page
    .locator("#bulk-jobs[data-polling='false']")
    .waitFor({ timeout: 30_000 });
  const api = page.locator("tr[data-bulk-job]", { hasText: "INC-UI" });
  assert.equal(await api.getAttribute("data-state"), "completed");
  const after = {
    value: Number(await api.locator("progress").getAttribute("value")),
    max: Number(await api.locator("progress").getAttribute("max")),
  };
  assert.equal(after.value, after.max, "a completed job's bar is full");
  assert.match(await api.textContent(), /100%/);
  const href = await api.getByRole("link", { name: "CSV" }).getAttribute("href");
  const csv = await page.evaluate(async (h) => (await fetch(h)).text(), href);
  assert.match(csv, /^line,username,status,error,request_id,miro/);
  await shot(page, "bulk");
  noProblems(page);

  const admin = await newPage(browser);
  await signIn(admin, env("ADMIN_EMAIL"), env("ADMIN_PASSWORD"));
  await admin.goto(`${BASE}/ui/bulk`);
  await admin.locator("#bulk-start summary").click();
  await assertLabelled(admin);
  await admin.getByLabel("People").fill("carol@example.com\nnot a person@@\n");
  await admin.getByLabel("Reason").fill("phishing wave");
  await admin.getByLabel("Incident id").fill("INC-UI-2");
  await admin.getByLabel("Apps").fill("miro");
  await admin.getByRole("button", { name: "Start bulk job" }).click();
  await admin.locator("#confirm-dialog").getByRole("button", { name: "Start the bulk job" }).click();
  await admin.waitForURL((u) => u.pathname === "/ui/bulk" && u.searchParams.has("started"));
  assert.match(await admin.locator("#page-notice").textContent(), /started/);
  const mine = admin.locator("tr[data-bulk-job]", { hasText: "INC-UI-2" });
  await admin.locator("tr[data-bulk-job][data-state='completed']", { hasText: "INC-UI-2" }).waitFor({ timeout: 30_000 });
  assert.equal(await mine.getAttribute("data-total"), "2");
  noProblems(admin);

  return { during, after, csv_lines: csv.trim().split("\n").length };
}

const scenarios = { responder, integrations, viewer, administration, approvals, bulk };

(async () => {
  const name = process.argv[2];
  const scenario = scenarios[name];
  if (!scenario) throw new Error(`unknown scenario ${name}`);
  if (SHOTS) fs.mkdirSync(SHOTS, { recursive: true });
  const browser = await launch();
  const deadline = setTimeout(() => {
    console.error(`scenario ${name} timed out`);
    process.exit(2);
  }, 150_000);
  try {
    const out = await scenario(browser);
    console.log(JSON.stringify({ ok: true, ...out }));
  } catch (e) {
    if (lastPage) {
      const file = path.join(require("os").tmpdir(), `sever-ui-failure-${name}.png`);
      await lastPage.screenshot({ path: file, fullPage: true }).catch(() => {});
      console.error(`failed on ${lastPage.url()}; screenshot: ${file}`);
    }
    throw e;
  } finally {
    clearTimeout(deadline);
    await browser.close();
  }
})().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});

