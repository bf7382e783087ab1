/**
 * The iommufd selftest support (drivers/iommu/iommufd/selftest.c, CONFIG_IOMMUFD_TEST): the
 * IOMMU_TEST_CMD operations the model needs, the mock IOMMU domain and the selftest dma-buf
 * exporter of kernel-semantics §10.6 (IOMMU_TEST_OP_DMABUF_GET / _REVOKE and its private
 * interconnect hook).
 *
 * Modelled choices: the mock domain's smallest page size is configurable (default 4 KiB, the
 * granule K-164/K-197 assume); mock devices report no reserved regions; the exporter's memory
 * gets a made-up page-aligned physical address.
 */
import { KernelError } from "../core/errors.js";
import { O_CLOEXEC } from "../core/file.js";
import type { DmaBuf, DmaBufAttachment, DmaBufOps } from "../dmabuf/dma-buf.js";
import type { PhysVec } from "../dmabuf/phys-vec.js";
import {
  extentBytesIn,
  type IommuAccess,
  type IommuFault,
  type IommuMapping,
  type IommuProt,
  type TranslateResult,
  unmapExtents,
} from "../iommu/domain.js";
import type { Machine } from "../machine/machine.js";
import type { PagingDomainLike } from "./io-pagetable.js";
import type { IommufdCtx, Ucmd } from "./iommufd.js";
import { IOMMU_TEST_CMD_S, IOMMU_TEST_OP, MOCK_APERTURE_LAST, MOCK_APERTURE_START } from "./uapi.js";

const PAGE_SIZE = 4096n;
/** §10.6: at most 512 pages. */
export const SELFTEST_DMABUF_MAX_PAGES = 512n;

/** A mock IOMMU page table with a configurable smallest page (the selftest's `mock_iommu_domain`). */
export class MockDomain implements PagingDomainLike {
  readonly geometry = { start: MOCK_APERTURE_START, end: MOCK_APERTURE_LAST };
  private extents: IommuMapping[] = [];
  readonly stats = { maps: 0, unmaps: 0, faults: 0 };

  constructor(
    readonly pgsize: bigint,
    readonly id: number,
  ) {
    if (pgsize <= 0n || pgsize & (pgsize - 1n))
      throw new KernelError("EINVAL", "mock page size not a power of 2");
  }

  map(iova: bigint, phys: bigint, len: bigint, prot: IommuProt): number {
    if ((iova | phys | len) % this.pgsize) return -22;
    if (len === 0n) return 0;
    if (!prot.read && !prot.write) return -22;
    if (iova < this.geometry.start || iova + len - 1n > this.geometry.end) return -22;
    if (this.extents.some((e) => e.iova < iova + len && iova < e.iova + e.len)) return -17;
    this.extents.push({ iova, len, phys, prot: { ...prot } });
    this.extents.sort((a, b) => (a.iova < b.iova ? -1 : 1));
    this.stats.maps++;
    return 0;
  }

  /** Unmaps from `iova` on and stops at the first hole, like `iommu_unmap`. */
  unmap(iova: bigint, len: bigint): bigint {
    if ((iova | len) % this.pgsize || len <= 0n) return 0n;
    const unmapped = unmapExtents(this.extents, iova, len);
    if (unmapped > 0n) this.stats.unmaps++;
    return unmapped;
  }

  translate(iova: bigint, access: IommuAccess): TranslateResult {
    const e = this.extents.find((x) => x.iova <= iova && iova < x.iova + x.len);
    const fault = (f: IommuFault): TranslateResult => {
      this.stats.faults++;
      return { ok: false, fault: f };
    };
    if (!e) return fault("unmapped");
    if ((access === "read" && !e.prot.read) || (access === "write" && !e.prot.write))
      return fault("permission");
    return { ok: true, phys: e.phys + (iova - e.iova), prot: { ...e.prot } };
  }

  mappedBytesIn(iova: bigint, len: bigint): bigint {
    return extentBytesIn(this.extents, iova, len);
  }

  mappings(): IommuMapping[] {
    return this.extents.map((e) => ({ ...e, prot: { ...e.prot } }));
  }
}

/* ---------- the selftest dma-buf exporter (§10.6) ---------- */

/** The exporter's private object. */
export class SelftestDmaBuf {
  revoked = false;
  constructor(
    /** `virt_to_phys(memory)`. */
    readonly memory: bigint,
    readonly length: bigint,
  ) {}
}

/** Plain kernel memory: no pin ops, attach always succeeds, map_dma_buf always fails. */
export const SELFTEST_DMABUF_OPS: DmaBufOps = {
  mapDmaBuf() {
    throw new KernelError("EOPNOTSUPP", "the selftest dma-buf cannot be DMA mapped");
  },
  unmapDmaBuf() {},
  release() {},
};

