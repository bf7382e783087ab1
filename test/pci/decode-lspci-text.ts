/**
 * Test helper: reads `lspci -vvv -n -D` text (pciutils 3.9) into the same fields
 * src/pci/decode.ts produces, and compares the two field by field. Only what lspci printed is
 * compared; a field our decoder has and lspci did not print is reported as such.
 */

import type { DecodedConfig } from "../../src/pci/decode.js";
import type { AcsBitName } from "../../src/pci/regs.js";

export interface LspciCap {
  offset: number;
  version: number | null;
  title: string;
  body: string[];
}

export interface LspciFunction {
  bdf: string;
  headerLine: string;
  top: string[];
  caps: LspciCap[];
}

/** A function line, with or without the domain (lspci leaves it out without -D when all are 0000). */
const FUNC_RE = /^((?:[0-9a-f]{4,8}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) /;

/** Splits lspci -vvv -D output into functions with their top-level lines and capability bodies. */
export function parseLspciVvv(text: string): Map<string, LspciFunction> {
  const out = new Map<string, LspciFunction>();
  let cur: LspciFunction | null = null;
  let cap: LspciCap | null = null;
  for (const line of text.split("\n")) {
    const m = FUNC_RE.exec(line);
    if (m) {
      const bdf = m[1].length === 7 ? `0000:${m[1]}` : m[1];
      cur = { bdf, headerLine: line, top: [], caps: [] };
      cap = null;
      out.set(bdf, cur);
      continue;
    }
    if (!cur || line === "") continue;
    const c = /^\tCapabilities: \[([0-9a-f]+)(?: v(\d+))?\] (.*)$/.exec(line);
    if (c) {
      cap = { offset: Number.parseInt(c[1], 16), version: c[2] ? Number(c[2]) : null, title: c[3], body: [] };
      cur.caps.push(cap);
      continue;
    }
    if (/^\t[^\t]/.test(line)) {
      cap = null;
      cur.top.push(line.slice(1));
      continue;
    }
    if (cap) cap.body.push(line);
  }
  return out;
}

/** The text of register `label` ("DevCap", "LnkSta2", …) with its continuation lines, or null. */
export function register(body: string[], label: string): string | null {
  const i = body.findIndex((l) => l.startsWith(`\t\t${label}:`));
  if (i < 0) return null;
  const parts = [body[i].slice(label.length + 3)];
  for (let j = i + 1; j < body.length && body[j].startsWith("\t\t\t"); j++) parts.push(body[j]);
  return parts.join(" ").replace(/\s+/g, " ").trim();
}

/** `Name+` / `Name-` flags in a register's text. */
export function flags(text: string): Map<string, boolean> {
  const m = new Map<string, boolean>();
  for (const f of text.matchAll(/(?:^|[\s,;:])([A-Za-z0-9<>][\w/<>-]*?)([+-])(?=[\s,;]|$)/g))
    m.set(f[1], f[2] === "+");
  return m;
}

const speed = (s: string): number | null => (s === "unknown" ? null : Number.parseFloat(s));

export interface FieldResult {
  field: string;
  ours: unknown;
  lspci: unknown;
}

/** A comparison session: counts every field compared and keeps every mismatch. */
export class Comparison {
  compared = 0;
  readonly mismatches: (FieldResult & { bdf: string })[] = [];
  readonly fieldsSeen = new Set<string>();
  constructor(readonly source: string) {}
  eq(bdf: string, field: string, ours: unknown, lspci: unknown): void {
    this.compared++;
    this.fieldsSeen.add(field.replace(/\[[^\]]*\]/g, "[]"));
    if (JSON.stringify(ours) !== JSON.stringify(lspci)) this.mismatches.push({ bdf, field, ours, lspci });
  }
}

const ACS_WORDS: [AcsBitName, string][] = [
  ["SV", "SrcValid"],
  ["TB", "TransBlk"],
  ["RR", "ReqRedir"],
  ["CR", "CmpltRedir"],
  ["UF", "UpstreamFwd"],
  ["EC", "EgressCtrl"],
  ["DT", "DirectTrans"],
];

