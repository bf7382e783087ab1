/**
 * lspci text importers (src/import/lspci-text.ts) against what the sources state:
 * - the 11 QEMU captures: `lspci -nnvvv`, `-tv`, `-tvnn`, `-nnmmD` and merged pairs give the functions,
 *   ids, class, parent, links and NUMA nodes of devices.tsv; the fabric from `-nnvvv` reproduces the
 *   kernel's IOMMU groups and P2PDMA verdicts, and the "IOMMU group" lines are the reported groups;
 * - real machines (pciutils dumps rendered by lspci, the stelline server, a GitHub issue's `lspci -tvv`):
 *   counts, tree shape, ACS, links, and a cross-check against the same machine's `lspci -xxxx` bytes;
 * - malformed text: an InputError naming file, line and what was expected.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InputError } from "../../src/core/errors.js";
import { importTexts } from "../../src/import/detect.js";
import { parseCpuinfo } from "../../src/import/lscpu.js";
import { importLspciHex } from "../../src/import/lspci-hex.js";
import { parseLspciMm, parseLspciTree, parseLspciVerbose } from "../../src/import/lspci-text.js";
import { buildFabric, mergeAndBuild } from "../../src/import/merge.js";
import { computeIommuGroups } from "../../src/iommu/index.js";
import { calcMapTypeAndDist, distanceMany } from "../../src/p2pdma/index.js";
import { Fabric } from "../../src/pci/fabric.js";
import {
  PCI_ACS_CR,
  PCI_ACS_RR,
  PCI_ACS_SV,
  PCI_ACS_TB,
  PCI_ACS_UF,
  PCI_EXP_TYPE,
} from "../../src/pci/regs.js";
import {
  hasFixture,
  parseDevicesTsv,
  parseIommuGroups,
  parseLspciVerbose as parseLspciForMachineFiles,
  parseP2pMatrix,
  QEMU_TOPOLOGIES,
  readFixture,
  sysfsFile,
} from "../helpers/qemu-fixture.js";
import { assertWholeFabric, readReal } from "./import-fixtures.js";

const MAP = {
  "bus-address": "BUS_ADDR",
  "host-bridge": "THRU_HOST_BRIDGE",
  "not-supported": "NOT_SUPPORTED",
} as const;

for (const topo of QEMU_TOPOLOGIES) {
  const captured = parseDevicesTsv(readFixture(topo, "devices.tsv"));
  const verbose = () => parseLspciVerbose(readFixture(topo, "lspci-nnvvv.txt"), "lspci-nnvvv.txt");
  const tree = () => parseLspciTree(readFixture(topo, "lspci-tv.txt"), "lspci-tv.txt");

  test(`qemu-${topo}: lspci -nnvvv imports the functions, ids, class, parents, links and NUMA nodes of devices.tsv`, () => {
    const r = buildFabric(verbose());
    assertWholeFabric(r.fabric, topo);
    assert.deepEqual(
      r.fabric
        .devices()
        .map((d) => d.bdf)
        .sort(),
      captured.map((c) => c.bdf).sort(),
    );
    for (const c of captured) {
      const d = r.fabric.get(c.bdf);
      assert.equal(d.vendor, c.vendor, `${c.bdf} vendor`);
      assert.equal(d.device, c.device, `${c.bdf} device`);
      assert.equal(d.classCode, c.classCode, `${c.bdf} class`);
      assert.equal(d.bus.self?.bdf ?? null, c.parent, `${c.bdf} parent`);
      assert.equal(d.hostBridge.label, c.hostBridge, `${c.bdf} host bridge`);
      assert.equal(d.numaNode, c.numaNode, `${c.bdf} NUMA node`);
      const l = d.link;
      if (!c.current) assert.equal(l, null, `${c.bdf} has no link`);
      else {
        assert.ok(l, `${c.bdf} link`);
        assert.deepEqual({ speed: l.speed, width: l.width }, c.current, `${c.bdf} LnkSta`);
        assert.deepEqual({ speed: l.maxSpeed, width: l.maxWidth }, c.max, `${c.bdf} LnkCap`);
      }
    }
    // Nothing the capture states is left unknown except the CPU (lspci does not name it).
    assert.deepEqual(
      r.unknowns.map((u) => `${u.subject} ${u.attribute}`),
      ["cpu vendor"],
    );
  });

  test(`qemu-${topo}: lspci -nnvvv gives the PCIe type, MPS/MRRS, FLR and ACS lspci prints`, () => {
    const r = buildFabric(verbose());
    const want = parseLspciForMachineFiles(readFixture(topo, "lspci-nnvvv.txt"));
    const TYPES: Record<string, number> = {
      Endpoint: PCI_EXP_TYPE.ENDPOINT,
      "Legacy Endpoint": PCI_EXP_TYPE.LEG_END,
      "Root Port": PCI_EXP_TYPE.ROOT_PORT,
      "Upstream Port": PCI_EXP_TYPE.UPSTREAM,
      "Downstream Port": PCI_EXP_TYPE.DOWNSTREAM,
      "PCI-Express to PCI/PCI-X Bridge": PCI_EXP_TYPE.PCI_BRIDGE,
      "Root Complex Integrated Endpoint": PCI_EXP_TYPE.RC_END,
    };
    for (const [bdf, w] of want) {
      const d = r.fabric.get(bdf);
      assert.equal(d.pcieType, w.pcieType === null ? null : TYPES[w.pcieType], `${bdf} type`);
      if (w.mps !== null) assert.equal(d.mps, w.mps, `${bdf} MPS`);
      if (w.mrrs !== null) assert.equal(d.mrrs, w.mrrs, `${bdf} MRRS`);
      if (w.flr !== null) assert.equal(d.flrCapable, w.flr, `${bdf} FLR`);
      assert.equal(d.acsCapOffset ? d.acsCapReg : null, w.acsCap, `${bdf} ACSCap`);
      assert.equal(d.acsCapOffset ? d.acsCtrlReg : null, w.acsCtl, `${bdf} ACSCtl`);
      for (const reg of w.regions) {
        const res = d.resource(reg.index);
        assert.equal(res.start, reg.address, `${bdf} BAR${reg.index} address`);
        assert.equal(res.len, reg.size, `${bdf} BAR${reg.index} size`);
      }
    }
  });

  test(`qemu-${topo}: computed IOMMU groups from lspci -nnvvv = iommu_groups.txt = the "IOMMU group" lines`, () => {
    const r = buildFabric(verbose());
    const kernel = parseIommuGroups(readFixture(topo, "iommu_groups.txt"));
    const ours = computeIommuGroups(r.fabric).map((g) => ({
      id: g.id,
      devices: g.devices.map((d) => d.bdf).sort(),
    }));
    assert.deepEqual(ours, kernel);
    assert.deepEqual(r.reportedGroups, kernel);
  });

  if (hasFixture(topo, "p2p-matrix.tsv"))
    test(`qemu-${topo}: P2PDMA distance and map type from lspci -nnvvv + the guest's /proc/cpuinfo = p2p-matrix.tsv`, () => {
      const r = buildFabric(verbose());
      const cpu = parseCpuinfo(sysfsFile(topo, "proc/cpuinfo")!.toString("utf8"), "proc/cpuinfo").cpu;
      const wrong: string[] = [];
      const rows = parseP2pMatrix(readFixture(topo, "p2p-matrix.tsv"));
      for (const row of rows) {
        const p = r.fabric.get(row.provider);
        const c = r.fabric.get(row.client);
        const dist = distanceMany(p, [c], cpu);
        const type = calcMapTypeAndDist(p, c, cpu).type;
        if (dist !== row.distance || (row.map !== "-" && MAP[row.map] !== type))
          wrong.push(`${row.provider}->${row.client}: ${dist} ${type} vs ${row.distance} ${row.map}`);
      }
      assert.deepEqual(wrong, [], `${wrong.length} of ${rows.length} pairs differ`);
    });

  test(`qemu-${topo}: lspci -tv gives the tree of devices.tsv (functions, parents, host bridges, vendors)`, () => {
    const facts = tree();
    const r = buildFabric(facts);
    assertWholeFabric(r.fabric, topo);
    assert.equal(r.fabric.devices().length, captured.length);
    for (const c of captured) {
      const d = r.fabric.get(c.bdf);
      assert.equal(d.bus.self?.bdf ?? null, c.parent, `${c.bdf} parent`);
      assert.equal(d.hostBridge.label, c.hostBridge, `${c.bdf} host bridge`);
      if (!d.isBridgeHeader) {
        // names → ids through pci.ids: the vendor always, the device where the name is unique
        assert.equal(d.vendor, c.vendor, `${c.bdf} vendor from "${d.name}"`);
        if (facts.functions.get(c.bdf)?.attrs.device?.status === "derived")
          assert.equal(d.device, c.device, `${c.bdf} device`);
      }
    }
    // -tv states no PCIe types: the bridges' are inferred from their place in the tree, and say so
    const rp = r.fabric.devices().find((d) => d.isBridgeHeader && d.bus.isRoot);
    if (rp) assert.match(r.provenance.describe(rp.bdf, "pcieType") ?? "", /inferred/);
  });

  test(`qemu-${topo}: lspci -tvnn + lspci -nnmmD merged give ids, class and tree of devices.tsv`, () => {
    const r = mergeAndBuild([
      parseLspciTree(readFixture(topo, "lspci-tvnn.txt"), "lspci-tvnn.txt"),
      parseLspciMm(readFixture(topo, "lspci-nnmmD.txt"), "lspci-nnmmD.txt"),
    ]);
    assert.deepEqual(r.conflicts, []);
    for (const c of captured) {
      const d = r.fabric.get(c.bdf);
      assert.deepEqual([d.vendor, d.device, d.classCode], [c.vendor, c.device, c.classCode], c.bdf);
      assert.equal(d.bus.self?.bdf ?? null, c.parent, `${c.bdf} parent`);
    }
  });

  test(`qemu-${topo}: lspci -tv + lspci -nnvvv merged: the same fabric as -nnvvv, provenance from both`, () => {
    const alone = buildFabric(verbose()).fabric;
    const r = mergeAndBuild([tree(), verbose()]);
    assertWholeFabric(r.fabric, topo);
    // names in the tree may match several ids in pci.ids; -nn ids then win, as the stated value
    for (const c of r.conflicts)
      assert.ok(["vendor", "device"].includes(c.attribute), `${c.subject} ${c.attribute}`);
    for (const d of alone.devices()) {
      const m = r.fabric.get(d.bdf);
      assert.deepEqual(
        [m.vendor, m.device, m.classCode, m.pcieType, m.bus.self?.bdf],
        [d.vendor, d.device, d.classCode, d.pcieType, d.bus.self?.bdf],
        d.bdf,
      );
      assert.deepEqual(m.link, d.link, `${d.bdf} link`);
    }
    const bridge = alone.devices().find((d) => d.subordinate)!;
    const recs = r.provenance.all(bridge.bdf, "secondary").map((x) => x.source.file);
    assert.deepEqual([...new Set(recs)].sort(), ["lspci-nnvvv.txt", "lspci-tv.txt"]);
  });
}

/* Real machines */

