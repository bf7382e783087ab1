/**
 * Published measurements (pcie-bandwidth.md §8) as data, and the model's bound for each.
 * Figures are GB/s (10^9 B/s) per direction; a published bidirectional sum is halved.
 */
import { type LinkParams, tlpRate } from "./link.js";
import { hostStagedRate, type LimitTerm, outstandingReadsLimit, writeThroughput } from "./throughput.js";
import { completionWireBytes, DLLP_BYTES } from "./tlp-size.js";

export type ValidationPattern =
  /** Posted writes with a 4-DW header; `compareWithPayload` shows what a larger TLP would give. */
  | { kind: "writes"; payload: number; compareWithPayload?: number }
  /** Read completions (3-DW header) in the data direction. */
  | { kind: "completions"; payload: number }
  /** Completions while the other direction is loaded too: `dllpPerTlp` DLLPs per TLP (NFM). */
  | { kind: "bidirectional-completions"; payload: number; dllpPerTlp: number }
  /** Completion-bound reads whose requester keeps only `maxOutstandingReads` reads in flight. */
  | { kind: "reads-latency"; payload: number; mrrs: number; rttUs: number; maxOutstandingReads: number }
  /** A copy staged through host memory: D2H writes, H2D completions, and the host hop's rate. */
  | { kind: "host-staged"; payload: number; hostHopGBps: number }
  /** Not bounded by a link (contention, host effects): no bound computed. */
  | { kind: "not-link-bound" };

/**
 * `link-bound`: 0.80 × bound ≤ published ≤ bound must hold. `below-link-bound`: the model, given
 * the row's limit, must come out below the link bound and name that limit. `none`: shown only.
 */
export type ValidationCheck = "link-bound" | "below-link-bound" | "none";

export interface PublishedMeasurement {
  id: string;
  variant?: string;
  system: string;
  link: { speed: number; width: number };
  measurement: string;
  /** Per direction; null when the source gives no usable figure. */
  published: { min: number; max: number } | null;
  /** The figures as the source prints them. */
  publishedText: string;
  pattern: ValidationPattern;
  check: ValidationCheck;
  source: string;
  note?: string;
}

const GEN4X16 = { speed: 16, width: 16 };
const GEN5X16 = { speed: 32, width: 16 };
const W256 = { kind: "writes", payload: 256 } as const;
const C256 = { kind: "completions", payload: 256 } as const;
const NVB15 = "https://github.com/NVIDIA/nvbandwidth/issues/15";
const TINY29 = "https://github.com/tinygrad/open-gpu-kernel-modules/issues/29";
const NVB24 = "https://github.com/NVIDIA/nvbandwidth/issues/24";
const NVB50 = "https://github.com/NVIDIA/nvbandwidth/issues/50";
const TINYREADME = "https://github.com/tinygrad/open-gpu-kernel-modules";
const A10PR = "https://github.com/drkennetz/cuda_examples/pull/1";

