/**
 * An iommufd context (`/dev/iommu` opened by the user process; drivers/iommu/iommufd/main.c,
 * ioas.c, device.c, hw_pagetable.c, vfio_compat.c): its objects (IOAS, HWPT, bound devices,
 * selftest devices, in-kernel accesses), the generic ioctl path with its size rules, the IOAS
 * commands (kernel-semantics §10.2–§10.5) and the VFIO-compat container ioctls.
 *
 * Modelled choices: a bound VFIO device does not keep the context alive (closing /dev/iommu
 * detaches it); device attach to an IOAS reuses an automatic HWPT of the same IOMMU kind or
 * allocates one; the x86 MSI window is the only reserved region of a PCI device; nested HWPTs,
 * vIOMMU, PASID, dirty tracking and fault queues are not modelled (their commands answer -ENOTTY).
 */
import { GenericDevice } from "../core/device.js";
import { KernelError } from "../core/errors.js";
import { KFile, type UserBuffer } from "../core/file.js";
import type { DmaDevice } from "../dma/device.js";
import { isPciDev } from "../dma/device.js";
import type { DmaBuf } from "../dmabuf/dma-buf.js";
import type { IommuDomain } from "../iommu/domain.js";
import { X86_MSI_REGION } from "../iommu/iommu.js";
import type { Machine } from "../machine/machine.js";
import {
  DMA_MAP_SIZE,
  DMA_UNMAP_SIZE,
  decodeDmaMap,
  decodeDmaUnmap,
  encodeDmaUnmap,
  scalarArg,
  VFIO_API_VERSION,
  VFIO_CONTAINER_IOCTL,
  VFIO_DMA_CC_IOMMU,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
} from "../vfio/type1.js";
import { IoDomain, IoPagetable, type IoProt, type Span, ULONG_MAX } from "./io-pagetable.js";
import { allocDmabufPages, allocFilePages, allocUserPages, type IommufdEnv, PAGE_SIZE } from "./pages.js";
import { iommufdTestCmd, MockDomain } from "./selftest.js";
import {
  type FieldDefs,
  IOMMU_DESTROY_S,
  IOMMU_HWPT_ALLOC_S,
  IOMMU_HWPT_DATA_NONE,
  IOMMU_IOAS_ALLOC_S,
  IOMMU_IOAS_COPY_S,
  IOMMU_IOAS_MAP_FILE_S,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_FLAGS,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_S,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP_S,
  IOMMU_VFIO_IOAS_CLEAR,
  IOMMU_VFIO_IOAS_GET,
  IOMMU_VFIO_IOAS_S,
  IOMMU_VFIO_IOAS_SET,
  IOMMUFD_CMD,
  IOMMUFD_CMD_BASE,
  IOMMUFD_STRUCTS,
  IOMMUFD_TYPE,
  readFields,
  type StructDef,
  type StructValues,
  writeFields,
} from "./uapi.js";

/* ---------- objects ---------- */

export class Ioas {
  readonly kind = "ioas";
  readonly hwpts: Hwpt[] = [];
  readonly accesses: IommufdAccess[] = [];
  constructor(
    readonly id: number,
    readonly iopt: IoPagetable,
  ) {}
}

/** A paging HWPT: one IOMMU domain attached to one IOAS. */
export class Hwpt {
  readonly kind = "hwpt";
  readonly devices = new Set<IommufdDevice>();
  constructor(
    readonly id: number,
    readonly ioas: Ioas,
    readonly domain: IoDomain,
    /** Created by a device attach to an IOAS (destroyed with its last device). */
    readonly auto: boolean,
    readonly iommu: "pci" | "mock",
  ) {}
}

/** `struct iommufd_device`: a device bound to the context (VFIO cdev bind or selftest mock). */
export class IommufdDevice {
  readonly kind = "device";
  hwpt: Hwpt | null = null;
  constructor(
    readonly id: number,
    readonly dev: DmaDevice,
    readonly iommu: "pci" | "mock",
    readonly resvRegions: Span[],
    /** Mock devices: smallest page of the domains allocated for them. */
    readonly mockPgsize: bigint,
  ) {}
}

/** The selftest's device object (`IOMMUFD_OBJ_SELFTEST`), owner of a mock device's binding. */
export class SelftestDevice {
  readonly kind = "selftest";
  constructor(
    readonly id: number,
    readonly idev: IommufdDevice,
  ) {}
}

/** `struct iommufd_access`: an in-kernel user of an IOAS (emulated device, mdev). */
export class IommufdAccess {
  readonly kind = "access";
  constructor(
    readonly id: number,
    readonly ioas: Ioas,
    /** PAGE_SIZE when the user pins pages, else 1 (any byte can be read or written). */
    readonly iovaAlignment: bigint,
  ) {}
}