/** Compares one decoded function with lspci's text for it. */
export function compareFunction(cmp: Comparison, d: DecodedConfig, l: LspciFunction, devfn: number): void {
  const bdf = l.bdf;
  const h = d.header;
  // Header: "dddd:bb:dd.f cccc: vvvv:dddd (rev rr) (prog-if pp …)"
  const hm =
    /^\S+ ([0-9a-f]{4}): ([0-9a-f]{4}):([0-9a-f]{4})(?: \(rev ([0-9a-f]{2})\))?(?: \(prog-if ([0-9a-f]{2}))?/.exec(
      l.headerLine,
    ) ??
    // -nn: "00:1f.2 SATA controller [0106]: Intel … [AHCI mode] [8086:2922] (rev 02) (prog-if 01 [AHCI 1.0])"
    /^\S+ .*?\[([0-9a-f]{4})\]: .*\[([0-9a-f]{4}):([0-9a-f]{4})\](?: \(rev ([0-9a-f]{2})\))?(?: \(prog-if ([0-9a-f]{2}))?/.exec(
      l.headerLine,
    );
  if (hm) {
    cmp.eq(bdf, "header.class", h.classCode >> 8, Number.parseInt(hm[1], 16));
    cmp.eq(bdf, "header.vendor", h.vendor, Number.parseInt(hm[2], 16));
    cmp.eq(bdf, "header.device", h.device, Number.parseInt(hm[3], 16));
    cmp.eq(bdf, "header.revision", h.revision, hm[4] ? Number.parseInt(hm[4], 16) : 0);
    cmp.eq(bdf, "header.progIf", h.progIf, hm[5] ? Number.parseInt(hm[5], 16) : 0);
  }
  for (const t of l.top) {
    if (t.startsWith("Control:")) {
      const f = flags(t);
      cmp.eq(bdf, "header.command.io", h.command.io, f.get("I/O"));
      cmp.eq(bdf, "header.command.mem", h.command.mem, f.get("Mem"));
      cmp.eq(bdf, "header.command.busMaster", h.command.busMaster, f.get("BusMaster"));
      cmp.eq(bdf, "header.command.disIntx", h.command.disIntx, f.get("DisINTx"));
    } else if (t.startsWith("Status:")) {
      cmp.eq(bdf, "header.status.cap", h.status.cap, flags(t).get("Cap"));
    } else if (t.startsWith("Bus: ")) {
      const b = /primary=([0-9a-f]+), secondary=([0-9a-f]+), subordinate=([0-9a-f]+), sec-latency=(\d+)/.exec(
        t,
      );
      if (b)
        cmp.eq(bdf, "header.bus", h.bus, {
          primary: Number.parseInt(b[1], 16),
          secondary: Number.parseInt(b[2], 16),
          subordinate: Number.parseInt(b[3], 16),
          secLatency: Number(b[4]),
        });
    } else if (t.startsWith("Subsystem: ") && h.headerType === 0) {
      const s = /([0-9a-f]{4}):([0-9a-f]{4})\]?$/.exec(t);
      if (s)
        cmp.eq(bdf, "header.subsystem", h.subsystem, {
          vendor: Number.parseInt(s[1], 16),
          device: Number.parseInt(s[2], 16),
        });
    }
  }
  // Capability lists: offsets, ids (through lspci's headings) and versions.
  const std = l.caps.filter((c) => c.offset < 0x100 && c.version === null);
  const ext = l.caps.filter((c) => !std.includes(c));
  const stdListed = std.filter((c) => !/^<(access denied|chain looped|chain broken)>/.test(c.title));
  cmp.eq(
    bdf,
    "capabilities[].offset",
    d.capabilities.map((c) => c.offset),
    stdListed.map((c) => c.offset),
  );
  cmp.eq(
    bdf,
    "capabilities[].name",
    d.capabilities.map((c) => c.name),
    stdListed.map((c, i) =>
      d.capabilities[i] && c.title.startsWith(d.capabilities[i].name) ? d.capabilities[i].name : c.title,
    ),
  );
  // lspci prints "<access denied>" without an offset when it cannot read the entry at all.
  const end =
    std.find((c) => /^<(access denied|chain looped|chain broken)>/.test(c.title))?.title ??
    (l.top.includes("Capabilities: <access denied>") ? "<access denied>" : null);
  cmp.eq(bdf, "capabilityListEnd", d.capabilityListEnd, end ? end.slice(1, -1) : null);
  const extListed = ext.filter((c) => !c.title.startsWith("<chain looped>"));
  cmp.eq(
    bdf,
    "extCapabilities[].offset",
    d.extCapabilities.map((c) => [c.offset, c.version]),
    extListed.map((c) => [c.offset, c.version ?? 0]),
  );
  cmp.eq(
    bdf,
    "extCapabilities[].name",
    d.extCapabilities.map((c) => c.name),
    extListed.map((c, i) =>
      d.extCapabilities[i] && c.title.startsWith(d.extCapabilities[i].name)
        ? d.extCapabilities[i].name
        : c.title,
    ),
  );

  const exp = std.find((c) => c.title.startsWith("Express "));
  if (exp) compareExpress(cmp, bdf, d, exp, devfn);
  else cmp.eq(bdf, "express", d.express, null);

  const byName = (n: string) => ext.find((c) => c.title.startsWith(n));
  compareAcs(cmp, bdf, d, byName("Access Control Services"));
  compareTph(cmp, bdf, d, byName("Transaction Processing Hints"));
  compareSriov(cmp, bdf, d, byName("Single Root I/O Virtualization"));
  compareAri(cmp, bdf, d, byName("Alternative Routing-ID Interpretation"));
  compareAts(cmp, bdf, d, byName("Address Translation Service"));
  comparePri(cmp, bdf, d, byName("Page Request Interface"));
  comparePasid(cmp, bdf, d, byName("Process Address Space ID"));
}

function compareExpress(cmp: Comparison, bdf: string, d: DecodedConfig, c: LspciCap, devfn: number): void {
  const t = /^Express (?:\(v(\d+)\) )?(.*?)(?: \(Slot([+-])\))?, MSI ([0-9a-f]{2})$/.exec(c.title);
  if (!t) {
    cmp.eq(bdf, "express.title", d.express, c.title);
    return;
  }
  const e = d.express;
  cmp.eq(bdf, "express.version", e?.version, Number(t[1]));
  cmp.eq(bdf, "express.typeName", e?.typeName, t[2]);
  if (t[3]) cmp.eq(bdf, "express.slot", e?.slot, t[3] === "+");
  cmp.eq(bdf, "express.msi", e?.msi, Number.parseInt(t[4], 16));

  const devcap = register(c.body, "DevCap");
  cmp.eq(bdf, "devCap.present", d.devCap !== null, devcap !== null);
  if (devcap && d.devCap) {
    const m = /MaxPayload (\d+) bytes, PhantFunc (\d+)/.exec(devcap)!;
    cmp.eq(bdf, "devCap.maxPayload", d.devCap.maxPayload, Number(m[1]));
    cmp.eq(bdf, "devCap.phantFunc", d.devCap.phantFunc, Number(m[2]));
    const f = flags(devcap);
    cmp.eq(bdf, "devCap.extTag", d.devCap.extTag, f.get("ExtTag"));
    cmp.eq(bdf, "devCap.rbe", d.devCap.rbe, f.get("RBE"));
    if (f.has("FLReset")) cmp.eq(bdf, "devCap.flr", d.devCap.flr, f.get("FLReset"));
  }
  const devctl = register(c.body, "DevCtl");
  if (devctl && d.devCtl) {
    const m = /MaxPayload (\d+) bytes, MaxReadReq (\d+) bytes/.exec(devctl)!;
    cmp.eq(bdf, "devCtl.maxPayload", d.devCtl.maxPayload, Number(m[1]));
    cmp.eq(bdf, "devCtl.maxReadReq", d.devCtl.maxReadReq, Number(m[2]));
    const f = flags(devctl);
    // pciutils 3.9 prints these four as "Report errors: Correctable- Non-Fatal- …" on some versions.
    for (const [k, w] of [
      ["rlxdOrd", "RlxdOrd"],
      ["extTag", "ExtTag"],
      ["phantFunc", "PhantFunc"],
      ["auxPwr", "AuxPwr"],
      ["noSnoop", "NoSnoop"],
    ] as const)
      cmp.eq(bdf, `devCtl.${k}`, d.devCtl[k], f.get(w));
    for (const [k, w] of [
      ["corrErr", "CorrErr"],
      ["nonFatalErr", "NonFatalErr"],
      ["fatalErr", "FatalErr"],
      ["unsupReq", "UnsupReq"],
    ] as const)
      if (f.has(w)) cmp.eq(bdf, `devCtl.${k}`, d.devCtl[k], f.get(w));
  }
  const lnkcap = register(c.body, "LnkCap");
  cmp.eq(bdf, "lnkCap.present", d.lnkCap !== null, lnkcap !== null);
  if (lnkcap && d.lnkCap) {
    const m =
      /Port #(\d+), Speed (\S+?)(?:GT\/s)?, Width x(\d+), ASPM (not supported|L0s L1|L0s|L1|unknown)/.exec(
        lnkcap,
      )!;
    cmp.eq(bdf, "lnkCap.port", d.lnkCap.port, Number(m[1]));
    cmp.eq(bdf, "lnkCap.speedGTs", d.lnkCap.speedGTs, speed(m[2]));
    cmp.eq(bdf, "lnkCap.width", d.lnkCap.width, Number(m[3]));
    cmp.eq(bdf, "lnkCap.aspm", d.lnkCap.aspm, m[4]);
    const f = flags(lnkcap);
    cmp.eq(bdf, "lnkCap.clockPM", d.lnkCap.clockPM, f.get("ClockPM"));
    cmp.eq(bdf, "lnkCap.surprise", d.lnkCap.surprise, f.get("Surprise"));
    cmp.eq(bdf, "lnkCap.llActRep", d.lnkCap.llActRep, f.get("LLActRep"));
    cmp.eq(bdf, "lnkCap.bwNot", d.lnkCap.bwNot, f.get("BwNot"));
  }
  const lnkctl = register(c.body, "LnkCtl");
  if (lnkctl && d.lnkCtl) {
    const m = /ASPM (Disabled|L0s Enabled|L1 Enabled|L0s L1 Enabled);/.exec(lnkctl)!;
    cmp.eq(bdf, "lnkCtl.aspm", d.lnkCtl.aspm, m[1]);
    const rcb = /RCB (\d+) bytes/.exec(lnkctl);
    if (rcb) cmp.eq(bdf, "lnkCtl.rcb", d.lnkCtl.rcb, Number(rcb[1]));
    const f = flags(lnkctl);
    cmp.eq(bdf, "lnkCtl.disabled", d.lnkCtl.disabled, f.get("Disabled"));
    cmp.eq(bdf, "lnkCtl.commClk", d.lnkCtl.commClk, f.get("CommClk"));
  }
  const lnksta = register(c.body, "LnkSta");
  cmp.eq(bdf, "lnkSta.present", d.lnkSta !== null, lnksta !== null);
  if (lnksta && d.lnkSta) {
    const m = /Speed (\S+?)(?:GT\/s)?(?: \(\w+\))?, Width x(\d+)/.exec(lnksta)!;
    cmp.eq(bdf, "lnkSta.speedGTs", d.lnkSta.speedGTs, speed(m[1]));
    cmp.eq(bdf, "lnkSta.width", d.lnkSta.width, Number(m[2]));
    const f = flags(lnksta);
    for (const [k, w] of [
      ["trErr", "TrErr"],
      ["train", "Train"],
      ["slotClk", "SlotClk"],
      ["dlActive", "DLActive"],
      ["bwMgmt", "BWMgmt"],
      ["abwMgmt", "ABWMgmt"],
    ] as const)
      cmp.eq(bdf, `lnkSta.${k}`, d.lnkSta[k], f.get(w));
  }
  const devcap2 = register(c.body, "DevCap2");
  cmp.eq(bdf, "devCap2.present", d.devCap2 !== null, devcap2 !== null);
  if (devcap2 && d.devCap2) {
    const f = flags(devcap2);
    for (const [k, w] of [
      ["tphComp", "TPHComp"],
      ["extTphComp", "ExtTPHComp"],
      ["ariFwd", "ARIFwd"],
      ["tenBitTagComp", "10BitTagComp"],
      ["tenBitTagReq", "10BitTagReq"],
      ["ltr", "LTR"],
      ["atomicRouting", "Routing"],
      ["atomic32", "32bit"],
      ["atomic64", "64bit"],
      ["cas128", "128bitCAS"],
    ] as const)
      if (f.has(w)) cmp.eq(bdf, `devCap2.${k}`, d.devCap2[k], f.get(w));
  }
  const devctl2 = register(c.body, "DevCtl2");
  if (devctl2 && d.devCtl2) {
    const f = flags(devctl2);
    for (const [k, w] of [
      ["ariFwd", "ARIFwd"],
      ["ltr", "LTR"],
      ["tenBitTagReq", "10BitTagReq"],
      ["atomicReqEn", "ReqEn"],
      ["atomicEgressBlck", "EgressBlck"],
    ] as const)
      if (f.has(w)) cmp.eq(bdf, `devCtl2.${k}`, d.devCtl2[k], f.get(w));
  }
  const lnkcap2 = register(c.body, "LnkCap2");
  const lnkCap2Hidden = (d.express?.type === 0 || d.express?.type === 1) && devfn !== 0; // lspci skips it there
  cmp.eq(bdf, "lnkCap2.present", lnkCap2Hidden ? false : d.lnkCap2 !== null, lnkcap2 !== null);
  if (lnkcap2 && d.lnkCap2) {
    const m = /Supported Link Speeds: (\S+?),/.exec(lnkcap2)!;
    cmp.eq(bdf, "lnkCap2.supportedSpeeds", d.lnkCap2.supportedSpeeds, m[1]);
    const f = flags(lnkcap2);
    cmp.eq(bdf, "lnkCap2.crosslink", d.lnkCap2.crosslink, f.get("Crosslink"));
    cmp.eq(bdf, "lnkCap2.retimer", d.lnkCap2.retimer, f.get("Retimer"));
    cmp.eq(bdf, "lnkCap2.twoRetimers", d.lnkCap2.twoRetimers, f.get("2Retimers"));
    cmp.eq(bdf, "lnkCap2.drs", d.lnkCap2.drs, f.get("DRS"));
  }
  const lnkctl2 = register(c.body, "LnkCtl2");
  if (lnkctl2 && d.lnkCtl2) {
    const m = /Target Link Speed: (\S+?)(?:GT\/s)?,/.exec(lnkctl2)!;
    cmp.eq(
      bdf,
      "lnkCtl2.targetSpeedGTs",
      d.lnkCtl2.targetSpeedGTs,
      m[1] === "Unknown" ? null : Number.parseFloat(m[1]),
    );
    const f = flags(lnkctl2);
    cmp.eq(bdf, "lnkCtl2.enterCompliance", d.lnkCtl2.enterCompliance, f.get("EnterCompliance"));
    cmp.eq(bdf, "lnkCtl2.speedDis", d.lnkCtl2.speedDis, f.get("SpeedDis"));
  }
  const lnksta2 = register(c.body, "LnkSta2");
  if (lnksta2 && d.lnkSta2)
    cmp.eq(
      bdf,
      "lnkSta2.equalizationComplete",
      d.lnkSta2.equalizationComplete,
      flags(lnksta2).get("EqualizationComplete"),
    );
}

