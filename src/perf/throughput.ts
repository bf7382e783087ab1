/**
 * Throughput of one link direction for a traffic mix (pcie-bandwidth.md §5.3), the limits that
 * are not link capacity (§5.4), max–min sharing and transfer time (§5.5).
 */
import { InputError } from "../core/errors.js";
import { isFlitMode, type LinkParams, tlpRate } from "./link.js";
import {
  type CompletionOptions,
  completionWireBytes,
  DLLP_BYTES,
  splitCompletions,
  splitSummary,
  type TlpHeader,
  toAddress,
  wireBytes,
} from "./tlp-size.js";

/** `count` identical TLPs of `payload` bytes taking `wireBytes` each. */
export interface TlpGroup {
  payload: number;
  count: number;
  wireBytes: number;
}

export interface DirectionTraffic {
  /** TLPs travelling in this direction. */
  tlps: TlpGroup[];
  /** TLPs travelling the other way: their Ack/UpdateFC DLLPs come back in this direction (NFM). */
  reverseTlps?: number;
  /** DLLPs sent back per TLP received (§3): default 1, range 0–2. */
  dllpPerTlp?: number;
}

export interface DirectionResult {
  /** Payload GB/s: `rate × P / W`. */
  gbps: number;
  payloadBytes: number;
  wireBytes: number;
  /** P / W. */
  efficiency: number;
  /** Bytes/s available to TLPs (§5.3 `rate`), GB/s. */
  rateGBps: number;
}

function checkDllp(d: number): number {
  if (!(d >= 0 && d <= 2)) throw new InputError(`dllpPerTlp ${d} is outside 0…2`);
  return d;
}

/** `T = rate × P / W` for one direction of one link (§5.3). */
export function directionThroughput(link: LinkParams, traffic: DirectionTraffic): DirectionResult {
  const rate = tlpRate(link);
  let p = 0;
  let w = 0;
  for (const g of traffic.tlps) {
    p += g.payload * g.count;
    w += g.wireBytes * g.count;
  }
  // DLLPs ride in the flit's DLP bytes: free in FM (§4.1).
  if (!isFlitMode(link)) w += checkDllp(traffic.dllpPerTlp ?? 1) * DLLP_BYTES * (traffic.reverseTlps ?? 0);
  const efficiency = w > 0 ? p / w : 0;
  return { gbps: rate * efficiency, payloadBytes: p, wireBytes: w, efficiency, rateGBps: rate };
}

/* Writes */

export interface WritePattern {
  /** Payload of every TLP (default 256) — used when no `length` is given. */
  payload?: number;
  /** Transfer: split at MPS multiples from `address` (§5.2). */
  address?: bigint | number;
  length?: number;
  /** Max payload size for the split (default 256). */
  mps?: number;
  /** Header options; when `address` is given and `header.dw` is not, the address decides 3/4 DW. */
  header?: TlpHeader;
  /** The same traffic flows the other way too (NFM: DLLP cost, §5.3). */
  bidirectional?: boolean;
  dllpPerTlp?: number;
}

export interface WriteResult extends DirectionResult {
  tlps: number;
  groups: TlpGroup[];
}

/** Posted writes in their data direction (BW-3, BW-6, BW-9, BW-16). */
export function writeThroughput(link: LinkParams, p: WritePattern = {}): WriteResult {
  const flit = isFlitMode(link);
  const header: TlpHeader = { ...(p.header ?? {}) };
  if (header.dw === undefined && header.address === undefined && p.address !== undefined)
    header.address = p.address;
  let sizes: { length: number; count: number }[];
  if (p.length !== undefined) sizes = splitSummary(p.address ?? 0, p.length, p.mps ?? 256).groups;
  else {
    const payload = p.payload ?? 256;
    if (!(payload > 0 && payload <= 4096))
      throw new InputError(`write payload ${payload} is outside 1…4096 bytes`);
    sizes = [{ length: payload, count: 1 }];
  }
  const groups = sizes.map((s) => ({
    payload: s.length,
    count: s.count,
    wireBytes: wireBytes(s.length, header, flit),
  }));
  const tlps = groups.reduce((n, g) => n + g.count, 0);
  const r = directionThroughput(link, {
    tlps: groups,
    reverseTlps: p.bidirectional ? tlps : 0,
    dllpPerTlp: p.dllpPerTlp,
  });
  return { ...r, tlps, groups };
}

/* Reads */

export interface ReadPattern extends CompletionOptions {
  address?: bigint | number;
  /** Bytes read (default 1 MiB). */
  length?: number;
  /** Max read request size (default 512). */
  mrrs?: number;
  /** Read request header (default 4 DW unless `address` says otherwise). */
  requestHeader?: TlpHeader;
  /** ECRC on completions. */
  ecrc?: boolean;
  /** Reads run in both directions at once (NFM DLLP cost). */
  bidirectional?: boolean;
  dllpPerTlp?: number;
}

