import assert from "node:assert/strict";
import { test } from "node:test";
import { DMA_ATTR_MMIO, DMA_DATA_DIRECTION } from "../../src/dma/direction.js";
import { PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY } from "../../src/pci/regs.js";
import { decodeTlpText } from "../../src/tlp/index.js";
import { BDF } from "../helpers/spec-f.js";
import {
  AMD_ZEN,
  bytes,
  fromText,
  specFRig,
  storageRdma,
  switchMachine,
  traceLinesDecode,
} from "./helpers.js";

const rid = (bdf: string) => {
  const [, bus, df] = /^[0-9a-f]{4}:([0-9a-f]{2}):(.*)$/.exec(bdf)!;
  const [d, f] = df.split(".");
  return (Number.parseInt(bus, 16) << 8) | (Number.parseInt(d, 16) << 3) | Number(f);
};

test("EPb → EPa BAR by bus address: bytes delivered, MWr TLPs with EPb's Requester ID, split at MPS 128", () => {
  const { e, m } = specFRig();
  const epa = m.device(BDF.EPa);
  const epb = m.device(BDF.EPb);
  const addr = epa.busAddress(0) + 0x40n;
  const data = bytes(1000);
  const r = e.dmaWrite(epb, addr, data, { addressKind: "bus" });
  assert.equal(r.status, "SC");
  assert.equal(r.bytesDelivered, 1000);
  assert.deepEqual(e.bars.peek(epa, 0, 0x40, 1000), data);
  // MPS 128 on the path: 0x40 → first TLP 64 bytes, then 7 × 128, then 40
  assert.deepEqual(
    r.segments.map((s) => s.length),
    [64, 128, 128, 128, 128, 128, 128, 128, 40],
  );
  assert.equal(r.route?.turn.kind, "switch");
  assert.equal(r.route?.text, `${BDF.EPb} → ${BDF.DSPb} → [switch ${BDF.USP}] → ${BDF.DSPa} → ${BDF.EPa}`);
  assert.deepEqual(r.tlps.links(), [`${BDF.DSPb}↔${BDF.EPb}`, `${BDF.DSPa}↔${BDF.EPa}`]);
  assert.equal(r.tlps.length, 18); // 9 TLPs on each of the two links
  for (const t of r.tlps.entries) {
    assert.equal(t.header.info.name, "MWr64");
    assert.ok(t.header.header.kind === "mem" && t.header.header.requesterId === rid(BDF.EPb));
    assert.ok(t.header.info.payloadBytes <= 128);
  }
  // the trace text is what `peerdma tlp decode <file>` reads
  assert.equal(traceLinesDecode(r.tlps.toText()), 18);
  assert.equal(traceLinesDecode(r.tlps.toText({ form: "wire" })), 18);
  const ev = m.log.all().map((x) => x.event);
  assert.equal(ev.filter((x) => x.kind === "tlp").length, 18);
  const w = ev.find((x) => x.kind === "dma-write");
  assert.ok(w && w.kind === "dma-write" && w.status === "SC" && w.bytesDelivered === 1000 && w.tlps === 9);
});

test("a VF issues with its own Requester ID over its PF's link", () => {
  const { e, m } = specFRig();
  const vf = m.device(BDF.EPbVF);
  const epa = m.device(BDF.EPa);
  const r = e.dmaWrite(vf, epa.busAddress(0), bytes(64), { addressKind: "bus" });
  assert.equal(r.status, "SC");
  assert.deepEqual(r.tlps.links(), [`${BDF.DSPb}↔${BDF.EPb}`, `${BDF.DSPa}↔${BDF.EPa}`]);
  for (const t of r.tlps.entries)
    assert.ok(t.header.header.kind === "mem" && t.header.header.requesterId === rid(BDF.EPbVF));
});

