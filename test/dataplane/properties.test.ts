import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { DmaEngine, type DmaResult, type StoreRecord } from "../../src/dataplane/index.js";
import { DMA_ATTR_MMIO, DMA_DATA_DIRECTION, DMA_MAPPING_ERROR } from "../../src/dma/direction.js";
import { fabricFromDescription } from "../../src/import/machine-file.js";
import {
  type MachineFunctionInput,
  type MachineInput,
  MachineSchema,
} from "../../src/import/machine-schema.js";
import { Machine } from "../../src/machine/machine.js";
import type { PciDev } from "../../src/pci/device.js";
import { PCI_COMMAND_MEMORY } from "../../src/pci/regs.js";
import { machineArb } from "../helpers/random-fabric.js";

/** A random fabric with random MPS per function and some flit-mode links. */
const tunedMachineArb = fc
  .tuple(machineArb, fc.array(fc.constantFrom(128, 256, 512), { minLength: 1, maxLength: 8 }), fc.boolean())
  .map(([m, mpsList, flit]) => {
    let i = 0;
    const visit = (fs: MachineFunctionInput[]) => {
      for (const f of fs) {
        if (f.kind !== "host-bridge") f.mps = mpsList[i++ % mpsList.length];
        if (flit && f.link && i % 2 === 0) f.link = { ...f.link, speed: 64, flit: true };
        visit(f.below ?? []);
      }
    };
    for (const h of m.hostBridges) visit(h.functions as MachineFunctionInput[]);
    return m;
  });

const transferArb = fc.record({
  init: fc.nat(),
  where: fc.constantFrom("bar", "bar-edge", "ram", "iova", "random"),
  tgt: fc.nat(),
  off: fc.nat({ max: 1 << 20 }),
  len: fc.integer({ min: 0, max: 9000 }),
  read: fc.boolean(),
  kind: fc.constantFrom("bus" as const, "iova" as const, "auto" as const),
  memOff: fc.boolean(),
  rand: fc.bigInt({ min: 0n, max: (1n << 48n) - 1n }),
  tph: fc.option(fc.record({ st: fc.integer({ min: 0, max: 0xff }), ph: fc.integer({ min: 0, max: 3 }) }), {
    nil: undefined,
  }),
});

function mpsOf(d: PciDev): number {
  return (d.isVirtfn && d.physfn ? d.physfn : d).mps;
}

/** The CPU address a segment's first byte reaches, computed from the fabric and IOMMU directly. */
function expectedCpu(m: Machine, init: PciDev, s: DmaResult["segments"][number]): bigint {
  if (s.translated) return m.iommu.domainOf(init)!.iovaToPhys(s.address);
  return s.address; // no host-bridge windows in these machines: bus = CPU address
}

function checkTransfer(
  m: Machine,
  e: DmaEngine,
  init: PciDev,
  r: DmaResult,
  stores: StoreRecord[],
  sent?: Uint8Array,
) {
  // 1. every stored byte belongs to a successful segment, inside the target that segment decoded
  for (const st of stores) {
    const ok = r.segments.some((s) => {
      if (s.status !== "SC" || !s.target) return false;
      if (st.kind === "ram")
        return (
          s.target.kind === "ram" &&
          st.offset >= s.target.phys &&
          st.offset + BigInt(st.length) <= s.target.phys + BigInt(s.length)
        );
      return (
        s.target.kind === "bar" &&
        s.target.dev === st.dev &&
        s.target.bar === st.bar &&
        st.offset >= s.target.offset &&
        st.offset + BigInt(st.length) <= s.target.offset + BigInt(s.length)
      );
    });
    assert.ok(
      ok,
      `store ${st.kind} ${st.dev?.bdf ?? ""} ${st.offset} +${st.length} outside every successful segment`,
    );
  }
  let delivered = 0;
  for (const s of r.segments) {
    if (s.status !== "SC" || !s.target) continue;
    delivered += s.length;
    // 2. the target is what the address decodes to (independently of the engine's decode)
    if (s.target.kind === "bar") {
      const t = s.target.dev;
      const res = t.resources[s.target.bar];
      assert.ok(s.target.offset + BigInt(s.length) <= res.len, "segment runs past its BAR");
      if (s.via === "root-complex") assert.equal(res.start + s.target.offset, expectedCpu(m, init, s));
      else assert.equal(t.busAddress(s.target.bar) + s.target.offset, s.address);
      assert.ok(
        t.isVirtfn ? true : (t.command & PCI_COMMAND_MEMORY) !== 0,
        "delivered to a function with memory decode off",
      );
    } else assert.equal(s.target.phys, expectedCpu(m, init, s));
  }
  assert.equal(r.bytesDelivered, delivered);
  const total = r.segments.reduce((a, s) => a + s.length, 0);
  if (r.status === "SC") assert.equal(r.bytesDelivered, total);
  // 3. bytes delivered equal bytes sent
  if (sent) {
    let pos = 0;
    for (const s of r.segments) {
      if (s.status === "SC" && s.target) {
        const got =
          s.target.kind === "ram"
            ? e.ram.read(s.target.phys, s.length)
            : e.bars.peek(s.target.dev, s.target.bar, s.target.offset, s.length);
        assert.deepEqual(got, sent.subarray(pos, pos + s.length));
      }
      pos += s.length;
    }
  }
  // 4. no TLP crosses 4 KiB or carries more than the MPS of the two functions on its link
  for (const t of r.tlps.entries) {
    const i = t.header.info;
    const [port, dev] = t.link.split("↔").map((b) => m.device(b));
    assert.ok(i.payloadBytes <= Math.min(mpsOf(port), mpsOf(dev)), `${i.payloadBytes} > MPS on ${t.link}`);
    if (i.kind === "mem" && i.address !== null) {
      const last = i.address + BigInt(i.lengthDw * 4) - 1n;
      assert.equal(i.address / 4096n, last / 4096n, `TLP at ${i.address} crosses 4 KiB`);
    }
  }
}

