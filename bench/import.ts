/**
 * Importers against the C tools that read the same inputs, side by side in one run:
 * - a synthetic `lspci -xxxx` dump of 10,000 functions (the real pciutils dumps' and the QEMU
 *   sysfs archives' config bytes replicated under new bus numbers): our parse + decode against
 *   `lspci -F <dump> -vvv`;
 * - a synthetic sysfs tree of 10,000 functions (the QEMU sysfs archives replicated under new
 *   domain/bus numbers, written to a temp dir): our import against `lstopo --input <dir> --of xml`;
 * - the largest real fixtures: our whole CLI process against the tool that reads the same input,
 *   and node's bare start-up.
 * Both C tools start in a few ms, so the synthetic inputs are big enough for the work to dominate.
 */
import { spawnSync } from "node:child_process";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseLspciHex } from "../src/import/lspci-hex.js";
import { importSysfs, importSysfsPath } from "../src/import/sysfs.js";
import { MemFs } from "../src/import/sysfs-vfs.js";
import { readArchive, type TarEntry } from "../src/import/tar.js";
import { decodeConfig } from "../src/pci/decode.js";
import { fmtMs, report, time } from "./harness.js";

const HERE = dirname(fileURLToPath(import.meta.url));
/** The project root: bench/ (source) or dist-bench/bench/ (compiled). */
const ROOT = [join(HERE, ".."), join(HERE, "../..")].find((d) => {
  try {
    return JSON.parse(readFileSync(join(d, "package.json"), "utf8")).name === "peerdma";
  } catch {
    return false;
  }
})!;
const FIXTURES = join(ROOT, "../shared/fixtures");
/** What users run: the bin, which loads the bundled CLI that `npm run build` made. */
const CLI = join(ROOT, "bin/peerdma.js");

const hex2 = (n: number) => n.toString(16).padStart(2, "0");
const hex4 = (n: number) => n.toString(16).padStart(4, "0");
const bdfOf = (dom: number, bus: number, devfn: number) =>
  `${hex4(dom)}:${hex2(bus)}:${hex2(devfn >> 3)}.${devfn & 7}`;
const BDF_RE = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/;

/* ---------- tools ---------- */

export function hasTool(cmd: string): boolean {
  const r = spawnSync(cmd, ["--version"], { stdio: "ignore" });
  return !r.error && r.status === 0;
}

/** Best wall time of `runs` runs of a process (output discarded); throws when it fails. */
export function timeProcess(cmd: string, args: string[], runs = 5): number {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = spawnSync(cmd, args, { stdio: ["ignore", "ignore", "pipe"], maxBuffer: 1 << 26 });
    const ms = performance.now() - t0;
    if (r.error || r.status !== 0)
      throw new Error(
        `${cmd} ${args.join(" ")} failed: ${r.error?.message ?? r.stderr?.toString().slice(0, 300)}`,
      );
    best = Math.min(best, ms);
  }
  return best;
}

/* ---------- replicating functions under new bus numbers ---------- */

interface Fn {
  bus: number;
  devfn: number;
  bytes: Uint8Array;
  description: string;
}

/** One source tree (a dump's PCI domain, an archive): replicated as a unit. */
interface Unit {
  name: string;
  fns: Fn[];
}

const isBridge = (b: Uint8Array) => b.length > 0x1a && ((b[0x0e] & 0x7f) === 1 || (b[0x0e] & 0x7f) === 2);

/** Allocates bus ranges: a unit keeps its bus layout, shifted; a full domain moves to the next. */
class BusAllocator {
  domain = 0;
  next = 0;
  /** Bus map for a unit spanning `lo..hi`. */
  place(lo: number, hi: number): { domain: number; map: (b: number) => number } {
    const span = hi - lo + 1;
    if (this.next + span > 256) {
      this.domain++;
      this.next = 0;
    }
    const base = this.next;
    this.next += span;
    return { domain: this.domain, map: (b: number) => (b >= lo && b <= hi ? base + b - lo : b) };
  }
}

function span(fns: Fn[]): [number, number] {
  let lo = 255;
  let hi = 0;
  for (const f of fns) {
    lo = Math.min(lo, f.bus);
    hi = Math.max(hi, f.bus);
    if (isBridge(f.bytes) && f.bytes[0x1a] >= f.bus) hi = Math.max(hi, f.bytes[0x1a], f.bytes[0x19]);
  }
  return [lo, hi];
}