export type IommufdObject = Ioas | Hwpt | IommufdDevice | SelftestDevice | IommufdAccess;

/* ---------- the ioctl argument as the kernel handles it ---------- */

/** `struct iommufd_ucmd`: the user buffer, the size the user claims and the kernel's copy of the struct. */
export class Ucmd {
  constructor(
    readonly arg: UserBuffer,
    readonly userSize: number,
    readonly def: StructDef,
    readonly cmd: Uint8Array,
  ) {}

  get view(): DataView {
    return new DataView(this.cmd.buffer, this.cmd.byteOffset, this.cmd.byteLength);
  }

  read<F extends FieldDefs>(d: StructDef<F>): StructValues<F> {
    return readFields(d, this.view);
  }

  write<F extends FieldDefs>(d: StructDef<F>, values: Partial<StructValues<F>>): void {
    writeFields(d, this.view, values);
  }

  /** `iommufd_ucmd_respond`: copies back at most what the user passed (-EFAULT if unwritable). */
  respond(len = this.def.size): void {
    const n = Math.min(this.userSize, len);
    this.arg.copyToUser(0, this.cmd.subarray(0, n), this.def.name);
  }
}

export interface IommufdOptions {
  /** CONFIG_TRANSPARENT_HUGEPAGE: automatic IOVAs align up to 2 MiB (default true). */
  thp?: boolean;
  /** Smallest page of mock domains created by IOMMU_TEST_OP_MOCK_DOMAIN (default 4096). */
  mockPgsize?: bigint;
}

const LAST_NR = 0xa0;

/* ---------- the context ---------- */

export class IommufdCtx {
  readonly objects = new Map<number, IommufdObject>();
  private nextId = 1;
  /** The IOAS the VFIO-compat ioctls work on. */
  vfioIoas: Ioas | null = null;
  mockPgsize: bigint;
  file!: KFile;
  released = false;

  constructor(
    readonly env: IommufdEnv,
    opts: IommufdOptions = {},
  ) {
    this.mockPgsize = opts.mockPgsize ?? PAGE_SIZE;
  }

  private addObject<T extends IommufdObject>(make: (id: number) => T): T {
    const obj = make(this.nextId++);
    this.objects.set(obj.id, obj);
    return obj;
  }

  getIoas(id: number): Ioas {
    const o = this.objects.get(id);
    if (!(o instanceof Ioas)) throw new KernelError("ENOENT", `object ${id} is not an IOAS`, "K-163");
    return o;
  }

  getDevice(id: number): IommufdDevice {
    const o = this.objects.get(id);
    if (!(o instanceof IommufdDevice)) throw new KernelError("ENOENT", `object ${id} is not a device`);
    return o;
  }

  ioasAlloc(): Ioas {
    return this.addObject((id) => new Ioas(id, new IoPagetable(this.env)));
  }

  /* ---------- generic ioctl path (§10.2) ---------- */

  ioctl(cmd: number, arg: UserBuffer): number {
    const nr = cmd & 0xff;
    if (((cmd >>> 8) & 0xff) !== IOMMUFD_TYPE || nr < IOMMUFD_CMD_BASE || nr > LAST_NR)
      return this.vfioCompatIoctl(cmd, arg);
    const d = IOMMUFD_STRUCTS[cmd];
    if (!d) {
      const known = Object.values(IOMMUFD_CMD).includes(cmd as never);
      throw new KernelError(
        "ENOTTY",
        known ? `iommufd command 0x${cmd.toString(16)} is not modelled` : "unknown iommufd command",
      );
    }
    const userSize = arg.copyFromUser(0, 4, "iommufd command size").getUint32(0, true);
    if (userSize < d.minSize)
      throw new KernelError("EINVAL", `${d.name}: size ${userSize} below ${d.minSize}`);
    // copy_struct_from_user: bytes beyond the kernel's struct must be zero
    if (userSize > d.size) {
      const tail = arg.copyFromUser(d.size, userSize - d.size, `${d.name} trailing bytes`);
      for (let i = 0; i < tail.byteLength; i++)
        if (tail.getUint8(i) !== 0)
          throw new KernelError("E2BIG", `${d.name}: non-zero bytes beyond the struct`);
    }
    const bytes = new Uint8Array(d.size);
    const n = Math.min(userSize, d.size);
    bytes.set(arg.copyBytesFromUser(0, n, d.name));
    const u = new Ucmd(arg, userSize, d, bytes);
    switch (cmd) {
      case IOMMUFD_CMD.IOMMU_DESTROY:
        return this.destroyIoctl(u);
      case IOMMUFD_CMD.IOMMU_IOAS_ALLOC:
        return this.ioasAllocIoctl(u);
      case IOMMUFD_CMD.IOMMU_IOAS_MAP:
        return this.ioasMapIoctl(u);
      case IOMMUFD_CMD.IOMMU_IOAS_MAP_FILE:
        return this.ioasMapFileIoctl(u);
      case IOMMUFD_CMD.IOMMU_IOAS_UNMAP:
        return this.ioasUnmapIoctl(u);
      case IOMMUFD_CMD.IOMMU_IOAS_COPY:
        return this.ioasCopyIoctl(u);
      case IOMMUFD_CMD.IOMMU_VFIO_IOAS:
        return this.vfioIoasIoctl(u);
      case IOMMUFD_CMD.IOMMU_HWPT_ALLOC:
        return this.hwptAllocIoctl(u);
      case IOMMUFD_CMD.IOMMU_TEST_CMD:
        return iommufdTestCmd(this, u);
      default:
        throw new KernelError("ENOTTY", "not modelled");
    }
  }

