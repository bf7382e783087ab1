/** §13.2 Generic VFIO_DEVICE_FEATURE validation (device EPa). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { UserBuffer } from "../../src/core/file.js";
import {
  encodeFeature,
  encodeFeatureDmaBuf,
  VFIO_DEVICE_FEATURE_GET as GET,
  VFIO_DEVICE_FEATURE_PROBE as PROBE,
  VFIO_DEVICE_FEATURE_SET as SET,
  VFIO_IOCTL,
} from "../../src/vfio/index.js";
import { BDF } from "../helpers/spec-f.js";
import { call, page, vfioF } from "../helpers/vfio-f.js";

const DMA_BUF = 11;
const one = [{ offset: 0n, length: page(1) }];
const req = (flags: number, argsz?: number) =>
  encodeFeatureDmaBuf({ regionIndex: 0, ranges: one, flags, argsz });

test("K-11 argsz 7, GET|11 → -EINVAL", () => {
  assert.equal(vfioF().feature(req(GET | DMA_BUF, 7)).errno, "EINVAL");
});

test("K-12 GET|11 with unknown flag bit 19 → -EINVAL", () => {
  assert.equal(vfioF().feature(req(GET | DMA_BUF | 0x80000)).errno, "EINVAL");
});

test("K-13 GET|SET|11 without PROBE → -EINVAL", () => {
  assert.equal(vfioF().feature(req(GET | SET | DMA_BUF)).errno, "EINVAL");
});

test("K-14 PROBE|GET|SET|11 → -EINVAL (DMA_BUF has no SET)", () => {
  assert.equal(vfioF().feature(req(PROBE | GET | SET | DMA_BUF)).errno, "EINVAL");
});

test("K-15 PROBE|GET|11 with argsz 8 → 0; no fd created, dmabufs unchanged", () => {
  const t = vfioF();
  const before = t.m.fds.size;
  assert.deepEqual(t.feature(encodeFeature(PROBE | GET | DMA_BUF)), { ret: 0, errno: null });
  assert.equal(t.m.fds.size, before);
  assert.equal(t.vdev.dmabufs.length, 0);
});

test("K-16 PROBE|11 (neither GET nor SET), argsz 8 → 0", () => {
  assert.deepEqual(vfioF().feature(encodeFeature(PROBE | DMA_BUF)), { ret: 0, errno: null });
});

test("K-17 PROBE|SET|11 → -EINVAL", () => {
  assert.equal(vfioF().feature(encodeFeature(PROBE | SET | DMA_BUF)).errno, "EINVAL");
});

test("K-18 flags 11 alone, argsz 24 → -EINVAL", () => {
  assert.equal(vfioF().feature(req(DMA_BUF, 24)).errno, "EINVAL");
});

test("K-19 SET|11, argsz 24 → -EINVAL", () => {
  assert.equal(vfioF().feature(req(SET | DMA_BUF, 24)).errno, "EINVAL");
});

test("K-20 GET|12 and GET|0xFFFF → -ENOTTY", () => {
  const t = vfioF();
  assert.equal(t.feature(encodeFeature(GET | 12)).errno, "ENOTTY");
  assert.equal(t.feature(encodeFeature(GET | 0xffff)).errno, "ENOTTY");
});

test("K-21 header pointer not readable → -EFAULT", () => {
  assert.equal(vfioF().feature(null).errno, "EFAULT");
  assert.equal(vfioF().feature(new Uint8Array(4)).errno, "EFAULT");
});

test("K-22 cdev-opened device fd not yet bound to iommufd: any FEATURE call → -EINVAL", () => {
  const t = vfioF({ open: false });
  const fd = t.m.vfio.open(BDF.EPa, { cdev: true });
  assert.equal(t.feature(req(GET | DMA_BUF), fd).errno, "EINVAL");
  assert.equal(t.feature(encodeFeature(PROBE | GET | DMA_BUF), fd).errno, "EINVAL");
  assert.equal(
    call(() => t.m.vfio.ioctl(fd, VFIO_IOCTL.VFIO_DEVICE_BIND_IOMMUFD, new UserBuffer(new Uint8Array(0))))
      .errno,
    null,
  );
  assert.equal(t.feature(req(GET | DMA_BUF), fd).errno, null, "bound now");
});

test("K-23 variant driver without get_dmabuf_phys: GET|11 and PROBE|GET|11 → -EOPNOTSUPP; generic checks first", () => {
  const t = vfioF({ open: false });
  t.m.vfio.bind(t.dev.EPa, "mlx5-vfio-pci");
  const fd = t.m.vfio.open(BDF.EPa);
  assert.equal(t.feature(req(GET | DMA_BUF), fd).errno, "EOPNOTSUPP");
  assert.equal(t.feature(encodeFeature(PROBE | GET | DMA_BUF), fd).errno, "EOPNOTSUPP");
  assert.equal(t.feature(req(GET | SET | DMA_BUF), fd).errno, "EINVAL");
  assert.equal(t.feature(req(GET | DMA_BUF, 7), fd).errno, "EINVAL");
});

test("K-24 CONFIG_VFIO_PCI_DMABUF=n: GET|11 → -ENOTTY", () => {
  assert.equal(vfioF({ kernel: { vfioPciDmabuf: false } }).feature(req(GET | DMA_BUF)).errno, "ENOTTY");
});
