/**
 * The hand-written machine files data/machines/qemu-<topology>.yaml against the QEMU captures they
 * describe (shared/fixtures/qemu/<topology>): the functions, tree and links must be what the kernel
 * saw, and then our IOMMU groups and P2PDMA verdicts must equal the kernel's.
 *
 * (a) functions = devices.tsv BDFs, same vendor/device/class
 * (b) parent bridge = the one in devices.tsv's sysfs_path
 * (c) link speed/width = devices.tsv current_link_* / max_link_*
 * (d) computeIommuGroups = iommu_groups.txt (ids and members)
 * (e) distance and map type = p2p-matrix.tsv, where the capture has one
 * (f) BARs, PCIe type, MPS/MRRS, FLR, LnkCap/LnkSta, ACS = lspci -nnvvv
 * (g) drivers, NUMA nodes, host bridges and CPU = the capture
 * (h) config header (ids, revision, class, header type, subsystem, BAR and bus-number registers)
 *     = the `config` file of the sysfs mirror
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseMachineFile } from "../../src/import/machine-file.js";
import { computeIommuGroups } from "../../src/iommu/index.js";
import { calcMapTypeAndDist, distanceMany, type MapType } from "../../src/p2pdma/index.js";
import { IORESOURCE_IO, IORESOURCE_MEM_64, IORESOURCE_PREFETCH, type PciDev } from "../../src/pci/device.js";
import { DEFAULT_CPU, Fabric } from "../../src/pci/fabric.js";
import { PCI_EXP_DEVCAP, PCI_EXP_TYPE } from "../../src/pci/regs.js";
import {
  type CapturedMap,
  capturedCpu,
  hasFixture,
  parseDevicesTsv,
  parseIommuGroups,
  parseLspciVerbose,
  parseP2pMatrix,
  QEMU_FIXTURES,
  QEMU_TOPOLOGIES,
  readFixture,
  sysfsFile,
} from "../helpers/qemu-fixture.js";

const MACHINES = fileURLToPath(new URL("../../data/machines/", import.meta.url));

function load(topo: string) {
  const file = `qemu-${topo}.yaml`;
  const { description, fabric } = parseMachineFile(readFileSync(MACHINES + file, "utf8"), file);
  return { description, fabric, cpu: fabric.cpu ?? DEFAULT_CPU };
}

const hex = (n: number, w: number) => `0x${n.toString(16).padStart(w, "0")}`;

const MAP_OF: Record<Exclude<CapturedMap, "-">, MapType> = {
  "bus-address": "BUS_ADDR",
  "host-bridge": "THRU_HOST_BRIDGE",
  "not-supported": "NOT_SUPPORTED",
};

/** The PCIe type names lspci prints after "Express (vN)". */
const LSPCI_TYPE: Record<string, number> = {
  Endpoint: PCI_EXP_TYPE.ENDPOINT,
  "Legacy Endpoint": PCI_EXP_TYPE.LEG_END,
  "Root Port": PCI_EXP_TYPE.ROOT_PORT,
  "Upstream Port": PCI_EXP_TYPE.UPSTREAM,
  "Downstream Port": PCI_EXP_TYPE.DOWNSTREAM,
  "PCI-Express to PCI/PCI-X Bridge": PCI_EXP_TYPE.PCI_BRIDGE,
  "Root Complex Integrated Endpoint": PCI_EXP_TYPE.RC_END,
};

/** Config registers compared with the capture's `config` file: [what, offset, size]. */
type Reg = [string, number, 1 | 2 | 4];
const HEADER_REGS: Reg[] = [
  ["vendor", 0x00, 2],
  ["device", 0x02, 2],
  ["revision/class", 0x08, 4],
  ["header type", 0x0e, 1],
];
const TYPE0_REGS: Reg[] = [
  ...[0, 1, 2, 3, 4, 5].map((i): Reg => [`BAR${i}`, 0x10 + 4 * i, 4]),
  ["subsystem", 0x2c, 4],
];
const TYPE1_REGS: Reg[] = [
  ["BAR0", 0x10, 4],
  ["BAR1", 0x14, 4],
  ["primary/secondary bus", 0x18, 2],
  ["subordinate bus", 0x1a, 1],
];