test("pciutils asus-p6t6 (X58 + NF200): lspci -tv tree — 53 functions, two root buses, the NF200 switch below 00:03.0", () => {
  const r = buildFabric(
    parseLspciTree(readReal("pciutils/asus-p6t6-ws-x58-nf200/lspci-tv.txt"), "lspci-tv.txt"),
  );
  assertWholeFabric(r.fabric);
  assert.equal(r.fabric.devices().length, 53);
  assert.deepEqual(
    r.fabric.hostBridges.map((h) => h.label),
    ["pci0000:00", "pci0000:ff"],
  );
  const sas = r.fabric.get("0000:04:00.0");
  assert.deepEqual(
    Fabric.pathToRoot(sas).map((d) => d.bdf),
    ["0000:03:00.0", "0000:02:00.0", "0000:00:03.0"],
  );
  assert.deepEqual([sas.vendor, sas.device], [0x1000, 0x0072]); // "SAS2008 … [Falcon]" via pci.ids
  // "-[02-05]": the stated subordinate stays even where nothing sits on bus 05's port
  assert.equal(r.fabric.get("0000:00:03.0").config.read8(0x1a), 0x05);
  assert.equal(r.fabric.get("0000:00:1c.0").subordinate?.number, 0x09); // empty slot "-[09]--"
});

