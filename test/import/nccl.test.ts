/**
 * NCCL / RCCL topology XML importer (src/import/nccl.ts) against what the files state: every
 * topology XML in fixtures/real imports with one function per <pci>, placed in a valid tree that
 * keeps NCCL's nesting (a nested <pci> two levels down, behind an invented downstream port; a <cpu>
 * child on a root bus or behind an invented root port), links from link_speed/link_width (quirks
 * included), NUMA nodes from numaid and the CPU from the <cpu> element; virtual switches and bus ids
 * that cannot stand are renumbered and listed. The NCCL graph file and broken XML are clear errors.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InputError } from "../../src/core/errors.js";
import { buildFabric } from "../../src/import/merge.js";
import { parseNcclLinkSpeed, parseNcclXml } from "../../src/import/nccl.js";
import { calcMapTypeAndDist } from "../../src/p2pdma/index.js";
import { Fabric } from "../../src/pci/fabric.js";
import { assertWholeFabric, readReal, realFiles } from "./import-fixtures.js";

interface XPci {
  busid: string;
  attrs: Record<string, string>;
  parent: XPci | null;
  numa: number;
}

/** The <pci> elements of an NCCL file read independently (a tag scan with a nesting stack). */
function xmlPci(text: string): XPci[] {
  const out: XPci[] = [];
  const stack: XPci[] = [];
  let numa = -1;
  const s = text.replace(/<!--[\s\S]*?-->/g, "");
  for (const m of s.matchAll(/<pci\b([^>]*?)(\/?)>|<\/pci>|<cpu\b([^>]*)>/g)) {
    if (m[0] === "</pci>") {
      stack.pop();
      continue;
    }
    if (m[3] !== undefined) {
      numa = Number(/numaid="(\d+)"/.exec(m[3])?.[1] ?? -1);
      continue;
    }
    const attrs: Record<string, string> = {};
    for (const a of m[1].matchAll(/(\w+)="([^"]*)"/g)) attrs[a[1]] = a[2];
    const p: XPci = { busid: attrs.busid, attrs, parent: stack.at(-1) ?? null, numa };
    out.push(p);
    if (!m[2]) stack.push(p);
  }
  return out;
}

const FILES = realFiles(/\.xml$/).filter((f) => !f.startsWith("hwloc/") && !f.endsWith("-graph.xml"));

for (const file of FILES) {
  test(`NCCL ${file}: one function per <pci>, NCCL's nesting kept in a valid tree, links, NUMA and class`, () => {
    const text = readReal(file);
    const facts = parseNcclXml(text, file);
    const r = buildFabric(facts);
    assertWholeFabric(r.fabric, file);
    const pcis = xmlPci(text);
    const real = r.fabric.devices().filter((d) => !facts.functions.get(d.bdf)?.placeholder);
    assert.equal(real.length, pcis.length);
    const placed = (p: XPci) => r.fabric.get(facts.renamed.get(p.busid) ?? p.busid);
    for (const p of pcis) {
      const d = placed(p);
      const up = Fabric.upstreamBridge(d);
      if (p.parent) {
        // two levels below its <pci> parent: an invented downstream port in between
        assert.ok(up && facts.functions.get(up.bdf)?.placeholder, `${p.busid}: behind an invented port`);
        assert.equal(up.kind, "downstream-port");
        assert.equal(Fabric.upstreamBridge(up), placed(p.parent), `${p.busid} below ${p.parent.busid}`);
      } else if (up) {
        assert.ok(facts.functions.get(up.bdf)?.placeholder, `${p.busid}: behind an invented root port`);
        assert.equal(up.kind, "root-port");
        assert.ok(up.bus.isRoot);
      } else assert.ok(d.bus.isRoot);
      assert.equal(d.numaNode, p.numa, `${p.busid} NUMA`);
      if (p.attrs.class) assert.equal(d.classCode, Number.parseInt(p.attrs.class, 16), `${p.busid} class`);
      if (p.attrs.vendor && p.attrs.vendor !== "0xffff")
        assert.equal(d.vendor, Number.parseInt(p.attrs.vendor, 16));
      const speed = parseNcclLinkSpeed(p.attrs.link_speed).speed;
      const width = Number(p.attrs.link_width ?? 0);
      if (speed > 0 || width > 0) {
        assert.ok(d.link, `${p.busid} link`);
        assert.deepEqual([d.link.maxSpeed, d.link.maxWidth], [speed, width], `${p.busid} link`);
        // NCCL states the maximum; the negotiated state is assumed equal, and listed as unknown
        assert.ok(r.unknowns.some((u) => u.subject === d.bdf && u.attribute === "link"));
      } else if (d.pcieType !== null && d.kind !== "host-bridge")
        assert.equal(d.link, null, `${p.busid} no link`);
      if (d.bdf !== p.busid) assert.equal(r.provenance.value(d.bdf, "statedBdf"), p.busid);
    }
  });
}

