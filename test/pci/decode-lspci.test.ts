/**
 * src/pci/decode.ts against pciutils' own lspci: for the same config bytes, every decoded field
 * must equal what `lspci -F <dump> -vvv -n -D` prints (pciutils 3.9, installed from Debian).
 * Bytes come from the real pciutils test dumps, every config file of the QEMU captures and of
 * the hwloc/ghw snapshots, the QEMU guests' own live `lspci -nnvvv`, and a seeded set of
 * generated config spaces covering the capabilities real dumps lack (TPH, SR-IOV, ATS, PRI,
 * PASID) with randomised registers, lengths and broken capability lists.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { parseLspciHex } from "../../src/import/lspci-hex.js";
import { importSysfsPath } from "../../src/import/sysfs.js";
import { readArchive } from "../../src/import/tar.js";
import {
  acsCap,
  ariCap,
  atsCap,
  buildConfigSpace,
  msixCap,
  pasidCap,
  pcieCap,
  pmCap,
  priCap,
  sriovCap,
  tphRequesterCap,
} from "../../src/pci/capabilities.js";
import { decodeConfig } from "../../src/pci/decode.js";
import { fixtureFile, QEMU_TOPOLOGIES, readFixture } from "../helpers/qemu-fixture.js";
import { Comparison, compareFunction, parseLspciVvv } from "./decode-lspci-text.js";

const SHARED = fileURLToPath(new URL("../../../shared/fixtures/", import.meta.url));

/** lspci from pciutils: present, or installed from Debian as .ci/run does; null when impossible. */
function ensureLspci(): string | null {
  const has = () => spawnSync("lspci", ["--version"], { encoding: "utf8" }).status === 0;
  if (has()) return null;
  if (process.getuid?.() === 0 && spawnSync("sh", ["-c", "command -v apt-get"]).status === 0) {
    spawnSync(
      "sh",
      ["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pciutils"],
      {
        stdio: "ignore",
        timeout: 300_000,
      },
    );
    if (has()) return null;
  }
  return "lspci (pciutils) is not installed and could not be installed with apt-get";
}
const skipReason = ensureLspci();
if (skipReason) console.log(`# SKIP decode-lspci: ${skipReason}`);

const work = mkdtempSync(join(tmpdir(), "peerdma-lspci-"));
after(() => rmSync(work, { recursive: true, force: true }));

function runLspci(dumpFile: string): string {
  return execFileSync("lspci", ["-F", dumpFile, "-vvv", "-n", "-D"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"], // lspci warns about libkmod on stderr
    maxBuffer: 1 << 28,
  });
}

interface Fn {
  bdf: string;
  devfn: number;
  bytes: Uint8Array;
}

/** Writes functions as an `lspci -xxxx`-style dump (lspci -F reads exactly this). */
function writeDump(name: string, fns: Fn[]): string {
  const lines: string[] = [];
  for (const f of fns) {
    lines.push(`${f.bdf} dump`);
    for (let i = 0; i < f.bytes.length; i += 16) {
      const row = Array.from(f.bytes.subarray(i, i + 16), (b) => b.toString(16).padStart(2, "0")).join(" ");
      lines.push(`${i.toString(16).padStart(i < 0x100 ? 2 : 3, "0")}: ${row}`);
    }
    lines.push("");
  }
  const file = join(work, name);
  writeFileSync(file, lines.join("\n"));
  return file;
}

/** Decodes every function and compares it with lspci's text for the same bytes. */
function compareDump(label: string, dumpFile: string, fns: Fn[]): Comparison {
  const parsed = parseLspciVvv(runLspci(dumpFile));
  const cmp = new Comparison(label);
  for (const f of fns) {
    const l = parsed.get(f.bdf);
    assert.ok(l, `${label}: lspci printed ${f.bdf}`);
    compareFunction(cmp, decodeConfig(f.bytes), l, f.devfn);
  }
  return cmp;
}

/** Every field the decoder offers, as compared; filled by the tests, checked at the end. */
const allFields = new Set<string>();
let totalCompared = 0;

function expectNoMismatch(t: { diagnostic(m: string): void }, cmp: Comparison): void {
  totalCompared += cmp.compared;
  for (const f of cmp.fieldsSeen) allFields.add(f);
  t.diagnostic(`${cmp.source}: ${cmp.compared} fields compared, ${cmp.mismatches.length} mismatches`);
  assert.ok(cmp.compared > 0, `${cmp.source}: nothing compared`);
  assert.deepEqual(cmp.mismatches.slice(0, 20), [], `${cmp.source}: decode differs from lspci`);
}

function findFiles(dir: string, re: RegExp): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findFiles(p, re));
    else if (re.test(name)) out.push(p);
  }
  return out;
}

const realDumps = findFiles(join(SHARED, "real/pciutils"), /\.lspci-xxxx\.txt$/);

