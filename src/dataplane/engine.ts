/**
 * The DMA engine of a machine: memory reads and writes issued by a function (or by the CPU),
 * routed through the fabric as the hardware routes them, cut into TLPs, encoded with the TLP
 * codec in each link's mode, and delivered to the memory behind a BAR or to system RAM.
 *
 * Routing (what a request does, in order):
 * - A function with Bus Master Enable clear issues nothing.
 * - A VF issues with its own Requester ID over its PF's link and path (kernel-semantics §1.3).
 * - Bus addresses (`bus`, `auto`) are first decoded below the initiator's root port: a BAR of a
 *   function that shares a switch with the initiator is reached peer-to-peer inside the switch
 *   (functions of one device: inside the device), unless the ingress port (the device itself for a
 *   multi-function device) has ACS P2P Request Redirect enabled, which sends the request up.
 * - Everything else reaches the root complex. There `auto` and `iova` addresses are translated by
 *   the initiator's IOMMU domain (none, or identity: unchanged; a miss or a permission failure is an
 *   IOMMU fault and the TLP goes no further); `bus` addresses are converted to CPU addresses with the
 *   host bridge's window offset. The CPU address is decoded against every BAR of the machine
 *   (P2P through the root complex, across the interconnect when the BAR is under another host
 *   bridge; bus address on the far side = CPU address − that bridge's busOffset), then system RAM;
 *   nothing → Unsupported Request.
 * - On the way, a bridge forwarding a request upstream needs Bus Master Enable, one forwarding it
 *   downstream needs Memory Space Enable; the target needs Memory Space Enable (a VF: its PF's
 *   SR-IOV VF Enable). Otherwise: Unsupported Request where it stopped, no byte delivered.
 * - A TLP carrying an ExtTPH prefix (16-bit ST on a non-flit link) is dropped by the first port
 *   that receives or must send it on a non-flit link without End-End TLP Prefix support (TPH-30).
 *
 * Splitting (pcie-bandwidth.md §5.2): writes at multiples of the smallest MPS of the functions on
 * the path, reads at multiples of the requester's MRRS; neither crosses 4 KiB. The model also cuts
 * where the decoded target changes (end of a BAR or RAM range, IOMMU page), so every TLP has one
 * target. Completions: completer policy `max` (a BAR) or `rcb` (RAM, the root complex), maximum
 * completion size the smallest MPS on the path. With the host bridge's `p2pSplitBytes`, writes
 * forwarded peer-to-peer by the root complex are re-split on the links below it.
 */
import { InputError } from "../core/errors.js";
import { hex } from "../core/hex.js";
import type { IommuFault } from "../iommu/domain.js";
import type { Machine } from "../machine/machine.js";
import type { HostBridge, PciDev } from "../pci/device.js";
import { IORESOURCE_IO, IORESOURCE_MEM } from "../pci/device.js";
import {
  PCI_ACS_RR,
  PCI_COMMAND_MASTER,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_SRIOV_CTRL,
  PCI_SRIOV_CTRL_VFE,
} from "../pci/regs.js";
import { splitCompletions } from "../perf/tlp-size.js";
import {
  buildTlp,
  decodeTlp,
  encodeTlp,
  formatWire,
  summaryLine,
  type TlpMode,
  type TlpParams,
} from "../tlp/index.js";
import { BarMemory, DEFAULT_RAM, HostMemory, type RamRange } from "./bar-memory.js";
import type { DataplaneEvent, DmaStatus } from "./events.js";
import {
  chainOf,
  commonBridge,
  type DmaRoute,
  downElems,
  eeTlpPrefixSupported,
  type LinkHop,
  type LinkRef,
  physical,
  type RouteElem,
  reverseElems,
  routeText,
  type Turn,
  turnText,
  upElems,
} from "./route.js";
import { TlpTrace } from "./trace.js";

export type AddressKind = "bus" | "iova" | "auto";

/** TPH a request carries (tph-and-tlp.md §3): 8-bit ST, or 16-bit with `extended`. */
export interface DmaTph {
  st: number;
  ph: number;
  extended?: boolean;
}

export interface DmaOptions {
  /**
   * `bus`: a PCI bus address, never translated; `iova`: a DMA address translated by the
   * initiator's IOMMU domain at the root complex; `auto`: what the hardware does with an address
   * (switch-local peer BARs by bus address unless ACS redirects, translation at the root complex).
   */
  addressKind: AddressKind;
  tph?: DmaTph;
  /** `link` (default): each link's negotiated mode; `nfm` / `fm`: every link in that mode. */
  flitMode?: "link" | "nfm" | "fm";
  tc?: number;
  /** bit 2 IDO, bit 1 RO, bit 0 NS */
  attr?: number;
  /** Record the TLPs (default: the engine's `trace` option). */
  trace?: boolean;
}

export interface CpuAccessOptions {
  /** Bytes per CPU access (a UC store or load is at most 8; 64 for a write-combined burst). Default 8. */
  chunk?: 1 | 2 | 4 | 8 | 16 | 32 | 64;
  trace?: boolean;
}

export type DmaTarget =
  | { kind: "bar"; dev: PciDev; bar: number; offset: bigint }
  | { kind: "ram"; phys: bigint };

