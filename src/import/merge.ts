/**
 * Partial descriptions of one machine ("facts") → one {@link Fabric}.
 *
 * Every text importer (lspci tree/verbose/-mm, hwloc XML, NCCL XML) reads its file into
 * {@link MachineFacts}: per function, the attributes the file states, each with where it was read
 * (file, line, field) and how sure it is. Several sources of one machine are merged attribute by
 * attribute ({@link mergeFacts}): a stated value beats a derived one, which beats an inferred one;
 * two stated values that differ are a conflict, kept and reported. {@link buildFabric} then lays
 * the tree out (bridges' secondary buses, root buses → host bridges) and synthesizes each
 * function's config space from its attributes with the capability helpers, so the rest of the
 * model (IOMMU groups, P2PDMA) reads them exactly as it reads a real config space.
 *
 * What no source states is not invented silently: the fabric needs *some* bytes, so a default is
 * used, and the pair (function, attribute) goes into `unknowns` with the value assumed — e.g.
 * "ACS unknown at 0000:00:01.1; modelled as absent". The analysis can show those next to a
 * verdict, or rebuild with {@link BuildOptions.assumeAcs} = "isolating" to see whether the
 * verdict depends on the assumption.
 */
import { InputError } from "../core/errors.js";
import { formatBdf } from "../pci/bdf.js";
import {
  acsCap,
  ariCap,
  atsCap,
  buildConfigSpace,
  type CapabilityHelper,
  dsnCap,
  msixCap,
  pcieCap,
  pmCap,
  sriovCap,
} from "../pci/capabilities.js";
import type { ConfigSpace } from "../pci/config-space.js";
import {
  HostBridge,
  IORESOURCE_IO,
  IORESOURCE_MEM,
  IORESOURCE_MEM_64,
  IORESOURCE_PREFETCH,
  type PciBus,
  type PciDev,
} from "../pci/device.js";
import { type CpuInfo, Fabric, formatBus } from "../pci/fabric.js";
import {
  LINK_SPEED_GTS,
  PCI_ACS_CR,
  PCI_ACS_RR,
  PCI_ACS_SV,
  PCI_ACS_TB,
  PCI_ACS_UF,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_EXP_TYPE,
  PCI_SUBORDINATE_BUS,
} from "../pci/regs.js";
import { Provenance, type ProvenanceSource } from "./provenance.js";

/* ------------------------------------------------------------------------------------------ */
/* Facts                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/**
 * How a value was obtained. `stated`: the source prints it. `derived`: computed exactly from
 * stated values (a class code from the class name via pci.ids, multi-function from sibling
 * functions). `inferred`: a reasoned guess (a port type from the position in the tree, a link
 * split from hwloc's GB/s). `assumed`: nothing said anything; a default.
 */
export type FactStatus = "stated" | "derived" | "inferred" | "assumed";
const RANK: Record<FactStatus, number> = { stated: 3, derived: 2, inferred: 1, assumed: 0 };

export interface Fact<T> {
  value: T;
  source: ProvenanceSource;
  status: FactStatus;
}

/** Link as a source states it: GT/s (0 = unknown speed) and lanes (0 = unknown width). */
export interface LinkFact {
  speed: number;
  width: number;
}

export interface BarFact {
  index: number;
  type: "mem32" | "mem64" | "io";
  prefetch: boolean;
  /** CPU address; null when unassigned. */
  address: bigint | null;
  size: bigint;
}

export interface SriovFact {
  totalVfs: number;
  numVfs: number;
  vfOffset: number;
  vfStride: number;
  vfDevice: number;
  enabled: boolean;
}

/** The attributes a source can state about one function. */
export interface FunctionAttrs {
  vendor: number;
  device: number;
  subsystemVendor: number;
  subsystemDevice: number;
  revision: number;
  /** 24-bit class code (base, sub, prog-if). */
  classCode: number;
  /** Type-1 header (PCI-PCI bridge or PCIe port). */
  bridge: boolean;
  multifunction: boolean;
  /** PCIe device/port type; null = conventional PCI (no PCI Express capability). */
  pcieType: number | null;
  /** Negotiated link (LnkSta). */
  link: LinkFact;
  /** Link capability (LnkCap). */
  linkCap: LinkFact;
  portNumber: number;
  /** ACS capability and control; null = the function has no ACS capability. */
  acs: { cap: number; ctrl: number } | null;
  mps: number;
  mpsSupported: number;
  mrrs: number;
  flr: boolean;
  extTag: boolean;
  secondary: number;
  subordinate: number;
  /** BDF of the bridge above, from a tree; null = on a root bus. */
  parent: string | null;
  numaNode: number;
  name: string;
  driver: string;
  iommuGroup: number;
  command: number;
  pm: { noSoftReset: boolean };
  msix: number;
  sriov: SriovFact;
  ari: boolean;
  ats: boolean;
  serial: bigint;
  bars: BarFact[];
  /** For an SR-IOV virtual function: its physical function's BDF. */
  physfn: string;
  /** A full config space read from the machine (sysfs `config`, `lspci -xxxx`). */
  config: ConfigSpace;
}

export type AttrName = keyof FunctionAttrs;
export type FunctionFactMap = { [K in AttrName]?: Fact<FunctionAttrs[K]> };

export interface FunctionFacts {
  segment: number;
  bus: number;
  devfn: number;
  bdf: string;
  /** The address the source gave when the importer had to place the function elsewhere. */
  statedBdf?: string;
  /** Invented to make the tree whole (a bridge the source leaves out); not in any source. */
  placeholder?: boolean;
  /** Where the function is described (first line of its record). */
  source: ProvenanceSource;
  attrs: FunctionFactMap;
}