test("pciutils asus-p6t6: lspci -vvv -nn agrees with the machine's own config bytes (lspci -xxxx)", () => {
  const text = readReal("pciutils/asus-p6t6-ws-x58-nf200/lspci-vvv-nn.txt");
  const ours = buildFabric(parseLspciVerbose(text, "lspci-vvv-nn.txt")).fabric;
  const bytes = importLspciHex(
    readReal("pciutils/asus-p6t6-ws-x58-nf200/tree-asus-p6t6.lspci-xxxx.txt"),
    "xxxx",
  ).fabric;
  assert.equal(ours.devices().length, bytes.devices().length);
  for (const b of bytes.devices()) {
    const d = ours.get(b.bdf);
    assert.deepEqual(
      [d.vendor, d.device, d.classCode, d.revision, d.pcieType, d.bus.self?.bdf ?? null],
      [b.vendor, b.device, b.classCode, b.revision, b.pcieType, b.bus.self?.bdf ?? null],
      b.bdf,
    );
    assert.deepEqual(d.link, b.link, `${b.bdf} link`);
    assert.equal(
      d.acsCapOffset ? d.acsCtrlReg : null,
      b.acsCapOffset ? b.acsCtrlReg : null,
      `${b.bdf} ACSCtl`,
    );
    assert.equal(d.acsCapOffset ? d.acsCapReg : null, b.acsCapOffset ? b.acsCapReg : null, `${b.bdf} ACSCap`);
  }
  // the X58 root ports have ACS with every control off
  const rp = ours.get("0000:00:03.0");
  assert.ok(rp.acsCapOffset);
  assert.equal(rp.acsCtrlReg, 0);
});

