/**
 * mlx5 steering-tag index allocator: 1,000,000 alloc/dealloc cycles, with the heap before and
 * after. Forcing a collection needs `node --expose-gc`; without it the figures are the raw
 * `heapUsed` and include garbage not yet collected (`gc: false` says so).
 *
 *   node --expose-gc --import tsx bench/st-alloc.ts [--leak]
 */
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { Mlx5St } from "../src/rdma/mlx5/st.js";

export interface StAllocBench {
  cycles: number;
  ms: number;
  /** Heap used (bytes) before and after, collected first when `gc` is true. */
  heapBefore: number;
  heapAfter: number;
  /** Whether `global.gc` was available (node --expose-gc). */
  gc: boolean;
  /** The same two readings without forcing a collection. */
  heapBeforeNoGc: number;
  heapAfterNoGc: number;
}

export interface StAllocBenchOptions {
  cycles?: number;
  /** Run the pre-fix allocator (records of freed indexes are never released). */
  idxDataLeak?: boolean;
}

const collect = (globalThis as { gc?: () => void }).gc;

function heapUsed(forceGc: boolean): number {
  if (forceGc && collect) {
    collect();
    collect();
  }
  return process.memoryUsage().heapUsed;
}

/**
 * Each cycle allocates an index for one of 256 tags on a 64-entry table and frees it again, so
 * every cycle takes the "new index, write the entry, free at zero" path.
 */
export function benchStAlloc(opts: StAllocBenchOptions = {}): StAllocBench {
  const cycles = opts.cycles ?? 1_000_000;
  const st = new Mlx5St(undefined, { numEntries: 64, idxDataLeak: opts.idxDataLeak });
  // Warm up so the JIT's own allocations are not counted as growth.
  for (let i = 0; i < 10_000; i++) st.deallocIndex(st.allocIndexByTag(i & 0xff));
  const heapBefore = heapUsed(true);
  const heapBeforeNoGc = heapUsed(false);
  const t0 = performance.now();
  for (let i = 0; i < cycles; i++) st.deallocIndex(st.allocIndexByTag(i & 0xff));
  const ms = performance.now() - t0;
  const heapAfterNoGc = heapUsed(false);
  const heapAfter = heapUsed(true);
  if (!st.isEmpty) throw new Error("benchStAlloc: indexes left allocated");
  return { cycles, ms, heapBefore, heapAfter, gc: collect !== undefined, heapBeforeNoGc, heapAfterNoGc };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = benchStAlloc({ idxDataLeak: process.argv.includes("--leak") });
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  process.stdout.write(
    `st-alloc${process.argv.includes("--leak") ? " (pre-fix, leaking)" : ""}: ${r.cycles} cycles in ${r.ms.toFixed(1)} ms; ` +
      `heap ${mib(r.heapBefore)} → ${mib(r.heapAfter)}${r.gc ? " (after gc)" : " (no --expose-gc: not collected)"}, ` +
      `raw ${mib(r.heapBeforeNoGc)} → ${mib(r.heapAfterNoGc)}\n`,
  );
}
