/**
 * The uverbs ioctl path of one opened IB device (drivers/infiniband/core/uverbs_ioctl.c,
 * uverbs_std_types_mr.c; rdma-data-direct.md §6.1, §6.2, §8.1): the framework checks in their
 * order, a per-device method table (core methods plus the mlx5 driver's attribute and method), the
 * object handles of the context, and the core handlers of REG_DMABUF_MR and MR_DESTROY.
 *
 * Pointer attributes point into the process's {@link UserMemory}; the header and attribute array
 * are the ioctl argument itself (a {@link UserBuffer}), and the kernel writes back into it: the new
 * object's handle into `data` of a NEW attribute, VALID_OUTPUT into `flags` of outputs it wrote.
 */
import { KernelError } from "../../core/errors.js";
import type { UserBuffer } from "../../core/file.js";
import { PAGE_SIZE } from "../core/umem-dmabuf.js";
import type { Task } from "../sync.js";
import {
  decodeAttrAt,
  decodeUverbsHdr,
  IB_ACCESS,
  IB_UVERBS_ATTR_SIZE,
  IB_UVERBS_IOCTL_HDR_SIZE,
  MLX5_IB_ATTR_GET_DATA_DIRECT_SYSFS_PATH,
  MLX5_IB_ATTR_REG_DMABUF_MR_ACCESS_FLAGS,
  MLX5_IB_METHOD_GET_DATA_DIRECT_SYSFS_PATH,
  RDMA_DRIVER,
  RDMA_VERBS_IOCTL,
  REG_DMABUF_MR_ALLOWED_ACCESS,
  UVERBS_ATTR_DESTROY_MR_HANDLE,
  UVERBS_ATTR_F_MANDATORY,
  UVERBS_ATTR_F_VALID_OUTPUT,
  UVERBS_ATTR_REG_DMABUF_MR,
  UVERBS_METHOD_MR,
  UVERBS_OBJECT,
  type UverbsAttr,
} from "../uapi.js";
import type { UserMemory } from "../user-memory.js";
import type { DmaHandle, FlagsAttr, IbDevice, IbMr, IbPd, RdmaEnv } from "./device.js";
import { getFlags32 } from "./flags.js";

type ObjType = "pd" | "mr";

interface UObject {
  id: number;
  type: ObjType;
  obj: IbPd | IbMr;
  /** Reserved by a NEW attribute, not yet committed. */
  committed: boolean;
}

/** The uverbs file of one opened device (`struct ib_uverbs_file` + its ucontext). */
export class UverbsFile {
  readonly objects = new Map<number, UObject>();
  private nextHandle = 0;
  /** The device went away (§6.1 step 7: -EIO). */
  disassociated = false;
  closed = false;

  constructor(
    readonly env: RdmaEnv,
    readonly dev: IbDevice,
    readonly mem: UserMemory,
  ) {}

  reserve(type: ObjType): UObject {
    const u: UObject = { id: this.nextHandle++, type, obj: null as unknown as IbPd, committed: false };
    this.objects.set(u.id, u);
    return u;
  }

  lookup(id: bigint, type: ObjType): UObject {
    const u = id <= 0xffff_ffffn ? this.objects.get(Number(id)) : undefined;
    if (!u?.committed) throw new KernelError("ENOENT", `no object with handle ${id}`);
    if (u.type !== type) throw new KernelError("EINVAL", `handle ${id} is a ${u.type}, not a ${type}`);
    return u;
  }

  /** The write()-path ALLOC_PD, typed (not framed in the model). Returns the handle. */
  allocPd(): number {
    if (this.disassociated) throw new KernelError("EIO", "device disassociated");
    const pd = this.dev.allocPd();
    const u = this.reserve("pd");
    u.obj = pd;
    u.committed = true;
    return u.id;
  }

  deallocPd(handle: number): void {
    const u = this.lookup(BigInt(handle), "pd");
    const pd = u.obj as IbPd;
    if (pd.usecnt > 0) throw new KernelError("EBUSY", `PD ${handle} still has ${pd.usecnt} MR(s)`);
    this.dev.deallocPd(pd);
    this.objects.delete(u.id);
  }

  pd(handle: number): IbPd {
    return this.lookup(BigInt(handle), "pd").obj as IbPd;
  }