/** One request TLP of a transfer and what became of it. */
export interface DmaSegment {
  /** Address as issued (before any translation). */
  address: bigint;
  length: number;
  status: DmaStatus;
  target: DmaTarget | null;
  /** Where the TLP ended: the target, or the function / host bridge that stopped it. */
  at: string;
  /** Where the request turned around. */
  via: Turn["kind"];
  /** Translated by the initiator's IOMMU domain at the root complex. */
  translated: boolean;
  /** Address the TLP carried below the turning point (bus address on the target's side). */
  downAddress: bigint;
  reason?: string;
  fault?: IommuFault;
}

export interface DmaResult {
  /** SC when every TLP completed successfully, else the status of the first one that did not. */
  status: DmaStatus;
  fault?: IommuFault;
  reason?: string;
  at?: string;
  tlps: TlpTrace;
  /** Request TLPs issued. */
  requests: number;
  /** Route of the first request. */
  route: DmaRoute | null;
  bytesDelivered: number;
  segments: DmaSegment[];
}

export interface DmaReadResult extends DmaResult {
  /** The bytes read; bytes of failed requests read as 0xFF (all ones, as a failed load returns). */
  data: Uint8Array;
}

export interface DmaEngineOptions {
  /** System RAM ranges (default {@link DEFAULT_RAM}). */
  ram?: readonly RamRange[];
  /** FM posted writes with TPH: Tag = ST[7:0] or 0 (tph-and-tlp §8). */
  fmPostedTagPolicy?: "mirror-st" | "zero";
  /** Record TLP traces by default (default true). */
  trace?: boolean;
  /** Emit one "tlp" event per traced TLP into the machine log (default true). */
  logTlps?: boolean;
}

/** A BAR or RAM range decoded at an address. */
type Decoded =
  | { kind: "bar"; dev: PciDev; bar: number; offset: bigint; end: bigint }
  | { kind: "ram"; end: bigint }
  | { kind: "none"; next: bigint | null };

interface Plan {
  elems: RouteElem[];
  /** Index of the first element after the turning point (links from there carry `downAddr`). */
  turnIndex: number;
  turn: Turn;
  target: DmaTarget | null;
  targetDev: PciDev | null;
  upAddr: bigint;
  downAddr: bigint;
  /** Bytes from the address with the same plan. */
  span: bigint;
  translated: boolean;
  redirectedBy: PciDev | null;
  /** The root complex refused the request (IOMMU fault, nothing decodes). */
  rcFailure: { status: DmaStatus; reason: string; fault?: IommuFault; at: string } | null;
  /** Root-complex P2P re-split size for writes (host bridge `p2pSplitBytes`). */
  p2pSplit: number | null;
}

interface WalkResult {
  status: DmaStatus;
  at: string;
  reason?: string;
  fault?: IommuFault;
  /** Links the request crossed, in order (completions go back over them). */
  crossed: LinkHop[];
  /** Completer of an error completion (a bridge), when the failure was at one. */
  completer: PciDev | null;
}

/** What one request of a transfer did: where it went, how, and how it ended. */
function segmentOf(
  address: bigint,
  length: number,
  status: DmaStatus,
  reason: string | undefined,
  p: Plan,
  w: WalkResult,
): DmaSegment {
  return {
    address,
    length,
    status,
    target: p.target,
    at: w.at,
    via: p.turn.kind,
    translated: p.translated,
    downAddress: p.downAddr,
    ...(reason ? { reason } : {}),
    ...(w.fault ? { fault: w.fault } : {}),
  };
}

const PAGE = 4096n;
const NO_LIMIT = 1n << 64n;
const PCI_SRIOV_CTRL_MSE = 0x08;

function rid(dev: PciDev): number {
  return ((dev.busNumber & 0xff) << 8) | (dev.devfn & 0xff);
}

function minBig(...v: bigint[]): bigint {
  let m = v[0];
  for (const x of v) if (x < m) m = x;
  return m;
}

function beFor(pad: number, len: number): { dw: number; first: number; last: number } {
  const dw = Math.ceil((pad + len) / 4);
  const endByte = (pad + len - 1) & 3;
  if (dw === 1) {
    let first = 0;
    for (let b = pad; b < pad + len; b++) first |= 1 << b;
    return { dw, first, last: 0 };
  }
  return { dw, first: (0xf << pad) & 0xf, last: (1 << (endByte + 1)) - 1 };
}

function acsRedirects(dev: PciDev): boolean {
  return dev.acsCapOffset !== 0 && (dev.acsCtrlReg & PCI_ACS_RR) !== 0;
}

/** Memory Space decoding of a function's BARs; a VF's are enabled by its PF's SR-IOV control. */
export function memoryDecodes(dev: PciDev): boolean {
  if (!dev.isVirtfn) return dev.memoryDecodeEnabled;
  const pf = dev.physfn;
  if (!pf) return false;
  const o = pf.config.findExtCapability(PCI_EXT_CAP_ID_SRIOV);
  if (!o) return false;
  // VF MSE (bit 3) is not set by the machine-file builder; VF Enable stands for both (Linux sets them together).
  return (pf.config.read16(o + PCI_SRIOV_CTRL) & (PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE)) !== 0;
}

const ENGINES = new WeakMap<Machine, DmaEngine>();

export class DmaEngine {
  readonly bars = new BarMemory();
  readonly ram: HostMemory;
  readonly opts: Required<Omit<DmaEngineOptions, "ram">>;
  private readonly tags = new Map<PciDev | null, number>();
  private depth = 0;
  private draining = false;
  private readonly deferred: (() => void)[] = [];

