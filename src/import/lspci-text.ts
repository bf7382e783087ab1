/**
 * lspci's text outputs → {@link MachineFacts}:
 *
 * - `lspci -t` / `-tv` / `-tvv` / `-tvnn` / `-tn`: the tree (domains, root buses, bridges'
 *   `[secondary-subordinate]` ranges, functions, and names or `[vvvv:dddd]` ids);
 * - `lspci -v` / `-vv` / `-vvv`, with or without `-nn` and `-D`: per-function records (ids, class,
 *   BARs, bus numbers, PCIe type, DevCap/DevCtl, LnkCap/LnkSta, ACS, PM, SR-IOV, NUMA node, driver,
 *   IOMMU group);
 * - `lspci -mm` / `-nnmm` / `-nnmmD`: one quoted line per function (ids, class, revision).
 *
 * Names without ids are turned into ids with the shipped pci.ids (recorded as derived). Malformed
 * text is an {@link InputError} naming the file, line and what was expected.
 */
import { InputError } from "../core/errors.js";
import { devfnOf } from "../pci/bdf.js";
import {
  PCI_ACS_CR,
  PCI_ACS_DT,
  PCI_ACS_EC,
  PCI_ACS_RR,
  PCI_ACS_SV,
  PCI_ACS_TB,
  PCI_ACS_UF,
  PCI_EXP_TYPE,
} from "../pci/regs.js";
import {
  type BarFact,
  busKey,
  emptyFacts,
  type FunctionFacts,
  functionAt,
  type MachineFacts,
  setFact,
} from "./merge.js";
import { defaultPciIds, type PciIds } from "./pciids.js";
import type { ProvenanceSource } from "./provenance.js";

export interface LspciTextOptions {
  /** The ID database for names printed without `-nn` (default: the shipped data/pci.ids). */
  pciIds?: PciIds;
}

const hex = (s: string) => Number.parseInt(s, 16);

/** Splits text into lines without their line ends; line numbers are 1-based indexes + 1. */
function linesOf(text: string): string[] {
  return text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
}

/**
 * Ids for a function whose source printed names: "[vvvv:dddd]" at the end (with -nn), a bare
 * "vvvv:dddd" (-n), or names looked up in pci.ids.
 */
function applyNames(
  facts: MachineFacts,
  f: FunctionFacts,
  text: string,
  src: ProvenanceSource,
  ids: () => PciIds,
  unresolved: Set<string>,
): void {
  const t = text.trim();
  if (!t) return;
  const bare = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$/.exec(t);
  if (bare) {
    setFact(facts, f, "vendor", hex(bare[1]), { ...src, field: "vendor:device" });
    setFact(facts, f, "device", hex(bare[2]), { ...src, field: "vendor:device" });
    return;
  }
  const nn = /^(.*?)\s*\[([0-9a-fA-F]{4}):([0-9a-fA-F]{4})\]$/.exec(t);
  if (nn) {
    setFact(facts, f, "vendor", hex(nn[2]), { ...src, field: "[vendor:device]" });
    setFact(facts, f, "device", hex(nn[3]), { ...src, field: "[vendor:device]" });
    if (nn[1]) setFact(facts, f, "name", nn[1], { ...src, field: "name" });
    return;
  }
  setFact(facts, f, "name", t, { ...src, field: "name" });
  const db = ids();
  const r = db.idsFromNames(t);
  // A name that fits several ids is a guess, not a derivation.
  const status = r.ambiguous.length ? "inferred" : "derived";
  const how = { ...src, field: "name", note: `looked up in pci.ids ${db.version}` };
  if (r.vendor !== undefined) setFact(facts, f, "vendor", r.vendor, how, status);
  if (r.device !== undefined) setFact(facts, f, "device", r.device, how, status);
  if (r.ambiguous.length)
    facts.warnings.push(
      `${src.file}:${src.line}: "${t}" also matches ${r.ambiguous.join(", ")} in pci.ids; used the first`,
    );
  if (r.device === undefined && !unresolved.has(t)) {
    unresolved.add(t);
    facts.warnings.push(
      `${src.file}:${src.line}: "${t}" is not in pci.ids ${db.version}${r.vendor !== undefined ? " (vendor found, device not)" : ""}; ids unknown (use lspci -nn)`,
    );
  }
}

/* ------------------------------------------------------------------------------------------ */
/* lspci -t                                                                                    */
/* ------------------------------------------------------------------------------------------ */

