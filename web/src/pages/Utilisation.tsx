import { useMemo, useState } from "preact/hooks";
import { getJson, type Utilisation } from "../api";
import { keyColour, paletteColour } from "../format";
import { usePoll } from "../hooks";
import { TimeChart, type Series } from "./Chart";
import { ErrorBox } from "./ErrorBox";
import { WINDOWS } from "./window";

// Allocated devices over time per vendor/model and per queue, from the
// controller's own history (GET /api/v1/utilisation).
export function UtilisationPage() {
  const [windowS, setWindowS] = useState(3600);
  const { data, error } = usePoll(
    () => {
      const until = Math.floor(Date.now() / 1000);
      return getJson<Utilisation>(`/api/v1/utilisation?since=${until - windowS}&until=${until}`);
    },
    15000,
    [windowS],
  );

  const charts = useMemo(() => {
    const samples = data?.samples ?? [];
    const times = samples.map((s) => s.t);
    const types = [...new Set(samples.flatMap((s) => Object.keys(s.by_type)))].sort();
    const queues = [...new Set(samples.flatMap((s) => Object.keys(s.by_queue)))].sort();
    const byType: Series[] = types.map((k) => ({
      label: k,
      colour: keyColour(k),
      values: samples.map((s) => s.by_type[k]?.allocated ?? null),
    }));
    const share: Series[] = types.map((k) => ({
      label: k,
      colour: keyColour(k),
      values: samples.map((s) => {
        const v = s.by_type[k];
        return v && v.total > 0 ? (100 * v.allocated) / v.total : null;
      }),
    }));
    const byQueue: Series[] = queues.map((q, i) => ({
      label: q,
      colour: paletteColour(i),
      values: samples.map((s) => s.by_queue[q] ?? 0),
    }));
    return { times, byType, share, byQueue };
  }, [data]);

  const missing = error?.status === 404;
  const now = Math.floor(Date.now() / 1000);
  // The axis starts at the first sample when history is shorter than the
  // window: a controller started 5 minutes ago is not drawn as an hour of nothing.
  const first = charts.times.length > 0 ? charts.times[0] - (data?.step_s ?? 0) : now - windowS;
  const xRange: [number, number] = [Math.max(now - windowS, first), now];
  return (
    <div>
      <h2>Utilisation</h2>
      <label class="filters">
        window{" "}
        <select value={windowS} onChange={(e) => setWindowS(Number((e.target as HTMLSelectElement).value))}>
          {WINDOWS.map((w) => (
            <option value={w.seconds}>{w.label}</option>
          ))}
        </select>
      </label>
      {missing ? (
        <p class="empty" data-testid="utilisation-empty">
          This controller does not record utilisation history yet (GET /api/v1/utilisation answered 404).
        </p>
      ) : (
        <ErrorBox error={error} what="utilisation" />
      )}
      {data && charts.times.length === 0 && (
        <p class="empty" data-testid="utilisation-empty">
          No samples in this window yet: the controller records one every {data.step_s} s.
        </p>
      )}
      {charts.times.length > 0 && (
        <div data-testid="utilisation-charts">
          <TimeChart title="Allocated devices by vendor/model" unit="devices" times={charts.times} series={charts.byType} xRange={xRange} />
          <TimeChart title="Allocated share by vendor/model" unit="%" times={charts.times} series={charts.share} xRange={xRange} yMax={100} />
          <TimeChart title="Allocated devices by queue" unit="devices" times={charts.times} series={charts.byQueue} xRange={xRange} />
        </div>
      )}
    </div>
  );
}