  constructor(
    readonly machine: Machine,
    opts: DmaEngineOptions = {},
  ) {
    this.ram = new HostMemory(opts.ram ?? DEFAULT_RAM);
    this.opts = {
      fmPostedTagPolicy: opts.fmPostedTagPolicy ?? "mirror-st",
      trace: opts.trace ?? true,
      logTlps: opts.logTlps ?? true,
    };
  }

  /** The machine's engine (created on first use with default options). */
  static of(machine: Machine, opts?: DmaEngineOptions): DmaEngine {
    let e = ENGINES.get(machine);
    if (!e) {
      e = new DmaEngine(machine, opts);
      ENGINES.set(machine, e);
    }
    return e;
  }

  private emit(e: DataplaneEvent): void {
    this.machine.log.emit(e);
  }

  /* ---------------------------------------------------------------- address decode */

  /** The memory BAR of any function containing CPU address `cpu`, else RAM, else the next decodable start. */
  decodeCpu(cpu: bigint): Decoded {
    let next: bigint | null = null;
    for (const d of this.machine.fabric.devices())
      for (const r of d.resources) {
        if (!(r.flags & IORESOURCE_MEM) || r.flags & IORESOURCE_IO || r.len === 0n) continue;
        if (cpu >= r.start && cpu < r.start + r.len)
          return { kind: "bar", dev: d, bar: r.index, offset: cpu - r.start, end: r.start + r.len };
        if (r.start > cpu && (next === null || r.start < next)) next = r.start;
      }
    const ram = this.ram.rangeAt(cpu);
    if (ram) return { kind: "ram", end: ram.start + ram.size };
    const rn = this.ram.nextStart(cpu);
    if (rn !== null && (next === null || rn < next)) next = rn;
    return { kind: "none", next };
  }

  /** The memory BAR of a function under `hb` whose bus address range holds `bus`. */
  decodeBus(hb: HostBridge, bus: bigint): Decoded {
    let next: bigint | null = null;
    for (const d of this.machine.fabric.devices()) {
      if (d.hostBridge !== hb) continue;
      for (const r of d.resources) {
        if (!(r.flags & IORESOURCE_MEM) || r.flags & IORESOURCE_IO || r.len === 0n) continue;
        const b = d.busAddress(r.index);
        if (bus >= b && bus < b + r.len)
          return { kind: "bar", dev: d, bar: r.index, offset: bus - b, end: b + r.len };
        if (b > bus && (next === null || b < next)) next = b;
      }
    }
    return { kind: "none", next };
  }

  /** Bus address → CPU address through the window of `hb` that holds it (identity outside windows). */
  busToCpu(hb: HostBridge, bus: bigint): bigint {
    for (const w of hb.windows) {
      const b = w.cpuBase - w.busOffset;
      if (bus >= b && bus < b + w.size) return bus + w.busOffset;
    }
    return bus;
  }

  /* ---------------------------------------------------------------- planning */

  private cpuHostBridge(): HostBridge {
    const hb = this.machine.fabric.hostBridges[0];
    if (!hb) throw new InputError("the machine has no host bridge");
    return hb;
  }

  /** The route and target of a request at `addr` (before walking it). */
  private plan(init: PciDev | null, addr: bigint, access: "read" | "write", kind: AddressKind): Plan {
    let localNext: bigint | null = null;
    let redirectedBy: PciDev | null = null;
    if (init && kind !== "iova") {
      const d = this.decodeBus(physical(init).hostBridge, addr);
      if (d.kind === "none") localNext = d.next;
      else if (d.kind === "bar") {
        const t = d.dev;
        const pi = physical(init);
        const pt = physical(t);
        const sameDevice = init === t || (pi.bus === pt.bus && !pi.bus.isRoot);
        const common = sameDevice ? null : commonBridge(init, t);
        if (sameDevice || common) {
          const chain = chainOf(init);
          const ingress = sameDevice ? init : chain[chain.indexOf(common!) - 1];
          if (ingress && acsRedirects(ingress)) redirectedBy = ingress;
          else {
            const elems: RouteElem[] = sameDevice
              ? [{ t: "target", dev: t }]
              : [...upElems(init, common), ...downElems(t, common)];
            const turnIndex = sameDevice ? 0 : upElems(init, common).length;
            return {
              elems,
              turnIndex,
              turn: sameDevice ? { kind: "device", at: pi } : { kind: "switch", at: common! },
              target: { kind: "bar", dev: t, bar: d.bar, offset: d.offset },
              targetDev: t,
              upAddr: addr,
              downAddr: addr,
              span: d.end - addr,
              translated: false,
              redirectedBy: null,
              rcFailure: null,
              p2pSplit: null,
            };
          }
        }
        // redirected, or a BAR the root complex must route: re-decode after the BAR's end
        localNext = d.end;
      }
    }
    // To the root complex.
    const hb = init ? physical(init).hostBridge : this.cpuHostBridge();
    const elems: RouteElem[] = init ? upElems(init, null) : [];
    elems.push({ t: "rc", hostBridge: hb });
    const turnIndex = elems.length;
    const pageLeft = PAGE - (addr % PAGE);
    let span = localNext !== null ? localNext - addr : NO_LIMIT;
    let cpu: bigint;
    let translated = false;
    const base = {
      turnIndex,
      turn: { kind: "root-complex", from: hb, to: null } as Turn,
      upAddr: addr,
      redirectedBy,
      p2pSplit: null,
    };
    if (init && kind !== "bus") {
      const dom = this.machine.iommu.domainOf(init);
      translated = dom !== null && dom.type !== "identity";
      const tr = this.machine.iommu.translate(init, addr, access);
      if (!tr.ok)
        return {
          ...base,
          elems,
          target: null,
          targetDev: null,
          downAddr: addr,
          span: minBig(span, pageLeft),
          translated,
          rcFailure: {
            status: "iommu-fault",
            reason: `IOMMU fault (${tr.fault}) on ${access} of ${hex(addr)}`,
            fault: tr.fault,
            at: hb.label,
          },
        };
      cpu = tr.phys;
      if (translated) span = minBig(span, pageLeft);
    } else cpu = init ? this.busToCpu(hb, addr) : addr;
    const d = this.decodeCpu(cpu);
    if (d.kind === "none")
      return {
        ...base,
        elems,
        target: null,
        targetDev: null,
        downAddr: cpu,
        span: minBig(span, d.next !== null ? d.next - cpu : NO_LIMIT),
        translated,
        rcFailure: {
          status: "UR",
          reason: `nothing decodes ${hex(cpu)} (no BAR, not system RAM)`,
          at: hb.label,
        },
      };
    if (d.kind === "ram")
      return {
        ...base,
        elems,
        target: { kind: "ram", phys: cpu },
        targetDev: null,
        downAddr: cpu,
        span: minBig(span, d.end - cpu),
        translated,
        rcFailure: null,
      };
    const t = d.dev;
    const thb = t.hostBridge;
    let turn: Turn = { kind: "root-complex", from: hb, to: null };
    if (thb !== hb) {
      elems.push({ t: "interconnect", from: hb, to: thb }, { t: "rc", hostBridge: thb });
      turn = { kind: "root-complex", from: hb, to: thb };
    }
    elems.push(...downElems(t, null));
    const splits = [hb.forwarding.p2pSplitBytes, thb.forwarding.p2pSplitBytes].filter(
      (v): v is number => typeof v === "number" && v > 0,
    );
    return {
      ...base,
      turn,
      elems,
      target: { kind: "bar", dev: t, bar: d.bar, offset: d.offset },
      targetDev: t,
      downAddr: cpu - thb.busOffsetOf(cpu),
      span: minBig(span, d.end - cpu),
      translated,
      rcFailure: null,
      p2pSplit: init && splits.length ? Math.min(...splits) : null,
    };
  }

