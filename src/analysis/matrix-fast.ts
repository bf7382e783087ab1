/**
 * The P2P matrix at scale: the same {@link MatrixPair} objects as `buildMatrix` (field for field,
 * `reason` and `limit` text included), computed without running the kernel's walk, the route and
 * the bandwidth model for each of the n² pairs.
 *
 * How: every endpoint's chain of upstream bridges is read once (ACS redirect, MPS, link and the
 * name of that link, switch unit). Every value a pair's result depends on is then either a
 * property of the pair's positions (common ancestor, distance, path class: computed here from the
 * chains) or of *values* along the path (links, MPS, host bridges, CPU: looked up in a memo whose
 * entries are filled by running the reference functions once, on the first pair that needs them).
 * Pairs whose endpoints sit below different root-bus functions share one memo entry per pair of
 * "chain signatures", so a fabric of identical slots costs a few hundred reference runs however
 * many endpoints it has. Anything unusual (VFs, an endpoint with a bus below it, a register that
 * does not decode, a limit text we cannot place) goes to the reference function for that pair:
 * never an approximation.
 */
import type { Machine } from "../machine/machine.js";
import type { MapType } from "../p2pdma/map-type.js";
import type { PciDev } from "../pci/device.js";
import { Fabric } from "../pci/fabric.js";
import { PCI_ACS_CR, PCI_ACS_EC, PCI_ACS_RR, PCI_EXP_TYPE } from "../pci/regs.js";
import { describeDevice, type Matrix, type MatrixOptions, type MatrixPair, matrixPair } from "./matrix.js";
import type { PathType } from "./path-type.js";

const REDIRECT_BITS = PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC;

/** One function on some endpoint's chain (the endpoint itself or a bridge above it). */
interface Node {
  dev: PciDev;
  redirect: boolean;
  /** Counts as a bridge on a route (path-type.ts: any device with a secondary bus). */
  hasSub: boolean;
  /** The bridge unit path-type.ts counts: a switch's downstream ports are their upstream port. */
  unit: PciDev;
  /** Everything the bandwidth model reads at this node: MPS, the link above and its ends. */
  sig: string;
  /** Interned {@link sig}. */
  sigId: number;
  /** `link <upper><-><lower>` as perf/path.ts names the link above this node. */
  name: string;
}

interface Endpoint {
  dev: PciDev;
  bdf: string;
  /** [endpoint, its upstream bridge, …, the function on the root bus]. */
  chain: Node[];
  /** Prefix signatures: `seg[k]` interns the values of chain[0..k-1] (k ≥ 1). */
  seg: number[];
  /** Prefix counts of ACS-redirecting nodes: `redir[k]` over chain[0..k-1]. */
  redir: number[];
  /** Signature of everything a pair without a common upstream bridge reads on this side. */
  whole: number;
  /** The endpoint's own engine parameters (the writer's DMA engine caps a path). */
  perfId: number;
}

/** Where a memoised result's `limit` comes from: fixed text, or the link above a node of one side. */
interface Limit {
  limitText: string | null;
  /** When not text: the link above chain[limitAt] of the provider (0) or the client (1). */
  limitSide: 0 | 1;
  limitAt: number;
}

interface PerfPart extends Limit {
  bandwidthGBps: number | null;
  effectiveGBps: number | null;
  ncclGBps?: number | null;
}

interface WholePart extends PerfPart {
  mapType: MapType;
  distance: number | null;
  pathType: PathType;
  reason: string;
}

type WholeMemo = (WholePart | typeof UNPLACED | undefined)[] | Map<number, WholePart | typeof UNPLACED>;

/** A memo entry that could not be reused (a limit text naming no link of the pair): recompute. */
const UNPLACED = Symbol("unplaced");

class Interner {
  private readonly ids = new Map<string, number>();
  id(key: string): number {
    let v = this.ids.get(key);
    if (v === undefined) {
      v = this.ids.size;
      this.ids.set(key, v);
    }
    return v;
  }
  get size(): number {
    return this.ids.size;
  }
}