  /* ---------- commands ---------- */

  private destroyIoctl(u: Ucmd): number {
    this.destroy(u.read(IOMMU_DESTROY_S).id);
    return 0;
  }

  /** IOMMU_DESTROY: busy objects answer -EBUSY. */
  destroy(id: number): void {
    const o = this.objects.get(id);
    if (!o) throw new KernelError("ENOENT", `no object ${id}`);
    switch (o.kind) {
      case "ioas":
        if (o.hwpts.length || o.accesses.length) throw new KernelError("EBUSY", `IOAS ${id} is in use`);
        o.iopt.unmapAll();
        if (this.vfioIoas === o) this.vfioIoas = null;
        break;
      case "hwpt":
        if (o.devices.size) throw new KernelError("EBUSY", `HWPT ${id} has devices attached`);
        this.destroyHwpt(o);
        return;
      case "device":
        throw new KernelError("EBUSY", `device ${id} is owned by its driver`);
      case "selftest":
        this.detachDevice(o.idev);
        this.objects.delete(o.idev.id);
        break;
      case "access":
        o.ioas.iopt.removeAccess(o);
        o.ioas.accesses.splice(o.ioas.accesses.indexOf(o), 1);
        break;
    }
    this.objects.delete(id);
  }

  private ioasAllocIoctl(u: Ucmd): number {
    const c = u.read(IOMMU_IOAS_ALLOC_S);
    if (c.flags) throw new KernelError("EOPNOTSUPP", "IOAS_ALLOC flags must be 0");
    const ioas = this.ioasAlloc();
    u.write(IOMMU_IOAS_ALLOC_S, { out_ioas_id: ioas.id });
    try {
      u.respond();
    } catch (e) {
      this.objects.delete(ioas.id);
      throw e;
    }
    return 0;
  }

  private static prot(flags: number): IoProt {
    return { read: (flags & IOMMU_IOAS_MAP_READABLE) !== 0, write: (flags & IOMMU_IOAS_MAP_WRITEABLE) !== 0 };
  }

  /** Checks shared by MAP, MAP_FILE and COPY (unknown flags, overflow, no permission). */
  private static checkMapFlags(flags: number, iova: bigint, length: bigint, reserved = 0): void {
    if (flags & ~IOMMU_IOAS_MAP_FLAGS || reserved)
      throw new KernelError("EOPNOTSUPP", "unknown map flags", "K-163");
    if (iova >= ULONG_MAX || length >= ULONG_MAX)
      throw new KernelError("EOVERFLOW", "iova or length too large");
    if (!(flags & (IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE)))
      throw new KernelError("EINVAL", "neither READABLE nor WRITEABLE", "K-163");
  }

  /** IOMMU_IOAS_MAP: user memory. */
  private ioasMapIoctl(u: Ucmd): number {
    const c = u.read(IOMMU_IOAS_MAP_S);
    IommufdCtx.checkMapFlags(c.flags, c.iova, c.length, c.__reserved);
    const ioas = this.getIoas(c.ioas_id);
    const iova = this.mapUserPages(ioas, c.user_va, c.length, c.flags, c.iova);
    u.write(IOMMU_IOAS_MAP_S, { iova });
    u.respond();
    return 0;
  }

