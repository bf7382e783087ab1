/**
 * A Linux sysfs tree → {@link Fabric}. The tree can be the live `/sys`, a copied folder, or an
 * archive of one (`.tar`, `.tar.gz`, `.tar.bz2`), possibly with `proc/cpuinfo` beside `sys/`.
 *
 * Where things come from (each recorded in the provenance, per attribute):
 * - functions: the `sys/bus/pci/devices/*` links and the `sys/devices/pci<dom>:<bus>/…`
 *   folders they point into (walked too, so a function missing from the index is still found);
 *   the parent bridge is the folder above; host bridges are the `pci<dom>:<bus>` folders;
 * - config space: the `config` file, whatever its length (64, 256 or 4096 bytes; padded with
 *   all-ones to its size class, the real length kept); without one, a header is made from the
 *   `vendor`/`device`/`class`/`revision` files and marked as made up;
 * - BARs: `resource`; driver: the `driver` link (or `DRIVER=` in `uevent`); `numa_node`;
 *   SR-IOV: `physfn`/`virtfn*` links; link speed/width files (used for the link only when the
 *   config space has no PCIe capability to read); IOMMU groups: the `iommu_group` links, as
 *   reported by the kernel — kept for comparison, never used to compute anything;
 * - the CPU: `proc/cpuinfo` next to `sys/`.
 *
 * Links are never followed blindly (sysfs links form loops): only the index links, resolved
 * as text, and single-hop reads of named links.
 */
import { readFileSync, statSync } from "node:fs";
import { basename, dirname } from "node:path";
import { InputError } from "../core/errors.js";
import { devfnOf, formatBdf } from "../pci/bdf.js";
import type { ConfigSpace } from "../pci/config-space.js";
import { HostBridge, type LinkState, type PciDev, type Resource } from "../pci/device.js";
import { type CpuInfo, Fabric } from "../pci/fabric.js";
import { configFromBytes } from "./lspci-hex.js";
import { Provenance } from "./provenance.js";
import {
  basenameOf,
  DiskFs,
  dirnameOf,
  type FolderView,
  joinPath,
  linkDestination,
  MemFs,
  type ReadOnlyFs,
} from "./sysfs-vfs.js";
import { looksLikeArchive, readArchive } from "./tar.js";

export type SysfsSource = ReadOnlyFs;

export interface ReportedGroup {
  id: number;
  devices: string[];
}

export interface SysfsImport {
  fabric: Fabric;
  /** IOMMU groups the kernel formed (from `iommu_group` links), or null when the tree has none. */
  reportedGroups: ReportedGroup[] | null;
  provenance: Provenance;
  /** What the snapshot lacks or what could not be imported, in words. */
  notes: string[];
  /** Bytes of config space the snapshot had per function (0: none, the header was made up). */
  configLength: Map<string, number>;
  /** Where `sys/` was found inside the source. */
  sysRoot: string;
}