function bridgeUnit(d: PciDev): PciDev {
  if (d.pcieType === PCI_EXP_TYPE.DOWNSTREAM && d.bus.self?.pcieType === PCI_EXP_TYPE.UPSTREAM)
    return d.bus.self;
  return d;
}

/**
 * The pair engine for one machine and one set of options. `pair(p, c)` gives exactly
 * `matrixPair(m, eps[p], eps[c], opts)`.
 */
export class MatrixEngine {
  readonly endpoints: PciDev[];
  private readonly info: (Endpoint | null)[];
  private readonly nodes = new Map<PciDev, Node>();
  private readonly wholeSigs = new Interner();
  private readonly segSigs = new Interner();
  private readonly nodeSigs = new Interner();
  private readonly perfSigs = new Interner();
  /** Pairs without a common upstream bridge: by (provider whole sig, client whole sig). */
  private readonly wholeMemo: WholeMemo;
  private readonly wholeStride: number;
  /** Pairs below one root-bus function: bandwidth by segment values, verdict by the ACS path. */
  private readonly perfMemo = new Map<number | string, PerfPart | typeof UNPLACED>();
  /** Numeric perf keys stay exact (below 2^53); else they are strings. */
  private readonly numericPerfKeys: boolean;
  private readonly verdictMemo = new Map<string, { mapType: MapType; reason: string }>();
  /**
   * Verdicts with ACS redirects, by host bridge and count: the reason is the same text around
   * the list of redirecting ports (kept as the parts before and after that list).
   */
  private readonly acsMemo = new Map<string, { mapType: MapType; head: string; tail: string }>();
  private readonly nccl: boolean;
  /** Pairs computed by the reference functions (for the benchmark's report). */
  referencePairs = 0;

  constructor(
    readonly machine: Machine,
    readonly opts: MatrixOptions = {},
  ) {
    this.endpoints = opts.only ?? machine.fabric.endpoints();
    this.nccl = opts.compare === "nccl";
    this.info = this.endpoints.map((d) => this.endpointInfo(d));
    this.wholeStride = this.wholeSigs.size;
    this.numericPerfKeys =
      this.segSigs.size ** 2 * (this.nodeSigs.size + 1) * (this.perfSigs.size + 1) < Number.MAX_SAFE_INTEGER;
    // a flat table while it stays small (the usual case: few distinct slot kinds), else a map
    this.wholeMemo = this.wholeStride <= 2048 ? new Array(this.wholeStride ** 2) : new Map();
  }

  private node(d: PciDev): Node {
    let n = this.nodes.get(d);
    if (n) return n;
    const upper = Fabric.upstreamBridge(d);
    // perf/path.ts linkAbove reads these (and nothing else) besides the MPS of every node
    const linked = upper !== null && (upper.kind === "root-port" || upper.kind === "downstream-port");
    const sig = `${d.mps}/${linked ? JSON.stringify([d.link, upper.link]) : "-"}`;
    n = {
      dev: d,
      redirect: (d.acsCtrlReg & REDIRECT_BITS) !== 0,
      hasSub: d.subordinate !== null,
      unit: bridgeUnit(d),
      sig,
      sigId: this.nodeSigs.id(sig),
      name: `link ${upper?.bdf ?? "?"}<->${d.bdf}`,
    };
    this.nodes.set(d, n);
    return n;
  }

  /** Null: every pair with this endpoint goes to the reference functions. */
  private endpointInfo(d: PciDev): Endpoint | null {
    if (d.isVirtfn || d.physfn || d.subordinate) return null;
    try {
      void d.mrrs; // read for every client by the bandwidth model; a reserved code throws there
      const chain: Node[] = [];
      for (let x: PciDev | null = d; x; x = Fabric.upstreamBridge(x)) {
        if (x.isVirtfn || chain.length > 256) return null;
        chain.push(this.node(x));
      }
      const seg = [0];
      const redir = [0];
      let key = "";
      for (const [i, n] of chain.entries()) {
        key += `${n.sig};`;
        seg.push(this.segSigs.id(key));
        redir.push(redir[i] + (n.redirect ? 1 : 0));
      }
      const hb = d.hostBridge;
      const numa = d.numaNode >= 0 ? d.numaNode : hb.numaNode;
      const whole = this.wholeSigs.id(
        `${hb.domain}:${hb.busNumber}|${numa}|${JSON.stringify(d.perf)}|${chain.length}|${key}`,
      );
      const perfId = this.perfSigs.id(JSON.stringify(d.perf));
      return { dev: d, bdf: d.bdf, chain, seg, redir, whole, perfId };
    } catch {
      return null;
    }
  }

