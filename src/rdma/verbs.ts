/**
 * rdma-core as a C program sees it (libibverbs + the mlx5 provider; rdma-data-direct.md §11): the
 * calls encode the exact ioctl bytes rdma-core would (`uapi.ts`), go through the machine's uverbs fd
 * and decode the answer, with rdma-core's return conventions: registration calls return an MR or
 * `null` with {@link RdmaCore.errno} set; `ibv_dereg_mr` and the `mlx5dv_*` query return 0 or a
 * positive errno; `ibv_rereg_mr` returns `IBV_REREG_MR_ERR_INPUT` (-1) with errno for bad input.
 */
import { ERRNO } from "../core/errno.js";
import { KernelError } from "../core/errors.js";
import { UserBuffer } from "../core/file.js";
import type { IbDevice } from "./core/device.js";
import type { Rdma } from "./rdma.js";
import {
  attrInObj,
  attrOut,
  decodeUverbsIoctl,
  encodeRegDmabufMr,
  encodeUverbsIoctl,
  IB_UVERBS_ATTR_SIZE,
  IB_UVERBS_IOCTL_HDR_SIZE,
  IBV_REREG_MR_ERR_INPUT,
  MLX5_IB_ATTR_GET_DATA_DIRECT_SYSFS_PATH,
  MLX5_IB_METHOD_GET_DATA_DIRECT_SYSFS_PATH,
  RDMA_DRIVER,
  RDMA_VERBS_IOCTL,
  type RegDmabufMrCall,
  UVERBS_ATTR_DESTROY_MR_HANDLE,
  UVERBS_METHOD_MR,
  UVERBS_OBJECT,
} from "./uapi.js";

export interface IbvContext {
  readonly lib: RdmaCore;
  readonly fd: number;
  readonly deviceName: string;
  /** The provider library rdma-core loaded for the device. */
  readonly provider: "mlx5" | "rxe";
  readonly driverId: number;
}

export interface IbvPd {
  readonly context: IbvContext;
  readonly handle: number;
}

export type IbvMrType = "MR" | "NULL_MR" | "IMPORTED_MR" | "DMABUF_MR";

export interface IbvMr {
  readonly context: IbvContext;
  readonly pd: IbvPd;
  readonly handle: number;
  readonly lkey: number;
  readonly rkey: number;
  /** `ibv_reg_dmabuf_mr` sets this to the dma-buf offset, not the IOVA. */
  readonly addr: bigint;
  readonly length: bigint;
  readonly mrType: IbvMrType;
}

/** One ioctl the library issued (its bytes as sent, and the outcome). */
export interface IoctlTrace {
  cmd: number;
  bytes: Uint8Array;
  errno: number;
  /** The kernel check that failed (what dmesg or a tracepoint would tell), when errno is set. */
  why?: string;
}

/** The library state of one process: `errno` and a trace of the ioctls it issued. */
export class RdmaCore {
  errno = 0;
  readonly trace: IoctlTrace[] = [];
  constructor(readonly rdma: Rdma) {}

  /** `ibv_get_device_list` (names). */
  deviceNames(): string[] {
    return this.rdma.devices.map((d) => d.name);
  }

  /** `execute_ioctl`: 0 or the positive errno; the argument bytes are updated in place. */
  executeIoctl(ctx: IbvContext, bytes: Uint8Array): number {
    const arg = new UserBuffer(bytes);
    const t: IoctlTrace = { cmd: RDMA_VERBS_IOCTL, bytes: Uint8Array.from(bytes), errno: 0 };
    this.trace.push(t);
    try {
      this.rdma.ioctl(ctx.fd, RDMA_VERBS_IOCTL, arg);
      return 0;
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      t.errno = e.errno;
      t.why = e.spec ? `${e.check} [${e.spec}]` : e.check;
      return e.errno;
    }
  }

  fail<T>(errno: number): T | null {
    this.errno = errno;
    return null;
  }
}