type TreeCtx = (
  | { kind: "buses"; owner: string | null; domain: number }
  | { kind: "devs"; domain: number; bus: number; parent: string | null }
) & { line: number };

/**
 * `lspci -t…` text. The tree is read by columns, as lspci draws it: a `+-` or `\-` continues the
 * list (of buses or of devices) that was opened at the same column on an earlier line.
 */
export function parseLspciTree(text: string, file = "<lspci -t>", opts: LspciTextOptions = {}): MachineFacts {
  const facts = emptyFacts(file, "lspci-tree");
  const ids = () => opts.pciIds ?? defaultPciIds();
  const unresolved = new Set<string>();
  const lines = linesOf(text);
  const open = new Map<number, TreeCtx>();
  let started = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\s+$/, "");
    const n = i + 1;
    if (!line.trim()) continue;
    const at = (col: number, what: string): never => {
      throw new InputError(
        `expected ${what} at column ${col + 1}, found "${line.slice(col, col + 12)}"`,
        `${file}:${n}`,
      );
    };
    const src = (): ProvenanceSource => ({ file, line: n });

    const device = (p: number, domain: number, bus: number, parent: string | null): void => {
      const m = /^([0-9a-fA-F]{2})\.([0-7])/.exec(line.slice(p));
      if (!m) at(p, "a device and function (dd.f)");
      const slot = hex(m![1]);
      if (slot > 0x1f) at(p, "a device number up to 1f");
      const devfn = devfnOf(slot, Number(m![2]));
      const key = `${busKey(domain, bus)}:${m![1].toLowerCase()}.${m![2]}`;
      if (facts.functions.has(key))
        throw new InputError(`function ${key} appears twice in the tree`, `${file}:${n}`);
      const f = functionAt(facts, domain, bus, devfn, src());
      setFact(facts, f, "parent", parent, { ...src(), field: "tree position" });
      let q = p + m![0].length;
      const rest = line.slice(q);
      const br = /^-\[([0-9a-fA-F]{2})(?:-([0-9a-fA-F]{2}))?\]-/.exec(rest);
      if (br) {
        const sec = hex(br[1]);
        const sub = br[2] ? hex(br[2]) : sec;
        const s = { ...src(), field: "[secondary-subordinate]" };
        setFact(facts, f, "bridge", true, s);
        setFact(facts, f, "secondary", sec, s);
        setFact(facts, f, "subordinate", sub, s);
        if (sub < sec)
          throw new InputError(
            `bridge ${f.bdf}: subordinate bus ${br[2]} is below secondary ${br[1]}`,
            `${file}:${n}`,
          );
        q += br[0].length;
        // show_tree_bridge: one more '-', then the bus (or a list of buses with their numbers)
        if (line[q] !== "-") at(q, "'-' after the bridge's bus range");
        q++;
        if (line.startsWith("+-[", q)) {
          open.set(q, { kind: "buses", owner: f.bdf, domain, line: n });
          busItem(q + 2, f.bdf);
        } else busContents(q, domain, sec, f.bdf);
        return;
      }
      if (rest === "") return;
      const name = /^ {2}(.*)$/.exec(rest);
      if (!name) at(q, "two spaces and a name, a bridge range -[bb]-, or the end of the line");
      applyNames(facts, f, name![1], { ...src(), field: "name" }, ids, unresolved);
    };

    const busContents = (p: number, domain: number, bus: number, parent: string | null): void => {
      const rest = line.slice(p);
      if (rest === "") return; // an empty bus
      if (rest.startsWith("--")) device(p + 2, domain, bus, parent);
      else if (rest.startsWith("+-")) {
        open.set(p, { kind: "devs", domain, bus, parent, line: n });
        device(p + 2, domain, bus, parent);
      } else at(p, "'--' (one device), '+-' (several) or the end of the line");
    };

    const busItem = (p: number, owner: string | null): void => {
      const m = /^\[([0-9a-fA-F]{4,8}):([0-9a-fA-F]{2})\]-/.exec(line.slice(p));
      if (!m) at(p, "a bus [dddd:bb]-");
      const domain = hex(m![1]);
      const bus = hex(m![2]);
      if (owner === null) {
        const k = busKey(domain, bus);
        if (facts.hostBridges.has(k))
          throw new InputError(`root bus ${k} appears twice in the tree`, `${file}:${n}`);
        facts.hostBridges.set(k, { domain, bus, source: { file, line: n, field: "[domain:bus]" } });
      }
      busContents(p + m![0].length, domain, bus, owner);
    };

    if (!started) {
      started = true;
      if (line[0] !== "-") at(0, "the tree's first line, starting with -[dddd:bb]- or -+-[dddd:bb]-");
      if (line.startsWith("+-[", 1)) {
        open.set(1, { kind: "buses", owner: null, domain: 0, line: n });
        busItem(3, null);
      } else busItem(1, null);
      continue;
    }
    let start = 0;
    while (start < line.length && (line[start] === " " || line[start] === "|")) start++;
    const ch = line[start];
    if ((ch !== "+" && ch !== "\\") || line[start + 1] !== "-") at(start, "a branch '+-' or '\\-'");
    const ctx = open.get(start);
    if (!ctx) at(start, "a branch under an open list (none was opened at this column)");
    for (const col of [...open.keys()]) if (col > start) open.delete(col);
    if (ch === "\\") open.delete(start);
    if (ctx!.kind === "buses") busItem(start + 2, ctx!.owner);
    else device(start + 2, ctx!.domain, ctx!.bus, ctx!.parent);
  }
  if (!started) throw new InputError("empty: expected lspci -t output", file);
  // lspci closes every list it opens with a "\-" branch: one still open means the text was cut.
  if (open.size) {
    const [col, ctx] = [...open.entries()].sort((a, b) => a[0] - b[0])[0];
    throw new InputError(
      `the tree ends inside the list opened at line ${ctx.line}, column ${col + 1} (its last entry, drawn with "\\-", is missing: truncated?)`,
      `${file}:${lines.length}`,
    );
  }
  return facts;
}