test("NCCL alibaba 8x L20 (ConnectX-8 switches): bus numbers invented as firmware would, GPU and NIC share the CX-8", () => {
  const file = "alibaba-rtp-llm/8x-l20-granite-rapids-cx8/topo.xml";
  const r = buildFabric(parseNcclXml(readReal(file), file));
  assert.deepEqual([r.cpu?.vendor, r.cpu?.family, r.cpu?.model], ["GenuineIntel", 6, 173]);
  assert.equal(r.renamed.size, 0); // every bus id stands as stated
  const gpu = r.fabric.get("0000:1b:00.0");
  assert.deepEqual(
    Fabric.pathToRoot(gpu).map((d) => d.bdf),
    ["0000:1a:00.0", "0000:19:00.0", "0000:17:00.0", "0000:16:00.0", "0000:15:00.0"],
  );
  assert.deepEqual(gpu.link, { speed: 64, width: 16, maxSpeed: 64, maxWidth: 16, flit: false });
  const nic = r.fabric.get("0000:18:00.0");
  assert.equal(calcMapTypeAndDist(gpu, nic, r.cpu!).type, "BUS_ADDR");
  // the invented root port takes the link NCCL states on the switch ("32.0 GT/s PCIe" x16)
  assert.deepEqual(r.fabric.get("0000:15:00.0").link?.maxSpeed, 32);
  // NCCL's 4-port ConnectX-7 hangs off its own (invented) root port
  assert.equal(r.fabric.get("0000:27:00.0").bus.self?.kind, "root-port");
});

test('NCCL AWS p5.48xlarge: link_speed "32 GT/s PCIe/s" (sic) is 32 GT/s; no ids stated → unknown, not invented', () => {
  const file = "aws-ofi-nccl/p5-48xlarge/p5.48xl-topo.xml";
  const r = buildFabric(parseNcclXml(readReal(file), file));
  const nic = r.fabric.get("0000:4f:00.0");
  assert.equal(nic.link?.maxSpeed, 32);
  assert.equal(nic.vendor, 0);
  assert.ok(r.unknowns.some((u) => u.subject === nic.bdf && u.attribute === "vendor"));
  assert.equal(r.cpu, undefined);
  assert.ok(r.unknowns.some((u) => u.subject === "cpu"));
  // 8 switches (4 per socket) of 4 NICs
  assert.equal(r.fabric.devices().filter((d) => d.kind === "upstream-port").length, 8);
  assert.equal(new Set(r.fabric.devices().map((d) => d.numaNode)).size, 2);
});

