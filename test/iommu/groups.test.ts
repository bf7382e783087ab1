import assert from "node:assert/strict";
import { test } from "node:test";
import { parseMachineFile } from "../../src/import/machine-file.js";
import { computeIommuGroups, groupsAsBdfs, pciAcsEnabled } from "../../src/iommu/index.js";
import type { PciDev } from "../../src/pci/device.js";
import { REQ_ACS_FLAGS } from "../../src/pci/regs.js";
import { BDF, fn, specF } from "../helpers/spec-f.js";

type M = Parameters<typeof fn>[0];
const ISO = ["SV", "RR", "CR", "UF"] as ("SV" | "RR" | "CR" | "UF")[];

function groupOf(groups: ReturnType<typeof computeIommuGroups>, d: PciDev): number {
  const g = groups.find((x) => x.devices.includes(d));
  assert.ok(g, `${d.bdf} has no group`);
  return g.id;
}

test("K-7 REQ_ACS_FLAGS = SV|RR|CR|UF = 0x1D", () => {
  assert.equal(REQ_ACS_FLAGS, 0x1d);
});

test("K-177 fabric F with every ACS control 0 → RP0, USP, DSPa, DSPb, EPa, EPb share RP0's group", () => {
  const { fabric, dev } = specF();
  const g = computeIommuGroups(fabric);
  const rp0 = groupOf(g, dev.RP0);
  for (const n of ["USP", "DSPa", "DSPb", "EPa", "EPb"] as const) assert.equal(groupOf(g, dev[n]), rp0, n);
});

const isolate =
  (...names: string[]) =>
  (m: M) => {
    for (const n of names) fn(m, n).acs = { cap: ["SV", "TB", "RR", "CR", "UF", "EC"], ctrl: ISO };
  };

test("K-178 RP0 and both DSPs controlling SV|RR|CR|UF → EPa and EPb isolated from each other and their DSPs", () => {
  const { fabric, dev } = specF(isolate("RP0", "DSPa", "DSPb"));
  const g = computeIommuGroups(fabric);
  assert.notEqual(groupOf(g, dev.EPa), groupOf(g, dev.EPb));
  assert.notEqual(groupOf(g, dev.EPa), groupOf(g, dev.DSPa));
  assert.notEqual(groupOf(g, dev.EPb), groupOf(g, dev.DSPb));
});

test("K-179 as K-178 but DSPb without ACS → EPb joins DSPb's group, EPa stays separate", () => {
  const { fabric, dev } = specF((m) => {
    isolate("RP0", "DSPa")(m);
    delete fn(m, "DSPb").acs;
  });
  const g = computeIommuGroups(fabric);
  assert.equal(groupOf(g, dev.EPb), groupOf(g, dev.DSPb));
  assert.notEqual(groupOf(g, dev.EPa), groupOf(g, dev.EPb));
  assert.notEqual(groupOf(g, dev.EPa), groupOf(g, dev.DSPa));
});

test("K-180 RP0 isolating, both DSPs without ACS → EPa with DSPa, EPb with DSPb, EPa and EPb apart (6.19)", () => {
  const { fabric, dev } = specF((m) => {
    isolate("RP0")(m);
    delete fn(m, "DSPa").acs;
    delete fn(m, "DSPb").acs;
  });
  const g = computeIommuGroups(fabric);
  assert.equal(groupOf(g, dev.EPa), groupOf(g, dev.DSPa));
  assert.equal(groupOf(g, dev.EPb), groupOf(g, dev.DSPb));
  assert.notEqual(groupOf(g, dev.EPa), groupOf(g, dev.EPb));
});

test("K-181 MF0/MF1: same group without ACS; separate with ACS on both; RP2 without ACS → both in RP2's group", () => {
  {
    const { fabric, dev } = specF(isolate("RP2"));
    const g = computeIommuGroups(fabric);
    assert.equal(groupOf(g, dev.MF0), groupOf(g, dev.MF1));
    assert.notEqual(groupOf(g, dev.MF0), groupOf(g, dev.RP2));
  }
  {
    const { fabric, dev } = specF(isolate("RP2", "MF0", "MF1"));
    const g = computeIommuGroups(fabric);
    assert.notEqual(groupOf(g, dev.MF0), groupOf(g, dev.MF1));
  }
  {
    const { fabric, dev } = specF();
    const g = computeIommuGroups(fabric);
    assert.equal(groupOf(g, dev.MF0), groupOf(g, dev.RP2));
    assert.equal(groupOf(g, dev.MF1), groupOf(g, dev.RP2));
  }
});

