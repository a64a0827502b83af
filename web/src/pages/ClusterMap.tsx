import { getJson, type Allocation, type Device, type NodeEntry } from "../api";
import { fmtMib, typeColour } from "../format";
import { usePoll } from "../hooks";
import { ErrorBox } from "./ErrorBox";

type CellState = "free" | "allocated" | "shared" | "unhealthy" | "drained" | "offline";

// What a device can do for new work. A device of a node that is not Ready
// (its agent silent) or whose health check failed is not free, whatever it
// held last: the scheduler gives it nothing.
function cellState(d: Device, node: NodeEntry, held: number): CellState {
  if (!d.healthy || node.unhealthy_reason) return "unhealthy";
  if (node.state !== "Ready") return "offline";
  if (held >= 100) return "allocated";
  if (held > 0) return "shared";
  if (d.drained || node.drained) return "drained";
  return "free";
}

const IDLE_PCT = 5; // below this a held device counts as idle (docs/metrics.md uses the same)

function DeviceCell({ node, index, d, allocs }: { node: NodeEntry; index: number; d: Device; allocs: Allocation[] }) {
  const held = Math.min(100, allocs.reduce((s, a) => s + a.percent, 0));
  const state = cellState(d, node, held);
  const solid = typeColour(d.vendor, d.model);
  const pale = typeColour(d.vendor, d.model, 0.18);
  // Allocated part of the cell filled from the bottom: a shared device shows its fraction.
  const style = { background: `linear-gradient(to top, ${solid} ${held}%, ${pale} ${held}%)`, borderColor: solid };
  const usage = node.usage?.[index];
  const util = usage && usage.utilization_pct >= 0 ? usage.utilization_pct : null;
  // Held by a job yet nearly idle: the accelerator is paid for and unused.
  const idle = held > 0 && util !== null && util < IDLE_PCT;
  const title = [
    `${node.name} #${index}: ${d.vendor}/${d.model || "?"}, ${fmtMib(d.memory_mib)}` +
      (d.runtime_index !== undefined && d.runtime_index >= 0 && d.runtime_index !== index
        ? ` (${d.vendor}'s runtime numbers it ${d.runtime_index})`
        : ""),
    `island ${d.island < 0 ? "none" : d.island}, NUMA ${d.numa_node}`,
    util === null ? "" : `busy ${util}%` + (usage && usage.memory_used_mib >= 0 ? `, ${fmtMib(usage.memory_used_mib)} in use` : ""),
    idle ? "held but idle" : "",
    state === "unhealthy"
      ? `UNHEALTHY: not scheduled${node.unhealthy_reason ? ` (node health check: ${node.unhealthy_reason})` : ""}`
      : "",
    state === "offline" ? `node ${node.state}: not scheduled until its agent is back` : "",
    d.drained || node.drained ? "drained: gets no new work" : "",
    ...allocs.map((a) =>
      a.job_id ? `job ${a.job_id} ${a.job_name} (${a.user}) task ${a.task_id}: ${a.percent}%` : `another user's job: ${a.percent}%`,
    ),
    allocs.length === 0 && state === "free" ? "free" : "",
  ]
    .filter(Boolean)
    .join("\n");
  const mine = allocs.filter((a) => a.job_id);
  return (
    <a
      class={`cell ${state}${idle ? " idle" : ""}`}
      style={style}
      title={title}
      href={mine.length ? `#/jobs/${mine[0].job_id}` : undefined}
      data-vendor={d.vendor}
      data-model={d.model}
      data-state={state}
      data-util={util ?? undefined}
      data-jobs={mine.map((a) => a.job_id).join(",")}
    >
      <span class="idx">{index}</span>
      {held > 0 && held < 100 && <span class="pct">{held}%</span>}
      {state === "unhealthy" && <span class="mark">✕</span>}
    </a>
  );
}

function NodeCard({ n }: { n: NodeEntry }) {
  const byDevice = new Map<number, Allocation[]>();
  for (const a of n.allocations ?? []) {
    const list = byDevice.get(a.device) ?? [];
    list.push(a);
    byDevice.set(a.device, list);
  }
  // Devices grouped by interconnect island; devices without one stand apart.
  const islands = new Map<string, number[]>();
  n.node.devices.forEach((d, i) => {
    const key = d.island < 0 ? `${d.vendor}: no island` : `${d.vendor} island ${d.island}`;
    islands.set(key, [...(islands.get(key) ?? []), i]);
  });
  return (
    <section class={`node ${n.state !== "Ready" ? "notready" : ""}`} data-node={n.name}>
      <header>
        <strong>{n.name}</strong>
        <span class={`badge ${n.state === "Ready" ? "ok" : "bad"}`}>{n.state}</span>
        {n.drained && <span class="badge warn">Drained</span>}
        {n.slow_reason && (
          <span class="badge warn" title={n.slow_reason}>
            Slow
          </span>
        )}
        <span class="muted">
          {n.node.cpu_milli / 1000} CPUs · {fmtMib(n.node.memory_mib)} · {n.tasks} tasks
        </span>
      </header>
      {n.node.devices.length === 0 && <p class="muted">no accelerators</p>}
      <div class="islands">
        {[...islands.entries()].map(([label, idx]) => (
          <div class="island">
            <div class="island-label">{label}</div>
            <div class="cells">
              {idx.map((i) => (
                <DeviceCell node={n} index={i} d={n.node.devices[i]} allocs={byDevice.get(i) ?? []} />
              ))}
            </div>
          </div>
        ))}
      </div>
    </section>
  );
}

function Legend({ nodes }: { nodes: NodeEntry[] }) {
  const types = new Map<string, Device>();
  for (const n of nodes) for (const d of n.node.devices) types.set(`${d.vendor}/${d.model}`, d);
  const counts = { free: 0, allocated: 0, shared: 0, unhealthy: 0, drained: 0, offline: 0 };
  for (const n of nodes) {
    n.node.devices.forEach((d, i) => {
      const held = (n.allocations ?? []).filter((a) => a.device === i).reduce((s, a) => s + a.percent, 0);
      counts[cellState(d, n, held)]++;
    });
  }
  return (
    <div class="legend">
      {[...types.entries()].sort().map(([key, d]) => (
        <span class="legend-item">
          <span class="swatch" style={{ background: typeColour(d.vendor, d.model) }} />
          {key}
        </span>
      ))}
      <span class="legend-sep" />
      {(Object.keys(counts) as CellState[]).map((s) => (
        <span class="legend-item">
          <span class={`cell mini ${s}`} /> {s} {counts[s]}
        </span>
      ))}
    </div>
  );
}

export function ClusterMap() {
  const { data, error } = usePoll(() => getJson<{ nodes: NodeEntry[] }>("/api/v1/nodes"), 2000);
  const nodes = data?.nodes ?? [];
  return (
    <div>
      <h2>Cluster map</h2>
      <p class="muted">
        Every accelerator of every node, grouped by interconnect island. Filled: allocated (a shared device fills by
        its share); pale: free; hatched: drained; ✕: unhealthy; grey dashed: offline (node not Ready); dashed orange: held by a job but under {IDLE_PCT}% busy.
        Hover a cell for its jobs and how busy it is; click to open the job.
      </p>
      <ErrorBox error={error} what="nodes" />
      {data && nodes.length === 0 && <p class="muted">No node has joined yet (start one with icos agent).</p>}
      {nodes.length > 0 && <Legend nodes={nodes} />}
      <div class="map" data-testid="cluster-map">
        {nodes.map((n) => (
          <NodeCard n={n} />
        ))}
      </div>
    </div>
  );
}