  /** The pair (endpoints[p] as provider, endpoints[c] as client). */
  pair(p: number, c: number): MatrixPair {
    const P = this.info[p];
    const C = this.info[c];
    if (p === c || !P || !C) return this.reference(this.endpoints[p], this.endpoints[c]);
    const tp = P.chain[P.chain.length - 1];
    const tc = C.chain[C.chain.length - 1];
    return tp === tc ? this.below(P, C) : this.apart(P, C);
  }

  private reference(p: PciDev, c: PciDev): MatrixPair {
    this.referencePairs++;
    return matrixPair(this.machine, p, c, this.opts);
  }

  /** No common upstream bridge: everything is a function of the two chains' values. */
  private apart(P: Endpoint, C: Endpoint): MatrixPair {
    const k = P.whole * this.wholeStride + C.whole;
    const memo = this.wholeMemo;
    let w = Array.isArray(memo) ? memo[k] : memo.get(k);
    if (w === undefined) {
      const r = this.reference(P.dev, C.dev);
      const limit = placeLimit(r.limit, P, P.chain.length, C, C.chain.length);
      w = limit
        ? {
            mapType: r.mapType,
            distance: r.distance,
            pathType: r.pathType,
            reason: r.reason,
            bandwidthGBps: r.bandwidthGBps,
            effectiveGBps: r.effectiveGBps,
            ...limit,
            ncclGBps: r.ncclGBps,
          }
        : UNPLACED;
      if (Array.isArray(memo)) memo[k] = w;
      else memo.set(k, w);
      return r;
    }
    if (w === UNPLACED) return this.reference(P.dev, C.dev);
    return this.make(P, C, w.mapType, w.distance, w.pathType, w, w.reason);
  }

