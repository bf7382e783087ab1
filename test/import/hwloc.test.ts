/**
 * hwloc XML importer (src/import/hwloc.ts) against what the files state: every hwloc XML in
 * fixtures/real imports with one function per PCIDev / PCI Bridge object, the tree of the XML's
 * nesting, the links' GB/s, NUMA locality and CPU; v2 and v3 files of one machine give the same
 * fabric; hwloc's own expected outputs (GROUND_TRUTH.txt of the DCS8000Z, the .console of the NEC
 * A300-8) agree with what we import; a v1 document reads too; malformed XML names its line.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InputError } from "../../src/core/errors.js";
import { parseHwlocBitmap, parseHwlocXml, splitLinkGBps } from "../../src/import/hwloc.js";
import { buildFabric } from "../../src/import/merge.js";
import { computeIommuGroups } from "../../src/iommu/index.js";
import { calcMapTypeAndDist } from "../../src/p2pdma/index.js";
import { Fabric } from "../../src/pci/fabric.js";
import { PCI_EXP_TYPE } from "../../src/pci/regs.js";
import { assertWholeFabric, linkGBps, readReal, realFiles } from "./import-fixtures.js";

interface XmlPci {
  busid: string;
  line: number;
  parent: string | null;
  type: string;
  gbps: number;
  ids: string;
}

/** The PCI objects of an hwloc XML read independently: by line and indentation (lstopo indents 2 per level). */
function xmlPci(text: string): { objs: XmlPci[]; hostBridges: number } {
  const objs: XmlPci[] = [];
  const stack: { indent: number; busid: string | null }[] = [];
  let hostBridges = 0;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const m = /^(\s*)<object type="(Bridge|PCIDev)"([^>]*)>?/.exec(line);
    const close = /^(\s*)<\/object>/.exec(line);
    if (close) continue;
    if (!/^\s*<object /.test(line)) continue;
    const indent = line.length - line.trimStart().length;
    while (stack.length && stack[stack.length - 1].indent >= indent) stack.pop();
    if (!m) {
      stack.push({ indent, busid: null });
      continue;
    }
    const attr = (k: string) => new RegExp(`${k}="([^"]*)"`).exec(m[3])?.[1];
    const busid = attr("pci_busid") ?? null;
    if (!busid) hostBridges++;
    else {
      const parent = [...stack].reverse().find((s) => s.busid !== null)?.busid ?? null;
      const t = /\[([0-9a-f]{4}:[0-9a-f]{4})\]/.exec(attr("pci_type") ?? "");
      objs.push({
        busid,
        line: i + 1,
        parent,
        type: m[2],
        gbps: Number(attr("pci_link_speed") ?? 0),
        ids: t?.[1] ?? "",
      });
    }
    stack.push({ indent, busid: busid ?? "(host)" });
    if (!busid) stack[stack.length - 1].busid = null;
  }
  return { objs, hostBridges };
}

const FILES = realFiles(/\.xml$/, "hwloc");

for (const file of FILES) {
  test(`hwloc ${file}: one function per PCI object, the XML's tree, links and host bridges`, () => {
    const text = readReal(file);
    const facts = parseHwlocXml(text, file);
    const r = buildFabric(facts);
    assertWholeFabric(r.fabric, file);
    const { objs, hostBridges } = xmlPci(text);
    const placeholders = [...facts.functions.values()].filter((f) => f.placeholder).length;
    assert.equal(r.fabric.devices().length, objs.length + placeholders);
    assert.ok(r.fabric.hostBridges.length >= hostBridges);
    for (const o of objs) {
      // an object the file places inconsistently is renamed (keyed by its line); the rest keep their BDF
      const dev = r.fabric.get(facts.renamed.get(`${o.busid}@${o.line}`) ?? o.busid);
      assert.equal(
        `${dev.vendor.toString(16).padStart(4, "0")}:${dev.device.toString(16).padStart(4, "0")}`,
        o.ids || "0000:0000",
      );
      if (o.parent) {
        const path = Fabric.pathToRoot(dev).map((d) => d.bdf);
        assert.ok(path.includes(o.parent), `${o.busid}: ${o.parent} above it (path ${path.join(" ")})`);
        assert.ok(path.indexOf(o.parent) <= 1, `${o.busid}: at most one invented bridge between`);
      } else assert.ok(dev.bus.isRoot, `${o.busid} on a root bus`);
      assert.equal(dev.isBridgeHeader, o.type === "Bridge");
      const split = o.gbps > 0 ? splitLinkGBps(o.gbps) : null;
      if (split) {
        assert.ok(dev.link, `${o.busid} link`);
        assert.ok(
          Math.abs(linkGBps(dev.link.speed, dev.link.width) - o.gbps) < 0.005 * o.gbps,
          `${o.busid} ${o.gbps} GB/s`,
        );
      }
    }
    // hwloc says nothing about ACS: every port is listed as unknown, not as "ACS off"
    for (const d of r.fabric.devices())
      if (d.pcieType === PCI_EXP_TYPE.ROOT_PORT || d.pcieType === PCI_EXP_TYPE.DOWNSTREAM)
        assert.ok(
          r.unknowns.some((u) => u.subject === d.bdf && u.attribute === "acs"),
          `${d.bdf}: ACS recorded as unknown`,
        );
  });
}

