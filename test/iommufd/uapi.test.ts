/** §10.2 / §13.1: iommufd ioctl numbers, struct layouts and the generic ioctl rules. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { UserBuffer } from "../../src/core/file.js";
import {
  decodeMapFile,
  encodeMapFile,
  encodeStruct,
  IOMMU_IOAS_ALLOC_S,
  IOMMU_IOAS_MAP_FILE_S,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_TEST_CMD_S,
  IOMMUFD_CMD,
  iommufdIoctl,
} from "../../src/iommufd/index.js";
import { call } from "../helpers/vfio-f.js";
import { iommufdF } from "./setup.js";

test("K-4 IOMMU_IOAS_MAP_FILE = 0x3B8F, struct 40 bytes: size 0, flags 4, ioas_id 8, fd 12, start 16, length 24, iova 32; FIXED_IOVA 1, WRITEABLE 2, READABLE 4", () => {
  assert.equal(IOMMUFD_CMD.IOMMU_IOAS_MAP_FILE, 0x3b8f);
  assert.equal(IOMMU_IOAS_MAP_FILE_S.size, 40);
  const offsets = Object.fromEntries(Object.entries(IOMMU_IOAS_MAP_FILE_S.fields).map(([k, [o]]) => [k, o]));
  assert.deepEqual(offsets, { size: 0, flags: 4, ioas_id: 8, fd: 12, start: 16, length: 24, iova: 32 });
  assert.deepEqual([IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_WRITEABLE, IOMMU_IOAS_MAP_READABLE], [1, 2, 4]);
  const b = encodeMapFile({
    flags: 7,
    ioasId: 3,
    fd: -1,
    start: 0x1122334455667788n,
    length: 0x4000n,
    iova: 0xffff_0000_0000_1000n,
  });
  assert.equal(b.length, 40);
  const v = new DataView(b.buffer);
  assert.equal(v.getUint32(0, true), 40);
  assert.equal(v.getUint32(4, true), 7);
  assert.equal(v.getUint32(8, true), 3);
  assert.equal(v.getInt32(12, true), -1);
  assert.equal(v.getBigUint64(16, true), 0x1122334455667788n);
  assert.equal(v.getBigUint64(24, true), 0x4000n);
  assert.equal(v.getBigUint64(32, true), 0xffff_0000_0000_1000n);
  assert.deepEqual(decodeMapFile(b), {
    size: 40,
    flags: 7,
    ioas_id: 3,
    fd: -1,
    start: 0x1122334455667788n,
    length: 0x4000n,
    iova: 0xffff_0000_0000_1000n,
  });
});

test("K-4 related numbers: DESTROY 0x3B80, IOAS_ALLOC 0x3B81, COPY 0x3B83, MAP 0x3B85, UNMAP 0x3B86, HWPT_ALLOC 0x3B89, TEST_CMD 0x3BA0", () => {
  assert.equal(IOMMUFD_CMD.IOMMU_DESTROY, 0x3b80);
  assert.equal(IOMMUFD_CMD.IOMMU_IOAS_ALLOC, 0x3b81);
  assert.equal(IOMMUFD_CMD.IOMMU_IOAS_COPY, 0x3b83);
  assert.equal(IOMMUFD_CMD.IOMMU_IOAS_MAP, 0x3b85);
  assert.equal(IOMMUFD_CMD.IOMMU_IOAS_UNMAP, 0x3b86);
  assert.equal(IOMMUFD_CMD.IOMMU_HWPT_ALLOC, 0x3b89);
  assert.equal(IOMMUFD_CMD.IOMMU_TEST_CMD, 0x3ba0);
  assert.equal(IOMMU_TEST_CMD_S.size, 72);
  assert.equal(IOMMU_TEST_CMD_S.minSize, 68);
});

test("K-4 generic rules: size below the minimum -EINVAL; non-zero bytes beyond the struct -E2BIG; zero bytes beyond are fine; unknown command -ENOTTY", () => {
  const s = iommufdF();
  const ioctl = (cmd: number, bytes: Uint8Array | null) =>
    call(() => iommufdIoctl(s.m, s.ifd, cmd, new UserBuffer(bytes)));
  // size 36 < 40
  assert.equal(
    ioctl(
      IOMMUFD_CMD.IOMMU_IOAS_MAP_FILE,
      encodeMapFile({ ioasId: 1, fd: 0, start: 0n, length: 0n }, { size: 36 }),
    ).errno,
    "EINVAL",
  );
  // 48 bytes with a non-zero tail
  const big = new Uint8Array(48);
  big.set(encodeStruct(IOMMU_IOAS_ALLOC_S, {}));
  new DataView(big.buffer).setUint32(0, 48, true);
  big[47] = 1;
  assert.equal(ioctl(IOMMUFD_CMD.IOMMU_IOAS_ALLOC, big).errno, "E2BIG");
  big[47] = 0;
  assert.equal(ioctl(IOMMUFD_CMD.IOMMU_IOAS_ALLOC, big).errno, null);
  // the answer is copied back only as far as the user's size
  assert.notEqual(new DataView(big.buffer).getUint32(8, true), 0);
  assert.equal(ioctl(0x3bff, new Uint8Array(8)).errno, "ENOTTY");
  assert.equal(ioctl(0x3b8e, new Uint8Array(8)).errno, "ENOTTY"); // known number, not modelled
  assert.equal(ioctl(0x4b81, new Uint8Array(12)).errno, "ENOTTY"); // wrong type byte
  // the size word itself unreadable
  assert.equal(ioctl(IOMMUFD_CMD.IOMMU_IOAS_ALLOC, null).errno, "EFAULT");
  // user size larger than the buffer
  const short = encodeStruct(IOMMU_IOAS_ALLOC_S, {}, { size: 64 });
  assert.equal(ioctl(IOMMUFD_CMD.IOMMU_IOAS_ALLOC, short).errno, "EFAULT");
});