test("NCCL AWS p4d.24xlarge: the virtual switches (ffff:ff:0X.0, vendor 0xffff) move into the GPUs' domain", () => {
  const file = "aws-ofi-nccl/p4d-24xlarge/p4d-24xl-topo.xml";
  const r = buildFabric(parseNcclXml(readReal(file), file));
  assert.deepEqual([...r.renamed.keys()].sort(), [
    "ffff:ff:01.0",
    "ffff:ff:02.0",
    "ffff:ff:03.0",
    "ffff:ff:04.0",
  ]);
  const g0 = r.fabric.get("0000:10:1c.0");
  const nic0 = r.fabric.get("0000:10:1b.0");
  const sw = r.fabric.get(r.renamed.get("ffff:ff:01.0")!);
  assert.ok(Fabric.pathToRoot(g0).includes(sw));
  assert.equal(sw.vendor, 0); // 0xffff means "no device": not kept as an id
  assert.equal(calcMapTypeAndDist(g0, nic0, r.cpu!).type, "BUS_ADDR");
  assert.ok(r.warnings.some((w) => /renumbered 4 bus id\(s\)/.test(w)));
});

test("NCCL Azure ND A100 v4: virtual switches group devices of several PCI domains; they are renumbered below them", () => {
  const file = "azure-azhpc-images/ndv4/ndv4-topo.xml";
  const r = buildFabric(parseNcclXml(readReal(file), file));
  assert.deepEqual([r.cpu?.vendor, r.cpu?.family, r.cpu?.model], ["AuthenticAMD", 23, 49]);
  const gpu = r.fabric.get(r.renamed.get("0003:00:00.0")!);
  const nic = r.fabric.get(r.renamed.get("0103:00:00.0")!);
  assert.equal(gpu.segment, 0xffff);
  assert.deepEqual([gpu.classCode, nic.classCode], [0x030200, 0x020700]);
  assert.match(gpu.name, /NCCL busid 0003:00:00\.0/);
  // the grouping NCCL is told about survives: GPU and NIC meet at the (virtual) switch
  assert.equal(calcMapTypeAndDist(gpu, nic, r.cpu!).type, "BUS_ADDR");
  assert.equal(r.fabric.hostBridges.length, 4); // one root complex per NUMA node
});

test('NCCL Azure NC A100 v4: link_speed="" and link_width="0" are unknown; each GPU alone in its domain', () => {
  const file = "azure-azhpc-images/ncv4/ncv4-topo.xml";
  const r = buildFabric(parseNcclXml(readReal(file), file));
  assert.deepEqual([r.cpu?.vendor, r.cpu?.family], ["AuthenticAMD", 175]);
  for (const d of r.fabric.devices()) {
    assert.equal(d.link, null, d.bdf);
    // nothing says whether it is PCIe at all (no link, a root bus): that is what is listed
    assert.ok(
      r.unknowns.some((u) => u.subject === d.bdf && ["link", "pcieType"].includes(u.attribute)),
      d.bdf,
    );
    assert.ok(d.bus.isRoot, `${d.bdf} on its own root bus`);
  }
  assert.deepEqual(
    r.fabric.devices().map((d) => d.numaNode),
    [0, 1, 2, 3],
  );
  assert.ok(r.warnings.some((w) => /NVLink/.test(w)));
});

test("NCCL AWS g5.48xlarge: bare <pci busid> elements import, class unknown, NUMA per <cpu>", () => {
  const file = "aws-ofi-nccl/g5-48xlarge/g5.48xl-topo.xml";
  const r = buildFabric(parseNcclXml(readReal(file), file));
  assert.equal(r.fabric.devices().length, 9);
  assert.equal(r.fabric.hostBridges.length, 1);
  assert.deepEqual(
    r.fabric.devices().map((d) => `${d.bdf} ${d.numaNode}`),
    [
      "0000:00:15.0 1",
      "0000:00:16.0 0",
      "0000:00:17.0 0",
      "0000:00:18.0 0",
      "0000:00:19.0 0",
      "0000:00:1a.0 1",
      "0000:00:1b.0 1",
      "0000:00:1c.0 1",
      "0000:00:1d.0 1",
    ],
  );
  assert.ok(r.unknowns.some((u) => u.attribute === "classCode"));
});

