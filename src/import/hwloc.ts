/**
 * hwloc XML (`lstopo --of xml`: v1 `<topology>`, v2 `version="2.0"`, v3 `version="3.0"`) →
 * {@link MachineFacts}. PCI objects are `Bridge` (host bridges: `bridge_type="0-1"` with
 * `bridge_pci="dddd:[ss-uu]"`; PCI-PCI bridges `1-1`) and `PCIDev`, nested as the tree is. Each
 * gives `pci_busid`, `pci_type` ("cccc [vvvv:dddd] [ssss:ssss] rr[ pp]") and `pci_link_speed`, the
 * link's data rate in GB/s — hwloc folds speed and width into one number, so the split is
 * inferred (see {@link splitLinkGBps}). NUMA locality comes from the nearest non-I/O ancestor's
 * nodeset; the CPU from the first Package's CPUVendor / CPUFamilyNumber / CPUModelNumber.
 * hwloc says nothing about ACS, MPS or PCIe port types: those stay unknown.
 */
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { InputError } from "../core/errors.js";
import { formatBdf, parseBdf } from "../pci/bdf.js";
import type { CpuInfo } from "../pci/fabric.js";
import { busKey, emptyFacts, type FunctionFacts, functionAt, type MachineFacts, setFact } from "./merge.js";
import type { ProvenanceSource } from "./provenance.js";

/* ------------------------------------------------------------------------------------------ */
/* XML helpers shared with the NCCL importer                                                   */
/* ------------------------------------------------------------------------------------------ */

export interface XmlNode {
  tag: string;
  attrs: Record<string, string>;
  children: XmlNode[];
  /** 1-based line of the opening tag. */
  line: number;
}

/** Parses XML into a plain tree with line numbers; malformed XML is an InputError at its line. */
export function parseXml(text: string, file: string): XmlNode[] {
  const v = XMLValidator.validate(text, { allowBooleanAttributes: true });
  if (v !== true) {
    // The validator lists the elements still open at the end as a JSON array: say it in words.
    const open = /^Invalid '\[([\s\S]*)\]' found\.$/.exec(v.err.msg);
    const msg = open
      ? `the document ends with ${open[1]
          .split(",")
          .map((x) => `<${x.trim().replace(/^"|"$/g, "")}>`)
          .join(" ")} still open (truncated?)`
      : v.err.msg;
    throw new InputError(`malformed XML: ${msg}`, `${file}:${v.err.line}:${v.err.col}`);
  }
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: "",
    preserveOrder: true,
    captureMetaData: true,
    parseAttributeValue: false,
    parseTagValue: false,
    processEntities: true,
    allowBooleanAttributes: true,
    maxNestedTags: 400,
  });
  let doc: unknown;
  try {
    doc = parser.parse(text);
  } catch (e) {
    throw new InputError(`malformed XML: ${(e as Error).message}`, file);
  }
  const starts: number[] = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
  const lineAt = (idx: number | undefined) => {
    if (idx === undefined) return 0;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= idx) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
  const sym = XMLParser.getMetaDataSymbol() as unknown as string;
  const convert = (list: unknown): XmlNode[] => {
    if (!Array.isArray(list)) return [];
    const out: XmlNode[] = [];
    for (const item of list) {
      if (!item || typeof item !== "object") continue;
      const rec = item as Record<string, unknown>;
      const tag = Object.keys(rec).find((k) => k !== ":@" && k !== "#text" && k !== "#comment");
      if (!tag || tag.startsWith("?") || tag.startsWith("!")) continue;
      const attrs: Record<string, string> = {};
      for (const [k, x] of Object.entries((rec[":@"] as Record<string, unknown>) ?? {})) attrs[k] = String(x);
      const meta = rec[sym] as { startIndex?: number } | undefined;
      out.push({ tag, attrs, children: convert(rec[tag]), line: lineAt(meta?.startIndex) });
    }
    return out;
  };
  return convert(doc);
}