export interface HostBridgeFacts {
  domain: number;
  bus: number;
  numaNode?: Fact<number>;
  name?: Fact<string>;
  source: ProvenanceSource;
  /** Invented by an importer (NCCL's root complexes have no bus number). */
  placeholder?: boolean;
}

export interface MachineFacts {
  /** One entry per input: file and format. */
  inputs: { file: string; format: string }[];
  functions: Map<string, FunctionFacts>;
  /** Keyed `dddd:bb` (the root bus). */
  hostBridges: Map<string, HostBridgeFacts>;
  cpu?: Fact<CpuInfo>;
  /** Sources of the CPU's fields. */
  cpuSources?: Record<string, ProvenanceSource>;
  warnings: string[];
  /** IOMMU groups the kernel reported (`lspci -v` "IOMMU group" lines, sysfs links). */
  reportedGroups: Map<number, string[]> | null;
  /** Stated BDF → placed BDF, for functions an importer had to renumber. */
  renamed: Map<string, string>;
  name?: string;
  /** After a merge: every source's value per function and attribute (for provenance). */
  alternatives?: Map<string, Map<AttrName, Fact<unknown>[]>>;
}

export function emptyFacts(file: string, format: string): MachineFacts {
  return {
    inputs: [{ file, format }],
    functions: new Map(),
    hostBridges: new Map(),
    warnings: [],
    reportedGroups: null,
    renamed: new Map(),
  };
}

export function busKey(domain: number, bus: number): string {
  return formatBus(domain, bus);
}

/** The function record for an address, created on first use. */
export function functionAt(
  facts: MachineFacts,
  segment: number,
  bus: number,
  devfn: number,
  source: ProvenanceSource,
): FunctionFacts {
  const bdf = formatBdf({ segment, bus, devfn });
  let f = facts.functions.get(bdf);
  if (!f) {
    f = { segment, bus, devfn, bdf, source, attrs: {} };
    facts.functions.set(bdf, f);
  }
  return f;
}

/**
 * Sets an attribute. Within one source the first statement stands; a second, different one is
 * kept as a warning (a source that contradicts itself is worth knowing about).
 */
export function setFact<K extends AttrName>(
  facts: MachineFacts,
  f: FunctionFacts,
  attr: K,
  value: FunctionAttrs[K],
  source: ProvenanceSource,
  status: FactStatus = "stated",
): void {
  const old = f.attrs[attr];
  if (old) {
    if (RANK[status] > RANK[old.status]) f.attrs[attr] = { value, source, status } as FunctionFactMap[K];
    else if (RANK[status] === RANK[old.status] && !sameValue(old.value, value))
      facts.warnings.push(
        `${sourcePlace(source)}: ${f.bdf} ${attr} ${show(value)} contradicts ${show(old.value)} stated at ${sourcePlace(old.source)}; keeping the first`,
      );
    return;
  }
  f.attrs[attr] = { value, source, status } as FunctionFactMap[K];
}

/** `file:line` of a source, for messages. */
export function sourcePlace(s: ProvenanceSource): string {
  return `${s.file}${s.line ? `:${s.line}` : ""}`;
}

function show(v: unknown): string {
  if (typeof v === "number") return Number.isInteger(v) && v > 9 ? `0x${v.toString(16)}` : String(v);
  if (typeof v === "bigint") return `0x${v.toString(16)}`;
  if (v === null) return "none";
  if (typeof v === "object" && v && "bytes" in v) return "(config bytes)";
  try {
    return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? `0x${x.toString(16)}` : x));
  } catch {
    return String(v);
  }
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if ("bytes" in a || "bytes" in b) return a === b;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/* ------------------------------------------------------------------------------------------ */
/* Results                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/** An attribute no source stated, and what the fabric assumes instead. */
export interface UnknownAttr {
  subject: string;
  attribute: string;
  assumed: unknown;
  note: string;
}

/** Two sources state different values for one attribute. The first (by rank, then order) is used. */
export interface Conflict {
  subject: string;
  attribute: string;
  values: { value: unknown; source: ProvenanceSource; status: FactStatus }[];
}

export interface ImportResult {
  fabric: Fabric;
  cpu?: CpuInfo;
  provenance: Provenance;
  warnings: string[];
  /** What was not known and what was assumed for it (see the module comment). */
  unknowns: UnknownAttr[];
  conflicts: Conflict[];
  /** IOMMU groups the source reported, when it carries them. */
  reportedGroups: { id: number; devices: string[] }[] | null;
  /** Stated BDF → placed BDF for functions an importer had to renumber. */
  renamed: Map<string, string>;
  facts: MachineFacts;
}

export interface BuildOptions {
  /**
   * What a port or multi-function device without a stated ACS capability gets: "absent" (no
   * capability — the kernel then sees no isolation and no redirect), or "isolating" (ACS with
   * SV, RR, CR, UF enabled, what Linux enables when the capability exists). Default "absent".
   */
  assumeAcs?: "absent" | "isolating";
  /** Infer PCIe port types from the tree when the source does not state them. Default true. */
  inferPortTypes?: boolean;
}

/* ------------------------------------------------------------------------------------------ */
/* Merge                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/**
 * Merges descriptions of one machine, attribute by attribute. The order of `parts` is the order
 * of preference among equally sure values.
 */
