/**
 * NCCL / RCCL topology XML (`<system version=…>`, the NCCL_TOPO_FILE / NCCL_TOPO_DUMP_FILE
 * format) → {@link MachineFacts}.
 *
 * What NCCL writes, and what that means for the tree:
 * - `<cpu numaid vendor familyid modelid>` is a NUMA node's root complex; its `<pci>` children
 *   sit either on a root bus or right below a root port, which NCCL leaves out (it records each
 *   PCI device's grand-parent in sysfs, NCCL `ncclTopoGetXmlFromSys`).
 * - a `<pci>` inside a `<pci>` is two levels down: the outer one is a switch's upstream port, the
 *   downstream port between them is left out.
 * - `link_speed` / `link_width` are the link's maximum (the lower of the device's and its port's
 *   `max_link_*`), not the negotiated state; "" and "Unknown" mean unknown, and hand-written files
 *   carry variants such as "16 GT/s", "16.0 GT/s PCIe" or "32 GT/s PCIe/s".
 * - hand-written files (cloud VM shapes) add virtual switches such as `ffff:ff:01.0` with vendor
 *   0xffff, whose children may live in several PCI domains.
 *
 * The importer makes the tree whole: the left-out root ports and downstream ports are invented
 * (placeholders) with made-up bus numbers that clash with nothing stated, virtual or inconsistent
 * bus ids are renumbered, and every such step is listed in the warnings and in `renamed`.
 */
import { InputError } from "../core/errors.js";
import { formatBdf } from "../pci/bdf.js";
import type { CpuInfo } from "../pci/fabric.js";
import { PCI_EXP_TYPE } from "../pci/regs.js";
import { parseXml, type XmlNode } from "./hwloc.js";
import { busKey, emptyFacts, type FunctionFacts, functionAt, type MachineFacts, setFact } from "./merge.js";
import type { ProvenanceSource } from "./provenance.js";

interface Addr {
  domain: number;
  bus: number;
  devfn: number;
}

interface PNode {
  node: XmlNode;
  busid: string;
  addr: Addr | null;
  virtual: boolean;
  children: PNode[];
  numa: number;
}

