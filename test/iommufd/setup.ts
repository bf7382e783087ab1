/** Fabric F with EPa opened through VFIO plus an open /dev/iommu with one IOAS (kernel-semantics §13.0, §13.10). */
import { KernelError } from "../../src/core/errors.js";
import {
  type Area,
  bindVfioDevice,
  type IommufdOptions,
  type IoPagetable,
  ioasAlloc,
  iommufdCtxOf,
  type MapFileArgs,
  mapFile,
  openIommufd,
  testMockDomain,
  unmap,
} from "../../src/iommufd/index.js";
import { type VfioFOptions, vfioF } from "../helpers/vfio-f.js";

export interface Attempt<T> {
  errno: string | null;
  value: T | undefined;
}

/** Runs a kernel call: its value, or the errno name of its {@link KernelError}. */
export function attempt<T>(fn: () => T): Attempt<T> {
  try {
    return { errno: null, value: fn() };
  } catch (e) {
    if (e instanceof KernelError) return { errno: e.errnoName, value: undefined };
    throw e;
  }
}

export const K16 = 0x4000n;

export function iommufdF(o: VfioFOptions & { iommufd?: IommufdOptions } = {}) {
  const t = vfioF(o);
  const ifd = openIommufd(t.m, o.iommufd);
  const ctx = iommufdCtxOf(t.m, ifd);
  const ioasId = ioasAlloc(t.m, ifd);
  const s = {
    ...t,
    ifd,
    ctx,
    ioasId,
    iopt(id = ioasId): IoPagetable {
      return ctx.getIoas(id).iopt;
    },
    /** MAP_FILE into `ioasId` unless given; the outcome with the IOVA as value. */
    mapFile(a: Partial<MapFileArgs> & { fd: number; start?: bigint; length: bigint }): Attempt<bigint> {
      return attempt(() => mapFile(t.m, ifd, { ioasId, start: 0n, ...a }));
    },
    unmap(iova: bigint, length: bigint, id = ioasId): Attempt<bigint> {
      return attempt(() => unmap(t.m, ifd, { ioasId: id, iova, length }));
    },
    /** Attaches a selftest mock domain (device + automatic HWPT) to the IOAS. */
    mockDomain(id = ioasId) {
      return testMockDomain(t.m, ifd, id);
    },
    /** Binds EPa (the VFIO device) to this iommufd and attaches it to the IOAS: a real 4 KiB domain. */
    attachEPa(id = ioasId) {
      const devId = bindVfioDevice(t.m, ifd, t.fd);
      const hwptId = s.ctx.attachDevice(s.ctx.getDevice(devId), id);
      return { devId, hwptId };
    },
    areaAt(iova: bigint, id = ioasId): Area | undefined {
      return s.iopt(id).areaIterFirst(iova, iova);
    },
    /** Bytes of [iova, iova+len) that translate in each domain of the IOAS. */
    mapped(iova: bigint, len: bigint, id = ioasId): bigint[] {
      return s.iopt(id).domains.map((d) => d.hw.mappedBytesIn(iova, len));
    },
  };
  return s;
}
