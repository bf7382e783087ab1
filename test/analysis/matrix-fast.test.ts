/**
 * The scalable matrix engine equals `buildMatrix`'s per-pair reference, pair for pair and field for
 * field (reason and limit text included), on every built-in machine, on real fixtures (VFs,
 * switches, several host bridges), and on random fabrics whose MPS, DMA engines and NUMA nodes
 * are scrambled so that memoised classes are put to the test. Errors the reference throws (a
 * reserved MPS code) are thrown by the engine too, at the same pair.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";
import fc from "fast-check";
import {
  buildMatrix,
  describeDevice,
  type Matrix,
  type MatrixOptions,
  matrixPair,
} from "../../src/analysis/matrix.js";
import { buildMatrixFast, forEachMatrixPair, writeMatrixJson } from "../../src/analysis/matrix-fast.js";
import { builtinMachines, loadBuiltin } from "../../src/import/builtin.js";
import { fabricFromDescription } from "../../src/import/machine-file.js";
import { MachineSchema } from "../../src/import/machine-schema.js";
import { loadSources } from "../../src/import/source.js";
import { Machine } from "../../src/machine/machine.js";
import type { Fabric } from "../../src/pci/fabric.js";
import { PCI_EXP_DEVCTL } from "../../src/pci/regs.js";
import { machineArb } from "../helpers/random-fabric.js";

const AMD = { vendor: "AuthenticAMD", family: 0x19, source: "test" };

/** The definition (buildMatrix before delegation): every ordered pair through the reference functions. */
function reference(m: Machine, opts: MatrixOptions = {}): Matrix {
  const eps = opts.only ?? m.fabric.endpoints();
  return {
    machine: m.name,
    cpu: { vendor: m.cpu.vendor, family: m.cpu.family, source: m.cpu.source, assumed: m.cpuAssumed },
    devices: eps.map((d) => describeDevice(d, opts.names)),
    pairs: eps.flatMap((p) => eps.map((c) => matrixPair(m, p, c, opts))),
  };
}

function outcome<T>(f: () => T): { ok: T } | { error: string } {
  try {
    return { ok: f() };
  } catch (e) {
    return { error: `${(e as Error).name}: ${(e as Error).message}` };
  }
}

/** Pair by pair (a mismatch names the pair), then whole-object equality (key order included). */
function assertSame(m: Machine, opts: MatrixOptions = {}, label = m.name): number {
  const eps = opts.only ?? m.fabric.endpoints();
  const want = outcome(() => eps.flatMap((p) => eps.map((c) => matrixPair(m, p, c, opts))));
  const got = outcome(() => buildMatrixFast(m, opts).pairs);
  if ("error" in want) {
    assert.deepEqual(got, want, `${label}: the reference throws, so must the engine`);
    return 0;
  }
  assert.ok("ok" in got, `${label}: engine threw ${"error" in got ? got.error : ""}`);
  assert.equal(got.ok.length, want.ok.length);
  for (const [i, w] of want.ok.entries())
    assert.deepEqual(got.ok[i], w, `${label}: pair ${w.provider} → ${w.client}`);
  assert.equal(JSON.stringify(got.ok), JSON.stringify(want.ok), `${label}: key order`);
  return want.ok.length;
}

test("matrix-fast equals the per-pair reference on every built-in machine (Intel and AMD CPU, with and without --compare nccl)", () => {
  const names = builtinMachines().map((b) => b.name);
  assert.ok(names.length >= 3);
  for (const name of names) {
    const { fabric } = loadBuiltin(name);
    assertSame(new Machine(fabric), {}, name);
    assertSame(new Machine(fabric, { cpu: AMD }), { compare: "nccl" }, `${name} (AMD, nccl)`);
    const eps = fabric.endpoints();
    assertSame(new Machine(fabric), { only: eps.slice(1, 4) }, `${name} (only)`);
  }
});

test("buildMatrix's whole result (devices, cpu, machine) is the same from both engines", () => {
  for (const b of builtinMachines()) {
    const m = new Machine(loadBuiltin(b.name).fabric);
    const fast = buildMatrixFast(m);
    const slow = reference(m);
    assert.deepEqual(fast, slow, b.name);
  }
});