  /** `iopt_map_user_pages`. */
  mapUserPages(ioas: Ioas, uptr: bigint, length: bigint, flags: number, iova: bigint): bigint {
    const prot = IommufdCtx.prot(flags);
    const pages = allocUserPages(this.env, uptr, length, prot.write);
    const list = [{ pages, startByte: uptr - pages.start, length, area: null }];
    try {
      return ioas.iopt.mapPages(list, length, flags & IOMMU_IOAS_MAP_FIXED_IOVA ? iova : null, prot);
    } catch (e) {
      pages.put();
      throw e;
    }
  }

  /** IOMMU_IOAS_MAP_FILE (§10.3), checks in order. */
  private ioasMapFileIoctl(u: Ucmd): number {
    const c = u.read(IOMMU_IOAS_MAP_FILE_S);
    // 1.–3.
    IommufdCtx.checkMapFlags(c.flags, c.iova, c.length);
    // 4.
    const ioas = this.getIoas(c.ioas_id);
    // 5.
    if (c.length === 0n) throw new KernelError("EINVAL", "length 0", "K-156");
    if (c.start + c.length - 1n > ULONG_MAX)
      throw new KernelError("EOVERFLOW", "start + length wraps", "K-163");
    // 6.
    const startByte = c.start % PAGE_SIZE;
    const prot = IommufdCtx.prot(c.flags);
    const m = this.env.m;
    const file = m.fds.fget(c.fd); // -EBADF
    let pages: ReturnType<typeof allocDmabufPages>;
    if (file.kind === "dma-buf") {
      // 7.–10. (the reference taken here moves into the pages)
      pages = allocDmabufPages(this.env, file.priv as DmaBuf, startByte, c.start, c.length, prot.write);
    } else {
      try {
        pages = allocFilePages(this.env, file, startByte, c.start, c.length, prot.write);
      } finally {
        file.put();
      }
    }
    // 11.–12.
    let iova: bigint;
    try {
      iova = ioas.iopt.mapPages(
        [{ pages, startByte, length: c.length, area: null }],
        c.length,
        c.flags & IOMMU_IOAS_MAP_FIXED_IOVA ? c.iova : null,
        prot,
      );
    } catch (e) {
      pages.put(); // detach and drop the buffer
      throw e;
    }
    // 13. (a failed copy-out leaves the mapping in place, as in the kernel)
    u.write(IOMMU_IOAS_MAP_FILE_S, { iova });
    u.respond();
    return 0;
  }

  /** IOMMU_IOAS_UNMAP: whole areas only; nothing in range → -ENOENT (6.18+). */
  private ioasUnmapIoctl(u: Ucmd): number {
    const c = u.read(IOMMU_IOAS_UNMAP_S);
    const ioas = this.getIoas(c.ioas_id);
    let unmapped: bigint;
    if (c.iova === 0n && c.length === ULONG_MAX) unmapped = ioas.iopt.unmapAll();
    else {
      if (c.iova >= ULONG_MAX || c.length >= ULONG_MAX)
        throw new KernelError("EOVERFLOW", "iova or length too large");
      unmapped = ioas.iopt.unmapIova(c.iova, c.length);
      if (!unmapped) throw new KernelError("ENOENT", "nothing mapped in the range", "K-171");
    }
    u.write(IOMMU_IOAS_UNMAP_S, { length: unmapped });
    u.respond();
    return 0;
  }

  /** IOMMU_IOAS_COPY: the destination shares the source's pages (§10.5, K-170). */
  private ioasCopyIoctl(u: Ucmd): number {
    const c = u.read(IOMMU_IOAS_COPY_S);
    if (c.flags & ~IOMMU_IOAS_MAP_FLAGS) throw new KernelError("EOPNOTSUPP", "unknown copy flags");
    if (c.length >= ULONG_MAX || c.src_iova >= ULONG_MAX || c.dst_iova >= ULONG_MAX)
      throw new KernelError("EOVERFLOW", "iova or length too large");
    if (!(c.flags & (IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE)))
      throw new KernelError("EINVAL", "neither READABLE nor WRITEABLE");
    const src = this.getIoas(c.src_ioas_id);
    const list = src.iopt.getPages(c.src_iova, c.length);
    try {
      const dst = this.getIoas(c.dst_ioas_id);
      const iova = dst.iopt.mapPages(
        list,
        c.length,
        c.flags & IOMMU_IOAS_MAP_FIXED_IOVA ? c.dst_iova : null,
        IommufdCtx.prot(c.flags),
      );
      u.write(IOMMU_IOAS_COPY_S, { dst_iova: iova });
      u.respond();
      return 0;
    } finally {
      for (const elm of list) elm.pages?.put();
    }
  }