for (const v2 of FILES.filter((f) => f.endsWith("-v2.xml"))) {
  const v3 = v2.replace("-v2.xml", "-v3.xml");
  if (!FILES.includes(v3)) continue;
  test(`hwloc ${v2.split("/")[1]}: the v2 and v3 files give the same fabric`, () => {
    const a = buildFabric(parseHwlocXml(readReal(v2), v2)).fabric;
    const b = buildFabric(parseHwlocXml(readReal(v3), v3)).fabric;
    const sig = (f: Fabric) =>
      f
        .devices()
        .map((d) => [
          d.bdf,
          d.vendor,
          d.device,
          d.classCode >> 8,
          d.bus.self?.bdf ?? null,
          d.link,
          d.numaNode,
          d.kind,
        ]);
    assert.deepEqual(sig(a), sig(b));
  });
}

test("hwloc DGX-2H: 16 V100 behind two levels of PLX switches per root port; CPU and NUMA from the XML", () => {
  const file = "hwloc/nvidia-dgx2h/nvidiaDGX2.hwloc-v2.xml";
  const r = buildFabric(parseHwlocXml(readReal(file), file));
  const gpus = r.fabric.devices().filter((d) => d.vendor === 0x10de && d.device === 0x1db8);
  assert.equal(gpus.length, 16);
  assert.deepEqual([r.cpu?.vendor, r.cpu?.family, r.cpu?.model], ["GenuineIntel", 6, 85]);
  const g = r.fabric.get("0000:34:00.0");
  assert.deepEqual(
    Fabric.pathToRoot(g).map((d) => `${d.bdf} ${d.kind}`),
    [
      "0000:33:00.0 downstream-port",
      "0000:32:00.0 upstream-port",
      "0000:2d:04.0 downstream-port",
      "0000:2c:00.0 upstream-port",
      "0000:2b:00.0 root-port",
    ],
  );
  // 15.753846 GB/s = 8 GT/s x16 (the lowest generation that fits; x8 at 16 GT/s fits too)
  assert.deepEqual(g.link, { speed: 8, width: 16, maxSpeed: 8, maxWidth: 16, flit: false });
  assert.match(r.provenance.describe(g.bdf, "link") ?? "", /inferred.*15\.753846 GB\/s.*16 GT\/s x8/);
  assert.equal(g.numaNode, 0);
  assert.equal(r.fabric.get("0000:e5:00.0").numaNode, 1);
  // two GPUs under one PEX9781: P2P through the switch, as long as ACS (unknown) is absent
  const peer = r.fabric.get("0000:36:00.0");
  assert.equal(calcMapTypeAndDist(g, peer, r.cpu!).type, "BUS_ADDR");
  assert.ok(
    r.unknowns.some((u) => u.subject === "0000:33:00.0" && u.attribute === "acs" && u.assumed === null),
  );
  // …and with ACS assumed isolating, the kernel would redirect it through the host bridge
  const iso = buildFabric(parseHwlocXml(readReal(file), file), { assumeAcs: "isolating" });
  assert.equal(
    calcMapTypeAndDist(iso.fabric.get("0000:34:00.0"), iso.fabric.get("0000:36:00.0"), r.cpu!).type,
    "THRU_HOST_BRIDGE",
  );
  assert.ok(computeIommuGroups(iso.fabric).length > computeIommuGroups(r.fabric).length);
});