test("THRU_HOST_BRIDGE: EPc writes EPa's BAR through an IOVA mapped by the DMA API; translated at the root complex", () => {
  const { e, m } = specFRig({}, AMD_ZEN);
  const epa = m.device(BDF.EPa);
  const epc = m.device(BDF.EPc);
  assert.equal(m.p2pdma.calc(epa, epc, false).type, "THRU_HOST_BRIDGE");
  const phys = epa.resources[0].start + 0x2000n;
  const iova = m.dma.dmaMapPhys(epc, phys, 0x2000n, DMA_DATA_DIRECTION.BIDIRECTIONAL, DMA_ATTR_MMIO);
  const data = bytes(300, 5);
  const r = e.dmaWrite(epc, iova + 0x10n, data, { addressKind: "iova" });
  assert.equal(r.status, "SC");
  assert.deepEqual(e.bars.peek(epa, 0, 0x2010, 300), data);
  assert.equal(r.route?.turn.kind, "root-complex");
  assert.ok(r.route?.translated);
  assert.equal(
    r.route?.text,
    `${BDF.EPc} → ${BDF.RP1} → [pci0000:00] → ${BDF.RP0} → ${BDF.USP} → ${BDF.DSPa} → ${BDF.EPa}`,
  );
  // the request link carries the IOVA, the links below the root complex the bus address
  const up = r.tlps.onLink(`${BDF.RP1}↔${BDF.EPc}`);
  const down = r.tlps.onLink(`${BDF.DSPa}↔${BDF.EPa}`);
  assert.equal(up[0].header.info.address, iova + 0x10n);
  assert.equal(down[0].header.info.address, epa.busAddress(0) + 0x2010n);
  // "auto" does the same: not a switch peer, so the root complex translates
  assert.equal(e.dmaWrite(epc, iova, bytes(8), { addressKind: "auto" }).status, "SC");
});

test("an unmapped IOVA faults at the root complex: no byte delivered, dma-fault event", () => {
  const { e, m } = specFRig();
  const epa = m.device(BDF.EPa);
  const epc = m.device(BDF.EPc);
  const seen: unknown[] = [];
  e.bars.onStore((s) => seen.push(s));
  e.ram.onStore((s) => seen.push(s));
  const r = e.dmaWrite(epc, 0x5000_0000n, bytes(256), { addressKind: "iova" });
  assert.equal(r.status, "iommu-fault");
  assert.equal(r.fault, "unmapped");
  assert.equal(r.bytesDelivered, 0);
  assert.equal(r.at, "pci0000:00");
  assert.deepEqual(seen, []);
  // the TLPs went up to the root complex and no further
  assert.deepEqual(r.tlps.links(), [`${BDF.RP1}↔${BDF.EPc}`]);
  // a bus address of EPa's BAR from EPc is not a switch peer either: it faults too
  assert.equal(e.dmaWrite(epc, epa.busAddress(0), bytes(4), { addressKind: "auto" }).status, "iommu-fault");
  const f = m.log.all().find((x) => x.event.kind === "dma-fault")?.event;
  assert.ok(f && f.kind === "dma-fault" && f.status === "iommu-fault" && f.count === 1);
  // a read: the root complex answers Unsupported Request back to the requester
  const rd = e.dmaRead(epc, 0x5000_0000n, 64, { addressKind: "iova" });
  assert.equal(rd.status, "iommu-fault");
  assert.deepEqual([...rd.data.slice(0, 4)], [0xff, 0xff, 0xff, 0xff]);
  const cpl = rd.tlps.entries.find((t) => t.header.info.kind === "cpl");
  assert.ok(cpl && cpl.direction === "down" && cpl.header.info.status === 1);
});

test("COMMAND.MEMORY clear on the target → Unsupported Request, no byte delivered", () => {
  const { e, m } = specFRig();
  const epa = m.device(BDF.EPa);
  const epb = m.device(BDF.EPb);
  epa.command &= ~PCI_COMMAND_MEMORY;
  const seen: unknown[] = [];
  e.bars.onStore((s) => seen.push(s));
  const r = e.dmaWrite(epb, epa.busAddress(0), bytes(512), { addressKind: "bus" });
  assert.equal(r.status, "UR");
  assert.equal(r.at, BDF.EPa);
  assert.equal(r.bytesDelivered, 0);
  assert.deepEqual(seen, []);
  assert.equal(e.bars.pagesAllocated(epa, 0), 0);
  // the TLPs reached EPa's link (the switch still routes by its windows) and were refused there
  assert.equal(r.tlps.onLink(`${BDF.DSPa}↔${BDF.EPa}`).length, 4);
  // a read gets a UR completion from EPa
  const rd = e.dmaRead(epb, epa.busAddress(0), 16, { addressKind: "bus" });
  assert.equal(rd.status, "UR");
  const cpl = rd.tlps.entries.filter((t) => t.header.info.kind === "cpl");
  assert.equal(cpl.length, 2);
  assert.ok(cpl.every((c) => c.header.info.status === 1 && c.header.header.kind === "cpl"));
  // memory back on: delivered
  epa.command |= PCI_COMMAND_MEMORY;
  assert.equal(e.dmaWrite(epb, epa.busAddress(0), bytes(16), { addressKind: "bus" }).status, "SC");
});

