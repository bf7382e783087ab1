/**
 * Post-6.19 VFIO features behind variant flags (kernel-semantics §12.4, §12.5; tph-and-tlp §5.2):
 * TPH on a dma-buf, permanent revoke, and the mmap memory attribute. Feature numbers were still
 * contested on the lists; they live here, in one place.
 */
import { KernelError } from "../core/errors.js";
import type { UserBuffer } from "../core/file.js";
import type { DmaBuf } from "../dmabuf/dma-buf.js";
import type { Machine } from "../machine/machine.js";
import { TphCore } from "../pci/tph.js";
import { vfioCheckFeature } from "./check-feature.js";
import { VfioDmaBuf } from "./dma-buf.js";
import { FEATURE_HEADER_SIZE, VFIO_DEVICE_FEATURE_SET } from "./uapi/vfio.js";
import type { VfioPciDevice } from "./vfio.js";

export const VFIO_DEVICE_FEATURE_DMA_BUF_TPH = 13;
export const VFIO_DMA_BUF_TPH_ST = 1 << 0;
export const VFIO_DMA_BUF_TPH_ST_EXT = 1 << 1;
/** RFC numbering; moved past TPH's 13 when both variants are on (docs/deviations.md). */
export const VFIO_DEVICE_FEATURE_DMA_BUF_REVOKE = (tph: boolean) => (tph ? 14 : 13);
export const VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR = (tph: boolean) => (tph ? 15 : 14);

/**
 * Runs `body` on the dma-buf behind `fd` if this device exported it (dma_buf_get semantics for the
 * errno), holding a reference for the call.
 */
function withOwnBuffer(
  m: Machine,
  vdev: VfioPciDevice,
  fd: number,
  foreign: "EINVAL" | "ENODEV",
  body: (buf: DmaBuf, p: VfioDmaBuf) => void,
): void {
  const buf = m.dmabuf.get(m.fds, fd); // -EBADF, -EINVAL
  try {
    const p = buf.priv;
    if (!(p instanceof VfioDmaBuf)) throw new KernelError("EINVAL", `descriptor ${fd} is not a VFIO dma-buf`);
    if (p.vdev !== vdev) throw new KernelError(foreign, `descriptor ${fd} was exported by another device`);
    body(buf, p);
  } finally {
    m.dmabuf.put(buf);
  }
}

/** VFIO_DEVICE_FEATURE_DMA_BUF_TPH (SET only, 12-byte payload). */
export function featureDmaBufTph(
  vdev: VfioPciDevice,
  flags: number,
  arg: UserBuffer,
  dataLen: number,
): number {
  const m = vdev.vfio.machine;
  const completer = new TphCore(m.fabric).pcieTphCompleterType(vdev.pdev);
  const v9 = m.kernel.tphSeriesVersion === "v9";
  if (v9 && completer === 0) throw new KernelError("EOPNOTSUPP", "device is not a TPH completer", "K-190");
  if (vfioCheckFeature(flags, dataLen, VFIO_DEVICE_FEATURE_SET, 12) === 0) return 0;
  const d = arg.copyFromUser(FEATURE_HEADER_SIZE, 12, "struct vfio_device_feature_dma_buf_tph");
  const fd = d.getInt32(0, true);
  const tflags = d.getUint32(4, true);
  const stExt = d.getUint16(8, true);
  const st = d.getUint8(10);
  const ph = d.getUint8(11);
  if (tflags & ~(VFIO_DMA_BUF_TPH_ST | VFIO_DMA_BUF_TPH_ST_EXT))
    throw new KernelError("EINVAL", "unknown TPH flags", "TPH-22");
  if (ph > 3) throw new KernelError("EINVAL", "processing hint above 3", "TPH-22");
  if (!v9 && completer === 0) throw new KernelError("EOPNOTSUPP", "device is not a TPH completer", "TPH-23");
  if (tflags & VFIO_DMA_BUF_TPH_ST_EXT && completer !== 3)
    throw new KernelError("EOPNOTSUPP", "extended steering tags need a TPH-and-extended completer", "TPH-23");
  withOwnBuffer(m, vdev, fd, "EINVAL", (buf, p) =>
    buf.resv.with(() => {
      p.tph = {
        stValid: (tflags & VFIO_DMA_BUF_TPH_ST) !== 0,
        stExtValid: (tflags & VFIO_DMA_BUF_TPH_ST_EXT) !== 0,
        st,
        stExt,
        ph,
      };
    }),
  );
  return 0;
}

