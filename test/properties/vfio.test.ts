/** Property tests of the VFIO export path and of revocation under random operation sequences. */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { KernelError } from "../../src/core/errors.js";
import { UserBuffer } from "../../src/core/file.js";
import type { DmaBuf } from "../../src/dmabuf/dma-buf.js";
import type { DynamicImporter } from "../../src/dmabuf/importer.js";
import { PCI_COMMAND } from "../../src/pci/regs.js";
import type { VfioDmaBuf } from "../../src/vfio/dma-buf.js";
import { encodeFeatureDmaBuf, VFIO_IOCTL } from "../../src/vfio/index.js";
import { identity } from "../helpers/spec-f.js";
import { vfioF } from "../helpers/vfio-f.js";

const bigArb = fc.oneof(
  fc.constantFrom(0n, 0x1000n, 0x2000n, 0xff_f000n, 0x100_0000n, 1n << 63n, (1n << 64n) - 0x1000n, 0x800n),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  fc.bigInt({ min: 0n, max: 0x200n }).map((p) => p * 0x1000n),
);

test("property: random export requests stay inside the BAR or fail with a kernel errno and leave nothing behind", () => {
  const t = vfioF();
  const bar = (i: number) => t.dev.EPa.resources[i];
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 9 }),
      fc.array(fc.record({ offset: bigArb, length: bigArb }), { minLength: 0, maxLength: 5 }),
      fc.option(fc.integer({ min: 0, max: 8 }), { nil: undefined }),
      fc.integer({ min: 0, max: 3 }),
      (region, ranges, nrOverride, flags) => {
        const fdsBefore = t.m.fds.size;
        const regBefore = t.vdev.registration;
        const iommu = t.m.iommu.liveCounts();
        const bytes = encodeFeatureDmaBuf({
          regionIndex: region,
          ranges,
          nrRanges: nrOverride,
          dmaBufFlags: flags & 1,
        });
        let fd = -1;
        try {
          fd = t.m.vfio.ioctl(t.fd, VFIO_IOCTL.VFIO_DEVICE_FEATURE, new UserBuffer(bytes));
        } catch (e) {
          assert.ok(e instanceof KernelError, String(e));
          assert.equal(t.m.fds.size, fdsBefore, "no fd left behind");
          assert.equal(t.vdev.registration, regBefore, "no registration left behind");
          assert.equal(t.vdev.dmabufs.length, 0);
          assert.deepEqual(t.m.iommu.liveCounts(), iommu);
          return;
        }
        const p = (t.m.fds.peek(fd)!.priv as DmaBuf).priv as VfioDmaBuf;
        const r = bar(region);
        for (const v of p.physVec) {
          assert.ok(v.paddr >= r.start && v.paddr + v.len <= r.start + r.len, "inside the BAR");
          assert.equal(v.paddr % 0x1000n, 0n);
        }
        t.m.fds.close(fd);
        assert.equal(t.vdev.dmabufs.length, 0);
        assert.equal(t.vdev.registration, regBefore);
      },
    ),
    { numRuns: 400 },
  );
});

type Op =
  | { op: "export"; pages: number }
  | { op: "attach"; buf: number; who: "EPb" | "EPc" }
  | { op: "map"; imp: number }
  | { op: "unmap"; imp: number }
  | { op: "detach"; imp: number }
  | { op: "dma"; imp: number }
  | { op: "reset" | "memoryOff" | "memoryOn" | "closeBuf"; buf?: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant("export" as const), pages: fc.integer({ min: 1, max: 4 }) }),
  fc.record({
    op: fc.constant("attach" as const),
    buf: fc.nat(5),
    who: fc.constantFrom("EPb" as const, "EPc" as const),
  }),
  fc.record({
    op: fc.constantFrom("map" as const, "unmap" as const, "detach" as const, "dma" as const),
    imp: fc.nat(7),
  }),
  fc.record({ op: fc.constantFrom("reset" as const, "memoryOff" as const, "memoryOn" as const) }),
  fc.record({ op: fc.constant("closeBuf" as const), buf: fc.nat(5) }),
);