/** A copy of config bytes whose bridge bus registers follow `map`. */
function remapConfig(bytes: Uint8Array, map: (b: number) => number): Uint8Array {
  const b = bytes.slice();
  if (isBridge(b)) for (const o of [0x18, 0x19, 0x1a]) b[o] = map(b[o]);
  return b;
}

function qemuArchives(): { name: string; entries: TarEntry[] }[] {
  const dir = join(FIXTURES, "qemu");
  return readdirSync(dir)
    .sort()
    .flatMap((n) => {
      try {
        const file = join(dir, n, "sysfs.tar.gz");
        return [{ name: `qemu/${n}`, entries: readArchive(new Uint8Array(readFileSync(file)), file) }];
      } catch {
        return [];
      }
    });
}

function realDumps(): string[] {
  const dir = join(FIXTURES, "real/pciutils");
  return readdirSync(dir)
    .sort()
    .flatMap((d) =>
      readdirSync(join(dir, d))
        .filter((f) => f.endsWith(".lspci-xxxx.txt"))
        .map((f) => join(dir, d, f)),
    );
}

/** Units for the dump: every real dump's PCI domains and every QEMU archive's config files. */
function dumpUnits(): Unit[] {
  const units: Unit[] = [];
  for (const file of realDumps()) {
    const fns = parseLspciHex(readFileSync(file, "utf8"), file);
    for (const seg of [...new Set(fns.map((f) => f.segment))])
      units.push({
        name: `${file}#${seg}`,
        fns: fns.filter((f) => f.segment === seg).map((f) => ({ ...f })),
      });
  }
  for (const a of qemuArchives()) {
    const fns: Fn[] = [];
    for (const e of a.entries) {
      const m = /\/([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])\/config$/.exec(e.path);
      if (!m || e.type !== "file" || !e.data || ![64, 256, 4096].includes(e.data.length)) continue;
      fns.push({
        bus: Number.parseInt(m[2], 16),
        devfn: (Number.parseInt(m[3], 16) << 3) | Number(m[4]),
        bytes: e.data,
        // lspci -F skips a function line with nothing after the address
        description: `Device ${hex2(e.data[1])}${hex2(e.data[0])}:${hex2(e.data[3])}${hex2(e.data[2])}`,
      });
    }
    fns.sort((x, y) => x.bus - y.bus || x.devfn - y.devfn);
    units.push({ name: a.name, fns });
  }
  return units;
}

function hexLines(b: Uint8Array): string {
  const out: string[] = [];
  for (let off = 0; off < b.length; off += 16) {
    let line = `${off < 0x100 ? hex2(off) : off.toString(16)}:`;
    for (let k = 0; k < 16; k++) line += ` ${hex2(b[off + k])}`;
    out.push(line);
  }
  return out.join("\n");
}

/** `lspci -xxxx`-style text of `target` functions (replicas of the fixtures, domains from 0). */
export function syntheticDump(target = 10_000): { text: string; functions: number; units: number } {
  const units = dumpUnits();
  const alloc = new BusAllocator();
  const parts: string[] = [];
  let n = 0;
  let replicas = 0;
  while (n < target)
    for (const u of units) {
      if (n >= target) break;
      const [lo, hi] = span(u.fns);
      const { domain, map } = alloc.place(lo, hi);
      replicas++;
      for (const f of u.fns) {
        if (n >= target) break;
        const d = f.description ? ` ${f.description}` : "";
        parts.push(`${bdfOf(domain, map(f.bus), f.devfn)}${d}\n${hexLines(remapConfig(f.bytes, map))}\n`);
        n++;
      }
    }
  return { text: parts.join("\n"), functions: n, units: replicas };
}

/* ---------- synthetic sysfs tree ---------- */

