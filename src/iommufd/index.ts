/**
 * iommufd as a dma-buf importer (kernel-semantics §10): open `/dev/iommu` in a machine's user
 * process and drive it either with the exact bytes of a C program (`iommufdIoctl`) or with the
 * typed calls below, which encode those same bytes, go through the same ioctl path and decode the
 * answer. Failures are {@link KernelError}s.
 */
import { UserBuffer } from "../core/file.js";
import type { Machine } from "../machine/machine.js";
import {
  DMA_UNMAP_SIZE,
  decodeDmaUnmap,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeScalar,
  VFIO_CONTAINER_IOCTL,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
} from "../vfio/type1.js";
import { iommufdCtxOf, iommufdIoctl } from "./iommufd.js";
import {
  decodeStruct,
  encodeMapFile,
  encodeStruct,
  IOMMU_DESTROY_S,
  IOMMU_HWPT_ALLOC_S,
  IOMMU_IOAS_ALLOC_S,
  IOMMU_IOAS_COPY_S,
  IOMMU_IOAS_MAP_FILE_S,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_S,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP_S,
  IOMMU_TEST_CMD_S,
  IOMMU_TEST_OP,
  IOMMU_VFIO_IOAS_S,
  IOMMUFD_CMD,
  type MapFileArgs,
  type StructValues,
} from "./uapi.js";

export * from "./io-pagetable.js";
export * from "./iommufd.js";
export * from "./pages.js";
export * from "./selftest.js";
export * from "./uapi.js";

const RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;

function run(m: Machine, ifd: number, cmd: number, bytes: Uint8Array): { ret: number; out: Uint8Array } {
  const arg = new UserBuffer(bytes);
  const ret = iommufdIoctl(m, ifd, cmd, arg);
  return { ret, out: arg.bytes ?? new Uint8Array(0) };
}

/** IOMMU_IOAS_ALLOC → the new IOAS id. */
export function ioasAlloc(m: Machine, ifd: number): number {
  const { out } = run(m, ifd, IOMMUFD_CMD.IOMMU_IOAS_ALLOC, encodeStruct(IOMMU_IOAS_ALLOC_S, { flags: 0 }));
  return decodeStruct(IOMMU_IOAS_ALLOC_S, out).out_ioas_id;
}

/** IOMMU_DESTROY. */
export function destroy(m: Machine, ifd: number, id: number): void {
  run(m, ifd, IOMMUFD_CMD.IOMMU_DESTROY, encodeStruct(IOMMU_DESTROY_S, { id }));
}

/** IOMMU_IOAS_MAP_FILE → the IOVA (automatic unless FIXED_IOVA; default flags READABLE|WRITEABLE). */
export function mapFile(m: Machine, ifd: number, a: MapFileArgs): bigint {
  const { out } = run(m, ifd, IOMMUFD_CMD.IOMMU_IOAS_MAP_FILE, encodeMapFile(a));
  return decodeStruct(IOMMU_IOAS_MAP_FILE_S, out).iova;
}

/** IOMMU_IOAS_MAP of user memory → the IOVA. */
export function ioasMap(
  m: Machine,
  ifd: number,
  a: { ioasId: number; userVa: bigint; length: bigint; flags?: number; iova?: bigint },
): bigint {
  const bytes = encodeStruct(IOMMU_IOAS_MAP_S, {
    flags: a.flags ?? RW,
    ioas_id: a.ioasId,
    user_va: a.userVa,
    length: a.length,
    iova: a.iova ?? 0n,
  });
  return decodeStruct(IOMMU_IOAS_MAP_S, run(m, ifd, IOMMUFD_CMD.IOMMU_IOAS_MAP, bytes).out).iova;
}

/** IOMMU_IOAS_UNMAP → bytes unmapped (iova 0 with length 2^64-1 unmaps everything). */
export function unmap(m: Machine, ifd: number, a: { ioasId: number; iova: bigint; length: bigint }): bigint {
  const bytes = encodeStruct(IOMMU_IOAS_UNMAP_S, { ioas_id: a.ioasId, iova: a.iova, length: a.length });
  return decodeStruct(IOMMU_IOAS_UNMAP_S, run(m, ifd, IOMMUFD_CMD.IOMMU_IOAS_UNMAP, bytes).out).length;
}