const BUSID_RE = /^([0-9a-fA-F]{1,8}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/;

function addrOf(busid: string): Addr | null {
  const m = BUSID_RE.exec(busid.trim());
  if (!m) return null;
  const slot = Number.parseInt(m[3], 16);
  if (slot > 0x1f) return null;
  return {
    domain: Number.parseInt(m[1], 16),
    bus: Number.parseInt(m[2], 16),
    devfn: (slot << 3) | Number(m[4]),
  };
}

/** "16 GT/s", "16.0 GT/s PCIe", "32 GT/s PCIe/s", "2.5 GT/s" → GT/s; "" / "Unknown" → 0. */
export function parseNcclLinkSpeed(s: string | undefined): { speed: number; ok: boolean } {
  const t = (s ?? "").trim();
  if (t === "" || /^unknown$/i.test(t)) return { speed: 0, ok: true };
  const m = /^([\d.]+)\s*GT\/s\b/i.exec(t);
  if (!m) return { speed: 0, ok: false };
  const v = Number.parseFloat(m[1]);
  return Number.isFinite(v) ? { speed: v, ok: true } : { speed: 0, ok: false };
}

const hexAttr = (s: string | undefined): number | undefined => {
  if (s === undefined) return undefined;
  const m = /^(?:0x)?([0-9a-fA-F]{1,8})$/.exec(s.trim());
  return m ? Number.parseInt(m[1], 16) : undefined;
};

/** NCCL writes "0x060400" (24 bits); hand-written files sometimes give "0x0604". */
function class24(s: string | undefined): number | undefined {
  const m = /^(?:0x)?([0-9a-fA-F]{1,6})$/.exec((s ?? "").trim());
  if (!m) return undefined;
  const c = Number.parseInt(m[1], 16);
  return m[1].length > 4 ? c : c << 8;
}

/** NCCL/RCCL topology XML text → facts. */
export function parseNcclXml(text: string, file = "<nccl topo.xml>"): MachineFacts {
  const roots = parseXml(text, file);
  const top = roots[0];
  if (!top) throw new InputError("empty XML document", file);
  if (top.tag === "graphs")
    throw new InputError(
      "this is an NCCL graph file (NCCL_GRAPH_DUMP_FILE: rings and trees of GPU indexes), not a topology; give the NCCL_TOPO_FILE / NCCL_TOPO_DUMP_FILE",
      `${file}:${top.line}`,
    );
  if (top.tag !== "system")
    throw new InputError(`expected an NCCL <system> document, found <${top.tag}>`, `${file}:${top.line}`);
  const facts = emptyFacts(file, `nccl-xml v${top.attrs.version ?? "?"}`);
  const cpus = top.children.filter((c) => c.tag === "cpu");
  if (!cpus.length) throw new InputError("no <cpu> element (truncated?)", `${file}:${top.line}`);

  let nonPcie = 0;
  const countLinks = (n: XmlNode) => {
    for (const c of n.children) {
      if (c.tag === "nvlink" || c.tag === "xgmi" || c.tag === "c2c") nonPcie++;
      countLinks(c);
    }
  };

  // CPU: the first <cpu> naming a vendor.
  for (const c of cpus) {
    const vendor = c.attrs.vendor;
    if (!vendor) continue;
    const fam = c.attrs.familyid;
    const model = c.attrs.modelid;
    const cpu: CpuInfo = {
      vendor,
      family: fam && /^\d+$/.test(fam) ? Number(fam) : 0,
      source: `NCCL topology ${file}`,
    };
    if (model && /^\d+$/.test(model)) cpu.model = Number(model);
    const src: ProvenanceSource = { file, line: c.line, field: "cpu vendor" };
    facts.cpu = { value: cpu, source: src, status: "stated" };
    facts.cpuSources = {
      vendor: src,
      family: { file, line: c.line, field: "cpu familyid" },
      model: { file, line: c.line, field: "cpu modelid" },
    };
    if (!fam)
      facts.warnings.push(`${file}:${c.line}: <cpu> without familyid; CPU family unknown (taken as 0)`);
    break;
  }

  // The <pci> trees.
  const trees: { cpu: XmlNode; numa: number; nodes: PNode[] }[] = [];
  const read = (n: XmlNode, numa: number): PNode => {
    const busid = n.attrs.busid;
    if (busid === undefined) throw new InputError("<pci> without busid", `${file}:${n.line}`);
    const addr = addrOf(busid);
    const virtual =
      n.attrs.vendor?.toLowerCase() === "0xffff" ||
      (addr !== null && addr.domain === 0xffff && addr.bus === 0xff);
    countLinks(n);
    return {
      node: n,
      busid,
      addr,
      virtual,
      numa,
      children: n.children.filter((c) => c.tag === "pci").map((c) => read(c, numa)),
    };
  };
  for (const c of cpus) {
    const numa = c.attrs.numaid !== undefined && /^\d+$/.test(c.attrs.numaid) ? Number(c.attrs.numaid) : -1;
    trees.push({ cpu: c, numa, nodes: c.children.filter((x) => x.tag === "pci").map((x) => read(x, numa)) });
    for (const x of c.children)
      if (x.tag === "nic")
        for (const net of x.children.filter((y) => y.tag === "net"))
          facts.warnings.push(
            `${file}:${net.line}: network ${net.attrs.name ?? "?"} is not attached to a PCI device in the file; skipped`,
          );
  }

  // Bus numbers stated anywhere stay reserved, so invented ones never collide with them.
  const used = new Map<number, Set<number>>();
  const reserve = (d: number, b: number) => {
    let s = used.get(d);
    if (!s) {
      s = new Set();
      used.set(d, s);
    }
    s.add(b);
  };
  const walkAll = (ns: PNode[], fn: (p: PNode) => void) => {
    for (const p of ns) {
      fn(p);
      walkAll(p.children, fn);
    }
  };
  for (const t of trees) walkAll(t.nodes, (p) => p.addr && !p.virtual && reserve(p.addr.domain, p.addr.bus));
  const newBus = (d: number, prefer?: number): number => {
    const s = used.get(d) ?? new Set<number>();
    if (prefer !== undefined && prefer >= 1 && prefer <= 0xff && !s.has(prefer)) {
      reserve(d, prefer);
      return prefer;
    }
    for (let b = 1; b <= 0xff; b++)
      if (!s.has(b)) {
        reserve(d, b);
        return b;
      }
    throw new InputError(
      `no free bus number left in PCI domain ${d.toString(16).padStart(4, "0")} for the bridges NCCL leaves out`,
      file,
    );
  };

  /** Who owns a bus: "root:<cpu index>" or the BDF of the bridge whose secondary it is. */
  const owner = new Map<string, string>();
  const invented = { rootPorts: 0, downstream: 0, rootBuses: 0 };
  const renames: string[] = [];

  const place = (domain: number, bus: number, devfn: number | null, src: ProvenanceSource): FunctionFacts => {
    let d = devfn;
    if (d === null || facts.functions.has(formatBdf({ segment: domain, bus, devfn: d }))) {
      d = -1;
      for (let x = 0; x < 256; x += 8)
        if (!facts.functions.has(formatBdf({ segment: domain, bus, devfn: x }))) {
          d = x;
          break;
        }
      if (d < 0)
        for (let x = 0; x < 256; x++)
          if (!facts.functions.has(formatBdf({ segment: domain, bus, devfn: x }))) {
            d = x;
            break;
          }
      if (d < 0) throw new InputError(`bus ${busKey(domain, bus)} is full`, `${src.file}:${src.line}`);
    }
    return functionAt(facts, domain, bus, d, src);
  };

  const placeholder = (
    domain: number,
    bus: number,
    secondary: number,
    type: number,
    parent: string | null,
    why: string,
  ): FunctionFacts => {
    const src: ProvenanceSource = { file, note: `placeholder: ${why}` };
    const f = place(domain, bus, null, src);
    f.placeholder = true;
    setFact(facts, f, "bridge", true, src, "inferred");
    setFact(facts, f, "classCode", 0x060400, src, "inferred");
    setFact(facts, f, "pcieType", type, src, "inferred");
    setFact(facts, f, "secondary", secondary, src, "inferred");
    setFact(facts, f, "subordinate", secondary, src, "inferred");
    setFact(facts, f, "parent", parent, src, "inferred");
    setFact(
      facts,
      f,
      "name",
      type === PCI_EXP_TYPE.ROOT_PORT
        ? "(root port, not in the NCCL file)"
        : "(downstream port, not in the NCCL file)",
      src,
      "inferred",
    );
    owner.set(busKey(domain, secondary), f.bdf);
    return f;
  };

  /** Root bus of one <cpu> in one domain (root complexes carry no bus number in NCCL's file). */
  const rootBusOf = new Map<string, number>();
  const rootBus = (cpuIdx: number, domain: number, numa: number, near: number, line: number): number => {
    const k = `${cpuIdx}:${domain}`;
    const have = rootBusOf.get(k);
    if (have !== undefined) return have;
    const b = newBus(domain, near > 0 ? near - 1 : undefined);
    rootBusOf.set(k, b);
    owner.set(busKey(domain, b), `root:${cpuIdx}`);
    invented.rootBuses++;
    facts.hostBridges.set(busKey(domain, b), {
      domain,
      bus: b,
      placeholder: true,
      numaNode:
        numa >= 0
          ? { value: numa, source: { file, line, field: "cpu numaid" }, status: "stated" }
          : undefined,
      source: { file, line, note: "root complex of this <cpu>; its bus number is made up" },
    });
    return b;
  };

  /** Sets a stated node's attributes. */
  const describe = (f: FunctionFacts, p: PNode) => {
    const a = p.node.attrs;
    const n = p.node.line;
    const src = (field: string): ProvenanceSource => ({ file, line: n, field });
    const cls = class24(a.class);
    if (cls !== undefined) setFact(facts, f, "classCode", cls, src("class"));
    const v = hexAttr(a.vendor);
    const d = hexAttr(a.device);
    if (v !== undefined && !p.virtual) setFact(facts, f, "vendor", v, src("vendor"));
    if (d !== undefined && !p.virtual) setFact(facts, f, "device", d, src("device"));
    const sv = hexAttr(a.subsystem_vendor);
    const sd = hexAttr(a.subsystem_device);
    if (sv !== undefined && !p.virtual) setFact(facts, f, "subsystemVendor", sv, src("subsystem_vendor"));
    if (sd !== undefined && !p.virtual) setFact(facts, f, "subsystemDevice", sd, src("subsystem_device"));
    const bridge = p.children.length > 0 || (cls !== undefined && cls >> 8 === 0x0604);
    setFact(
      facts,
      f,
      "bridge",
      bridge,
      src(p.children.length ? "nested <pci>" : "class"),
      p.children.length ? "derived" : "stated",
    );
    if (p.children.length)
      setFact(
        facts,
        f,
        "pcieType",
        PCI_EXP_TYPE.UPSTREAM,
        { ...src("nested <pci>"), note: "NCCL nests a device in its switch's upstream port" },
        "inferred",
      );
    const sp = parseNcclLinkSpeed(a.link_speed);
    if (!sp.ok)
      facts.warnings.push(`${file}:${n}: link_speed "${a.link_speed}" not understood; speed unknown`);
    const w = a.link_width !== undefined && /^\d+$/.test(a.link_width.trim()) ? Number(a.link_width) : 0;
    if (sp.speed > 0 || w > 0)
      setFact(
        facts,
        f,
        "linkCap",
        { speed: sp.speed, width: w },
        {
          file,
          line: n,
          field: "link_speed, link_width",
          note: `"${a.link_speed ?? ""}" x${a.link_width ?? "?"}: the link's maximum (NCCL writes the lower of both ends' max_link_*)`,
        },
      );
    if (p.numa >= 0) setFact(facts, f, "numaNode", p.numa, { file, line: n, field: "cpu numaid" });
    const labels: string[] = [];
    for (const c of p.node.children) {
      if (c.tag === "gpu")
        labels.push(
          `GPU ${c.attrs.dev ?? "?"}${c.attrs.gcn ? ` ${c.attrs.gcn}` : c.attrs.sm ? ` sm${c.attrs.sm}` : ""}`,
        );
      if (c.tag === "nic")
        for (const net of c.children.filter((x) => x.tag === "net"))
          labels.push(`NIC ${net.attrs.name ?? "?"}`);
    }
    if (p.virtual) labels.push("virtual switch");
    if (f.statedBdf) labels.push(`NCCL busid ${p.busid}`);
    if (labels.length) setFact(facts, f, "name", labels.join(", "), src("gpu/nic"));
  };

  /**
   * Places a node below `parent` (a placed function, or the <cpu> when null), keeping its bus id
   * when that is consistent, and its children below it.
   */
  const visit = (
    p: PNode,
    cpuIdx: number,
    parent: FunctionFacts | null,
    parentDomain: number | null,
    dspOf: Map<number, FunctionFacts>,
  ) => {
    const a = p.addr;
    const domain = parentDomain ?? (a && !p.virtual ? a.domain : (childDomain(p) ?? a?.domain ?? 0));
    const n = p.node.line;
    let keep =
      !!a &&
      !p.virtual &&
      a.domain === domain &&
      !facts.functions.has(formatBdf({ segment: a.domain, bus: a.bus, devfn: a.devfn }));
    let f: FunctionFacts;
    let up: FunctionFacts;
    if (parent === null) {
      // Bus 0 and host-bridge functions sit on a root bus (VMs put devices there directly).
      const onRoot = keep && (a!.bus === 0 || (class24(p.node.attrs.class) ?? 0) >> 8 === 0x0600);
      if (onRoot) {
        const k = busKey(domain, a!.bus);
        const o = owner.get(k);
        if (o === undefined || o === `root:${cpuIdx}` || o.startsWith("root:")) {
          owner.set(k, o ?? `root:${cpuIdx}`);
          if (!facts.hostBridges.has(k))
            facts.hostBridges.set(k, {
              domain,
              bus: a!.bus,
              numaNode:
                p.numa >= 0
                  ? { value: p.numa, source: { file, line: n, field: "cpu numaid" }, status: "stated" }
                  : undefined,
              source: { file, line: n, note: "root bus of a device NCCL lists directly under its <cpu>" },
            });
          f = place(domain, a!.bus, a!.devfn, { file, line: n, field: "busid" });
          setFact(facts, f, "parent", null, { file, line: n, field: "nesting" });
          describe(f, p);
          for (const c of p.children) visit(c, cpuIdx, f, domain, new Map());
          return;
        }
        keep = false;
      }
      // Below a root port NCCL leaves out.
      const rb = rootBus(cpuIdx, domain, p.numa, keep ? a!.bus : 0, n);
      const k = keep ? busKey(domain, a!.bus) : "";
      let sec: number;
      if (keep && owner.get(k) === undefined) sec = a!.bus;
      else if (keep && dspOf.has(a!.bus)) sec = a!.bus;
      else {
        keep = false;
        sec = newBus(domain);
      }
      let rp = dspOf.get(sec);
      if (!rp) {
        rp = placeholder(
          domain,
          rb,
          sec,
          PCI_EXP_TYPE.ROOT_PORT,
          null,
          "NCCL lists a device's grand-parent; the root port above it is not in the file",
        );
        dspOf.set(sec, rp);
        invented.rootPorts++;
      }
      f = place(domain, sec, keep ? a!.devfn : 0, { file, line: n, field: "busid" });
      setFact(facts, f, "parent", rp.bdf, {
        file,
        line: n,
        field: "nesting",
        note: "below an invented root port",
      });
      up = rp;
    } else {
      // Two levels below `parent`: a downstream port NCCL leaves out sits in between.
      let psec = parent.attrs.secondary?.value;
      if (psec === undefined) {
        psec = newBus(domain, parent.bus + 1);
        setFact(
          facts,
          parent,
          "secondary",
          psec,
          { file, note: "made up: NCCL does not give a switch's internal bus" },
          "inferred",
        );
        setFact(facts, parent, "subordinate", psec, { file, note: "made up" }, "inferred");
        owner.set(busKey(domain, psec), parent.bdf);
      }
      const k = keep ? busKey(domain, a!.bus) : "";
      let sec: number;
      if (
        keep &&
        a!.bus !== psec &&
        a!.bus !== parent.bus &&
        (owner.get(k) === undefined || dspOf.has(a!.bus))
      )
        sec = a!.bus;
      else {
        keep = false;
        sec = newBus(domain);
      }
      let dsp = dspOf.get(sec);
      if (!dsp) {
        dsp = placeholder(
          domain,
          psec,
          sec,
          PCI_EXP_TYPE.DOWNSTREAM,
          parent.bdf,
          "NCCL nests a device in its switch's upstream port; the downstream port between is not in the file",
        );
        dspOf.set(sec, dsp);
        invented.downstream++;
      }
      f = place(domain, sec, keep ? a!.devfn : 0, { file, line: n, field: "busid" });
      setFact(facts, f, "parent", dsp.bdf, {
        file,
        line: n,
        field: "nesting",
        note: "below an invented downstream port",
      });
      up = dsp;
    }
    if (!keep || !a || f.bdf !== formatBdf({ segment: a.domain, bus: a.bus, devfn: a.devfn })) {
      f.statedBdf = p.busid;
      facts.renamed.set(p.busid, f.bdf);
      renames.push(`${p.busid} (line ${n}) → ${f.bdf}`);
    }
    describe(f, p);
    // The invented port is the other end of the link NCCL states on the device.
    const lc = f.attrs.linkCap?.value;
    if (lc && !up.attrs.linkCap)
      setFact(
        facts,
        up,
        "linkCap",
        lc,
        {
          file,
          line: n,
          field: "link_speed, link_width",
          note: `the link to ${f.bdf}, stated on the device's end`,
        },
        "inferred",
      );
    const mine = new Map<number, FunctionFacts>();
    for (const c of p.children) visit(c, cpuIdx, f, domain, mine);
  };

  /** The one domain all of a virtual node's stated children live in, if there is one. */
  const childDomain = (p: PNode): number | null => {
    const ds = new Set<number>();
    walkAll(p.children, (c) => c.addr && !c.virtual && ds.add(c.addr.domain));
    return ds.size === 1 ? [...ds][0] : null;
  };

  trees.forEach((t, i) => {
    const rootPorts = new Map<number, FunctionFacts>();
    for (const p of t.nodes) {
      // Children of a virtual switch in several domains cannot keep their ids under one switch.
      if (p.virtual && childDomain(p) === null && p.children.length)
        facts.warnings.push(
          `${file}:${p.node.line}: virtual switch ${p.busid} groups devices of several PCI domains; they are renumbered into domain ${(p.addr?.domain ?? 0).toString(16).padStart(4, "0")} below it`,
        );
      visit(p, i, null, null, rootPorts);
    }
  });

  if (invented.rootPorts || invented.downstream)
    facts.warnings.push(
      `${file}: NCCL leaves root ports and switch downstream ports out; invented ${invented.rootPorts} root port(s) on ${invented.rootBuses} made-up root bus(es) and ${invented.downstream} downstream port(s), with bus numbers that clash with none in the file`,
    );
  if (renames.length)
    facts.warnings.push(
      `${file}: renumbered ${renames.length} bus id(s) NCCL gives that cannot be placed as stated: ${renames.join("; ")}`,
    );
  if (nonPcie)
    facts.warnings.push(
      `${file}: ${nonPcie} NVLink/xGMI/C2C link element(s) are not PCIe and are not modelled`,
    );
  return facts;
}
