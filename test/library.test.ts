/** The README's "As a library" examples, through the package's public entry, stay true. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { analysis, importers, Machine, rdma, UserBuffer, vfio } from "../src/index.js";

test("README library example: pairVerdict of the NVMe and the NIC on builtin:storage-rdma", () => {
  const m = new Machine(importers.loadBuiltin("storage-rdma").fabric);
  const v = analysis.pairVerdict(m, m.device("03:00.0"), m.device("04:00.0"));
  assert.equal(v.type, "BUS_ADDR");
  assert.equal(v.dist, 4);
  assert.deepEqual(
    { kind: v.reasons[0].kind, ancestor: (v.reasons[0] as { ancestor?: string }).ancestor },
    { kind: "common-upstream-bridge", ancestor: "0000:01:00.0" },
  );
});

test("README library example: an RDMA WRITE into a VFIO-exported CMB succeeds, and after the close is refused with 0 bytes", () => {
  const m = new Machine(importers.loadBuiltin("storage-rdma").fabric, { kernel: { moveNotify: true } });
  const dev = m.vfio.open("0000:03:00.0");
  const fd = m.vfio.ioctl(
    dev,
    vfio.VFIO_IOCTL.VFIO_DEVICE_FEATURE,
    new UserBuffer(
      vfio.encodeFeatureDmaBuf({ regionIndex: 2, ranges: [{ offset: 0n, length: 0x20_0000n }] }),
    ),
  );
  const r = rdma.rdmaOf(m);
  const ib = r.addMlx5Device("0000:04:00.0", { vhcaId: 1 });
  const ctx = rdma.ibvOpenDevice(new rdma.RdmaCore(r), ib.name);
  assert.ok(ctx);
  const pd = rdma.ibvAllocPd(ctx);
  assert.ok(pd);
  const mr = rdma.ibvRegDmabufMr(
    pd,
    0n,
    0x20_0000n,
    0x1000_0000n,
    fd,
    rdma.IB_ACCESS.LOCAL_WRITE | rdma.IB_ACCESS.REMOTE_WRITE,
  );
  assert.ok(mr);
  const plane = new rdma.RdmaDataPlane(r);
  const ok = plane.rdmaWrite(ib, mr.rkey, 0x1000_0000n, new Uint8Array(4096));
  assert.deepEqual([ok.statusName, ok.mapType, ok.issuer], ["SUCCESS", "BUS_ADDR", "0000:04:00.0"]);
  m.vfio.close(dev);
  const refused = plane.rdmaWrite(ib, mr.rkey, 0x1000_0000n, new Uint8Array(4096));
  assert.deepEqual([refused.statusName, refused.bytesDelivered], ["REM_ACCESS_ERR", 0]);
  assert.deepEqual(plane.revokedWrites, []);
});
