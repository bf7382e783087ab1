/** Fabric F booted with EPa opened through vfio-pci (kernel-semantics §13.0), plus small test tools. */
import { KernelBug, KernelError } from "../../src/core/errors.js";
import { UserBuffer } from "../../src/core/file.js";
import type { DmaDevice } from "../../src/dma/device.js";
import type { DmaBuf } from "../../src/dmabuf/dma-buf.js";
import { DynamicImporter, type ImporterOptions } from "../../src/dmabuf/importer.js";
import type { MachineInput } from "../../src/import/machine-schema.js";
import { type KernelProfile, Machine } from "../../src/machine/index.js";
import type { CpuInfo } from "../../src/pci/fabric.js";
import {
  type DmaRange,
  encodeFeature,
  encodeFeatureDmaBuf,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_FEATURE,
  VFIO_IOCTL,
} from "../../src/vfio/index.js";
import { BDF, type FName, specF } from "./spec-f.js";

export interface Outcome {
  ret: number;
  errno: string | null;
}

/** Runs a kernel call the way an ioctl reports it: the return value or the errno name. */
export function call(fn: () => unknown): Outcome {
  try {
    const r = fn();
    return { ret: typeof r === "number" ? r : 0, errno: null };
  } catch (e) {
    if (e instanceof KernelError) return { ret: -e.errno, errno: e.errnoName };
    throw e;
  }
}

export function isBug(fn: () => unknown): boolean {
  try {
    fn();
    return false;
  } catch (e) {
    if (e instanceof KernelBug) return true;
    throw e;
  }
}

export interface VfioFOptions {
  mutate?: (m: MachineInput) => void;
  kernel?: Partial<KernelProfile>;
  cpu?: CpuInfo;
  maxFds?: number;
  /** Open EPa at setup (default true). */
  open?: boolean;
}

/** MN=y unless a test says otherwise (§13 conventions). */
export function vfioF(o: VfioFOptions = {}) {
  const { fabric, dev } = specF(o.mutate);
  const m = new Machine(fabric, { kernel: { moveNotify: true, ...o.kernel }, cpu: o.cpu, maxFds: o.maxFds });
  const fd = o.open === false ? -1 : m.vfio.open(BDF.EPa);
  const vdev = o.open === false ? null : m.vfio.deviceOf(fd);
  const t = {
    m,
    dev,
    fd,
    vdev: vdev!,
    ioctl(cmd: number, bytes: Uint8Array | null, onFd = fd): Outcome {
      return call(() => m.vfio.ioctl(onFd, cmd, new UserBuffer(bytes)));
    },
    feature(bytes: Uint8Array | null, onFd = fd): Outcome {
      return t.ioctl(VFIO_IOCTL.VFIO_DEVICE_FEATURE, bytes, onFd);
    },
    /** Exports `ranges` of `region`; returns the outcome (ret = fd on success). */
    exportRanges(
      region: number,
      ranges: DmaRange[],
      extra: Partial<Parameters<typeof encodeFeatureDmaBuf>[0]> = {},
      onFd = fd,
    ): Outcome {
      return t.feature(encodeFeatureDmaBuf({ regionIndex: region, ranges, ...extra }), onFd);
    },
    /** Exports and returns the buffer, failing the test on an error. */
    exportBuf(region: number, ranges: DmaRange[], onFd = fd): { fd: number; buf: DmaBuf } {
      const r = t.exportRanges(region, ranges, {}, onFd);
      if (r.errno) throw new Error(`export failed: ${r.errno}`);
      return { fd: r.ret, buf: t.buf(r.ret) };
    },
    buf(bufFd: number): DmaBuf {
      return m.fds.peek(bufFd)!.priv as DmaBuf;
    },
    importer(on: FName | DmaDevice, label: string, opts: ImporterOptions = {}): DynamicImporter {
      return new DynamicImporter(m.dmabuf, typeof on === "string" ? dev[on] : on, label, opts);
    },
    configWrite(offset: number, size: 1 | 2 | 4, value: number, onFd = fd): Outcome {
      return call(() => m.vfio.configWrite(onFd, offset, size, value));
    },
    reset(onFd = fd): Outcome {
      return t.ioctl(VFIO_IOCTL.VFIO_DEVICE_RESET, new Uint8Array(0), onFd);
    },
    lowPower(
      index: 3 | 4 | 5,
      flags = VFIO_DEVICE_FEATURE_GET << 1,
      data: Uint8Array = new Uint8Array(0),
    ): Outcome {
      return t.feature(encodeFeature(flags | index, data));
    },
  };
  return t;
}

export const page = (n: number) => BigInt(n) * 0x1000n;
export const GET_DMABUF = VFIO_DEVICE_FEATURE_GET | VFIO_FEATURE.DMA_BUF;
