/** rdma-data-direct.md §6, §11: uverbs ioctl framing, codecs and rdma-core conventions (DD-48 … DD-51). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { KernelError } from "../../src/core/errors.js";
import { UserBuffer } from "../../src/core/file.js";
import {
  attrInU64,
  decodeRegDmabufMr,
  decodeUverbsIoctl,
  encodeRegDmabufMr,
  encodeUverbsIoctl,
  MLX5_IB_ATTR_REG_DMABUF_MR_ACCESS_FLAGS,
  RDMA_DRIVER,
  RDMA_VERBS_IOCTL,
  type RegDmabufMrCall,
  regDmabufMrAttrs,
  UVERBS_ATTR_F_MANDATORY,
  UVERBS_ATTR_F_VALID_OUTPUT,
  UVERBS_ATTR_REG_DMABUF_MR,
  UVERBS_METHOD_MR,
  UVERBS_OBJECT,
} from "../../src/rdma/index.js";
import { ACCESS, DD, errnoOf, IOVA, LENGTH, OFFSET, type Setup, setup } from "./setup.js";

const A = UVERBS_ATTR_REG_DMABUF_MR;

function call(s: Setup, mlx5Access: number | undefined = DD): RegDmabufMrCall {
  const c: RegDmabufMrCall = {
    driverId: RDMA_DRIVER.MLX5,
    pdHandle: s.pd.handle,
    offset: OFFSET,
    length: LENGTH,
    iova: IOVA,
    fd: 7,
    access: ACCESS,
    lkeyPtr: s.rdma.userMem.alloc(4),
    rkeyPtr: s.rdma.userMem.alloc(4),
  };
  if (mlx5Access !== undefined) c.mlx5Access = mlx5Access;
  return c;
}

function ioctl(s: Setup, bytes: Uint8Array, cmd = RDMA_VERBS_IOCTL): string | null {
  try {
    s.rdma.ioctl(s.ctx.fd, cmd, new UserBuffer(bytes));
    return null;
  } catch (e) {
    if (e instanceof KernelError) return e.errnoName;
    throw e;
  }
}

test("DD-48 §14's REG_DMABUF_MR encodes 10 attributes: length 184, object 7, method 4; it decodes back; a wrong length → -EINVAL", () => {
  const s = setup();
  assert.equal(s.exporter.fd, 7);
  const mr = s.regDD();
  assert.ok(mr);
  const sent = s.lib.trace[s.lib.trace.length - 1].bytes;
  const v = new DataView(sent.buffer);
  assert.equal(sent.length, 184);
  assert.equal(v.getUint16(0, true), 24 + 16 * 10);
  assert.equal(v.getUint16(2, true), 7);
  assert.equal(v.getUint16(4, true), 4);
  assert.equal(v.getUint16(6, true), 10);
  assert.equal(v.getBigUint64(8, true), 0n);
  assert.equal(v.getUint32(16, true), RDMA_DRIVER.MLX5);
  const { attrs } = decodeUverbsIoctl(sent);
  assert.deepEqual(
    attrs.map((a) => a.attrId),
    [
      A.HANDLE,
      A.PD_HANDLE,
      A.OFFSET,
      A.LENGTH,
      A.IOVA,
      A.FD,
      A.ACCESS_FLAGS,
      A.RESP_LKEY,
      A.RESP_RKEY,
      0x1000,
    ],
  );
  assert.deepEqual(
    attrs.map((a) => a.len),
    [0, 0, 8, 8, 8, 4, 4, 4, 4, 4],
  );
  assert.ok(attrs.every((a) => a.flags === UVERBS_ATTR_F_MANDATORY));
  const back = decodeRegDmabufMr(sent);
  assert.deepEqual(
    { ...back, lkeyPtr: 0n, rkeyPtr: 0n },
    {
      driverId: 1,
      pdHandle: s.pd.handle,
      offset: 0x10000n,
      length: 0x200000n,
      iova: 0x7f0000000000n,
      fd: 7,
      access: ACCESS,
      lkeyPtr: 0n,
      rkeyPtr: 0n,
      mlx5Access: 1,
    },
  );
  assert.deepEqual(encodeRegDmabufMr(back), sent, "re-encoding gives the same bytes");
  // what the kernel wrote back: the handle into HANDLE's data is in the argument the library kept
  // (the trace holds the bytes as sent); a fresh call shows VALID_OUTPUT on the two keys
  const c = call(s);
  const bytes = encodeRegDmabufMr(c);
  assert.equal(ioctl(s, bytes), null);
  const after = decodeUverbsIoctl(bytes).attrs;
  assert.equal(after[7].flags, UVERBS_ATTR_F_MANDATORY | UVERBS_ATTR_F_VALID_OUTPUT);
  assert.equal(after[8].flags, UVERBS_ATTR_F_MANDATORY | UVERBS_ATTR_F_VALID_OUTPUT);
  assert.ok(after[0].data > 0n, "new handle written into the HANDLE attribute");
  // length disagreeing with num_attrs
  const bad = encodeRegDmabufMr(call(s));
  new DataView(bad.buffer).setUint16(0, 24 + 16 * 9, true);
  assert.equal(ioctl(s, bad), "EINVAL");
  const big = encodeUverbsIoctl({
    objectId: 7,
    methodId: 4,
    driverId: 1,
    attrs: regDmabufMrAttrs(call(s)),
    length: 4104,
  });
  assert.equal(ioctl(s, big), "EINVAL");
});

test("DD-49 duplicate OFFSET → -EINVAL; unknown attribute 0x1fff MANDATORY → -EPROTONOSUPPORT, without MANDATORY → ignored", () => {
  const s = setup();
  const enc = (extra: ReturnType<typeof attrInU64>) =>
    encodeUverbsIoctl({
      objectId: UVERBS_OBJECT.MR,
      methodId: UVERBS_METHOD_MR.REG_DMABUF_MR,
      driverId: RDMA_DRIVER.MLX5,
      attrs: [...regDmabufMrAttrs(call(s)), extra],
    });
  assert.equal(ioctl(s, enc(attrInU64(A.OFFSET, 0x20000n))), "EINVAL");
  assert.equal(ioctl(s, enc(attrInU64(0x1fff, 0n))), "EPROTONOSUPPORT");
  assert.equal(ioctl(s, enc({ ...attrInU64(0x1fff, 0n), flags: 0 })), null);
  assert.equal(s.ib.dataDirectMrList.length, 1);
});

test("DD-50 ioctl number 0xC0181B02 → ENOTTY", () => {
  const s = setup();
  assert.equal(ioctl(s, encodeRegDmabufMr(call(s)), 0xc0181b02), "ENOTTY");
  assert.equal(s.ib.dataDirectMrList.length, 0);
});

test("DD-51 mlx5_access = 0 still sends 0x1000 (MANDATORY, len 4, data 0; 10 attributes, 184 bytes); a pre-6.12 kernel → NULL/EPROTONOSUPPORT, plain registration works", () => {
  const s = setup();
  const mr = s.regDD({ mlx5Access: 0 });
  assert.ok(mr);
  const sent = s.lib.trace[s.lib.trace.length - 1].bytes;
  assert.equal(sent.length, 184);
  const { hdr, attrs } = decodeUverbsIoctl(sent);
  assert.equal(hdr.numAttrs, 10);
  const a = attrs[9];
  assert.deepEqual(a, {
    attrId: MLX5_IB_ATTR_REG_DMABUF_MR_ACCESS_FLAGS,
    len: 4,
    flags: UVERBS_ATTR_F_MANDATORY,
    attrData: 0,
    data: 0n,
  });
  assert.equal(s.kmr(mr).kind, "plain", "no DATA_DIRECT: an ordinary MR");

  const old = setup({ rdma: { hasMlx5DmabufAccessAttr: false } });
  const before = old.snapshot();
  assert.equal(old.regDD({ mlx5Access: 0 }), null);
  assert.equal(old.lib.errno, errnoOf("EPROTONOSUPPORT"));
  assert.deepEqual(old.snapshot(), before);
  const plain = old.regPlain();
  assert.ok(plain, `errno ${old.lib.errno}`);
  assert.equal(decodeUverbsIoctl(old.lib.trace[old.lib.trace.length - 1].bytes).hdr.numAttrs, 9);
});

test("framework checks of §6.1 in order: header fault, driver id, unknown method, disassociated; attribute rules", () => {
  const s = setup();
  assert.equal(ioctl(s, new Uint8Array(10)), "EFAULT");
  const wrongDriver = encodeRegDmabufMr({ ...call(s), driverId: RDMA_DRIVER.RXE });
  assert.equal(ioctl(s, wrongDriver), "EINVAL");
  assert.equal(
    ioctl(s, encodeUverbsIoctl({ objectId: UVERBS_OBJECT.MR, methodId: 9, driverId: 1, attrs: [] })),
    "EPROTONOSUPPORT",
  );
  // the attribute array itself unreadable
  const cut = encodeRegDmabufMr(call(s)).subarray(0, 100);
  assert.equal(ioctl(s, Uint8Array.from(cut)), "EFAULT");
  // an IDR attribute with a length, an unknown PD handle, a non-zero reserved field
  const edit = (i: number, f: (v: DataView, o: number) => void) => {
    const b = encodeRegDmabufMr(call(s));
    f(new DataView(b.buffer), 24 + 16 * i);
    return ioctl(s, b);
  };
  assert.equal(
    edit(1, (v, o) => v.setUint16(o + 2, 4, true)),
    "EINVAL",
  );
  assert.equal(
    edit(1, (v, o) => v.setBigUint64(o + 8, 99n, true)),
    "ENOENT",
  );
  assert.equal(
    edit(2, (v, o) => v.setUint16(o + 6, 1, true)),
    "EINVAL",
  );
  // a missing mandatory attribute
  const noLen = encodeUverbsIoctl({
    objectId: 7,
    methodId: 4,
    driverId: 1,
    attrs: regDmabufMrAttrs(call(s)).filter((a) => a.attrId !== A.LENGTH),
  });
  assert.equal(ioctl(s, noLen), "EINVAL");
  // an output the kernel cannot write: the new MR is destroyed again
  const c = { ...call(s), lkeyPtr: 0x1234n };
  assert.equal(ioctl(s, encodeRegDmabufMr(c)), "EFAULT");
  assert.equal(s.ib.dataDirectMrList.length, 0);
  assert.equal(s.exporter.attachments, 0);
  assert.equal(s.rdma.fileOf(s.ctx.fd).objects.size, 1, "only the PD; no half-made MR handle");
  // nothing was left reserved by all the failures
  assert.equal(s.ib.mrs.size, 0);
  // after device removal every call answers -EIO
  s.rdma.removeIbDevice(s.ib);
  assert.equal(ioctl(s, encodeRegDmabufMr(call(s))), "EIO");
});
