/** §13.10 with the selftest exporter (§10.6): K-156 … K-159, K-196, K-197. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  hwptAlloc,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  type SelftestDmaBuf,
  testDmabufGet,
  testDmabufRevoke,
  testMockDomainReplace,
} from "../../src/iommufd/index.js";
import { call, page } from "../helpers/vfio-f.js";
import { attempt, iommufdF, K16 } from "./setup.js";

const RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;

function selftest(variant: "no_domain" | "mock_domain") {
  const s = iommufdF();
  const mock = variant === "mock_domain" ? s.mockDomain() : null;
  const dfd = testDmabufGet(s.m, s.ifd, Number(K16));
  const buf = s.buf(dfd);
  const phys = (buf.priv as SelftestDmaBuf).memory;
  return { ...s, mock, dfd, buf, phys };
}

for (const variant of ["no_domain", "mock_domain"] as const) {
  test(`K-156 selftest dmabuf_simple (${variant}): (0,0) -EINVAL; (16K,16K) -EINVAL; (0,16K+1) -EINVAL; (0,16K) 0`, () => {
    const s = selftest(variant);
    assert.equal(s.mapFile({ fd: s.dfd, start: 0n, length: 0n }).errno, "EINVAL");
    assert.equal(s.mapFile({ fd: s.dfd, start: K16, length: K16 }).errno, "EINVAL");
    assert.equal(s.mapFile({ fd: s.dfd, start: 0n, length: K16 + 1n }).errno, "EINVAL");
    const r = s.mapFile({ fd: s.dfd, start: 0n, length: K16 });
    assert.equal(r.errno, null);
    // failed attempts left no attachment and no extra buffer reference behind
    assert.equal(s.buf.attachments.length, 1);
    assert.equal(s.buf.file.refs, 2); // the user's fd + the pages
    if (s.mock) {
      assert.equal(r.value, 1n << 24n); // first IOVA inside the mock aperture
      const d = s.iopt().domains[0];
      assert.deepEqual(d.hw.translate(r.value! + 0x123n, "write"), {
        ok: true,
        phys: s.phys + 0x123n,
        prot: { read: true, write: true, mmio: true },
      });
    } else assert.equal(r.value, K16); // aligned to roundup_pow_of_two(length), never below PAGE_SIZE
  });

  test(`K-157 selftest dmabuf_revoke (${variant}): revoke unmaps; new HWPT maps nothing; -ENODEV; un-revoke; map at iova2; unmap iova1; FIXED iova1`, () => {
    const s = selftest(variant);
    const iova1 = s.mapFile({ fd: s.dfd, length: K16 }).value!;
    const pages1 = s.areaAt(iova1)!.pages!;
    if (s.mock) assert.deepEqual(s.mapped(iova1, K16), [K16]);
    assert.equal(call(() => testDmabufRevoke(s.m, s.ifd, s.dfd, true)).errno, null);
    assert.equal(pages1.revoked, true);
    assert.deepEqual(
      s.mapped(iova1, K16),
      s.iopt().domains.map(() => 0n),
    );
    if (s.mock) {
      const hwpt = hwptAlloc(s.m, s.ifd, { devId: s.mock.idevId, ptId: s.ioasId });
      assert.equal(testMockDomainReplace(s.m, s.ifd, s.mock.stdevId, hwpt), hwpt);
      const d = s.ctx.objects.get(hwpt);
      assert.ok(d && d.kind === "hwpt");
      assert.equal(d.domain.hw.mappedBytesIn(iova1, K16), 0n);
      assert.ok(pages1.tracker.some((t) => t.domain === d.domain)); // tracked, nothing mapped
    }
    assert.equal(s.mapFile({ fd: s.dfd, length: K16 }).errno, "ENODEV");
    assert.equal(call(() => testDmabufRevoke(s.m, s.ifd, s.dfd, false)).errno, null);
    assert.equal(pages1.revoked, true); // permanent (§10.4)
    const r2 = s.mapFile({ fd: s.dfd, length: K16 });
    assert.equal(r2.errno, null);
    assert.notEqual(r2.value, iova1);
    if (s.mock) assert.deepEqual(s.mapped(r2.value!, K16), [K16]);
    assert.deepEqual(s.unmap(iova1, K16), { errno: null, value: K16 });
    const r3 = s.mapFile({ fd: s.dfd, length: K16, iova: iova1, flags: RW | IOMMU_IOAS_MAP_FIXED_IOVA });
    assert.deepEqual(r3, { errno: null, value: iova1 });
    if (s.mock) assert.deepEqual(s.mapped(iova1, K16), [K16]);
  });
}

test("K-158 selftest GET: length 0 -EINVAL; 513 pages -EINVAL; length 1 → a 4096-byte buffer", () => {
  const s = iommufdF();
  assert.equal(attempt(() => testDmabufGet(s.m, s.ifd, 0)).errno, "EINVAL");
  assert.equal(attempt(() => testDmabufGet(s.m, s.ifd, 513 * 4096)).errno, "EINVAL");
  assert.equal(attempt(() => testDmabufGet(s.m, s.ifd, 512 * 4096 + 1)).errno, "EINVAL");
  const fd = testDmabufGet(s.m, s.ifd, 1);
  assert.equal(s.buf(fd).size, 4096n);
  assert.equal(s.m.fds.peek(fd)!.ops.fdinfo!(s.m.fds.peek(fd)!).size, 4096);
  assert.equal(s.buf(testDmabufGet(s.m, s.ifd, 512 * 4096)).size, page(512));
});

test("K-159 selftest REVOKE: VFIO dma-buf fd -EOPNOTSUPP; closed fd -EBADF; not a dma-buf -EINVAL", () => {
  const s = iommufdF();
  const X = s.exportBuf(0, [{ offset: 0n, length: K16 }]);
  assert.equal(call(() => testDmabufRevoke(s.m, s.ifd, X.fd, true)).errno, "EOPNOTSUPP");
  assert.equal(X.buf.file.refs, 1); // the temporary reference was dropped
  const dfd = testDmabufGet(s.m, s.ifd, 4096);
  s.m.fds.close(dfd);
  assert.equal(call(() => testDmabufRevoke(s.m, s.ifd, dfd, true)).errno, "EBADF");
  assert.equal(call(() => testDmabufRevoke(s.m, s.ifd, s.fd, true)).errno, "EINVAL");
});

test("K-196 (first numbered K-300) selftest REVOKE(false) on a never-revoked, mapped buffer → 0, translation gone in every domain; MAP_FILE again → 0 at a new IOVA", () => {
  const s = selftest("mock_domain");
  const iova1 = s.mapFile({ fd: s.dfd, length: K16 }).value!;
  const pages = s.areaAt(iova1)!.pages!;
  assert.deepEqual(s.mapped(iova1, K16), [K16]);
  assert.equal(call(() => testDmabufRevoke(s.m, s.ifd, s.dfd, false)).errno, null);
  assert.equal((s.buf.priv as SelftestDmaBuf).revoked, false);
  assert.deepEqual(s.mapped(iova1, K16), [0n]);
  assert.equal(pages.revoked, true);
  assert.equal(pages.notifications, 1);
  const r = s.mapFile({ fd: s.dfd, length: K16 });
  assert.equal(r.errno, null);
  assert.notEqual(r.value, iova1);
  assert.deepEqual(s.mapped(r.value!, K16), [K16]);
});

test("K-197 (first numbered K-301) mock 4 KiB domain: MAP_FILE(0, 0x1800) -EINVAL (length not a multiple of the IOVA alignment); no domain → 0", () => {
  const withDomain = selftest("mock_domain");
  assert.equal(withDomain.iopt().iovaAlignment, 4096n);
  assert.equal(withDomain.mapFile({ fd: withDomain.dfd, length: 0x1800n }).errno, "EINVAL");
  assert.equal(withDomain.buf.attachments.length, 0); // failed map detached again
  const none = selftest("no_domain");
  assert.equal(none.iopt().iovaAlignment, 1n);
  const r = none.mapFile({ fd: none.dfd, length: 0x1800n });
  assert.equal(r.errno, null);
  // a 4 KiB domain can no longer be added to that IOAS: the area does not fit (§10.1)
  assert.equal(attempt(() => none.mockDomain()).errno, "EADDRINUSE");
  assert.equal(none.iopt().domains.length, 0);
  // a domain whose smallest page exceeds PAGE_SIZE is refused outright (§10.1)
  const huge = iommufdF({ iommufd: { mockPgsize: 8192n } });
  assert.equal(attempt(() => huge.mockDomain()).errno, "EINVAL");
});

test("K-197 (§10.1) a mock domain with 2 KiB pages sets the IOVA alignment to 2 KiB: a 0x800-byte area at sub-page start 0x800 maps", () => {
  const s = iommufdF({ iommufd: { mockPgsize: 2048n } });
  s.mockDomain();
  assert.equal(s.iopt().iovaAlignment, 2048n);
  const dfd = testDmabufGet(s.m, s.ifd, Number(K16));
  const phys = (s.buf(dfd).priv as SelftestDmaBuf).memory;
  const r = s.mapFile({ fd: dfd, start: 0x1800n, length: 0x800n });
  assert.equal(r.errno, null);
  assert.equal(r.value! % 0x1000n, 0x800n);
  assert.deepEqual(s.iopt().domains[0].hw.translate(r.value! + 0x7ffn, "read"), {
    ok: true,
    phys: phys + 0x1fffn,
    prot: { read: true, write: true, mmio: true },
  });
  assert.equal(s.mapFile({ fd: dfd, start: 0x400n, length: 0x800n }).errno, "EINVAL");
});
