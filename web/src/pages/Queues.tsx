import { getJson, type Amounts, type NodeEntry, type Queue } from "../api";
import { fmtAmount, keyColour } from "../format";
import { usePoll } from "../hooks";
import { ErrorBox } from "./ErrorBox";

// Resource keys in a stable order: cpu, memory, devices, then vendors and types.
function orderKeys(keys: Set<string>): string[] {
  const rank = (k: string) => (k === "devices" ? 0 : k === "cpu" ? 3 : k === "memory" ? 4 : k.includes("/") ? 2 : 1);
  return [...keys].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

// What the ready nodes offer, in the queues' keys and units.
function clusterCapacity(nodes: NodeEntry[]): Amounts {
  const cap: Amounts = {};
  const add = (k: string, v: number) => (cap[k] = (cap[k] ?? 0) + v);
  for (const n of nodes) {
    if (n.state !== "Ready") continue;
    add("cpu", n.node.cpu_milli / 1000);
    add("memory", n.node.memory_mib);
    for (const d of n.node.devices) {
      add("devices", 1);
      add(d.vendor, 1);
      add(`${d.vendor}/${d.model}`, 1);
    }
  }
  return cap;
}

// One resource of one queue, on the scale of the whole cluster's capacity:
// used (within guarantee solid, beyond it the borrowed part striped), with
// markers at the guarantee and the limit.
function Bar({ q, k, capacity }: { q: Queue; k: string; capacity: number | undefined }) {
  const used = q.used?.[k] ?? 0;
  const g = q.guaranteed[k];
  const l = q.limit[k];
  const borrowed = g !== undefined ? Math.max(0, used - g) : 0;
  const scale = Math.max(capacity ?? 0, used, g ?? 0, l ?? 0, 1e-9);
  const pct = (v: number) => `${Math.min(100, (v / scale) * 100)}%`;
  const colour = ["cpu", "memory", "devices"].includes(k) ? "hsl(210 50% 45%)" : keyColour(k);
  return (
    <tr data-queue={q.name} data-resource={k}>
      <td class="res">{k}</td>
      <td class="barcell">
        <div class="bar" title={`used ${fmtAmount(k, used)} of ${fmtAmount(k, capacity)} in the cluster`}>
          <div class="used" style={{ width: pct(used - borrowed), background: colour }} />
          {borrowed > 0 && <div class="borrowed" style={{ left: pct(used - borrowed), width: pct(borrowed) }} />}
          {g !== undefined && <div class="marker guarantee" style={{ left: pct(g) }} title={`guaranteed ${g}`} />}
          {l !== undefined && <div class="marker limit" style={{ left: pct(l) }} title={`limit ${l}`} />}
        </div>
      </td>
      <td class="num">{fmtAmount(k, used)}</td>
      <td class="num">{fmtAmount(k, g)}</td>
      <td class="num">{g === undefined ? "–" : fmtAmount(k, borrowed)}</td>
      <td class="num">{l === undefined ? "none" : fmtAmount(k, l)}</td>
    </tr>
  );
}

export function Queues() {
  const { data, error } = usePoll(() => getJson<{ queues: Queue[] }>("/api/v1/queues"), 3000);
  const nodes = usePoll(() => getJson<{ nodes: NodeEntry[] }>("/api/v1/nodes"), 10000);
  const capacity = clusterCapacity(nodes.data?.nodes ?? []);
  return (
    <div>
      <h2>Queues</h2>
      <p class="muted">
        Per resource, on the scale of the cluster's capacity: used now (solid up to the guarantee, striped where the queue borrows idle capacity beyond it),
        the guarantee (green mark) and the limit (red mark). A queue's usage includes its child queues. Devices and CPU
        in units, memory in MiB.
      </p>
      <ErrorBox error={error} what="queues" />
      {data?.queues.map((q) => {
        const keys = new Set([...Object.keys(q.guaranteed), ...Object.keys(q.limit), ...Object.keys(q.used ?? {})]);
        return (
          <section class="queue card" data-queue={q.name}>
            <header>
              <strong>{q.name}</strong>
              {q.parent && <span class="muted"> in {q.parent}</span>}
              <span class="muted">
                {" "}
                · weight {q.weight} · {q.running} running · {q.pending} pending
                {!q.may_borrow && " · never borrows"}
                {!q.lend_idle && " · keeps its idle guarantee"}
              </span>
            </header>
            {keys.size === 0 ? (
              <p class="muted">Nothing used, guaranteed or limited.</p>
            ) : (
              <table class="bars">
                <thead>
                  <tr>
                    <th>resource</th>
                    <th>of the cluster</th>
                    <th class="num">used</th>
                    <th class="num">guaranteed</th>
                    <th class="num">borrowed</th>
                    <th class="num">limit</th>
                  </tr>
                </thead>
                <tbody>
                  {orderKeys(keys).map((k) => (
                    <Bar q={q} k={k} capacity={capacity[k]} />
                  ))}
                </tbody>
              </table>
            )}
          </section>
        );
      })}
    </div>
  );
}