  mr(handle: number): IbMr {
    return this.lookup(BigInt(handle), "mr").obj as IbMr;
  }

  /** Destroys every object (close, or device removal with `disassociate`): MRs first, then PDs. */
  *destroyAll(disassociate: boolean): Task<void> {
    for (const u of [...this.objects.values()]) {
      if (u.type !== "mr" || !u.committed) continue;
      this.objects.delete(u.id);
      yield* this.dev.deregMr(u.obj as IbMr);
    }
    for (const u of [...this.objects.values()]) {
      if (u.type === "pd" && u.committed) this.dev.deallocPd(u.obj as IbPd);
      this.objects.delete(u.id);
    }
    if (disassociate) this.disassociated = true;
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* method table                                                                                    */

export type AttrKind = "idr" | "ptr_in" | "ptr_out" | "flags_in";

export interface AttrSpec {
  id: number;
  kind: AttrKind;
  mandatory: boolean;
  idr?: { type: ObjType; access: "new" | "read" | "destroy" };
  minLen?: number;
  maxLen?: number;
}

export interface MethodSpec {
  objectId: number;
  methodId: number;
  name: string;
  attrs: AttrSpec[];
  handler(b: Bundle): Task<number>;
}

const A = UVERBS_ATTR_REG_DMABUF_MR;
const u64In = (id: number, mandatory = true): AttrSpec => ({
  id,
  kind: "ptr_in",
  mandatory,
  minLen: 8,
  maxLen: 8,
});
const u32Out = (id: number): AttrSpec => ({ id, kind: "ptr_out", mandatory: true, minLen: 4, maxLen: 4 });
/** `UVERBS_ATTR_FLAGS_IN`: at least 4 bytes (the handler accepts 4 or 8). */
const flagsIn = (id: number, mandatory = false): AttrSpec => ({
  id,
  kind: "flags_in",
  mandatory,
  minLen: 4,
  maxLen: 0xffff,
});

/** The methods this device's kernel answers (core + driver, by profile). */
export function buildUapi(dev: IbDevice, env: RdmaEnv): Map<number, MethodSpec> {
  const map = new Map<number, MethodSpec>();
  const add = (s: MethodSpec) => map.set((s.objectId << 16) | s.methodId, s);
  const mlx5 = dev.driverId === RDMA_DRIVER.MLX5;
  const regAttrs: AttrSpec[] = [
    { id: A.HANDLE, kind: "idr", mandatory: true, idr: { type: "mr", access: "new" } },
    { id: A.PD_HANDLE, kind: "idr", mandatory: true, idr: { type: "pd", access: "read" } },
    u64In(A.OFFSET),
    u64In(A.LENGTH),
    u64In(A.IOVA),
    { id: A.FD, kind: "ptr_in", mandatory: true, minLen: 4, maxLen: 4 },
    flagsIn(A.ACCESS_FLAGS),
    u32Out(A.RESP_LKEY),
    u32Out(A.RESP_RKEY),
  ];
  if (mlx5 && env.profile.hasMlx5DmabufAccessAttr)
    regAttrs.push(flagsIn(MLX5_IB_ATTR_REG_DMABUF_MR_ACCESS_FLAGS));
  add({
    objectId: UVERBS_OBJECT.MR,
    methodId: UVERBS_METHOD_MR.REG_DMABUF_MR,
    name: "UVERBS_METHOD_REG_DMABUF_MR",
    attrs: regAttrs,
    handler: regDmabufMrHandler,
  });
  add({
    objectId: UVERBS_OBJECT.MR,
    methodId: UVERBS_METHOD_MR.MR_DESTROY,
    name: "UVERBS_METHOD_MR_DESTROY",
    attrs: [
      {
        id: UVERBS_ATTR_DESTROY_MR_HANDLE,
        kind: "idr",
        mandatory: true,
        idr: { type: "mr", access: "destroy" },
      },
    ],
    handler: mrDestroyHandler,
  });
  if (mlx5 && env.profile.hasDataDirectSysfsMethod)
    add({
      objectId: UVERBS_OBJECT.DEVICE,
      methodId: MLX5_IB_METHOD_GET_DATA_DIRECT_SYSFS_PATH,
      name: "MLX5_IB_METHOD_GET_DATA_DIRECT_SYSFS_PATH",
      attrs: [
        {
          id: MLX5_IB_ATTR_GET_DATA_DIRECT_SYSFS_PATH,
          kind: "ptr_out",
          mandatory: true,
          minLen: 0,
          maxLen: 0xffff,
        },
      ],
      handler: sysfsPathHandler,
    });
  return map;
}

/* ---------------------------------------------------------------------------------------------- */
/* the attribute bundle                                                                            */

interface BundleAttr {
  spec: AttrSpec;
  uattr: UverbsAttr;
  index: number;
  uobj?: UObject;
  /** Pointer-in data longer than 8 bytes, copied from user memory. */
  bytes?: Uint8Array;
}

export class Bundle {
  readonly attrs = new Map<number, BundleAttr>();
  constructor(
    readonly file: UverbsFile,
    /** The ioctl argument (header + attributes). */
    readonly arg: UserBuffer,
  ) {}

  has(id: number): boolean {
    return this.attrs.has(id);
  }

  private need(id: number): BundleAttr {
    const a = this.attrs.get(id);
    if (!a) throw new KernelError("EINVAL", `attribute 0x${id.toString(16)} missing`);
    return a;
  }

  u64(id: number): bigint {
    return this.need(id).uattr.data;
  }

  s32(id: number): number {
    return Number(BigInt.asIntN(32, this.need(id).uattr.data & 0xffff_ffffn));
  }

  flags(id: number): FlagsAttr | undefined {
    const a = this.attrs.get(id);
    if (!a) return undefined;
    if (a.uattr.len <= 8) return { len: a.uattr.len, value: a.uattr.data };
    return { len: a.uattr.len, value: 0n };
  }

  obj(id: number): IbPd | IbMr {
    return this.need(id).uobj!.obj;
  }

  uobj(id: number): UObject {
    return this.need(id).uobj!;
  }

  outLen(id: number): number {
    return this.need(id).uattr.len;
  }

  /** `uverbs_copy_to`: at most the attribute's length, then VALID_OUTPUT in the user's attribute. */
  writeOut(id: number, data: Uint8Array): void {
    const a = this.need(id);
    const n = Math.min(data.length, a.uattr.len);
    this.file.mem.write(a.uattr.data, data.subarray(0, n), `attribute 0x${id.toString(16)}`);
    const flags = new Uint8Array(2);
    new DataView(flags.buffer).setUint16(0, a.uattr.flags | UVERBS_ATTR_F_VALID_OUTPUT, true);
    this.arg.copyToUser(IB_UVERBS_IOCTL_HDR_SIZE + IB_UVERBS_ATTR_SIZE * a.index + 4, flags, "attr flags");
  }
}

/** §6.1 step 8 for one attribute. */
function processAttr(file: UverbsFile, b: Bundle, spec: AttrSpec, ua: UverbsAttr, index: number): void {
  const entry: BundleAttr = { spec, uattr: ua, index };
  if (spec.kind === "idr") {
    if (ua.len !== 0)
      throw new KernelError("EINVAL", `IDR attribute 0x${spec.id.toString(16)} with len ${ua.len}`);
    const idr = spec.idr!;
    if (idr.access === "new") {
      const u = file.reserve(idr.type);
      entry.uobj = u;
      // the new handle is copied to user space right away
      const id = new Uint8Array(8);
      new DataView(id.buffer).setBigUint64(0, BigInt(u.id), true);
      try {
        b.arg.copyToUser(IB_UVERBS_IOCTL_HDR_SIZE + IB_UVERBS_ATTR_SIZE * index + 8, id, "new handle");
      } catch (e) {
        file.objects.delete(u.id);
        throw e;
      }
    } else entry.uobj = file.lookup(ua.data, idr.type);
  } else {
    const min = spec.minLen ?? 0;
    const max = spec.maxLen ?? 0xffff;
    if (ua.len < min || ua.len > max)
      throw new KernelError(
        "EINVAL",
        `attribute 0x${spec.id.toString(16)}: len ${ua.len} outside [${min}, ${max}]`,
        spec.id === MLX5_IB_ATTR_REG_DMABUF_MR_ACCESS_FLAGS ? "DD-25" : undefined,
      );
    if (ua.attrData !== 0)
      throw new KernelError("EINVAL", `attribute 0x${spec.id.toString(16)}: reserved field not zero`);
    if (spec.kind !== "ptr_out" && ua.len > 8)
      entry.bytes = file.mem.read(ua.data, ua.len, `attribute 0x${spec.id.toString(16)}`);
  }
  b.attrs.set(spec.id, entry);
}

/** Gives back reserved-but-uncommitted handles after a failure. */
function abortNew(file: UverbsFile, b: Bundle): void {
  for (const a of b.attrs.values())
    if (a.spec.idr?.access === "new" && a.uobj && !a.uobj.committed) file.objects.delete(a.uobj.id);
}

/**
 * `ib_uverbs_ioctl` for one call: the framework checks of §6.1 in order, then the handler. Errors
 * are thrown {@link KernelError}s; the return value is the handler's (0).
 */
export function* uverbsIoctl(
  file: UverbsFile,
  uapi: Map<number, MethodSpec>,
  cmd: number,
  arg: UserBuffer,
): Task<number> {
  // 1. (-ENOIOCTLCMD inside the kernel, ENOTTY for the caller)
  if (cmd >>> 0 !== RDMA_VERBS_IOCTL)
    throw new KernelError(
      "ENOTTY",
      `uverbs: ioctl 0x${(cmd >>> 0).toString(16)} is not RDMA_VERBS_IOCTL`,
      "DD-50",
    );
  // 2.
  const hdr = decodeUverbsHdr(arg.copyFromUser(0, IB_UVERBS_IOCTL_HDR_SIZE, "struct ib_uverbs_ioctl_hdr"));
  // 3.
  if (
    hdr.length > Number(PAGE_SIZE) ||
    hdr.length !== IB_UVERBS_IOCTL_HDR_SIZE + IB_UVERBS_ATTR_SIZE * hdr.numAttrs
  )
    throw new KernelError(
      "EINVAL",
      `header length ${hdr.length} does not match ${hdr.numAttrs} attributes`,
      "DD-48",
    );
  // 4.
  if (hdr.reserved1 !== 0n || hdr.reserved2 !== 0)
    throw new KernelError("EPROTONOSUPPORT", "reserved header fields not zero", "DD-15");
  // 5.
  if (hdr.driverId !== file.dev.driverId)
    throw new KernelError("EINVAL", `driver_id ${hdr.driverId} is not the device's (${file.dev.driverId})`);
  // 6.
  const method = uapi.get((hdr.objectId << 16) | hdr.methodId);
  if (!method)
    throw new KernelError(
      "EPROTONOSUPPORT",
      `no method ${hdr.methodId} on object ${hdr.objectId}`,
      hdr.objectId === UVERBS_OBJECT.DEVICE ? "DD-15" : undefined,
    );
  // 7.
  if (file.disassociated || file.dev.removed) throw new KernelError("EIO", "device disassociated");
  const av = arg.copyFromUser(
    IB_UVERBS_IOCTL_HDR_SIZE,
    IB_UVERBS_ATTR_SIZE * hdr.numAttrs,
    "struct ib_uverbs_attr array",
  );
  const b = new Bundle(file, arg);
  try {
    // 8.
    for (let i = 0; i < hdr.numAttrs; i++) {
      const ua = decodeAttrAt(av, IB_UVERBS_ATTR_SIZE * i);
      const spec = method.attrs.find((s) => s.id === ua.attrId);
      if (!spec) {
        if (ua.flags & UVERBS_ATTR_F_MANDATORY)
          throw new KernelError(
            "EPROTONOSUPPORT",
            `unknown mandatory attribute 0x${ua.attrId.toString(16)} for ${method.name}`,
            "DD-49",
          );
        continue;
      }
      if (b.has(ua.attrId))
        throw new KernelError("EINVAL", `attribute 0x${ua.attrId.toString(16)} given twice`, "DD-49");
      processAttr(file, b, spec, ua, i);
    }
    // 9.
    for (const s of method.attrs)
      if (s.mandatory && !b.has(s.id))
        throw new KernelError("EINVAL", `mandatory attribute 0x${s.id.toString(16)} missing`, "DD-15");
    // 10.
    try {
      return yield* method.handler(b);
    } catch (e) {
      if (e instanceof KernelError && e.errnoName === "EPROTONOSUPPORT") {
        file.env.machine.diag.warn("uverbs_handler", `${method.name} returned -EPROTONOSUPPORT`);
        throw new KernelError("EINVAL", `${method.name}: handler returned -EPROTONOSUPPORT`);
      }
      throw e;
    }
  } catch (e) {
    abortNew(file, b);
    throw e;
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* handlers                                                                                        */

/** REG_DMABUF_MR arguments as the core handler reads them. */
export interface RegDmabufParams {
  pd: IbPd;
  offset: bigint;
  length: bigint;
  iova: bigint;
  fd: number;
  access: FlagsAttr | undefined;
  mlx5Access?: FlagsAttr;
  dmah?: DmaHandle | null;
}

/** `ib_check_mr_access`: remote write or atomic need local write. */
export function ibCheckMrAccess(access: number): void {
  if (access & (IB_ACCESS.REMOTE_WRITE | IB_ACCESS.REMOTE_ATOMIC) && !(access & IB_ACCESS.LOCAL_WRITE))
    throw new KernelError("EINVAL", "remote write/atomic without local write", "DD-24");
}

/** §8.1 steps 1–7 (framing aside): the checks, then the driver. */
export function* regDmabufMrCore(file: UverbsFile, p: RegDmabufParams): Task<IbMr> {
  const dev = file.dev;
  // 1.
  if (!dev.regUserMrDmabuf)
    throw new KernelError("EOPNOTSUPP", `${dev.name} cannot register dma-buf MRs (no reg_user_mr_dmabuf)`);
  // 3.
  if (p.offset % PAGE_SIZE !== p.iova % PAGE_SIZE)
    throw new KernelError("EINVAL", "offset and iova have different page offsets", "DD-23");
  // 5.
  const access = getFlags32(p.access, REG_DMABUF_MR_ALLOWED_ACCESS, "ACCESS_FLAGS");
  // 6.
  ibCheckMrAccess(access);
  // 7.
  return yield* dev.regUserMrDmabuf({
    pd: p.pd,
    offset: p.offset,
    length: p.length,
    iova: p.iova,
    fd: p.fd,
    access,
    dmah: p.dmah ?? null,
    mlx5Access: p.mlx5Access,
  });
}

function u32le(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}

function* regDmabufMrHandler(b: Bundle): Task<number> {
  const file = b.file;
  const mr = yield* regDmabufMrCore(file, {
    pd: b.obj(A.PD_HANDLE) as IbPd,
    offset: b.u64(A.OFFSET),
    length: b.u64(A.LENGTH),
    iova: b.u64(A.IOVA),
    fd: b.s32(A.FD),
    access: b.flags(A.ACCESS_FLAGS),
    mlx5Access: b.flags(MLX5_IB_ATTR_REG_DMABUF_MR_ACCESS_FLAGS),
  });
  // 8. outputs, then commit; a failure here destroys the new MR
  try {
    b.writeOut(A.RESP_LKEY, u32le(mr.lkey));
    b.writeOut(A.RESP_RKEY, u32le(mr.rkey));
  } catch (e) {
    yield* file.dev.deregMr(mr);
    throw e;
  }
  const u = b.uobj(A.HANDLE);
  u.obj = mr;
  u.committed = true;
  return 0;
}

function* mrDestroyHandler(b: Bundle): Task<number> {
  const u = b.uobj(UVERBS_ATTR_DESTROY_MR_HANDLE);
  b.file.objects.delete(u.id);
  yield* b.file.dev.deregMr(u.obj as IbMr);
  return 0;
}

function* sysfsPathHandler(b: Bundle): Task<number> {
  const dev = b.file.dev;
  if (!dev.dataDirectSysfsPath) throw new KernelError("EOPNOTSUPP", `${dev.name} has no data-direct path`);
  const bytes = yield* dev.dataDirectSysfsPath(b.outLen(MLX5_IB_ATTR_GET_DATA_DIRECT_SYSFS_PATH));
  b.writeOut(MLX5_IB_ATTR_GET_DATA_DIRECT_SYSFS_PATH, bytes);
  return 0;
}