test("Bus Master Enable clear: the initiator issues nothing; a bridge without it does not forward upstream", () => {
  const { e, m } = specFRig();
  const epb = m.device(BDF.EPb);
  const epa = m.device(BDF.EPa);
  epb.command &= ~PCI_COMMAND_MASTER;
  const r = e.dmaWrite(epb, epa.busAddress(0), bytes(16), { addressKind: "bus" });
  assert.equal(r.status, "bus-master-disabled");
  assert.equal(r.requests, 0);
  epb.command |= PCI_COMMAND_MASTER;
  m.device(BDF.DSPb).command &= ~PCI_COMMAND_MASTER;
  const r2 = e.dmaWrite(epb, epa.busAddress(0), bytes(16), { addressKind: "bus" });
  assert.equal(r2.status, "UR");
  assert.equal(r2.at, BDF.DSPb);
});

test("nothing decodes the address → Unsupported Request at the root complex", () => {
  const { e, m } = specFRig();
  const r = e.dmaWrite(m.device(BDF.EPb), 0x7000_0000_0000n, bytes(8), { addressKind: "bus" });
  assert.equal(r.status, "UR");
  assert.equal(r.at, "pci0000:00");
  assert.match(r.reason ?? "", /nothing decodes/);
});

test("ACS P2P Request Redirect on the ingress port sends a switch peer's request to the root complex", () => {
  const { e, dev } = fromText(switchMachine({ redirect: true }));
  const nic = dev("NIC");
  const ssd = dev("SSD");
  const addr = ssd.busAddress(2);
  // the NIC is behind the IOMMU: the redirected bus address is an IOVA there and faults
  const r = e.dmaWrite(nic, addr, bytes(64), { addressKind: "auto" });
  assert.equal(r.status, "iommu-fault");
  assert.equal(r.route?.redirectedBy, dev("DSP0").bdf);
  // without translation ("bus": the address is used as is) it comes back down through the root port
  const r2 = e.dmaWrite(nic, addr, bytes(64), { addressKind: "bus" });
  assert.equal(r2.status, "SC");
  assert.equal(r2.route?.turn.kind, "root-complex");
  assert.deepEqual(r2.tlps.links(), [
    `${dev("DSP0").bdf}↔${nic.bdf}`,
    `${dev("RP").bdf}↔${dev("USP").bdf}`,
    `${dev("DSP1").bdf}↔${ssd.bdf}`,
  ]);
  // no redirect: peer to peer inside the switch
  const { e: e2, dev: d2 } = fromText(switchMachine());
  const r3 = e2.dmaWrite(d2("NIC"), d2("SSD").busAddress(2), bytes(64), { addressKind: "auto" });
  assert.equal(r3.status, "SC");
  assert.equal(r3.route?.turn.kind, "switch");
  assert.equal(r3.route?.translated, false);
});

test("functions of one device reach each other inside the device (no link TLP)", () => {
  const { e, m } = specFRig();
  const mf0 = m.device(BDF.MF0);
  const mf1 = m.device(BDF.MF1);
  const r = e.dmaWrite(mf0, mf1.busAddress(0), bytes(32), { addressKind: "bus" });
  assert.equal(r.status, "SC");
  assert.equal(r.route?.turn.kind, "device");
  assert.equal(r.tlps.length, 0);
});