const providerOf = (d: IbDevice): "mlx5" | "rxe" => (d.driverId === RDMA_DRIVER.MLX5 ? "mlx5" : "rxe");

/** `ibv_open_device`. */
export function ibvOpenDevice(lib: RdmaCore, name: string): IbvContext | null {
  const dev = lib.rdma.devices.find((d) => d.name === name);
  if (!dev) return lib.fail(ERRNO.ENODEV);
  try {
    const fd = lib.rdma.openDevice(dev);
    return { lib, fd, deviceName: name, provider: providerOf(dev), driverId: dev.driverId };
  } catch (e) {
    if (e instanceof KernelError) return lib.fail(e.errno);
    throw e;
  }
}

/** `ibv_close_device`. */
export function ibvCloseDevice(ctx: IbvContext): number {
  ctx.lib.rdma.close(ctx.fd);
  return 0;
}

/** `ibv_alloc_pd` (the write path, not framed in the model). */
export function ibvAllocPd(ctx: IbvContext): IbvPd | null {
  try {
    return { context: ctx, handle: ctx.lib.rdma.fileOf(ctx.fd).allocPd() };
  } catch (e) {
    if (e instanceof KernelError) return ctx.lib.fail(e.errno);
    throw e;
  }
}

/** `ibv_dealloc_pd`: 0 or errno. */
export function ibvDeallocPd(pd: IbvPd): number {
  try {
    pd.context.lib.rdma.fileOf(pd.context.fd).deallocPd(pd.handle);
    return 0;
  } catch (e) {
    if (e instanceof KernelError) return e.errno;
    throw e;
  }
}

/** `ibv_cmd_reg_dmabuf_mr` with an optional driver attribute (mlx5's 0x1000). */
function cmdRegDmabufMr(
  pd: IbvPd,
  offset: bigint,
  length: bigint,
  iova: bigint,
  fd: number,
  access: number,
  mlx5Access: number | undefined,
): IbvMr | null {
  const ctx = pd.context;
  const lib = ctx.lib;
  const mem = lib.rdma.userMem;
  const lkeyPtr = mem.alloc(4);
  const rkeyPtr = mem.alloc(4);
  const call: RegDmabufMrCall = {
    driverId: ctx.driverId,
    pdHandle: pd.handle,
    offset,
    length,
    iova,
    fd,
    access,
    lkeyPtr,
    rkeyPtr,
  };
  if (mlx5Access !== undefined) call.mlx5Access = mlx5Access;
  const bytes = encodeRegDmabufMr(call);
  const err = lib.executeIoctl(ctx, bytes);
  const lk = mem.view(lkeyPtr);
  const rk = mem.view(rkeyPtr);
  mem.free(lkeyPtr);
  mem.free(rkeyPtr);
  if (err) return lib.fail(err);
  const { attrs } = decodeUverbsIoctl(bytes);
  const rd = (b: Uint8Array | undefined) =>
    b ? new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true) : 0;
  return {
    context: ctx,
    pd,
    handle: Number(attrs[0].data),
    lkey: rd(lk),
    rkey: rd(rk),
    addr: offset,
    length,
    mrType: "DMABUF_MR",
  };
}

/** `ibv_reg_dmabuf_mr`: the MR, or null with errno. */
export function ibvRegDmabufMr(
  pd: IbvPd,
  offset: bigint,
  length: bigint,
  iova: bigint,
  fd: number,
  access: number,
): IbvMr | null {
  return cmdRegDmabufMr(pd, offset, length, iova, fd, access, undefined);
}

/**
 * `mlx5dv_reg_dmabuf_mr`: EOPNOTSUPP on a non-mlx5 device; otherwise REG_DMABUF_MR with attribute
 * 0x1000 always present (MANDATORY, 4 bytes), even for `mlx5Access = 0`.
 */
