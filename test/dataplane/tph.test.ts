import assert from "node:assert/strict";
import { test } from "node:test";
import { DmaEngine } from "../../src/dataplane/index.js";
import { PCI_EXP_LNKSTA2 } from "../../src/pci/regs.js";
import { formatWire } from "../../src/tlp/index.js";
import { bytes, fromText, storageRdma, switchMachine, traceLinesDecode } from "./helpers.js";

const hexBytes = (b: Uint8Array) => formatWire(b);
const ridOf = (bus: number, devfn: number) => (bus << 8) | devfn;

test("TPH-29 NFM: a 64-byte write with ST 0xF0 / PH 2 → one MWr, TH 1, byte 6 = 0xF0, address bits 1:0 = 10, NIC PF's Requester ID", () => {
  const { e, dev } = storageRdma();
  const nic = dev("mlx5_0");
  const nvme = dev("nvme0");
  const r = e.dmaWrite(nic, nvme.busAddress(2) + 0x1000n, bytes(64), {
    addressKind: "bus",
    tph: { st: 0xf0, ph: 2 },
  });
  assert.equal(r.status, "SC");
  assert.equal(r.requests, 1);
  const links = r.tlps.links();
  assert.equal(links.length, 2);
  for (const t of r.tlps.entries) {
    assert.equal(t.mode, "nfm");
    const b = t.bytes;
    assert.equal(b[0], 0x60); // MWr64
    assert.equal(b[1] & 1, 1); // TH
    assert.equal((b[4] << 8) | b[5], ridOf(nic.busNumber, nic.devfn));
    assert.equal(b[6], 0xf0); // ST[7:0] in the tag byte
    assert.equal(b[15] & 3, 0b10); // PH 2 in the address low bits
    assert.deepEqual(t.header.info.tph, { st: 0xf0, stBits: 8, ph: 2 });
    assert.equal(t.header.info.payloadBytes, 64);
  }
  assert.deepEqual(e.bars.peek(nvme, 2, 0x1000, 64), bytes(64));
});

test("TPH-29 FM: over flit-mode links the same write carries OHC-B 00 00 F0 90 and (mirror policy) Tag 0xF0", () => {
  const { e, dev } = fromText(switchMachine({ flit: true }));
  const nic = dev("NIC");
  const ssd = dev("SSD");
  const r = e.dmaWrite(nic, ssd.busAddress(2), bytes(64), { addressKind: "bus", tph: { st: 0xf0, ph: 2 } });
  assert.equal(r.status, "SC");
  assert.equal(r.requests, 1);
  for (const t of r.tlps.entries) {
    assert.equal(t.mode, "fm");
    const b = t.bytes;
    assert.equal(b[0], 0x60);
    assert.equal(b[1] & 0x1f, 0b00010); // OHC-B only
    assert.equal(hexBytes(b.subarray(16, 20)), "00 00 F0 90");
    assert.equal(b[7], 0xf0); // Tag[7:0] = ST[7:0]
    assert.equal(b[6] & 0x3f, 0); // Tag[13:8]
    assert.equal(t.header.info.tag, 0xf0);
  }
  // forcing flit mode on the storage machine's NFM links gives the same OHC-B
  const s = storageRdma();
  const r2 = s.e.dmaWrite(s.dev("mlx5_0"), s.dev("nvme0").busAddress(2), bytes(64), {
    addressKind: "bus",
    tph: { st: 0xf0, ph: 2 },
    flitMode: "fm",
  });
  assert.equal(hexBytes(r2.tlps.entries[0].bytes.subarray(16, 20)), "00 00 F0 90");
  // knob fmPostedTagPolicy 'zero'
  const z = fromText(switchMachine({ flit: true }), { fmPostedTagPolicy: "zero" });
  const r3 = z.e.dmaWrite(z.dev("NIC"), z.dev("SSD").busAddress(2), bytes(64), {
    addressKind: "bus",
    tph: { st: 0xf0, ph: 2 },
  });
  assert.equal(r3.tlps.entries[0].header.info.tag, 0);
  assert.equal(traceLinesDecode(r.tlps.toText()), r.tlps.length);
});

test("TPH-29 a non-posted read with TPH over NFM carries ST in byte 7 (byte enables implied)", () => {
  const { e, dev } = storageRdma();
  const r = e.dmaRead(dev("mlx5_0"), dev("nvme0").busAddress(2), 64, {
    addressKind: "bus",
    tph: { st: 0xf0, ph: 2 },
  });
  const mrd = r.tlps.entries[0];
  assert.equal(mrd.header.info.name, "MRd64");
  assert.equal(mrd.bytes[7], 0xf0);
  assert.equal(mrd.bytes[15] & 3, 2);
  // completions carry no TPH
  assert.ok(
    r.tlps.entries.filter((t) => t.header.info.kind === "cpl").every((t) => t.header.info.tph === null),
  );
});

test("TPH-30 16-bit ST 0xABCD over NFM: the write carries the ExtTPH prefix 90 AB 00 00 (every port supports End-End prefixes)", () => {
  const { e, dev } = fromText(switchMachine());
  const nic = dev("NIC");
  const ssd = dev("SSD");
  const r = e.dmaWrite(nic, ssd.busAddress(2) + 0x40n, bytes(64), {
    addressKind: "bus",
    tph: { st: 0xabcd, ph: 3, extended: true },
  });
  assert.equal(r.status, "SC");
  assert.equal(r.tlps.length, 2);
  for (const t of r.tlps.entries) {
    assert.equal(hexBytes(t.bytes.subarray(0, 4)), "90 AB 00 00");
    assert.equal(t.bytes[4 + 6], 0xcd); // ST[7:0] in the header's byte 6
    assert.deepEqual(t.header.info.tph, { st: 0xabcd, stBits: 16, ph: 3 });
  }
  assert.match(r.tlps.toText(), /E-E Prefixes: 0x90ab0000/);
  assert.equal(traceLinesDecode(r.tlps.toText()), 2);
  assert.deepEqual(e.bars.peek(ssd, 2, 0x40, 64), bytes(64));
});