test("property: transfers deliver bytes only inside the decoded target, TLPs respect MPS and 4 KiB, SC delivers every byte", () => {
  fc.assert(
    fc.property(
      tunedMachineArb,
      fc.array(transferArb, { minLength: 1, maxLength: 6 }),
      (desc: MachineInput, ts) => {
        const fabric = fabricFromDescription(MachineSchema.parse(desc));
        const m = new Machine(fabric);
        m.log.enabled = false;
        const e = new DmaEngine(m, { logTlps: false });
        const eps = fabric.endpoints();
        const stores: StoreRecord[] = [];
        e.bars.onStore((s) => stores.push(s));
        e.ram.onStore((s) => stores.push(s));
        for (const t of ts) {
          const init = eps[t.init % eps.length];
          const tgt = eps[t.tgt % eps.length];
          const bar = tgt.resources.find((r) => r.len > 0n)!;
          let address: bigint;
          switch (t.where) {
            case "bar":
              address = tgt.busAddress(bar.index) + (BigInt(t.off) % bar.len);
              break;
            case "bar-edge":
              address = tgt.busAddress(bar.index) + bar.len - BigInt(t.off % 5000);
              break;
            case "ram":
              address = 0x1000_0000n + BigInt(t.off);
              break;
            case "iova": {
              const phys = t.off % 2 ? bar.start : 0x2000_0000n;
              const iova = m.dma.dmaMapPhys(
                init,
                phys,
                0x4000n,
                DMA_DATA_DIRECTION.BIDIRECTIONAL,
                t.off % 2 ? DMA_ATTR_MMIO : 0,
              );
              address = iova === DMA_MAPPING_ERROR ? phys : iova + BigInt(t.off % 0x1000);
              break;
            }
            default:
              address = t.rand;
          }
          if (t.memOff) tgt.command &= ~PCI_COMMAND_MEMORY;
          stores.length = 0;
          const opts = { addressKind: t.kind, tph: t.tph };
          if (t.read) {
            const r = e.dmaRead(init, address, t.len, opts);
            assert.deepEqual(stores, [], "a read stored bytes");
            checkTransfer(m, e, init, r, []);
            let pos = 0;
            for (const s of r.segments) {
              if (s.status === "SC" && s.target) {
                const want =
                  s.target.kind === "ram"
                    ? e.ram.read(s.target.phys, s.length)
                    : e.bars.peek(s.target.dev, s.target.bar, s.target.offset, s.length);
                assert.deepEqual(r.data.subarray(pos, pos + s.length), want);
              }
              pos += s.length;
            }
          } else {
            const data = Uint8Array.from({ length: t.len }, (_, i) => (i * 13 + t.off) & 0xff);
            const r = e.dmaWrite(init, address, data, opts);
            checkTransfer(m, e, init, r, stores, data);
          }
          tgt.command |= PCI_COMMAND_MEMORY;
        }
      },
    ),
    { numRuns: 150 },
  );
});

test("property: trace lines round-trip through the codec text form", () => {
  fc.assert(
    fc.property(
      tunedMachineArb,
      fc.nat(),
      fc.nat(),
      fc.integer({ min: 1, max: 700 }),
      fc.boolean(),
      (desc, a, b, len, read) => {
        const fabric = fabricFromDescription(MachineSchema.parse(desc));
        const m = new Machine(fabric);
        const e = new DmaEngine(m, { logTlps: false });
        const eps = fabric.endpoints();
        const init = eps[a % eps.length];
        const tgt = eps[b % eps.length];
        const addr = tgt.busAddress(0) + BigInt(a % 64);
        const r = read
          ? e.dmaRead(init, addr, len, { addressKind: "bus" })
          : e.dmaWrite(init, addr, new Uint8Array(len), { addressKind: "bus" });
        const lines = r.tlps.toLines({ comments: false });
        assert.equal(lines.length, r.tlps.length);
      },
    ),
    { numRuns: 60 },
  );
});