test("pciutils asus-p6t6: lspci -vvv without -nn: ids from the names via pci.ids; classes from class names", () => {
  const plain = buildFabric(
    parseLspciVerbose(readReal("pciutils/asus-p6t6-ws-x58-nf200/lspci-vvv.txt"), "vvv"),
  ).fabric;
  const nn = buildFabric(
    parseLspciVerbose(readReal("pciutils/asus-p6t6-ws-x58-nf200/lspci-vvv-nn.txt"), "vvv-nn"),
  ).fabric;
  let sameIds = 0;
  for (const d of nn.devices()) {
    const p = plain.get(d.bdf);
    assert.equal(p.classCode, d.classCode, `${d.bdf} class`);
    assert.equal(p.vendor, d.vendor, `${d.bdf} vendor`);
    if (p.device === d.device) sameIds++;
  }
  // a few names fit several device ids (e.g. the X58 "I/O Hub to ESI Port"); the rest resolve exactly
  assert.ok(sameIds >= nn.devices().length - 4, `${sameIds} of ${nn.devices().length}`);
});

test("pciutils xeon-e5v3: the root port's ACS is enabled (SV TB RR CR UF); the ConnectX-3 Pro sits below it", () => {
  const r = importTexts([
    { text: readReal("pciutils/xeon-e5v3-rootport-acs-enabled/lspci-tv.txt"), file: "lspci-tv.txt" },
    { text: readReal("pciutils/xeon-e5v3-rootport-acs-enabled/lspci-vvv-nn.txt"), file: "lspci-vvv-nn.txt" },
  ]);
  const rp = r.fabric.get("0000:00:02.0");
  assert.equal(rp.pcieType, PCI_EXP_TYPE.ROOT_PORT);
  assert.equal(rp.acsCtrlReg, PCI_ACS_SV | PCI_ACS_TB | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF);
  const nic = r.fabric.get("0000:03:00.0");
  assert.deepEqual([nic.vendor, nic.device], [0x15b3, 0x1007]);
  assert.equal(nic.bus.self, rp);
});

