/**
 * Property (§10.3–§10.5): random sequences of MAP_FILE / UNMAP / revoke and restore through the
 * VFIO COMMAND register / IOAS_COPY / fd closes never leave a translation for a revoked area, keep
 * live areas translating to the buffer's MMIO, and leave no attachment, buffer reference or
 * registration behind once everything is unmapped and closed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { copy, type IoPagetable, ioasAlloc, unmap } from "../../src/iommufd/index.js";
import { PCI_COMMAND } from "../../src/pci/regs.js";
import type { VfioDmaBuf } from "../../src/vfio/dma-buf.js";
import { iommufdF } from "./setup.js";

const PAGE = 0x1000n;
const BAR0 = 0x80_0000_0000n;
const ULONG_MAX = (1n << 64n) - 1n;

type Action =
  | { k: "export"; offPages: number; pages: number }
  | { k: "map"; buf: number; ioas: number; startPage: number; pages: number; fixed: number }
  | { k: "unmapArea"; ioas: number; area: number }
  | { k: "unmapRange"; ioas: number; page: number; pages: number }
  | { k: "copy"; src: number; area: number; dst: number }
  | { k: "memory"; on: boolean }
  | { k: "closeBuf"; buf: number }
  | { k: "closeDevice" };

const map = (fixed: fc.Arbitrary<number>) =>
  fc.record({
    k: fc.constant("map" as const),
    buf: fc.nat(5),
    ioas: fc.nat(2),
    startPage: fc.nat(3),
    pages: fc.integer({ min: 1, max: 4 }),
    fixed,
  });

const action: fc.Arbitrary<Action> = fc.oneof(
  {
    arbitrary: fc.record({
      k: fc.constant("export" as const),
      offPages: fc.nat(12),
      pages: fc.integer({ min: 1, max: 4 }),
    }),
    weight: 1,
  },
  { arbitrary: map(fc.constant(-1)), weight: 4 },
  { arbitrary: map(fc.nat(40)), weight: 2 },
  {
    arbitrary: fc.record({ k: fc.constant("unmapArea" as const), ioas: fc.nat(2), area: fc.nat(6) }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      k: fc.constant("unmapRange" as const),
      ioas: fc.nat(2),
      page: fc.nat(64),
      pages: fc.integer({ min: 1, max: 16 }),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      k: fc.constant("copy" as const),
      src: fc.nat(2),
      area: fc.nat(6),
      dst: fc.nat(2),
    }),
    weight: 2,
  },
  { arbitrary: fc.record({ k: fc.constant("memory" as const), on: fc.boolean() }), weight: 3 },
  { arbitrary: fc.record({ k: fc.constant("closeBuf" as const), buf: fc.nat(5) }), weight: 1 },
  { arbitrary: fc.constant({ k: "closeDevice" as const }), weight: 1 },
);

function check(iopts: IoPagetable[], where: string): void {
  for (const [n, iopt] of iopts.entries())
    for (const area of iopt.areas) {
      const pages = area.pages!;
      if (pages.type !== "dmabuf") continue;
      const vbuf = pages.dmabuf?.priv as VfioDmaBuf | undefined;
      // a buffer that is not ACTIVE was revoked while these pages existed (attach needs ACTIVE)
      if (vbuf && vbuf.state !== "ACTIVE")
        assert.equal(pages.revoked, true, `${where}: ioas ${n} pages of a ${vbuf.state} buffer live`);
      for (const d of iopt.domains) {
        const bytes = d.hw.mappedBytesIn(area.iova, area.length);
        if (pages.revoked)
          assert.equal(bytes, 0n, `${where}: revoked area 0x${area.iova.toString(16)} still translates`);
        else {
          assert.equal(bytes, area.length, `${where}: live area not fully mapped`);
          for (const k of [0n, area.length - 1n]) {
            const t = d.hw.translate(area.iova + k, "read");
            assert.ok(
              t.ok && t.phys === pages.dmabufPhysAt(area.startByteAt(area.iova + k)),
              `${where}: wrong phys`,
            );
            assert.ok(t.ok && t.phys >= BAR0 && t.prot.mmio);
          }
        }
      }
    }
}

test("K-166 property: map_file / unmap / COMMAND revoke-restore / copy / close never leave a revoked translation and leak nothing", () => {
  fc.assert(
    fc.property(
      fc.array(action, { minLength: 5, maxLength: 40, size: "medium" }),
      fc.boolean(),
      (actions, closeIommufdFirst) => {
        const s = iommufdF();
        const ioases = [s.ioasId, ioasAlloc(s.m, s.ifd), ioasAlloc(s.m, s.ifd)];
        s.attachEPa(ioases[0]); // a real 4 KiB domain
        s.mockDomain(ioases[0]); // and a mock one on the same IOAS
        s.mockDomain(ioases[1]);
        // ioases[2] has no domain
        const iopts = ioases.map((id) => s.iopt(id));
        const bufs: { fd: number; open: boolean; buf: ReturnType<typeof s.buf> }[] = [];
        const all: ReturnType<typeof s.buf>[] = [];
        let deviceOpen = true;
        // three 4-page buffers to start with, more may be exported
        for (const off of [0n, 4n, 8n]) {
          const X = s.exportBuf(0, [{ offset: off * PAGE, length: 4n * PAGE }]);
          bufs.push({ fd: X.fd, open: true, buf: X.buf });
          all.push(X.buf);
        }
        for (const [i, a] of actions.entries()) {
          const where = `step ${i} ${JSON.stringify(a)}`;
          switch (a.k) {
            case "export": {
              if (!deviceOpen || bufs.length >= 6) break;
              const r = s.exportRanges(0, [
                { offset: BigInt(a.offPages) * PAGE, length: BigInt(a.pages) * PAGE },
              ]);
              if (r.errno) break;
              bufs.push({ fd: r.ret, open: true, buf: s.buf(r.ret) });
              all.push(s.buf(r.ret));
              break;
            }
            case "map": {
              const b = bufs[a.buf];
              if (!b?.open) break;
              const fixed = a.fixed >= 0;
              // mostly inside the buffer; sometimes past its end (-EINVAL)
              const pages =
                a.fixed % 5 === 4 ? a.pages : Math.min(a.pages, Number(b.buf.size / PAGE) - a.startPage);
              s.mapFile({
                fd: b.fd,
                ioasId: ioases[a.ioas],
                start: BigInt(a.startPage) * PAGE,
                length: BigInt(pages) * PAGE,
                flags: 6 | (fixed ? 1 : 0),
                iova: fixed ? 0x100_0000n + BigInt(a.fixed) * PAGE : 0n,
              });
              break;
            }
            case "unmapArea": {
              const area = iopts[a.ioas].areas[a.area];
              if (area) assert.equal(s.unmap(area.iova, area.length, ioases[a.ioas]).errno, null, where);
              break;
            }
            case "unmapRange":
              s.unmap(0x100_0000n + BigInt(a.page) * PAGE, BigInt(a.pages) * PAGE, ioases[a.ioas]);
              break;
            case "copy": {
              const area = iopts[a.src].areas[a.area];
              if (!area) break;
              try {
                copy(s.m, s.ifd, {
                  srcIoasId: ioases[a.src],
                  dstIoasId: ioases[a.dst],
                  srcIova: area.iova,
                  length: area.length,
                });
              } catch {
                // alignment or space: fine, nothing may change
              }
              break;
            }
            case "memory":
              if (deviceOpen) s.configWrite(PCI_COMMAND, 2, a.on ? 0x6 : 0x4);
              break;
            case "closeBuf": {
              const b = bufs[a.buf];
              if (b?.open) {
                s.m.fds.close(b.fd);
                b.open = false;
              }
              break;
            }
            case "closeDevice":
              if (deviceOpen) {
                s.m.vfio.close(s.fd);
                deviceOpen = false;
              }
              break;
          }
          check(iopts, where);
        }
        // teardown
        if (!closeIommufdFirst)
          for (const id of ioases) unmap(s.m, s.ifd, { ioasId: id, iova: 0n, length: ULONG_MAX });
        for (const b of bufs) if (b.open) s.m.fds.close(b.fd);
        s.m.fds.close(s.ifd);
        for (const buf of all) {
          assert.equal(buf.attachments.length, 0);
          assert.equal(s.m.dmabuf.buffers.has(buf), false, "buffer still referenced");
        }
        if (deviceOpen) s.m.vfio.close(s.fd);
        assert.equal(s.vdev.registration, 1);
        assert.deepEqual(s.vdev.dmabufs, []);
        const bad = s.m.diag
          .names()
          .filter((n) => n.startsWith("leak:") || n.startsWith("warn:") || n.startsWith("lockdep:"));
        assert.deepEqual(bad, []);
      },
    ),
    { numRuns: 150 },
  );
});
