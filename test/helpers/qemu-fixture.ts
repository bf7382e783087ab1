/**
 * Readers for the QEMU captures in shared/fixtures/qemu (format: the README beside them). Only what
 * test/import/qemu-machines.test.ts compares: devices.tsv, iommu_groups.txt, p2p-matrix.tsv,
 * guest /proc/cpuinfo (inside sysfs.tar.gz) and the parts of `lspci -nnvvv` a machine file records.
 */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";

/** Fixtures live beside the project: ../shared relative to the project root. */
export const QEMU_FIXTURES = fileURLToPath(new URL("../../../shared/fixtures/qemu/", import.meta.url));

export const QEMU_TOPOLOGIES = [
  "rootports",
  "rootports-noacs",
  "rootports-acsredir-off",
  "switch",
  "mf-rootports",
  "mf-rootports-mixedacs",
  "mixed",
  "p2p-switch",
  "p2p-switch-epyc",
  "p2p-mixed",
  "p2p-mixed-acsredir-off",
] as const;
export type QemuTopology = (typeof QEMU_TOPOLOGIES)[number];

export function fixtureFile(topo: string, file: string): string {
  return `${QEMU_FIXTURES}${topo}/${file}`;
}

export function readFixture(topo: string, file: string): string {
  return readFileSync(fixtureFile(topo, file), "utf8");
}

export function hasFixture(topo: string, file: string): boolean {
  return existsSync(fixtureFile(topo, file));
}

/* devices.tsv */

export interface CapturedLink {
  /** GT/s; 0 for the kernel's "Unknown". */
  speed: number;
  width: number;
}

export interface CapturedFunction {
  bdf: string;
  /** Bridge above the function from the sysfs path (`…/<parent>/<bdf>`), null on a root bus. */
  parent: string | null;
  /** sysfs folder of the function inside the capture's mirror (`sys/devices/…/<bdf>`). */
  sysfsPath: string;
  /** `pci<domain>:<bus>` folder the path starts with: the host bridge. */
  hostBridge: string;
  classCode: number;
  vendor: number;
  device: number;
  driver: string | null;
  iommuGroup: number;
  numaNode: number;
  current: CapturedLink | null;
  max: CapturedLink | null;
}

const BDF_RE = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

/** "2.5 GT/s PCIe" → 2.5, "16.0 GT/s PCIe" → 16, "Unknown" → 0. */
export function parseSysfsLinkSpeed(s: string): number {
  if (s === "Unknown") return 0;
  const m = /^([\d.]+) GT\/s/.exec(s);
  if (!m) throw new Error(`unexpected link speed "${s}"`);
  return Number(m[1]);
}

function link(speed: string, width: string): CapturedLink | null {
  if (speed === "-" && width === "-") return null;
  return { speed: parseSysfsLinkSpeed(speed), width: Number(width) };
}

export function parseDevicesTsv(text: string): CapturedFunction[] {
  const [head, ...rows] = text.trimEnd().split("\n");
  const cols = head.split("\t");
  const at = (name: string) => {
    const i = cols.indexOf(name);
    if (i < 0) throw new Error(`devices.tsv: no column ${name}`);
    return i;
  };
  const c = {
    bdf: at("bdf"),
    path: at("sysfs_path"),
    cls: at("class"),
    vendor: at("vendor"),
    device: at("device"),
    driver: at("driver"),
    group: at("iommu_group"),
    numa: at("numa_node"),
    cs: at("current_link_speed"),
    cw: at("current_link_width"),
    ms: at("max_link_speed"),
    mw: at("max_link_width"),
  };
  return rows.map((line) => {
    const r = line.split("\t");
    const parts = r[c.path].split("/");
    // sys/devices/pci0000:00/<bdf>/…/<bdf>
    const parentPart = parts[parts.length - 2];
    return {
      bdf: r[c.bdf],
      parent: BDF_RE.test(parentPart) ? parentPart : null,
      sysfsPath: r[c.path],
      hostBridge: parts[2],
      classCode: Number.parseInt(r[c.cls], 16),
      vendor: Number.parseInt(r[c.vendor], 16),
      device: Number.parseInt(r[c.device], 16),
      driver: r[c.driver] === "-" ? null : r[c.driver],
      iommuGroup: Number(r[c.group]),
      numaNode: Number(r[c.numa]),
      current: link(r[c.cs], r[c.cw]),
      max: link(r[c.ms], r[c.mw]),
    };
  });
}