  /** Smallest MPS of the functions the request passes (VFs use their PF's setting). */
  private pathMps(init: PciDev | null, p: Plan): number {
    let mps = init ? physical(init).mps : 4096;
    for (const e of p.elems) {
      if (e.t === "bridge") mps = Math.min(mps, e.dev.mps);
      else if (e.t === "target") mps = Math.min(mps, physical(e.dev).mps);
      else if (e.t === "link") mps = Math.min(mps, e.hop.link.port.mps, e.hop.link.device.mps);
    }
    return mps;
  }

  private routeOf(init: PciDev | null, p: Plan): DmaRoute {
    const label = init ? init.bdf : "cpu";
    const targetLabel =
      p.target === null ? null : p.target.kind === "ram" ? `RAM ${hex(p.target.phys)}` : p.target.dev.bdf;
    return {
      kind: p.target === null ? "none" : p.target.kind === "ram" ? "host-memory" : "peer",
      initiator: label,
      target: targetLabel,
      turn: p.turn,
      links: p.elems.flatMap((e) => (e.t === "link" ? [e.hop] : [])),
      translated: p.translated,
      redirectedBy: p.redirectedBy?.bdf ?? null,
      text: routeText(
        label,
        p.elems,
        targetLabel,
        p.turn.kind === "root-complex" ? undefined : { index: p.turnIndex, label: turnText(p.turn) },
      ),
      elems: p.elems,
    };
  }

  /* ---------------------------------------------------------------- TLPs */

  private linkMode(link: LinkRef, opts: { flitMode?: "link" | "nfm" | "fm" }): TlpMode {
    if (opts.flitMode === "fm") return "fm";
    if (opts.flitMode === "nfm") return "nfm";
    return link.flit ? "fm" : "nfm";
  }

  private nextTag(init: PciDev | null): number {
    const t = this.tags.get(init) ?? 0;
    this.tags.set(init, (t + 1) & 0xff);
    return t;
  }

  private record(
    trace: TlpTrace | null,
    request: number,
    hop: LinkHop,
    mode: TlpMode,
    params: TlpParams,
    payload: Uint8Array | undefined,
  ): void {
    if (!trace) return;
    const input = buildTlp(params);
    const bytes = encodeTlp({ ...input, data: payload });
    const header = decodeTlp(bytes, { mode, whole: true });
    trace.add({ request, link: hop.link.name, direction: hop.direction, mode, bytes, header });
    if (this.opts.logTlps && this.machine.log.active) {
      const hdrLen = header.info.prefixBytes + header.info.headerBytes;
      this.emit({
        kind: "tlp",
        link: hop.link.name,
        direction: hop.direction,
        mode,
        summary: summaryLine(header),
        header: formatWire(bytes.subarray(0, hdrLen)),
      });
    }
  }