  /** IOMMU_VFIO_IOAS: get / set / clear the IOAS of the VFIO-compat ioctls. */
  private vfioIoasIoctl(u: Ucmd): number {
    const c = u.read(IOMMU_VFIO_IOAS_S);
    if (c.__reserved) throw new KernelError("EOPNOTSUPP", "reserved field set");
    switch (c.op) {
      case IOMMU_VFIO_IOAS_GET:
        if (!this.vfioIoas) throw new KernelError("ENODEV", "no compat IOAS");
        u.write(IOMMU_VFIO_IOAS_S, { ioas_id: this.vfioIoas.id });
        u.respond();
        return 0;
      case IOMMU_VFIO_IOAS_SET:
        this.vfioIoas = this.getIoas(c.ioas_id);
        return 0;
      case IOMMU_VFIO_IOAS_CLEAR:
        this.vfioIoas = null;
        return 0;
      default:
        throw new KernelError("EOPNOTSUPP", `unknown VFIO_IOAS op ${c.op}`);
    }
  }

  /** IOMMU_HWPT_ALLOC of a paging HWPT on an IOAS (the domain is filled at once, not attached). */
  private hwptAllocIoctl(u: Ucmd): number {
    const c = u.read(IOMMU_HWPT_ALLOC_S);
    if ((c.data_type === IOMMU_HWPT_DATA_NONE && c.data_len) || c.__reserved)
      throw new KernelError("EOPNOTSUPP", "data without a type, or reserved field set");
    if (c.data_type !== IOMMU_HWPT_DATA_NONE)
      throw new KernelError("EOPNOTSUPP", "nested HWPTs are not modelled");
    const idev = this.getDevice(c.dev_id);
    const pt = this.objects.get(c.pt_id);
    if (!pt) throw new KernelError("ENOENT", `no object ${c.pt_id}`);
    if (pt.kind !== "ioas")
      throw new KernelError("EINVAL", "HWPT parent must be an IOAS (nesting not modelled)");
    if (c.flags) throw new KernelError("EOPNOTSUPP", "HWPT_ALLOC flags are not modelled");
    const hwpt = this.hwptPagingAlloc(idev, pt, false);
    u.write(IOMMU_HWPT_ALLOC_S, { out_hwpt_id: hwpt.id });
    try {
      u.respond();
    } catch (e) {
      this.destroyHwpt(hwpt);
      throw e;
    }
    return 0;
  }

  /* ---------- HWPTs and devices ---------- */

  private allocDomainFor(idev: IommufdDevice): IoDomain {
    if (idev.iommu === "mock") {
      const d = new MockDomain(idev.mockPgsize, this.nextId);
      return new IoDomain(d, idev.mockPgsize, `mock-domain(${idev.mockPgsize})`);
    }
    const d = this.env.m.iommu.allocDomain("unmanaged");
    return new IoDomain(d, PAGE_SIZE, `iommu-domain#${d.id}`);
  }

  /** `iommufd_hwpt_paging_alloc`: a new domain, added to (and filled from) the IOAS. */
  private hwptPagingAlloc(idev: IommufdDevice, ioas: Ioas, auto: boolean): Hwpt {
    const domain = this.allocDomainFor(idev);
    ioas.iopt.addDomain(domain);
    const hwpt = this.addObject((id) => new Hwpt(id, ioas, domain, auto, idev.iommu));
    ioas.hwpts.push(hwpt);
    return hwpt;
  }

  private destroyHwpt(h: Hwpt): void {
    h.ioas.iopt.removeDomain(h.domain);
    h.ioas.hwpts.splice(h.ioas.hwpts.indexOf(h), 1);
    this.objects.delete(h.id);
  }

  /** `iommufd_device_bind` for a PCI function (the iommufd side of VFIO_DEVICE_BIND_IOMMUFD). */
  bindPciDevice(dev: DmaDevice): IommufdDevice {
    if (!isPciDev(dev) || this.env.m.iommu.groupIdOf(dev) === null)
      throw new KernelError("ENODEV", "device is not behind an IOMMU");
    const regions = (this.env.m.iommu.opts.reservedRegions ?? [X86_MSI_REGION]).map((r) => ({
      start: r.start,
      last: r.end,
    }));
    return this.addObject((id) => new IommufdDevice(id, dev, "pci", regions, PAGE_SIZE));
  }