/* iommu_groups.txt */

/** `/sys/kernel/iommu_groups/<N>/devices/<BDF>` lines → groups in numeric order, members sorted. */
export function parseIommuGroups(text: string): { id: number; devices: string[] }[] {
  const byId = new Map<number, string[]>();
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const m = /^\/sys\/kernel\/iommu_groups\/(\d+)\/devices\/(\S+)$/.exec(line.trim());
    if (!m) throw new Error(`iommu_groups.txt: unexpected line "${line}"`);
    const id = Number(m[1]);
    if (!byId.has(id)) byId.set(id, []);
    byId.get(id)!.push(m[2]);
  }
  return [...byId.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([id, devices]) => ({ id, devices: devices.sort() }));
}

/* p2p-matrix.tsv */

export type CapturedMap = "bus-address" | "host-bridge" | "not-supported" | "-";

export interface P2pRow {
  provider: string;
  client: string;
  distance: number;
  map: CapturedMap;
}

export function parseP2pMatrix(text: string): P2pRow[] {
  const [head, ...rows] = text.trimEnd().split("\n");
  if (head !== "provider\tclient\tdistance\tmap")
    throw new Error(`p2p-matrix.tsv: unexpected header "${head}"`);
  return rows.map((line) => {
    const [provider, client, distance, map] = line.split("\t");
    if (!["bus-address", "host-bridge", "not-supported", "-"].includes(map))
      throw new Error(`p2p-matrix.tsv: unexpected map "${map}"`);
    return { provider, client, distance: Number(distance), map: map as CapturedMap };
  });
}

/* sysfs.tar.gz → proc/cpuinfo */