test("pciutils ibm-ppc: five PCI domains of PCI-X bridges; lspci -tv and -vvv -nn give the same 31 functions", () => {
  const tv = buildFabric(
    parseLspciTree(readReal("pciutils/ibm-ppc-pcix-multidomain/lspci-tv.txt"), "tv"),
  ).fabric;
  const vv = buildFabric(
    parseLspciVerbose(readReal("pciutils/ibm-ppc-pcix-multidomain/lspci-vvv-nn.txt"), "vvv"),
  ).fabric;
  assert.deepEqual(
    tv.hostBridges.map((h) => h.label),
    ["pci0000:00", "pci0001:00", "pci0002:00", "pci0003:00", "pci0004:00"],
  );
  assert.equal(tv.devices().length, 31);
  assert.deepEqual(
    tv
      .devices()
      .map((d) => `${d.bdf}<${d.bus.self?.bdf ?? "-"}`)
      .sort(),
    vv
      .devices()
      .map((d) => `${d.bdf}<${d.bus.self?.bdf ?? "-"}`)
      .sort(),
  );
  // 0001:00:02.6-[61-70]----01.0-[62]----00.0 Matrox: two bridges deep
  assert.deepEqual(
    Fabric.pathToRoot(tv.get("0001:62:00.0")).map((d) => d.bdf),
    ["0001:61:01.0", "0001:00:02.6"],
  );
  // conventional PCI: no PCIe capability, no link
  assert.equal(vv.get("0001:62:00.0").pcieType, null);
});

test("stelline (EPYC Genoa, 4x RTX 6000 Ada): lspci -tv + lspci -vvv (endpoints) + lscpu → one fabric", () => {
  const dir = "stelline/asus-esc8000a-e12-epyc-genoa-4x-rtx6000ada/";
  const r = importTexts(
    ["lspci-tv.txt", "lspci-vvv-selected.txt", "lscpu.txt"].map((f) => ({
      file: f,
      text: readReal(dir + f),
    })),
  );
  assertWholeFabric(r.fabric, "stelline");
  assert.equal(r.fabric.devices().length, 198);
  assert.equal(r.fabric.hostBridges.length, 8);
  assert.deepEqual([r.cpu?.vendor, r.cpu?.family, r.cpu?.model], ["AuthenticAMD", 25, 17]);
  const gpus = ["0000:01:00.0", "0000:41:00.0", "0000:c1:00.0", "0000:e1:00.0"].map((b) => r.fabric.get(b));
  for (const g of gpus) {
    assert.deepEqual([g.vendor, g.device, g.classCode], [0x10de, 0x26b1, 0x030000], g.bdf);
    // "LnkCap: Speed 16GT/s, Width x16" / "LnkSta: Speed 2.5GT/s (downgraded), Width x16" (idle GPU)
    assert.deepEqual(g.link, { speed: 2.5, width: 16, maxSpeed: 16, maxWidth: 16, flit: false }, g.bdf);
    assert.equal(g.pcieType, PCI_EXP_TYPE.LEG_END);
  }
  // GROUND_TRUTH: GPU0 on root port 00:01.1, GPU2 on c0:01.1; NUMA 0 and 1 (topo -m: SYS)
  assert.equal(gpus[0].bus.self?.bdf, "0000:00:01.1");
  assert.equal(gpus[2].bus.self?.bdf, "0000:c0:01.1");
  assert.deepEqual(
    gpus.map((g) => g.numaNode),
    [0, 0, 1, 1],
  );
  // every GPU pair crosses host bridges; an AMD Zen CPU lets that through (measured: all pairs P2P)
  for (const a of gpus)
    for (const b of gpus)
      if (a !== b) assert.equal(calcMapTypeAndDist(a, b, r.cpu!).type, "THRU_HOST_BRIDGE");
  // NIC0/NIC1 are two functions of one ConnectX-7 (topo -m: PIX)
  assert.equal(r.fabric.get("0000:21:00.0").bus, r.fabric.get("0000:21:00.1").bus);
});