/* ------------------------------------------------------------------------------------------ */
/* lspci -v / -vv / -vvv                                                                        */
/* ------------------------------------------------------------------------------------------ */

const HEAD_RE = /^(?:([0-9a-fA-F]{4,8}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7]) (.*)$/;

/** lspci's names for the PCIe device/port type (after "Express (vN)"). */
export const LSPCI_PCIE_TYPES: Record<string, number> = {
  Endpoint: PCI_EXP_TYPE.ENDPOINT,
  "Legacy Endpoint": PCI_EXP_TYPE.LEG_END,
  "Root Port": PCI_EXP_TYPE.ROOT_PORT,
  "Upstream Port": PCI_EXP_TYPE.UPSTREAM,
  "Downstream Port": PCI_EXP_TYPE.DOWNSTREAM,
  "PCI-Express to PCI/PCI-X Bridge": PCI_EXP_TYPE.PCI_BRIDGE,
  "PCI/PCI-X to PCI-Express Bridge": PCI_EXP_TYPE.PCIE_BRIDGE,
  "Root Complex Integrated Endpoint": PCI_EXP_TYPE.RC_END,
  "Root Complex Event Collector": PCI_EXP_TYPE.RC_EC,
};

const ACS_NAMES: [string, number][] = [
  ["SrcValid", PCI_ACS_SV],
  ["TransBlk", PCI_ACS_TB],
  ["ReqRedir", PCI_ACS_RR],
  ["CmpltRedir", PCI_ACS_CR],
  ["UpstreamFwd", PCI_ACS_UF],
  ["EgressCtrl", PCI_ACS_EC],
  ["DirectTrans", PCI_ACS_DT],
];

function acsBits(s: string): number | null {
  let v = 0;
  let seen = 0;
  for (const [name, bit] of ACS_NAMES) {
    const m = new RegExp(`\\b${name}([+-])`).exec(s);
    if (!m) continue;
    seen++;
    if (m[1] === "+") v |= bit;
  }
  return seen ? v : null;
}

const SIZE_UNITS: Record<string, bigint> = { "": 1n, K: 1n << 10n, M: 1n << 20n, G: 1n << 30n, T: 1n << 40n };

/** "Speed 8GT/s (downgraded), Width x4 (ok)" → {speed, width}; "unknown" speed → 0. */
function linkOf(s: string): { speed: number; width: number; port?: number } | null {
  const m = /Speed (unknown|[\d.]+ ?GT\/s)[^,]*, Width x(\d+)/i.exec(s);
  if (!m) return null;
  const port = /Port #(\d+)/.exec(s);
  return {
    speed: m[1].toLowerCase() === "unknown" ? 0 : Number.parseFloat(m[1]),
    width: Number(m[2]),
    port: port ? Number(port[1]) : undefined,
  };
}

function indentOf(line: string): number {
  let col = 0;
  for (const ch of line) {
    if (ch === "\t") col = (Math.floor(col / 8) + 1) * 8;
    else if (ch === " ") col++;
    else break;
  }
  return col;
}