export interface ReadResult {
  /** Completion direction. */
  data: DirectionResult;
  requests: number;
  completions: number;
  /** Wire bytes the read requests take in the request direction. */
  requestDirectionBytes: number;
  /** Request-direction bytes as a fraction of the data read. */
  requestOverhead: number;
}

/** A read split into requests (MRRS) and completions (§5.2), data and request directions (§5.3). */
export function readThroughput(link: LinkParams, p: ReadPattern = {}): ReadResult {
  const flit = isFlitMode(link);
  const address = toAddress(p.address ?? 0);
  const length = p.length ?? 1 << 20;
  const mrrs = p.mrrs ?? 512;
  const reqHeader: TlpHeader = p.requestHeader ?? (p.address !== undefined ? { address } : { dw: 4 });
  // Requests are split at MRRS multiples: first, full ones, last. Completions of a request only
  // depend on its offset within 4 KiB and its length, so each distinct shape is split once.
  const groups = new Map<number, TlpGroup>();
  let completions = 0;
  let requests = 0;
  const reqSummary = splitSummary(address, length, mrrs);
  const shapes: { address: bigint; length: number; count: number }[] = [];
  if (reqSummary.count === 1) shapes.push({ address, length, count: 1 });
  else if (reqSummary.count > 1) {
    const secondStart = address + BigInt(reqSummary.first);
    shapes.push({ address, length: reqSummary.first, count: 1 });
    if (reqSummary.count > 2)
      shapes.push({ address: secondStart, length: mrrs, count: reqSummary.count - 2 });
    shapes.push({ address: address + BigInt(length - reqSummary.last), length: reqSummary.last, count: 1 });
  }
  for (const s of shapes) {
    requests += s.count;
    for (const c of splitCompletions(s.address, s.length, p)) {
      const wire = completionWireBytes(c.length, { flit, ecrc: p.ecrc, lowerAddress: c.lowerAddress });
      const key = c.length * 100000 + wire;
      const g = groups.get(key) ?? { payload: c.length, count: 0, wireBytes: wire };
      g.count += s.count;
      groups.set(key, g);
      completions += s.count;
    }
  }
  const reqWire = wireBytes(0, reqHeader, flit);
  const data = directionThroughput(link, {
    tlps: [...groups.values()],
    // bidirectional: the other read's completions are acknowledged in this direction (as in V11;
    // the DLLPs for its few read requests are left out)
    reverseTlps: p.bidirectional ? completions : 0,
    dllpPerTlp: p.dllpPerTlp,
  });
  const requestDirectionBytes = requests * reqWire;
  return {
    data,
    requests,
    completions,
    requestDirectionBytes,
    requestOverhead: length > 0 ? requestDirectionBytes / length : 0,
  };
}

/* Limits that are not link capacity (§5.4) */

/** A candidate bottleneck: its name as reported in `limit` and its payload rate. */
export interface LimitTerm {
  limit: string;
  gbps: number;
}

/** Tag counts: 5-bit, 8-bit, 10-bit (NFM). */
export const READ_TAGS = { fiveBit: 32, eightBit: 256, tenBit: 768 } as const;

export interface OutstandingReads {
  /** Tags the requester may use (default 256). */
  tags?: number;
  /** Requester's own cap on outstanding reads. */
  maxOutstandingReads?: number;
  mrrs: number;
  /** Request-to-last-completion latency, µs (default 1 through a root complex). */
  rttUs?: number;
}

/** Little's law: `min(tags, maxOutstandingReads) × MRRS / RTT` (§5.4, BW-19). */
export function outstandingReadsLimit(o: OutstandingReads): number {
  const tags = Math.min(o.tags ?? READ_TAGS.eightBit, o.maxOutstandingReads ?? Number.POSITIVE_INFINITY);
  const rtt = o.rttUs ?? 1;
  if (!(rtt > 0)) throw new InputError(`read round-trip time ${rtt} µs must be positive`);
  if (!(tags > 0)) throw new InputError(`outstanding reads ${tags} must be positive`);
  return (tags * o.mrrs) / (rtt * 1000); // bytes per ns = GB/s
}

/** Posted-write credits: `credits × 16 / fcUpdateLatency` (§5.4). */
export function postedCreditsLimit(dataCredits: number, fcUpdateLatencyUs: number): number {
  if (!(dataCredits > 0 && fcUpdateLatencyUs > 0))
    throw new InputError("posted data credits and the flow-control update latency must be positive");
  return (dataCredits * 16) / (fcUpdateLatencyUs * 1000);
}

export interface RateLimits {
  reads?: OutstandingReads;
  postedCredits?: { dataCredits: number; fcUpdateLatencyUs: number };
  /** Forwarding cap of a host bridge/switch crossed (peer-to-peer). */
  p2pForwardGBps?: number;
  /** The requester's DMA engine. */
  dmaEngineGBps?: number;
}

