import { getJson, type Service } from "../api";
import { fmtDuration } from "../format";
import { usePoll } from "../hooks";
import { ErrorBox } from "./ErrorBox";

// Services (docs/services.md): each one's replicas, where each serves,
// whether its readiness probe lets traffic in, and why not; its revision and
// the rollout under way (which replicas still run an older revision).
// Polled every 2 s.
export function Services() {
  const { data, error } = usePoll(() => getJson<{ services: Service[] }>("/api/v1/services"), 2000);
  if (error) return <ErrorBox error={error} what="services" />;
  if (!data) return <p class="muted">Loading…</p>;
  if (data.services.length === 0) {
    return (
      <p class="muted" data-testid="no-services">
        No service is running. Submit one with <code>kind: service</code> (examples/serve-pytorch/service.yaml).
      </p>
    );
  }
  const now = Date.now();
  return (
    <div class="services">
      {data.services.map((s) => (
        <section class="service" data-service={s.name} key={s.id}>
          <h2>
            {s.name} <span class="muted">#{s.id} · {s.user}</span>{" "}
            <span class={s.ready === s.replicas ? "ok" : "warn"} data-testid="ready-count">
              {s.ready} of {s.replicas} ready
            </span>{" "}
            <span class={s.rollout === "complete" ? "muted" : "warn"} data-testid="rollout">
              revision {s.revision} · {s.rollout}
            </span>
          </h2>
          <table>
            <thead>
              <tr>
                <th>Replica</th>
                <th>Job</th>
                <th>Attempt</th>
                <th>State</th>
                <th>Node</th>
                <th>Address</th>
                <th>Ready</th>
                <th>Revision</th>
                <th>Why</th>
              </tr>
            </thead>
            <tbody>
              {s.endpoints.map((r) => (
                <tr data-replica={r.replica} key={r.job}>
                  <td class="num">{r.replica}</td>
                  <td>
                    <a href={`#/jobs/${r.job}`}>{r.job}</a>
                  </td>
                  <td class="num">{r.attempt}</td>
                  <td>{r.state}</td>
                  <td>{r.node || "–"}</td>
                  <td>
                    <code>{r.address || "–"}</code>
                  </td>
                  <td class={r.ready ? "ok" : "warn"}>
                    {r.ready ? "yes" : "no"}
                    {r.since_ms > 0 && <span class="muted"> for {fmtDuration(now - r.since_ms)}</span>}
                  </td>
                  <td class={r.current ? "" : "warn"}>{r.current ? "current" : "older"}</td>
                  <td class="reason">{r.reason}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      ))}
    </div>
  );
}