function compareAcs(cmp: Comparison, bdf: string, d: DecodedConfig, c: LspciCap | undefined): void {
  const capText = c ? register(c.body, "ACSCap") : null;
  cmp.eq(bdf, "acs.present", d.acs !== null, capText !== null);
  if (!c || !d.acs || !capText) return;
  const ctlText = register(c.body, "ACSCtl") ?? "";
  const fc = flags(capText);
  const ft = flags(ctlText);
  for (const [k, w] of ACS_WORDS) {
    cmp.eq(bdf, `acs.cap.${k}`, d.acs.cap[k], fc.get(w));
    cmp.eq(bdf, `acs.ctl.${k}`, d.acs.ctl[k], ft.get(w));
  }
}

function compareTph(cmp: Comparison, bdf: string, d: DecodedConfig, c: LspciCap | undefined): void {
  cmp.eq(bdf, "tph.present", d.tph !== null, c !== undefined && c.body.length > 0);
  if (!c || !d.tph || !c.body.length) return;
  const has = (s: string) => c.body.some((l) => l.includes(s));
  cmp.eq(bdf, "tph.intVectorMode", d.tph.intVectorMode, has("Interrupt vector mode supported"));
  cmp.eq(bdf, "tph.deviceSpecificMode", d.tph.deviceSpecificMode, has("Device specific mode supported"));
  cmp.eq(bdf, "tph.extendedRequester", d.tph.extendedRequester, has("Extended requester support"));
  const loc = has("No steering table available")
    ? "none"
    : has("Steering table in TPH capability structure")
      ? "tph-cap"
      : has("Steering table in MSI-X table")
        ? "msix"
        : "reserved";
  cmp.eq(bdf, "tph.stLocation", d.tph.stLocation, loc);
}

