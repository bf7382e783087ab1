/** rdma-data-direct.md §7, §11: GET_DATA_DIRECT_SYSFS_PATH and its library call (DD-13 … DD-16). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ERRNO } from "../../src/core/errno.js";
import { KernelError } from "../../src/core/errors.js";
import { UserBuffer } from "../../src/core/file.js";
import { parseMachineFile } from "../../src/import/machine-file.js";
import {
  attrOut,
  cStringOf,
  decodeUverbsIoctl,
  encodeUverbsIoctl,
  ibvOpenDevice,
  MLX5_IB_ATTR_GET_DATA_DIRECT_SYSFS_PATH,
  MLX5_IB_METHOD_GET_DATA_DIRECT_SYSFS_PATH,
  machineForProfile,
  mlx5dvGetDataDirectSysfsPath,
  RDMA_DRIVER,
  RDMA_VERBS_IOCTL,
  RdmaCore,
  rdmaOf,
  UVERBS_ATTR_F_MANDATORY,
  UVERBS_ATTR_F_VALID_OUTPUT,
  UVERBS_OBJECT,
} from "../../src/rdma/index.js";
import { setup, VUID } from "./setup.js";

const PATH = "/devices/pci0000:00/0000:00:02.0/0000:03:00.0";

function raw(s: ReturnType<typeof setup>, bytes: Uint8Array): string | null {
  try {
    s.rdma.ioctl(s.ctx.fd, RDMA_VERBS_IOCTL, new UserBuffer(bytes));
    return null;
  } catch (e) {
    if (e instanceof KernelError) return e.errnoName;
    throw e;
  }
}

test("DD-13 a 45-character path: buffer of 46 → 0 and 46 bytes written (NUL last); 45 → ENOSPC, buffer untouched", () => {
  const s = setup();
  assert.equal(PATH.length, 45);
  const buf = new Uint8Array(46).fill(0xaa);
  assert.equal(mlx5dvGetDataDirectSysfsPath(s.ctx, buf), 0);
  assert.equal(cStringOf(buf), PATH);
  assert.equal(buf[45], 0);
  const small = new Uint8Array(45).fill(0xaa);
  assert.equal(mlx5dvGetDataDirectSysfsPath(s.ctx, small), ERRNO.ENOSPC);
  assert.ok(
    small.every((b) => b === 0xaa),
    "no byte written",
  );
  // the kernel marks the output VALID_OUTPUT in the caller's attribute
  const ptr = s.rdma.userMem.alloc(64);
  const bytes = encodeUverbsIoctl({
    objectId: UVERBS_OBJECT.DEVICE,
    methodId: MLX5_IB_METHOD_GET_DATA_DIRECT_SYSFS_PATH,
    driverId: RDMA_DRIVER.MLX5,
    attrs: [attrOut(MLX5_IB_ATTR_GET_DATA_DIRECT_SYSFS_PATH, ptr, 64)],
  });
  assert.equal(raw(s, bytes), null);
  assert.equal(decodeUverbsIoctl(bytes).attrs[0].flags, UVERBS_ATTR_F_MANDATORY | UVERBS_ATTR_F_VALID_OUTPUT);
  assert.equal(cStringOf(s.rdma.userMem.view(ptr)!), PATH);
});

test("DD-14 DMA PF below a root port and two switch levels → a 71-character path, 72 bytes needed", () => {
  const { fabric } = parseMachineFile(
    `
name: dd-14
hostBridges:
  - domain: 0
    bus: 0xc0
    functions:
      - { at: "00.0", kind: host-bridge, id: "8086:2020" }
      - at: "01.1"
        kind: root-port
        id: "8086:2030"
        secondaryBus: 0xc1
        below:
          - at: "00.0"
            kind: upstream-port
            id: "15b3:197b"
            secondaryBus: 0xc2
            below:
              - at: "00.0"
                kind: downstream-port
                id: "15b3:197b"
                secondaryBus: 0xc3
                below:
                  - { at: "00.0", id: "15b3:1023", class: 0x020700, bars: [{ index: 0, type: mem64, size: 32MiB }] }
                  - at: "00.1"
                    id: "15b3:2100"
                    vpd: { readOnly: { VU: "${VUID}" } }
`,
    "dd-14.yaml",
  );
  const { machine: m } = machineForProfile(fabric);
  const rdma = rdmaOf(m);
  rdma.probeDmaPf("0000:c3:00.1");
  const ib = rdma.addMlx5Device("0000:c3:00.0", { vhcaId: 1, firmwareVuid: VUID });
  const ctx = ibvOpenDevice(new RdmaCore(rdma), ib.name)!;
  const want = "/devices/pci0000:c0/0000:c0:01.1/0000:c1:00.0/0000:c2:00.0/0000:c3:00.1";
  assert.equal(want.length, 71);
  const buf = new Uint8Array(72);
  assert.equal(mlx5dvGetDataDirectSysfsPath(ctx, buf), 0);
  assert.equal(cStringOf(buf), want);
  assert.equal(mlx5dvGetDataDirectSysfsPath(ctx, new Uint8Array(71)), ERRNO.ENOSPC);
});

test("DD-15 method 0x1001 without attribute 0x1000 → -EINVAL; reserved1 = 1 → -EPROTONOSUPPORT; kernel without the method → EPROTONOSUPPORT", () => {
  const s = setup();
  const base = { objectId: UVERBS_OBJECT.DEVICE, methodId: 0x1001, driverId: RDMA_DRIVER.MLX5 };
  assert.equal(raw(s, encodeUverbsIoctl({ ...base, attrs: [] })), "EINVAL");
  const ptr = s.rdma.userMem.alloc(64);
  const attrs = [attrOut(MLX5_IB_ATTR_GET_DATA_DIRECT_SYSFS_PATH, ptr, 64)];
  assert.equal(raw(s, encodeUverbsIoctl({ ...base, attrs, reserved1: 1n })), "EPROTONOSUPPORT");
  assert.equal(raw(s, encodeUverbsIoctl({ ...base, attrs, reserved2: 1 })), "EPROTONOSUPPORT");
  const old = setup({ rdma: { hasDataDirectSysfsMethod: false } });
  assert.equal(mlx5dvGetDataDirectSysfsPath(old.ctx, new Uint8Array(64)), ERRNO.EPROTONOSUPPORT);
});

test("DD-16 mlx5dv_get_data_direct_sysfs_path on a non-mlx5 context → EOPNOTSUPP", () => {
  const s = setup();
  const rxe = s.rdma.addSoftDevice(s.gpu);
  const ctx = ibvOpenDevice(s.lib, rxe.name)!;
  assert.equal(ctx.provider, "rxe");
  const mark = s.lib.trace.length;
  assert.equal(mlx5dvGetDataDirectSysfsPath(ctx, new Uint8Array(64)), ERRNO.EOPNOTSUPP);
  assert.equal(s.lib.trace.length, mark, "refused by the library, no ioctl");
});