interface CapBlock {
  name: string;
  line: number;
  /** Text of each labelled line (with its continuation lines), by label. */
  sections: Map<string, { text: string; line: number }>;
  body: string;
}

/**
 * `lspci -v…` text (tabs or spaces for indentation). Plain `lspci` (headers only) is read too.
 */
export function parseLspciVerbose(
  text: string,
  file = "<lspci -vvv>",
  opts: LspciTextOptions = {},
): MachineFacts {
  const facts = emptyFacts(file, "lspci-verbose");
  const ids = () => opts.pciIds ?? defaultPciIds();
  const unresolved = new Set<string>();
  const lines = linesOf(text);
  const groups = new Map<number, string[]>();
  let i = 0;
  let records = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i++;
      continue;
    }
    const head = HEAD_RE.exec(line);
    if (!head)
      throw new InputError(
        /^\s/.test(line)
          ? `an indented detail line before any function header (expected "bb:dd.f <class>: <device>")`
          : `expected a function header "bb:dd.f <class>: <vendor> <device>" or an indented detail line, found "${line.slice(0, 40)}"`,
        `${file}:${i + 1}`,
      );
    const start = i;
    i++;
    while (i < lines.length && lines[i].trim() && !HEAD_RE.test(lines[i])) {
      if (!/^\s/.test(lines[i]))
        throw new InputError(
          `expected an indented detail line or a function header, found "${lines[i].slice(0, 40)}"`,
          `${file}:${i + 1}`,
        );
      i++;
    }
    readRecord(facts, lines, start, i, file, head, ids, unresolved, groups);
    records++;
  }
  if (!records) throw new InputError("no function records: expected lspci -v/-vv/-vvv output", file);
  if (!text.endsWith("\n"))
    facts.warnings.push(
      `${file}:${lines.length}: the text does not end with a line end; the last record may be cut short`,
    );
  if (groups.size) facts.reportedGroups = groups;
  return facts;
}

