/**
 * The full P2P matrix of a 4,096-endpoint fabric (16.7 M ordered pairs) through the streaming
 * engine of src/analysis/matrix-fast.ts, against the reference (`matrixPair` per pair, what
 * `buildMatrix` did for every pair) timed on a sample and extrapolated: running it on all
 * 16.7 M pairs would take minutes.
 */
import { matrixPair } from "../src/analysis/matrix.js";
import { forEachMatrixPair } from "../src/analysis/matrix-fast.js";
import { Machine } from "../src/machine/machine.js";
import { fmtMs, report, time } from "./harness.js";
import { syntheticFabric } from "./synthetic.js";

export interface MatrixBench {
  endpoints: number;
  pairs: number;
  /** Best full run, ms. */
  ms: number;
  /** First run (memo empty), ms. */
  coldMs: number;
  /** Pairs the engine handed to the reference functions. */
  referencePairs: number;
  /** Reference cost per pair (µs) from the sample, and the extrapolated full run (ms). */
  refUsPerPair: number;
  refMs: number;
  sample: number;
  busAddr: number;
}

/** 32 host bridges × 4 root ports × a 32-port switch with one endpoint per port = 4,096 endpoints. */
export function benchMatrix(runs = 3): MatrixBench {
  const fabric = syntheticFabric(32, 4, 32);
  const eps = fabric.endpoints();
  const n = eps.length;
  const m = new Machine(fabric);
  let busAddr = 0;
  let pairs = 0;
  let referencePairs = 0;
  const body = () => {
    busAddr = 0;
    pairs = 0;
    // a consumer that reads each pair, as a JSON writer or a filter would
    const e = forEachMatrixPair(m, {}, (p) => {
      pairs++;
      if (p.mapType === "BUS_ADDR") busAddr++;
    });
    referencePairs = e.referencePairs;
  };
  const cold = time(body, 1);
  const best = time(body, runs);

  // Reference: a strided sample covering every kind of pair (same switch, same host bridge, across).
  const sample = 20_000;
  const stride = Math.floor((n * n) / sample);
  const ref = time(() => {
    for (let k = 0; k < sample; k++) {
      const i = (k * stride + ((k * 7919) % stride)) % (n * n);
      matrixPair(m, eps[Math.floor(i / n)], eps[i % n]);
    }
  }, 3);
  const refUsPerPair = (ref.ms * 1000) / sample;
  return {
    endpoints: n,
    pairs,
    ms: best.ms,
    coldMs: cold.ms,
    referencePairs,
    refUsPerPair,
    refMs: (refUsPerPair * n * n) / 1000,
    sample,
    busAddr,
  };
}

export function reportMatrix(): void {
  const b = benchMatrix();
  const mPairs = (b.pairs / 1e6).toFixed(1);
  report({
    bench: `P2P matrix, ${b.endpoints} endpoints (${mPairs} M pairs), streamed`,
    figure: fmtMs(b.ms),
    baseline: `${(b.refMs / 1000).toFixed(0)} s extrap.`,
    ratio: `${(b.ms / b.refMs).toFixed(4)}×`,
    target: "< 2000 ms",
  });
  process.stdout.write(
    `  (first run ${fmtMs(b.coldMs)}; ${b.referencePairs} pairs through the reference functions; baseline = matrixPair ` +
      `${b.refUsPerPair.toFixed(2)} µs/pair on a ${b.sample}-pair sample × ${b.pairs} pairs; ${b.busAddr} BUS_ADDR)` +
      `${b.ms < 2000 ? "" : "  TARGET MISSED"}\n`,
  );
}