test("NCCL modal B200 KVM guest: GPUs on root bus 0002:00/0003:00, the host-bridge functions stay host bridges", () => {
  const file = "modal-gvisor/b200-8gpu-kvm-vm/nccl_topo.xml";
  const r = buildFabric(parseNcclXml(readReal(file), file));
  const gpus = r.fabric.devices().filter((d) => d.device === 0x2901);
  assert.equal(gpus.length, 8);
  for (const g of gpus) {
    assert.ok(g.bus.isRoot);
    assert.deepEqual([g.link?.maxSpeed, g.link?.maxWidth], [32, 16]);
  }
  assert.deepEqual(
    r.fabric
      .devices()
      .filter((d) => d.kind === "host-bridge")
      .map((d) => d.bdf),
    ["0000:00:00.0", "0002:00:00.0", "0003:00:00.0"],
  );
  assert.equal(r.cpu?.model, 207);
});

test("NCCL link_speed strings: the forms found in real files", () => {
  assert.deepEqual(parseNcclLinkSpeed("16 GT/s"), { speed: 16, ok: true });
  assert.deepEqual(parseNcclLinkSpeed("16.0 GT/s PCIe"), { speed: 16, ok: true });
  assert.deepEqual(parseNcclLinkSpeed("32 GT/s PCIe/s"), { speed: 32, ok: true });
  assert.deepEqual(parseNcclLinkSpeed("2.5 GT/s PCIe"), { speed: 2.5, ok: true });
  assert.deepEqual(parseNcclLinkSpeed(""), { speed: 0, ok: true });
  assert.deepEqual(parseNcclLinkSpeed("Unknown"), { speed: 0, ok: true });
  assert.deepEqual(parseNcclLinkSpeed("fast"), { speed: 0, ok: false });
});

test("NCCL graph XML, broken or truncated XML: InputErrors naming file and line", () => {
  assert.throws(
    () => parseNcclXml(readReal("azure-azhpc-images/ncv4/ncv4-graph.xml"), "graph.xml"),
    (e: unknown) => e instanceof InputError && /graph\.xml:1: this is an NCCL graph file/.test(e.message),
  );
  const text = readReal("rccl/mi300x-8gpu-intel-spr/topo_8p_940.xml");
  assert.throws(
    () => parseNcclXml(text.slice(0, 3000), "t.xml"),
    (e: unknown) => e instanceof InputError && /^t\.xml:\d+:\d+: malformed XML/.test(e.message),
  );
  assert.throws(
    () => parseNcclXml('<system version="1"><cpu numaid="0"><pci/></cpu></system>', "t.xml"),
    /t\.xml:1: <pci> without busid/,
  );
  assert.throws(() => parseNcclXml('<system version="1"></system>', "t.xml"), /t\.xml:1: no <cpu> element/);
  assert.throws(() => parseNcclXml("<nope/>", "t.xml"), /expected an NCCL <system> document/);
});

test("NCCL: a bus id that collides or contradicts its nesting is renumbered, never dropped", () => {
  const text = `<system version="1">
  <cpu numaid="0" vendor="GenuineIntel" familyid="6" modelid="143">
    <pci busid="0000:40:00.0" class="0x060400" link_speed="32.0 GT/s PCIe" link_width="16">
      <pci busid="0000:40:00.0" class="0x030200" link_speed="32.0 GT/s PCIe" link_width="16"/>
      <pci busid="0000:41:00.0" class="0x020700" link_speed="Unknown" link_width="16"/>
    </pci>
    <pci busid="not-a-bdf" class="0x030200"/>
  </cpu>
</system>`;
  const facts = parseNcclXml(text, "odd.xml");
  const r = buildFabric(facts);
  assertWholeFabric(r.fabric);
  assert.equal(r.fabric.devices().filter((d) => !facts.functions.get(d.bdf)?.placeholder).length, 4);
  assert.ok(r.renamed.has("not-a-bdf"));
  const nic = r.fabric.get("0000:41:00.0");
  assert.deepEqual([nic.link?.maxSpeed, nic.link?.maxWidth], [0, 16]); // "Unknown" speed, width stated
});