const FIXTURES = new URL("../../../shared/fixtures/", import.meta.url).pathname;
const REAL_SOURCES: string[][] = [
  ["real/hwloc/cisco-ucs-vic-manyvfs/16intel64-manyVFs.hwloc-v2.xml"], // SR-IOV VFs
  ["real/hwloc/nvidia-dgx2h/nvidiaDGX2.hwloc-v2.xml"], // switches below switches
  ["real/hwloc/ibm-x3950-m2/96em64t-4n4d3ca2co-pci.hwloc-v2.xml"], // many host bridges, NUMA
  ["real/hwloc/dell-poweredge-r910/40intel64-2g2n4c+pcilocality.tar.bz2"], // sysfs, NUMA
  ["real/pciutils/asus-p6t6-ws-x58-nf200/tree-asus-p6t6.lspci-xxxx.txt"], // config bytes
  ["qemu/p2p-switch/sysfs.tar.gz"],
  ["qemu/p2p-mixed/sysfs.tar.gz"],
  ["qemu/mf-rootports-mixedacs/sysfs.tar.gz"],
  [
    "real/stelline/asus-esc8000a-e12-epyc-genoa-4x-rtx6000ada/lspci-tv.txt",
    "real/stelline/asus-esc8000a-e12-epyc-genoa-4x-rtx6000ada/lspci-vvv-selected.txt",
    "real/stelline/asus-esc8000a-e12-epyc-genoa-4x-rtx6000ada/lscpu.txt",
  ],
];

test("matrix-fast equals the reference on real machines (VFs, nested switches, NUMA, config dumps)", () => {
  let pairs = 0;
  for (const rel of REAL_SOURCES) {
    const paths = rel.map((r) => FIXTURES + r);
    if (!paths.every(existsSync)) assert.fail(`missing fixture ${rel.join(" + ")}`);
    const { fabric } = loadSources(paths);
    pairs += assertSame(new Machine(fabric), {}, rel[0]);
    pairs += assertSame(new Machine(fabric, { cpu: AMD }), { compare: "nccl" }, `${rel[0]} (AMD)`);
  }
  assert.ok(pairs > 1000, `compared ${pairs} pairs`);
});

/** Scrambles what memo classes depend on: MPS codes (reserved ones included), DMA engines, NUMA. */
const scrambleArb = fc.record({
  mps: fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 40 }),
  mpsWhere: fc.array(fc.nat(), { maxLength: 40 }),
  dma: fc.array(fc.option(fc.constantFrom(2, 5, 12.5, 40), { nil: undefined }), { maxLength: 40 }),
  numa: fc.array(fc.integer({ min: -1, max: 2 }), { maxLength: 40 }),
});

function scramble(f: Fabric, s: Scramble) {
  const devs = f.devices();
  for (const [i, code] of s.mps.entries()) {
    const d = devs[(s.mpsWhere[i] ?? i) % devs.length];
    const o = d.pcieCapOffset;
    if (!o || (code === 6 && i % 4)) continue; // reserved codes now and then
    const v = d.config.read16(o + PCI_EXP_DEVCTL);
    d.config.write16(o + PCI_EXP_DEVCTL, (v & ~(7 << 5)) | (code << 5));
  }
  const eps = f.endpoints();
  for (const [i, g] of s.dma.entries()) if (g !== undefined && eps[i]) eps[i].perf = { dmaEngineGBps: g };
  for (const [i, n] of s.numa.entries()) if (eps[i]) eps[i].numaNode = n;
}
type Scramble = { mps: number[]; mpsWhere: number[]; dma: (number | undefined)[]; numa: number[] };

test("property: matrix-fast equals the reference on random fabrics (ACS, widths, MPS, DMA engines, NUMA, CPUs)", () => {
  fc.assert(
    fc.property(machineArb, scrambleArb, fc.boolean(), (input, s, nccl) => {
      const f = fabricFromDescription(MachineSchema.parse(input));
      scramble(f, s);
      assertSame(new Machine(f), nccl ? { compare: "nccl" } : {}, "random");
    }),
    { numRuns: 200 },
  );
});