export function mergeFacts(parts: MachineFacts[]): { facts: MachineFacts; conflicts: Conflict[] } {
  const out: MachineFacts = {
    inputs: parts.flatMap((p) => p.inputs),
    functions: new Map(),
    hostBridges: new Map(),
    warnings: parts.flatMap((p) => p.warnings),
    reportedGroups: null,
    renamed: new Map(),
  };
  const conflicts: Conflict[] = [];
  const candidates = new Map<string, Map<AttrName, Fact<unknown>[]>>();
  for (const p of parts) {
    for (const [bdf, f] of p.functions) {
      let g = out.functions.get(bdf);
      if (!g) {
        g = { ...f, attrs: {} };
        out.functions.set(bdf, g);
      } else if (g.placeholder && !f.placeholder) {
        g.placeholder = false;
        g.source = f.source;
      }
      let c = candidates.get(bdf);
      if (!c) {
        c = new Map();
        candidates.set(bdf, c);
      }
      for (const [k, fact] of Object.entries(f.attrs) as [AttrName, Fact<unknown>][]) {
        const list = c.get(k);
        if (list) list.push(fact);
        else c.set(k, [fact]);
      }
    }
    for (const [key, hb] of p.hostBridges) {
      const h = out.hostBridges.get(key);
      if (!h) out.hostBridges.set(key, { ...hb });
      else {
        h.numaNode ??= hb.numaNode;
        h.name ??= hb.name;
        if (h.placeholder && !hb.placeholder) h.placeholder = false;
      }
    }
    if (p.cpu && (!out.cpu || RANK[p.cpu.status] > RANK[out.cpu.status])) {
      out.cpu = p.cpu;
      out.cpuSources = p.cpuSources;
    }
    out.reportedGroups ??= p.reportedGroups;
    for (const [a, b] of p.renamed) out.renamed.set(a, b);
    out.name ??= p.name;
  }
  for (const [bdf, attrs] of candidates) {
    const g = out.functions.get(bdf)!;
    for (const [k, list] of attrs) {
      let best = list[0];
      for (const x of list) if (RANK[x.status] > RANK[best.status]) best = x;
      (g.attrs as Record<string, Fact<unknown>>)[k] = best;
      const firm = list.filter((x) => RANK[x.status] >= RANK.derived);
      if (firm.some((x) => !sameValue(x.value, firm[0].value))) {
        conflicts.push({ subject: bdf, attribute: k, values: list.map((x) => ({ ...x })) });
        out.warnings.push(
          `conflict: ${bdf} ${k}: ${firm.map((x) => `${show(x.value)} (${sourcePlace(x.source)})`).join(" vs ")}; using ${show(best.value)}`,
        );
      }
    }
  }
  // The other values stay in provenance (buildFabric records the chosen one first).
  out.alternatives = candidates;
  return { facts: out, conflicts };
}

/* ------------------------------------------------------------------------------------------ */
/* Build                                                                                       */
/* ------------------------------------------------------------------------------------------ */

const PORT_TYPES: readonly number[] = [PCI_EXP_TYPE.ROOT_PORT, PCI_EXP_TYPE.DOWNSTREAM];

/** Reads of the link registers: types without a link. */
const NO_LINK_TYPES: readonly number[] = [PCI_EXP_TYPE.RC_END, PCI_EXP_TYPE.RC_EC];

const ACS_ISOLATING = {
  cap: PCI_ACS_SV | PCI_ACS_TB | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF,
  ctrl: PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF,
};

interface Ctx {
  facts: MachineFacts;
  opts: Required<BuildOptions>;
  provenance: Provenance;
  unknowns: UnknownAttr[];
  warnings: string[];
  /** Effective PCIe type per placed BDF (stated or inferred), for the children's inference. */
  types: Map<string, number | null>;
  /** Bus (`dddd:bb`) → functions on it. */
  byBus: Map<string, FunctionFacts[]>;
  /** Bus → owning bridge BDF, or "root". */
  owner: Map<string, string>;
}

const val = <K extends AttrName>(f: FunctionFacts, k: K): FunctionAttrs[K] | undefined => f.attrs[k]?.value;

function loc(f: FunctionFacts, k?: AttrName): string {
  const s = (k && f.attrs[k]?.source) || f.source;
  return sourcePlace(s);
}

function isBridge(f: FunctionFacts): boolean {
  const b = val(f, "bridge");
  if (b !== undefined) return b;
  if (f.attrs.secondary) return true;
  const cls = val(f, "classCode");
  return cls !== undefined && (cls >> 8 === 0x0604 || cls >> 8 === 0x0609);
}

function note(status: FactStatus, text?: string): string | undefined {
  if (status === "stated") return text;
  return text ? `${status}: ${text}` : status;
}

/** The first free devfn on a bus, for a placeholder. */
function freeDevfn(ctx: Ctx, domain: number, bus: number): number {
  const used = new Set((ctx.byBus.get(busKey(domain, bus)) ?? []).map((f) => f.devfn));
  for (let d = 0; d < 256; d += 8) if (!used.has(d)) return d;
  for (let d = 0; d < 256; d++) if (!used.has(d)) return d;
  throw new InputError(
    `bus ${busKey(domain, bus)} has no free device number for a bridge the source leaves out`,
  );
}

function addToBus(ctx: Ctx, f: FunctionFacts): void {
  const k = busKey(f.segment, f.bus);
  const list = ctx.byBus.get(k);
  if (list) list.push(f);
  else ctx.byBus.set(k, [f]);
}

/** A bridge the sources leave out but the bus numbers prove exists. */
function placeholderBridge(
  ctx: Ctx,
  domain: number,
  bus: number,
  secondary: number,
  why: string,
): FunctionFacts {
  const devfn = freeDevfn(ctx, domain, bus);
  const source: ProvenanceSource = { file: "(none)", note: `placeholder: ${why}` };
  const f = functionAt(ctx.facts, domain, bus, devfn, source);
  f.placeholder = true;
  setFact(ctx.facts, f, "bridge", true, source, "inferred");
  setFact(ctx.facts, f, "secondary", secondary, source, "inferred");
  setFact(ctx.facts, f, "subordinate", secondary, source, "inferred");
  setFact(ctx.facts, f, "name", "(bridge not in the source)", source, "inferred");
  addToBus(ctx, f);
  ctx.owner.set(busKey(domain, secondary), f.bdf);
  ctx.warnings.push(`${f.bdf}: invented a bridge (secondary bus ${hex2(secondary)}) — ${why}`);
  return f;
}