  /** Both below one root-bus function: common ancestor by depth, verdict and class from the chains. */
  private below(P: Endpoint, C: Endpoint): MatrixPair {
    const pc = P.chain;
    const cc = C.chain;
    let ip = pc.length - 1;
    let ic = cc.length - 1;
    while (ip > 0 && ic > 0 && pc[ip - 1] === cc[ic - 1]) {
      ip--;
      ic--;
    }
    // pc[ip] === cc[ic] is the common upstream bridge; ip, ic ≥ 1 (endpoints have no bus below)
    const common = pc[ip];
    const distance = ip + ic;

    // path class: bridges strictly between the two endpoints, a switch counted once
    let unit: PciDev | null = common.hasSub ? common.unit : null;
    let many = false;
    for (let i = 1; i < ip && !many; i++) {
      const n = pc[i];
      if (!n.hasSub) continue;
      if (unit === null) unit = n.unit;
      else many = n.unit !== unit;
    }
    for (let i = 1; i < ic && !many; i++) {
      const n = cc[i];
      if (!n.hasSub) continue;
      if (unit === null) unit = n.unit;
      else many = n.unit !== unit;
    }
    const pathType: PathType = many ? "PXB" : "PIX";

    // verdict: ACS redirects on the provider side, at the common bridge, on the client side
    const redirects = P.redir[ip] + (common.redirect ? 1 : 0) + C.redir[ic];
    let vkey: string;
    let acsKey = "";
    let acsList = "";
    let v: { mapType: MapType; reason: string } | undefined;
    if (redirects === 0) {
      vkey = common.dev.bdf;
      v = this.verdictMemo.get(vkey);
    } else {
      const at: string[] = [];
      for (let i = 0; i < ip; i++) if (pc[i].redirect) at.push(pc[i].dev.bdf);
      if (common.redirect) at.push(common.dev.bdf);
      for (let i = 0; i < ic; i++) if (cc[i].redirect) at.push(cc[i].dev.bdf);
      const hb = P.dev.hostBridge;
      acsList = at.join(", ");
      acsKey = `${hb.domain}:${hb.busNumber}#${at.length}`;
      vkey = `${acsList}|${acsKey}`;
      const t = this.acsMemo.get(acsKey);
      v = t ? { mapType: t.mapType, reason: t.head + acsList + t.tail } : this.verdictMemo.get(vkey);
    }

    // bandwidth: values of both segments and of the common bridge (client = the writer)
    const pk = this.numericPerfKeys
      ? ((P.seg[ip] * this.segSigs.size + C.seg[ic]) * this.nodeSigs.size + common.sigId) *
          this.perfSigs.size +
        C.perfId
      : `${P.seg[ip]},${C.seg[ic]},${common.sigId},${C.perfId}`;
    let perf = this.perfMemo.get(pk);
    if (perf === undefined || v === undefined) {
      const r = this.reference(P.dev, C.dev);
      if (perf === undefined) {
        const limit = placeLimit(r.limit, P, ip, C, ic);
        perf = limit
          ? { bandwidthGBps: r.bandwidthGBps, effectiveGBps: r.effectiveGBps, ...limit, ncclGBps: r.ncclGBps }
          : UNPLACED;
        this.perfMemo.set(pk, perf);
      }
      if (v === undefined) {
        this.verdictMemo.set(vkey, { mapType: r.mapType, reason: r.reason });
        // the list must stand once in the text for the parts around it to be reusable
        const i = acsList ? r.reason.indexOf(acsList) : -1;
        if (i >= 0 && r.reason.lastIndexOf(acsList) === i)
          this.acsMemo.set(acsKey, {
            mapType: r.mapType,
            head: r.reason.slice(0, i),
            tail: r.reason.slice(i + acsList.length),
          });
      }
      return r;
    }
    if (perf === UNPLACED) return this.reference(P.dev, C.dev);
    return this.make(
      P,
      C,
      v.mapType,
      v.mapType === "NOT_SUPPORTED" ? null : distance,
      pathType,
      perf,
      v.reason,
    );
  }

  private make(
    P: Endpoint,
    C: Endpoint,
    mapType: MapType,
    distance: number | null,
    pathType: PathType,
    perf: PerfPart,
    reason: string,
  ): MatrixPair {
    const limit = perf.limitText ?? (perf.limitSide === 0 ? P : C).chain[perf.limitAt].name;
    const out: MatrixPair = {
      provider: P.bdf,
      client: C.bdf,
      mapType,
      distance,
      pathType,
      bandwidthGBps: perf.bandwidthGBps,
      effectiveGBps: perf.effectiveGBps,
      limit,
      reason,
    };
    if (this.nccl) out.ncclGBps = perf.ncclGBps;
    return out;
  }
}

/**
 * Which link a reference result's `limit` names, as (side, index on that side's chain), so the
 * same memo entry names the right link for another pair; fixed text stays text. Null when it
 * names a link that is not one of the pair's (then the entry is not reusable).
 */
function placeLimit(limit: string, P: Endpoint, np: number, C: Endpoint, nc: number): Limit | null {
  if (!limit.startsWith("link ")) return { limitText: limit, limitSide: 0, limitAt: 0 };
  for (let i = 0; i < nc; i++)
    if (C.chain[i].name === limit) return { limitText: null, limitSide: 1, limitAt: i };
  for (let i = 0; i < np; i++)
    if (P.chain[i].name === limit) return { limitText: null, limitSide: 0, limitAt: i };
  return null;
}

/** Every ordered pair in `buildMatrix` order, one fresh object each, nothing kept. */
export function forEachMatrixPair(
  m: Machine,
  opts: MatrixOptions,
  visit: (pair: MatrixPair) => void,
): MatrixEngine {
  const e = new MatrixEngine(m, opts);
  const n = e.endpoints.length;
  for (let p = 0; p < n; p++) for (let c = 0; c < n; c++) visit(e.pair(p, c));
  return e;
}