/** VFIO_DEVICE_FEATURE_DMA_BUF_REVOKE (SET, `{ s32 dmabuf_fd }`): permanent revoke. */
export function featureDmaBufRevoke(
  vdev: VfioPciDevice,
  flags: number,
  arg: UserBuffer,
  dataLen: number,
): number {
  const m = vdev.vfio.machine;
  if (vfioCheckFeature(flags, dataLen, VFIO_DEVICE_FEATURE_SET, 4) === 0) return 0;
  const fd = arg.copyFromUser(FEATURE_HEADER_SIZE, 4, "dmabuf_fd").getInt32(0, true);
  withOwnBuffer(m, vdev, fd, "ENODEV", (buf, p) => {
    if (p.permRevoked) throw new KernelError("EBADFD", "buffer already revoked", "K-191");
    vdev.withMemoryLock(() =>
      buf.resv.with(() => {
        p.permRevoked = true;
        p.revoked = true;
        m.log.emit({ kind: "revoke", device: vdev.bdf, dmabuf: buf.label, cause: "DMA_BUF_REVOKE" });
        m.dmabuf.moveNotify(buf);
      }),
    );
  });
  return 0;
}

/** VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR (SET, `{ s32 dmabuf_fd; u32 memattr }`). */
export function featureDmaBufMemattr(
  vdev: VfioPciDevice,
  flags: number,
  arg: UserBuffer,
  dataLen: number,
): number {
  const m = vdev.vfio.machine;
  if (vfioCheckFeature(flags, dataLen, VFIO_DEVICE_FEATURE_SET, 8) === 0) return 0;
  const d = arg.copyFromUser(FEATURE_HEADER_SIZE, 8, "struct vfio_device_feature_dma_buf_memattr");
  const fd = d.getInt32(0, true);
  const memattr = d.getUint32(4, true);
  if (memattr > 1)
    throw new KernelError("ENOENT", `memory attribute ${memattr} is not supported (NC 0, WC 1)`, "K-192");
  withOwnBuffer(m, vdev, fd, "ENODEV", (buf, p) =>
    buf.resv.with(() => {
      p.memattr = memattr;
    }),
  );
  return 0;
}

/** Registers the features the machine's kernel profile turns on. */
export function registerVariantFeatures(m: Machine): void {
  const k = m.kernel;
  if (k.tphFeature) m.vfioFeatures[VFIO_DEVICE_FEATURE_DMA_BUF_TPH] = featureDmaBufTph;
  if (k.revokeFeature) m.vfioFeatures[VFIO_DEVICE_FEATURE_DMA_BUF_REVOKE(k.tphFeature)] = featureDmaBufRevoke;
  if (k.memattrFeature)
    m.vfioFeatures[VFIO_DEVICE_FEATURE_DMA_BUF_MEMATTR(k.tphFeature)] = featureDmaBufMemattr;
}

/** The 12-byte TPH payload after the feature header (TPH-21). */
export function encodeDmaBufTph(a: {
  fd: number;
  flags: number;
  st?: number;
  stExt?: number;
  ph?: number;
  argsz?: number;
  featureFlags?: number;
}): Uint8Array {
  const b = new Uint8Array(FEATURE_HEADER_SIZE + 12);
  const v = new DataView(b.buffer);
  v.setUint32(0, a.argsz ?? b.length, true);
  v.setUint32(4, a.featureFlags ?? VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_BUF_TPH, true);
  v.setInt32(8, a.fd, true);
  v.setUint32(12, a.flags, true);
  v.setUint16(16, a.stExt ?? 0, true);
  v.setUint8(18, a.st ?? 0);
  v.setUint8(19, a.ph ?? 0);
  return b;
}