const hex2 = (n: number) => n.toString(16).padStart(2, "0");

/** Decides which bridge owns each bus; unowned buses become root buses. */
function resolveBuses(ctx: Ctx): void {
  const { facts, owner } = ctx;
  for (const f of facts.functions.values()) addToBus(ctx, f);
  for (const hb of facts.hostBridges.values()) owner.set(busKey(hb.domain, hb.bus), "root");
  // Bridges' secondary buses.
  for (const f of facts.functions.values()) {
    const sec = f.attrs.secondary;
    if (!sec || !isBridge(f)) continue;
    const k = busKey(f.segment, sec.value);
    if (sec.value === f.bus)
      throw new InputError(
        `bridge ${f.bdf}: secondary bus ${hex2(sec.value)} is the bus it sits on`,
        sourcePlace(sec.source),
      );
    const prev = owner.get(k);
    if (prev === "root") {
      const hb = facts.hostBridges.get(k)!;
      throw new InputError(
        `bridge ${f.bdf} claims bus ${k} as its secondary bus, but ${sourcePlace(hb.source)} makes it a root bus`,
        sourcePlace(sec.source),
      );
    }
    if (prev && prev !== f.bdf) {
      const other = facts.functions.get(prev)!;
      throw new InputError(
        `bus ${k} is the secondary bus of both ${prev} (${loc(other, "secondary")}) and ${f.bdf}`,
        sourcePlace(sec.source),
      );
    }
    owner.set(k, f.bdf);
  }
  // Buses nothing owns yet: a parent stated by a tree, a bridge range that covers them, or a root.
  const keys = [...ctx.byBus.keys()].sort();
  const orphans: string[] = [];
  for (const k of keys) {
    if (owner.has(k)) continue;
    const fns = ctx.byBus.get(k)!;
    const first = fns[0];
    const parentFact = fns.map((f) => f.attrs.parent).find((p) => p !== undefined);
    if (parentFact && parentFact.value === null) {
      owner.set(k, "root");
      continue;
    }
    if (parentFact && parentFact.value !== null) {
      const p = facts.functions.get(parentFact.value);
      if (!p)
        throw new InputError(
          `${first.bdf}: its parent bridge ${parentFact.value} is not described`,
          sourcePlace(parentFact.source),
        );
      const psec = p.attrs.secondary?.value;
      if (psec === undefined) {
        setFact(facts, p, "bridge", true, parentFact.source, "derived");
        setFact(facts, p, "secondary", first.bus, parentFact.source, "derived");
        owner.set(k, p.bdf);
        continue;
      }
      const psub = p.attrs.subordinate?.value ?? psec;
      if (first.bus > psec && first.bus <= psub) {
        placeholderBridge(
          ctx,
          p.segment,
          psec,
          first.bus,
          `bus ${hex2(first.bus)} lies in ${p.bdf}'s range [${hex2(psec)}-${hex2(psub)}] but ${p.bdf}'s secondary bus is ${hex2(psec)} (${sourcePlace(parentFact.source)})`,
        );
        continue;
      }
      throw new InputError(
        `${first.bdf} is below bridge ${p.bdf}, whose buses are [${hex2(psec)}-${hex2(psub)}] (${loc(p, "secondary")}), but it sits on bus ${hex2(first.bus)}`,
        sourcePlace(parentFact.source),
      );
    }
    // The narrowest bridge range covering the bus.
    let best: FunctionFacts | null = null;
    for (const b of facts.functions.values()) {
      const sec = b.attrs.secondary?.value;
      const sub = b.attrs.subordinate?.value;
      if (b.segment !== first.segment || sec === undefined || sub === undefined || !isBridge(b)) continue;
      if (
        first.bus > sec &&
        first.bus <= sub &&
        (!best || sub - sec < best.attrs.subordinate!.value - best.attrs.secondary!.value)
      )
        best = b;
    }
    if (best) {
      placeholderBridge(
        ctx,
        best.segment,
        best.attrs.secondary!.value,
        first.bus,
        `bus ${hex2(first.bus)} lies in ${best.bdf}'s range but no bridge in the sources has it as secondary bus`,
      );
      continue;
    }
    owner.set(k, "root");
    // Bus 00 and buses holding a host-bridge function are root buses on any machine.
    const obvious = first.bus === 0 || fns.some((f) => (val(f, "classCode") ?? 0) >> 8 === 0x0600);
    if (!facts.hostBridges.has(k) && !obvious) orphans.push(`${k} (${loc(first)})`);
  }
  if (orphans.length)
    ctx.warnings.push(
      `no bridge in the sources leads to bus${orphans.length > 1 ? "es" : ""} ${orphans.join(", ")}; each is treated as a root bus of its own host bridge`,
    );
}

/** PCIe type from the tree position, for a function whose source does not say. */
function inferType(
  f: FunctionFacts,
  parentType: number | null | undefined,
  onRoot: boolean,
): number | null | undefined {
  const cls = val(f, "classCode");
  if (isBridge(f)) {
    if (cls === 0x060401) return null; // subtractive-decode PCI bridge (e.g. Intel 82801): conventional
    if (onRoot) return PCI_EXP_TYPE.ROOT_PORT;
    if (parentType === PCI_EXP_TYPE.ROOT_PORT || parentType === PCI_EXP_TYPE.DOWNSTREAM)
      return PCI_EXP_TYPE.UPSTREAM;
    if (parentType === PCI_EXP_TYPE.UPSTREAM) return PCI_EXP_TYPE.DOWNSTREAM;
    return undefined;
  }
  if (parentType === PCI_EXP_TYPE.ROOT_PORT || parentType === PCI_EXP_TYPE.DOWNSTREAM)
    return PCI_EXP_TYPE.ENDPOINT;
  if (onRoot && (f.attrs.link || f.attrs.linkCap)) return PCI_EXP_TYPE.ENDPOINT;
  return undefined;
}