test("BW-12 (engine) host memory: writes and reads of system RAM through the IOMMU; RCB-sized completions from the root complex", () => {
  const { e, dev, m } = storageRdma();
  const nic = dev("mlx5_0");
  const phys = 0x2000_0000n;
  const iova = m.dma.dmaMapPhys(nic, phys, 0x4000n, DMA_DATA_DIRECTION.BIDIRECTIONAL, 0);
  const data = bytes(4096, 3);
  const w = e.dmaWrite(nic, iova, data, { addressKind: "auto" });
  assert.equal(w.status, "SC");
  assert.equal(w.route?.kind, "host-memory");
  assert.deepEqual(e.ram.read(phys, 4096), data);
  assert.equal(w.requests, 16); // MPS 256
  // BW-12 through the engine: read 512 B at offset 0x30 … completions at the 64-byte RCB
  e.ram.write(phys + 0x1000n, bytes(0x300, 9));
  const r = e.dmaRead(nic, iova + 0x1030n, 512, { addressKind: "auto" });
  assert.equal(r.status, "SC");
  assert.deepEqual(r.data, e.ram.read(phys + 0x1030n, 512));
  const cpls = r.tlps.entries.filter((t) => t.header.info.kind === "cpl" && t.link.endsWith(nic.bdf));
  assert.deepEqual(
    cpls.map((c) => c.header.info.payloadBytes - (c.header.info.lowerAddress! & 3)),
    [16, 64, 64, 64, 64, 64, 64, 64, 48],
  );
  assert.equal(cpls[0].header.info.lowerAddress, 0x30);
  assert.equal(cpls[1].header.info.lowerAddress, 0x40);
});

test("BW-11 (engine) read 512 B at 0x1030 from an endpoint BAR (RCB 64, MPS 256, policy max) → 208/256/48", () => {
  const { e, dev } = storageRdma();
  const nic = dev("mlx5_0");
  const nvme = dev("nvme0");
  const a = nvme.busAddress(2) + 0x1030n;
  const r = e.dmaRead(nic, a, 512, { addressKind: "bus" });
  assert.equal(r.status, "SC");
  assert.equal(r.requests, 1); // MRRS 4096
  const cpls = r.tlps.entries.filter((t) => t.header.info.kind === "cpl" && t.link.endsWith(nic.bdf));
  const fields = cpls.map((c) => {
    const h = c.header.header;
    assert.ok(h.kind === "cpl");
    return { bc: h.byteCount, la: c.header.info.lowerAddress, len: c.header.info.payloadBytes };
  });
  // payload DWs include the bytes below Lower Address[1:0] (none here: LA is DW aligned)
  assert.deepEqual(fields, [
    { bc: 512, la: 0x30, len: 208 },
    { bc: 304, la: 0x00, len: 256 },
    { bc: 48, la: 0x00, len: 48 },
  ]);
  for (const c of cpls)
    assert.ok(c.header.header.kind === "cpl" && c.header.header.completerId === rid(nvme.bdf));
});

test("BW-9 (engine) 1 MiB write at 0x10000F80, MPS 256 → 4097 TLPs: 128, 4095 × 256, 128", () => {
  const { e, dev } = storageRdma({ trace: false });
  const nic = dev("mlx5_0");
  const r = e.dmaWrite(nic, 0x1000_0f80n, new Uint8Array(1 << 20), { addressKind: "bus" });
  assert.equal(r.status, "SC");
  assert.equal(r.requests, 4097);
  assert.equal(r.segments[0].length, 128);
  assert.equal(r.segments[4096].length, 128);
  assert.ok(r.segments.slice(1, 4096).every((s) => s.length === 256));
});

test("BW-10 (engine) 8 KiB write at 0x0FF0, MPS 512 → 16, 15 × 512, 496; none crosses 4 KiB", () => {
  const { e, dev } = fromText(switchMachine({ mps: 512 }), { trace: true, logTlps: false });
  const r = e.dmaWrite(dev("NIC"), 0x0ff0n, new Uint8Array(8192), { addressKind: "bus" });
  assert.equal(r.status, "SC");
  assert.deepEqual(
    r.segments.map((s) => s.length),
    [16, ...Array(15).fill(512), 496],
  );
  for (const t of r.tlps.entries) {
    const a = t.header.info.address!;
    assert.equal(a / 4096n, (a + BigInt(t.header.info.payloadBytes) - 1n) / 4096n);
  }
});