test("TPH-30 a port without End-End TLP prefix support blocks the TLP: 'TLP prefix blocked', no byte delivered", () => {
  // the SSD's downstream port would have to send the prefix on its non-flit link
  const { e, dev, m } = fromText(switchMachine({ ee: { dsp1: false } }));
  const nic = dev("NIC");
  const ssd = dev("SSD");
  const seen: unknown[] = [];
  e.bars.onStore((s) => seen.push(s));
  const r = e.dmaWrite(nic, ssd.busAddress(2), bytes(64), {
    addressKind: "bus",
    tph: { st: 0xabcd, ph: 3, extended: true },
  });
  assert.equal(r.status, "tlp-prefix-blocked");
  assert.equal(r.at, dev("DSP1").bdf);
  assert.match(r.reason ?? "", /TLP prefix blocked/);
  assert.equal(r.bytesDelivered, 0);
  assert.deepEqual(seen, []);
  assert.deepEqual(r.tlps.links(), [`${dev("DSP0").bdf}↔${nic.bdf}`]);
  const f = m.log.all().find((x) => x.event.kind === "dma-fault")?.event;
  assert.ok(f && f.kind === "dma-fault" && /TLP prefix blocked/.test(f.reason) && f.at === dev("DSP1").bdf);
  // the NIC's own port lacking support drops it on arrival (the TLP was on the NIC's link)
  const { e: e2, dev: d2 } = fromText(switchMachine({ ee: { dsp0: false } }));
  const r2 = e2.dmaWrite(d2("NIC"), d2("SSD").busAddress(2), bytes(64), {
    addressKind: "bus",
    tph: { st: 0xabcd, ph: 3, extended: true },
  });
  assert.equal(r2.status, "tlp-prefix-blocked");
  assert.equal(r2.at, d2("DSP0").bdf);
  assert.equal(r2.tlps.length, 1);
  // an 8-bit ST needs no prefix: delivered through the same ports
  const r3 = e.dmaWrite(nic, ssd.busAddress(2), bytes(64), { addressKind: "bus", tph: { st: 0xcd, ph: 3 } });
  assert.equal(r3.status, "SC");
});

test("TPH-30 flit mode has no end-to-end prefixes: 16-bit ST rides in OHC-B (HV 11) and is not blocked", () => {
  const { e, dev } = fromText(
    switchMachine({ flit: true, ee: { dsp0: false, dsp1: false, usp: false, rp: false } }),
  );
  const r = e.dmaWrite(dev("NIC"), dev("SSD").busAddress(2), bytes(64), {
    addressKind: "bus",
    tph: { st: 0xabcd, ph: 3, extended: true },
  });
  assert.equal(r.status, "SC");
  for (const t of r.tlps.entries) {
    assert.equal(t.bytes[0], 0x60);
    assert.equal(hexBytes(t.bytes.subarray(16, 20)), "00 AB CD F0");
  }
});

test("TPH-30 flit link in, non-flit link out: the egress port must add the prefix (§8) and, lacking support, blocks it", () => {
  const { e, dev } = fromText(switchMachine({ flit: true, ee: { dsp1: false } }));
  // the SSD's link trained without flit mode
  for (const d of [dev("SSD"), dev("DSP1")]) d.config.write16(d.pcieCapOffset + PCI_EXP_LNKSTA2, 0);
  const r = e.dmaWrite(dev("NIC"), dev("SSD").busAddress(2), bytes(64), {
    addressKind: "bus",
    tph: { st: 0xabcd, ph: 3, extended: true },
  });
  assert.equal(r.status, "tlp-prefix-blocked");
  assert.equal(r.at, dev("DSP1").bdf);
  assert.equal(r.tlps.entries[0].mode, "fm");
  // with support, the non-flit link carries the prefix
  const ok = fromText(switchMachine({ flit: true }));
  for (const d of [ok.dev("SSD"), ok.dev("DSP1")]) d.config.write16(d.pcieCapOffset + PCI_EXP_LNKSTA2, 0);
  const r2 = ok.e.dmaWrite(ok.dev("NIC"), ok.dev("SSD").busAddress(2), bytes(64), {
    addressKind: "bus",
    tph: { st: 0xabcd, ph: 3, extended: true },
  });
  assert.equal(r2.status, "SC");
  assert.deepEqual(
    r2.tlps.entries.map((t) => t.mode),
    ["fm", "nfm"],
  );
  assert.equal(hexBytes(r2.tlps.entries[1].bytes.subarray(0, 4)), "90 AB 00 00");
});

test("machine file eeTlpPrefix sets DevCap2 bit 21", () => {
  const { dev } = fromText(switchMachine({ ee: { dsp1: false } }));
  const cap2 = (name: string) => dev(name).config.read32(dev(name).pcieCapOffset + 0x24);
  assert.equal(cap2("DSP0") & 0x200000, 0x200000);
  assert.equal(cap2("DSP1") & 0x200000, 0);
  assert.ok(DmaEngine);
});