  /** Parameters of a memory request TLP for `[addr, addr + len)` (any byte alignment). */
  private requestParams(
    mode: TlpMode,
    type: "MWr" | "MRd",
    addr: bigint,
    len: number,
    requesterId: number,
    tag: number,
    opts: DmaOptions | null,
  ): TlpParams {
    const pad = Number(addr & 3n);
    const be = beFor(pad, len);
    const p: TlpParams = {
      mode,
      type,
      address: addr - BigInt(pad),
      length: be.dw,
      requesterId,
      firstBe: be.first,
      lastBe: be.last,
      tc: opts?.tc,
      attr: opts?.attr,
      fmPostedTagPolicy: this.opts.fmPostedTagPolicy,
    };
    if (type === "MRd") p.tag = tag;
    const tph = opts?.tph;
    if (tph) {
      const implied = be.first === 0xf && be.last === (be.dw === 1 ? 0 : 0xf);
      // NFM non-posted requests carry ST in the byte-enable byte: only with implied byte enables (§6.2)
      if (type === "MWr" || mode === "fm" || implied) {
        p.st = tph.st;
        p.ph = tph.ph;
        p.stBits = tph.extended || tph.st > 0xff ? 16 : 8;
      }
    }
    return p;
  }

  /** Payload DWs of `[addr, addr+len)` with `data` placed at the address's byte offset. */
  private static dwPayload(addr: bigint | number, data: Uint8Array): Uint8Array {
    const pad = Number(BigInt(addr) & 3n);
    const out = new Uint8Array(Math.ceil((pad + data.length) / 4) * 4);
    out.set(data, pad);
    return out;
  }

  /**
   * Walks a request along its plan: records it on each link, applies the bridges' and the target's
   * checks and End-End prefix support, and says where it ended.
   */
  private walk(
    p: Plan,
    ctx: {
      init: PciDev | null;
      type: "MWr" | "MRd";
      len: number;
      requesterId: number;
      tag: number;
      opts: DmaOptions | null;
      payload: Uint8Array | null;
      request: number;
      trace: TlpTrace | null;
    },
  ): WalkResult {
    const crossed: LinkHop[] = [];
    const tph = ctx.opts?.tph;
    const prefixOn = (mode: TlpMode) => mode === "nfm" && !!tph && (tph.extended === true || tph.st > 0xff);
    const modeAt = (i: number): TlpMode | null => {
      const e = p.elems[i];
      return e && e.t === "link" ? this.linkMode(e.hop.link, ctx.opts ?? {}) : null;
    };
    let pieces: { off: number; len: number }[] = [{ off: 0, len: ctx.len }];
    let rcSeen = false;
    const fail = (status: DmaStatus, at: string, reason: string, completer: PciDev | null): WalkResult => ({
      status,
      at,
      reason,
      crossed,
      completer,
    });
    for (const [i, e] of p.elems.entries()) {
      switch (e.t) {
        case "link": {
          const mode = this.linkMode(e.hop.link, ctx.opts ?? {});
          const addr = i >= p.turnIndex ? p.downAddr : p.upAddr;
          // building the TLP bytes is only for the trace; an untraced write just crosses the link
          if (ctx.trace)
            for (const pc of pieces) {
              const a = addr + BigInt(pc.off);
              const params = this.requestParams(
                mode,
                ctx.type,
                a,
                pc.len,
                ctx.requesterId,
                ctx.tag,
                ctx.opts,
              );
              const data = ctx.payload
                ? DmaEngine.dwPayload(a, ctx.payload.subarray(pc.off, pc.off + pc.len))
                : undefined;
              this.record(ctx.trace, ctx.request, e.hop, mode, params, data);
            }
          crossed.push(e.hop);
          break;
        }
        case "bridge": {
          const dev = e.dev;
          const inMode = modeAt(i - 1);
          if (inMode && prefixOn(inMode) && !eeTlpPrefixSupported(dev))
            return fail("tlp-prefix-blocked", dev.bdf, `TLP prefix blocked at ${dev.bdf}`, null);
          if (e.dir === "up" && !(dev.command & PCI_COMMAND_MASTER))
            return fail(
              "UR",
              dev.bdf,
              `${dev.bdf} has Bus Master Enable clear (does not forward upstream)`,
              dev,
            );
          if (e.dir === "down" && !dev.memoryDecodeEnabled)
            return fail(
              "UR",
              dev.bdf,
              `${dev.bdf} has Memory Space Enable clear (does not forward downstream)`,
              dev,
            );
          const outMode = modeAt(i + 1);
          if (outMode && prefixOn(outMode) && !eeTlpPrefixSupported(dev))
            return fail("tlp-prefix-blocked", dev.bdf, `TLP prefix blocked at ${dev.bdf}`, null);
          break;
        }
        case "rc":
          if (!rcSeen) {
            rcSeen = true;
            if (p.rcFailure)
              return {
                ...fail(p.rcFailure.status, p.rcFailure.at, p.rcFailure.reason, null),
                fault: p.rcFailure.fault,
              };
            if (p.p2pSplit && ctx.type === "MWr" && p.target?.kind === "bar") {
              const s = BigInt(p.p2pSplit);
              const out: { off: number; len: number }[] = [];
              let a = p.downAddr;
              const end = p.downAddr + BigInt(ctx.len);
              while (a < end) {
                const stop = minBig(end, (a / s + 1n) * s);
                out.push({ off: Number(a - p.downAddr), len: Number(stop - a) });
                a = stop;
              }
              pieces = out;
            }
          }
          break;
        case "interconnect":
          break;
        case "target":
          if (!memoryDecodes(e.dev))
            return fail(
              "UR",
              e.dev.bdf,
              `${e.dev.bdf} has Memory Space Enable clear (does not claim the request)`,
              e.dev,
            );
          break;
      }
    }
    return {
      status: "SC",
      at: p.target?.kind === "ram" ? "RAM" : (p.targetDev?.bdf ?? "?"),
      crossed,
      completer: null,
    };
  }