for (const file of realDumps) {
  const name = file.slice(SHARED.length);
  test(`decode = lspci -vvv for ${name}`, { skip: skipReason ?? false }, (t) => {
    const fns = parseLspciHex(readFileSync(file, "utf8"), file).map((f) => ({
      bdf: f.bdf,
      devfn: f.devfn,
      bytes: f.bytes,
    }));
    expectNoMismatch(t, compareDump(name, file, fns));
  });
}

/**
 * The functions of a sysfs snapshot with the config bytes it held, read straight from the
 * archive (not through the importer); functions without a config file are left out.
 */
function sysfsFunctions(archive: string): Fn[] {
  const entries = readArchive(new Uint8Array(readFileSync(archive)), archive);
  const out: Fn[] = [];
  for (const e of entries) {
    const m =
      /\/devices\/pci[0-9a-f:]+\/(?:.*\/)?([0-9a-f]{4,8}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])\/config$/.exec(
        e.path,
      );
    if (!m || e.type !== "file" || !e.data?.length) continue;
    const devfn = (Number.parseInt(m[3], 16) << 3) | Number(m[4]);
    out.push({ bdf: `${m[1]}:${m[2]}:${m[3]}.${m[4]}`, devfn, bytes: e.data });
  }
  return out;
}

for (const topo of QEMU_TOPOLOGIES) {
  test(`decode = lspci -vvv for the config files of qemu/${topo}/sysfs.tar.gz, and = the guest's own lspci -nnvvv`, {
    skip: skipReason ?? false,
  }, (t) => {
    const fns = sysfsFunctions(fixtureFile(topo, "sysfs.tar.gz"));
    const r = importSysfsPath(fixtureFile(topo, "sysfs.tar.gz"));
    assert.equal(fns.length, r.fabric.devices().length);
    // The fabric keeps the snapshot's bytes (bridge bus registers included): decoding it is decoding what was read.
    for (const f of fns) {
      assert.deepEqual(
        r.fabric.get(f.bdf).config.bytes.slice(0, f.bytes.length),
        f.bytes,
        `${topo} ${f.bdf} bytes`,
      );
      assert.equal(r.configLength.get(f.bdf), f.bytes.length);
    }
    expectNoMismatch(t, compareDump(`qemu/${topo} (lspci -F)`, writeDump(`${topo}.txt`, fns), fns));
    // The same bytes as lspci read them live in the guest (through sysfs, as root).
    const live = parseLspciVvv(readFixture(topo, "lspci-nnvvv.txt"));
    const cmp = new Comparison(`qemu/${topo} (live lspci -nnvvv)`);
    for (const f of fns) {
      const l = live.get(f.bdf);
      assert.ok(l, `${topo}: ${f.bdf} in lspci-nnvvv.txt`);
      compareFunction(cmp, decodeConfig(f.bytes), l, f.devfn);
    }
    expectNoMismatch(t, cmp);
  });
}

const realSnapshots = [
  "real/hwloc/dell-dcs8000z-xeon-e5-nvme-mic/32em64t-2n8c+dax+nvme+mic+dimms.tar.bz2",
  "real/hwloc/dell-poweredge-r910/40intel64-2g2n4c+pcilocality.tar.bz2",
  "real/hwloc/kvm-vm-pcidomain32bits/2pa-pcidomain32bits.tar.bz2",
  "real/hwloc/nec-sx-aurora-a300-8/32intel64-2p8co2t+8ve.tar.bz2",
];
for (const snap of realSnapshots) {
  test(`decode = lspci -vvv for the 64-byte config files of ${snap}`, { skip: skipReason ?? false }, (t) => {
    const fns = sysfsFunctions(join(SHARED, snap));
    assert.ok(fns.length > 0);
    expectNoMismatch(t, compareDump(snap, writeDump(`${snap.split("/").pop()}.txt`, fns), fns));
  });
}

/* Generated config spaces: every capability the decoder reads, registers randomised. */

const typeArb = fc.constantFrom(0, 1, 4, 5, 6, 7, 8, 9, 10, 3);
const genArb = fc.record({
  type: typeArb,
  version: fc.constantFrom(1, 2, 2, 2),
  noise: fc.uint8Array({ minLength: 0x400, maxLength: 0x400 }),
  mask: fc.uint8Array({ minLength: 0x400, maxLength: 0x400 }),
  length: fc.constantFrom(64, 256, 4096, 4096, 4096, 4096),
  breakList: fc.constantFrom("none", "none", "none", "loop", "broken", "ext-loop", "pointer"),
  pointer: fc.integer({ min: 0, max: 255 }),
  stTable: fc.constantFrom("none", "cap", "msix") as fc.Arbitrary<"none" | "cap" | "msix">,
});

type Gen = typeof genArb extends fc.Arbitrary<infer T> ? T : never;