/** "0x00000003" / "0x00000001,0x00000000" (most significant word first) → set bits; null for "all". */
export function parseHwlocBitmap(s: string): number[] | null {
  const t = s.trim();
  if (/f\.\.\.f/i.test(t)) return null;
  const words = t.split(",").map((w) => w.trim().replace(/^0x/i, ""));
  if (!words.every((w) => /^[0-9a-fA-F]{1,8}$/.test(w))) return [];
  const bits: number[] = [];
  words.reverse().forEach((w, i) => {
    const v = Number.parseInt(w, 16);
    for (let b = 0; b < 32; b++) if (v & (1 << b)) bits.push(i * 32 + b);
  });
  return bits;
}

/* ------------------------------------------------------------------------------------------ */
/* Link data rate → speed and width                                                            */
/* ------------------------------------------------------------------------------------------ */

/** GT/s and encoding efficiency per generation, as hwloc computes GB/s (Gen6+ FLIT: 242/256). */
const GENS: [number, number][] = [
  [2.5, 0.8],
  [5, 0.8],
  [8, 128 / 130],
  [16, 128 / 130],
  [32, 128 / 130],
  [64, 242 / 256],
  [128, 242 / 256],
];
const WIDTHS = [1, 2, 4, 8, 12, 16, 32];

/**
 * hwloc's `pci_link_speed` is lanes × GT/s × encoding / 8 (GB/s). The split is ambiguous (8 GT/s
 * x16 = 16 GT/s x8): the lowest generation whose width is at most x16 is taken, and the other
 * readings are returned so the provenance can say so. Null when nothing fits.
 */
export function splitLinkGBps(gbps: number): { speed: number; width: number; alternatives: string[] } | null {
  const fits: { speed: number; width: number }[] = [];
  for (const [gts, enc] of GENS) {
    const w = (gbps * 8) / (gts * enc);
    const r = Math.round(w);
    if (WIDTHS.includes(r) && Math.abs(w - r) < 0.01 * r) fits.push({ speed: gts, width: r });
  }
  if (!fits.length) return null;
  const pick = fits.find((f) => f.width <= 16) ?? fits[0];
  return {
    ...pick,
    alternatives: fits.filter((f) => f !== pick).map((f) => `${f.speed} GT/s x${f.width}`),
  };
}

/* ------------------------------------------------------------------------------------------ */
/* Importer                                                                                    */
/* ------------------------------------------------------------------------------------------ */

const IO_TYPES = new Set(["Bridge", "PCIDev", "OSDev", "Misc"]);

interface Walk {
  facts: MachineFacts;
  file: string;
  /** NUMA node of the nearest non-I/O ancestor, or -1. */
  numa: number;
  /** Bus of the nearest PCI ancestor (host bridge root bus, or a bridge's buses). */
  parent: { bdf: string | null; domain: number; sec: number; sub: number } | null;
  ambiguousLinks: Set<string>;
  statedAll: Set<string>;
}

function infoOf(node: XmlNode, name: string): string | undefined {
  return node.children.find((c) => c.tag === "info" && c.attrs.name === name)?.attrs.value;
}