function readRecord(
  facts: MachineFacts,
  lines: string[],
  start: number,
  end: number,
  file: string,
  head: RegExpExecArray,
  ids: () => PciIds,
  unresolved: Set<string>,
  groups: Map<number, string[]>,
): void {
  const n0 = start + 1;
  const domain = head[1] ? hex(head[1]) : 0;
  const slot = hex(head[3]);
  if (slot > 0x1f) throw new InputError(`device number ${head[3]} is above 1f`, `${file}:${n0}`);
  const bus = hex(head[2]);
  const devfn = devfnOf(slot, Number(head[4]));
  const src = (n: number, field?: string): ProvenanceSource => ({ file, line: n, field });
  const key = `${busKey(domain, bus)}:${head[3].toLowerCase()}.${head[4]}`;
  const prev = facts.functions.get(key);
  if (prev)
    throw new InputError(
      `function ${key} appears twice (first at line ${prev.source.line})`,
      `${file}:${n0}`,
    );
  const f = functionAt(facts, domain, bus, devfn, src(n0));
  const set = <K extends Parameters<typeof setFact>[2]>(
    k: K,
    v: Parameters<typeof setFact<K>>[3],
    n: number,
    field?: string,
    status: "stated" | "derived" = "stated",
  ) => setFact(facts, f, k, v, src(n, field), status);

  // Header: "<class> [cccc]: <vendor> <device> [vvvv:dddd] (rev rr) (prog-if pp [name])"
  let rest = head[5];
  const colon = rest.indexOf(": ");
  if (colon < 0)
    throw new InputError(
      `function ${key}: expected "<class>: <vendor> <device>" after the address`,
      `${file}:${n0}`,
    );
  const classPart = rest.slice(0, colon);
  rest = rest.slice(colon + 2);
  let progIf = 0;
  let progIfStated = false;
  const pi = /\s*\(prog-if ([0-9a-fA-F]{2})(?: \[[^\]]*\])?\)\s*$/.exec(rest);
  if (pi) {
    progIf = hex(pi[1]);
    progIfStated = true;
    rest = rest.slice(0, pi.index);
  }
  const rev = /\s*\(rev ([0-9a-fA-F]{2})\)\s*$/.exec(rest);
  if (rev) {
    set("revision", hex(rev[1]), n0, "rev");
    rest = rest.slice(0, rev.index);
  }
  applyNames(facts, f, rest, src(n0, "name"), ids, unresolved);
  const cls = /^(.*?)\s*\[([0-9a-fA-F]{4})\]$/.exec(classPart);
  if (cls) set("classCode", (hex(cls[2]) << 8) | progIf, n0, progIfStated ? "[class] (prog-if)" : "[class]");
  else {
    const c16 = ids().classFromName(classPart);
    if (c16 !== undefined)
      setFact(
        facts,
        f,
        "classCode",
        (c16 << 8) | progIf,
        { ...src(n0, "class name"), note: `looked up in pci.ids ${ids().version}` },
        "derived",
      );
    else facts.warnings.push(`${file}:${n0}: class "${classPart}" is not in pci.ids; class unknown`);
  }

  let cap: CapBlock | null = null;
  const caps: CapBlock[] = [];
  let capsListed = false;
  let capsDenied = false;
  let statusCap: boolean | undefined;
  const bars: BarFact[] = [];
  let l2Label: { cap: CapBlock; label: string } | null = null;
  for (let j = start + 1; j < end; j++) {
    const n = j + 1;
    const raw = lines[j];
    const ind = indentOf(raw);
    const t = raw.trim();
    if (ind < 12) {
      cap = null;
      l2Label = null;
      const m = /^([A-Za-z][A-Za-z0-9 /-]*?):\s*(.*)$/.exec(t);
      if (!m) continue; // e.g. "Memory at … " under lspci -v, "Expansion ROM at …"
      const [, label, value] = m;
      if (label === "Capabilities") {
        if (/^<access denied>/.test(value)) {
          capsDenied = true;
          continue;
        }
        const cm = /^\[([0-9a-fA-F]+)(?: v\d+)?\]\s*(.*)$/.exec(value);
        if (!cm) continue;
        capsListed = true;
        cap = { name: cm[2], line: n, sections: new Map(), body: "" };
        caps.push(cap);
      } else if (label === "Subsystem") {
        const s = /\[([0-9a-fA-F]{4}):([0-9a-fA-F]{4})\]\s*$/.exec(value);
        if (s) {
          set("subsystemVendor", hex(s[1]), n, "Subsystem");
          set("subsystemDevice", hex(s[2]), n, "Subsystem");
        }
      } else if (label === "Control") {
        let cmd = 0;
        for (const [name, bit] of [
          ["I/O", 0x1],
          ["Mem", 0x2],
          ["BusMaster", 0x4],
          ["ParErr", 0x40],
          ["SERR", 0x100],
          ["DisINTx", 0x400],
        ] as const) {
          const b = new RegExp(`(?:^|\\s)${name.replace("/", "\\/")}([+-])`).exec(value);
          if (b?.[1] === "+") cmd |= bit;
        }
        set("command", cmd, n, "Control");
      } else if (label === "Status") {
        const s = /\bCap([+-])/.exec(value);
        if (s) statusCap = s[1] === "+";
      } else if (label === "Flags") {
        // lspci -v: "bus master, fast devsel, latency 0, IRQ 16, NUMA node 0, IOMMU group 3"
        const numa = /NUMA node (\d+)/.exec(value);
        if (numa) set("numaNode", Number(numa[1]), n, "Flags");
        const g = /IOMMU group (\d+)/.exec(value);
        if (g) addGroup(groups, Number(g[1]), f.bdf, facts, f, n, file);
      } else if (label === "NUMA node") {
        if (/^\d+$/.test(value)) set("numaNode", Number(value), n, "NUMA node");
      } else if (label === "IOMMU group") {
        if (/^\d+$/.test(value)) addGroup(groups, Number(value), f.bdf, facts, f, n, file);
      } else if (label === "Kernel driver in use") {
        if (value) set("driver", value, n, "Kernel driver in use");
      } else if (label === "Bus") {
        const b = /primary=([0-9a-fA-F]{2}), secondary=([0-9a-fA-F]{2}), subordinate=([0-9a-fA-F]{2})/.exec(
          value,
        );
        if (!b)
          throw new InputError(
            `function ${key}: expected "Bus: primary=bb, secondary=bb, subordinate=bb"`,
            `${file}:${n}`,
          );
        const sec = hex(b[2]);
        const sub = hex(b[3]);
        set("bridge", true, n, "Bus");
        if (sec === 0 && sub === 0)
          facts.warnings.push(
            `${file}:${n}: bridge ${f.bdf} has no bus numbers assigned (secondary=00); nothing below it is placed`,
          );
        else if (sec <= bus || sub < sec)
          facts.warnings.push(
            `${file}:${n}: bridge ${f.bdf} has secondary=${b[2]} subordinate=${b[3]} on bus ${head[2]}; bus numbers ignored`,
          );
        else {
          set("secondary", sec, n, "Bus: secondary");
          set("subordinate", sub, n, "Bus: subordinate");
        }
      } else if (/^Region \d$/.test(label)) {
        const bar = barOf(label, value);
        if (bar) bars.push(bar);
      }
      continue;
    }
    if (!cap) continue;
    if (ind < 20) {
      const m = /^([A-Za-z][A-Za-z0-9 ]*?):\s*(.*)$/.exec(t);
      if (m) {
        cap.sections.set(m[1], { text: m[2], line: n });
        l2Label = { cap, label: m[1] };
      } else l2Label = null;
    } else if (l2Label) {
      const s = l2Label.cap.sections.get(l2Label.label)!;
      s.text += ` ${t}`;
    }
    cap.body += ` ${t}`;
  }
  if (bars.length) set("bars", bars, n0 + 1, "Region");

  // Capabilities
  let pcieType: number | null | undefined;
  let acsSeen = false;
  for (const c of caps) {
    const sec = (k: string) => c.sections.get(k);
    const exp = /^Express (?:\(v\d+\) )?(.+?)(?: \(Slot[+-]\))?(?:, .*)?$/.exec(c.name);
    if (exp) {
      const t = LSPCI_PCIE_TYPES[exp[1]];
      if (t === undefined) {
        facts.warnings.push(
          `${file}:${c.line}: PCIe type "${exp[1]}" not known; ${f.bdf} taken as an endpoint`,
        );
        pcieType = PCI_EXP_TYPE.ENDPOINT;
        setFact(facts, f, "pcieType", pcieType, src(c.line, "Express"), "inferred");
      } else {
        pcieType = t;
        set("pcieType", t, c.line, "Express");
      }
      const devCap = sec("DevCap");
      if (devCap) {
        const mp = /MaxPayload (\d+) bytes/.exec(devCap.text);
        if (mp) set("mpsSupported", Number(mp[1]), devCap.line, "DevCap MaxPayload");
        const flr = /FLReset([+-])/.exec(devCap.text);
        if (flr) set("flr", flr[1] === "+", devCap.line, "DevCap FLReset");
      }
      const devCtl = sec("DevCtl");
      if (devCtl) {
        const mp = /MaxPayload (\d+) bytes, MaxReadReq (\d+) bytes/.exec(devCtl.text);
        if (mp) {
          set("mps", Number(mp[1]), devCtl.line, "DevCtl MaxPayload");
          set("mrrs", Number(mp[2]), devCtl.line, "DevCtl MaxReadReq");
        }
        const et = /ExtTag([+-])/.exec(devCtl.text);
        if (et) set("extTag", et[1] === "+", devCtl.line, "DevCtl ExtTag");
      }
      const lnkCap = sec("LnkCap");
      const lc = lnkCap && linkOf(lnkCap.text);
      if (lnkCap && lc) {
        set("linkCap", { speed: lc.speed, width: lc.width }, lnkCap.line, "LnkCap");
        if (lc.port !== undefined && lc.port <= 255) set("portNumber", lc.port, lnkCap.line, "LnkCap Port #");
      }
      const lnkSta = sec("LnkSta");
      const ls = lnkSta && linkOf(lnkSta.text);
      if (lnkSta && ls) set("link", { speed: ls.speed, width: ls.width }, lnkSta.line, "LnkSta");
    } else if (/^Access Control Services/.test(c.name)) {
      const capS = sec("ACSCap");
      const ctlS = sec("ACSCtl");
      const capBits = capS ? acsBits(capS.text) : null;
      const ctlBits = ctlS ? acsBits(ctlS.text) : null;
      if (capBits !== null && ctlBits !== null) {
        acsSeen = true;
        set("acs", { cap: capBits, ctrl: ctlBits }, ctlS!.line, "ACSCap/ACSCtl");
      } else if (capsListed)
        facts.warnings.push(
          `${file}:${c.line}: ${f.bdf} has an ACS capability without ACSCap/ACSCtl lines (lspci -vv needed); ACS unknown`,
        );
      acsSeen = true;
    } else if (/^Power Management version/.test(c.name)) {
      const st = sec("Status");
      const ns = st && /NoSoftRst([+-])/.exec(st.text);
      if (ns) set("pm", { noSoftReset: ns[1] === "+" }, st!.line, "PM Status NoSoftRst");
    } else if (/^MSI-X:/.test(c.name)) {
      const m = /Count=(\d+)/.exec(c.name);
      if (m) set("msix", Number(m[1]), c.line, "MSI-X Count");
    } else if (/^Alternative Routing-ID Interpretation/.test(c.name)) set("ari", true, c.line, "ARI");
    else if (/^Address Translation Service/.test(c.name)) set("ats", true, c.line, "ATS");
    else if (/^Device Serial Number ([0-9a-fA-F-]+)/.test(c.name)) {
      const hexStr = /^Device Serial Number ([0-9a-fA-F-]+)/.exec(c.name)![1].replace(/-/g, "");
      if (/^[0-9a-fA-F]{1,16}$/.test(hexStr))
        set("serial", BigInt(`0x${hexStr}`), c.line, "Device Serial Number");
    } else if (/^Single Root I\/O Virtualization/.test(c.name)) {
      const tot = /Total VFs: (\d+), Number of VFs: (\d+)/.exec(c.body);
      const off = /VF offset: (\d+), stride: (\d+), Device ID: ([0-9a-fA-F]{4})/.exec(c.body);
      const ctl = sec("IOVCtl");
      if (tot && off)
        set(
          "sriov",
          {
            totalVfs: Number(tot[1]),
            numVfs: Number(tot[2]),
            vfOffset: Number(off[1]),
            vfStride: Number(off[2]),
            vfDevice: hex(off[3]),
            enabled: ctl ? /Enable\+/.test(ctl.text) : Number(tot[2]) > 0,
          },
          c.line,
          "SR-IOV",
        );
    }
  }
  // What a complete capability list leaves out is stated by its absence.
  const complete = capsListed && !capsDenied;
  if (pcieType === undefined && (complete || statusCap === false))
    setFact(
      facts,
      f,
      "pcieType",
      null,
      { ...src(n0, "Capabilities"), note: "no Express capability listed" },
      "derived",
    );
  const isPcie = pcieType !== undefined && pcieType !== null;
  if (!acsSeen && complete && isPcie)
    setFact(
      facts,
      f,
      "acs",
      null,
      { ...src(n0, "Capabilities"), note: "no ACS capability listed" },
      "derived",
    );

  // Bridges: the "Bus:" line, else the class says so.
  if (!f.attrs.bridge) {
    const c = f.attrs.classCode?.value;
    if (c !== undefined && (c >> 8 === 0x0604 || c >> 8 === 0x0609))
      set("bridge", true, n0, "class", "derived");
  }
}