function generate(g: Gen, n: number): Uint8Array {
  const bridge = [4, 5, 6, 7, 8].includes(g.type);
  const cfg = buildConfigSpace(
    {
      vendor: 0x8086,
      device: n & 0xffff,
      classCode: bridge ? 0x060400 : 0x020000,
      headerType: bridge ? 1 : 0,
    },
    [
      pmCap(),
      msixCap({ tableSize: 4 }),
      pcieCap({ type: g.type, link: { speed: 8, width: 8 } }),
      acsCap({ cap: 0x5f, ctrl: 0x1d }),
      tphRequesterCap({ stTable: g.stTable, stTableSize: 8 }),
      sriovCap({ totalVfs: 8, numVfs: 4, vfOffset: 1, vfStride: 1, vfDevice: 0x1018 }),
      ariCap(),
      atsCap(),
      priCap(),
      pasidCap(),
    ],
  );
  const b = cfg.bytes;
  // Keep the list structure (ids, next pointers, extended headers); randomise everything else.
  const keep = new Set<number>([0x0e, 0x34]);
  for (const c of cfg.capabilities()) keep.add(c.offset).add(c.offset + 1);
  for (const c of cfg.extCapabilities()) for (let k = 0; k < 4; k++) keep.add(c.offset + k);
  for (let i = 0; i < 0x400; i++) if (!keep.has(i) && g.mask[i] < 180) b[i] = g.noise[i];
  b[6] |= 0x10; // capability list present
  const pcie = cfg.findCapability(0x10);
  b[pcie + 2] = (g.type << 4) | (g.version === 1 ? 1 : b[pcie + 2] & 0x0f || 2);
  const caps = cfg.capabilities();
  const ext = cfg.extCapabilities();
  if (g.breakList === "loop") b[caps[caps.length - 1].offset + 1] = caps[0].offset;
  if (g.breakList === "broken") b[caps[1].offset] = 0xff;
  if (g.breakList === "pointer") b[caps[0].offset + 1] = g.pointer;
  if (g.breakList === "ext-loop") {
    const last = ext[ext.length - 1].offset;
    const hdr = new DataView(b.buffer).getUint32(last, true);
    new DataView(b.buffer).setUint32(last, ((hdr & 0xfffff) | (ext[1].offset << 20)) >>> 0, true);
  }
  return b.slice(0, g.length);
}

test("decode = lspci -vvv for 400 generated config spaces (TPH, SR-IOV, ARI, ATS, PRI, PASID, ACS; random registers, lengths, broken lists)", {
  skip: skipReason ?? false,
}, (t) => {
  const samples = fc.sample(genArb, { seed: 0x9eed, numRuns: 400 });
  const fns: Fn[] = samples.map((g, n) => {
    const devfn = n & 0xff;
    const bus = 1 + (n >> 8);
    const bdf = `0000:${bus.toString(16).padStart(2, "0")}:${(devfn >> 3).toString(16).padStart(2, "0")}.${devfn & 7}`;
    return { bdf, devfn, bytes: generate(g, n) };
  });
  expectNoMismatch(t, compareDump("generated", writeDump("generated.txt", fns), fns));
});

test("decode-lspci: every field of the decoder was compared with lspci at least once", {
  skip: skipReason ?? false,
}, (t) => {
  const required = [
    "header.vendor",
    "header.device",
    "header.class",
    "header.revision",
    "header.bus",
    "header.subsystem",
    "capabilities[].offset",
    "capabilities[].name",
    "capabilityListEnd",
    "extCapabilities[].offset",
    "extCapabilities[].name",
    "express.typeName",
    "express.version",
    "express.slot",
    "devCap.maxPayload",
    "devCap.flr",
    "devCtl.maxPayload",
    "devCtl.maxReadReq",
    "lnkCap.speedGTs",
    "lnkCap.width",
    "lnkSta.speedGTs",
    "lnkSta.width",
    "lnkCap2.present",
    "lnkCap2.supportedSpeeds",
    "lnkCtl2.targetSpeedGTs",
    "devCap2.tphComp",
    "devCap2.extTphComp",
    "devCap2.ariFwd",
    "devCtl2.ariFwd",
    "acs.cap.SV",
    "acs.cap.RR",
    "acs.cap.CR",
    "acs.cap.UF",
    "acs.ctl.SV",
    "acs.ctl.RR",
    "acs.ctl.CR",
    "acs.ctl.UF",
    "acs.ctl.EC",
    "acs.ctl.DT",
    "tph.intVectorMode",
    "tph.deviceSpecificMode",
    "tph.extendedRequester",
    "tph.stLocation",
    "sriov.ctl.enable",
    "sriov.ctl.ariHierarchy",
    "sriov.totalVfs",
    "sriov.numVfs",
    "sriov.vfOffset",
    "sriov.vfStride",
    "sriov.vfDeviceId",
    "ari.cap.nextFunction",
    "ari.ctl.functionGroup",
    "ats.invalidateQueueDepth",
    "ats.enable",
    "pri.enable",
    "pri.capacity",
    "pasid.cap.maxWidth",
    "pasid.ctl.enable",
  ];
  const missing = required.filter((f) => !allFields.has(f));
  t.diagnostic(`${totalCompared} fields compared in all; ${allFields.size} distinct fields`);
  assert.deepEqual(missing, []);
});