const MINIMAL_CPU: [string, string][] = [
  ["sys/devices/system/cpu/online", "0\n"],
  ["sys/devices/system/cpu/possible", "0\n"],
  ["sys/devices/system/cpu/cpu0/topology/core_id", "0\n"],
  ["sys/devices/system/cpu/cpu0/topology/physical_package_id", "0\n"],
  ["sys/devices/system/cpu/cpu0/topology/core_siblings", "1\n"],
  ["sys/devices/system/cpu/cpu0/topology/core_siblings_list", "0\n"],
  ["sys/devices/system/cpu/cpu0/topology/thread_siblings", "1\n"],
  ["sys/devices/system/cpu/cpu0/topology/thread_siblings_list", "0\n"],
];

/**
 * Writes a sysfs tree of `target` PCI functions under `dir`: every QEMU archive's
 * `sys/devices/pci0000:00` subtree (files, links, folders) replicated under new domain/bus
 * numbers, with index links, config bus registers and iommu_group links renumbered; plus the
 * first archive's proc/cpuinfo and NUMA folders and a one-CPU topology (hwloc needs one).
 * `copy`, when given, receives the same tree in memory.
 */
export function writeSyntheticSysfs(
  dir: string,
  target = 10_000,
  copy?: MemFs,
): { functions: number; files: number } {
  const archives = qemuArchives();
  let files = 0;
  const made = new Set<string>();
  const folder = (rel: string) => {
    if (made.has(rel)) return;
    mkdirSync(join(dir, rel), { recursive: true });
    copy?.add(rel, "dir");
    made.add(rel);
  };
  const write = (rel: string, data: Uint8Array | string) => {
    folder(dirname(rel));
    writeFileSync(join(dir, rel), data);
    copy?.add(rel, "file", typeof data === "string" ? new TextEncoder().encode(data) : data);
    files++;
  };
  const link = (rel: string, target: string) => {
    folder(dirname(rel));
    symlinkSync(target, join(dir, rel));
    copy?.add(rel, "symlink", undefined, target);
    files++;
  };
  // shared parts, from the first archive
  const first = archives[0].entries;
  for (const e of first) {
    if (!(e.path.startsWith("proc/") || e.path.startsWith("sys/devices/system/node/"))) continue;
    if (e.type === "file") write(e.path, e.data ?? new Uint8Array(0));
    else if (e.type === "dir") folder(e.path);
  }
  for (const [p, t] of MINIMAL_CPU) write(p, t);
  link("sys/bus/cpu/devices/cpu0", "../../../devices/system/cpu/cpu0");
  for (const a of archives)
    for (const e of a.entries)
      if (e.type === "dir" && /^sys\/bus\/pci\/drivers\/[^/]+$/.test(e.path)) folder(e.path);

  const units = archives.map((a) => {
    const tree = a.entries.filter((e) => e.path.startsWith("sys/devices/pci0000:00/"));
    const fns: Fn[] = tree
      .filter(
        (e): e is TarEntry & { data: Uint8Array } =>
          e.type === "file" && !!e.data && e.path.endsWith("/config"),
      )
      .flatMap((e) => {
        const m = BDF_RE.exec(e.path.split("/").slice(-2)[0]);
        return m
          ? [{ bus: Number.parseInt(m[2], 16), devfn: 0, bytes: e.data, description: e.path.slice(0, -7) }]
          : [];
      });
    return { name: a.name, tree, fns };
  });
  const alloc = new BusAllocator();
  let n = 0;
  let replica = 0;
  const renameBdf = (part: string, domain: number, map: (b: number) => number) => {
    const m = BDF_RE.exec(part);
    return m ? `${hex4(domain)}:${hex2(map(Number.parseInt(m[2], 16)))}:${m[3]}.${m[4]}` : part;
  };
  while (n < target)
    for (const u of units) {
      if (n >= target) break;
      const [lo, hi] = span(u.fns);
      const { domain, map } = alloc.place(lo, hi);
      replica++;
      const host = `pci${hex4(domain)}:${hex2(map(lo))}`;
      // functions of this replica that fit in the target (the last replica may be cut short)
      const keep = new Set(
        u.fns
          .map((f) => f.description)
          .sort()
          .slice(0, target - n),
      );
      n += keep.size;
      const inKept = (path: string) => {
        const parts = path.split("/");
        let fnDir = "";
        for (let i = 3; i < parts.length; i++)
          if (BDF_RE.test(parts[i])) fnDir = parts.slice(0, i + 1).join("/");
        return fnDir === "" || keep.has(fnDir);
      };
      for (const e of u.tree) {
        if (!inKept(e.path)) continue;
        const parts = e.path.split("/");
        parts[2] = host;
        for (let i = 3; i < parts.length; i++) parts[i] = renameBdf(parts[i], domain, map);
        const rel = parts.join("/");
        const name = parts[parts.length - 1];
        if (e.type === "dir") folder(rel);
        else if (e.type === "file") {
          const data = e.data ?? new Uint8Array(0);
          write(rel, name === "config" ? remapConfig(data, map) : data);
        } else if (e.type === "symlink" && e.linkTarget !== undefined) {
          // group numbers per replica, so the reported groups stay apart
          const t =
            name === "iommu_group"
              ? e.linkTarget.replace(/(\d+)\/?$/, (g) => String(replica * 1000 + Number.parseInt(g, 10)))
              : e.linkTarget;
          link(rel, t);
        }
        // the index link, as sysfs has it: sys/bus/pci/devices/<bdf> -> ../../../devices/…
        if (e.type === "dir" && BDF_RE.test(name))
          link(`sys/bus/pci/devices/${name}`, `../../../${rel.slice(4)}`);
      }
    }
  return { functions: n, files };
}

