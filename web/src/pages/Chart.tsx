import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface Series {
  label: string;
  colour: string;
  values: (number | null)[];
}

const steps = uPlot.paths.stepped!({ align: 1 });

// A time-series line chart (uPlot draws it). `times` in Unix seconds.
// `xRange` pins the time axis to the chosen window (else uPlot fits the
// samples, and a single sample would stretch the axis over years); `yMax`
// fixes the top of the value axis (100 for per cent).
export function TimeChart({
  title,
  times,
  series,
  unit,
  xRange,
  yMax,
}: {
  title: string;
  times: number[];
  series: Series[];
  unit: string;
  xRange?: [number, number];
  yMax?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const opts: uPlot.Options = {
      title,
      width: Math.max(320, el.clientWidth || 800),
      height: 260,
      scales: {
        x: xRange ? { time: true, range: () => xRange } : { time: true },
        y: { range: (_u, _min, max) => [0, yMax ?? Math.max(1, max * 1.1)] },
      },
      axes: [{}, { label: unit, size: 60 }],
      series: [
        {},
        // Allocations hold until the next sample: steps, not slopes between samples.
        ...series.map((s) => ({ label: s.label, stroke: s.colour, width: 2, paths: steps })),
      ],
    };
    const plot = new uPlot(opts, [times, ...series.map((s) => s.values)], el);
    const resize = () => plot.setSize({ width: Math.max(320, el.clientWidth), height: 260 });
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      plot.destroy();
    };
  }, [title, times, series, unit, xRange?.[0], xRange?.[1], yMax]);
  return <div class="chart" ref={box} />;
}