export const PUBLISHED_MEASUREMENTS: readonly PublishedMeasurement[] = [
  {
    id: "V1",
    system: "8× RTX 4090 (Gen4 x16)",
    link: GEN4X16,
    measurement: "nvbandwidth D2H CE",
    published: { min: 26.25, max: 27.11 },
    publishedText: "26.25–27.11",
    pattern: W256,
    check: "link-bound",
    source: NVB15,
  },
  {
    id: "V2",
    system: "8× RTX 4090 (Gen4 x16)",
    link: GEN4X16,
    measurement: "nvbandwidth H2D CE",
    published: { min: 23.9, max: 26.38 },
    publishedText: "23.90–26.38",
    pattern: C256,
    check: "link-bound",
    source: NVB15,
  },
  {
    id: "V3",
    system: "8× RTX 4090 (Gen4 x16)",
    link: GEN4X16,
    measurement: "bidirectional H2D CE (H2D reported while D2H runs)",
    published: { min: 11.24, max: 16 },
    publishedText: "11.24 and 14.42 for the first two GPUs, about 16 for the third",
    pattern: { kind: "not-link-bound" },
    check: "none",
    source: NVB15,
  },
  {
    id: "V4",
    system: "A100-SXM4-40GB (Gen4 x16)",
    link: GEN4X16,
    measurement: "nvbandwidth H2D SM, 512 MiB–1 GiB buffers",
    published: { min: 25.13, max: 25.13 },
    publishedText: "25.13 (18.05 at 10 GiB, 16.50 at 20 GiB)",
    pattern: C256,
    check: "none",
    source: "https://github.com/NVIDIA/nvbandwidth/issues/42",
    note: "large buffers fall further: host-side effects",
  },
  {
    id: "V5",
    system: "H100 cluster (Gen5 x16)",
    link: GEN5X16,
    measurement: "nvbandwidth D2H SM",
    published: { min: 52.76, max: 52.78 },
    publishedText: "52.76–52.78",
    pattern: W256,
    check: "link-bound",
    source: NVB24,
  },
  {
    id: "V6",
    system: "H100 cluster (Gen5 x16)",
    link: GEN5X16,
    measurement: "nvbandwidth H2D SM",
    published: { min: 35.03, max: 35.39 },
    publishedText: "35.03–35.39",
    // 72 reads of 512 B in flight over 1 µs: a chosen requester limit (not published) whose
    // Little's-law rate (36.864) lies below the link bound and above the measurement.
    pattern: { kind: "reads-latency", payload: 256, mrrs: 512, rttUs: 1, maxOutstandingReads: 72 },
    check: "below-link-bound",
    source: NVB24,
    note: "read-latency bound (§5.4); maxOutstandingReads 72 is a chosen parameter",
  },
  {
    id: "V7",
    variant: "main pairs",
    system: "6× RTX A6000 (Gen4 x16)",
    link: GEN4X16,
    measurement: "device-to-device read CE (P2P)",
    published: { min: 26.34, max: 26.35 },
    publishedText: "26.34–26.35",
    pattern: C256,
    check: "link-bound",
    source: NVB50,
  },
  {
    id: "V7",
    variant: "slower pairs",
    system: "6× RTX A6000 (Gen4 x16)",
    link: GEN4X16,
    measurement: "device-to-device read CE (P2P)",
    published: { min: 21.8, max: 22.67 },
    publishedText: "21.80–22.67",
    pattern: C256,
    check: "none",
    source: NVB50,
  },
  {
    id: "V8",
    system: "A100-SXM4-80GB, relaxed ordering on",
    link: GEN4X16,
    measurement: "bidirectional H2D vs D2H",
    published: null,
    publishedText: "~11 vs ~25",
    pattern: { kind: "not-link-bound" },
    check: "none",
    source: "https://github.com/NVIDIA/nvbandwidth/issues/53",
    note: "asymmetry example",
  },
  {
    id: "V9",
    system: "8× RTX 5090 (Gen5 x16), Xeon 8458P",
    link: GEN5X16,
    measurement: "nvbandwidth H2D CE",
    published: { min: 56.3, max: 56.41 },
    publishedText: "56.30–56.41",
    pattern: C256,
    check: "link-bound",
    source: TINY29,
  },
  {
    id: "V10",
    system: "8× RTX 5090 (Gen5 x16), Xeon 8458P",
    link: GEN5X16,
    measurement: "nvbandwidth D2H CE",
    published: { min: 57.29, max: 57.35 },
    publishedText: "57.29–57.35",
    pattern: W256,
    check: "link-bound",
    source: TINY29,
  },
  {
    id: "V11",
    system: "8× RTX 5090 (Gen5 x16), Xeon 8458P",
    link: GEN5X16,
    measurement: "bidirectional H2D CE",
    published: { min: 50.84, max: 50.98 },
    publishedText: "50.84–50.98",
    pattern: { kind: "bidirectional-completions", payload: 256, dllpPerTlp: 1 },
    check: "link-bound",
    source: TINY29,
  },
  {
    id: "V12",
    variant: "unidirectional",
    system: "RTX 4090s, P2P-enabled driver fork, P2P over BAR1 (Gen4 x16)",
    link: GEN4X16,
    measurement: "cudaMemcpyPeer unidirectional (simpleP2P, one pair)",
    published: { min: 24.44, max: 24.44 },
    publishedText: "24.44",
    pattern: W256,
    check: "link-bound",
    source: TINYREADME,
  },
  {
    id: "V12",
    variant: "bidirectional, per direction",
    system: "RTX 4090s, P2P-enabled driver fork, P2P over BAR1 (Gen4 x16)",
    link: GEN4X16,
    measurement: "cudaMemcpyPeer bidirectional (6-GPU matrix), sum halved",
    published: { min: 50.09 / 2, max: 51.23 / 2 },
    publishedText: "50.09–51.23 (sum)",
    pattern: W256,
    check: "link-bound",
    source: TINYREADME,
  },
  {
    id: "V13",
    system: "HGX H100, P2P disabled (host-staged)",
    link: GEN5X16,
    measurement: "unidirectional GPU↔GPU",
    published: { min: 36.27, max: 38.05 },
    publishedText: "36.27–38.05",
    // 40 GB/s for the host hop is a chosen parameter (not published), above the measurement.
    pattern: { kind: "host-staged", payload: 256, hostHopGBps: 40 },
    check: "below-link-bound",
    source: "https://github.com/NVIDIA/nccl/issues/1264",
    note: "two hops through host memory; hostHopGBps 40 is a chosen parameter",
  },
  {
    id: "V14",
    variant: "naive copy",
    system: "NVIDIA A10 (Gen4 x16)",
    link: GEN4X16,
    measurement: "naive copy",
    published: { min: 19.7, max: 19.7 },
    publishedText: "~19.7",
    pattern: C256,
    check: "none",
    source: A10PR,
  },
  {
    id: "V14",
    variant: "tuned copy",
    system: "NVIDIA A10 (Gen4 x16)",
    link: GEN4X16,
    measurement: "tuned copy",
    published: { min: 25.15, max: 25.15 },
    publishedText: "25.15",
    pattern: C256,
    check: "link-bound",
    source: A10PR,
    note: "figure not verified against the cited pull request (spec review log)",
  },
  {
    id: "V14",
    variant: "nvbandwidth CE / SM",
    system: "NVIDIA A10 (Gen4 x16)",
    link: GEN4X16,
    measurement: "nvbandwidth CE / SM",
    published: { min: 25.17, max: 25.25 },
    publishedText: "25.17 / 25.25",
    pattern: C256,
    check: "none",
    source: A10PR,
    note: "figures not verified against the cited pull request (spec review log)",
  },
  {
    id: "V15",
    system: "A100 PCIe (Gen4 x16)",
    link: GEN4X16,
    measurement: "CPU write-combined stores to GPU BAR (gdrcopy)",
    published: { min: 20, max: 20 },
    publishedText: '~20 of 32 "theoretical"',
    pattern: { kind: "writes", payload: 64, compareWithPayload: 256 },
    check: "link-bound",
    source: "https://github.com/NVIDIA/gdrcopy/issues/288",
    note: "the CPU emits TLPs of at most 64 bytes",
  },
  {
    id: "V16",
    system: "A100 (Gen4 x16), BaM storage stack",
    link: GEN4X16,
    measurement: "peak measured (NVMe controllers write into GPU memory)",
    published: { min: 25, max: 25 },
    publishedText: "25",
    pattern: W256,
    check: "link-bound",
    source: "https://github.com/ZaidQureshi/bam/issues/54",
  },
];