function compareSriov(cmp: Comparison, bdf: string, d: DecodedConfig, c: LspciCap | undefined): void {
  const capText = c ? register(c.body, "IOVCap") : null;
  cmp.eq(bdf, "sriov.present", d.sriov !== null, capText !== null);
  if (!c || !d.sriov || !capText) return;
  const s = d.sriov;
  const fc = flags(capText);
  cmp.eq(bdf, "sriov.cap.migration", s.cap.migration, fc.get("Migration"));
  cmp.eq(bdf, "sriov.cap.tenBitTagReq", s.cap.tenBitTagReq, fc.get("10BitTagReq"));
  cmp.eq(
    bdf,
    "sriov.cap.interruptMessageNumber",
    s.cap.interruptMessageNumber,
    Number.parseInt(/Number: ([0-9a-f]+)/.exec(capText)![1], 16),
  );
  const ft = flags(register(c.body, "IOVCtl") ?? "");
  for (const [k, w] of [
    ["enable", "Enable"],
    ["migration", "Migration"],
    ["interrupt", "Interrupt"],
    ["mse", "MSE"],
    ["ariHierarchy", "ARIHierarchy"],
    ["tenBitTagReq", "10BitTagReq"],
  ] as const)
    cmp.eq(bdf, `sriov.ctl.${k}`, s.ctl[k], ft.get(w));
  cmp.eq(
    bdf,
    "sriov.status.migration",
    s.status.migration,
    flags(register(c.body, "IOVSta") ?? "").get("Migration"),
  );
  const all = c.body.join("\n");
  const n =
    /Initial VFs: (\d+), Total VFs: (\d+), Number of VFs: (\d+), Function Dependency Link: ([0-9a-f]+)/.exec(
      all,
    )!;
  cmp.eq(bdf, "sriov.initialVfs", s.initialVfs, Number(n[1]));
  cmp.eq(bdf, "sriov.totalVfs", s.totalVfs, Number(n[2]));
  cmp.eq(bdf, "sriov.numVfs", s.numVfs, Number(n[3]));
  cmp.eq(bdf, "sriov.functionDependencyLink", s.functionDependencyLink, Number.parseInt(n[4], 16));
  const o = /VF offset: (\d+), stride: (\d+), Device ID: ([0-9a-f]+)/.exec(all)!;
  cmp.eq(bdf, "sriov.vfOffset", s.vfOffset, Number(o[1]));
  cmp.eq(bdf, "sriov.vfStride", s.vfStride, Number(o[2]));
  cmp.eq(bdf, "sriov.vfDeviceId", s.vfDeviceId, Number.parseInt(o[3], 16));
  const p = /Supported Page Size: ([0-9a-f]+), System Page Size: ([0-9a-f]+)/.exec(all)!;
  cmp.eq(bdf, "sriov.supportedPageSize", s.supportedPageSize, Number.parseInt(p[1], 16));
  cmp.eq(bdf, "sriov.systemPageSize", s.systemPageSize, Number.parseInt(p[2], 16));
}