const TYPE_NAMES: Record<number, string> = {
  [PCI_EXP_TYPE.ENDPOINT]: "endpoint",
  [PCI_EXP_TYPE.LEG_END]: "legacy endpoint",
  [PCI_EXP_TYPE.ROOT_PORT]: "root port",
  [PCI_EXP_TYPE.UPSTREAM]: "upstream port",
  [PCI_EXP_TYPE.DOWNSTREAM]: "downstream port",
  [PCI_EXP_TYPE.PCI_BRIDGE]: "PCIe-to-PCI bridge",
  [PCI_EXP_TYPE.PCIE_BRIDGE]: "PCI-to-PCIe bridge",
  [PCI_EXP_TYPE.RC_END]: "RC integrated endpoint",
  [PCI_EXP_TYPE.RC_EC]: "RC event collector",
};

export function pcieTypeName(t: number | null): string {
  return t === null ? "conventional PCI" : (TYPE_NAMES[t] ?? `type ${t}`);
}

function unknown(ctx: Ctx, subject: string, attribute: string, assumed: unknown, text: string): void {
  ctx.unknowns.push({ subject, attribute, assumed, note: text });
  ctx.provenance.record(subject, attribute, assumed, { file: "(none)", note: `unknown: ${text}` });
}

function validSpeed(s: number): boolean {
  return Object.values(LINK_SPEED_GTS).includes(s);
}

/** Synthesizes the config space of a function from its facts. */
function synthesize(
  ctx: Ctx,
  f: FunctionFacts,
  onRoot: boolean,
  parentType: number | null | undefined,
): ConfigSpace {
  const s = f.bdf;
  const bridge = isBridge(f);
  const fn0 = (f.devfn & 7) === 0;
  const full = f.attrs.config?.value;
  if (full && full.size >= 256) {
    ctx.types.set(s, typeFromConfig(full));
    return full.clone();
  }
  let type: number | null | undefined = f.attrs.pcieType?.value;
  if (f.attrs.pcieType === undefined) {
    const inferred = ctx.opts.inferPortTypes ? inferType(f, parentType, onRoot) : undefined;
    if (inferred !== undefined) {
      type = inferred;
      ctx.provenance.record(s, "pcieType", inferred, {
        file: "(none)",
        note: `inferred from the tree: ${pcieTypeName(inferred)} (${onRoot ? "on a root bus" : `below a ${parentType === undefined ? "bridge" : pcieTypeName(parentType ?? null)}`})`,
      });
    } else {
      type = null;
      unknown(
        ctx,
        s,
        "pcieType",
        null,
        "PCIe or conventional PCI: not stated; modelled without a PCI Express capability",
      );
    }
  }
  ctx.types.set(s, type ?? null);

  const vendor = val(f, "vendor");
  const device = val(f, "device");
  let classCode = val(f, "classCode");
  if (vendor === undefined) unknown(ctx, s, "vendor", 0, "vendor id not stated; 0x0000 used");
  if (device === undefined) unknown(ctx, s, "device", 0, "device id not stated; 0x0000 used");
  if (classCode === undefined) {
    classCode = bridge ? 0x060400 : 0xff0000;
    if (bridge)
      ctx.provenance.record(s, "classCode", classCode, {
        file: "(none)",
        note: "derived: a bridge (PCI bridge class)",
      });
    else unknown(ctx, s, "classCode", classCode, "class not stated; 0xff0000 (unassigned) used");
  }
  let command = val(f, "command");
  if (command === undefined) {
    command = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
    unknown(
      ctx,
      s,
      "command",
      command,
      "COMMAND register not stated; memory decode and bus mastering taken as enabled",
    );
  }
  const multifunction = val(f, "multifunction") ?? false;
  const headerType = (bridge ? 1 : 0) | (multifunction && fn0 ? 0x80 : 0);

  const caps: CapabilityHelper[] = [];
  const pm = val(f, "pm");
  if (pm) caps.push(pmCap({ noSoftReset: pm.noSoftReset }));
  const msix = val(f, "msix");
  if (msix && msix > 0 && msix <= 2048) caps.push(msixCap({ tableSize: msix }));
  const pcie = type !== null && type !== undefined;
  if (pcie) {
    let link: { speed: number; width: number; maxSpeed: number; maxWidth: number } | undefined;
    const sta = val(f, "link");
    const cap = val(f, "linkCap");
    if (!NO_LINK_TYPES.includes(type!)) {
      if (sta || cap) {
        const a = (sta ?? cap)!;
        const b = (cap ?? sta)!;
        link = { speed: a.speed, width: a.width, maxSpeed: b.speed, maxWidth: b.width };
        if (!sta)
          unknown(
            ctx,
            s,
            "link",
            { speed: b.speed, width: b.width },
            "negotiated link (LnkSta) not stated; taken as its capability",
          );
        if (!cap)
          unknown(
            ctx,
            s,
            "linkCap",
            { speed: a.speed, width: a.width },
            "link capability (LnkCap) not stated; taken as the negotiated link",
          );
        for (const [what, v] of [
          ["speed", link.speed],
          ["capability speed", link.maxSpeed],
        ] as const)
          if (v !== 0 && !validSpeed(v)) {
            ctx.warnings.push(
              `${s}: link ${what} ${v} GT/s is not a PCIe rate (${loc(f, sta ? "link" : "linkCap")}); kept as unknown`,
            );
            if (what === "speed") link.speed = 0;
            else link.maxSpeed = 0;
          }
        if (link.width > 32 || link.maxWidth > 32) {
          ctx.warnings.push(`${s}: link width above x32 (${loc(f, "link")}); kept as unknown`);
          if (link.width > 32) link.width = 0;
          if (link.maxWidth > 32) link.maxWidth = 0;
        }
      } else unknown(ctx, s, "link", null, "link speed and width not stated");
    }
    const mps = val(f, "mps");
    const mrrs = val(f, "mrrs");
    if (mps === undefined) unknown(ctx, s, "mps", 128, "MaxPayload (DevCtl) not stated; 128 bytes used");
    if (mrrs === undefined) unknown(ctx, s, "mrrs", 512, "MaxReadReq (DevCtl) not stated; 512 bytes used");
    if (val(f, "flr") === undefined && !bridge)
      unknown(ctx, s, "flr", false, "FLR capability not stated; taken as absent");
    caps.push(
      pcieCap({
        type: type!,
        link,
        mpsSupported: val(f, "mpsSupported") ?? Math.max(256, mps ?? 0),
        mps,
        mrrs,
        flr: val(f, "flr") ?? false,
        extTag: val(f, "extTag"),
        portNumber: val(f, "portNumber"),
        slot: type === PCI_EXP_TYPE.ROOT_PORT || type === PCI_EXP_TYPE.DOWNSTREAM,
      }),
    );
    const acs = f.attrs.acs;
    const acsMatters = PORT_TYPES.includes(type!) || multifunction || (f.devfn & 7) !== 0;
    if (acs) {
      if (acs.value) caps.push(acsCap(acs.value));
    } else if (acsMatters) {
      const isolating = ctx.opts.assumeAcs === "isolating";
      if (isolating) caps.push(acsCap(ACS_ISOLATING));
      unknown(
        ctx,
        s,
        "acs",
        isolating ? ACS_ISOLATING : null,
        isolating
          ? "ACS not stated; modelled as present with SV, RR, CR, UF enabled (--assume-acs isolating)"
          : "ACS not stated; modelled as absent (no ACS capability: no isolation, no redirect)",
      );
    }
    if (val(f, "ari")) caps.push(ariCap());
    if (val(f, "ats")) caps.push(atsCap());
    const serial = val(f, "serial");
    if (serial !== undefined) caps.push(dsnCap(serial));
    const sriov = val(f, "sriov");
    if (sriov) caps.push(sriovCap(sriov));
  } else {
    const acs = f.attrs.acs;
    if (acs?.value)
      ctx.warnings.push(
        `${s}: ACS stated (${sourcePlace(acs.source)}) on a function without PCI Express capability; ignored`,
      );
  }
  const h = {
    vendor: vendor ?? 0,
    device: device ?? 0,
    classCode,
    revision: val(f, "revision"),
    headerType,
    subsystemVendor: val(f, "subsystemVendor"),
    subsystemDevice: val(f, "subsystemDevice"),
    command,
  };
  try {
    return buildConfigSpace(h, caps);
  } catch (e) {
    // Only an overflow of the capability area can fail; drop the optional capabilities.
    ctx.warnings.push(`${s}: ${(e as Error).message}; optional capabilities left out`);
    return buildConfigSpace(
      h,
      caps.filter((c) => c.id === 0x10 || c.id === 0x0d),
    );
  }
}

