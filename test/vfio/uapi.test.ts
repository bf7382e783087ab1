import assert from "node:assert/strict";
import { test } from "node:test";
import { O_CLOEXEC } from "../../src/core/file.js";
import {
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SET_NAME_A,
  DMA_BUF_SET_NAME_B,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_WRITE,
} from "../../src/dmabuf/dma-buf.js";
import {
  decodeFeatureDmaBuf,
  encodeFeatureDmaBuf,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_MASK,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_FEATURE,
  VFIO_IOCTL,
  VFIO_PCI_REGION,
  vfioRegionOffset,
} from "../../src/vfio/index.js";
import { page, vfioF } from "../helpers/vfio-f.js";

test("K-1 ioctl numbers: FEATURE 0x3B75, RESET 0x3B6F, PCI_HOT_RESET 0x3B71, BIND_IOMMUFD 0x3B76, GET_REGION_INFO 0x3B6C", () => {
  assert.equal(VFIO_IOCTL.VFIO_DEVICE_FEATURE, 0x3b75);
  assert.equal(VFIO_IOCTL.VFIO_DEVICE_RESET, 0x3b6f);
  assert.equal(VFIO_IOCTL.VFIO_DEVICE_PCI_HOT_RESET, 0x3b71);
  assert.equal(VFIO_IOCTL.VFIO_DEVICE_BIND_IOMMUFD, 0x3b76);
  assert.equal(VFIO_IOCTL.VFIO_DEVICE_GET_REGION_INFO, 0x3b6c);
});

test("K-2 feature flags MASK 0xFFFF, GET 0x10000, SET 0x20000, PROBE 0x40000; DMA_BUF 11, low power 3/4/5, BUS_MASTER 10", () => {
  assert.deepEqual(
    [VFIO_DEVICE_FEATURE_MASK, VFIO_DEVICE_FEATURE_GET, VFIO_DEVICE_FEATURE_SET, VFIO_DEVICE_FEATURE_PROBE],
    [0xffff, 0x10000, 0x20000, 0x40000],
  );
  assert.equal(VFIO_FEATURE.DMA_BUF, 11);
  assert.deepEqual(
    [
      VFIO_FEATURE.LOW_POWER_ENTRY,
      VFIO_FEATURE.LOW_POWER_ENTRY_WITH_WAKEUP,
      VFIO_FEATURE.LOW_POWER_EXIT,
      VFIO_FEATURE.BUS_MASTER,
    ],
    [3, 4, 5, 10],
  );
});

test("K-3 layout: 2 ranges → 56-byte argument, argsz 56, flags 0x1000B; fields at their offsets", () => {
  const b = encodeFeatureDmaBuf({
    regionIndex: 4,
    openFlags: O_CLOEXEC,
    ranges: [
      { offset: 0x1000n, length: 0x2000n },
      { offset: 0n, length: 0x1000n },
    ],
  });
  assert.equal(b.length, 56);
  const v = new DataView(b.buffer);
  assert.equal(v.getUint32(0, true), 56);
  assert.equal(v.getUint32(4, true), 0x1000b);
  assert.equal(v.getUint32(8, true), 4); // region_index
  assert.equal(v.getUint32(12, true), O_CLOEXEC); // open_flags
  assert.equal(v.getUint32(16, true), 0); // flags
  assert.equal(v.getUint32(20, true), 2); // nr_ranges
  assert.equal(v.getBigUint64(24, true), 0x1000n); // ranges[0].offset
  assert.equal(v.getBigUint64(32, true), 0x2000n); // ranges[0].length
  assert.equal(v.getBigUint64(40, true), 0n);
  assert.equal(v.getBigUint64(48, true), 0x1000n);
  assert.deepEqual(decodeFeatureDmaBuf(b).ranges, [
    { offset: 0x1000n, length: 0x2000n },
    { offset: 0n, length: 0x1000n },
  ]);
});

test("K-5 dma-buf ioctls: SYNC 0x40086200, SET_NAME_A 0x40046201, SET_NAME_B 0x40086201; sync flags READ 1 WRITE 2 END 4", () => {
  assert.deepEqual(
    [DMA_BUF_IOCTL_SYNC, DMA_BUF_SET_NAME_A, DMA_BUF_SET_NAME_B],
    [0x40086200, 0x40046201, 0x40086201],
  );
  assert.deepEqual([DMA_BUF_SYNC_READ, DMA_BUF_SYNC_WRITE, DMA_BUF_SYNC_END], [1, 2, 4]);
});

test("K-9 region indexes ROM 6, CONFIG 7, VGA 8; BAR4's region offset is 4 << 40 = 0x400_0000_0000", () => {
  assert.deepEqual([VFIO_PCI_REGION.ROM, VFIO_PCI_REGION.CONFIG, VFIO_PCI_REGION.VGA], [6, 7, 8]);
  assert.equal(vfioRegionOffset(4), 0x400_0000_0000n);
});

test("K-10 a VFIO export's exp_name is vfio_pci_core; fdinfo of a 2-page buffer reports size 8192", () => {
  const t = vfioF();
  const { fd, buf } = t.exportBuf(0, [{ offset: 0n, length: page(2) }]);
  assert.equal(buf.expName, "vfio_pci_core");
  const info = t.m.fds.peek(fd)!.ops.fdinfo!(t.m.fds.peek(fd)!);
  assert.equal(info.size, 8192);
  assert.equal(info.exp_name, "vfio_pci_core");
  assert.equal(info.count, 0, "only the fd's reference");
});