export function mlx5dvRegDmabufMr(
  pd: IbvPd,
  offset: bigint,
  length: bigint,
  iova: bigint,
  fd: number,
  access: number,
  mlx5Access: number,
): IbvMr | null {
  if (pd.context.provider !== "mlx5") return pd.context.lib.fail(ERRNO.EOPNOTSUPP);
  return cmdRegDmabufMr(pd, offset, length, iova, fd, access, mlx5Access);
}

/** `ibv_dereg_mr`: 0 or the errno. */
export function ibvDeregMr(mr: IbvMr): number {
  const ctx = mr.context;
  const bytes = encodeUverbsIoctl({
    objectId: UVERBS_OBJECT.MR,
    methodId: UVERBS_METHOD_MR.MR_DESTROY,
    driverId: ctx.driverId,
    attrs: [attrInObj(UVERBS_ATTR_DESTROY_MR_HANDLE, mr.handle)],
  });
  let err = ctx.lib.executeIoctl(ctx, bytes);
  // verbs_is_destroy_err: EIO means the device was disassociated and the kernel already destroyed it
  if (err === ERRNO.EIO) err = 0;
  if (err) ctx.lib.errno = err;
  return err;
}

/** `ibv_rereg_mr` flags. */
export const IBV_REREG_MR = { CHANGE_TRANSLATION: 1, CHANGE_PD: 2, CHANGE_ACCESS: 4 } as const;

/** `ibv_rereg_mr`: only plain MRs; anything else → IBV_REREG_MR_ERR_INPUT with errno EINVAL (DD-47). */
export function ibvReregMr(
  mr: IbvMr,
  flags: number,
  _pd: IbvPd | null,
  _addr: bigint,
  _length: bigint,
  _access: number,
): number {
  const lib = mr.context.lib;
  if (flags & ~7 || flags === 0 || mr.mrType !== "MR") {
    lib.errno = ERRNO.EINVAL;
    return IBV_REREG_MR_ERR_INPUT;
  }
  // plain (user-memory) MRs are not modelled
  lib.errno = ERRNO.EOPNOTSUPP;
  return IBV_REREG_MR_ERR_INPUT;
}

/**
 * `mlx5dv_get_data_direct_sysfs_path(ctx, buf, buf_len)`: 0 with the NUL-terminated path in `buf`,
 * or a positive errno (ENODEV, ENOSPC, EOPNOTSUPP for a non-mlx5 provider, EPROTONOSUPPORT for a
 * kernel without the method). `buf` is only written by the kernel on success.
 */
export function mlx5dvGetDataDirectSysfsPath(ctx: IbvContext, buf: Uint8Array, bufLen = buf.length): number {
  if (ctx.provider !== "mlx5") return ERRNO.EOPNOTSUPP;
  const mem = ctx.lib.rdma.userMem;
  const ptr = mem.alloc(bufLen, buf);
  const bytes = encodeUverbsIoctl({
    objectId: UVERBS_OBJECT.DEVICE,
    methodId: MLX5_IB_METHOD_GET_DATA_DIRECT_SYSFS_PATH,
    driverId: ctx.driverId,
    attrs: [attrOut(MLX5_IB_ATTR_GET_DATA_DIRECT_SYSFS_PATH, ptr, bufLen)],
  });
  const err = ctx.lib.executeIoctl(ctx, bytes);
  const out = mem.view(ptr);
  if (out) buf.set(out.subarray(0, Math.min(buf.length, out.length)));
  mem.free(ptr);
  return err;
}

/** The path in a buffer filled by {@link mlx5dvGetDataDirectSysfsPath}. */
export function cStringOf(buf: Uint8Array): string {
  const nul = buf.indexOf(0);
  return new TextDecoder().decode(nul < 0 ? buf : buf.subarray(0, nul));
}

/** Offsets into an encoded call, for tests that edit single fields. */
export const UVERBS_ATTR_OFFSET = (i: number) => IB_UVERBS_IOCTL_HDR_SIZE + IB_UVERBS_ATTR_SIZE * i;