function typeFromConfig(cfg: ConfigSpace): number | null {
  const o = cfg.findCapability(0x10);
  return o ? (cfg.read16(o + 2) >> 4) & 0xf : null;
}

/** Records the facts a function was built from (the chosen value first, then the others). */
function recordFacts(ctx: Ctx, f: FunctionFacts): void {
  const alternatives = ctx.facts.alternatives;
  for (const [k, fact] of Object.entries(f.attrs) as [AttrName, Fact<unknown>][]) {
    ctx.provenance.record(f.bdf, k, fact.value, {
      ...fact.source,
      note: note(fact.status, fact.source.note),
    });
    for (const other of alternatives?.get(f.bdf)?.get(k) ?? [])
      if (other !== fact)
        ctx.provenance.record(f.bdf, k, other.value, {
          ...other.source,
          note: note(other.status, other.source.note),
        });
  }
  if (f.statedBdf) ctx.provenance.record(f.bdf, "statedBdf", f.statedBdf, f.source);
}

function applyBars(ctx: Ctx, dev: PciDev, f: FunctionFacts): void {
  const bars = val(f, "bars");
  if (!bars) return;
  for (const b of bars) {
    if (b.index < 0 || b.index > 5 || b.address === null || b.size <= 0n) continue;
    if (b.type === "mem64" && b.index === 5) continue;
    let flags = b.type === "io" ? IORESOURCE_IO : IORESOURCE_MEM;
    if (b.type === "mem64") flags |= IORESOURCE_MEM_64;
    if (b.prefetch) flags |= IORESOURCE_PREFETCH;
    dev.resources[b.index] = { index: b.index, flags, start: b.address, len: b.size };
    if ((b.size & (b.size - 1n)) === 0n && b.address % b.size === 0n) dev.programBar(b.index);
    else
      ctx.warnings.push(
        `${dev.bdf}: BAR${b.index} size or alignment is not a power of two (${loc(f, "bars")})`,
      );
  }
}