const HB_RE = /^pci([0-9a-f]{4,8}):([0-9a-f]{2})$/i;
const BDF_RE = /^([0-9a-f]{4,8}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i;
/** Bounds on what a walk visits, so no tree (or loop of folders) can keep it going. */
const MAX_WALK_NODES = 200_000;
const MAX_DEPTH = 64;

interface Addr {
  segment: number;
  bus: number;
  devfn: number;
  bdf: string;
}

function parseBdfName(name: string): Addr | null {
  const m = BDF_RE.exec(name);
  if (!m) return null;
  const slot = Number.parseInt(m[3], 16);
  if (slot > 0x1f) return null;
  const segment = Number.parseInt(m[1], 16);
  const bus = Number.parseInt(m[2], 16);
  const devfn = devfnOf(slot, Number(m[4]));
  return { segment, bus, devfn, bdf: formatBdf({ segment, bus, devfn }) };
}

/** A `pci<dom>:<bus>` folder: its name (lower case), numbers and path. */
interface HostFolder {
  label: string;
  domain: number;
  bus: number;
  path: string;
}

function hostFolder(name: string, path: string): HostFolder {
  const m = HB_RE.exec(name)!;
  return {
    label: name.toLowerCase(),
    domain: Number.parseInt(m[1], 16),
    bus: Number.parseInt(m[2], 16),
    path,
  };
}

interface Found {
  addr: Addr;
  path: string;
  host: HostFolder;
  parent: string | null;
  depth: number;
}

interface Loaded extends Found {
  /** The folder, to read its attributes. */
  dir: FolderView;
  /** The folder as messages and provenance name it. */
  where: string;
  config: ConfigSpace;
  configLength: number;
  synthesized: boolean;
  hasChildren: boolean;
}

/** Finds `sys/` inside the source: at its root, as `sys/`, or as `<one folder>/sys/`. */
export function findSysRoot(fs: ReadOnlyFs): string {
  const isSys = (p: string) =>
    fs.kind(joinPath(p, "devices")) === "dir" &&
    (fs.kind(joinPath(p, "bus/pci/devices")) === "dir" ||
      (fs.list(joinPath(p, "devices")) ?? []).some((n) => HB_RE.test(n)));
  const candidates = ["sys", ""];
  for (const top of fs.list("") ?? []) if (fs.kind(top) === "dir") candidates.push(joinPath(top, "sys"), top);
  for (const c of candidates) if (isSys(c)) return c;
  throw new InputError(
    "no sysfs tree found: expected sys/bus/pci/devices or sys/devices/pci<domain>:<bus> (at the top, or in one folder)",
    fs.label,
  );
}

/** One decoder for every attribute (a decode without `stream` keeps no state between calls). */
const utf8 = new TextDecoder();
const text = (b: Uint8Array) => utf8.decode(b);
const HEX_ATTR_RE = /^0x([0-9a-f]{1,8})$/i;
const INT_ATTR_RE = /^-?\d{1,9}$/;
const SPEED_RE = /^(\d{1,3}(?:\.\d{1,3})?) ?GT\/s\b/;
const UNKNOWN_SPEED_RE = /^unknown/i;
const WIDTH_RE = /^\d{1,2}$/;
const RESOURCE_LINE_RE = /^0x([0-9a-f]{1,16}) 0x([0-9a-f]{1,16}) 0x([0-9a-f]{1,16})$/i;
const ALL_ZEROS_RE = /^0+$/;
/** How the kernel prints an unused BAR: the most common `resource` line. */
const UNUSED_RESOURCE_LINE = "0x0000000000000000 0x0000000000000000 0x0000000000000000";
const GROUP_ID_RE = /^\d{1,9}$/;
const VIRTFN_RE = /^virtfn(\d+)$/;
const TRAILING_SLASHES_RE = /\/+$/;

/** Reads a one-line attribute of a function's folder; null when the file is absent. */
function readAttr(dir: FolderView, name: string): string | null {
  return dir.readText(name)?.trim() ?? null;
}

function parseHexAttr(dir: FolderView, name: string, max: number): number | null {
  const s = readAttr(dir, name);
  if (s === null) return null;
  const m = HEX_ATTR_RE.exec(s);
  const v = m ? Number.parseInt(m[1], 16) : Number.NaN;
  if (!m || v > max)
    throw new InputError(
      `expected a hex number up to 0x${max.toString(16)} (e.g. 0x8086), got "${clip(s)}"`,
      `${dir.where(name)}:1`,
    );
  return v;
}

function parseIntAttr(dir: FolderView, name: string): number | null {
  const s = readAttr(dir, name);
  if (s === null) return null;
  if (!INT_ATTR_RE.test(s))
    throw new InputError(`expected a decimal number, got "${clip(s)}"`, `${dir.where(name)}:1`);
  return Number(s);
}

/** "8.0 GT/s PCIe", "8 GT/s", "2.5 GT/s" → GT/s; "Unknown speed" → null. */
function parseSpeedAttr(dir: FolderView, name: string): { value: number | null; raw: string } | undefined {
  const s = readAttr(dir, name);
  if (s === null) return undefined;
  if (UNKNOWN_SPEED_RE.test(s)) return { value: null, raw: s };
  const m = SPEED_RE.exec(s);
  if (!m)
    throw new InputError(
      `expected a link speed like "8.0 GT/s PCIe", got "${clip(s)}"`,
      `${dir.where(name)}:1`,
    );
  return { value: Number(m[1]), raw: s };
}

function parseWidthAttr(dir: FolderView, name: string): { value: number; raw: string } | undefined {
  const s = readAttr(dir, name);
  if (s === null) return undefined;
  if (!WIDTH_RE.test(s))
    throw new InputError(`expected a link width like "16", got "${clip(s)}"`, `${dir.where(name)}:1`);
  return { value: Number(s), raw: s };
}

const clip = (s: string) => (s.length > 40 ? `${s.slice(0, 37)}...` : s).replace(/[^\x20-\x7e]/g, "?");

/** A folder the walk is to list: its depth, host bridge folder and function (null: a host bridge). */
interface WalkStep {
  path: string;
  depth: number;
  host: HostFolder;
  fn: Addr | null;
  /** Function folders from the host bridge folder down to this one. */
  fnDepth: number;
}

/** Collects every function folder: the index links and a walk of the host bridge folders. */
function collectFunctions(fs: ReadOnlyFs, sys: string, notes: string[]): Found[] {
  // The walk knows each folder's host bridge and parent as it goes down, so the functions it
  // finds need no parsing of their paths afterwards.
  const walked: Found[] = [];
  let visited = 0;
  const devicesDir = joinPath(sys, "devices");
  for (const name of fs.list(devicesDir) ?? []) {
    if (!HB_RE.test(name)) continue;
    const top = joinPath(devicesDir, name);
    const stack: WalkStep[] = [{ path: top, depth: 0, host: hostFolder(name, top), fn: null, fnDepth: 0 }];
    while (stack.length) {
      const step = stack.pop()!;
      if (++visited > MAX_WALK_NODES || step.depth > MAX_DEPTH)
        throw new InputError(`sysfs tree too large or too deep below ${devicesDir}`, fs.where(step.path));
      const listing = fs.folder(step.path).entries();
      if (!listing) continue;
      for (let i = 0; i < listing.names.length; i++) {
        if (listing.kinds[i] !== "dir") continue; // links (subsystem, driver, …) are never walked
        const child = listing.names[i];
        const path = `${step.path}/${child}`;
        const addr = parseBdfName(child);
        if (addr) {
          const fnDepth = step.fnDepth + 1;
          walked.push({ addr, path, host: step.host, parent: step.fn?.bdf ?? null, depth: fnDepth });
          stack.push({ path, depth: step.depth + 1, host: step.host, fn: addr, fnDepth });
        } else if (HB_RE.test(child))
          // a nested domain (VMD)
          stack.push({ path, depth: step.depth + 1, host: hostFolder(child, path), fn: null, fnDepth: 0 });
      }
    }
  }
  // Walked folders are known folders: an index link to one needs no look-up.
  const byPath = new Set(walked.map((w) => w.path));
  const index = joinPath(sys, "bus/pci/devices");
  const indexDir = fs.folder(index);
  const linked: string[] = [];
  for (const name of indexDir.entries()?.names ?? []) {
    const target = indexDir.readlink(name);
    if (target === null) {
      if (
        indexDir.kind(name) === "dir" &&
        !walked.some((w) => basenameOf(w.path) === name) &&
        !linked.some((p) => basenameOf(p) === name)
      )
        notes.push(
          `${name}: bus/pci/devices/${name} is a folder, not a link, so its place in the tree is unknown; skipped`,
        );
      continue;
    }
    const dest = linkDestination(`${index}/${name}`, target);
    if (dest === null || (!byPath.has(dest) && fs.kind(dest) !== "dir")) {
      notes.push(`${name}: index link points to "${clip(target)}", which is not in the snapshot; skipped`);
      continue;
    }
    linked.push(dest);
  }
  const found = new Map<string, Found>();
  const keep = (f: Found) => {
    if (f.addr.segment !== f.host.domain)
      throw new InputError(
        `function ${f.addr.bdf} sits in host bridge folder ${basenameOf(f.host.path)} of another PCI domain`,
        fs.where(f.path),
      );
    const prev = found.get(f.addr.bdf);
    if (prev) {
      if (prev.path !== f.path)
        notes.push(`${f.addr.bdf}: found at two places (${prev.path} and ${f.path}); kept the first`);
      return;
    }
    found.set(f.addr.bdf, f);
  };
  // A walked folder's parents were walked before it, and only function folders lie between it
  // and its host bridge folder: it is kept as it is (each path once: a walk lists a folder once).
  for (const w of walked) keep(w);
  // An index link's folder is placed from its path; every BDF folder on the way down is a
  // function too (hwloc dumps may miss index links).
  const consider = (path: string) => {
    if (byPath.has(path)) return;
    byPath.add(path);
    const parts = path.split("/");
    let hostIdx = -1;
    for (let i = parts.length - 1; i >= 0; i--)
      if (HB_RE.test(parts[i])) {
        hostIdx = i;
        break;
      }
    const addr = parseBdfName(parts[parts.length - 1]);
    if (!addr) return;
    if (hostIdx < 0) {
      notes.push(`${addr.bdf}: ${path} is not below a pci<domain>:<bus> folder; skipped`);
      return;
    }
    const below = parts.slice(hostIdx + 1);
    if (below.some((p) => !parseBdfName(p))) {
      notes.push(
        `${addr.bdf}: ${path} has folders other than functions between the host bridge and it; skipped`,
      );
      return;
    }
    for (let i = 1; i < below.length; i++) consider(parts.slice(0, hostIdx + 1 + i).join("/"));
    const parent = below.length > 1 ? parseBdfName(below[below.length - 2])!.bdf : null;
    const host = hostFolder(parts[hostIdx], parts.slice(0, hostIdx + 1).join("/"));
    keep({ addr, path, host, parent, depth: below.length });
  };
  for (const p of linked) consider(p);
  return [...found.values()];
}

/** A 64-byte type 0/1 header made from the id files, for snapshots without `config`. */
function synthesizeHeader(
  dir: FolderView,
  f: Found,
  where: string,
  hasChildren: boolean,
  slotShared: boolean,
  prov: Provenance,
): { config: ConfigSpace } | null {
  const vendor = parseHexAttr(dir, "vendor", 0xffff);
  const device = parseHexAttr(dir, "device", 0xffff);
  const cls = parseHexAttr(dir, "class", 0xffffff);
  const rev = parseHexAttr(dir, "revision", 0xff);
  const svid = parseHexAttr(dir, "subsystem_vendor", 0xffff);
  const sdid = parseHexAttr(dir, "subsystem_device", 0xffff);
  const made = { file: where, note: "made up: the snapshot has no config file" };
  let classCode = cls;
  if (vendor === null || device === null || cls === null) {
    if (!hasChildren) return null;
    // A folder that only exists as the parent of other functions: it is a bridge.
    classCode = 0x060400;
  }
  const bridge = classCode! >> 8 === 0x0604 || classCode! >> 8 === 0x0609;
  const cfg = configFromBytes(new Uint8Array(64));
  cfg.write16(0x00, vendor ?? 0xffff);
  cfg.write16(0x02, device ?? 0xffff);
  cfg.write8(0x08, rev ?? 0);
  cfg.write8(0x09, classCode! & 0xff);
  cfg.write16(0x0a, classCode! >> 8);
  // Function 0 of a slot with other functions must have said "multi-function", or Linux would
  // not have scanned the others.
  const mfd = slotShared && (f.addr.devfn & 7) === 0 ? 0x80 : 0;
  cfg.write8(0x0e, (bridge ? 1 : 0) | mfd);
  if (!bridge) {
    cfg.write16(0x2c, svid ?? 0);
    cfg.write16(0x2e, sdid ?? 0);
  }
  const src = (name: string) => ({ file: dir.where(name), line: 1 });
  if (vendor !== null) prov.record(f.addr.bdf, "vendor", vendor, src("vendor"));
  else
    prov.record(f.addr.bdf, "vendor", 0xffff, {
      ...made,
      note: "unknown: no vendor file; folder only holds other functions",
    });
  if (device !== null) prov.record(f.addr.bdf, "device", device, src("device"));
  if (cls !== null) prov.record(f.addr.bdf, "class", cls, src("class"));
  else
    prov.record(f.addr.bdf, "class", classCode, {
      ...made,
      note: "assumed a PCI bridge: other functions sit below it",
    });
  if (rev !== null) prov.record(f.addr.bdf, "revision", rev, src("revision"));
  prov.record(f.addr.bdf, "headerType", (bridge ? 1 : 0) | mfd, {
    ...made,
    note: `made up from the class code${mfd ? "; multi-function: other functions of this slot are present" : ""}`,
  });
  return { config: cfg };
}

/** Only the first 4096 bytes of a `config` file are config space; the rest is never read. */
const CONFIG_SPACE_MAX = 4096;

function loadFunction(
  fs: ReadOnlyFs,
  f: Found,
  hasChildren: boolean,
  slotShared: boolean,
  prov: Provenance,
  notes: string[],
): Loaded | null {
  const bdf = f.addr.bdf;
  const dir = fs.folder(f.path);
  const where = dir.where();
  const raw = dir.readFile("config", CONFIG_SPACE_MAX);
  if (raw && raw.length > 0) {
    const config = configFromBytes(raw, true); // the bytes are ours (readFile copies)
    const len = raw.length;
    const file = dir.where("config");
    prov.record(bdf, "config", { length: len }, { file, field: `${len} bytes` });
    prov.record(bdf, "vendor", config.read16(0), { file, field: "Vendor ID @0x00" });
    prov.record(bdf, "device", config.read16(2), { file, field: "Device ID @0x02" });
    prov.record(bdf, "class", (config.read16(0x0a) << 8) | config.read8(0x09), {
      file,
      field: "Class Code @0x09",
    });
    prov.record(bdf, "revision", config.read8(8), { file, field: "Revision ID @0x08" });
    prov.record(bdf, "headerType", config.read8(0x0e) & 0x7f, { file, field: "Header Type @0x0e" });
    if (len < 4) {
      notes.push(`${bdf}: config holds only ${len} bytes; ids unreadable`);
    }
    // A VF's own config space reads its ids as 0xffff; sysfs has the real ones in files.
    if (config.read16(0) === 0xffff && dir.kind("physfn") !== null) {
      const vendor = parseHexAttr(dir, "vendor", 0xffff);
      const device = parseHexAttr(dir, "device", 0xffff);
      if (vendor !== null && device !== null) {
        config.write16(0, vendor);
        config.write16(2, device);
        prov.record(bdf, "vendor", vendor, {
          file: dir.where("vendor"),
          line: 1,
          note: "a VF reads 0xffff in config",
        });
        prov.record(bdf, "device", device, {
          file: dir.where("device"),
          line: 1,
          note: "a VF reads 0xffff in config",
        });
      }
    }
    return loaded(f, dir, where, config, len, false, hasChildren);
  }
  const s = synthesizeHeader(dir, f, where, hasChildren, slotShared, prov);
  if (!s) {
    notes.push(`${bdf}: no config, vendor, device or class file in ${f.path}; skipped`);
    return null;
  }
  prov.record(
    bdf,
    "config",
    { length: 0 },
    { file: where, note: "no config file: header made from the id files" },
  );
  return loaded(f, dir, where, s.config, 0, true, hasChildren);
}

/** A {@link Loaded} record, its fields listed (an object spread of `f` costs more, per function). */
function loaded(
  f: Found,
  dir: FolderView,
  where: string,
  config: ConfigSpace,
  configLength: number,
  synthesized: boolean,
  hasChildren: boolean,
): Loaded {
  const { addr, path, host, parent, depth } = f;
  return { addr, path, host, parent, depth, dir, where, config, configLength, synthesized, hasChildren };
}

function parseResources(dir: FolderView, dev: PciDev, prov: Provenance): void {
  const content = dir.readText("resource");
  if (content === null) return;
  const lines = content.split("\n", 6); // the six BARs (the ROM and bridge windows follow: not read)
  let file: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line === UNUSED_RESOURCE_LINE) continue;
    const m = RESOURCE_LINE_RE.exec(line);
    if (!m)
      throw new InputError(
        `expected "0x<start> 0x<end> 0x<flags>", got "${clip(line)}"`,
        `${dir.where("resource")}:${i + 1}`,
      );
    // an unused BAR (start and end zero) otherwise written: skipped before any BigInt is made
    if (ALL_ZEROS_RE.test(m[1]) && ALL_ZEROS_RE.test(m[2])) continue;
    const start = BigInt(`0x${m[1]}`);
    const end = BigInt(`0x${m[2]}`);
    if (end < start)
      throw new InputError(
        `resource ends (0x${m[2]}) before it starts (0x${m[1]})`,
        `${dir.where("resource")}:${i + 1}`,
      );
    // the low 32 bits of the flags: the last 8 hex digits
    const flags = Number.parseInt(m[3].slice(-8), 16);
    const r: Resource = { index: i, flags, start, len: end - start + 1n };
    dev.resources[i] = r;
    file ??= dir.where("resource");
    prov.record(dev.bdf, `BAR${i}`, r, { file, line: i + 1 });
  }
}

