// The dashboard in a real headless browser: plain Node and playwright-core
// driving Debian's chromium (no test-runner or browser download). Run by
// tests/e2e/dashboard_test.sh, which starts the cluster and sets:
//   ICOS_URL        the controller, e.g. http://127.0.0.1:7070
//   ICOS_TOKEN      an admin token
//   ICOS_ARTIFACTS  where screenshots go
//   CHROMIUM        the browser binary (default /usr/bin/chromium)
//   MARKER          a line the submitted job prints, to find in the live log
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const url = required("ICOS_URL");
const adminToken = required("ICOS_TOKEN");
const out = process.env.ICOS_ARTIFACTS ?? "test-artifacts/dashboard";
const marker = process.env.MARKER ?? `dashboard-marker-${Date.now()}`;
mkdirSync(out, { recursive: true });

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`set ${name}`);
    process.exit(2);
  }
  return v;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  // Chromium refuses its sandbox as root (CI containers).
  args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
});
const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
const page = await context.newPage();
page.setDefaultTimeout(20_000);
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(e.message));
page.on("dialog", (d) => d.accept()); // the cancel confirmation

let failed = false;
async function step(name, fn) {
  try {
    await fn();
    if (pageErrors.length) throw new Error(`JavaScript errors in the page: ${pageErrors.join("; ")}`);
    console.log(`ok - ${name}`);
  } catch (e) {
    failed = true;
    console.log(`not ok - ${name}: ${e.message}`);
    await page.screenshot({ path: join(out, `failed-${name.replace(/\W+/g, "-")}.png`), fullPage: true }).catch(() => {});
    throw e;
  }
}
async function shot(name) {
  const path = join(out, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`   screenshot ${path}`);
}
async function signIn(token) {
  await page.goto(url);
  await page.fill("input[name=token]", token);
  await page.click("button[type=submit]");
}
async function api(path, token = adminToken, init = {}) {
  const res = await fetch(`${url}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${token}`, ...(init.headers ?? {}) },
  });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