/** Exactly `buildMatrix(m, opts)`, computed by {@link MatrixEngine}. */
export function buildMatrixFast(m: Machine, opts: MatrixOptions = {}): Matrix {
  const pairs: MatrixPair[] = [];
  const e = forEachMatrixPair(m, opts, (p) => pairs.push(p));
  return {
    machine: m.name,
    cpu: { vendor: m.cpu.vendor, family: m.cpu.family, source: m.cpu.source, assumed: m.cpuAssumed },
    devices: e.endpoints.map((d) => describeDevice(d, opts.names)),
    pairs,
  };
}

/* Streaming JSON */

const q = JSON.stringify;
const num = (v: number | null | undefined) => (v === null || v === undefined ? "null" : q(v));

/** One pair as `JSON.stringify(pair, null, 2)` prints it at `indent` spaces. */
function pairJson(p: MatrixPair, indent: string): string {
  const i = `${indent}  `;
  let s = `${indent}{\n${i}"provider": ${q(p.provider)},\n${i}"client": ${q(p.client)},\n${i}"mapType": ${q(p.mapType)},\n${i}"distance": ${num(p.distance)},\n${i}"pathType": ${q(p.pathType)},\n${i}"bandwidthGBps": ${num(p.bandwidthGBps)},\n${i}"effectiveGBps": ${num(p.effectiveGBps)},\n${i}"limit": ${q(p.limit)},\n${i}"reason": ${q(p.reason)}`;
  if (p.ncclGBps !== undefined) s += `,\n${i}"ncclGBps": ${num(p.ncclGBps)}`;
  return `${s}\n${indent}}`;
}

/** `JSON.stringify(value, replacer, 2)` re-indented to sit at `indent` (a property's value). */
function nested(value: unknown, indent: string, replacer?: (k: string, v: unknown) => unknown): string {
  const text = JSON.stringify(value, replacer as never, 2) ?? "null";
  return text.replace(/\n/g, `\n${indent}`);
}

export interface MatrixJsonOptions extends MatrixOptions {
  /** More top-level properties after `devices` and `pairs`, in order (machine, cpu, sources …). */
  extra?: (mx: Omit<Matrix, "pairs">) => Record<string, unknown>;
  /** Applied to `devices` and `extra` as `JSON.stringify`'s replacer (pairs hold no bigint). */
  replacer?: (key: string, value: unknown) => unknown;
  /** Characters gathered before each call of `write` (default 1 MiB). */
  chunk?: number;
}

/**
 * Writes `{ devices, pairs, …extra }` as `JSON.stringify(…, replacer, 2)` would, without ever
 * holding the pairs: for the `--json` output of matrices with millions of pairs. `write` gets
 * chunks in order (the caller handles back-pressure, e.g. `fs.writeSync(1, chunk)`).
 */
export function writeMatrixJson(
  m: Machine,
  write: (chunk: string) => void,
  opts: MatrixJsonOptions = {},
): void {
  const engine = new MatrixEngine(m, opts);
  const eps = engine.endpoints;
  const head: Omit<Matrix, "pairs"> = {
    machine: m.name,
    cpu: { vendor: m.cpu.vendor, family: m.cpu.family, source: m.cpu.source, assumed: m.cpuAssumed },
    devices: eps.map((d) => describeDevice(d, opts.names)),
  };
  const limit = opts.chunk ?? 1 << 20;
  let buf = `{\n  "devices": ${nested(head.devices, "  ", opts.replacer)},\n  "pairs": [`;
  const n = eps.length;
  for (let p = 0; p < n; p++)
    for (let c = 0; c < n; c++) {
      buf += `${p || c ? "," : ""}\n${pairJson(engine.pair(p, c), "    ")}`;
      if (buf.length >= limit) {
        write(buf);
        buf = "";
      }
    }
  buf += n ? "\n  ]" : "]";
  const extra = opts.extra?.(head) ?? {};
  for (const [k, v] of Object.entries(extra)) {
    const text = nested(v, "  ", opts.replacer);
    if (v !== undefined && typeof v !== "function") buf += `,\n  ${q(k)}: ${text}`;
  }
  write(`${buf}\n}\n`);
}