function driverOf(dir: FolderView): { name: string; file: string } | null {
  const target = dir.readlink("driver");
  if (target !== null) {
    const name = basenameOf(target.replace(TRAILING_SLASHES_RE, ""));
    if (name) return { name, file: dir.where("driver") };
  }
  const ue = readAttr(dir, "uevent");
  const m = ue ? /^DRIVER=(.+)$/m.exec(ue) : null;
  return m ? { name: m[1].trim(), file: dir.where("uevent") } : null;
}

/** `proc/cpuinfo` (first processor): vendor_id, cpu family, model, model name. */
function parseCpuinfo(fs: ReadOnlyFs, path: string, prov: Provenance): CpuInfo | null {
  const b = fs.readFile(path);
  if (!b) return null;
  const lines = text(b).split("\n");
  const got = new Map<string, { value: string; line: number }>();
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() === "") {
      if (got.size) break; // end of the first processor's block
      continue;
    }
    const m = /^([^:]+?)\s*:\s?(.*)$/.exec(lines[i]);
    if (m && !got.has(m[1])) got.set(m[1], { value: m[2].trim(), line: i + 1 });
  }
  const vendor = got.get("vendor_id");
  const family = got.get("cpu family");
  if (!vendor || !family || !/^\d+$/.test(family.value)) return null;
  const model = got.get("model");
  const name = got.get("model name");
  const file = fs.where(path);
  prov.record("cpu", "vendor", vendor.value, { file, line: vendor.line, field: "vendor_id" });
  prov.record("cpu", "family", Number(family.value), { file, line: family.line, field: "cpu family" });
  if (model && /^\d+$/.test(model.value))
    prov.record("cpu", "model", Number(model.value), { file, line: model.line, field: "model" });
  if (name) prov.record("cpu", "modelName", name.value, { file, line: name.line, field: "model name" });
  return {
    vendor: vendor.value,
    family: Number(family.value),
    model: model && /^\d+$/.test(model.value) ? Number(model.value) : undefined,
    modelName: name?.value,
    source: "/proc/cpuinfo",
  };
}

