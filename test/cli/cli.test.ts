/** The CLI as a user runs it: JSON contracts of DESIGN.md, text output, exit codes, no stack traces. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseP2pMatrix, readFixture } from "../helpers/qemu-fixture.js";

const ROOT = new URL("../../", import.meta.url).pathname;

function peerdma(...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "src/cli/main.ts"), ...args], {
    encoding: "utf8",
    cwd: ROOT,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const BDF_RE = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
const HEX_RE = /^0x[0-9a-f]+$/;

test("matrix --json follows the contract: devices and pairs with exactly the documented fields", () => {
  const r = peerdma("matrix", "builtin:spec-f", "--json");
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  for (const d of j.devices) {
    assert.deepEqual(Object.keys(d).sort(), ["bdf", "class", "device", "name", "vendor"]);
    assert.match(d.bdf, BDF_RE);
    for (const k of ["vendor", "device", "class"]) assert.match(d[k], HEX_RE);
  }
  assert.equal(j.pairs.length, j.devices.length ** 2);
  for (const p of j.pairs) {
    assert.deepEqual(Object.keys(p).sort(), [
      "bandwidthGBps",
      "client",
      "distance",
      "effectiveGBps",
      "limit",
      "mapType",
      "pathType",
      "provider",
      "reason",
    ]);
    assert.ok(["BUS_ADDR", "THRU_HOST_BRIDGE", "NOT_SUPPORTED"].includes(p.mapType));
    assert.ok(["X", "PIX", "PXB", "PHB", "NODE", "SYS"].includes(p.pathType));
    if (p.mapType === "NOT_SUPPORTED") assert.equal(p.distance, null);
    else assert.equal(typeof p.distance, "number");
  }
});

function switchPair(speed: number, flit: boolean): string {
  const link = `{ speed: ${speed}, width: 16${flit ? ", flit: true" : ""} }`;
  const ep = (slot: string) =>
    `              - { at: "${slot}", kind: downstream-port, id: "10b5:8796", link: ${link}, mps: 256, below: [ { at: "00.0", id: "10de:2331", mps: 256, link: ${link}, bars: [ { index: 0, type: mem64, prefetch: true, size: 1MiB } ] } ] }`;
  const dir = mkdtempSync(join(tmpdir(), "peerdma-"));
  const file = join(dir, "pair.yaml");
  writeFileSync(
    file,
    `name: pair
hostBridges:
  - functions:
      - { at: "00.0", kind: host-bridge, id: "8086:1234" }
      - at: "01.0"
        kind: root-port
        id: "1b36:000c"
        link: ${link}
        mps: 256
        below:
          - at: "00.0"
            kind: upstream-port
            id: "10b5:8796"
            link: ${link}
            mps: 256
            below:
${ep("00.0")}
${ep("01.0")}
`,
  );
  return file;
}

test("BW-31 matrix pair whose bottleneck is a Gen4 x16 link → 31.508 / 28.807; Gen6 x16 flit → 128.000 / 111.059", () => {
  for (const [speed, flit, line, eff] of [
    [16, false, 31.508, 28.807],
    [64, true, 128, 111.059],
  ] as const) {
    const r = peerdma("matrix", switchPair(speed, flit), "--json");
    assert.equal(r.code, 0, r.err);
    const p = JSON.parse(r.out).pairs.find(
      (x: { provider: string; client: string }) => x.provider !== x.client,
    );
    assert.equal(p.bandwidthGBps, line);
    assert.equal(p.effectiveGBps, eff);
    assert.equal(p.pathType, "PIX");
  }
});

test("matrix on the QEMU p2p-switch capture agrees with the real kernel's p2p-matrix.tsv for every pair", () => {
  const j = JSON.parse(peerdma("matrix", "builtin:qemu-p2p-switch", "--json").out);
  const kernel = parseP2pMatrix(readFixture("p2p-switch", "p2p-matrix.tsv"));
  assert.ok(kernel.length > 0);
  for (const row of kernel) {
    const p = j.pairs.find(
      (x: { provider: string; client: string }) => x.provider === row.provider && x.client === row.client,
    );
    assert.ok(p, `${row.provider} → ${row.client} missing`);
    assert.equal(p.distance ?? -1, row.distance, `${row.provider} → ${row.client}`);
    if (row.map !== "-")
      assert.equal(
        p.mapType,
        { "bus-address": "BUS_ADDR", "host-bridge": "THRU_HOST_BRIDGE", "not-supported": "NOT_SUPPORTED" }[
          row.map
        ],
      );
  }
});

test("matrix text is an nvidia-smi-like grid with a legend and the kernel verdict", () => {
  const r = peerdma("matrix", "builtin:qemu-p2p-switch");
  assert.equal(r.code, 0);
  assert.match(r.out, /Path classes/);
  assert.match(r.out, /PIX {2}= connection traversing at most a single PCIe bridge/);
  assert.match(r.out, /BUS 4/);
  assert.match(r.out, /CPU: AuthenticAMD family 0xf/);
});

test("iommu-groups --json: { groups, reported, agree } and the groups equal the kernel's on qemu-mixed", () => {
  const j = JSON.parse(peerdma("iommu-groups", "builtin:qemu-mixed", "--json").out);
  assert.deepEqual(Object.keys(j).sort(), ["agree", "groups", "reasons", "reported"]);
  assert.equal(j.reported, null);
  assert.equal(j.agree, null);
  assert.equal(j.groups.length, 13);
  assert.deepEqual(j.groups[2], { id: 2, devices: ["0000:00:03.0", "0000:02:01.0", "0000:02:02.0"] });
});

test("topo --json: functions with bdf, ids, kind, parent and link", () => {
  const j = JSON.parse(peerdma("topo", "builtin:spec-f", "--json").out);
  const f = (b: string) => j.functions.find((x: { bdf: string }) => x.bdf === b);
  assert.deepEqual(
    { kind: f("0000:03:00.0").kind, parent: f("0000:03:00.0").parent, link: f("0000:03:00.0").link },
    { kind: "endpoint", parent: "0000:02:00.0", link: { speed: 16, width: 16, maxSpeed: 16, maxWidth: 16 } },
  );
  assert.equal(f("0000:00:01.0").kind, "root-port");
  assert.equal(f("0000:00:01.0").parent, null);
  assert.equal(f("0000:01:00.0").kind, "upstream-port");
  assert.equal(f("0000:02:00.0").kind, "downstream-port");
  assert.equal(f("0000:00:04.0").kind, "rciep");
  assert.equal(f("0000:00:00.0").kind, "host-bridge");
  assert.equal(f("0000:04:00.1").physfn, "0000:04:00.0");
});

test("explain walks the path and names each rule, with the kernel's own log lines and the fix", () => {
  const r = peerdma("explain", "builtin:qemu-p2p-mixed", "01:00.0", "01:00.1");
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /NOT_SUPPORTED/);
  assert.match(r.out, /ACS redirect is set between the client and provider \(0000:01:00\.0\)/);
  assert.match(r.out, /pci=disable_acs_redir=0000:00:02\.0/);
  assert.match(r.out, /setpci -s 0000:00:02\.0 ECAP_ACS\+0x6\.w=0011/);
  assert.match(r.out, /price: IOMMU groups 13 → 12/);
});

test("demo tells the story on the built-in storage/RDMA host (text and --json)", () => {
  const r = peerdma("demo");
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /Kernel profile: Linux v6\.19/);
  assert.match(r.out, /SPDK/);
  assert.match(r.out, /data direct path is faster/);
  const j = JSON.parse(peerdma("demo", "--json").out);
  assert.equal(j.spdk.explanation.mapType, "BUS_ADDR");
  const [ordinary, dd] = j.dataDirect.candidates;
  assert.equal(ordinary.limit, "host bridge forwarding");
  assert.ok(dd.effectiveGBps > ordinary.effectiveGBps);
});

test("bad input exits 2 with a message naming the problem, never a stack trace", () => {
  const dir = mkdtempSync(join(tmpdir(), "peerdma-"));
  const bad = join(dir, "bad.yaml");
  writeFileSync(bad, 'name: x\nhostBridges:\n  - functions:\n      - { at: "00.0", id: "8086:zz" }\n');
  const cases = [
    { args: ["topo", bad], want: /bad\.yaml:4: hostBridges\[0\]\.functions\[0\]\.id: expected a PCI id/ },
    { args: ["matrix", "builtin:nope"], want: /no built-in machine "nope"/ },
    { args: ["matrix", join(dir, "missing.yaml")], want: /no such file/ },
    { args: ["explain", "builtin:spec-f", "03:00.0", "09:00.0"], want: /no PCI function 0000:09:00\.0/ },
    { args: ["explain", "builtin:spec-f", "3:0", "04:00.0"], want: /is not a PCI address/ },
    { args: ["matrix", "builtin:spec-f", "--cpu", "zen5"], want: /--cpu "zen5"/ },
    { args: ["frobnicate"], want: /unknown command/ },
  ];
  for (const c of cases) {
    const r = peerdma(...c.args);
    assert.equal(r.code, 2, `${c.args.join(" ")}: ${r.err}`);
    assert.match(r.err, c.want);
    assert.doesNotMatch(r.err, /\bat .*\.ts:\d+/, "no stack trace");
  }
});

test("--help teaches: commands, sources, exit codes, examples", () => {
  const r = peerdma("--help");
  assert.equal(r.code, 0);
  for (const w of ["demo", "matrix", "explain", "iommu-groups", "topo", "machines", "Exit codes", "builtin:"])
    assert.ok(r.out.includes(w), w);
  assert.match(peerdma("matrix", "--help").out, /Examples:/);
});

test("BW-14 a reserved MPS read from a file is bad input: the machine file is refused, and a config dump's code 6 fails with exit 2", () => {
  const dir = mkdtempSync(join(tmpdir(), "peerdma-"));
  const mf = join(dir, "mps.yaml");
  writeFileSync(
    mf,
    'name: x\nhostBridges:\n  - functions:\n      - { at: "00.0", id: "8086:1234", mps: 8192 }\n',
  );
  const r = peerdma("matrix", mf);
  assert.equal(r.code, 2);
  assert.match(r.err, /mps\.yaml:4: .*mps: expected a payload size of 128/);
  // an lspci -x dump of a root port and an endpoint whose DevCtl carries MaxPayload code 6
  const cfg = (hdr: number, devctl: number, bus = 0) => {
    const b = new Uint8Array(256);
    const v = new DataView(b.buffer);
    v.setUint16(0, 0x1b36, true);
    v.setUint16(2, hdr ? 0x000c : 0x0010, true);
    v.setUint16(6, 0x10, true); // capability list
    v.setUint8(0x0b, hdr ? 0x06 : 0x01);
    v.setUint8(0x0a, hdr ? 0x04 : 0x08);
    v.setUint8(0x0e, hdr);
    if (hdr) {
      v.setUint8(0x19, bus + 1);
      v.setUint8(0x1a, bus + 1);
    }
    v.setUint8(0x34, 0x40);
    v.setUint8(0x40, 0x10);
    v.setUint16(0x42, hdr ? 0x42 : 0x02, true);
    v.setUint16(0x48, devctl, true);
    v.setUint32(0x4c, 0x41, true);
    v.setUint16(0x52, 0x41, true);
    return b;
  };
  const dump = (bdf: string, b: Uint8Array) =>
    `${bdf} device\n${Array.from({ length: 16 }, (_, r) => `${(r * 16).toString(16).padStart(2, "0")}: ${Array.from(b.subarray(r * 16, r * 16 + 16), (x) => x.toString(16).padStart(2, "0")).join(" ")}`).join("\n")}\n`;
  const hex = join(dir, "dump.txt");
  writeFileSync(
    hex,
    `${dump("00:01.0", cfg(1, 0))}\n${dump("01:00.0", cfg(0, 6 << 5))}\n${dump("00:00.0", cfg(0, 0))}`,
  );
  const m = peerdma("matrix", hex);
  assert.equal(m.code, 2, m.out + m.err);
  assert.match(m.err, /DevCtl\.MaxPayload holds the reserved code 6/);
});

test("BW-30 --compare nccl prints NCCL's figure beside ours: 24.000 vs 28.807 (Gen4 x16), 48.000 vs 57.614 (Gen5 x16)", () => {
  for (const [speed, nccl, eff] of [
    [16, "24.000", "28.807"],
    [32, "48.000", "57.614"],
  ] as const) {
    const file = switchPair(speed, false);
    const r = peerdma("matrix", file, "--compare", "nccl");
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`${eff}\\s+${nccl}`));
    const j = JSON.parse(peerdma("matrix", file, "--compare", "nccl", "--json").out);
    const p = j.pairs.find((x: { provider: string; client: string }) => x.provider !== x.client);
    assert.equal(p.ncclGBps, Number(nccl));
  }
  assert.equal(peerdma("matrix", "builtin:spec-f", "--compare", "roofline").code, 2);
});

test("the shipped bundle (npm install builds it) reads the data files and runs the demo as the sources do", (t) => {
  const bundle = join(ROOT, "dist/cli/bundle/main.mjs");
  if (!existsSync(bundle)) {
    t.skip("dist/cli/bundle/main.mjs not built (npm run build)");
    return;
  }
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [join(ROOT, "bin/peerdma.js"), ...args], { encoding: "utf8", cwd: tmpdir() });
  const machines = run("machines", "--json");
  assert.equal(machines.status, 0, machines.stderr);
  const names = JSON.parse(machines.stdout).machines.map((m: { name: string }) => m.name);
  assert.ok(names.includes("builtin:storage-rdma"), names.join(" "));
  // pci.ids found from the bundle's folder, not the working directory
  const topo = run("topo", "builtin:storage-rdma");
  assert.equal(topo.status, 0, topo.stderr);
  const demo = run("demo", "--json");
  assert.equal(demo.status, 0, demo.stderr);
  assert.deepEqual(
    JSON.parse(demo.stdout).spdk.overRdma,
    JSON.parse(peerdma("demo", "--json").out).spdk.overRdma,
    "the bundle answers differently from the sources: stale? run npm run build",
  );
});
