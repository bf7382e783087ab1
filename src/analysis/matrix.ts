/**
 * The P2P matrix: every ordered (provider, client) pair of endpoints with the kernel's verdict,
 * the path class, and the bandwidth of the path (DESIGN.md "Interfaces", `peerdma matrix`).
 */
import { hex } from "../core/hex.js";
import type { Machine } from "../machine/machine.js";
import { calcMapTypeAndDist, type MapType, type MapVerdict } from "../p2pdma/map-type.js";
import type { PciDev } from "../pci/device.js";
import { ncclBandwidth } from "../perf/link.js";
import { pathPerformance } from "../perf/path.js";
import { buildMatrixFast } from "./matrix-fast.js";
import { type PathType, pathType } from "./path-type.js";
import { verdictSummary } from "./reasons.js";

export interface MatrixDevice {
  bdf: string;
  vendor: string;
  device: string;
  class: string;
  name: string;
}

export interface MatrixPair {
  provider: string;
  client: string;
  mapType: MapType;
  distance: number | null;
  pathType: PathType;
  bandwidthGBps: number | null;
  effectiveGBps: number | null;
  limit: string;
  reason: string;
  /** With `compare: "nccl"`: NCCL's own figure for the bottleneck link (width × speed code / 80). */
  ncclGBps?: number | null;
}

export interface Matrix {
  machine: string;
  cpu: { vendor: string; family: number; source: string; assumed: boolean };
  devices: MatrixDevice[];
  pairs: MatrixPair[];
}

export function describeDevice(d: PciDev, names?: (d: PciDev) => string): MatrixDevice {
  return {
    bdf: d.bdf,
    vendor: hex(d.vendor, 4),
    device: hex(d.device, 4),
    class: hex(d.classCode, 6),
    name: d.name || names?.(d) || "",
  };
}

export interface MatrixOptions {
  /** Add NCCL's bandwidth figure of the bottleneck link (pcie-bandwidth.md §7, BW-30). */
  compare?: "nccl";
  /** Name lookup for devices without a name (pci.ids). */
  names?: (d: PciDev) => string;
  /** Limit to these endpoints. */
  only?: PciDev[];
}

export function pairVerdict(m: Machine, provider: PciDev, client: PciDev): MapVerdict {
  return calcMapTypeAndDist(provider, client, m.cpu, { whitelist: m.kernel.whitelist });
}

export function matrixPair(
  m: Machine,
  provider: PciDev,
  client: PciDev,
  opts: MatrixOptions = {},
): MatrixPair {
  const v = pairVerdict(m, provider, client);
  const perf = provider === client ? null : pathPerformance(client, provider);
  return {
    provider: provider.bdf,
    client: client.bdf,
    mapType: v.type,
    distance: v.type === "NOT_SUPPORTED" ? null : v.dist,
    pathType: pathType(provider, client),
    bandwidthGBps: perf?.bandwidthGBps ?? null,
    effectiveGBps: perf?.effectiveGBps ?? null,
    limit: perf ? perf.limit : "same device",
    reason: verdictSummary(v, provider === client),
    ...(opts.compare === "nccl" ? { ncclGBps: ncclFigure(perf) } : {}),
  };
}

function ncclFigure(perf: ReturnType<typeof pathPerformance> | null): number | null {
  if (!perf?.links.length) return null;
  const bottleneck = perf.links.reduce((a, b) => (b.lineRateGBps < a.lineRateGBps ? b : a));
  const v = ncclBandwidth(bottleneck.speed, bottleneck.width);
  return v === null ? null : Math.round(v * 1000) / 1000;
}

/** From this many endpoints on, {@link buildMatrix} uses the engine of matrix-fast.ts (same result). */
export const FAST_MATRIX_MIN_ENDPOINTS = 128;

export function buildMatrix(m: Machine, opts: MatrixOptions = {}): Matrix {
  const eps = opts.only ?? m.fabric.endpoints();
  if (eps.length >= FAST_MATRIX_MIN_ENDPOINTS) return buildMatrixFast(m, opts);
  const pairs: MatrixPair[] = [];
  for (const p of eps) for (const c of eps) pairs.push(matrixPair(m, p, c, opts));
  return {
    machine: m.name,
    cpu: { vendor: m.cpu.vendor, family: m.cpu.family, source: m.cpu.source, assumed: m.cpuAssumed },
    devices: eps.map((d) => describeDevice(d, opts.names)),
    pairs,
  };
}