function compareAri(cmp: Comparison, bdf: string, d: DecodedConfig, c: LspciCap | undefined): void {
  const capText = c ? register(c.body, "ARICap") : null;
  cmp.eq(bdf, "ari.present", d.ari !== null, capText !== null);
  if (!c || !d.ari || !capText) return;
  const ctlText = register(c.body, "ARICtl") ?? "";
  const fc = flags(capText);
  const ft = flags(ctlText);
  cmp.eq(bdf, "ari.cap.mfvc", d.ari.cap.mfvc, fc.get("MFVC"));
  cmp.eq(bdf, "ari.cap.acs", d.ari.cap.acs, fc.get("ACS"));
  cmp.eq(
    bdf,
    "ari.cap.nextFunction",
    d.ari.cap.nextFunction,
    Number(/Next Function: (\d+)/.exec(capText)![1]),
  );
  cmp.eq(bdf, "ari.ctl.mfvc", d.ari.ctl.mfvc, ft.get("MFVC"));
  cmp.eq(bdf, "ari.ctl.acs", d.ari.ctl.acs, ft.get("ACS"));
  cmp.eq(
    bdf,
    "ari.ctl.functionGroup",
    d.ari.ctl.functionGroup,
    Number(/Function Group: (\d+)/.exec(ctlText)![1]),
  );
}