/* ---------- the rows ---------- */

function ratioText(ours: number, theirs: number): string {
  return `${(ours / theirs).toFixed(2)}×`;
}

function verdict(ok: boolean): string {
  return ok ? "" : "  TARGET MISSED";
}

/** (b) parse + decode of a 10,000-function dump against `lspci -F <dump> -vvv`. */
export function reportLspciDecode(tmp: string): void {
  const dump = syntheticDump();
  const file = join(tmp, "synthetic.lspci-xxxx.txt");
  writeFileSync(file, dump.text);
  const mib = (dump.text.length / 2 ** 20).toFixed(1);
  let decoded = 0;
  const ours = time(() => {
    const fns = parseLspciHex(readFileSync(file, "utf8"), file);
    decoded = 0;
    for (const f of fns) {
      decodeConfig(f.bytes, f.bytes.length);
      decoded++;
    }
  }, 5);
  if (decoded !== dump.functions) throw new Error(`decoded ${decoded} of ${dump.functions} functions`);
  if (!hasTool("lspci")) {
    report({
      bench: `lspci -xxxx parse+decode, ${dump.functions} fns (${mib} MiB)`,
      figure: fmtMs(ours.ms),
      baseline: "n/a",
      ratio: "-",
      target: "≤ 1.0× lspci -F -vvv",
    });
    process.stdout.write("  (lspci not installed: apt-get install pciutils; row not compared)\n");
    return;
  }
  const theirs = timeProcess("lspci", ["-F", file, "-vvv"], 5);
  report({
    bench: `lspci -xxxx parse+decode, ${dump.functions} fns (${mib} MiB)`,
    figure: fmtMs(ours.ms),
    baseline: `${fmtMs(theirs)} lspci`,
    ratio: ratioText(ours.ms, theirs),
    target: "≤ 1.0×",
  });
  process.stdout.write(
    `  (${dump.units} replicas of ${realDumps().length} real dumps' domains and the QEMU archives; baseline = lspci -F <dump> -vvv, whole process, best of 5)${verdict(ours.ms <= theirs)}\n`,
  );
}

const BDF_OR_DOMAIN_DIR = /^([0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]|pci[0-9a-f]{4,8}:[0-9a-f]{2})$/i;
const LINK_FILES = ["current_link_speed", "current_link_width", "max_link_speed", "max_link_width"];

/**
 * The system calls the sysfs import makes, alone: list every folder of the device tree, read the
 * index links, and per function the files and links it reads (config, numa_node, resource, the
 * link files, driver and iommu_group). No parsing, no model. Its time is the floor of an import
 * built this way, to set beside lstopo's.
 */
