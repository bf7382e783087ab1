/**
 * Bandwidth of a peer-to-peer path on a fabric (pcie-bandwidth.md §1, §5.5): the links it
 * crosses, the bottleneck line rate (`bandwidthGBps`), the effective rate of a DMA pattern
 * (`effectiveGBps`) and the term that limits it (`limit`).
 */
import type { HostBridge, LinkState, PciDev } from "../pci/device.js";
import { Fabric } from "../pci/fabric.js";
import { degradedFlag, generationOf, isFlitMode, type LinkParams, lineRate, tlpRate } from "./link.js";
import {
  bottleneck,
  hostStagedRate,
  type LimitTerm,
  limitTerms,
  type RateLimits,
  READ_TAGS,
  writeThroughput,
} from "./throughput.js";
import { completionWireBytes, type TlpHeader } from "./tlp-size.js";

/** One link of the path: between `lower` and the bridge above it (`upper`). */
export interface PathLink {
  upper: PciDev | null;
  lower: PciDev;
  /** Negotiated (LnkSta), GT/s and lanes. */
  speed: number;
  width: number;
  /** Capability: the smaller LnkCap of the two ends. */
  maxSpeed: number;
  maxWidth: number;
  flit: boolean;
  lineRateGBps: number;
  degraded?: string;
  /** Direction the pattern's data cross it. */
  direction: "up" | "down";
  /** Payload of the data TLPs on this link (after MPS and any host-bridge re-split). */
  tlpPayload: number;
  /** Effective payload rate of the pattern on this link direction. */
  effectiveGBps: number;
}

export interface PathOptions {
  /** 'write' (default): posted writes src → dst. 'read': src reads dst (completions dst → src). */
  pattern?: "write" | "read";
  /** Write TLP payload before MPS and re-splitting (default 256). */
  payloadBytes?: number;
  /** Write header (default 4 DW). */
  header?: TlpHeader;
  includeSkp?: boolean;
  /** Reads: tags the requester uses (default 256), MRRS (default the requester's), RTT µs. */
  tags?: number;
  mrrs?: number;
  rttUs?: number;
  /** Stage the copy through host memory instead of peer-to-peer (V13). */
  hostStaged?: { hostHopGBps?: number };
}

export interface PathPerformance {
  /** Number of PCIe links crossed. */
  hops: number;
  links: PathLink[];
  /** Host bridges crossed (labels); two = across the CPU interconnect. */
  hostBridges: string[];
  /** Line rate of the bottleneck link (negotiated), 3 decimals; null without a link. */
  bandwidthGBps: number | null;
  effectiveGBps: number | null;
  limit: string;
  pattern: string;
}

export const round3 = (x: number): number => Math.round(x * 1000) / 1000;

const physical = (d: PciDev): PciDev => (d.isVirtfn && d.physfn ? d.physfn : d);

function knownSpeed(s: number | undefined): s is number {
  if (s === undefined) return false;
  try {
    generationOf(s);
    return true;
  } catch {
    return false;
  }
}

/**
 * The link between `dev` and the bridge above it, or null: functions on a root bus have none, and
 * neither do a switch's downstream ports (they hang off the switch's internal bus).
 */
type BareLink = Omit<PathLink, "direction" | "tlpPayload" | "effectiveGBps">;

function linkAbove(dev: PciDev): BareLink | null {
  const upper = Fabric.upstreamBridge(dev);
  if (!upper || (upper.kind !== "root-port" && upper.kind !== "downstream-port")) return null;
  const lo: LinkState | null = dev.link;
  const up: LinkState | null = upper.link;
  const sta = lo && knownSpeed(lo.speed) && lo.width > 0 ? lo : up && knownSpeed(up.speed) ? up : null;
  if (!sta) return null;
  const caps = [lo, up].filter((l): l is LinkState => l !== null && l.maxSpeed > 0 && l.maxWidth > 0);
  const maxSpeed = caps.length ? Math.min(...caps.map((c) => c.maxSpeed)) : sta.speed;
  const maxWidth = caps.length ? Math.min(...caps.map((c) => c.maxWidth)) : sta.width;
  const flit = isFlitMode({ speed: sta.speed, flit: (lo?.flit ?? false) || (up?.flit ?? false) });
  const training = { speed: sta.speed, width: sta.width, maxSpeed, maxWidth };
  const degraded = degradedFlag(training);
  return {
    upper,
    lower: dev,
    ...training,
    flit,
    lineRateGBps: lineRate(sta.speed, sta.width),
    ...(degraded ? { degraded } : {}),
  };
}

const linkName = (l: PathLink) => `link ${l.upper ? l.upper.bdf : "?"}<->${l.lower.bdf}`;

interface Route {
  /** Functions from the source upwards (excluding a common ancestor). */
  up: PciDev[];
  /** Functions from the destination upwards (excluding a common ancestor). */
  down: PciDev[];
  common: PciDev | null;
  crossed: HostBridge[];
}

function route(src: PciDev, dst: PciDev, viaHost: boolean): Route {
  const s = physical(src);
  const d = physical(dst);
  const chainS = [s, ...Fabric.pathToRoot(s)];
  const chainD = [d, ...Fabric.pathToRoot(d)];
  const common = viaHost ? undefined : chainS.find((x) => chainD.includes(x));
  if (common)
    return {
      up: chainS.slice(0, chainS.indexOf(common)),
      down: chainD.slice(0, chainD.indexOf(common)),
      common,
      crossed: [],
    };
  const crossed = s.hostBridge === d.hostBridge ? [s.hostBridge] : [s.hostBridge, d.hostBridge];
  return { up: chainS, down: chainD, common: null, crossed };
}