/** hwloc XML text → facts. */
export function parseHwlocXml(text: string, file = "<hwloc.xml>"): MachineFacts {
  const roots = parseXml(text, file);
  const top = roots.find((n) => n.tag === "topology" || n.tag === "root");
  if (!top)
    throw new InputError(
      `expected an hwloc <topology> document, found <${roots[0]?.tag ?? "nothing"}>`,
      file,
    );
  const version = top.attrs.version ?? "1.x";
  const facts = emptyFacts(file, `hwloc-xml v${version}`);
  if (!top.children.some((c) => c.tag === "object"))
    throw new InputError("the <topology> has no <object> (truncated?)", `${file}:${top.line}`);
  // Every address the file states, so a function placed elsewhere never takes one of them.
  const statedAll = new Set<string>();
  for (const m of text.matchAll(/pci_busid="([^"]*)"/g)) {
    try {
      statedAll.add(formatBdf(parseBdf(m[1])));
    } catch {
      // reported where the object is read
    }
  }
  const w: Walk = { facts, file, numa: -1, parent: null, ambiguousLinks: new Set(), statedAll };
  let cpu: { cpu: CpuInfo; sources: Record<string, ProvenanceSource> } | null = null;
  const taken = new Map<string, number>();

  const visit = (node: XmlNode, numa: number, parent: Walk["parent"]) => {
    if (node.tag !== "object") return;
    const type = node.attrs.type ?? "";
    const a = node.attrs;
    let myNuma = numa;
    if (!IO_TYPES.has(type)) {
      if (type === "NUMANode" && a.os_index && /^\d+$/.test(a.os_index)) myNuma = Number(a.os_index);
      else if (a.nodeset) {
        const bits = parseHwlocBitmap(a.nodeset);
        myNuma = bits && bits.length === 1 ? bits[0] : -1;
      }
      if (!cpu && (type === "Package" || type === "Socket" || type === "Machine")) {
        const vendor = infoOf(node, "CPUVendor");
        if (vendor) {
          const line = node.children.find((c) => c.attrs.name === "CPUVendor")!.line;
          const fam = infoOf(node, "CPUFamilyNumber");
          const model = infoOf(node, "CPUModelNumber");
          const name = infoOf(node, "CPUModel");
          const c: CpuInfo = {
            vendor,
            family: fam && /^\d+$/.test(fam) ? Number(fam) : 0,
            source: `hwloc ${file}`,
          };
          if (model && /^\d+$/.test(model)) c.model = Number(model);
          if (name) c.modelName = name;
          cpu = {
            cpu: c,
            sources: {
              vendor: { file, line, field: "CPUVendor" },
              family: { file, line, field: "CPUFamilyNumber" },
              model: { file, line, field: "CPUModelNumber" },
              modelName: { file, line, field: "CPUModel" },
            },
          };
          if (!fam)
            facts.warnings.push(`${file}:${line}: no CPUFamilyNumber; CPU family unknown (taken as 0)`);
        }
      }
    }
    let next = parent;
    if (type === "Bridge" && (a.bridge_type ?? "").startsWith("0-")) {
      next = hostBridge(w, node, myNuma);
    } else if (type === "Bridge" || type === "PCIDev") {
      const f = pciObject(w, node, myNuma, parent, taken);
      if (f && type === "Bridge") {
        const sec = f.attrs.secondary?.value;
        // Without bridge_pci the buses below are unknown: the children's own bus numbers decide.
        next =
          sec === undefined
            ? { bdf: f.bdf, domain: f.segment, sec: -1, sub: 0xff }
            : { bdf: f.bdf, domain: f.segment, sec, sub: f.attrs.subordinate?.value ?? sec };
      }
      if (f) {
        const osdevs = node.children
          .filter((c) => c.tag === "object" && c.attrs.type === "OSDev" && c.attrs.name)
          .map((c) => c.attrs.name);
        const label = [infoOf(node, "PCIVendor"), infoOf(node, "PCIDevice")].filter(Boolean).join(" ");
        const name = [label, osdevs.length ? `(${osdevs.join(", ")})` : ""].filter(Boolean).join(" ");
        if (name) setFact(facts, f, "name", name, { file, line: node.line, field: "info PCIDevice / OSDev" });
      }
    }
    for (const c of node.children) visit(c, myNuma, next);
  };
  for (const c of top.children) visit(c, -1, null);
  if (cpu) {
    const c = cpu as { cpu: CpuInfo; sources: Record<string, ProvenanceSource> };
    facts.cpu = { value: c.cpu, source: c.sources.vendor, status: "stated" };
    facts.cpuSources = c.sources;
  }
  if (w.ambiguousLinks.size)
    facts.warnings.push(
      `${file}: hwloc gives each link as GB/s only; speed and width were inferred as the lowest PCIe generation that fits (e.g. ${[...w.ambiguousLinks].slice(0, 3).join("; ")})`,
    );
  if (!facts.functions.size)
    facts.warnings.push(`${file}: no PCI objects (lstopo was run without I/O discovery?)`);
  return facts;
}