test("K-182 ACS implementing only SV|UF with control SV|UF counts as fully enabled", () => {
  const { dev } = specF((m) => {
    fn(m, "DSPa").acs = { cap: ["SV", "UF"], ctrl: ["SV", "UF"] };
  });
  assert.equal(pciAcsEnabled(dev.DSPa, REQ_ACS_FLAGS), true);
});

test("K-183 ACS implementing SV|RR|CR|UF with control missing CR → not isolated", () => {
  const { fabric, dev } = specF((m) => {
    isolate("RP0")(m);
    fn(m, "DSPa").acs = { cap: ISO, ctrl: ["SV", "RR", "UF"] };
  });
  assert.equal(pciAcsEnabled(dev.DSPa, REQ_ACS_FLAGS), false);
  const g = computeIommuGroups(fabric);
  assert.equal(groupOf(g, dev.EPa), groupOf(g, dev.DSPa));
});

test("K-184 EPc below RP1 (no ACS) shares RP1's group", () => {
  const { fabric, dev } = specF();
  const g = computeIommuGroups(fabric);
  assert.equal(groupOf(g, dev.EPc), groupOf(g, dev.RP1));
});

test("K-185 a single-function RCiEP gets its own group", () => {
  const { fabric, dev } = specF();
  const g = computeIommuGroups(fabric);
  const rc1 = g.find((x) => x.devices.includes(dev.RC1))!;
  assert.deepEqual(rc1.devices, [dev.RC1]);
});

test("K-186 two conventional PCI devices behind one PCIe-to-PCI bridge share the bridge's group", () => {
  const { fabric } = parseMachineFile(
    `name: k186
hostBridges:
  - functions:
      - { at: "00.0", kind: host-bridge, id: "8086:1234" }
      - at: "01.0"
        kind: root-port
        id: "1b36:000c"
        acs: { cap: [SV, RR, CR, UF], ctrl: [SV, RR, CR, UF] }
        below:
          - at: "00.0"
            kind: pcie-to-pci-bridge
            id: "1b36:000e"
            below:
              - { at: "01.0", kind: pci-device, id: "8086:100e", class: 0x020000 }
              - { at: "02.0", kind: pci-device, id: "10ec:8139", class: 0x020000 }
`,
    "k186.yaml",
  );
  const g = groupsAsBdfs(computeIommuGroups(fabric));
  const bridgeGroup = g.find((x) => x.devices.includes("0000:01:00.0"))!;
  assert.deepEqual(bridgeGroup.devices, ["0000:01:00.0", "0000:02:01.0", "0000:02:02.0"]);
  assert.ok(!bridgeGroup.devices.includes("0000:00:01.0"), "the root port with ACS stays apart");
});

test("K-199 MF1 with header type 0x00 is still multi-function (function > 0): MF0 and MF1 share a group", () => {
  const { fabric, dev } = specF((m) => {
    isolate("RP2")(m);
    fn(m, "MF0").headerType = 0x80;
    fn(m, "MF1").headerType = 0x00;
  });
  assert.equal(dev.MF1.headerType & 0x80, 0);
  assert.equal(dev.MF1.multifunction, true);
  const g = computeIommuGroups(fabric);
  assert.equal(groupOf(g, dev.MF0), groupOf(g, dev.MF1));
});

test("K-200 groups numbered 0,1,2… in scan order (bus by bus, then subtrees); a DSP without ACS and its endpoint share one group; the single-function USP is alone", () => {
  const { fabric } = specF(isolate("RP0"));
  const got = groupsAsBdfs(computeIommuGroups(fabric));
  assert.deepEqual(got, [
    { id: 0, devices: [BDF.H0] },
    { id: 1, devices: [BDF.RP0] },
    { id: 2, devices: [BDF.RP1, BDF.EPc] },
    { id: 3, devices: [BDF.RP2, BDF.MF0, BDF.MF1] },
    { id: 4, devices: [BDF.RC1] },
    { id: 5, devices: [BDF.RC2] },
    { id: 6, devices: [BDF.USP] },
    { id: 7, devices: [BDF.DSPa, BDF.EPa] },
    { id: 8, devices: [BDF.DSPb, BDF.EPb, BDF.EPbVF] },
    { id: 9, devices: ["0001:00:00.0"] },
    { id: 10, devices: ["0001:00:01.0", BDF.EPd] },
  ]);
});