function compareAts(cmp: Comparison, bdf: string, d: DecodedConfig, c: LspciCap | undefined): void {
  const capText = c ? register(c.body, "ATSCap") : null;
  cmp.eq(bdf, "ats.present", d.ats !== null, capText !== null);
  if (!c || !d.ats || !capText) return;
  const ctlText = register(c.body, "ATSCtl") ?? "";
  cmp.eq(
    bdf,
    "ats.invalidateQueueDepth",
    d.ats.invalidateQueueDepth,
    Number.parseInt(/Depth: ([0-9a-f]+)/.exec(capText)![1], 16),
  );
  cmp.eq(bdf, "ats.enable", d.ats.enable, /Enable\+/.test(ctlText));
  cmp.eq(
    bdf,
    "ats.smallestTranslationUnit",
    d.ats.smallestTranslationUnit,
    Number.parseInt(/Smallest Translation Unit: ([0-9a-f]+)/.exec(ctlText)![1], 16),
  );
}

function comparePri(cmp: Comparison, bdf: string, d: DecodedConfig, c: LspciCap | undefined): void {
  const ctlText = c ? register(c.body, "PRICtl") : null;
  cmp.eq(bdf, "pri.present", d.pri !== null, ctlText !== null);
  if (!c || !d.pri || !ctlText) return;
  const fc = flags(ctlText);
  const fs = flags(register(c.body, "PRISta") ?? "");
  cmp.eq(bdf, "pri.enable", d.pri.enable, fc.get("Enable"));
  cmp.eq(bdf, "pri.reset", d.pri.reset, fc.get("Reset"));
  cmp.eq(bdf, "pri.rf", d.pri.rf, fs.get("RF"));
  cmp.eq(bdf, "pri.uprgi", d.pri.uprgi, fs.get("UPRGI"));
  cmp.eq(bdf, "pri.stopped", d.pri.stopped, fs.get("Stopped"));
  const m = /Page Request Capacity: ([0-9a-f]+), Page Request Allocation: ([0-9a-f]+)/.exec(
    c.body.join("\n"),
  )!;
  cmp.eq(bdf, "pri.capacity", d.pri.capacity, Number.parseInt(m[1], 16));
  cmp.eq(bdf, "pri.allocation", d.pri.allocation, Number.parseInt(m[2], 16));
}

function comparePasid(cmp: Comparison, bdf: string, d: DecodedConfig, c: LspciCap | undefined): void {
  const capText = c ? register(c.body, "PASIDCap") : null;
  cmp.eq(bdf, "pasid.present", d.pasid !== null, capText !== null);
  if (!c || !d.pasid || !capText) return;
  const fc = flags(capText);
  const ft = flags(register(c.body, "PASIDCtl") ?? "");
  cmp.eq(bdf, "pasid.cap.exec", d.pasid.cap.exec, fc.get("Exec"));
  cmp.eq(bdf, "pasid.cap.priv", d.pasid.cap.priv, fc.get("Priv"));
  cmp.eq(
    bdf,
    "pasid.cap.maxWidth",
    d.pasid.cap.maxWidth,
    Number.parseInt(/Max PASID Width: ([0-9a-f]+)/.exec(capText)![1], 16),
  );
  cmp.eq(bdf, "pasid.ctl.enable", d.pasid.ctl.enable, ft.get("Enable"));
  cmp.eq(bdf, "pasid.ctl.exec", d.pasid.ctl.exec, ft.get("Exec"));
  cmp.eq(bdf, "pasid.ctl.priv", d.pasid.ctl.priv, ft.get("Priv"));
}