test("BW-13 (engine) 1 MiB read with MRRS 512 → 2048 requests; MRRS 4096 → 256", () => {
  const { e, dev } = storageRdma({ trace: false });
  assert.equal(e.dmaRead(dev("nvme0"), 0x1000_0000n, 1 << 20, { addressKind: "bus" }).requests, 2048);
  assert.equal(e.dmaRead(dev("mlx5_0"), 0x1000_0000n, 1 << 20, { addressKind: "bus" }).requests, 256);
});

test("BW-5 (engine) a write below 4 GiB uses a 3-DW header, at 4 GiB a 4-DW header", () => {
  const { e, dev } = storageRdma({ ram: [{ start: 0n, size: 0x2_0000_0000n }] });
  const nic = dev("mlx5_0");
  const lo = e.dmaWrite(nic, 0xffff_f000n, bytes(64), { addressKind: "bus" });
  const hi = e.dmaWrite(nic, 0x1_0000_0000n, bytes(64), { addressKind: "bus" });
  assert.equal(lo.tlps.entries[0].header.info.headerBytes, 12);
  assert.equal(hi.tlps.entries[0].header.info.headerBytes, 16);
});

test("BW-18 (engine) p2pSplitBytes 64: writes forwarded by the root complex are re-split below it", () => {
  const text = switchMachine().replace("    bus: 0\n", "    bus: 0\n    p2pSplitBytes: 64\n");
  const { e, dev } = fromText(text);
  const gpu = dev("GPU");
  const ssd = dev("SSD");
  const r = e.dmaWrite(gpu, ssd.busAddress(2), bytes(512), { addressKind: "bus" });
  assert.equal(r.status, "SC");
  assert.equal(r.route?.turn.kind, "root-complex");
  const before = r.tlps.onLink(`${dev("RP2").bdf}↔${gpu.bdf}`);
  const after = r.tlps.onLink(`${dev("DSP1").bdf}↔${ssd.bdf}`);
  assert.deepEqual(
    before.map((t) => t.header.info.payloadBytes),
    [256, 256],
  );
  assert.equal(after.length, 8);
  assert.ok(after.every((t) => t.header.info.payloadBytes === 64));
  assert.deepEqual(e.bars.peek(ssd, 2, 0, 512), bytes(512));
});

test("P2P across host bridges goes over the interconnect; the far side carries that bridge's bus address", () => {
  const { e, m } = specFRig();
  const epb = m.device(BDF.EPb); // dma-direct
  const epd = m.device(BDF.EPd);
  const r = e.dmaWrite(epb, epd.resources[0].start, bytes(8), { addressKind: "bus" });
  assert.equal(r.status, "SC");
  assert.ok(r.route?.turn.kind === "root-complex" && r.route.turn.to?.domain === 1);
  assert.match(r.route?.text ?? "", /\[interconnect\]/);
});

test("unaligned bytes: byte enables on the first and last DW; the trace decodes back", () => {
  const { e, m } = specFRig();
  const epa = m.device(BDF.EPa);
  const r = e.dmaWrite(m.device(BDF.EPb), epa.busAddress(0) + 0x3n, bytes(6), { addressKind: "bus" });
  const t = r.tlps.entries[0].header;
  assert.equal(t.info.lengthDw, 3);
  assert.deepEqual(t.info.byteEnables, { first: 0b1000, last: 0b0001, implied: false });
  const one = e.dmaWrite(m.device(BDF.EPb), epa.busAddress(0) + 0x1n, bytes(2), { addressKind: "bus" });
  assert.deepEqual(one.tlps.entries[0].header.info.byteEnables, { first: 0b0110, last: 0, implied: false });
  assert.deepEqual(e.bars.peek(epa, 0, 1, 2), bytes(2));
  const line = one.tlps.toLines({ comments: false })[0];
  assert.equal(decodeTlpText(line).tlp.info.name, "MWr64");
});