  /**
   * `iommufd_device_attach` / `_replace` (VFIO_DEVICE_ATTACH_IOMMUFD_PT): `ptId` is an IOAS (an
   * automatic HWPT is found or made) or a HWPT. Returns the HWPT id.
   */
  attachDevice(idev: IommufdDevice, ptId: number): number {
    const pt = this.objects.get(ptId);
    if (!pt || (pt.kind !== "ioas" && pt.kind !== "hwpt"))
      throw new KernelError("ENOENT", `object ${ptId} is not an IOAS or a HWPT`);
    let target: Hwpt;
    let fresh = false;
    if (pt.kind === "hwpt") {
      if (pt.iommu !== idev.iommu) throw new KernelError("EINVAL", "HWPT of another IOMMU");
      target = pt;
    } else {
      const reuse = pt.hwpts.find(
        (h) =>
          h.auto && h.iommu === idev.iommu && (idev.iommu !== "mock" || h.domain.pgsize === idev.mockPgsize),
      );
      if (reuse) target = reuse;
      else {
        target = this.hwptPagingAlloc(idev, pt, true);
        fresh = true;
      }
    }
    const old = idev.hwpt;
    if (old === target) return target.id;
    try {
      if (old?.ioas !== target.ioas)
        for (const r of idev.resvRegions) {
          try {
            target.ioas.iopt.reserveIova(r.start, r.last, idev);
          } catch (e) {
            target.ioas.iopt.removeReserved(idev);
            throw e;
          }
        }
    } catch (e) {
      if (fresh) this.destroyHwpt(target);
      throw e;
    }
    if (isPciDev(idev.dev)) this.env.m.iommu.attachGroup(idev.dev, target.domain.hw as IommuDomain);
    idev.hwpt = target;
    target.devices.add(idev);
    if (old) this.leaveHwpt(idev, old, target.ioas);
    return target.id;
  }

  private leaveHwpt(idev: IommufdDevice, old: Hwpt, newIoas: Ioas | null): void {
    old.devices.delete(idev);
    if (old.ioas !== newIoas) old.ioas.iopt.removeReserved(idev);
    if (old.auto && old.devices.size === 0) this.destroyHwpt(old);
  }

  detachDevice(idev: IommufdDevice): void {
    const old = idev.hwpt;
    if (!old) return;
    idev.hwpt = null;
    if (isPciDev(idev.dev)) this.env.m.iommu.detachGroup(idev.dev);
    this.leaveHwpt(idev, old, null);
  }

  /** Selftest MOCK_DOMAIN: a mock device, bound and attached to `ptId`. */
  mockDomain(ptId: number): { stdevId: number; hwptId: number; idevId: number } {
    const pgsize = this.mockPgsize;
    const stdevId = this.nextId++; // the selftest object's id is reserved first, as in the kernel
    const idev = this.addObject(
      (id) => new IommufdDevice(id, new GenericDevice(`iommufd_mock${id}`), "mock", [], pgsize),
    );
    let hwptId: number;
    try {
      hwptId = this.attachDevice(idev, ptId);
    } catch (e) {
      this.objects.delete(idev.id);
      throw e;
    }
    this.objects.set(stdevId, new SelftestDevice(stdevId, idev));
    return { stdevId, hwptId, idevId: idev.id };
  }

  /** Selftest MOCK_DOMAIN_REPLACE. */
  mockDomainReplace(stdevId: number, ptId: number): number {
    const st = this.objects.get(stdevId);
    if (!(st instanceof SelftestDevice))
      throw new KernelError("ENOENT", `object ${stdevId} is not a mock device`);
    return this.attachDevice(st.idev, ptId);
  }

  /* ---------- in-kernel accesses (§10.5) ---------- */

  createAccess(ioasId: number, o: { needsPinPages?: boolean } = {}): IommufdAccess {
    const ioas = this.getIoas(ioasId);
    const a = new IommufdAccess(this.nextId, ioas, o.needsPinPages ? PAGE_SIZE : 1n);
    ioas.iopt.addAccess(a); // -EADDRINUSE when an area does not fit the alignment
    this.nextId++;
    this.objects.set(a.id, a);
    ioas.accesses.push(a);
    return a;
  }

  /** `iommufd_access_rw`: dma-buf areas refuse CPU access (after the write-permission check). */
  accessRw(a: IommufdAccess, iova: bigint, length: bigint, write: boolean): number {
    if (length === 0n) throw new KernelError("EINVAL", "access of length 0");
    const last = iova + length - 1n;
    if (last > ULONG_MAX) throw new KernelError("EOVERFLOW", "access range wraps");
    const { parts, done } = a.ioas.iopt.contigAreas(iova, last);
    for (const { area } of parts) {
      const pages = area.pages!;
      if (write && !pages.writable) throw new KernelError("EPERM", "write to read-only pages", "K-169");
      if (pages.type === "dmabuf") throw new KernelError("EINVAL", "CPU access to a dma-buf area", "K-169");
    }
    if (!done) throw new KernelError("ENOENT", "access range not mapped");
    return 0;
  }