export function sysfsSyscallFloor(sys: string): number {
  const buf = new Uint8Array(65536);
  const readAll = (path: string, limit = buf.length) => {
    const fd = openSync(path, "r");
    try {
      // as the import reads an attribute: a read shorter than asked and than a page ends it
      for (let total = 0; total < limit; ) {
        const want = limit - total;
        const n = readSync(fd, buf, total, want, null);
        total += n;
        if (n === 0 || (n < want && n < 4096)) break;
      }
    } finally {
      closeSync(fd);
    }
  };
  // every folder of the device tree is listed; function folders are kept with their entries
  const functions: { path: string; has: Set<string> }[] = [];
  const walk = (path: string, isFunction: boolean) => {
    const entries = readdirSync(path, { withFileTypes: true });
    if (isFunction) functions.push({ path, has: new Set(entries.map((e) => e.name)) });
    for (const e of entries)
      if (e.isDirectory() && BDF_OR_DOMAIN_DIR.test(e.name)) walk(join(path, e.name), !/^pci/.test(e.name));
  };
  for (const e of readdirSync(join(sys, "devices"), { withFileTypes: true }))
    if (e.isDirectory() && /^pci/.test(e.name)) walk(join(sys, "devices", e.name), false);
  const index = join(sys, "bus/pci/devices");
  for (const name of readdirSync(index)) readlinkSync(join(index, name));
  for (const { path, has } of functions) {
    readAll(join(path, "config"), 4096);
    for (const f of ["numa_node", "resource", ...LINK_FILES]) if (has.has(f)) readAll(join(path, f));
    if (has.has("driver")) readlinkSync(join(path, "driver"));
    else if (has.has("uevent")) readAll(join(path, "uevent")); // the driver's name, when unbound links lack it
    if (has.has("iommu_group")) readlinkSync(join(path, "iommu_group"));
  }
  return functions.length;
}

/** (c) import of a 10,000-function sysfs tree against `lstopo --input <dir> --of xml`. */
export function reportSysfsImport(tmp: string): void {
  const dir = join(tmp, "sysfs");
  const t0 = performance.now();
  const inMemory = new MemFs("synthetic");
  const tree = writeSyntheticSysfs(dir, 10_000, inMemory);
  const writeMs = performance.now() - t0;
  let got = 0;
  const ours = time(() => {
    got = importSysfsPath(dir).fabric.devices().length;
  }, 3);
  if (got !== tree.functions) throw new Error(`imported ${got} of ${tree.functions} functions`);
  const model = time(() => {
    got = importSysfs(inMemory, { sysRoot: "sys" }).fabric.devices().length;
  }, 3);
  if (got !== tree.functions) throw new Error(`imported ${got} of ${tree.functions} functions from memory`);
  const bench = `sysfs import, ${tree.functions} fns (${(tree.files / 1000).toFixed(0)} k files)`;
  if (!hasTool("lstopo")) {
    report({ bench, figure: fmtMs(ours.ms), baseline: "n/a", ratio: "-", target: "≤ 1.0× lstopo" });
    process.stdout.write(
      "  (skipped the comparison: lstopo is missing — apt-get install hwloc — so this row has no baseline)\n",
    );
    return;
  }
  const theirs = timeProcess("lstopo", ["--input", dir, "--of", "xml"], 3);
  const whole = timeProcess("lstopo", ["--input", dir, "--of", "xml", "--whole-io"], 3);
  report({
    bench,
    figure: fmtMs(ours.ms),
    baseline: `${fmtMs(theirs)} lstopo`,
    ratio: ratioText(ours.ms, theirs),
    target: "≤ 1.0×",
  });
  process.stdout.write(
    `  (tree written in ${fmtMs(writeMs)}; baseline = lstopo --input <dir> --of xml, best of 3; with --whole-io ${fmtMs(whole)} = ${ratioText(ours.ms, whole)})${verdict(ours.ms <= theirs)}\n`,
  );
  const floor = time(() => sysfsSyscallFloor(join(dir, "sys")), 3);
  process.stdout.write(
    `  (the import's system calls alone, no parsing: ${fmtMs(floor.ms)} = ${ratioText(floor.ms, theirs)} lstopo — the floor of reading what this import reads)\n`,
  );
  process.stdout.write(
    `  (the import with no system calls, the same tree already in memory: ${fmtMs(model.ms)} = ${ratioText(model.ms, theirs)} lstopo — the model's own cost)\n`,
  );
}

/**
 * (d) whole-process time on the largest real fixtures, beside the C tool that reads each. The
 * issue's target is start-up (< 150 ms); the fixture rows are printed for comparison, as it asks.
 */