/** Imports a sysfs tree held by `fs`. Throws {@link InputError} for malformed input. */
export function importSysfs(fs: ReadOnlyFs, opts: { name?: string; sysRoot?: string } = {}): SysfsImport {
  const sys = opts.sysRoot ?? findSysRoot(fs);
  const provenance = new Provenance();
  const notes: string[] = [];
  const found = collectFunctions(fs, sys, notes);
  if (!found.length)
    throw new InputError("no PCI functions in this sysfs tree", fs.where(joinPath(sys, "bus/pci/devices")));
  const parents = new Set(found.map((f) => f.parent).filter((p): p is string => p !== null));
  const slotUse = new Map<number, number>();
  for (const f of found) slotUse.set(slotKey(f.addr), (slotUse.get(slotKey(f.addr)) ?? 0) + 1);
  const loaded: Loaded[] = [];
  for (const f of found) {
    const slotShared = (slotUse.get(slotKey(f.addr)) ?? 0) > 1;
    const l = loadFunction(fs, f, parents.has(f.addr.bdf), slotShared, provenance, notes);
    if (l) loaded.push(l);
  }
  loaded.sort(
    (a, b) =>
      a.depth - b.depth ||
      a.host.domain - b.host.domain ||
      a.host.bus - b.host.bus ||
      a.addr.bus - b.addr.bus ||
      a.addr.devfn - b.addr.devfn,
  );

  const fabric = new Fabric();
  fabric.name = opts.name ?? fs.label;
  // Host bridges, with the NUMA node the kernel gave the functions below them.
  const numaOf = new Map<string, number>();
  for (const l of loaded) {
    const n = parseIntAttr(l.dir, "numa_node");
    if (n !== null) numaOf.set(l.addr.bdf, n);
  }
  const hosts = new Map<string, HostBridge>();
  // the first function (in load order) of each host bridge that has a NUMA node
  const carriers = new Map<string, Loaded>();
  for (const x of loaded)
    if (!carriers.has(x.host.label) && (numaOf.get(x.addr.bdf) ?? -1) >= 0) carriers.set(x.host.label, x);
  for (const l of loaded) {
    if (hosts.has(l.host.label)) continue;
    const carrier = carriers.get(l.host.label);
    const numa = carrier ? numaOf.get(carrier.addr.bdf)! : -1;
    const hb = fabric.addHostBridge(new HostBridge(l.host.domain, l.host.bus, [], numa, l.host.label));
    hosts.set(l.host.label, hb);
    const hostPath = l.host.path;
    provenance.record(
      hb.label,
      "hostBridge",
      { domain: l.host.domain, bus: l.host.bus },
      { file: fs.where(hostPath), note: "folder name" },
    );
    provenance.record(
      hb.label,
      "numa_node",
      numa,
      carrier
        ? {
            file: carrier.dir.where("numa_node"),
            line: 1,
            note: `numa_node of ${carrier.addr.bdf}`,
          }
        : { file: fs.where(hostPath), note: "no function below it has a numa_node" },
    );
  }

  // The fabric builder writes bus numbers into bridges; keep the snapshot's own to put back.
  const saved = loaded
    .filter((l) => (l.config.read8(0x0e) & 0x7f) !== 0 && l.configLength >= 0x1b)
    .map((l) => ({ config: l.config, regs: l.config.bytes.slice(0x18, 0x1b) }));
  const added = new Map<string, { dev: PciDev; l: Loaded }>();
  const isVf = (l: Loaded) => l.dir.kind("physfn") !== null;
  for (const l of loaded) {
    const hb = hosts.get(l.host.label)!;
    let bus = hb.rootBus;
    if (l.parent === null) {
      if (l.addr.bus !== hb.busNumber) {
        if (isVf(l)) {
          notes.push(`${l.addr.bdf}: a VF on a bus other than its PF's is not modelled; skipped`);
          continue;
        }
        throw new InputError(
          `function ${l.addr.bdf} sits directly in host bridge folder ${l.host.label} but is on another bus`,
          l.where,
        );
      }
    } else {
      const p = added.get(l.parent);
      if (!p) {
        notes.push(`${l.addr.bdf}: its parent ${l.parent} was not imported; skipped`);
        continue;
      }
      if (!p.dev.isBridgeHeader)
        throw new InputError(
          `function ${l.addr.bdf} sits below ${l.parent}, which is not a bridge (header type ${p.dev.headerType & 0x7f})`,
          l.where,
        );
      if (!p.dev.subordinate) {
        if (l.addr.bus <= p.dev.busNumber)
          throw new InputError(
            `function ${l.addr.bdf} sits below bridge ${l.parent} but its bus is not above the bridge's`,
            l.where,
          );
        fabric.addSecondaryBus(p.dev, l.addr.bus);
      } else if (p.dev.subordinate.number !== l.addr.bus) {
        if (isVf(l)) {
          notes.push(`${l.addr.bdf}: a VF on a bus other than its PF's is not modelled; skipped`);
          continue;
        }
        throw new InputError(
          `function ${l.addr.bdf} sits below bridge ${l.parent}, whose secondary bus is ${hex2(p.dev.subordinate.number)}`,
          l.where,
        );
      }
      bus = p.dev.subordinate!;
    }
    const dev = fabric.addFunction(bus, l.addr.devfn, l.config);
    added.set(l.addr.bdf, { dev, l });
    provenance.record(dev.bdf, "parent", l.parent, { file: l.where, note: "the folder it sits in" });
  }

  // Bridges with nothing below them still lead to a bus: take its number from the snapshot.
  for (const { dev, l } of added.values()) {
    if (!dev.isBridgeHeader || dev.subordinate) continue;
    const fromFile = parseIntAttr(l.dir, "secondary_bus_number");
    const sec = fromFile ?? (l.configLength >= 0x1a ? l.config.read8(0x19) : 0);
    if (sec > dev.busNumber && sec <= 0xff && !fabric.findBus(dev.segment, sec)) {
      fabric.addSecondaryBus(dev, sec);
      provenance.record(
        dev.bdf,
        "secondaryBus",
        sec,
        fromFile !== null
          ? { file: l.dir.where("secondary_bus_number"), line: 1 }
          : { file: l.dir.where("config"), field: "Secondary Bus Number @0x19" },
      );
    }
  }
  fabric.finalizeBusNumbers();
  // The snapshot's own bus registers stay as read: they are what the hardware held.
  for (const { config, regs } of saved) config.bytes.set(regs, 0x18);

  // Per-function attributes.
  const groups = new Map<number, string[]>();
  let linkFiles = 0;
  for (const { dev, l } of added.values()) {
    const dir = l.dir;
    parseResources(dir, dev, provenance);
    const drv = driverOf(dir);
    if (drv) {
      dev.driver = drv.name;
      provenance.record(dev.bdf, "driver", drv.name, { file: drv.file });
    }
    const numa = numaOf.get(dev.bdf);
    dev.numaNode = numa ?? dev.hostBridge.numaNode;
    if (numa !== undefined)
      provenance.record(dev.bdf, "numa_node", numa, { file: dir.where("numa_node"), line: 1 });
    const g = dir.readlink("iommu_group");
    if (g !== null) {
      const id = basenameOf(g.replace(TRAILING_SLASHES_RE, ""));
      if (GROUP_ID_RE.test(id)) {
        const list = groups.get(Number(id));
        if (list) list.push(dev.bdf);
        else groups.set(Number(id), [dev.bdf]);
        provenance.record(dev.bdf, "iommu_group", Number(id), {
          file: dir.where("iommu_group"),
          note: "reported by the kernel",
        });
      } else notes.push(`${dev.bdf}: iommu_group link "${clip(g)}" does not end in a group number; ignored`);
    }
    const cur = parseSpeedAttr(dir, "current_link_speed");
    const curW = parseWidthAttr(dir, "current_link_width");
    const max = parseSpeedAttr(dir, "max_link_speed");
    const maxW = parseWidthAttr(dir, "max_link_width");
    const rec = (name: string, v: { value: number | null; raw: string } | undefined) => {
      if (v) provenance.record(dev.bdf, name, v.value, { file: dir.where(name), line: 1, field: v.raw });
    };
    rec("current_link_speed", cur);
    rec("current_link_width", curW);
    rec("max_link_speed", max);
    rec("max_link_width", maxW);
    if (cur || curW || max || maxW) linkFiles++;
    if (!dev.isPcie && (cur || curW || max || maxW)) {
      const link: LinkState = {
        speed: cur?.value ?? 0,
        width: curW?.value ?? 0,
        maxSpeed: max?.value ?? 0,
        maxWidth: maxW?.value ?? 0,
        flit: false,
      };
      dev.reportedLink = link;
      provenance.record(dev.bdf, "link", link, {
        file: l.where,
        note: "from the *_link_speed/*_link_width files: the config space has no PCIe capability to read",
      });
    } else if (dev.isPcie && dev.link) {
      provenance.record(dev.bdf, "link", dev.link, {
        file: dir.where("config"),
        field: `LnkCap/LnkSta @0x${(dev.pcieCapOffset + 0x0c).toString(16)}`,
      });
    }
  }
  // SR-IOV: physfn links (each VF names its PF); virtfnN on the PF gives the order.
  for (const { dev, l } of added.values()) {
    const t = l.dir.readlink("physfn");
    if (t === null) continue;
    const pfAddr = parseBdfName(basenameOf(t.replace(TRAILING_SLASHES_RE, "")));
    const pf = pfAddr ? added.get(pfAddr.bdf) : undefined;
    if (!pf) {
      notes.push(`${dev.bdf}: physfn link "${clip(t)}" names no imported function; not marked as a VF`);
      continue;
    }
    dev.isVirtfn = true;
    dev.physfn = pf.dev;
    provenance.record(dev.bdf, "physfn", pf.dev.bdf, { file: l.dir.where("physfn") });
  }
  const vfsOf = new Map<PciDev, PciDev[]>();
  for (const { dev } of added.values())
    if (dev.physfn) {
      const list = vfsOf.get(dev.physfn);
      if (list) list.push(dev);
      else vfsOf.set(dev.physfn, [dev]);
    }
  for (const { dev, l } of added.values()) {
    const vfs: { n: number; vf: PciDev }[] = [];
    for (const name of l.dir.entries()?.names ?? []) {
      if (!name.startsWith("virtfn")) continue; // most names: no regex needed
      const m = VIRTFN_RE.exec(name);
      const t = m ? l.dir.readlink(name) : null;
      const a = t !== null ? parseBdfName(basenameOf(t.replace(TRAILING_SLASHES_RE, ""))) : null;
      const vf = a ? added.get(a.bdf)?.dev : undefined;
      if (m && vf?.physfn === dev) vfs.push({ n: Number(m[1]), vf });
    }
    const others = (vfsOf.get(dev) ?? []).filter((d) => !vfs.some((v) => v.vf === d));
    vfs.sort((a, b) => a.n - b.n);
    dev.virtfns.push(...vfs.map((v) => v.vf), ...others);
    if (dev.virtfns.length)
      provenance.record(
        dev.bdf,
        "virtfns",
        dev.virtfns.map((v) => v.bdf),
        { file: l.where, field: "virtfn* links" },
      );
  }

  // Reported IOMMU groups: the links, or sys/kernel/iommu_groups when the links are missing.
  if (!groups.size) {
    const gdir = joinPath(sys, "kernel/iommu_groups");
    for (const id of fs.list(gdir) ?? []) {
      if (!/^\d{1,9}$/.test(id)) continue;
      const devs = (fs.list(joinPath(gdir, id, "devices")) ?? [])
        .map(parseBdfName)
        .filter((a): a is Addr => a !== null);
      if (devs.length)
        groups.set(
          Number(id),
          devs.map((a) => a.bdf),
        );
    }
  }
  const reportedGroups = groups.size
    ? [...groups.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([id, devices]) => ({ id, devices: [...devices].sort() }))
    : null;

  const procRoot = joinPath(dirnameOf(sys), "proc/cpuinfo");
  const cpu = parseCpuinfo(fs, procRoot, provenance);
  if (cpu) fabric.cpu = cpu;
  else
    notes.push(
      fs.kind(procRoot)
        ? "proc/cpuinfo has no vendor_id/cpu family (not x86?); CPU unknown"
        : "no proc/cpuinfo beside sys/; CPU unknown",
    );

  // What the snapshot lacks, once.
  const n = added.size;
  const synth = [...added.values()].filter((x) => x.l.synthesized).length;
  const short = [...added.values()].filter((x) => !x.l.synthesized && x.l.configLength < 256).length;
  if (synth)
    notes.push(
      `${synth} of ${n} functions have no config file: headers made from the id files (no capabilities, no ACS, no link registers)`,
    );
  if (short)
    notes.push(
      `${short} of ${n} functions have less than 256 bytes of config space (${[...new Set([...added.values()].filter((x) => !x.l.synthesized && x.l.configLength < 256).map((x) => x.l.configLength))].join(", ")} bytes): their capabilities (PCIe link, ACS) are not readable`,
    );
  if (!groups.size) notes.push("no iommu_group links: the IOMMU groups the kernel formed are unknown");
  if (!linkFiles && [...added.values()].every((x) => !x.dev.isPcie))
    notes.push("no *_link_speed/*_link_width files and no PCIe capabilities: link speeds unknown");
  return {
    fabric,
    reportedGroups,
    provenance,
    notes,
    configLength: new Map([...added.values()].map((x) => [x.dev.bdf, x.l.configLength])),
    sysRoot: sys,
  };
}