test("property: random fabrics repeated side by side (many pairs per memo class) still match", () => {
  fc.assert(
    fc.property(machineArb, machineArb, (a, b) => {
      // the same shapes under four host bridges: memo classes shared across them
      const hbs = [...a.hostBridges, ...b.hostBridges, ...a.hostBridges, ...b.hostBridges].map((h, i) => ({
        ...h,
        domain: i,
      }));
      const f = fabricFromDescription(MachineSchema.parse({ ...a, hostBridges: hbs }));
      assertSame(new Machine(f), {}, "repeated");
    }),
    { numRuns: 60 },
  );
});

test("forEachMatrixPair streams the pairs in buildMatrix order and keeps none", () => {
  const m = new Machine(loadBuiltin("storage-rdma").fabric);
  const want = reference(m).pairs;
  const got: string[] = [];
  const e = forEachMatrixPair(m, {}, (p) => got.push(JSON.stringify(p)));
  assert.deepEqual(
    got,
    want.map((p) => JSON.stringify(p)),
  );
  assert.ok(e.referencePairs <= want.length);
});

test("writeMatrixJson writes exactly what JSON.stringify(…, 2) prints for the CLI's object", () => {
  const replacer = (_k: string, v: unknown) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v);
  for (const b of [...builtinMachines().map((x) => x.name), "empty"]) {
    const fabric = b === "empty" ? loadBuiltin("spec-f").fabric : loadBuiltin(b).fabric;
    const m = new Machine(fabric);
    const only = b === "empty" ? [] : undefined;
    const mx = buildMatrix(m, { only });
    const extra = { machine: mx.machine, cpu: mx.cpu, sources: [{ file: "x", big: 5n }], skip: undefined };
    const want = `${JSON.stringify({ devices: mx.devices, pairs: mx.pairs, ...extra }, replacer, 2)}\n`;
    let got = "";
    let chunks = 0;
    writeMatrixJson(
      m,
      (c) => {
        got += c;
        chunks++;
      },
      { only, extra: () => extra, replacer, chunk: 4096 },
    );
    assert.equal(got, want, b);
    if (mx.pairs.length > 50) assert.ok(chunks > 1, "written in chunks");
  }
});

test("buildMatrix delegates large fabrics to the engine with the same result", () => {
  // 4 host bridges × 2 root ports × switch of 3 ports × 3 functions = 72 … endpoints
  const input = {
    name: "wide",
    hostBridges: Array.from({ length: 6 }, (_, h) => ({
      domain: h,
      bus: 0,
      functions: [
        { at: "00.0", kind: "host-bridge" as const, id: h % 2 ? "8086:2020" : "8086:1234" },
        ...Array.from({ length: 3 }, (_, r) => ({
          at: `0${r + 1}.0`,
          kind: "root-port" as const,
          id: "1b36:000c",
          link: { speed: 16, width: 16 },
          acs: { cap: ["SV", "RR", "CR", "UF"] as const, ctrl: r % 2 ? (["RR", "CR"] as const) : [] },
          below: [
            {
              at: "00.0",
              kind: "upstream-port" as const,
              id: "10b5:8796",
              link: { speed: 16, width: 16 },
              below: Array.from({ length: 3 }, (_, d) => ({
                at: `0${d}.0`,
                kind: "downstream-port" as const,
                id: "10b5:8796",
                link: { speed: 16, width: d === 2 ? 8 : 16 },
                acs: { cap: ["SV", "RR", "CR", "UF"] as const, ctrl: d % 2 ? (["RR"] as const) : [] },
                below: Array.from({ length: 3 }, (_, fn) => ({
                  at: `00.${fn}`,
                  id: "1b36:0010",
                  class: 0x010802,
                  link: { speed: 16, width: fn === 1 ? 4 : 16 },
                  bars: [{ index: 0, type: "mem64" as const, prefetch: true, size: "1MiB" }],
                })),
              })),
            },
          ],
        })),
      ],
    })),
  };
  const f = fabricFromDescription(MachineSchema.parse(input));
  const m = new Machine(f);
  assert.ok(f.endpoints().length >= 150);
  assertSame(m, {}, "wide");
  const viaBuild = buildMatrix(m);
  assert.deepEqual(viaBuild, reference(m));
});
