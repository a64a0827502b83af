import { useState } from "preact/hooks";
import { getJson, type Job, type NodeEntry, type Queue } from "../api";
import { fmtDuration, fmtTime, runtimeMs } from "../format";
import { usePoll } from "../hooks";
import { ErrorBox } from "./ErrorBox";

const STATES = ["Pending", "Running", "Succeeded", "Failed", "Cancelled"];
const PAGE = 500;

// How Slurm users name an array's element: 123_4 (the array's id, the index).
export function jobLabel(j: Job): string {
  return j.array_id > 0 ? `${j.array_id}_${j.array_index}` : String(j.id);
}

type SortKey = "id" | "name" | "user" | "queue" | "state" | "priority" | "submit_ms" | "runtime";

function setParam(name: string, value: string, params: URLSearchParams) {
  const p = new URLSearchParams(params);
  if (value) p.set(name, value);
  else p.delete(name);
  const q = p.toString();
  window.location.hash = `/jobs${q ? `?${q}` : ""}`;
}

// Filters live in the URL (#/jobs?state=Running&vendor=ascend) so a view can be shared.
export function Jobs({ params }: { params: URLSearchParams }) {
  const user = params.get("user") ?? "";
  const queue = params.get("queue") ?? "";
  const state = params.get("state") ?? "";
  const vendor = params.get("vendor") ?? "";
  // Paging: newest first, PAGE at a time; `before` is the cursor the API gave.
  const before = params.get("before") ?? "";
  const [sort, setSort] = useState<{ key: SortKey; desc: boolean }>({ key: "id", desc: true });

  const query = new URLSearchParams({ limit: String(PAGE) });
  if (before) query.set("before", before);
  if (user) query.set("user", user);
  if (queue) query.set("queue", queue);
  if (state) query.set("state", state);
  const jobs = usePoll(() => getJson<{ jobs: Job[]; next_before?: number }>(`/api/v1/jobs?${query}`), 3000, [
    query.toString(),
  ]);
  const older = jobs.data?.next_before;
  const queues = usePoll(() => getJson<{ queues: Queue[] }>("/api/v1/queues"), 0);
  const nodes = usePoll(() => getJson<{ nodes: NodeEntry[] }>("/api/v1/nodes"), 3000);

  // Vendors a job asked for, plus those of the devices it holds now.
  const held = new Map<number, Set<string>>();
  const vendors = new Set<string>();
  for (const n of nodes.data?.nodes ?? []) {
    for (const d of n.node.devices) vendors.add(d.vendor);
    for (const a of n.allocations ?? []) {
      const v = n.node.devices[a.device]?.vendor;
      if (!v) continue;
      if (!held.has(a.job_id)) held.set(a.job_id, new Set());
      held.get(a.job_id)!.add(v);
    }
  }
  const jobVendors = (j: Job) => new Set([...(j.vendors ?? []), ...(held.get(j.id) ?? [])]);

  let rows = jobs.data?.jobs ?? [];
  if (vendor) rows = rows.filter((j) => jobVendors(j).has(vendor));
  const now = Date.now();
  const value = (j: Job): string | number => (sort.key === "runtime" ? runtimeMs(j, now) : j[sort.key]);
  rows = [...rows].sort((a, b) => {
    const va = value(a);
    const vb = value(b);
    const c = typeof va === "number" && typeof vb === "number" ? va - vb : String(va).localeCompare(String(vb));
    return sort.desc ? -c : c;
  });

  const header = (key: SortKey, label: string) => (
    <th
      class={`sortable ${sort.key === key ? (sort.desc ? "desc" : "asc") : ""}`}
      onClick={() => setSort({ key, desc: sort.key === key ? !sort.desc : false })}
      data-sort={key}
    >
      {label}
    </th>
  );

  return (
    <div>
      <h2>Jobs</h2>
      <div class="filters">
        <label>
          user
          <input
            name="user"
            value={user}
            placeholder="any"
            onChange={(e) => setParam("user", (e.target as HTMLInputElement).value.trim(), params)}
          />
        </label>
        <label>
          queue
          <select name="queue" value={queue} onChange={(e) => setParam("queue", (e.target as HTMLSelectElement).value, params)}>
            <option value="">any</option>
            {queues.data?.queues.map((q) => (
              <option value={q.name}>{q.name}</option>
            ))}
          </select>
        </label>
        <label>
          state
          <select name="state" value={state} onChange={(e) => setParam("state", (e.target as HTMLSelectElement).value, params)}>
            <option value="">any</option>
            {STATES.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          vendor
          <select
            name="vendor"
            value={vendor}
            onChange={(e) => setParam("vendor", (e.target as HTMLSelectElement).value, params)}
          >
            <option value="">any</option>
            {[...vendors].sort().map((v) => (
              <option value={v}>{v}</option>
            ))}
          </select>
        </label>
        <span class="muted">
          {rows.length} jobs{before ? ` older than ${before}` : ""}
        </span>
      </div>
      <ErrorBox error={jobs.error} what="jobs" />
      <table class="grid" data-testid="jobs-table">
        <thead>
          <tr>
            {header("id", "id")}
            {header("name", "name")}
            {header("user", "user")}
            {header("queue", "queue")}
            {header("state", "state")}
            {header("priority", "priority")}
            <th>devices</th>
            {header("submit_ms", "submitted")}
            {header("runtime", "runtime")}
            <th>reason</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((j) => (
            <tr data-job={j.id}>
              <td>
                <a href={`#/jobs/${j.id}`} title={`job ${j.id}`}>
                  {jobLabel(j)}
                </a>
              </td>
              <td>
                <a href={`#/jobs/${j.id}`}>{j.name}</a>
              </td>
              <td>{j.user}</td>
              <td>{j.queue}</td>
              <td>
                <span class={`state ${j.state}`}>{j.state}</span>
              </td>
              <td class="num">{j.priority}</td>
              <td>{[...jobVendors(j)].join(", ")}</td>
              <td>{fmtTime(j.submit_ms)}</td>
              <td class="num">{fmtDuration(runtimeMs(j, now))}</td>
              <td class="reason">{j.reason}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {jobs.data && rows.length === 0 && <p class="muted">No jobs match.</p>}
      <p class="pager">
        {before && (
          <a href="#" data-testid="newest" onClick={(e) => (e.preventDefault(), setParam("before", "", params))}>
            ← newest
          </a>
        )}{" "}
        {older !== undefined && (
          <a
            href="#"
            data-testid="older"
            onClick={(e) => (e.preventDefault(), setParam("before", String(older), params))}
          >
            older jobs →
          </a>
        )}
      </p>
    </div>
  );
}