/** IOMMU_IOAS_COPY → the destination IOVA. */
export function copy(
  m: Machine,
  ifd: number,
  a: {
    srcIoasId: number;
    dstIoasId: number;
    srcIova: bigint;
    length: bigint;
    dstIova?: bigint;
    flags?: number;
  },
): bigint {
  const bytes = encodeStruct(IOMMU_IOAS_COPY_S, {
    flags: (a.flags ?? RW) | (a.dstIova !== undefined ? IOMMU_IOAS_MAP_FIXED_IOVA : 0),
    dst_ioas_id: a.dstIoasId,
    src_ioas_id: a.srcIoasId,
    length: a.length,
    dst_iova: a.dstIova ?? 0n,
    src_iova: a.srcIova,
  });
  return decodeStruct(IOMMU_IOAS_COPY_S, run(m, ifd, IOMMUFD_CMD.IOMMU_IOAS_COPY, bytes).out).dst_iova;
}

/** IOMMU_HWPT_ALLOC of a paging HWPT for `devId` on IOAS `ptId` → the HWPT id. */
export function hwptAlloc(
  m: Machine,
  ifd: number,
  a: { devId: number; ptId: number; flags?: number },
): number {
  const bytes = encodeStruct(IOMMU_HWPT_ALLOC_S, { flags: a.flags ?? 0, dev_id: a.devId, pt_id: a.ptId });
  return decodeStruct(IOMMU_HWPT_ALLOC_S, run(m, ifd, IOMMUFD_CMD.IOMMU_HWPT_ALLOC, bytes).out).out_hwpt_id;
}

/** IOMMU_VFIO_IOAS (op GET 0 / SET 1 / CLEAR 2) → the compat IOAS id for GET. */
export function vfioIoas(m: Machine, ifd: number, op: number, ioasId = 0): number {
  const { out } = run(
    m,
    ifd,
    IOMMUFD_CMD.IOMMU_VFIO_IOAS,
    encodeStruct(IOMMU_VFIO_IOAS_S, { op, ioas_id: ioasId }),
  );
  return decodeStruct(IOMMU_VFIO_IOAS_S, out).ioas_id;
}

/**
 * The iommufd side of VFIO_DEVICE_BIND_IOMMUFD (cdev) for the VFIO device behind `vfioFd`
 * → the device id. (The VFIO device fd ioctl itself is not wired to iommufd in the model.)
 */
export function bindVfioDevice(m: Machine, ifd: number, vfioFd: number): number {
  const ctx = iommufdCtxOf(m, ifd);
  return ctx.bindPciDevice(m.vfio.deviceOf(vfioFd).pdev).id;
}

/** VFIO_DEVICE_ATTACH_IOMMUFD_PT / the selftest's replace: attach a bound device to an IOAS or HWPT → the HWPT id. */
export function attachDevice(m: Machine, ifd: number, devId: number, ptId: number): number {
  const ctx = iommufdCtxOf(m, ifd);
  return ctx.attachDevice(ctx.getDevice(devId), ptId);
}

/**
 * VFIO_GROUP_SET_CONTAINER with /dev/iommu as the container (VFIO-compat mode): the compat IOAS is
 * created if needed and the device is bound and attached to it. Returns the compat IOAS id.
 */
export function compatAttachVfioDevice(m: Machine, ifd: number, vfioFd: number): number {
  const ctx = iommufdCtxOf(m, ifd);
  const ioas = ctx.compatIoasCreate();
  const idev = ctx.bindPciDevice(m.vfio.deviceOf(vfioFd).pdev);
  ctx.attachDevice(idev, ioas.id);
  return ioas.id;
}

/* ---------- container ioctls (type1 on /dev/vfio/vfio, or VFIO-compat on /dev/iommu) ---------- */