test("CPU MMIO: a store to a BAR travels down from the root complex; a load of a refused BAR reads all ones", () => {
  const { e, m } = specFRig();
  const epa = m.device(BDF.EPa);
  const cpu = epa.resources[2].start;
  const w = e.cpuWrite32(cpu + 4n, 0xdeadbeef);
  assert.equal(w.status, "SC");
  assert.equal(w.route?.text, `cpu → [pci0000:00] → ${BDF.RP0} → ${BDF.USP} → ${BDF.DSPa} → ${BDF.EPa}`);
  assert.equal(e.cpuRead32(cpu + 4n), 0xdeadbeef);
  epa.command &= ~PCI_COMMAND_MEMORY;
  assert.equal(e.cpuRead32(cpu + 4n), 0xffffffff);
  // RAM stores by the CPU produce no TLP
  const r = e.cpuWrite(0x1000n, bytes(8));
  assert.equal(r.requests, 0);
  assert.deepEqual(e.ram.read(0x1000n, 8), bytes(8));
});

test("bad input is InputError", () => {
  const { e, m } = specFRig();
  const epb = m.device(BDF.EPb);
  assert.throws(() => e.dmaWrite(epb, -1n, bytes(1), { addressKind: "bus" }), { name: "InputError" });
  assert.throws(() => e.dmaWrite(epb, 0n, bytes(1), { addressKind: "phys" as "bus" }), {
    name: "InputError",
  });
  assert.throws(() => e.dmaWrite(epb, 0n, bytes(1), { addressKind: "bus", tph: { st: 0x1ff, ph: 0 } }), {
    name: "InputError",
  });
  assert.throws(() => e.dmaWrite(epb, (1n << 64n) - 1n, bytes(2), { addressKind: "bus" }), {
    name: "InputError",
  });
  assert.throws(() => e.cpuWrite(0n, bytes(1), { chunk: 3 as 4 }), { name: "InputError" });
});

test("machine log: a transfer's events come in order (tlp…, dma-write)", () => {
  const { e, m } = specFRig();
  const mark = m.log.length;
  e.dmaWrite(m.device(BDF.EPb), m.device(BDF.EPa).busAddress(0), bytes(16), { addressKind: "bus" });
  const kinds = m.log.since(mark).map((x) => x.event.kind);
  assert.deepEqual(kinds, ["tlp", "tlp", "dma-write"]);
});

test("a host-bridge window with a bus offset: BARs are decoded by bus address below it, by CPU address at the root complex", () => {
  const text = switchMachine()
    .replace(
      "    bus: 0\n",
      "    bus: 0\n    windows: [{ cpuBase: 0x80_0000_0000, size: 0x1_0000_0000, busOffset: 0x7f_0000_0000 }]\n",
    )
    .replace(
      "{ index: 2, type: mem64, prefetch: true, size: 1MiB, name: CMB }",
      "{ index: 2, type: mem64, prefetch: true, size: 1MiB, name: CMB, address: 0x80_0010_0000 }",
    );
  const { e, dev } = fromText(text);
  const ssd = dev("SSD");
  assert.equal(ssd.resources[2].start, 0x80_0010_0000n);
  assert.equal(ssd.busAddress(2), 0x1_0010_0000n);
  // a switch peer uses the bus address
  const p = e.dmaWrite(dev("NIC"), 0x1_0010_0000n, bytes(8), { addressKind: "bus" });
  assert.equal(p.status, "SC");
  assert.equal(p.route?.turn.kind, "switch");
  // from another root port the root complex converts bus → CPU and back to the bus address below it
  const g = e.dmaWrite(dev("GPU"), 0x1_0010_0040n, bytes(8, 2), { addressKind: "bus" });
  assert.equal(g.status, "SC");
  assert.equal(g.route?.turn.kind, "root-complex");
  assert.equal(g.segments[0].downAddress, 0x1_0010_0040n);
  assert.deepEqual(e.bars.peek(ssd, 2, 0x40, 8), bytes(8, 2));
  // the CPU stores by CPU address; the TLP below the root complex carries the bus address
  const c = e.cpuWrite32(0x80_0010_0080n, 0x11223344);
  assert.equal(c.tlps.entries.at(-1)?.header.info.address, 0x1_0010_0080n);
});
