import assert from "node:assert/strict";
import { test } from "node:test";
import { Iommu, X86_MSI_REGION } from "../../src/iommu/iommu.js";
import type { PciDev } from "../../src/pci/device.js";
import { specF } from "../helpers/spec-f.js";

/** A stand-in for computeIommuGroups: the given sets share a group, everyone else is alone. */
function groupsOf(devs: PciDev[], shared: PciDev[][] = []) {
  const id = new Map<PciDev, number>();
  devs.forEach((d, i) => {
    id.set(d, 100 + i);
  });
  shared.forEach((set, k) => {
    for (const d of set) id.set(d, k);
  });
  return (d: PciDev) => id.get(d);
}

test("one default DMA domain per group: members share it, other groups get their own", () => {
  const { fabric, dev } = specF();
  const iommu = new Iommu(fabric, groupsOf(fabric.devices(), [[dev.EPa, dev.DSPa]]));
  const a = iommu.domainOf(dev.EPa);
  assert.ok(a);
  assert.equal(a.type, "DMA");
  assert.equal(iommu.domainOf(dev.DSPa), a);
  assert.equal(iommu.defaultDomainOf(dev.EPa), a);
  const c = iommu.domainOf(dev.EPc);
  assert.ok(c && c !== a);
  assert.equal(iommu.groupIdOf(dev.EPa), 0);
  assert.deepEqual(
    iommu.groupMembers(dev.EPa).map((d) => d.bdf),
    [dev.DSPa.bdf, dev.EPa.bdf],
  );
  assert.notEqual(a.id, c.id);
});

test("behindIommu false (EPb of F) or no group -> no domain: the device uses dma-direct", () => {
  const { fabric, dev } = specF();
  assert.equal(dev.EPb.behindIommu, false);
  const iommu = new Iommu(fabric, (d) => (d === dev.EPc ? undefined : 7));
  assert.equal(iommu.domainOf(dev.EPb), null);
  assert.equal(iommu.groupIdOf(dev.EPb), null);
  assert.equal(iommu.usesDmaIommu(dev.EPb), false);
  assert.equal(iommu.domainOf(dev.EPc), null, "no group");
  assert.equal(iommu.usesDmaIommu(dev.EPa), true);
  // without an IOMMU an access reaches the address itself
  assert.deepEqual(iommu.translate(dev.EPb, 0x1234n, "write"), {
    ok: true,
    phys: 0x1234n,
    prot: { read: true, write: true, mmio: false },
  });
});

test("groups are read once per device (fixed at probe), later changes of the group function are ignored", () => {
  const { fabric, dev } = specF();
  let g = 1;
  const iommu = new Iommu(fabric, () => g);
  const before = iommu.domainOf(dev.EPa);
  g = 2;
  assert.equal(iommu.groupIdOf(dev.EPa), 1);
  assert.equal(iommu.domainOf(dev.EPa), before);
});

test("default domain type 'identity' (iommu=pt): translated 1:1, no IOVA allocator, DMA API uses dma-direct", () => {
  const { fabric, dev } = specF();
  const iommu = new Iommu(fabric, groupsOf(fabric.devices()), { defaultDomainType: "identity" });
  const d = iommu.domainOf(dev.EPa)!;
  assert.equal(d.type, "identity");
  assert.equal(d.iovad, null);
  assert.equal(iommu.usesDmaIommu(dev.EPa), false);
  assert.equal(iommu.translate(dev.EPa, 0x80_0000_0000n, "read").ok, true);
});

test("DMA domains reserve the x86 MSI window and the host bridge's memory windows as bus addresses", () => {
  const { fabric, dev } = specF();
  dev.EPa.hostBridge.windows.push({
    cpuBase: 0x80_0000_0000n,
    size: 0x10_0000_0000n,
    busOffset: 0x10_0000_0000n,
  });
  const iommu = new Iommu(fabric, groupsOf(fabric.devices()));
  const iovad = iommu.domainOf(dev.EPa)!.iovad!;
  assert.deepEqual(
    iovad.reserved().map((r) => [r.pfnLo << 12n, ((r.pfnHi + 1n) << 12n) - 1n]),
    [
      [X86_MSI_REGION.start, X86_MSI_REGION.end],
      [0x70_0000_0000n, 0x7f_ffff_ffffn],
    ],
  );
  const off = new Iommu(fabric, groupsOf(fabric.devices()), {
    reservePciWindows: false,
    reservedRegions: [],
  });
  assert.deepEqual(off.domainOf(dev.EPa)!.iovad!.reserved(), []);
});

test("attachGroup swaps the attached domain for the whole group; the DMA API keeps the default domain", () => {
  const { fabric, dev } = specF();
  const iommu = new Iommu(fabric, groupsOf(fabric.devices(), [[dev.EPa, dev.DSPa]]));
  const def = iommu.domainOf(dev.EPa)!;
  const blocked = iommu.allocDomain("blocked");
  assert.equal(iommu.attachGroup(dev.EPa, blocked), def);
  assert.equal(iommu.domainOf(dev.DSPa), blocked);
  assert.equal(iommu.defaultDomainOf(dev.EPa), def);
  assert.deepEqual(iommu.translate(dev.EPa, 0x1000n, "read"), { ok: false, fault: "blocked" });
  iommu.detachGroup(dev.EPa);
  assert.equal(iommu.domainOf(dev.EPa), def);
  assert.equal(iommu.attachGroup(dev.EPb, blocked), null, "dma-direct devices have no group");
});

test("translate through the attached DMA domain; liveCounts sums IOVA allocations and mappings of every domain", () => {
  const { fabric, dev } = specF();
  const iommu = new Iommu(fabric, groupsOf(fabric.devices()));
  const d = iommu.domainOf(dev.EPc)!;
  const pfn = d.iovad!.alloc(1n, 0xfffffn)!;
  assert.equal(d.map(pfn << 12n, 0x80_0000_0000n, 0x1000n, { read: true, write: false, mmio: true }), 0);
  assert.deepEqual(iommu.translate(dev.EPc, (pfn << 12n) + 4n, "write"), { ok: false, fault: "permission" });
  assert.equal(iommu.translate(dev.EPc, (pfn << 12n) + 4n, "read").ok, true);
  assert.deepEqual(iommu.liveCounts(), { iovaAllocations: 1, mappings: 1 });
  d.unmap(pfn << 12n, 0x1000n);
  d.iovad!.free(pfn);
  assert.deepEqual(iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
});