export function reportLargestFixtures(tmp: string): void {
  const node = timeProcess(process.execPath, ["-e", "0"], 7);
  report({ bench: "node start-up (node -e 0)", figure: fmtMs(node), baseline: "-", ratio: "-" });
  const cli = (args: string[]) => timeProcess(process.execPath, [CLI, ...args], 5);
  const startup = cli(["machines"]);
  report({
    bench: "peerdma start-up (peerdma machines)",
    figure: fmtMs(startup),
    baseline: `${fmtMs(node)} node`,
    ratio: ratioText(startup, node),
    target: "< 150 ms",
  });
  process.stdout.write(
    `  (whole process: module loading + commander + the built-in list)${verdict(startup < 150)}\n`,
  );

  // largest by function count: stelline (lspci -tv, 198 functions); no C tool reads -tv text
  const stelline = join(FIXTURES, "real/stelline/asus-esc8000a-e12-epyc-genoa-4x-rtx6000ada/lspci-tv.txt");
  const st = cli(["topo", stelline]);
  report({
    bench: "peerdma topo, stelline lspci -tv (198 fns)",
    figure: fmtMs(st),
    baseline: `${fmtMs(node)} node`,
    ratio: ratioText(st, node),
  });
  process.stdout.write("  (the largest real fixture; neither lstopo nor lspci -F reads lspci -tv text)\n");

  // largest that lstopo reads: the dell-dcs8000z sysfs snapshot (137 functions), unpacked
  const tarball = join(
    FIXTURES,
    "real/hwloc/dell-dcs8000z-xeon-e5-nvme-mic/32em64t-2n8c+dax+nvme+mic+dimms.tar.bz2",
  );
  const unpacked = join(tmp, "dcs8000z");
  mkdirSync(unpacked, { recursive: true });
  const tar = spawnSync("tar", ["xjf", tarball, "-C", unpacked]);
  const root = tar.status === 0 ? readdirSync(unpacked).map((n) => join(unpacked, n))[0] : undefined;
  if (root) {
    const ours = cli(["iommu-groups", root]);
    const packed = cli(["iommu-groups", tarball]);
    const bench = "iommu-groups, dell-dcs8000z sysfs (137 fns)";
    if (hasTool("lstopo")) {
      const theirs = timeProcess("lstopo", ["--input", root, "--of", "xml"], 5);
      report({
        bench,
        figure: fmtMs(ours),
        baseline: `${fmtMs(theirs)} lstopo`,
        ratio: ratioText(ours, theirs),
      });
    } else report({ bench, figure: fmtMs(ours), baseline: "n/a", ratio: "-" });
    process.stdout.write(
      `  (unpacked folder, both tools; from the .tar.bz2 itself ours is ${fmtMs(packed)}${hasTool("lstopo") ? "" : "; lstopo missing: apt-get install hwloc"})\n`,
    );
  } else process.stdout.write("  (could not unpack the dell-dcs8000z snapshot with tar; row skipped)\n");

  // largest that lspci -F reads: the asus-p6t6 -xxxx dump (53 functions)
  const asus = join(FIXTURES, "real/pciutils/asus-p6t6-ws-x58-nf200/tree-asus-p6t6.lspci-xxxx.txt");
  const ours = cli(["iommu-groups", asus]);
  const bench = "iommu-groups, asus-p6t6 lspci -xxxx (53 fns)";
  if (hasTool("lspci")) {
    const theirs = timeProcess("lspci", ["-F", asus, "-vvv"], 5);
    report({
      bench,
      figure: fmtMs(ours),
      baseline: `${fmtMs(theirs)} lspci`,
      ratio: ratioText(ours, theirs),
    });
  } else report({ bench, figure: fmtMs(ours), baseline: "n/a", ratio: "-" });
  process.stdout.write("  (baseline = lspci -F <dump> -vvv)\n");
}

/** Every import row, in a temp dir removed afterwards. */
export function reportImport(): void {
  const tmp = mkdtempSync(join(tmpdir(), "peerdma-bench-"));
  try {
    reportLspciDecode(tmp);
    reportSysfsImport(tmp);
    reportLargestFixtures(tmp);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