test("github nccl-tests#256 (8x H200 KVM guest): lspci -tvv imports — 22 root ports, 8 GPUs, 8 ConnectX-7", () => {
  const r = importTexts([
    { text: readReal("github-issues/nccl-tests-256-h200-kvm-vm/lspci-tvv.txt"), file: "lspci-tvv.txt" },
  ]);
  assertWholeFabric(r.fabric);
  assert.equal(r.fabric.devices().length, 48);
  const ports = r.fabric.devices().filter((d) => d.subordinate);
  assert.equal(ports.length, 22);
  for (const p of ports) {
    assert.equal(p.subordinate!.devices.length, 1, p.bdf);
    assert.equal(p.kind, "root-port"); // inferred from the tree: bridges on the root bus
  }
  const ids = r.fabric.devices().map((d) => `${d.vendor.toString(16)}:${d.device.toString(16)}`);
  assert.equal(ids.filter((x) => x === "10de:2335").length, 8); // "NVIDIA Corporation Device 2335"
  assert.equal(ids.filter((x) => x === "15b3:1021").length, 8); // "MT2910 Family [ConnectX-7]"
});

/* Tree syntax details and errors */

test("lspci -t: a bridge with several buses lists them as [dddd:bb]; -tn prints bare ids", () => {
  const text = [
    "-[0000:00]-+-00.0  8086:29c0",
    "           +-01.0-[01-03]--+-[0000:01]---00.0  8086:10d3",
    "           |               \\-[0000:03]---00.0  1af4:1041",
    "           \\-1f.0  8086:2918",
  ].join("\n");
  const facts = parseLspciTree(text, "t");
  assert.equal(facts.functions.get("0000:03:00.0")?.attrs.parent?.value, "0000:00:01.0");
  assert.equal(facts.functions.get("0000:01:00.0")?.attrs.vendor?.value, 0x8086);
  const r = buildFabric(facts);
  // bus 03 lies in 01.0's range [01-03] but is not its secondary: a bridge is invented to reach it
  assert.ok(r.warnings.some((w) => /invented a bridge/.test(w)));
  assertWholeFabric(r.fabric);
});