  /* ---------------------------------------------------------------- transfers */

  private begin(): void {
    this.depth++;
  }

  private end(): void {
    this.depth--;
    if (this.depth > 0 || this.draining) return;
    this.draining = true;
    try {
      while (this.deferred.length) this.deferred.shift()!();
    } finally {
      this.draining = false;
    }
  }

  private deferFn = (fn: () => void): void => {
    this.deferred.push(fn);
  };

  private checkArgs(address: bigint, length: number, what: string): void {
    if (typeof address !== "bigint" || address < 0n)
      throw new InputError(`${what}: address must be a bigint ≥ 0`);
    if (!Number.isSafeInteger(length) || length < 0)
      throw new InputError(`${what}: length ${length} is not a byte count`);
    if (address + BigInt(length) > NO_LIMIT)
      throw new InputError(`${what}: [${hex(address)}, +${length}) passes 2^64`);
  }

  private checkOpts(opts: DmaOptions, what: string): void {
    if (!opts || !["bus", "iova", "auto"].includes(opts.addressKind))
      throw new InputError(`${what}: addressKind must be "bus", "iova" or "auto"`);
    if (opts.flitMode !== undefined && !["link", "nfm", "fm"].includes(opts.flitMode))
      throw new InputError(`${what}: flitMode must be "link", "nfm" or "fm"`);
    const t = opts.tph;
    if (t) {
      if (!Number.isInteger(t.st) || t.st < 0 || t.st > 0xffff)
        throw new InputError(`${what}: ST ${t.st} is not 0..0xffff`);
      if (t.st > 0xff && !t.extended)
        throw new InputError(`${what}: ST ${hex(t.st)} needs extended (16-bit) TPH`);
      if (!Number.isInteger(t.ph) || t.ph < 0 || t.ph > 3)
        throw new InputError(`${what}: PH ${t.ph} is not 0..3`);
    }
  }

  private targetLabel(t: DmaTarget | null): string {
    if (!t) return "none";
    return t.kind === "ram" ? `RAM ${hex(t.phys)}` : `${t.dev.bdf} BAR${t.bar}+${hex(t.offset)}`;
  }

  private finish(
    kind: "dma-write" | "dma-read" | "mmio-write" | "mmio-read",
    init: PciDev | null,
    address: bigint,
    length: number,
    addressKind: string,
    segments: DmaSegment[],
    trace: TlpTrace,
    route: DmaRoute | null,
    bytesDelivered: number,
  ): DmaResult {
    const bad = segments.find((s) => s.status !== "SC");
    const status: DmaStatus = bad?.status ?? "SC";
    const initiator = init ? init.bdf : "cpu";
    const faults = new Map<string, { s: DmaSegment; count: number }>();
    for (const s of segments)
      if (s.status !== "SC") {
        const key = `${s.status}|${s.at}|${s.reason}`;
        const f = faults.get(key);
        if (f) f.count++;
        else faults.set(key, { s, count: 1 });
      }
    for (const { s, count } of faults.values())
      this.emit({
        kind: "dma-fault",
        initiator,
        address: hex(s.address),
        status: s.status,
        reason: s.reason ?? s.status,
        at: s.at,
        count,
      });
    this.emit({
      kind,
      initiator,
      requesterId: init ? `${init.bdf.slice(5)}` : "root complex",
      address: hex(address),
      length,
      addressKind,
      status,
      target: this.targetLabel(segments[0]?.target ?? null),
      bytesDelivered,
      tlps: segments.length,
      route: route?.text ?? "",
    });
    return {
      status,
      ...(bad?.fault ? { fault: bad.fault } : {}),
      ...(bad ? { reason: bad.reason, at: bad.at } : {}),
      tlps: trace,
      requests: segments.length,
      route,
      bytesDelivered,
      segments,
    };
  }

  private store(t: DmaTarget, data: Uint8Array, requester: string): DmaStatus {
    if (t.kind === "ram") {
      this.ram.write(t.phys, data);
      return "SC";
    }
    return this.bars.write(t.dev, t.bar, t.offset, data, { requester, defer: this.deferFn });
  }

  private load(t: DmaTarget, length: number, requester: string): { status: DmaStatus; data: Uint8Array } {
    if (t.kind === "ram") return { status: "SC", data: this.ram.read(t.phys, length) };
    return this.bars.read(t.dev, t.bar, t.offset, length, { requester });
  }

  private writeImpl(
    init: PciDev | null,
    address: bigint,
    bytes: Uint8Array,
    opts: DmaOptions | null,
    kind: AddressKind,
    chunk: number | null,
    doTrace: boolean,
  ): DmaResult {
    const trace = new TlpTrace();
    const tr = doTrace ? trace : null;
    const segments: DmaSegment[] = [];
    let route: DmaRoute | null = null;
    let delivered = 0;
    const requesterId = init ? rid(init) : this.rcRid();
    const requester = init ? init.bdf : "cpu";
    let pos = 0;
    while (pos < bytes.length) {
      const a = address + BigInt(pos);
      const p = this.plan(init, a, "write", kind);
      route ??= this.routeOf(init, p);
      const size = BigInt(chunk ?? this.pathMps(init, p));
      const len = Number(minBig(BigInt(bytes.length - pos), size - (a % size), p.span));
      const data = bytes.subarray(pos, pos + len);
      const w = this.walk(p, {
        init,
        type: "MWr",
        len,
        requesterId,
        tag: 0,
        opts,
        payload: data,
        request: segments.length,
        trace: tr,
      });
      let status = w.status;
      let reason = w.reason;
      if (status === "SC" && p.target) {
        status = this.store(p.target, data, requester);
        if (status === "SC") delivered += len;
        else reason = `${w.at} answered Completer Abort`;
      }
      segments.push(segmentOf(a, len, status, reason, p, w));
      pos += len;
    }
    return this.finish(
      init ? "dma-write" : "mmio-write",
      init,
      address,
      bytes.length,
      init ? kind : "cpu",
      segments,
      trace,
      route,
      delivered,
    );
  }