test("qemu fixtures: every captured topology has a machine file", () => {
  const captured = readdirSync(QEMU_FIXTURES, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  assert.deepEqual(captured, [...QEMU_TOPOLOGIES].sort());
  const files = readdirSync(MACHINES)
    .filter((f) => f.startsWith("qemu-"))
    .sort();
  assert.deepEqual(files, QEMU_TOPOLOGIES.map((t) => `qemu-${t}.yaml`).sort());
});

for (const topo of QEMU_TOPOLOGIES) {
  const captured = parseDevicesTsv(readFixture(topo, "devices.tsv"));

  test(`qemu-${topo} (a) functions, vendor, device and class equal devices.tsv`, () => {
    const { description, fabric } = load(topo);
    assert.equal(description.name, `qemu-${topo}`);
    const ours = fabric.devices().map((d) => d.bdf);
    assert.deepEqual([...ours].sort(), captured.map((c) => c.bdf).sort());
    for (const c of captured) {
      const d = fabric.get(c.bdf);
      assert.deepEqual(
        { bdf: d.bdf, vendor: hex(d.vendor, 4), device: hex(d.device, 4), class: hex(d.classCode, 6) },
        { bdf: c.bdf, vendor: hex(c.vendor, 4), device: hex(c.device, 4), class: hex(c.classCode, 6) },
      );
    }
  });

  test(`qemu-${topo} (b) parent bridges equal the sysfs paths`, () => {
    const { fabric } = load(topo);
    for (const c of captured) {
      const d = fabric.get(c.bdf);
      assert.equal(Fabric.upstreamBridge(d)?.bdf ?? null, c.parent, `parent of ${c.bdf}`);
      // The sysfs path starts at pci<domain>:<bus>, the host bridge the function hangs off.
      assert.equal(d.hostBridge.label, c.hostBridge, `host bridge of ${c.bdf}`);
    }
  });

  test(`qemu-${topo} (c) link speed and width equal devices.tsv`, () => {
    const { fabric } = load(topo);
    let checked = 0;
    for (const c of captured) {
      const link = fabric.get(c.bdf).link;
      if (!c.current && !c.max) {
        assert.equal(link, null, `${c.bdf} has no link in the capture`);
        continue;
      }
      assert.ok(link, `${c.bdf} has a link in the capture`);
      if (c.current)
        assert.deepEqual({ speed: link.speed, width: link.width }, c.current, `${c.bdf} current link`);
      if (c.max) assert.deepEqual({ speed: link.maxSpeed, width: link.maxWidth }, c.max, `${c.bdf} max link`);
      checked++;
    }
    assert.ok(checked > 0);
  });

  test(`qemu-${topo} (d) computeIommuGroups equals iommu_groups.txt`, () => {
    const { fabric } = load(topo);
    const kernel = parseIommuGroups(readFixture(topo, "iommu_groups.txt"));
    const ours = computeIommuGroups(fabric).map((g) => ({
      id: g.id,
      devices: g.devices.map((d) => d.bdf).sort(),
    }));
    assert.deepEqual(ours, kernel);
    // devices.tsv repeats the group of every function.
    for (const c of captured) assert.ok(kernel.find((g) => g.id === c.iommuGroup)?.devices.includes(c.bdf));
  });

  if (hasFixture(topo, "p2p-matrix.tsv")) {
    test(`qemu-${topo} (e) P2PDMA distance and map type equal p2p-matrix.tsv`, () => {
      const { fabric, cpu } = load(topo);
      const rows = parseP2pMatrix(readFixture(topo, "p2p-matrix.tsv"));
      assert.ok(rows.length > 0);
      const wrong: string[] = [];
      for (const r of rows) {
        const provider: PciDev = fabric.get(r.provider);
        const client: PciDev = fabric.get(r.client);
        const dist = distanceMany(provider, [client], cpu);
        const type = calcMapTypeAndDist(provider, client, cpu).type;
        const want = r.map === "-" ? null : MAP_OF[r.map];
        if (dist !== r.distance || (want !== null && type !== want))
          wrong.push(
            `${r.provider} -> ${r.client}: ours distance ${dist} ${type}, kernel distance ${r.distance} ${r.map}`,
          );
      }
      assert.deepEqual(wrong, [], `${wrong.length} of ${rows.length} pairs differ`);
    });
  }

  test(`qemu-${topo} (f) BARs, PCIe type, MPS/MRRS, FLR, LnkCap/LnkSta and ACS equal lspci -nnvvv`, () => {
    const { fabric } = load(topo);
    const lspci = parseLspciVerbose(readFixture(topo, "lspci-nnvvv.txt"));
    assert.deepEqual([...lspci.keys()].sort(), captured.map((c) => c.bdf).sort());
    for (const [bdf, l] of lspci) {
      const d = fabric.get(bdf);
      const bars = d.resources
        .filter((r) => r.flags !== 0)
        .map((r) => ({
          index: r.index,
          type: r.flags & IORESOURCE_IO ? "io" : r.flags & IORESOURCE_MEM_64 ? "mem64" : "mem32",
          prefetch: (r.flags & IORESOURCE_PREFETCH) !== 0,
          address: r.start,
          size: r.len,
        }));
      assert.deepEqual(bars, l.regions, `${bdf} BARs`);
      assert.equal(d.pcieType, l.pcieType === null ? null : LSPCI_TYPE[l.pcieType], `${bdf} PCIe type`);
      if (l.pcieType !== null) {
        const o = d.pcieCapOffset;
        assert.equal(
          128 << (d.config.read32(o + PCI_EXP_DEVCAP) & 7),
          l.devCapMps,
          `${bdf} DevCap MaxPayload`,
        );
        assert.deepEqual({ mps: d.mps, mrrs: d.mrrs }, { mps: l.mps, mrrs: l.mrrs }, `${bdf} DevCtl`);
        if (l.flr !== null) assert.equal(d.flrCapable, l.flr, `${bdf} FLReset`);
        const link = d.link;
        if (link) assert.ok(l.lnkCap && l.lnkSta, `${bdf}: lspci shows LnkCap and LnkSta`);
        if (l.lnkCap)
          assert.deepEqual({ speed: link?.maxSpeed, width: link?.maxWidth }, l.lnkCap, `${bdf} LnkCap`);
        if (l.lnkSta) assert.deepEqual({ speed: link?.speed, width: link?.width }, l.lnkSta, `${bdf} LnkSta`);
      }
      // ACSCtl is what counts (disable_acs_redir clears it and leaves ACSCap alone).
      assert.deepEqual(
        { cap: d.acsCapOffset ? d.acsCapReg : null, ctl: d.acsCapOffset ? d.acsCtrlReg : null },
        { cap: l.acsCap, ctl: l.acsCtl },
        `${bdf} ACS`,
      );
    }
  });

  test(`qemu-${topo} (g) drivers, NUMA nodes, host bridges and CPU equal the capture`, () => {
    const { fabric, cpu } = load(topo);
    for (const c of captured) {
      const d = fabric.get(c.bdf);
      assert.equal(d.driver, c.driver, `${c.bdf} driver`);
      assert.equal(d.numaNode, c.numaNode, `${c.bdf} numa_node`);
    }
    assert.deepEqual(
      fabric.hostBridges.map((h) => h.label),
      [...new Set(captured.map((c) => c.hostBridge))].sort(),
    );
    const real = capturedCpu(topo);
    assert.deepEqual(
      { vendor: cpu.vendor, family: cpu.family, model: cpu.model, modelName: cpu.modelName },
      { vendor: real.vendor, family: real.family, model: real.model, modelName: real.modelName },
    );
  });

  test(`qemu-${topo} (h) config header equals the captured config space`, () => {
    const { fabric } = load(topo);
    for (const c of captured) {
      const d = fabric.get(c.bdf);
      const real = sysfsFile(topo, `${c.sysfsPath}/config`);
      assert.ok(real && real.length >= 64, `${c.bdf}: config in sysfs.tar.gz`);
      assert.equal(d.config.size, real.length, `${c.bdf} config size (256 conventional, 4096 PCIe)`);
      const regs = [...HEADER_REGS, ...((real[0x0e] & 0x7f) === 1 ? TYPE1_REGS : TYPE0_REGS)];
      for (const [what, off, size] of regs) {
        const want: number =
          size === 1 ? real.readUInt8(off) : size === 2 ? real.readUInt16LE(off) : real.readUInt32LE(off);
        assert.equal(hex(d.configRead(off, size), size * 2), hex(want, size * 2), `${c.bdf} ${what}`);
      }
    }
  });
}