function hostBridge(w: Walk, node: XmlNode, numa: number): Walk["parent"] {
  const { facts, file } = w;
  const m = /^([0-9a-fA-F]{4,8}):\[([0-9a-fA-F]{2})-([0-9a-fA-F]{2})\]$/.exec(node.attrs.bridge_pci ?? "");
  if (!m)
    throw new InputError(
      `host bridge: expected bridge_pci="dddd:[bb-bb]", found "${node.attrs.bridge_pci ?? ""}"`,
      `${file}:${node.line}`,
    );
  const domain = Number.parseInt(m[1], 16);
  const sec = Number.parseInt(m[2], 16);
  const sub = Number.parseInt(m[3], 16);
  const k = busKey(domain, sec);
  if (!facts.hostBridges.has(k))
    facts.hostBridges.set(k, {
      domain,
      bus: sec,
      numaNode:
        numa >= 0
          ? {
              value: numa,
              source: { file, line: node.line, field: "nodeset of the I/O parent" },
              status: "stated",
            }
          : undefined,
      source: { file, line: node.line, field: "bridge_pci" },
    });
  return { bdf: null, domain, sec, sub: Math.max(sub, sec) };
}

function pciObject(
  w: Walk,
  node: XmlNode,
  numa: number,
  parent: Walk["parent"],
  taken: Map<string, number>,
): FunctionFacts | null {
  const { facts, file } = w;
  const a = node.attrs;
  const n = node.line;
  const src = (field: string): ProvenanceSource => ({ file, line: n, field });
  if (!a.pci_busid) throw new InputError(`${a.type} object without pci_busid`, `${file}:${n}`);
  let addr: ReturnType<typeof parseBdf>;
  try {
    addr = parseBdf(a.pci_busid, `${file}:${n}`);
  } catch (e) {
    if (e instanceof InputError)
      throw new InputError(`pci_busid: ${e.message.replace(/^.*?: /, "")}`, `${file}:${n}`);
    throw e;
  }
  const stated = formatBdf(addr);
  // Place the object where its parent says it is. hwloc trees are consistent, except when a dump
  // was edited by hand (a function repeated under another bridge).
  const outside = parent && parent.sec >= 0 && (addr.bus < parent.sec || addr.bus > parent.sub);
  if (parent && parent.sec >= 0 && (addr.segment !== parent.domain || outside || taken.has(stated))) {
    const why = taken.has(stated)
      ? `${stated} is already used at line ${taken.get(stated)}`
      : `bus ${addr.bus.toString(16).padStart(2, "0")} is outside its parent's buses [${parent.sec.toString(16).padStart(2, "0")}-${parent.sub.toString(16).padStart(2, "0")}]`;
    let devfn = addr.devfn;
    const free = (d: number) => {
      const b = formatBdf({ segment: parent.domain, bus: parent.sec, devfn: d });
      return !facts.functions.has(b) && !w.statedAll.has(b);
    };
    if (!free(devfn)) {
      devfn = -1;
      for (let d = 0; d < 256; d++)
        if (free(d)) {
          devfn = d;
          break;
        }
      if (devfn < 0)
        throw new InputError(`no room for ${stated} on bus ${parent.sec.toString(16)}`, `${file}:${n}`);
    }
    addr = { segment: parent.domain, bus: parent.sec, devfn };
    const placed = formatBdf(addr);
    facts.warnings.push(
      `${file}:${n}: ${stated} placed as ${placed} below ${parent.bdf ?? "its host bridge"} (${why})`,
    );
    facts.renamed.set(`${stated}@${n}`, placed);
  } else if (taken.has(stated))
    throw new InputError(`${stated} appears twice (first at line ${taken.get(stated)})`, `${file}:${n}`);
  const f = functionAt(facts, addr.segment, addr.bus, addr.devfn, { file, line: n, field: "pci_busid" });
  if (formatBdf(addr) !== stated) f.statedBdf = stated;
  taken.set(stated, n);
  taken.set(f.bdf, n);
  setFact(facts, f, "parent", parent ? parent.bdf : null, src("nesting"));

  // pci_type: "cccc [vvvv:dddd] [ssss:ssss] rr" (+ " pp" prog-if in hwloc 3)
  const t =
    /^([0-9a-fA-F]{4}) \[([0-9a-fA-F]{4}):([0-9a-fA-F]{4})\] \[([0-9a-fA-F]{4}):([0-9a-fA-F]{4})\] ([0-9a-fA-F]{2})(?: ([0-9a-fA-F]{2}))?$/.exec(
      (a.pci_type ?? "").trim(),
    );
  if (t) {
    const h = (s: string) => Number.parseInt(s, 16);
    setFact(
      facts,
      f,
      "classCode",
      (h(t[1]) << 8) | (t[7] ? h(t[7]) : 0),
      src(t[7] ? "pci_type class, prog-if" : "pci_type class"),
    );
    setFact(facts, f, "vendor", h(t[2]), src("pci_type vendor"));
    setFact(facts, f, "device", h(t[3]), src("pci_type device"));
    setFact(facts, f, "subsystemVendor", h(t[4]), src("pci_type subvendor"));
    setFact(facts, f, "subsystemDevice", h(t[5]), src("pci_type subdevice"));
    setFact(facts, f, "revision", h(t[6]), src("pci_type revision"));
  } else if (a.pci_type !== undefined)
    facts.warnings.push(
      `${file}:${n}: pci_type "${a.pci_type}" not understood (expected "cccc [vvvv:dddd] [ssss:ssss] rr"); ids unknown`,
    );

  if (a.type === "Bridge") {
    setFact(facts, f, "bridge", true, src("type=Bridge"));
    const b = /^([0-9a-fA-F]{4,8}):\[([0-9a-fA-F]{2})-([0-9a-fA-F]{2})\]$/.exec(a.bridge_pci ?? "");
    if (b) {
      const sec = Number.parseInt(b[2], 16);
      const sub = Number.parseInt(b[3], 16);
      if (sec > f.bus && sub >= sec) {
        setFact(facts, f, "secondary", sec, src("bridge_pci"));
        setFact(facts, f, "subordinate", sub, src("bridge_pci"));
      } else
        facts.warnings.push(
          `${file}:${n}: bridge ${f.bdf} bridge_pci "${a.bridge_pci}" is not below its own bus; ignored`,
        );
    } else facts.warnings.push(`${file}:${n}: bridge ${f.bdf} without bridge_pci; its buses are unknown`);
  } else setFact(facts, f, "bridge", false, src("type=PCIDev"));

  const gbps = Number.parseFloat(a.pci_link_speed ?? "");
  if (Number.isFinite(gbps) && gbps > 0) {
    const split = splitLinkGBps(gbps);
    if (split) {
      const why = `hwloc states ${a.pci_link_speed} GB/s${split.alternatives.length ? `; also fits ${split.alternatives.join(", ")}` : ""}`;
      setFact(
        facts,
        f,
        "link",
        { speed: split.speed, width: split.width },
        { file, line: n, field: "pci_link_speed", note: why },
        "inferred",
      );
      if (split.alternatives.length)
        w.ambiguousLinks.add(`${a.pci_link_speed} GB/s → ${split.speed} GT/s x${split.width}`);
    } else
      facts.warnings.push(
        `${file}:${n}: pci_link_speed ${a.pci_link_speed} GB/s fits no PCIe speed and width; link unknown`,
      );
  }
  if (numa >= 0) setFact(facts, f, "numaNode", numa, src("nodeset of the I/O parent"));
  return f;
}