/** Builds the fabric a set of facts describes. */
export function buildFabric(
  facts: MachineFacts,
  options: BuildOptions = {},
  conflicts: Conflict[] = [],
): ImportResult {
  const ctx: Ctx = {
    facts,
    opts: { assumeAcs: options.assumeAcs ?? "absent", inferPortTypes: options.inferPortTypes ?? true },
    provenance: new Provenance(),
    unknowns: [],
    warnings: [...facts.warnings],
    types: new Map(),
    byBus: new Map(),
    owner: new Map(),
  };
  // Multi-function: derived from siblings in the same slot.
  const slots = new Map<string, FunctionFacts[]>();
  for (const f of facts.functions.values()) {
    const k = `${busKey(f.segment, f.bus)}:${f.devfn >> 3}`;
    const l = slots.get(k);
    if (l) l.push(f);
    else slots.set(k, [f]);
  }
  for (const l of slots.values())
    if (l.length > 1)
      for (const f of l)
        setFact(
          facts,
          f,
          "multifunction",
          true,
          { ...f.source, note: "other functions in the same slot" },
          "derived",
        );

  resolveBuses(ctx);

  // NUMA nodes stated below each root bus (lspci states it per function, not per host bridge).
  const rootOf = (k: string): string | null => {
    for (let i = 0, cur = k; i < 300; i++) {
      const o = ctx.owner.get(cur);
      if (o === "root") return cur;
      const b = o ? facts.functions.get(o) : undefined;
      if (!b) return null;
      cur = busKey(b.segment, b.bus);
    }
    return null;
  };
  const numaBelow = new Map<string, Set<number>>();
  for (const f of facts.functions.values()) {
    const nn = val(f, "numaNode");
    const r = nn === undefined ? null : rootOf(busKey(f.segment, f.bus));
    if (r === null || nn === undefined) continue;
    const set = numaBelow.get(r) ?? new Set<number>();
    set.add(nn);
    numaBelow.set(r, set);
  }

  const fabric = new Fabric();
  fabric.name = facts.name ?? facts.inputs.map((i) => i.file.split(/[\\/]/).pop()).join(" + ");
  const roots = [...ctx.owner.entries()].filter(([, o]) => o === "root").map(([k]) => k);
  roots.sort();
  const placed = new Set<string>();
  const visit = (bus: PciBus, parentType: number | null | undefined) => {
    const k = busKey(bus.segment, bus.number);
    const fns = [...(ctx.byBus.get(k) ?? [])].sort((a, b) => a.devfn - b.devfn);
    const devs: [FunctionFacts, PciDev][] = [];
    for (const f of fns) {
      if (placed.has(f.bdf)) continue;
      placed.add(f.bdf);
      const cfg = synthesize(ctx, f, bus.isRoot, parentType);
      let dev: PciDev;
      try {
        dev = fabric.addFunction(bus, f.devfn, cfg);
      } catch (e) {
        if (e instanceof InputError) throw new InputError(e.message, loc(f));
        throw e;
      }
      recordFacts(ctx, f);
      dev.name = val(f, "name") ?? "";
      dev.driver = val(f, "driver") ?? null;
      dev.numaNode = val(f, "numaNode") ?? bus.hostBridge.numaNode;
      applyBars(ctx, dev, f);
      devs.push([f, dev]);
    }
    for (const [f, dev] of devs) {
      const sec = f.attrs.secondary?.value;
      if (sec === undefined || !isBridge(f) || ctx.owner.get(busKey(f.segment, sec)) !== f.bdf) continue;
      let child: PciBus;
      try {
        child = fabric.addSecondaryBus(dev, sec);
      } catch (e) {
        if (e instanceof InputError) throw new InputError(e.message, loc(f, "secondary"));
        throw e;
      }
      visit(child, ctx.types.get(f.bdf));
    }
  };
  for (const k of roots) {
    const [d, b] = k.split(":").map((x) => Number.parseInt(x, 16));
    const hf = facts.hostBridges.get(k);
    let numa = hf?.numaNode?.value;
    if (numa === undefined) {
      // The one NUMA node the functions below state, if they agree.
      const seen = numaBelow.get(k);
      numa = seen && seen.size === 1 ? [...seen][0] : -1;
    }
    const hb = fabric.addHostBridge(new HostBridge(d, b, [], numa, hf?.name?.value ?? ""));
    const subject = `pci${k}`;
    ctx.provenance.record(
      subject,
      "rootBus",
      k,
      hf?.source ?? { file: "(none)", note: "derived: no bridge leads to this bus" },
    );
    if (hf?.numaNode) ctx.provenance.record(subject, "numaNode", numa, hf.numaNode.source);
    if (hf?.placeholder)
      unknown(
        ctx,
        subject,
        "identity",
        null,
        "host bridge not described by the source (bus number invented); its identity for the P2PDMA allow-list is unknown",
      );
    visit(hb.rootBus, undefined);
  }
  const missing = [...facts.functions.values()].filter((f) => !placed.has(f.bdf));
  if (missing.length)
    throw new InputError(
      `${missing.length} function(s) are not reachable from any root bus (bridges' secondary buses form a loop?), first ${missing[0].bdf}`,
      loc(missing[0]),
    );

  // SR-IOV: functions stated to be VFs, and the functions at a PF's VF routing ids.
  for (const f of facts.functions.values()) {
    const pfBdf = val(f, "physfn");
    const vf = pfBdf ? fabric.find(f.bdf) : undefined;
    const pf = pfBdf ? fabric.find(pfBdf) : undefined;
    if (vf && pf && vf !== pf && !vf.isVirtfn) {
      vf.isVirtfn = true;
      vf.physfn = pf;
      pf.virtfns.push(vf);
    }
  }
  for (const pf of fabric.devices()) {
    const f = facts.functions.get(pf.bdf);
    const sr = f && val(f, "sriov");
    if (!sr?.enabled || sr.numVfs <= 0) continue;
    const rid = (pf.busNumber << 8) | pf.devfn;
    for (let n = 0; n < Math.min(sr.numVfs, 4096); n++) {
      const r = rid + sr.vfOffset + n * sr.vfStride;
      const vf = fabric.find(formatBdf({ segment: pf.segment, bus: (r >> 8) & 0xff, devfn: r & 0xff }));
      if (vf && vf !== pf && !vf.isVirtfn) {
        vf.isVirtfn = true;
        vf.physfn = pf;
        pf.virtfns.push(vf);
      }
    }
  }

  fabric.finalizeBusNumbers();
  // A stated subordinate above what is populated stays (lspci shows [01-10] for empty slots).
  for (const dev of fabric.devices()) {
    const f = facts.functions.get(dev.bdf);
    const sub = f?.attrs.subordinate?.value;
    if (dev.subordinate && sub !== undefined && sub > dev.config.read8(PCI_SUBORDINATE_BUS) && sub <= 0xff)
      dev.config.write8(PCI_SUBORDINATE_BUS, sub);
  }

  let cpu: CpuInfo | undefined;
  if (facts.cpu) {
    cpu = facts.cpu.value;
    fabric.cpu = cpu;
    for (const [k, src] of Object.entries(facts.cpuSources ?? { vendor: facts.cpu.source }))
      ctx.provenance.record("cpu", k, (cpu as unknown as Record<string, unknown>)[k], src);
  } else
    unknown(
      ctx,
      "cpu",
      "vendor",
      null,
      "no source names the CPU (give lscpu, /proc/cpuinfo or --cpu); the analysis assumes its default",
    );

  const reportedGroups = facts.reportedGroups
    ? [...facts.reportedGroups.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([id, devices]) => ({ id, devices: [...devices].sort() }))
    : null;
  return {
    fabric,
    cpu,
    provenance: ctx.provenance,
    warnings: ctx.warnings,
    unknowns: ctx.unknowns,
    conflicts,
    reportedGroups,
    renamed: facts.renamed,
    facts,
  };
}