const hex2 = (n: number) => n.toString(16).padStart(2, "0");

/** A number for a function's slot (domain, bus, device), for counting the functions per slot. */
const slotKey = (a: Addr) => (a.segment * 0x100 + a.bus) * 0x20 + (a.devfn >> 3);

/** Opens a sysfs source on disk: a folder (a copy of /sys, or /sys itself) or an archive of one. */
export function openSysfsSource(path: string): { fs: ReadOnlyFs; sysRoot?: string } {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    throw new InputError("no such file or directory (expected a sysfs folder or an archive of one)", path);
  }
  if (isDir) {
    const root = new DiskFs(path);
    // Pointed at sys/ itself (e.g. /sys): read from its parent so proc/ next to it is reachable.
    if (root.kind("bus/pci/devices") === "dir" && root.kind("devices") === "dir") {
      const parent = dirname(path.replace(/\/+$/, "") || "/");
      return { fs: new DiskFs(parent), sysRoot: basename(path.replace(/\/+$/, "")) || "" };
    }
    return { fs: root };
  }
  const bytes = new Uint8Array(readFileSync(path));
  if (!looksLikeArchive(bytes))
    throw new InputError("not a sysfs folder or a tar archive (.tar, .tar.gz, .tar.bz2) of one", path);
  return { fs: MemFs.fromTar(readArchive(bytes, path), path) };
}

/** Imports a sysfs folder or archive from disk. */
export function importSysfsPath(path: string): SysfsImport {
  const { fs, sysRoot } = openSysfsSource(path);
  return importSysfs(fs, { name: basename(path), sysRoot });
}