  /**
   * `iommufd_access_pin_pages` in 6.19: there is no dma-buf check. An area held by a domain hands
   * out descriptors derived from the MMIO PFNs read back from the IOMMU (a bug, recorded as
   * `bug:dmabuf-access-pin`); otherwise the user-page path is fed a bogus address (-EFAULT).
   * The model does not keep the pins (the access is unpinned at once).
   */
  accessPin(a: IommufdAccess, iova: bigint, length: bigint, write: boolean): number {
    if (length === 0n) throw new KernelError("EINVAL", "pin of length 0");
    if (a.iovaAlignment !== PAGE_SIZE || iova % PAGE_SIZE) {
      this.env.m.diag.warn("iommufd_access_pin_pages", "access cannot pin or IOVA not page aligned");
      throw new KernelError("EINVAL", "access cannot pin pages here");
    }
    const last = iova + length - 1n;
    if (last > ULONG_MAX) throw new KernelError("EOVERFLOW", "pin range wraps");
    const { parts, done } = a.ioas.iopt.contigAreas(iova, last);
    for (const { area } of parts) {
      if (area.preventAccess) throw new KernelError("EINVAL", "area is being unmapped");
      if (write && !area.prot.write) throw new KernelError("EPERM", "write pin of a read-only area", "K-169");
      const pages = area.pages!;
      if (pages.type !== "dmabuf") continue;
      if (!area.storageDomain)
        throw new KernelError("EFAULT", "pin_user_pages on the dma-buf bookkeeping pointer", "K-169");
      this.env.m.diag.record(
        "bug:dmabuf-access-pin",
        `access pinned IOVA 0x${iova.toString(16)}: page descriptors made from MMIO PFNs read back from the IOMMU`,
      );
    }
    if (!done) throw new KernelError("ENOENT", "pin range not mapped");
    return 0;
  }

  /* ---------- VFIO compat (vfio_compat.c) ---------- */

  private compatIoas(): Ioas {
    if (!this.vfioIoas) throw new KernelError("ENODEV", "no compat IOAS (no group attached)");
    return this.vfioIoas;
  }

  /** `iommufd_vfio_compat_ioas_create`: what attaching a VFIO group to /dev/iommu does first. */
  compatIoasCreate(): Ioas {
    this.vfioIoas ??= this.ioasAlloc();
    return this.vfioIoas;
  }

  private vfioCompatIoctl(cmd: number, arg: UserBuffer): number {
    switch (cmd) {
      case VFIO_CONTAINER_IOCTL.VFIO_GET_API_VERSION:
        return VFIO_API_VERSION;
      case VFIO_CONTAINER_IOCTL.VFIO_CHECK_EXTENSION: {
        const ext = Number(scalarArg(arg));
        if (ext === VFIO_TYPE1_IOMMU || ext === VFIO_TYPE1v2_IOMMU || ext === VFIO_UNMAP_ALL) return 1;
        if (ext === VFIO_DMA_CC_IOMMU) {
          this.compatIoas();
          return 1;
        }
        return 0;
      }
      case VFIO_CONTAINER_IOCTL.VFIO_SET_IOMMU: {
        const type = Number(scalarArg(arg));
        if (type !== VFIO_TYPE1_IOMMU && type !== VFIO_TYPE1v2_IOMMU)
          throw new KernelError("EINVAL", `IOMMU type ${type} not emulated`);
        const ioas = this.compatIoas();
        // TYPE1 can unmap inside a mapping: emulated by refusing huge IOPTEs
        if (type === VFIO_TYPE1_IOMMU) ioas.iopt.disableLarge();
        return 0;
      }
      case VFIO_CONTAINER_IOCTL.VFIO_IOMMU_MAP_DMA: {
        const a = decodeDmaMap(arg.copyFromUser(0, DMA_MAP_SIZE, "struct vfio_iommu_type1_dma_map"));
        if (a.argsz < DMA_MAP_SIZE || a.flags & ~(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE))
          throw new KernelError("EINVAL", "argsz or flags");
        let flags = IOMMU_IOAS_MAP_FIXED_IOVA;
        if (a.flags & VFIO_DMA_MAP_FLAG_READ) flags |= IOMMU_IOAS_MAP_READABLE;
        if (a.flags & VFIO_DMA_MAP_FLAG_WRITE) flags |= IOMMU_IOAS_MAP_WRITEABLE;
        this.mapUserPages(this.compatIoas(), a.vaddr, a.size, flags, a.iova);
        return 0;
      }
      case VFIO_CONTAINER_IOCTL.VFIO_IOMMU_UNMAP_DMA:
        return this.compatUnmap(arg);
      default:
        throw new KernelError(
          "ENOTTY",
          `ioctl 0x${cmd.toString(16)} is not an iommufd or VFIO-compat command`,
        );
    }
  }