/** Merges several descriptions of one machine and builds its fabric. */
export function mergeAndBuild(parts: MachineFacts[], options: BuildOptions = {}): ImportResult {
  if (parts.length === 0) throw new InputError("no source to import");
  if (parts.length === 1) return buildFabric(parts[0], options);
  const { facts, conflicts } = mergeFacts(parts);
  return buildFabric(facts, options, conflicts);
}

/* ------------------------------------------------------------------------------------------ */
/* Fabrics from other importers                                                                */
/* ------------------------------------------------------------------------------------------ */

/**
 * Facts of a fabric another importer built from config bytes (sysfs, `lspci -x`), so it can be
 * merged with text sources. Functions with 256 bytes or more keep their config space as is; a
 * 64-byte header only gives ids and class, the rest comes from the other sources.
 */
export function factsFromFabric(
  fabric: Fabric,
  file: string,
  format: string,
  provenance?: Provenance,
): MachineFacts {
  const facts = emptyFacts(file, format);
  const src = (bdf: string, attr: string, field: string): ProvenanceSource =>
    provenance?.get(bdf, attr)?.source ?? { file, field };
  for (const hb of fabric.hostBridges) {
    facts.hostBridges.set(busKey(hb.domain, hb.busNumber), {
      domain: hb.domain,
      bus: hb.busNumber,
      numaNode:
        hb.numaNode >= 0
          ? { value: hb.numaNode, source: { file, field: "numa_node" }, status: "stated" }
          : undefined,
      name: hb.name ? { value: hb.name, source: { file }, status: "stated" } : undefined,
      source: { file, field: hb.label },
    });
  }
  for (const dev of fabric.devices()) {
    const f = functionAt(facts, dev.segment, dev.busNumber, dev.devfn, src(dev.bdf, "vendor", "config"));
    const set = <K extends AttrName>(k: K, v: FunctionAttrs[K], field: string) =>
      setFact(facts, f, k, v, src(dev.bdf, k, field));
    set("vendor", dev.vendor, "config 0x00");
    set("device", dev.device, "config 0x02");
    set("classCode", dev.classCode, "config 0x09");
    set("revision", dev.revision, "config 0x08");
    set("bridge", dev.isBridgeHeader, "config 0x0e");
    set("command", dev.command, "config 0x04");
    if (dev.config.size >= 256) {
      set("config", dev.config, "config");
      set("pcieType", dev.pcieType, "PCI Express capability");
      const l = dev.link;
      if (l) {
        set("link", { speed: l.speed, width: l.width }, "LnkSta");
        set("linkCap", { speed: l.maxSpeed, width: l.maxWidth }, "LnkCap");
      }
      if (dev.pcieType !== null)
        set("acs", dev.acsCapOffset ? { cap: dev.acsCapReg, ctrl: dev.acsCtrlReg } : null, "ACS capability");
    }
    if (dev.subordinate) set("secondary", dev.subordinate.number, "config 0x19");
    f.attrs.parent = {
      value: dev.bus.self ? dev.bus.self.bdf : null,
      source: { file, note: "from the fabric's tree" },
      status: "stated",
    };
    if (dev.isVirtfn && dev.physfn) set("physfn", dev.physfn.bdf, "physfn");
    if (dev.name) set("name", dev.name, "name");
    if (dev.driver) set("driver", dev.driver, "driver");
    if (dev.numaNode >= 0) set("numaNode", dev.numaNode, "numa_node");
    const bars: BarFact[] = [];
    for (const r of dev.resources)
      if (r.flags)
        bars.push({
          index: r.index,
          type: r.flags & IORESOURCE_IO ? "io" : r.flags & IORESOURCE_MEM_64 ? "mem64" : "mem32",
          prefetch: (r.flags & IORESOURCE_PREFETCH) !== 0,
          address: r.start,
          size: r.len,
        });
    if (bars.length) set("bars", bars, "resource");
  }
  if (fabric.cpu) facts.cpu = { value: fabric.cpu, source: { file, field: "cpu" }, status: "stated" };
  return facts;
}
