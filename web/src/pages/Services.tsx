import { useMemo } from "preact/hooks";
import { getJson, type Service, type ServiceTraffic, type Whoami } from "../api";
import { fmtDuration, paletteColour } from "../format";
import { usePoll } from "../hooks";
import { TimeChart, type Series } from "./Chart";
import { ErrorBox } from "./ErrorBox";
import { ServiceActions } from "./ServiceActions";

// A service's requests over the last hour as its gateways measured them:
// answers per second and requests in flight, and the latency percentiles of
// each step's answers (the upper bound of their bucket). Polled every 5 s,
// the controller's step.
function Traffic({ id }: { id: number }) {
  const { data, error } = usePoll(() => getJson<ServiceTraffic>(`/api/v1/services/${id}/traffic`), 5000, [id]);
  const charts = useMemo(() => {
    const measured = data?.points ?? [];
    const step = data?.step_ms ?? 5000;
    // Each point is drawn over its own step (from its start to its end), so
    // the last one is repeated at its end.
    const points = measured.length > 0 ? [...measured, measured[measured.length - 1]] : [];
    const times = points.map((p, i) => (i < measured.length ? p.t_ms - step : p.t_ms) / 1000);
    const rate: Series[] = [
      { label: "answers/s", colour: paletteColour(0), values: points.map((p) => p.rps) },
      { label: "in flight", colour: paletteColour(1), values: points.map((p) => p.in_flight) },
    ];
    // A step without answers has no latency: a gap, not a drop to 0.
    const latency: Series[] = (["p50_ms", "p90_ms", "p99_ms"] as const).map((k, i) => ({
      label: k.replace("_ms", ""),
      colour: paletteColour(i + 2),
      values: points.map((p) => (p.rps > 0 ? p[k] : null)),
    }));
    return { times, rate, latency, last: points[points.length - 1] };
  }, [data]);
  if (error) return <ErrorBox error={error} what="traffic" />;
  if (!data) return null;
  if (charts.times.length === 0) {
    return (
      <p class="muted" data-testid="traffic-empty">
        No gateway has measured this service yet (a point every {data.step_ms / 1000} s once one does).
      </p>
    );
  }
  const now = Date.now() / 1000;
  const xRange: [number, number] = [Math.max(now - 3600, charts.times[0]), now];
  const last = charts.last!;
  return (
    <div data-testid="traffic">
      <p class="muted" data-testid="traffic-now">
        last {data.step_ms / 1000} s: {last.rps.toFixed(1)} answers/s, {last.in_flight} in flight
        {last.rps > 0 && `, p90 ≤ ${last.p90_ms} ms`}
      </p>
      <div class="chart-pair">
        <TimeChart title="Requests" unit="per second" times={charts.times} series={charts.rate} xRange={xRange} />
        <TimeChart title="Latency" unit="ms" times={charts.times} series={charts.latency} xRange={xRange} />
      </div>
    </div>
  );
}

// Services (docs/services.md): each one's replicas, where each serves,
// whether its readiness probe lets traffic in, and why not; its revision and
// the rollout under way (which replicas still run an older revision); its
// request rate and latency; and, for its owner, what can be done to it.
// Polled every 2 s.
export function Services({ me }: { me: Whoami }) {
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
          <ServiceActions service={s} me={me} />
          <Traffic id={s.id} />
        </section>
      ))}
    </div>
  );
}