test("hwloc DCS8000Z expected XML = GROUND_TRUTH.txt: functions, tree, ids and NUMA (Package P#n → node n)", () => {
  const dir = "hwloc/dell-dcs8000z-xeon-e5-nvme-mic/";
  const r = buildFabric(
    parseHwlocXml(
      readReal(`${dir}ground_truth/32em64t-2n8c+dax+nvme+mic+dimms.hwloc-expected.xml`),
      "expected.xml",
    ),
  );
  const rows: { bdf: string; parent: string | null; ids: string; numa: number }[] = [];
  const stack: { depth: number; bdf: string | null }[] = [];
  let hostBridges = 0;
  for (const line of readReal(`${dir}GROUND_TRUTH.txt`).split("\n")) {
    const m =
      /^( *)(?:Package P#(\d+)|Machine) (Bridge|PCIDev) busid=(\S+).*?pci_type=(?:\S+ \[([0-9a-f:]+)\])?/.exec(
        line,
      );
    if (!m) continue;
    const depth = m[1].length;
    while (stack.length && stack[stack.length - 1].depth >= depth) stack.pop();
    const bdf = m[4] === "(hostbridge)" ? null : m[4];
    if (bdf)
      rows.push({
        bdf,
        parent: [...stack].reverse().find((s) => s.bdf)?.bdf ?? null,
        ids: m[5],
        numa: m[2] === undefined ? -1 : Number(m[2]),
      });
    else hostBridges++;
    stack.push({ depth, bdf });
  }
  assert.equal(hostBridges, 4);
  assert.equal(r.fabric.hostBridges.length, 4);
  assert.deepEqual(
    r.fabric
      .devices()
      .map((d) => d.bdf)
      .sort(),
    rows.map((x) => x.bdf).sort(),
  );
  for (const x of rows) {
    const d = r.fabric.get(x.bdf);
    assert.equal(d.bus.self?.bdf ?? null, x.parent, `${x.bdf} parent`);
    assert.equal(
      `${d.vendor.toString(16).padStart(4, "0")}:${d.device.toString(16).padStart(4, "0")}`,
      x.ids,
      x.bdf,
    );
    assert.equal(d.numaNode, x.numa, `${x.bdf} NUMA`);
  }
  // "NVMe (8086:0953) at 00:02.0 directly on bus 00; ConnectX-3 and Xeon Phi below root ports of host bridge 80"
  assert.ok(r.fabric.get("0000:00:02.0").bus.isRoot);
  assert.equal(r.fabric.get("0000:82:00.0").bus.self?.bdf, "0000:80:02.2");
  assert.equal(r.fabric.get("0000:83:00.0").hostBridge, r.fabric.get("0000:82:00.0").hostBridge);
});

test("hwloc NEC A300-8: our import of lstopo 2.9's XML agrees with hwloc's expected lstopo output (.console)", () => {
  const dir = "hwloc/nec-sx-aurora-a300-8/";
  const facts = parseHwlocXml(readReal(`${dir}32intel64-2p8co2t+8ve.lstopo-2.9-whole-io.xml`), "lstopo.xml");
  const r = buildFabric(facts);
  const stack: { depth: number; bdf: string | null }[] = [];
  let n = 0;
  for (const line of readReal(`${dir}32intel64-2p8co2t+8ve.hwloc-expected.console`).split("\n")) {
    const m =
      /^( *)(PCIBridge|PCI|HostBridge) L#\d+ \((?:busid=(\S+) id=(\S+) class=\S+ link=([\d.]+)GB\/s)?/.exec(
        line,
      );
    if (!m) continue;
    const depth = m[1].length;
    while (stack.length && stack[stack.length - 1].depth >= depth) stack.pop();
    if (m[2] !== "HostBridge") {
      const d = r.fabric.get(m[3]);
      n++;
      assert.equal(
        `${d.vendor.toString(16).padStart(4, "0")}:${d.device.toString(16).padStart(4, "0")}`,
        m[4],
      );
      assert.ok(
        d.link && Math.abs(linkGBps(d.link.speed, d.link.width) - Number(m[5])) < 0.006,
        `${m[3]} ${m[5]} GB/s`,
      );
      const parent = [...stack].reverse().find((s) => s.bdf)?.bdf;
      if (parent)
        assert.ok(
          Fabric.pathToRoot(d).some((b) => b.bdf === parent),
          `${m[3]} below ${parent}`,
        );
      else assert.ok((Fabric.pathToRoot(d).at(-1) ?? d).bus.isRoot);
    }
    stack.push({ depth, bdf: m[2] === "HostBridge" ? null : m[3] });
  }
  assert.equal(n, 28); // every PCI object hwloc's own run shows
  // 60:00.0 sits on bus 60, inside 5e:00.0's [5f-60] but not on its secondary bus: a bridge is invented
  assert.equal(r.fabric.get("0000:60:00.0").bus.self?.bus.self?.bdf, "0000:5e:00.0");
  assert.ok(r.warnings.some((w) => /invented a bridge \(secondary bus 60\)/.test(w)));
  assert.deepEqual(r.cpu && [r.cpu.vendor, r.cpu.family, r.cpu.model], ["GenuineIntel", 6, 85]);
});

