/** `peerdma export`: the merged model written as NCCL and hwloc XML reads back to the same machine. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { buildMatrix } from "../../src/analysis/matrix.js";
import { exportHwlocXml, exportNcclTopology } from "../../src/export/index.js";
import { loadBuiltin } from "../../src/import/builtin.js";
import { importTexts } from "../../src/import/detect.js";
import { Machine } from "../../src/machine/machine.js";
import type { Fabric } from "../../src/pci/fabric.js";

const endpoints = (f: Fabric) =>
  f
    .endpoints()
    .map((d) => `${d.bdf} ${d.vendor.toString(16)}:${d.device.toString(16)} ${d.classCode.toString(16)}`)
    .sort();

for (const name of ["storage-rdma", "qemu-p2p-switch", "qemu-mixed"]) {
  test(`${name}: NCCL topology export reads back with the same endpoints, ids and path classes (PHB ≡ NODE)`, () => {
    const src = loadBuiltin(name).fabric;
    const xml = exportNcclTopology(src);
    const back = importTexts([{ text: xml, file: `${name}.nccl.xml` }]).fabric;
    assert.deepEqual(endpoints(back), endpoints(src));
    const a = buildMatrix(new Machine(src));
    const b = buildMatrix(new Machine(back));
    // An NCCL file has no host-bridge level (a <cpu> is the whole root complex of a NUMA node), so
    // "through one host bridge" (PHB) and "between host bridges of one node" (NODE) read back alike.
    const norm = (t: string) => (t === "NODE" ? "PHB" : t);
    const cls = (m: typeof a) => new Map(m.pairs.map((p) => [`${p.provider}>${p.client}`, norm(p.pathType)]));
    const ca = cls(a);
    for (const [k, v] of cls(b)) assert.equal(v, ca.get(k), k);
  });

  test(`${name}: hwloc XML export reads back with every function under the same parent`, () => {
    const src = loadBuiltin(name).fabric;
    const back = importTexts([{ text: exportHwlocXml(src), file: `${name}.hwloc.xml` }]).fabric;
    const shape = (f: Fabric) =>
      f
        .devices()
        .filter((d) => !d.isVirtfn)
        .map(
          (d) =>
            `${d.bdf}<${d.bus.self?.bdf ?? d.hostBridge.label} ${d.vendor.toString(16)}:${d.device.toString(16)}`,
        )
        .sort();
    assert.deepEqual(shape(back), shape(src));
  });
}
