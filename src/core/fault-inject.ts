import type { ErrnoName } from "./errno.js";

/**
 * Failure injection for kernel steps that cannot fail on their own in the model (allocations,
 * page-table updates, IOTLB syncs). Sites are short stable names (`iommu_map`, `kzalloc:dma_buf_dma`).
 * Deterministic: a rule fires on the n-th call of its site.
 */
export interface FaultInjector {
  /** Called once per attempt at `site`; returns the errno to fail with, or null to proceed. */
  check(site: string): ErrnoName | null;
}

export const NO_FAULTS: FaultInjector = { check: () => null };

interface Rule {
  site: string;
  /** 1-based call number of the first failure. */
  nth: number;
  errno: ErrnoName;
  /** How many consecutive calls fail from `nth` on (Infinity = all later calls). */
  times: number;
}

/** A plan of injected failures, e.g. `new FaultPlan().failOn("iommu_map", { nth: 2 })`. */
export class FaultPlan implements FaultInjector {
  private readonly rules: Rule[] = [];
  private readonly counts = new Map<string, number>();

  failOn(site: string, opts: { nth?: number; errno?: ErrnoName; times?: number } = {}): this {
    this.rules.push({ site, nth: opts.nth ?? 1, errno: opts.errno ?? "ENOMEM", times: opts.times ?? 1 });
    return this;
  }

  check(site: string): ErrnoName | null {
    if (!this.rules.length) return null; // nothing planned: the common case, kept cheap
    const n = (this.counts.get(site) ?? 0) + 1;
    this.counts.set(site, n);
    for (const r of this.rules) if (r.site === site && n >= r.nth && n < r.nth + r.times) return r.errno;
    return null;
  }

  /** How many times `site` was reached while any failure was planned. */
  calls(site: string): number {
    return this.counts.get(site) ?? 0;
  }
}