export function vfioSetIommu(m: Machine, fd: number, type: number): number {
  return run(m, fd, VFIO_CONTAINER_IOCTL.VFIO_SET_IOMMU, encodeScalar(type)).ret;
}

export function vfioCheckExtension(m: Machine, fd: number, ext: number): number {
  return run(m, fd, VFIO_CONTAINER_IOCTL.VFIO_CHECK_EXTENSION, encodeScalar(ext)).ret;
}

/** VFIO_IOMMU_MAP_DMA (default READ|WRITE). */
export function vfioMapDma(
  m: Machine,
  fd: number,
  a: { vaddr: bigint; iova: bigint; size: bigint; flags?: number },
): number {
  const flags = a.flags ?? VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
  return run(m, fd, VFIO_CONTAINER_IOCTL.VFIO_IOMMU_MAP_DMA, encodeDmaMap({ ...a, flags })).ret;
}

/** VFIO_IOMMU_UNMAP_DMA → the size written back (bytes unmapped). */
export function vfioUnmapDma(
  m: Machine,
  fd: number,
  a: { iova: bigint; size: bigint; flags?: number },
): bigint {
  const { out } = run(m, fd, VFIO_CONTAINER_IOCTL.VFIO_IOMMU_UNMAP_DMA, encodeDmaUnmap(a));
  return decodeDmaUnmap(new DataView(out.buffer, out.byteOffset, DMA_UNMAP_SIZE)).size;
}

/* ---------- selftest commands ---------- */

function testCmd(m: Machine, ifd: number, values: Partial<StructValues<typeof IOMMU_TEST_CMD_S.fields>>) {
  const r = run(m, ifd, IOMMUFD_CMD.IOMMU_TEST_CMD, encodeStruct(IOMMU_TEST_CMD_S, values));
  return { ret: r.ret, out: decodeStruct(IOMMU_TEST_CMD_S, r.out) };
}

/** IOMMU_TEST_OP_DMABUF_GET → the dma-buf fd. */
export function testDmabufGet(m: Machine, ifd: number, length: number, openFlags = 0): number {
  return testCmd(m, ifd, {
    op: IOMMU_TEST_OP.DMABUF_GET,
    dmabuf_get_length: length,
    dmabuf_get_open_flags: openFlags,
  }).ret;
}

/** IOMMU_TEST_OP_DMABUF_REVOKE. */
export function testDmabufRevoke(m: Machine, ifd: number, bufFd: number, revoked: boolean): number {
  return testCmd(m, ifd, {
    op: IOMMU_TEST_OP.DMABUF_REVOKE,
    dmabuf_revoke_fd: bufFd,
    dmabuf_revoke_revoked: revoked ? 1 : 0,
  }).ret;
}

/** IOMMU_TEST_OP_MOCK_DOMAIN on IOAS (or HWPT) `ptId`. */
export function testMockDomain(
  m: Machine,
  ifd: number,
  ptId: number,
): { stdevId: number; hwptId: number; idevId: number } {
  const { out } = testCmd(m, ifd, { op: IOMMU_TEST_OP.MOCK_DOMAIN, id: ptId });
  return { stdevId: out.mock_out_stdev_id, hwptId: out.mock_out_hwpt_id, idevId: out.mock_out_idev_id };
}

/** IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE → the HWPT the mock device is now attached to. */
export function testMockDomainReplace(m: Machine, ifd: number, stdevId: number, ptId: number): number {
  return testCmd(m, ifd, { op: IOMMU_TEST_OP.MOCK_DOMAIN_REPLACE, id: stdevId, replace_pt_id: ptId }).out
    .replace_pt_id;
}

/** IOMMU_TEST_OP_ADD_RESERVED. */
export function testAddReserved(
  m: Machine,
  ifd: number,
  ioasId: number,
  start: bigint,
  length: bigint,
): void {
  testCmd(m, ifd, {
    op: IOMMU_TEST_OP.ADD_RESERVED,
    id: ioasId,
    add_reserved_start: start,
    add_reserved_length: length,
  });
}