/** The §5.4 terms that apply, each named as `limit` reports it. */
export function limitTerms(l: RateLimits): LimitTerm[] {
  const out: LimitTerm[] = [];
  if (l.reads) out.push({ limit: "outstanding reads", gbps: outstandingReadsLimit(l.reads) });
  if (l.postedCredits)
    out.push({
      limit: "posted credits",
      gbps: postedCreditsLimit(l.postedCredits.dataCredits, l.postedCredits.fcUpdateLatencyUs),
    });
  if (l.p2pForwardGBps !== undefined) out.push({ limit: "host bridge forwarding", gbps: l.p2pForwardGBps });
  if (l.dmaEngineGBps !== undefined) out.push({ limit: "dma engine", gbps: l.dmaEngineGBps });
  return out;
}

/** The smallest term; on a tie the earliest (links are listed before caps). */
export function bottleneck(terms: LimitTerm[]): LimitTerm {
  if (terms.length === 0) throw new InputError("no rate terms to take a bottleneck of");
  let best = terms[0];
  for (const t of terms) if (t.gbps < best.gbps) best = t;
  return best;
}

/**
 * A copy staged through host memory (V13): two hops (device → host memory, host memory → device)
 * that run pipelined, plus the rate the host-memory hop itself sustains (bounce-buffer copy,
 * driver pipeline; platform-specific, pcie-bandwidth.md §10), named "host memory hop".
 */
export function hostStagedRate(hops: LimitTerm[], hostHopGBps?: number): LimitTerm {
  const terms = [...hops];
  if (hostHopGBps !== undefined) terms.push({ limit: "host memory hop", gbps: hostHopGBps });
  return bottleneck(terms);
}

/* Max–min fair sharing (§5.5) */

export interface SharedLink {
  id: string;
  /** Capacity in wire GB/s (the direction's TLP rate). */
  capacityGBps: number;
}

export interface SharedFlow {
  id: string;
  /** Link directions the flow crosses and its wire/payload ratio W/P on each. */
  links: { link: string; wireRatio: number }[];
  /** The flow's own limit elsewhere (payload GB/s). */
  capGBps?: number;
}

/** W/P of a stream of identical TLPs. */
export function wireRatio(payload: number, header: TlpHeader = {}, flit = false): number {
  return wireBytes(payload, header, flit) / payload;
}

/**
 * Progressive filling: raise every unfrozen flow's payload rate equally; freeze the flows on a
 * link that fills up and the flows that reach their own cap; repeat (BW-20, BW-21).
 */
export function maxMinShare(links: SharedLink[], flows: SharedFlow[]): Map<string, number> {
  const cap = new Map(links.map((l) => [l.id, l.capacityGBps]));
  for (const f of flows)
    for (const u of f.links) {
      if (!cap.has(u.link)) throw new InputError(`flow ${f.id} crosses unknown link ${u.link}`);
      if (!(u.wireRatio > 0)) throw new InputError(`flow ${f.id}: wire ratio on ${u.link} must be positive`);
    }
  const rate = new Map(flows.map((f) => [f.id, 0]));
  const used = new Map(links.map((l) => [l.id, 0]));
  let active = flows.filter((f) => f.links.length > 0 || f.capGBps !== undefined);
  for (const f of flows) if (!active.includes(f)) rate.set(f.id, Number.POSITIVE_INFINITY);
  const EPS = 1e-12;
  while (active.length > 0) {
    let delta = Number.POSITIVE_INFINITY;
    for (const l of links) {
      const w = active.reduce(
        (s, f) => s + f.links.filter((u) => u.link === l.id).reduce((a, u) => a + u.wireRatio, 0),
        0,
      );
      if (w > 0) delta = Math.min(delta, Math.max(0, cap.get(l.id)! - used.get(l.id)!) / w);
    }
    for (const f of active)
      if (f.capGBps !== undefined) delta = Math.min(delta, Math.max(0, f.capGBps - rate.get(f.id)!));
    for (const f of active) {
      rate.set(f.id, rate.get(f.id)! + delta);
      for (const u of f.links) used.set(u.link, used.get(u.link)! + delta * u.wireRatio);
    }
    const full = new Set(
      links.filter((l) => used.get(l.id)! >= cap.get(l.id)! * (1 - 1e-12) - EPS).map((l) => l.id),
    );
    active = active.filter(
      (f) =>
        !f.links.some((u) => full.has(u.link)) &&
        !(f.capGBps !== undefined && rate.get(f.id)! >= f.capGBps * (1 - 1e-12) - EPS),
    );
  }
  return rate;
}

/* Transfer time (§5.5) */

/** `t = latency + L / T` in seconds; latency default 2 µs (BW-22). */
export function transferTime(lengthBytes: number, throughputGBps: number, latencyUs = 2): number {
  if (!(throughputGBps > 0)) throw new InputError(`throughput ${throughputGBps} GB/s must be positive`);
  return latencyUs * 1e-6 + lengthBytes / (throughputGBps * 1e9);
}