  /**
   * `iommufd_vfio_unmap_dma`: an empty range unmaps nothing and succeeds (6.18+, K-174). The size
   * is written back even when the unmap itself failed; a failed cut (TYPE1 mode) writes nothing.
   */
  private compatUnmap(arg: UserBuffer): number {
    const a = decodeDmaUnmap(arg.copyFromUser(0, DMA_UNMAP_SIZE, "struct vfio_iommu_type1_dma_unmap"));
    if (a.argsz < DMA_UNMAP_SIZE || a.flags & ~VFIO_DMA_UNMAP_FLAG_ALL)
      throw new KernelError("EINVAL", "argsz or flags");
    const ioas = this.compatIoas();
    let unmapped = 0n;
    let err: unknown = null;
    if (a.flags & VFIO_DMA_UNMAP_FLAG_ALL) {
      if (a.iova || a.size) throw new KernelError("EINVAL", "UNMAP_ALL with a range");
      try {
        unmapped = ioas.iopt.unmapAll();
      } catch (e) {
        err = e;
      }
    } else {
      if (ioas.iopt.disableLargePages) {
        const cuts = [BigInt.asUintN(64, a.iova + a.size - 1n)];
        if (a.iova) cuts.push(a.iova - 1n);
        ioas.iopt.cutIova(cuts); // K-171: a dma-buf area refuses to be split
      }
      try {
        unmapped = ioas.iopt.unmapIova(a.iova, a.size);
      } catch (e) {
        err = e;
      }
    }
    arg.copyToUser(
      0,
      encodeDmaUnmap({ argsz: a.argsz, flags: a.flags, iova: a.iova, size: unmapped }),
      "unmap size",
    );
    if (err) throw err;
    return 0;
  }

  /* ---------- release ---------- */

  /** Last close of /dev/iommu: every object goes, devices first. */
  release(): void {
    if (this.released) return;
    this.released = true;
    const all = [...this.objects.values()];
    for (const o of all) if (o.kind === "access") this.destroy(o.id);
    for (const o of all) if (o.kind === "device") this.detachDevice(o);
    for (const o of all) if (o.kind === "hwpt" && this.objects.has(o.id)) this.destroyHwpt(o);
    for (const o of all) if (o.kind === "ioas") o.iopt.unmapAll();
    this.objects.clear();
    this.vfioIoas = null;
  }
}

/* ---------- per machine ---------- */

const devices = new WeakMap<Machine, GenericDevice>();

/** iommufd's misc device (`iommufd_global_device`), the importer of its dma-buf attachments. */
export function iommufdDevice(m: Machine): GenericDevice {
  let d = devices.get(m);
  if (!d) {
    d = new GenericDevice("iommufd");
    devices.set(m, d);
  }
  return d;
}

/** `open("/dev/iommu")` in the machine's user process; returns the fd. */
export function openIommufd(m: Machine, opts: IommufdOptions = {}): number {
  const ctx = new IommufdCtx({ m, device: iommufdDevice(m), thp: opts.thp ?? true }, opts);
  ctx.file = new KFile(
    "iommufd",
    {
      ioctl: (_f, cmd, arg) => ctx.ioctl(cmd, arg),
      release: () => ctx.release(),
    },
    2,
    ctx,
  );
  return m.fds.install(ctx.file);
}

/** The context behind an fd (-EBADF, or -EINVAL for another kind of file). */
export function iommufdCtxOf(m: Machine, fd: number): IommufdCtx {
  const f = m.fds.peek(fd);
  if (!f) throw new KernelError("EBADF", `descriptor ${fd} is not open`);
  if (f.kind !== "iommufd") throw new KernelError("EINVAL", `descriptor ${fd} is not /dev/iommu`);
  return f.priv as IommufdCtx;
}

/** `ioctl(fd, cmd, arg)` on any fd of the user process (the same path a C program takes). */
export function iommufdIoctl(m: Machine, fd: number, cmd: number, arg: UserBuffer): number {
  const f = m.fds.fget(fd);
  try {
    if (!f.ops.ioctl) throw new KernelError("ENOTTY", `descriptor ${fd} (${f.kind}) has no ioctls`);
    return f.ops.ioctl(f, cmd, arg);
  } finally {
    f.put();
  }
}