  private rcRid(): number {
    const hb = this.cpuHostBridge();
    const id = hb.identityDevice;
    return id ? rid(id) : (hb.busNumber & 0xff) << 8;
  }

  private readImpl(
    init: PciDev | null,
    address: bigint,
    length: number,
    opts: DmaOptions | null,
    kind: AddressKind,
    chunk: number | null,
    doTrace: boolean,
  ): DmaReadResult {
    const trace = new TlpTrace();
    const tr = doTrace ? trace : null;
    const segments: DmaSegment[] = [];
    const out = new Uint8Array(length);
    let route: DmaRoute | null = null;
    let delivered = 0;
    const requesterId = init ? rid(init) : this.rcRid();
    const requester = init ? init.bdf : "cpu";
    let pos = 0;
    while (pos < length) {
      const a = address + BigInt(pos);
      const p = this.plan(init, a, "read", kind);
      route ??= this.routeOf(init, p);
      const size = BigInt(chunk ?? physical(init!).mrrs);
      const len = Number(minBig(BigInt(length - pos), size - (a % size), p.span));
      const tag = this.nextTag(init);
      const w = this.walk(p, {
        init,
        type: "MRd",
        len,
        requesterId,
        tag,
        opts,
        payload: null,
        request: segments.length,
        trace: tr,
      });
      let status = w.status;
      let reason = w.reason;
      let data: Uint8Array | null = null;
      if (status === "SC" && p.target) {
        const got = this.load(p.target, len, requester);
        if (got.status === "SC") data = got.data;
        else {
          status = "CA";
          reason = `${w.at} answered Completer Abort`;
        }
      }
      if (data) {
        out.set(data, pos);
        delivered += len;
      } else out.fill(0xff, pos, pos + len);
      // Completions travel back over the links the request crossed (none for a dropped TLP).
      if (tr && status !== "tlp-prefix-blocked" && w.crossed.length) {
        const back = reverseElems(w.crossed.map((h): RouteElem => ({ t: "link", hop: h })));
        const completer = this.completerOf(init, p, w, status);
        const cplStatus = status === "SC" ? 0 : status === "CA" ? 4 : 1;
        const mps = this.pathMps(init, p);
        const rcbDev = p.targetDev ?? this.rootPortOf(init);
        const rcb = rcbDev?.rcb ?? 64;
        const cpls =
          data !== null
            ? splitCompletions(p.downAddr, len, {
                rcb,
                maxCpl: Math.max(mps, rcb),
                policy: p.target?.kind === "ram" ? "rcb" : "max",
              })
            : [{ address: p.downAddr, length: 0, byteCount: len, lowerAddress: Number(p.downAddr & 0x7fn) }];
        for (const c of cpls) {
          const cdata = data
            ? data.subarray(Number(c.address - p.downAddr), Number(c.address - p.downAddr) + c.length)
            : null;
          for (const e of back) {
            if (e.t !== "link") continue;
            const mode = this.linkMode(e.hop.link, opts ?? {});
            const payload = cdata ? DmaEngine.dwPayload(c.lowerAddress, cdata) : undefined;
            this.record(
              tr,
              segments.length,
              e.hop,
              mode,
              {
                mode,
                type: cdata ? "CplD" : "Cpl",
                // a Cpl without data has Length reserved (field 0, which the codec calls 1024)
                length: payload ? payload.length / 4 : 1024,
                completerId: completer,
                requesterId,
                tag,
                status: cplStatus,
                byteCount: c.byteCount,
                lowerAddress: c.lowerAddress,
              },
              payload,
            );
          }
        }
      }
      segments.push(segmentOf(a, len, status, reason, p, w));
      pos += len;
    }
    const r = this.finish(
      init ? "dma-read" : "mmio-read",
      init,
      address,
      length,
      init ? kind : "cpu",
      segments,
      trace,
      route,
      delivered,
    );
    return { ...r, data: out };
  }

  private rootPortOf(init: PciDev | null): PciDev | null {
    if (!init) return null;
    const chain = chainOf(init);
    const top = chain[chain.length - 1];
    return top !== init ? top : null;
  }

  /** Completer ID of a read's completions: the target, the bridge that refused, or the root complex. */
  private completerOf(init: PciDev | null, p: Plan, w: WalkResult, status: DmaStatus): number {
    if (w.completer) return rid(w.completer);
    if ((status === "SC" || status === "CA") && p.targetDev) return rid(p.targetDev);
    const rp = this.rootPortOf(init);
    return rp ? rid(rp) : this.rcRid();
  }

  /* ---------------------------------------------------------------- public API */