const fakeRam = new WeakMap<Machine, bigint>();

/** IOMMU_TEST_OP_DMABUF_GET: returns the new dma-buf fd. */
export function selftestDmabufGet(m: Machine, length: number, openFlags: number): number {
  const len = (BigInt(length >>> 0) + PAGE_SIZE - 1n) & ~(PAGE_SIZE - 1n);
  if (len === 0n || len / PAGE_SIZE > SELFTEST_DMABUF_MAX_PAGES)
    throw new KernelError("EINVAL", "selftest dma-buf length is 0 or above 512 pages", "K-158");
  // each buffer gets its own 2 MiB slot of made-up RAM (512 pages at most)
  const base = fakeRam.get(m) ?? 0x2_0000_0000n;
  fakeRam.set(m, base + SELFTEST_DMABUF_MAX_PAGES * PAGE_SIZE);
  const priv = new SelftestDmaBuf(base, len);
  const buf = m.dmabuf.export({
    ops: SELFTEST_DMABUF_OPS,
    size: len,
    flags: openFlags,
    priv,
    expName: "iommufd",
  });
  try {
    return m.dmabuf.fd(buf, openFlags & O_CLOEXEC, m.fds);
  } catch (e) {
    m.dmabuf.put(buf);
    throw e;
  }
}

/** IOMMU_TEST_OP_DMABUF_REVOKE: sets the flag and notifies, unconditionally (§10.6). */
export function selftestDmabufRevoke(m: Machine, fd: number, revoked: boolean): number {
  const buf = m.dmabuf.get(m.fds, fd); // -EBADF / -EINVAL (K-159)
  try {
    if (buf.ops !== SELFTEST_DMABUF_OPS)
      throw new KernelError("EOPNOTSUPP", "dma-buf of another exporter", "K-159");
    buf.resv.with(() => {
      (buf.priv as SelftestDmaBuf).revoked = revoked;
      m.dmabuf.moveNotify(buf); // even when the value does not change (K-196)
    });
    return 0;
  } finally {
    m.dmabuf.put(buf);
  }
}

/** The selftest's private-interconnect hook (tried before VFIO's). Reservation lock held. */
export function iommufdTestDmaBufIommufdMap(a: DmaBufAttachment): PhysVec {
  const buf: DmaBuf = a.dmabuf;
  buf.resv.assertHeld("iommufd_test_dma_buf_iommufd_map");
  if (buf.ops !== SELFTEST_DMABUF_OPS) throw new KernelError("EOPNOTSUPP", "not a selftest dma-buf");
  const p = buf.priv as SelftestDmaBuf;
  if (p.revoked) throw new KernelError("ENODEV", "selftest dma-buf is revoked", "K-157");
  return { paddr: p.memory, len: p.length };
}

/* ---------- IOMMU_TEST_CMD ---------- */

/** `iommufd_test`: the operations the model implements; the others are -EOPNOTSUPP. */
export function iommufdTestCmd(ctx: IommufdCtx, u: Ucmd): number {
  const c = u.read(IOMMU_TEST_CMD_S);
  switch (c.op) {
    case IOMMU_TEST_OP.ADD_RESERVED: {
      const ioas = ctx.getIoas(c.id);
      ioas.iopt.reserveIova(c.add_reserved_start, c.add_reserved_start + c.add_reserved_length - 1n, null);
      return 0;
    }
    case IOMMU_TEST_OP.MOCK_DOMAIN: {
      const r = ctx.mockDomain(c.id);
      u.write(IOMMU_TEST_CMD_S, {
        mock_out_stdev_id: r.stdevId,
        mock_out_hwpt_id: r.hwptId,
        mock_out_idev_id: r.idevId,
      });
      u.respond();
      return 0;
    }
    case IOMMU_TEST_OP.MOCK_DOMAIN_REPLACE: {
      const pt = ctx.mockDomainReplace(c.id, c.replace_pt_id);
      u.write(IOMMU_TEST_CMD_S, { replace_pt_id: pt });
      u.respond();
      return 0;
    }
    case IOMMU_TEST_OP.DMABUF_GET:
      return selftestDmabufGet(ctx.env.m, c.dmabuf_get_length, c.dmabuf_get_open_flags);
    case IOMMU_TEST_OP.DMABUF_REVOKE:
      return selftestDmabufRevoke(ctx.env.m, c.dmabuf_revoke_fd, c.dmabuf_revoke_revoked !== 0);
    default:
      throw new KernelError("EOPNOTSUPP", `selftest op ${c.op} is not modelled`);
  }
}