export interface ValidationResult {
  row: PublishedMeasurement;
  /** Link bound of the row's pattern (the spec's "model bound" column); null if not link bound. */
  boundGBps: number | null;
  /** published / bound. */
  ratio: { min: number; max: number } | null;
  /** The model's figure with the row's non-link limit (V6, V13); the bound otherwise. */
  modelGBps: number | null;
  /** "link" or the named limiting term ("outstanding reads", "host memory hop"). */
  limit: string;
  /** For `link-bound` rows: 0.80 × bound ≤ published min and published max ≤ bound. */
  withinBound: boolean | null;
  /** V15: what the same measurement would be against larger TLPs — the gap is the TLP size. */
  tlpSizeGap?: { payload: number; boundGBps: number; ratio: number; attributedTo: "TLP size" };
}

function writesBound(link: LinkParams, payload: number): number {
  return writeThroughput(link, { payload, header: { dw: 4 } }).gbps;
}

function completionsBound(link: LinkParams, payload: number, dllpPerTlp = 0): number {
  return (tlpRate(link) * payload) / (completionWireBytes(payload) + dllpPerTlp * DLLP_BYTES);
}

/** The model's bound and ratio for one published measurement. */
export function evaluateMeasurement(row: PublishedMeasurement): ValidationResult {
  const link: LinkParams = { speed: row.link.speed, width: row.link.width };
  const p = row.pattern;
  let bound: number | null = null;
  let model: LimitTerm | null = null;
  let tlpSizeGap: ValidationResult["tlpSizeGap"];
  switch (p.kind) {
    case "writes":
      bound = writesBound(link, p.payload);
      if (p.compareWithPayload !== undefined && row.published) {
        const other = writesBound(link, p.compareWithPayload);
        tlpSizeGap = {
          payload: p.compareWithPayload,
          boundGBps: other,
          ratio: row.published.max / other,
          attributedTo: "TLP size",
        };
      }
      break;
    case "completions":
      bound = completionsBound(link, p.payload);
      break;
    case "bidirectional-completions":
      bound = completionsBound(link, p.payload, p.dllpPerTlp);
      break;
    case "reads-latency": {
      bound = completionsBound(link, p.payload);
      const reads = outstandingReadsLimit({
        mrrs: p.mrrs,
        rttUs: p.rttUs,
        maxOutstandingReads: p.maxOutstandingReads,
      });
      model = reads < bound ? { limit: "outstanding reads", gbps: reads } : { limit: "link", gbps: bound };
      break;
    }
    case "host-staged": {
      bound = writesBound(link, p.payload);
      const hops: LimitTerm[] = [
        { limit: "link", gbps: bound },
        { limit: "link", gbps: completionsBound(link, p.payload) },
      ];
      model = hostStagedRate(hops, p.hostHopGBps);
      break;
    }
    case "not-link-bound":
      break;
  }
  const ratio =
    bound !== null && row.published
      ? { min: row.published.min / bound, max: row.published.max / bound }
      : null;
  const withinBound =
    row.check === "link-bound" && bound !== null && row.published
      ? row.published.min >= 0.8 * bound && row.published.max <= bound
      : null;
  return {
    row,
    boundGBps: bound,
    ratio,
    modelGBps: model ? model.gbps : bound,
    limit: model ? model.limit : bound !== null ? "link" : "not link bound",
    withinBound,
    ...(tlpSizeGap ? { tlpSizeGap } : {}),
  };
}

/** Every row of §8 with its bound. */
export function validateAgainstPublications(): ValidationResult[] {
  return PUBLISHED_MEASUREMENTS.map(evaluateMeasurement);
}