test("property: random export/attach/map/unmap/detach/reset/decode/close sequences keep the invariants", () => {
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), fc.boolean(), (ops, closeDevice) => {
      const t = vfioF({ mutate: identity("8086:2020") }); // EPc maps through its IOMMU
      const bufs: { fd: number; buf: DmaBuf; open: boolean }[] = [];
      const imps: { imp: DynamicImporter; buf: DmaBuf; ref: boolean }[] = [];
      const cmd = (v: number) => t.configWrite(PCI_COMMAND, 2, v);
      for (const o of ops) {
        try {
          switch (o.op) {
            case "export": {
              const r = t.exportRanges(0, [{ offset: 0n, length: BigInt(o.pages) * 0x1000n }]);
              if (!r.errno) bufs.push({ fd: r.ret, buf: t.buf(r.ret), open: true });
              break;
            }
            case "attach": {
              const b = bufs[o.buf % Math.max(1, bufs.length)];
              if (!b?.open) break;
              const buf = t.m.dmabuf.get(t.m.fds, b.fd);
              const imp = t.importer(o.who, `I${imps.length}`);
              try {
                imp.attach(buf);
                imps.push({ imp, buf, ref: true });
              } catch (e) {
                t.m.dmabuf.put(buf);
                throw e;
              }
              break;
            }
            case "map":
            case "unmap":
            case "detach":
            case "dma": {
              const e = imps[o.imp % Math.max(1, imps.length)];
              if (!e?.imp.attachment) break;
              if (o.op === "map") {
                const state = (e.buf.priv as VfioDmaBuf).state;
                try {
                  e.imp.map();
                  assert.equal(state, "ACTIVE", "only an ACTIVE buffer maps");
                } catch (err) {
                  if (state !== "ACTIVE") assert.ok(err instanceof KernelError && err.errnoName === "ENODEV");
                  else throw err;
                }
              } else if (o.op === "unmap" && e.imp.mappings.length) e.imp.unmap();
              else if (o.op === "detach") {
                e.imp.unmapAll();
                e.imp.detach();
                t.m.dmabuf.put(e.buf);
                e.ref = false;
              } else if (o.op === "dma" && e.imp.mappings.length) {
                const m = e.imp.mappings[0];
                // the kernel's promise: a mapping is valid only while the buffer is ACTIVE and not notified since
                if (m.valid) assert.equal((e.buf.priv as VfioDmaBuf).state, "ACTIVE");
              }
              break;
            }
            case "reset":
              t.reset();
              break;
            case "memoryOff":
              cmd(0x4);
              break;
            case "memoryOn":
              cmd(0x6);
              break;
            case "closeBuf": {
              const b = bufs[(o.buf ?? 0) % Math.max(1, bufs.length)];
              if (b?.open) {
                t.m.fds.close(b.fd);
                b.open = false;
              }
              break;
            }
          }
        } catch (e) {
          if (!(e instanceof KernelError)) throw e;
        }
      }
      if (closeDevice) t.m.vfio.close(t.fd);
      // tear down like a well-behaved importer and user
      for (const e of imps) {
        if (!e.imp.attachment) continue;
        e.imp.unmapAll();
        e.imp.detach();
        if (e.ref) t.m.dmabuf.put(e.buf);
      }
      for (const b of bufs) if (b.open) t.m.fds.close(b.fd);
      if (!closeDevice) t.m.vfio.close(t.fd);
      assert.equal(t.m.dmabuf.buffers.size, 0, "every buffer released");
      assert.deepEqual(
        t.m.iommu.liveCounts(),
        { iovaAllocations: 0, mappings: 0 },
        "every IOVA and mapping gone",
      );
      assert.equal(t.vdev.registration, 1, "registration back to the base reference");
      assert.deepEqual(t.m.locks.heldClasses(), []);
      assert.ok(!t.m.diag.has("lockdep:inversion"), "lock order never inverted");
      assert.ok(!t.m.diag.has("leak:attachment-on-release"));
      for (const e of imps) assert.deepEqual(e.imp.violations, []);
    }),
    { numRuns: 300 },
  );
});