/** One member of a (ustar) tar archive, or null. Enough for the capture's small archives. */
export function tarMember(archive: Buffer, name: string): Buffer | null {
  let off = 0;
  while (off + 512 <= archive.length) {
    const header = archive.subarray(off, off + 512);
    if (header.every((b) => b === 0)) return null;
    const str = (a: number, n: number) =>
      header
        .subarray(a, a + n)
        .toString("latin1")
        .replace(/\0.*$/s, "");
    const prefix = str(345, 155);
    const file = (prefix ? `${prefix}/` : "") + str(0, 100);
    const size = Number.parseInt(str(124, 12).trim() || "0", 8);
    const type = str(156, 1);
    const data = off + 512;
    if ((type === "0" || type === "") && file.replace(/^\.\//, "") === name)
      return archive.subarray(data, data + size);
    off = data + Math.ceil(size / 512) * 512;
  }
  return null;
}

const tarCache = new Map<string, Buffer>();

/** A file from a capture's sysfs mirror (`sys/…`, `proc/cpuinfo`), or null. */
export function sysfsFile(topo: string, path: string): Buffer | null {
  let tar = tarCache.get(topo);
  if (!tar) {
    tar = gunzipSync(readFileSync(fixtureFile(topo, "sysfs.tar.gz")));
    tarCache.set(topo, tar);
  }
  return tarMember(tar, path);
}

export interface CapturedCpu {
  vendor: string;
  family: number;
  model: number;
  modelName: string;
}

/** The first processor's vendor, family, model and name from the guest's /proc/cpuinfo. */
export function capturedCpu(topo: string): CapturedCpu {
  const cpuinfo = sysfsFile(topo, "proc/cpuinfo");
  if (!cpuinfo) throw new Error(`${topo}: no proc/cpuinfo in sysfs.tar.gz`);
  const field = (k: string) => {
    const m = new RegExp(`^${k}\\s*:\\s*(.*)$`, "m").exec(cpuinfo.toString("utf8"));
    if (!m) throw new Error(`${topo}: no "${k}" in proc/cpuinfo`);
    return m[1].trim();
  };
  return {
    vendor: field("vendor_id"),
    family: Number(field("cpu family")),
    model: Number(field("model")),
    modelName: field("model name"),
  };
}

/* lspci -nnvvv */

export interface LspciRegion {
  index: number;
  type: "mem32" | "mem64" | "io";
  prefetch: boolean;
  address: bigint;
  size: bigint;
}

export interface LspciFunction {
  bdf: string;
  regions: LspciRegion[];
  /** PCIe capability: the device/port type name lspci prints ("Root Port", "Endpoint" …), or null. */
  pcieType: string | null;
  devCapMps: number | null;
  /** DevCap FLReset; null when lspci does not print it (it does only for endpoints). */
  flr: boolean | null;
  mps: number | null;
  mrrs: number | null;
  lnkCap: CapturedLink | null;
  lnkSta: CapturedLink | null;
  acsCap: number | null;
  acsCtl: number | null;
}

const SIZE_MUL: Record<string, bigint> = { "": 1n, K: 1n << 10n, M: 1n << 20n, G: 1n << 30n };
const ACS_NAMES = [
  "SrcValid",
  "TransBlk",
  "ReqRedir",
  "CmpltRedir",
  "UpstreamFwd",
  "EgressCtrl",
  "DirectTrans",
];

function acsBits(s: string): number {
  let v = 0;
  ACS_NAMES.forEach((n, i) => {
    const m = new RegExp(`${n}([+-])`).exec(s);
    if (!m) throw new Error(`lspci: no ${n} in "${s}"`);
    if (m[1] === "+") v |= 1 << i;
  });
  return v;
}

function lspciLink(s: string): CapturedLink {
  const m = /Speed (unknown|[\d.]+GT\/s)(?: \([a-z]+\))?, Width x(\d+)/.exec(s);
  if (!m) throw new Error(`lspci: cannot read link "${s}"`);
  return { speed: m[1] === "unknown" ? 0 : Number.parseFloat(m[1]), width: Number(m[2]) };
}

/** Splits `lspci -nnvvv` into functions (domain 0000, which lspci leaves out) and reads their fields. */
export function parseLspciVerbose(text: string): Map<string, LspciFunction> {
  const out = new Map<string, LspciFunction>();
  let cur: LspciFunction | null = null;
  let section = "";
  for (const line of text.split("\n")) {
    const head = /^([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) /.exec(line);
    if (head) {
      cur = {
        bdf: `0000:${head[1]}`,
        regions: [],
        pcieType: null,
        devCapMps: null,
        flr: null,
        mps: null,
        mrrs: null,
        lnkCap: null,
        lnkSta: null,
        acsCap: null,
        acsCtl: null,
      };
      out.set(cur.bdf, cur);
      section = "";
      continue;
    }
    if (!cur || !line.trim()) continue;
    const label = /^\t\t([A-Za-z0-9]+):/.exec(line);
    if (label) section = label[1];
    else if (/^\t[^\t]/.test(line)) section = "";
    const mem =
      /^\tRegion (\d): Memory at ([0-9a-f]+) \((32|64)-bit, (non-)?prefetchable\).*\[size=(\d+)([KMG]?)\]/.exec(
        line,
      );
    if (mem) {
      cur.regions.push({
        index: Number(mem[1]),
        type: mem[3] === "64" ? "mem64" : "mem32",
        prefetch: !mem[4],
        address: BigInt(`0x${mem[2]}`),
        size: BigInt(mem[5]) * SIZE_MUL[mem[6]],
      });
      continue;
    }
    const io = /^\tRegion (\d): I\/O ports at ([0-9a-f]+).*\[size=(\d+)([KMG]?)\]/.exec(line);
    if (io) {
      cur.regions.push({
        index: Number(io[1]),
        type: "io",
        prefetch: false,
        address: BigInt(`0x${io[2]}`),
        size: BigInt(io[3]) * SIZE_MUL[io[4]],
      });
      continue;
    }
    const exp =
      /^\tCapabilities: \[[0-9a-f]+\] Express \(v\d\) (.+?)(?: \(Slot[+-]\))?, (?:MSI|IntMsgNum) /.exec(line);
    if (exp) {
      cur.pcieType = exp[1];
      continue;
    }
    if (section === "DevCap") {
      const m = /MaxPayload (\d+) bytes/.exec(line);
      if (m) cur.devCapMps = Number(m[1]);
      const f = /FLReset([+-])/.exec(line);
      if (f) cur.flr = f[1] === "+";
    } else if (section === "DevCtl") {
      const m = /MaxPayload (\d+) bytes, MaxReadReq (\d+) bytes/.exec(line);
      if (m) {
        cur.mps = Number(m[1]);
        cur.mrrs = Number(m[2]);
      }
    } else if (section === "LnkCap" && label) cur.lnkCap = lspciLink(line);
    else if (section === "LnkSta" && label) cur.lnkSta = lspciLink(line);
    else if (section === "ACSCap") cur.acsCap = acsBits(line);
    else if (section === "ACSCtl") cur.acsCtl = acsBits(line);
  }
  return out;
}
