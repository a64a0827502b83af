import { useState } from "preact/hooks";
import { getJson, type Usage as UsageData } from "../api";
import { usePoll } from "../hooks";
import { ErrorBox } from "./ErrorBox";
import { WINDOWS } from "./window";

const fmt = (v: number | undefined) => (v === undefined ? "–" : v.toFixed(2));

// Accounting: device-hours by vendor/model, CPU-hours and job counts per user
// or per queue over a window (GET /api/v1/usage).
export function Usage() {
  const [by, setBy] = useState<"user" | "queue">("user");
  const [windowS, setWindowS] = useState(86400);
  const { data, error } = usePoll(
    () => {
      const until = Math.floor(Date.now() / 1000);
      return getJson<UsageData>(`/api/v1/usage?since=${until - windowS}&until=${until}&by=${by}`);
    },
    30000,
    [by, windowS],
  );
  const rows = data?.rows ?? [];
  const types = [...new Set(rows.flatMap((r) => Object.keys(r.device_hours)))].sort();
  return (
    <div>
      <h2>Usage</h2>
      <div class="filters">
        <label>
          by{" "}
          <select value={by} onChange={(e) => setBy((e.target as HTMLSelectElement).value as "user" | "queue")}>
            <option value="user">user</option>
            <option value="queue">queue</option>
          </select>
        </label>
        <label>
          window{" "}
          <select value={windowS} onChange={(e) => setWindowS(Number((e.target as HTMLSelectElement).value))}>
            {WINDOWS.map((w) => (
              <option value={w.seconds}>{w.label}</option>
            ))}
          </select>
        </label>
      </div>
      {error?.status === 404 ? (
        <p class="empty">This controller does not keep usage accounting yet (GET /api/v1/usage answered 404).</p>
      ) : (
        <ErrorBox error={error} what="usage" />
      )}
      {data && rows.length === 0 && <p class="empty">No usage in this window.</p>}
      {rows.length > 0 && (
        <table class="grid" data-testid="usage-table">
          <thead>
            <tr>
              <th>{by}</th>
              {types.map((t) => (
                <th>{t} device-h</th>
              ))}
              <th>device-h total</th>
              <th>CPU-h</th>
              <th>submitted</th>
              <th>succeeded</th>
              <th>failed</th>
              <th>cancelled</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr>
                <td>{r.key}</td>
                {types.map((t) => (
                  <td class="num">{fmt(r.device_hours[t])}</td>
                ))}
                <td class="num">{fmt(r.device_hours_total)}</td>
                <td class="num">{fmt(r.cpu_hours)}</td>
                <td class="num">{r.jobs.submitted}</td>
                <td class="num">{r.jobs.succeeded}</td>
                <td class="num">{r.jobs.failed}</td>
                <td class="num">{r.jobs.cancelled}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
