/** rdma-data-direct.md §5.3, §8: REG_DMABUF_MR success paths (DD-17 … DD-21) and errors (DD-22 … DD-33). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { route } from "../../src/analysis/route.js";
import { UserBuffer } from "../../src/core/file.js";
import { DmaEngine } from "../../src/dataplane/index.js";
import {
  encodeRegDmabufMr,
  IB_ACCESS,
  IBV_WC,
  MLX5_MKC_ACCESS_MODE,
  RDMA_DRIVER,
  RDMA_VERBS_IOCTL,
  UVERBS_ATTR_F_MANDATORY,
} from "../../src/rdma/index.js";
import { PinnableExporter } from "../../src/rdma/test-exporter.js";
import { UVERBS_ATTR_OFFSET } from "../../src/rdma/verbs.js";
import { ACCESS, BDF, errnoOf, failedClean, GiB, GPU_BAR, IOVA, LENGTH, OFFSET, ok, setup } from "./setup.js";

const RO = IB_ACCESS.RELAXED_ORDERING;

test("DD-17 §14 registration → crossing key for lkey and rkey, addr = offset, crossed KSM MR in ddr.pdn and in the list, crossing mkey (6) 0 … 0x7f0000200000 → vhca 5", () => {
  const s = setup();
  const mr = s.regDD();
  assert.ok(mr, `errno ${s.lib.errno}`);
  assert.equal(mr.addr, 0x10000n);
  assert.equal(mr.length, 0x200000n);
  assert.equal(mr.lkey, mr.rkey);
  const crossing = s.kmr(mr);
  assert.equal(crossing.kind, "crossing");
  assert.equal(crossing.lkey, mr.lkey);
  assert.equal(crossing.iova, IOVA);
  const ck = crossing.mmkey!;
  assert.equal(ck.accessMode, MLX5_MKC_ACCESS_MODE.CROSSING);
  assert.equal(ck.accessMode, 6);
  assert.equal(ck.start, 0n);
  assert.equal(ck.length, 0x7f0000200000n);
  assert.equal(ck.pdn, s.rdma.fileOf(s.ctx.fd).pd(s.pd.handle).pdn, "user PD");
  const crossed = crossing.ddCrossedMr!;
  assert.deepEqual(ck.crossing, { vhcaId: 5, key: crossed.lkey });
  assert.deepEqual(s.ib.dataDirectMrList, [crossed]);
  const kk = crossed.mmkey!;
  assert.equal(kk.accessMode, MLX5_MKC_ACCESS_MODE.KSM);
  assert.equal(kk.accessMode, 3);
  assert.equal(kk.pdn, s.ib.ddr.pdn);
  assert.equal(kk.start, IOVA);
  assert.equal(kk.length, LENGTH);
  assert.ok(kk.dataDirect);
  // 512 entries of 4 KiB through ddr.mkey, at the DMA PF's (bus) addresses of the buffer
  assert.equal(kk.ksm!.keys.length, 512);
  assert.ok(kk.ksm!.keys.every((k) => k === s.ib.ddr.mkey!.key));
  assert.equal(kk.ksm!.vas[0], GPU_BAR + OFFSET);
  assert.equal(kk.ksm!.vas[511], GPU_BAR + OFFSET + 511n * 4096n);
  // the umem is pinned and attached to the DMA PF
  assert.equal(crossed.umem!.dmaDevice, s.dmaPf);
  assert.ok(crossed.umem!.pinned);
  assert.equal(s.exporter.pinCount, 1);
  const ddMkey = s.ib.ddr.mkey!;
  assert.equal(ddMkey.accessMode, MLX5_MKC_ACCESS_MODE.PA);
  assert.ok(ddMkey.length64 && ddMkey.dataDirect);
  assert.equal(ddMkey.qpn, 0xffffff);
  // with CONFIG_DMABUF_MOVE_NOTIFY=n the core also pins the (dynamic) attachment on map: two pins, both undone
  const n = setup({ kernel: { moveNotify: false } });
  const mr2 = n.regDD()!;
  assert.equal(n.exporter.pinCount, 2);
  n.rdma.close(n.ctx.fd);
  assert.equal(n.exporter.pinCount, 0);
  assert.equal(n.exporter.attachments, 0);
  void mr2;
});

test("DD-18 RDMA WRITE of 4096 bytes at 0x7f0000001000 → issued by 03:00.0 (not 41:00.0) to the DMA address of buffer offset 0x11000", () => {
  const s = setup();
  const mr = s.regDD()!;
  const r = ok(s.write(mr, 0x7f0000001000n, 4096n));
  assert.equal(r.issuer.bdf, "0000:03:00.0");
  assert.notEqual(r.issuer.bdf, "0000:41:00.0");
  assert.equal(r.dmaAddress, GPU_BAR + 0x11000n);
  assert.deepEqual(r.segments, [{ dmaAddress: GPU_BAR + 0x11000n, len: 4096n }]);
  assert.equal(r.mapType, "BUS_ADDR", "the DMA PF shares an upstream bridge with the GPU");
  assert.equal(r.target, s.gpu);
  assert.ok(r.dataDirect);
  // the requests stay below root port 00:02.0 and never touch the NIC's root port
  const path = route(s.gpu, r.issuer);
  assert.equal(path.commonAncestor?.bdf, BDF.RP);
  const hops = path.steps.flatMap((h) => (h.kind === "device" ? [h.dev.bdf] : [h.kind]));
  assert.deepEqual(hops, [BDF.GPU, BDF.RP, BDF.DMA_PF]);
  // the plain MR's requests would go up through the host bridge instead
  const plain = ok(s.write(s.regPlain()!, 0x7f0000001000n, 4096n));
  assert.ok(route(s.gpu, plain.issuer).steps.some((h) => h.kind === "host-bridge"));
  // the DMA engine moves the bytes where the translation says: into GPU BAR1 at 0x11000, issued by
  // the DMA PF (function 0 of the device whose function 1 is the GPU: the write stays inside it)
  const e = DmaEngine.of(s.m);
  const data = Uint8Array.from({ length: 4096 }, (_, i) => i & 0xff);
  const d = e.dmaWrite(r.issuer, r.dmaAddress, data, { addressKind: r.addressKind });
  assert.equal(d.status, "SC");
  assert.deepEqual(e.bars.peek(s.gpu, 1, 0x11000n, 4096), data);
  assert.ok(d.segments.every((x) => x.target?.kind === "bar" && x.target.dev === s.gpu && !x.translated));
  assert.ok(!d.tlps.links().some((l) => l.includes(BDF.NIC) || l.includes(BDF.NIC_RP)));
});

test("DD-19 access below iova or ending past iova + length → IBV_WC_REM_ACCESS_ERR, nothing translated", () => {
  const s = setup();
  const mr = s.regDD()!;
  for (const [addr, len] of [
    [0x7efffffff000n, 4096n],
    [0x7f00001ff000n, 0x2000n],
    [0x7f0000200000n, 1n],
  ] as const) {
    const r = s.write(mr, addr, len);
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.status, IBV_WC.REM_ACCESS_ERR);
    assert.equal(!r.ok && r.reason, "bounds");
  }
  // the last byte is fine
  ok(s.write(mr, 0x7f00001fffffn, 1n));
  // a local use of the key gets LOC_PROT_ERR
  const l = s.rdma.translate(s.ib, { key: mr.lkey, addr: IOVA - 1n, length: 1n, access: "local-write" });
  assert.equal(!l.ok && l.status, IBV_WC.LOC_PROT_ERR);
});

test("DD-20 RELAXED_ORDERING with RO caps → kept, KSM entries through ddr.mkey_ro; ddRelaxedOrderingMkey false or no RO caps → cleared, ddr.mkey", () => {
  const s = setup();
  assert.ok(s.ib.ddr.mkeyRoValid);
  const mr = s.regDD({ access: ACCESS | RO })!;
  const crossed = s.kmr(mr).ddCrossedMr!;
  assert.ok(crossed.access & RO);
  assert.ok(crossed.mmkey!.ksm!.keys.every((k) => k === s.ib.ddr.mkeyRo!.key));
  assert.ok(ok(s.write(mr, IOVA, 64n)).relaxedOrdering);
  for (const o of [
    { rdma: { ddRelaxedOrderingMkey: false } },
    { caps: { relaxedOrderingWrite: false, relaxedOrderingRead: false } },
  ]) {
    const t = setup(o);
    assert.equal(t.ib.ddr.mkeyRoValid, false);
    assert.equal(t.ib.ddr.mkeyRo, null);
    const m2 = t.regDD({ access: ACCESS | RO });
    assert.ok(m2, `errno ${t.lib.errno}`);
    const c2 = t.kmr(m2).ddCrossedMr!;
    assert.equal(c2.access & RO, 0);
    assert.ok(c2.mmkey!.ksm!.keys.every((k) => k === t.ib.ddr.mkey!.key));
    assert.equal(ok(t.write(m2, IOVA, 64n)).relaxedOrdering, false);
  }
});

test("DD-21 plain ibv_reg_dmabuf_mr on the same buffer → MTT MR on the NIC PF, dynamic attachment, not in the list, requests from 41:00.0", () => {
  const s = setup();
  const mr = s.regPlain();
  assert.ok(mr, `errno ${s.lib.errno}`);
  const k = s.kmr(mr);
  assert.equal(k.kind, "plain");
  assert.equal(k.mmkey!.accessMode, MLX5_MKC_ACCESS_MODE.MTT);
  assert.equal(k.umem!.dmaDevice, s.nicPf);
  assert.ok(k.umem!.attach.dynamic);
  assert.ok(k.umem!.attach.importerOps?.moveNotify);
  assert.equal(k.umem!.pinned, false);
  assert.equal(s.exporter.pinCount, 0);
  assert.equal(s.ib.dataDirectMrList.length, 0);
  const r = ok(s.write(mr, 0x7f0000001000n, 4096n));
  assert.equal(r.issuer.bdf, "0000:41:00.0");
  assert.equal(r.mapType, "THRU_HOST_BRIDGE");
  assert.equal(r.addressKind, "iova");
  assert.equal(r.dataDirect, false);
  // through the engine: IOVAs of the NIC's domain, translated at the root complex; TLPs carry 41:00.0
  const e = DmaEngine.of(s.m);
  const d = e.dmaWrite(r.issuer, r.dmaAddress, new Uint8Array(4096).fill(7), { addressKind: r.addressKind });
  assert.equal(d.status, "SC");
  assert.ok(d.segments.every((x) => x.translated));
  assert.deepEqual(e.bars.peek(s.gpu, 1, 0x11000n, 4), Uint8Array.of(7, 7, 7, 7));
  const up = d.tlps.entries.filter((t) => t.link === `${BDF.NIC_RP}↔${BDF.NIC}`);
  assert.ok(up.length > 0);
  for (const t of up) assert.equal((t.bytes[4] << 8) | t.bytes[5], (0x41 << 8) | 0, "Requester ID 41:00.0");
});

test("DD-22 iova 0x7f0000000800 with offset 0x10800 (equal page offsets), DATA_DIRECT → -EOPNOTSUPP", () => {
  const s = setup();
  const before = s.snapshot();
  failedClean(s, before, s.regDD({ iova: 0x7f0000000800n, offset: 0x10800n }), "EOPNOTSUPP");
  // the same arguments without data direct are fine
  assert.ok(s.regPlain({ iova: 0x7f0000000800n, offset: 0x10800n }));
});

test("DD-23 offset 0x10000 with iova 0x7f0000000800 (page offsets differ) → -EINVAL in the core, before the driver", () => {
  const s = setup();
  const before = s.snapshot();
  const mark = s.m.log.length;
  failedClean(s, before, s.regDD({ iova: 0x7f0000000800n }), "EINVAL");
  assert.ok(!s.m.log.since(mark).some((e) => e.event.kind === "rdma" || e.event.kind === "attach"));
});

test("DD-24 access with ON_DEMAND → -EINVAL; REMOTE_WRITE without LOCAL_WRITE → -EINVAL", () => {
  const s = setup();
  const before = s.snapshot();
  failedClean(s, before, s.regDD({ access: ACCESS | IB_ACCESS.ON_DEMAND }), "EINVAL");
  failedClean(s, before, s.regDD({ access: IB_ACCESS.REMOTE_WRITE }), "EINVAL");
  failedClean(s, before, s.regDD({ access: IB_ACCESS.REMOTE_ATOMIC | IB_ACCESS.REMOTE_READ }), "EINVAL");
  for (const bad of [IB_ACCESS.MW_BIND, IB_ACCESS.ZERO_BASED, IB_ACCESS.FLUSH_GLOBAL, IB_ACCESS.HUGETLB])
    failedClean(s, before, s.regPlain({ access: ACCESS | bad }), "EINVAL");
});

test("DD-25 mlx5 flags 0x2 → -EINVAL; the 0x1000 attribute with len 2 → -EINVAL", () => {
  const s = setup();
  const before = s.snapshot();
  failedClean(s, before, s.regDD({ mlx5Access: 0x2 }), "EINVAL");
  const call = {
    driverId: RDMA_DRIVER.MLX5,
    pdHandle: s.pd.handle,
    offset: OFFSET,
    length: LENGTH,
    iova: IOVA,
    fd: s.exporter.fd,
    access: ACCESS,
    lkeyPtr: s.rdma.userMem.alloc(4),
    rkeyPtr: s.rdma.userMem.alloc(4),
    mlx5Access: 1,
  };
  const bytes = encodeRegDmabufMr(call);
  const v = new DataView(bytes.buffer);
  const at = UVERBS_ATTR_OFFSET(9);
  assert.equal(v.getUint16(at, true), 0x1000);
  v.setUint16(at + 2, 2, true);
  assert.throws(() => s.rdma.ioctl(s.ctx.fd, RDMA_VERBS_IOCTL, new UserBuffer(bytes)), /EINVAL/);
  // 8 bytes are fine
  const b8 = encodeRegDmabufMr(call);
  new DataView(b8.buffer).setUint16(at + 2, 8, true);
  assert.equal(s.rdma.ioctl(s.ctx.fd, RDMA_VERBS_IOCTL, new UserBuffer(b8)), 0);
  assert.equal(new DataView(b8.buffer).getUint16(at + 4, true), UVERBS_ATTR_F_MANDATORY);
  assert.equal(s.snapshot().ddList, 1);
});

test("DD-26 DATA_DIRECT while the IB device is UNBOUND → -EINVAL", () => {
  const s = setup({ order: "ib-only" });
  assert.equal(s.ib.ddState, "UNBOUND");
  failedClean(s, s.snapshot(), s.regDD(), "EINVAL");
});

test("DD-27 no crossing_vhca_mkey → -EOPNOTSUPP; the crossed MR of step 5 is destroyed (umem released, attachment gone)", () => {
  const s = setup({ caps: { crossingVhcaMkey: false } });
  const before = s.snapshot();
  const mark = s.m.log.length;
  failedClean(s, before, s.regDD(), "EOPNOTSUPP");
  const ops = s.m.log
    .since(mark)
    .flatMap((e) => (e.event.kind === "rdma" ? [`${e.event.op} ${e.event.detail ?? ""}`] : []));
  assert.ok(ops.some((o) => o.startsWith("mkey-create crossed")));
  assert.ok(ops.some((o) => o.startsWith("mkey-destroy crossed")));
  assert.ok(ops.some((o) => o.startsWith("umem-release")));
  assert.equal(s.exporter.pinCount, 0);
  assert.equal(s.exporter.unpinCalls, s.exporter.pinCalls);
});

test("DD-28 256 MiB without umr_extended_translation_offset → -EINVAL, with it → success; umr_modify_entity_size_disabled → -EINVAL for any length", () => {
  const MiB256 = 256n << 20n;
  const s = setup({ caps: { umrExtendedTranslationOffset: false } });
  failedClean(s, s.snapshot(), s.regDD({ length: MiB256 }), "EINVAL");
  assert.ok(s.regDD({ length: MiB256 - 4096n }), "just below the limit");
  const t = setup();
  const big = t.regDD({ length: MiB256 });
  assert.ok(big, `errno ${t.lib.errno}`);
  assert.equal(t.kmr(big).ddCrossedMr!.mmkey!.ksm!.keys.length, 65536);
  const u = setup({ caps: { umrModifyEntitySizeDisabled: true } });
  failedClean(u, u.snapshot(), u.regDD({ length: 4096n }), "EINVAL");
  failedClean(u, u.snapshot(), u.regPlain({ length: 4096n }), "EINVAL");
});

test("DD-29 fd not open → -EBADF; fd of a file that is not a dma-buf → -EINVAL", () => {
  const s = setup();
  const before = s.snapshot();
  failedClean(s, before, s.regDD({ fd: 30 }), "EBADF");
  failedClean(s, before, s.regDD({ fd: 0 }), "EINVAL");
  failedClean(s, before, s.regDD({ fd: s.ctx.fd }), "EINVAL");
  failedClean(s, before, s.regPlain({ fd: 30 }), "EBADF");
});

test("DD-30 offset + length beyond the dma-buf → -EINVAL; offset 2^64-4096 with length 8192 (overflow) → -EINVAL", () => {
  const s = setup();
  const before = s.snapshot();
  failedClean(s, before, s.regDD({ offset: GiB - 0x1000n, length: 0x2000n }), "EINVAL");
  const top = (1n << 64n) - 4096n;
  failedClean(s, before, s.regDD({ offset: top, length: 8192n, iova: IOVA }), "EINVAL");
  failedClean(s, before, s.regPlain({ offset: top, length: 8192n, iova: IOVA }), "EINVAL");
  assert.ok(s.regDD({ offset: GiB - LENGTH }), "exactly to the end is fine");
});

test("DD-31 length 0 with page-aligned offset and iova → -EINVAL (zero pages)", () => {
  const s = setup();
  const before = s.snapshot();
  failedClean(s, before, s.regDD({ length: 0n }), "EINVAL");
  failedClean(s, before, s.regPlain({ length: 0n }), "EINVAL");
});

test("DD-32 map type NOT_SUPPORTED between the exporter's provider and the DMA PF → -EINVAL, the pin undone", () => {
  // host bridge not allow-listed; the exporter is the function under another root port
  const s = setup({ hostBridgeId: "8086:1234", exporter: false });
  const far = new PinnableExporter(s.m, { dev: BDF.NIC2, bar: 0, size: 32n << 20n });
  const before = { ...s.snapshot() };
  const mr = s.regDD({ fd: far.fd, length: 0x10000n });
  assert.equal(mr, null);
  assert.equal(s.lib.errno, errnoOf("EINVAL"));
  assert.equal(far.pinCalls, 1, "pinned before the map");
  assert.equal(far.pinCount, 0, "pin count back to 0");
  assert.equal(far.unpinCalls, 1, "unpinned exactly once");
  assert.equal(far.attachments, 0);
  assert.equal(far.buf.file.refs, 1);
  assert.deepEqual(s.snapshot().mkeys, before.mkeys);
});

test("DD-33 kernel built without ODP → -EOPNOTSUPP for plain and data-direct registration", () => {
  const s = setup({ rdma: { odp: false } });
  const before = s.snapshot();
  failedClean(s, before, s.regDD(), "EOPNOTSUPP");
  failedClean(s, before, s.regPlain(), "EOPNOTSUPP");
  const u = setup({ rdma: { userMem: false } });
  failedClean(u, u.snapshot(), u.regPlain(), "EOPNOTSUPP");
});