/** Throughput of the path from `src` to `dst` (BW-17, BW-18, BW-23, BW-31). */
export function pathPerformance(src: PciDev, dst: PciDev, opts: PathOptions = {}): PathPerformance {
  const kind = opts.pattern ?? "write";
  const staged = opts.hostStaged !== undefined;
  const r = route(src, dst, staged);
  const hostBridges = r.crossed.map((h) => h.label);
  const fns = [...r.up, ...r.down, ...(r.common ? [r.common] : [])];
  const mps = Math.min(...fns.map((f) => f.mps));
  // p2pSplitBytes applies to peer-to-peer TLPs forwarded by a host bridge (§5.2), not to staging.
  const splits = staged
    ? []
    : r.crossed.map((h) => h.forwarding.p2pSplitBytes).filter((x): x is number => !!x);
  const split = splits.length ? Math.min(...splits) : undefined;

  type DirLink = BareLink & { direction: "up" | "down" };
  const upLinks: (DirLink | null)[] = r.up.map(linkAbove).map((l) => (l ? { ...l, direction: "up" } : null));
  const downLinks: (DirLink | null)[] = r.down
    .map(linkAbove)
    .map((l): DirLink | null => (l ? { ...l, direction: "down" } : null))
    .reverse();
  const header: TlpHeader = opts.header ?? { dw: 4 };
  // the source is the requester of a read
  const mrrs = opts.mrrs ?? physical(src).mrrs;
  const basePayload =
    kind === "write"
      ? Math.min(opts.payloadBytes ?? 256, mps)
      : Math.min(mps, mrrs, opts.payloadBytes ?? 4096);

  // Data flow order: writes go src → dst (src side first); read completions go dst → src.
  // Links after a re-splitting host bridge carry the smaller TLPs.
  const dataFirst = kind === "write" ? upLinks : downLinks;
  const dataSecond = kind === "write" ? downLinks : upLinks;
  const links: PathLink[] = [];
  const mk = (l: DirLink, payload: number): PathLink => {
    const lp: LinkParams = { speed: l.speed, width: l.width, flit: l.flit, includeSkp: opts.includeSkp };
    const effectiveGBps =
      kind === "write"
        ? writeThroughput(lp, { payload, header }).gbps
        : (tlpRate(lp) * payload) / completionWireBytes(payload, { flit: l.flit });
    return { ...l, tlpPayload: payload, effectiveGBps };
  };
  for (const l of dataFirst) if (l) links.push(mk(l, basePayload));
  const after = split ? Math.min(basePayload, split) : basePayload;
  for (const l of dataSecond) if (l) links.push(mk(l, after));
  // report links in src → dst order
  if (kind === "read") links.reverse();

  const modes =
    [...new Set(links.map((l) => (l.flit ? "FM" : "NFM")))].sort().reverse().join("/") || "no link";
  let pattern =
    kind === "write"
      ? `posted ${basePayload}-B writes, ${header.dw ?? 4}-DW header, ${modes}`
      : `reads: ${mrrs}-B requests, ${basePayload}-B completions, ${modes}`;
  if (split && after < basePayload) pattern += `, re-split to ${after} B by the host bridge`;
  if (staged) pattern += ", staged through host memory";

  if (links.length === 0)
    return {
      hops: 0,
      links,
      hostBridges,
      bandwidthGBps: null,
      effectiveGBps: null,
      limit: "no PCIe link on the path",
      pattern,
    };

  let narrowest = links[0];
  for (const l of links) if (l.lineRateGBps < narrowest.lineRateGBps) narrowest = l;

  const linkTerms: LimitTerm[] = links.map((l) => ({ limit: linkName(l), gbps: l.effectiveGBps }));
  const perf = { ...physical(src).perf, ...src.perf };
  const limits: RateLimits = { dmaEngineGBps: perf.dmaEngineGBps };
  const caps = r.crossed.map((h) => h.forwarding.p2pForwardGBps).filter((x): x is number => x !== undefined);
  if (caps.length && !staged) limits.p2pForwardGBps = Math.min(...caps);
  if (kind === "read")
    limits.reads = {
      tags: opts.tags ?? READ_TAGS.eightBit,
      maxOutstandingReads: perf.maxOutstandingReads,
      mrrs,
      rttUs: opts.rttUs ?? (r.crossed.length > 0 ? 1 : 0.5),
    };
  const linkBound = staged ? hostStagedRate(linkTerms, opts.hostStaged?.hostHopGBps) : bottleneck(linkTerms);
  const best = bottleneck([linkBound, ...limitTerms(limits)]);

  return {
    hops: links.length,
    links: links.map((l) => ({
      ...l,
      lineRateGBps: round3(l.lineRateGBps),
      effectiveGBps: round3(l.effectiveGBps),
    })),
    hostBridges,
    bandwidthGBps: round3(narrowest.lineRateGBps),
    effectiveGBps: round3(best.gbps),
    limit: best.limit,
    pattern,
  };
}