  /** A memory write issued by `initiator` (a posted MWr stream). */
  dmaWrite(initiator: PciDev, address: bigint, bytes: Uint8Array, opts: DmaOptions): DmaResult {
    this.checkOpts(opts, "dmaWrite");
    if (!(bytes instanceof Uint8Array)) throw new InputError("dmaWrite: bytes must be a Uint8Array");
    this.checkArgs(address, bytes.length, "dmaWrite");
    this.begin();
    try {
      if (!(initiator.command & PCI_COMMAND_MASTER))
        return this.masterOff("dma-write", initiator, address, bytes.length, opts);
      return this.writeImpl(
        initiator,
        address,
        bytes,
        opts,
        opts.addressKind,
        null,
        opts.trace ?? this.opts.trace,
      );
    } finally {
      this.end();
    }
  }

  /** A memory read issued by `initiator` (MRd requests and their completions). */
  dmaRead(initiator: PciDev, address: bigint, length: number, opts: DmaOptions): DmaReadResult {
    this.checkOpts(opts, "dmaRead");
    this.checkArgs(address, length, "dmaRead");
    this.begin();
    try {
      if (!(initiator.command & PCI_COMMAND_MASTER))
        return {
          ...this.masterOff("dma-read", initiator, address, length, opts),
          data: new Uint8Array(length).fill(0xff),
        };
      return this.readImpl(
        initiator,
        address,
        length,
        opts,
        opts.addressKind,
        null,
        opts.trace ?? this.opts.trace,
      );
    } finally {
      this.end();
    }
  }

  private masterOff(
    kind: "dma-write" | "dma-read",
    init: PciDev,
    address: bigint,
    length: number,
    opts: DmaOptions,
  ): DmaResult {
    const reason = `${init.bdf} has Bus Master Enable clear: it issues no request`;
    this.emit({
      kind: "dma-fault",
      initiator: init.bdf,
      address: hex(address),
      status: "bus-master-disabled",
      reason,
      at: init.bdf,
      count: 1,
    });
    this.emit({
      kind,
      initiator: init.bdf,
      requesterId: init.bdf.slice(5),
      address: hex(address),
      length,
      addressKind: opts.addressKind,
      status: "bus-master-disabled",
      target: "none",
      bytesDelivered: 0,
      tlps: 0,
      route: "",
    });
    return {
      status: "bus-master-disabled",
      reason,
      at: init.bdf,
      tlps: new TlpTrace(),
      requests: 0,
      route: null,
      bytesDelivered: 0,
      segments: [],
    };
  }

  /** A CPU store at a CPU physical address: RAM directly, MMIO as writes from the root complex. */
  cpuWrite(cpuAddress: bigint, bytes: Uint8Array, opts: CpuAccessOptions = {}): DmaResult {
    if (!(bytes instanceof Uint8Array)) throw new InputError("cpuWrite: bytes must be a Uint8Array");
    this.checkArgs(cpuAddress, bytes.length, "cpuWrite");
    const chunk = this.checkChunk(opts.chunk);
    this.begin();
    try {
      const ram = this.ram.rangeAt(cpuAddress);
      if (ram && cpuAddress + BigInt(bytes.length) <= ram.start + ram.size) {
        this.ram.write(cpuAddress, bytes);
        return this.ramResult(cpuAddress, bytes.length);
      }
      return this.writeImpl(null, cpuAddress, bytes, null, "bus", chunk, opts.trace ?? this.opts.trace);
    } finally {
      this.end();
    }
  }

  /** A CPU load from a CPU physical address. */
  cpuRead(cpuAddress: bigint, length: number, opts: CpuAccessOptions = {}): DmaReadResult {
    this.checkArgs(cpuAddress, length, "cpuRead");
    const chunk = this.checkChunk(opts.chunk);
    this.begin();
    try {
      const ram = this.ram.rangeAt(cpuAddress);
      if (ram && cpuAddress + BigInt(length) <= ram.start + ram.size)
        return { ...this.ramResult(cpuAddress, length), data: this.ram.read(cpuAddress, length) };
      return this.readImpl(null, cpuAddress, length, null, "bus", chunk, opts.trace ?? this.opts.trace);
    } finally {
      this.end();
    }
  }

  private checkChunk(c: number | undefined): number {
    const v = c ?? 8;
    if (![1, 2, 4, 8, 16, 32, 64].includes(v))
      throw new InputError(`CPU access chunk ${v} is not 1…64 (a power of two)`);
    return v;
  }

  private ramResult(phys: bigint, length: number): DmaResult {
    return {
      status: "SC",
      tlps: new TlpTrace(),
      requests: 0,
      route: null,
      bytesDelivered: length,
      segments: length
        ? [
            {
              address: phys,
              length,
              status: "SC",
              target: { kind: "ram", phys },
              at: "RAM",
              via: "root-complex",
              translated: false,
              downAddress: phys,
            },
          ]
        : [],
    };
  }

  /** Convenience: 32-bit little-endian MMIO store / load (registers, doorbells). */
  cpuWrite32(cpuAddress: bigint, value: number): DmaResult {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0, true);
    return this.cpuWrite(cpuAddress, b, { chunk: 4 });
  }

  cpuRead32(cpuAddress: bigint): number {
    const r = this.cpuRead(cpuAddress, 4, { chunk: 4 });
    return new DataView(r.data.buffer, r.data.byteOffset).getUint32(0, true);
  }

  cpuWrite64(cpuAddress: bigint, value: bigint): DmaResult {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, value & ((1n << 64n) - 1n), true);
    return this.cpuWrite(cpuAddress, b, { chunk: 8 });
  }

  cpuRead64(cpuAddress: bigint): bigint {
    const r = this.cpuRead(cpuAddress, 8, { chunk: 8 });
    return new DataView(r.data.buffer, r.data.byteOffset).getBigUint64(0, true);
  }
}