let jobId = 0;
try {
  await step("a wrong token gets a clear error", async () => {
    await signIn("icos_not_a_real_token");
    const err = page.getByTestId("signin-error");
    await err.waitFor();
    const text = await err.innerText();
    if (!/not accepted/.test(text)) throw new Error(`sign-in error says: ${text}`);
    await shot("signin-wrong-token");
  });

  await step("signs in with the admin token", async () => {
    await page.fill("input[name=token]", adminToken);
    await page.click("button[type=submit]");
    await page.getByTestId("whoami").filter({ hasText: "admin" }).waitFor();
  });

  await step("cluster map shows cells of each vendor on both nodes", async () => {
    await page.goto(`${url}/#/map`);
    await page.locator(".cell[data-vendor=cambricon]").first().waitFor();
    const count = async (sel) => page.locator(sel).count();
    const nvidia = await count(".map .cell[data-vendor=nvidia]");
    const ascend = await count(".map .cell[data-vendor=ascend]");
    const cambricon = await count(".map .cell[data-vendor=cambricon]");
    // gpu-a: 4 A100 + 8 910B + 4 MLU370; mlu-b: 4 MLU370 + 2 V100.
    if (nvidia !== 6 || ascend !== 8 || cambricon !== 8) {
      throw new Error(`cells: nvidia ${nvidia} (want 6), ascend ${ascend} (want 8), cambricon ${cambricon} (want 8)`);
    }
    if ((await count(".map section.node")) !== 2) throw new Error("want two nodes on the map");
    if ((await count(".map .cell.unhealthy[data-vendor=ascend]")) !== 1) throw new Error("want one unhealthy NPU");
    // The background jobs: 4 NPUs held whole, one A100 half shared, 2 MLUs.
    await page.waitForFunction(() => document.querySelectorAll(".map .cell.allocated[data-vendor=ascend]").length === 4);
    await page.waitForFunction(() => document.querySelectorAll(".map .cell.shared[data-vendor=nvidia]").length === 1);
    const title = await page.locator(".map .cell.shared[data-vendor=nvidia]").getAttribute("title");
    if (!/half-a100/.test(title) || !/50%/.test(title)) throw new Error(`shared cell title: ${title}`);
  });

  await step("the map shows how busy each device is, and flags a held one that idles", async () => {
    // The agent reports at its first health check (every 5 s); the inventory
    // says the A100s run at 2% and the NPUs at 70%.
    await page.waitForFunction(() => document.querySelectorAll(".map .cell[data-vendor=ascend][data-util='70']").length === 8, null, { timeout: 20_000 });
    await page.waitForFunction(() => document.querySelectorAll(".map .cell.shared.idle[data-vendor=nvidia]").length === 1);
    const title = await page.locator(".map .cell.shared.idle[data-vendor=nvidia]").getAttribute("title");
    if (!/busy 2%/.test(title) || !/held but idle/.test(title)) throw new Error(`idle cell title: ${title}`);
    if ((await page.locator(".map .cell.idle[data-vendor=ascend]").count()) !== 0) throw new Error("busy NPUs flagged idle");
  });

  await step("submits a job through the form", async () => {
    await page.goto(`${url}/#/submit`);
    const spec = [
      "name: from-the-browser",
      "time_limit: 2h",
      "tasks:",
      `  - command: ["sh", "-c", "echo ${marker}; sleep 60"]`,
      "    resources: {cpu: 1, memory: 64Mi, devices: 1}",
      "    devices: [{vendor: nvidia, model: A100}]",
      "",
    ].join("\n");
    await page.fill("textarea[name=spec]", spec);
    await page.click("button[type=submit]");
    await page.waitForURL(/#\/jobs\/\d+$/);
    jobId = Number(page.url().match(/#\/jobs\/(\d+)$/)[1]);
    console.log(`   job ${jobId}`);
  });

  await step("the job runs and its cell shows on the map", async () => {
    await page.getByTestId("job-state").filter({ hasText: "Running" }).waitFor({ timeout: 60_000 });
    await page.goto(`${url}/#/map`);
    await page.waitForFunction(
      (id) =>
        [...document.querySelectorAll(".map .cell.allocated[data-vendor=nvidia]")].some((c) =>
          c.dataset.jobs.split(",").includes(String(id)),
        ),
      jobId,
    );
    // It sleeps on a device the inventory says runs at 2%: held but idle.
    const cls = await page.locator(`.map .cell[data-jobs="${jobId}"]`).first().getAttribute("class");
    if (!/\bidle\b/.test(cls)) throw new Error(`the job's idle device is not flagged: class "${cls}"`);
    await page.locator(`.map .cell[data-jobs="${jobId}"]`).first().hover();
    await shot("cluster-map");
  });

  await step("the job page shows tasks, events and the log line in the live tail", async () => {
    await page.goto(`${url}/#/jobs/${jobId}`);
    await page.getByTestId("log-tail").filter({ hasText: marker }).waitFor({ timeout: 30_000 });
    const tasks = await page.locator("table.grid").first().innerText();
    if (!/gpu-a/.test(tasks) || !/nvidia\/A100/.test(tasks)) throw new Error(`placement not shown: ${tasks}`);
    const estimate = await page.getByTestId("job-estimate").innerText();
    if (estimate !== "2h 0m (time limit)") throw new Error(`estimate shown as "${estimate}"`);
    // Its A100 idles at the inventory's 2%: the page says so once the agent has reported.
    await page.getByTestId("job-device-use").filter({ hasText: "devices 2% busy on average" }).waitFor({ timeout: 20_000 });
    await page.getByRole("button", { name: "Cancel job" }).waitFor();
    // What the job runs is on its page, not only in the API.
    const spec = await page.getByTestId("job-spec").locator("summary").innerText();
    if (!/sleep/.test(spec)) throw new Error(`the job's command is not shown: "${spec}"`);
    await shot("job-page");
  });

  await step("jobs table filters by vendor and sorts", async () => {
    await page.goto(`${url}/#/jobs?vendor=ascend`);
    await page.locator("tr[data-job]").first().waitFor();
    const names = await page.locator("tr[data-job] td:nth-child(2)").allInnerTexts();
    if (names.length !== 1 || names[0] !== "npu-train") throw new Error(`vendor=ascend lists ${names}`);
    await page.goto(`${url}/#/jobs`);
    await page.locator(`tr[data-job="${jobId}"]`).waitFor();
    await page.click("th[data-sort=name]"); // ascending by name
    const sorted = await page.locator("tr[data-job] td:nth-child(2)").allInnerTexts();
    const expect = [...sorted].sort((a, b) => a.localeCompare(b));
    if (sorted.join() !== expect.join()) throw new Error(`not sorted by name: ${sorted}`);
    await shot("jobs");
  });

  await step("jobs page pages back through history and names array elements as Slurm does (route-mocked)", async () => {
    const asked = [];
    const job = (id, extra) => ({
      id, name: `j${id}`, user: "admin", queue: "default", priority: 0, state: "Succeeded", reason: "",
      submit_ms: 1, start_ms: 1, end_ms: 2, attempt: 0, array_id: 0, array_index: -1, vendors: [], ...extra,
    });
    await page.route(/\/api\/v1\/jobs\?/, (route) => {
      const q = new URL(route.request().url()).searchParams;
      asked.push(q.toString());
      const body = q.get("before") === "41"
        ? { jobs: [job(7)] }
        : { jobs: [job(42), job(41, { array_id: 40, array_index: 1 })], next_before: 41 };
      route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(body) });
    });
    await page.goto(`${url}/#/jobs`);
    await page.locator('tr[data-job="41"]').waitFor();
    const label = await page.locator('tr[data-job="41"] td:first-child').innerText();
    if (label !== "40_1") throw new Error(`array element shown as "${label}"`);
    if (!asked.some((q) => q.includes("limit=500"))) throw new Error(`asked ${asked}`);
    await page.getByTestId("older").click();
    await page.locator('tr[data-job="7"]').waitFor();
    if (!asked.some((q) => q.includes("before=41"))) throw new Error(`the older page was not asked for: ${asked}`);
    if (await page.getByTestId("older").count() !== 0) throw new Error("an older link on the last page");
    await page.getByTestId("newest").click();
    await page.locator('tr[data-job="42"]').waitFor();
    await page.unroute(/\/api\/v1\/jobs\?/);
  });

  await step("a pending job's page shows when it should start (route-mocked)", async () => {
    const now = Date.now();
    const body = {
      id: 77, name: "waits", user: "admin", queue: "default", priority: 0, state: "Pending",
      reason: "Resources: 8 x nvidia/A100 held", submit_ms: now - 60_000, start_ms: 0, end_ms: 0, attempt: 0,
      array_id: 0, array_index: -1, spec: { tasks: [{ command: ["python3", "train.py"] }] }, runtime_estimate: null,
      device_use: null, tasks: [], events: [],
      start_forecast: { p10_ms: now + 10 * 60_000, p50_ms: now + 25 * 60_000, p90_ms: null, samples: 8, made_ms: now },
    };
    await page.route(/\/api\/v1\/jobs\/77$/, (route) =>
      route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(body) }));
    await page.goto(`${url}/#/jobs/77`);
    const text = await page.getByTestId("job-forecast").innerText();
    if (!/^in 2[45]m .*8 in 10 between in (9|10)m .* and later/.test(text)) throw new Error(`forecast shown as "${text}"`);
    await page.unroute(/\/api\/v1\/jobs\/77$/);
  });

  await step("services page shows each replica, where it serves and whether it is ready", async () => {
    await page.goto(`${url}/#/services`);
    const service = page.locator("section.service[data-service=web-ui]");
    await service.getByTestId("ready-count").filter({ hasText: "1 of 1 ready" }).waitFor({ timeout: 20_000 });
    const row = await service.locator("tr[data-replica='0']").innerText();
    if (!/Running/.test(row) || !/:\d+/.test(row) || !/yes/.test(row) || !/current/.test(row)) {
      throw new Error(`replica row: ${row}`);
    }
    await service.getByTestId("rollout").filter({ hasText: "revision 1 · complete" }).waitFor({ timeout: 10_000 });
    // The requests the test sends through the gateway, charted: a rate
    // above zero and a latency, once a 5 s step has passed with them.
    const now = service.getByTestId("traffic-now").filter({ hasText: /[1-9][0-9.]* answers\/s.*p90 ≤ \d+/ });
    await now.waitFor({ timeout: 40_000 });
    if ((await service.locator("[data-testid=traffic] .chart canvas").count()) < 2) {
      throw new Error("the services page draws no request or latency chart");
    }
    await shot("services");
  });

  await step("a service is scaled and updated from its page", async () => {
    const service = page.locator("section.service[data-service=web-ui]");
    await service.getByTestId("scale-to").fill("2");
    await service.getByTestId("scale").click();
    await service.getByTestId("action-result").filter({ hasText: /^scale: .*"replicas":2/ }).waitFor();
    const readyBoth = async () => {
      try {
        await service.getByTestId("ready-count").filter({ hasText: "2 of 2 ready" }).waitFor({ timeout: 30_000 });
      } catch (e) {
        throw new Error(`${e.message}\nthe service's section:\n${await service.innerText()}`);
      }
    };
    await readyBoth();
    // A new revision: the current spec with one more variable, rolled out.
    await service.getByTestId("edit-spec").click();
    const editor = service.getByTestId("spec-text");
    await editor.waitFor();
    const spec = await editor.inputValue();
    if (!/"kind": "service"/.test(spec)) throw new Error(`the editor holds no service spec: ${spec.slice(0, 200)}`);
    await editor.fill(spec.replace('"queue":', '"env": {"REVISION_FROM": "the dashboard"},\n  "queue":'));
    await service.getByTestId("roll-out").click();
    await service.getByTestId("action-result").filter({ hasText: /^update: .*"revision":2/ }).waitFor();
    await service.getByTestId("rollout").filter({ hasText: "revision 2 · complete" }).waitFor({ timeout: 60_000 });
    await readyBoth();
    await shot("services-updated");
  });

  await step("queues show usage against guarantee and limit", async () => {
    await page.goto(`${url}/#/queues`);
    const row = page.locator('section.queue[data-queue=research] tr[data-resource="ascend"]');
    await row.waitFor();
    const text = await row.innerText();
    // npu-train holds 4 Ascend NPUs; research guarantees 4.
    if (!/\b4\b/.test(text)) throw new Error(`research/ascend row: ${text}`);
    await shot("queues");
  });

  await step("utilisation page charts the controller's own samples (one per second here)", async () => {
    await page.goto(`${url}/#/utilisation`);
    await page.locator("select").first().selectOption(String(15 * 60));
    await page.getByTestId("utilisation-charts").waitFor();
    await shot("utilisation");
    await page.goto(`${url}/#/usage`);
    await page.locator("[data-testid=usage-table], p.empty").first().waitFor();
    await shot("usage");
  });

  // The pages must draw the documented JSON whether or not this controller
  // has the endpoints yet: answer them with the contract's shape here.
  await step("utilisation charts and usage table draw the API contract's JSON (route-mocked)", async () => {
    const now = Math.floor(Date.now() / 1000);
    const samples = Array.from({ length: 40 }, (_, i) => ({
      t: now - 3600 + i * 90,
      by_type: {
        "nvidia/A100": { allocated: 1 + (i % 4), total: 4 },
        "ascend/910B": { allocated: i < 20 ? 4 : 7, total: 8 },
        "cambricon/MLU370": { allocated: (i % 3) * 2, total: 8 },
      },
      by_queue: { default: 2 + (i % 5), research: i < 20 ? 4 : 7 },
    }));
    const usage = {
      by: "user", since: now - 86400, until: now,
      rows: [
        { key: "alice", device_hours: { "nvidia/A100": 1.5, "ascend/910B": 6 }, device_hours_total: 7.5, cpu_hours: 3,
          jobs: { submitted: 2, succeeded: 1, failed: 0, cancelled: 1 } },
        { key: "bob", device_hours: { "cambricon/MLU370": 2.25 }, device_hours_total: 2.25, cpu_hours: 1,
          jobs: { submitted: 1, succeeded: 1, failed: 0, cancelled: 0 } },
      ],
    };
    const json = (body) => (route) => route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(body) });
    await page.route("**/api/v1/utilisation?*", json({ step_s: 15, samples }));
    await page.route("**/api/v1/usage?*", json(usage));
    try {
      await page.goto(`${url}/#/utilisation`);
      await page.getByTestId("utilisation-charts").waitFor();
      // The container is drawn before the (mocked) samples arrive: wait for
      // the charts themselves, then check there are exactly three.
      await page.locator(".uplot").nth(2).waitFor({ timeout: 10_000 }).catch(() => {});
      const charts = await page.locator(".uplot").count();
      if (charts !== 3) throw new Error(`${charts} charts, want 3`);
      const legend = await page.locator(".uplot").first().innerText();
      for (const k of ["nvidia/A100", "ascend/910B", "cambricon/MLU370"]) {
        if (!legend.includes(k)) throw new Error(`chart legend lacks ${k}: ${legend}`);
      }
      await shot("utilisation-contract");
      await page.goto(`${url}/#/usage`);
      const table = page.getByTestId("usage-table");
      await table.waitFor();
      const text = await table.innerText();
      if (!/alice/.test(text) || !/7\.50/.test(text) || !/2\.25/.test(text)) throw new Error(`usage table: ${text}`);
      await shot("usage-contract");
    } finally {
      await page.unroute("**/api/v1/utilisation?*");
      await page.unroute("**/api/v1/usage?*");
    }
  });

  await step("cancel button cancels the job", async () => {
    await page.goto(`${url}/#/jobs/${jobId}`);
    await page.getByRole("button", { name: "Cancel job" }).click();
    await page.getByTestId("job-state").filter({ hasText: "Cancelled" }).waitFor({ timeout: 30_000 });
    await page.getByRole("button", { name: "Cancel job" }).waitFor({ state: "detached" });
    await shot("job-cancelled");
  });

  await step("a user sees only its own jobs and no cancel button on others'", async () => {
    const { token } = await api("/api/v1/tokens", adminToken, {
      method: "POST",
      // bob has no account on the test host: his jobs run as nobody (65534).
      body: JSON.stringify({ role: "user", user: "bob", name: "bob browser", uid: 65534 }),
    });
    const bobJob = await api("/api/v1/jobs", token, {
      method: "POST",
      headers: { "Content-Type": "application/yaml" },
      body: 'name: bobs\ntasks:\n  - command: ["sleep", "30"]\n    resources: {cpu: 1, memory: 64Mi}\n',
    });
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(token);
    await page.getByTestId("whoami").filter({ hasText: "user" }).waitFor();
    await page.goto(`${url}/#/jobs`);
    await page.locator(`tr[data-job="${bobJob.id}"]`).waitFor();
    const rows = await page.locator("tr[data-job]").count();
    if (rows !== 1) throw new Error(`bob sees ${rows} jobs, want only his own`);
    await page.goto(`${url}/#/jobs/${bobJob.id}`);
    await page.getByRole("button", { name: "Cancel job" }).waitFor();
    await page.goto(`${url}/#/jobs/${jobId}`);
    await page.locator("p.error").waitFor(); // not his: the API says not found
    // On the map the admin's jobs hold their devices, but bob is not told whose they are.
    await page.goto(`${url}/#/map`);
    await page.waitForFunction(() => document.querySelectorAll(".map .cell.allocated[data-vendor=ascend]").length === 4);
    const title = await page.locator(".map .cell.allocated[data-vendor=ascend]").first().getAttribute("title");
    if (!/another user's job/.test(title) || /npu-train/.test(title)) throw new Error(`bob's view of an NPU: ${title}`);
  });
} catch {
  // step() reported it
} finally {
  await browser.close();
}
console.log(`screenshots in ${out}`);
process.exit(failed ? 1 : 0);