function addGroup(
  groups: Map<number, string[]>,
  id: number,
  bdf: string,
  facts: MachineFacts,
  f: FunctionFacts,
  n: number,
  file: string,
): void {
  setFact(facts, f, "iommuGroup", id, { file, line: n, field: "IOMMU group" });
  const l = groups.get(id);
  if (l) l.push(bdf);
  else groups.set(id, [bdf]);
}

/** "Region 2: Memory at f6000000 (64-bit, prefetchable) [size=32M]" and friends. */
function barOf(label: string, value: string): BarFact | null {
  const index = Number(label.slice(7));
  const size = /\[size=(\d+)([KMGT]?)\]/.exec(value);
  if (!size) return null;
  const bytes = BigInt(size[1]) * SIZE_UNITS[size[2]];
  const mem = /^Memory at (<[a-z]+>|[0-9a-fA-F]+) \((32|64)-bit, (non-)?prefetchable\)/.exec(value);
  if (mem) {
    if (mem[1].startsWith("<") || /\[disabled\]/.test(value)) return null;
    return {
      index,
      type: mem[2] === "64" ? "mem64" : "mem32",
      prefetch: !mem[3],
      address: BigInt(`0x${mem[1]}`),
      size: bytes,
    };
  }
  const io = /^I\/O ports at (<[a-z]+>|[0-9a-fA-F]+)/.exec(value);
  if (io && !io[1].startsWith("<") && !/\[disabled\]/.test(value))
    return { index, type: "io", prefetch: false, address: BigInt(`0x${io[1]}`), size: bytes };
  return null;
}