test("hwloc Supermicro X9DRG-HF: a BDF the file repeats below another bridge is renamed, and said so", () => {
  const file = "hwloc/supermicro-x9drg-hf/32em64t-2n8c2t-pci-wholeio.hwloc-v2.xml";
  const facts = parseHwlocXml(readReal(file), file);
  const r = buildFabric(facts);
  const moved = r.fabric.get("0000:84:00.3");
  assert.deepEqual([moved.vendor, moved.device], [0x15b3, 0x1013]);
  assert.equal(moved.bus.self?.bdf, "0000:80:03.0");
  assert.equal(r.fabric.get("0000:04:00.0").vendor, 0x8086); // the first 04:00.0 keeps its address
  assert.ok(r.warnings.some((w) => /0000:04:00\.0 placed as 0000:84:00\.3/.test(w)));
  assert.equal(r.provenance.value("0000:84:00.3", "statedBdf"), "0000:04:00.0");
});

test("hwloc v1 documents (no version attribute, Socket objects, NUMANode parents) import", () => {
  const v1 = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE topology SYSTEM "hwloc.dtd">
<topology>
  <object type="Machine" os_index="0" cpuset="0x0000000f" nodeset="0x00000003">
    <object type="NUMANode" os_index="1" cpuset="0x0000000c" nodeset="0x00000002" local_memory="1000">
      <object type="Socket" os_index="1" cpuset="0x0000000c" nodeset="0x00000002">
        <info name="CPUVendor" value="AuthenticAMD"/>
        <info name="CPUFamilyNumber" value="23"/>
        <info name="CPUModelNumber" value="49"/>
      </object>
      <object type="Bridge" os_index="0" bridge_type="0-1" depth="0" bridge_pci="0000:[40-42]">
        <object type="Bridge" os_index="1" bridge_type="1-1" depth="1" bridge_pci="0000:[41-41]" pci_busid="0000:40:01.1" pci_type="0604 [1022:1483] [0000:0000] 00" pci_link_speed="31.507692">
          <object type="PCIDev" os_index="2" pci_busid="0000:41:00.0" pci_type="0302 [10de:20b0] [10de:134f] a1" pci_link_speed="31.507692"/>
        </object>
      </object>
    </object>
  </object>
</topology>`;
  const r = buildFabric(parseHwlocXml(v1, "v1.xml"));
  assert.equal(r.facts.inputs[0].format, "hwloc-xml v1.x");
  assert.deepEqual([r.cpu?.vendor, r.cpu?.family], ["AuthenticAMD", 23]);
  const gpu = r.fabric.get("0000:41:00.0");
  assert.equal(gpu.numaNode, 1);
  assert.equal(gpu.hostBridge.numaNode, 1);
  assert.deepEqual(gpu.link, { speed: 16, width: 16, maxSpeed: 16, maxWidth: 16, flit: false });
  assert.equal(gpu.bus.self?.kind, "root-port");
});

test("hwloc link GB/s → speed × width, and the readings it leaves out", () => {
  assert.deepEqual(splitLinkGBps(15.753846), {
    speed: 8,
    width: 16,
    alternatives: ["16 GT/s x8", "32 GT/s x4"],
  });
  assert.deepEqual(splitLinkGBps(0.25), { speed: 2.5, width: 1, alternatives: [] });
  assert.deepEqual(splitLinkGBps(31.507692)?.speed, 16);
  assert.equal(splitLinkGBps(0.1), null);
  assert.deepEqual(parseHwlocBitmap("0x00000003"), [0, 1]);
  assert.deepEqual(parseHwlocBitmap("0x00000001,0x00000000"), [32]);
  assert.equal(parseHwlocBitmap("0xf...f"), null);
});

test("hwloc malformed or truncated XML: an InputError naming file and line", () => {
  const text = readReal("hwloc/ibm-power8-nvlink-p100/power8gpudistances.hwloc-v2.xml");
  const cut = text.slice(0, Math.floor(text.length / 2));
  assert.throws(
    () => parseHwlocXml(cut, "p8.xml"),
    (e: unknown) => e instanceof InputError && /^p8\.xml:\d+:\d+: malformed XML/.test(e.message),
  );
  assert.throws(
    () => parseHwlocXml('<topology version="2.0"><object type="PCIDev" pci_busid="zz"/></topology>', "x.xml"),
    /x\.xml:1: pci_busid: .*not a PCI address/,
  );
  assert.throws(
    () => parseHwlocXml('<topology version="2.0"></topology>', "x.xml"),
    /x\.xml:1: the <topology> has no <object>/,
  );
  assert.throws(
    () =>
      parseHwlocXml(
        '<topology><object type="Bridge" bridge_type="0-1" bridge_pci="junk"/></topology>',
        "x.xml",
      ),
    /x\.xml:1: host bridge: expected bridge_pci/,
  );
});
