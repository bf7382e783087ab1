/** A small benchmark harness: wall time of a body, best of N runs, printed beside a baseline. */
import { performance } from "node:perf_hooks";

export interface Timing {
  ms: number;
  runs: number;
}

export function time(body: () => void, runs = 5): Timing {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    body();
    best = Math.min(best, performance.now() - t0);
  }
  return { ms: best, runs };
}

/** Runs `body` repeatedly for about `budgetMs`, returns operations per second (best window). */
export function rate(body: () => number, budgetMs = 400): number {
  let best = 0;
  for (let w = 0; w < 3; w++) {
    let ops = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < budgetMs / 3) ops += body();
    best = Math.max(best, ops / ((performance.now() - t0) / 1000));
  }
  return best;
}

export interface Row {
  bench: string;
  figure: string;
  baseline: string;
  ratio: string;
  target?: string;
}

export const rows: Row[] = [];

export function report(r: Row): void {
  rows.push(r);
  process.stdout.write(
    `${r.bench.padEnd(52)} ${r.figure.padStart(14)}   baseline ${r.baseline.padStart(14)}   ratio ${r.ratio.padStart(7)}${r.target ? `   target ${r.target}` : ""}\n`,
  );
}

export const fmtMs = (ms: number) => `${ms.toFixed(1)} ms`;
export const fmtRate = (n: number) =>
  n >= 1e6 ? `${(n / 1e6).toFixed(2)} M/s` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k/s` : `${n.toFixed(0)}/s`;