/* ------------------------------------------------------------------------------------------ */
/* lspci -mm                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/** Splits an `lspci -mm` line into its address, quoted fields and -r/-p options. */
function mmFields(line: string): { bdf: string; quoted: string[]; opts: Map<string, string> } | null {
  const m = /^(\S+)\s+(.*)$/.exec(line);
  if (!m) return null;
  const quoted: string[] = [];
  const opts = new Map<string, string>();
  let s = m[2];
  while (s.length) {
    s = s.replace(/^\s+/, "");
    if (!s) break;
    if (s[0] === '"') {
      const end = s.indexOf('"', 1);
      if (end < 0) return null;
      quoted.push(s.slice(1, end));
      s = s.slice(end + 1);
    } else {
      const o = /^-([a-z])(\S*)/.exec(s);
      if (!o) return null;
      opts.set(o[1], o[2]);
      s = s.slice(o[0].length);
    }
  }
  return { bdf: m[1], quoted, opts };
}

/** `lspci -mm` / `-nnmm` / `-nnmmD`: ids, class, revision — no tree. */
export function parseLspciMm(text: string, file = "<lspci -mm>", opts: LspciTextOptions = {}): MachineFacts {
  const facts = emptyFacts(file, "lspci-mm");
  const ids = () => opts.pciIds ?? defaultPciIds();
  const unresolved = new Set<string>();
  const lines = linesOf(text);
  let count = 0;
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    if (!lines[i].trim()) continue;
    const r = mmFields(lines[i]);
    const bdf = r && /^(?:([0-9a-fA-F]{4,8}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/.exec(r.bdf);
    if (!r || !bdf || r.quoted.length < 3)
      throw new InputError(
        `expected 'bb:dd.f "class" "vendor" "device" [-rRR] [-pPP] "subvendor" "subdevice"'`,
        `${file}:${n}`,
      );
    const slot = hex(bdf[3]);
    if (slot > 0x1f) throw new InputError(`device number ${bdf[3]} is above 1f`, `${file}:${n}`);
    const domain = bdf[1] ? hex(bdf[1]) : 0;
    const key = `${busKey(domain, hex(bdf[2]))}:${bdf[3].toLowerCase()}.${bdf[4]}`;
    if (facts.functions.has(key)) throw new InputError(`function ${key} appears twice`, `${file}:${n}`);
    const f = functionAt(facts, domain, hex(bdf[2]), devfnOf(slot, Number(bdf[4])), { file, line: n });
    const src = (field: string): ProvenanceSource => ({ file, line: n, field });
    const idOf = (s: string) => /\[([0-9a-fA-F]{4})\]$/.exec(s.trim());
    const [clsText, venText, devText] = r.quoted;
    const progIf = r.opts.has("p") && /^[0-9a-fA-F]{2}$/.test(r.opts.get("p")!) ? hex(r.opts.get("p")!) : 0;
    const c = idOf(clsText);
    if (c) setFact(facts, f, "classCode", (hex(c[1]) << 8) | progIf, src("class"));
    else {
      const c16 = ids().classFromName(clsText);
      if (c16 !== undefined)
        setFact(
          facts,
          f,
          "classCode",
          (c16 << 8) | progIf,
          { ...src("class name"), note: `looked up in pci.ids ${ids().version}` },
          "derived",
        );
    }
    const v = idOf(venText);
    const d = idOf(devText);
    if (v && d) {
      setFact(facts, f, "vendor", hex(v[1]), src("vendor"));
      setFact(facts, f, "device", hex(d[1]), src("device"));
      setFact(
        facts,
        f,
        "name",
        `${venText.replace(/\s*\[[0-9a-fA-F]{4}\]$/, "")} ${devText.replace(/\s*\[[0-9a-fA-F]{4}\]$/, "")}`,
        src("name"),
      );
    } else applyNames(facts, f, `${venText} ${devText}`, src("name"), ids, unresolved);
    const rev = r.opts.get("r");
    if (rev && /^[0-9a-fA-F]{2}$/.test(rev)) setFact(facts, f, "revision", hex(rev), src("-r"));
    const sv = r.quoted[3] !== undefined ? idOf(r.quoted[3]) : null;
    const sd = r.quoted[4] !== undefined ? idOf(r.quoted[4]) : null;
    if (sv && sd) {
      setFact(facts, f, "subsystemVendor", hex(sv[1]), src("subsystem vendor"));
      setFact(facts, f, "subsystemDevice", hex(sd[1]), src("subsystem device"));
    }
    const cls = f.attrs.classCode?.value;
    if (cls !== undefined && (cls >> 8 === 0x0604 || cls >> 8 === 0x0609))
      setFact(facts, f, "bridge", true, src("class"), "derived");
    count++;
  }
  if (!count) throw new InputError("no function lines: expected lspci -mm output", file);
  return facts;
}