test("lspci -t: malformed or truncated trees are InputErrors naming line and column", () => {
  const bad: [string, RegExp][] = [
    ["+-00.0  x", /t:1: expected the tree's first line/],
    [
      "-[0000:00]-+-00.0  a\n                 +-01.0  b",
      /t:2: expected a branch under an open list .* column 18/,
    ],
    ["-[0000:00]-+-0g.0  a", /t:1: expected a device and function/],
    ["-[0000:00]-+-01.0-[02-01]--", /subordinate bus 01 is below secondary 02/],
    ["-[0000:00]-+-01.0  a\n           \\-01.0  b", /appears twice/],
    ["", /empty/],
  ];
  for (const [text, re] of bad)
    assert.throws(
      () => parseLspciTree(text, "t"),
      (e: unknown) => e instanceof InputError && re.test(e.message),
      text,
    );
});

test("lspci -vvv: records indented with spaces, <access denied> capabilities, errors by line", () => {
  const text = [
    "01:00.0 Ethernet controller [0200]: Intel Corporation 82574L Gigabit Network Connection [8086:10d3]",
    "        Control: I/O+ Mem+ BusMaster+ SpecCycle- MemWINV- VGASnoop- ParErr- Stepping- SERR- FastB2B- DisINTx+",
    "        Capabilities: <access denied>",
    "",
  ].join("\n");
  const r = buildFabric(parseLspciVerbose(text, "v"));
  const d = r.fabric.get("0000:01:00.0");
  assert.equal(d.command & 0x6, 0x6);
  // with the capabilities unreadable, PCIe-ness is unknown, not "conventional"
  assert.ok(r.unknowns.some((u) => u.subject === d.bdf && u.attribute === "pcieType"));
  assert.throws(
    () => parseLspciVerbose("01:00.0 no class separator here", "v"),
    /v:1: function 0000:01:00.0: expected "<class>: <vendor> <device>"/,
  );
  assert.throws(() => parseLspciVerbose(`${text}\n${text}`, "v"), /v:5: function 0000:01:00.0 appears twice/);
  assert.throws(
    () => parseLspciVerbose("\tControl: I/O+", "v"),
    /v:1: an indented detail line before any function header/,
  );
  assert.throws(
    () => parseLspciVerbose(`${text}garbage line\n`, "v"),
    /v:4: expected an indented detail line or a function header, found "garbage line"/,
  );
  assert.throws(
    () => parseLspciVerbose("00:01.0 PCI bridge [0604]: X [8086:0001]\n\tBus: primary=00, secondary=zz", "v"),
    /v:2: .*expected "Bus: primary=bb, secondary=bb, subordinate=bb"/,
  );
});

test("lspci -mm: quoted fields; malformed lines name the line", () => {
  const f = parseLspciMm(
    '00:1f.2 "SATA controller [0106]" "Intel Corporation [8086]" "ICH9 [2922]" -r02 -p01 "Red Hat, Inc. [1af4]" "QEMU [1100]"\n',
    "mm",
  );
  const x = f.functions.get("0000:00:1f.2")!.attrs;
  assert.deepEqual(
    [x.classCode?.value, x.vendor?.value, x.device?.value, x.revision?.value, x.subsystemVendor?.value],
    [0x010601, 0x8086, 0x2922, 2, 0x1af4],
  );
  assert.throws(() => parseLspciMm('00:1f.2 "SATA controller [0106] "Intel', "mm"), /mm:1: expected/);
});

test("lspci -v (one v): Flags give NUMA and IOMMU group; an ACS capability without ACSCap/ACSCtl lines stays unknown", () => {
  const text = [
    "00:01.1 PCI bridge: Advanced Micro Devices, Inc. [AMD] Device 14ab (prog-if 00 [Normal decode])",
    "\tFlags: bus master, fast devsel, latency 0, IRQ 36, NUMA node 0, IOMMU group 3",
    "\tBus: primary=00, secondary=01, subordinate=01, sec-latency=0",
    "\tCapabilities: [58] Express Root Port (Slot+), MSI 00",
    "\tCapabilities: [2a0] Access Control Services",
    "\tKernel driver in use: pcieport",
    "",
    "01:00.0 VGA compatible controller: NVIDIA Corporation AD102GL [RTX 6000 Ada Generation] (rev a1) (prog-if 00 [VGA controller])",
    "\tFlags: bus master, fast devsel, latency 0, IRQ 852, NUMA node 0, IOMMU group 14",
    "\tMemory at f8000000 (32-bit, non-prefetchable) [size=16M]",
    "\tCapabilities: [78] Express Legacy Endpoint, MSI 00",
    "",
  ].join("\n");
  const r = buildFabric(parseLspciVerbose(text, "v"));
  const rp = r.fabric.get("0000:00:01.1");
  assert.equal(rp.kind, "root-port");
  assert.equal(rp.acsCapOffset, 0);
  assert.ok(r.unknowns.some((u) => u.subject === rp.bdf && u.attribute === "acs"));
  assert.ok(r.warnings.some((w) => /ACS capability without ACSCap\/ACSCtl lines/.test(w)));
  assert.deepEqual(r.reportedGroups, [
    { id: 3, devices: ["0000:00:01.1"] },
    { id: 14, devices: ["0000:01:00.0"] },
  ]);
  const gpu = r.fabric.get("0000:01:00.0");
  assert.deepEqual([gpu.vendor, gpu.device, gpu.classCode, gpu.numaNode], [0x10de, 0x26b1, 0x030000, 0]);
  assert.equal(gpu.pcieType, PCI_EXP_TYPE.LEG_END);
});
