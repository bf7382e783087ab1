/** rdma-data-direct.md §9, §10: revocation, deregistration, teardown, rereg (DD-38 … DD-47). */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { KernelError } from "../../src/core/errors.js";
import { UserBuffer } from "../../src/core/file.js";
import {
  encodeRegDmabufMr,
  IBV_REREG_MR,
  IBV_REREG_MR_ERR_INPUT,
  ibUmemDmabufMapPages,
  ibvAllocPd,
  ibvDeregMr,
  ibvOpenDevice,
  ibvReregMr,
  type Mlx5Mr,
  mlx5dvRegDmabufMr,
  RDMA_DRIVER,
  RDMA_VERBS_IOCTL,
} from "../../src/rdma/index.js";
import { ACCESS, BDF, DD, errnoOf, IOVA, LENGTH, OFFSET, ok, type Setup, setup, VUID } from "./setup.js";

function rdmaOps(s: Setup, mark: number): string[] {
  return s.m.log.since(mark).flatMap((e) => {
    const ev = e.event;
    if (ev.kind === "rdma") return [`${ev.op} ${ev.detail ?? ""}`.trim()];
    if (ev.kind === "detach" || ev.kind === "unmap") return [`dmabuf-${ev.kind}`];
    return [];
  });
}

function indexOf(ops: string[], prefix: string): number {
  const i = ops.findIndex((o) => o.startsWith(prefix));
  assert.ok(i >= 0, `no "${prefix}" in ${ops.join(" | ")}`);
  return i;
}

test("DD-38 two DD MRs, DMA PF removed → both revoked (mkeys disabled), pins 0, unmapped, list empty, UNBOUND; handles valid, access fails, dereg → 0", () => {
  const s = setup();
  const a = s.regDD()!;
  const b = s.regDD({ offset: 0x400000n, iova: 0x7f1000000000n })!;
  const [ca, cb] = [s.kmr(a).ddCrossedMr!, s.kmr(b).ddCrossedMr!];
  assert.equal(s.exporter.pinCount, 2);
  s.rdma.removeDmaPf(s.dmaPf);
  for (const c of [ca, cb]) {
    assert.ok(c.revoked);
    assert.equal(c.state, "REVOKED");
    assert.equal(c.mmkey!.state, "disabled");
    assert.ok(c.umem!.revoked);
  }
  assert.equal(s.exporter.pinCount, 0);
  assert.equal(s.exporter.liveMappings, 0);
  assert.equal(s.ib.dataDirectMrList.length, 0);
  assert.equal(s.ib.ddState, "UNBOUND");
  assert.equal(s.kmr(a).lkey, a.lkey, "handle still valid");
  for (const [mr, addr] of [
    [a, IOVA],
    [b, 0x7f1000000000n],
  ] as const) {
    const r = s.write(mr, addr, 64n);
    assert.equal(!r.ok && r.reason, "revoked");
  }
  assert.equal(s.exporter.attachments, 2, "still attached until dereg");
  assert.equal(ibvDeregMr(a), 0);
  assert.equal(ibvDeregMr(b), 0);
  assert.equal(s.exporter.attachments, 0);
  assert.equal(s.exporter.buf.file.refs, 1);
});

test("DD-39 after DD-38 the PF is probed again → BOUND; old MRs stay revoked; a new registration works", () => {
  const s = setup();
  const old = s.regDD()!;
  s.rdma.removeDmaPf(s.dmaPf);
  s.rdma.probeDmaPf(s.dmaPf);
  assert.equal(s.ib.ddState, "BOUND");
  assert.ok(s.kmr(old).ddCrossedMr!.revoked);
  assert.equal(s.write(old, IOVA, 64n).ok, false);
  const fresh = s.regDD();
  assert.ok(fresh, `errno ${s.lib.errno}`);
  assert.equal(ok(s.write(fresh, IOVA + 0x1000n, 4096n)).issuer, s.dmaPf);
  assert.deepEqual(s.ib.dataDirectMrList, [s.kmr(fresh).ddCrossedMr]);
});

test("DD-40 revoke twice (PF removal after a projected exporter revoke) → the second is a no-op: no double unpin, no warning", () => {
  const s = setup({ rdma: { kernelProfile: "v7.0", ddRevocablePinned: true } });
  const mr = s.regDD()!;
  const crossed = s.kmr(mr).ddCrossedMr!;
  assert.equal(s.exporter.pinCount, 1);
  s.exporter.moveNotify(); // the exporter revokes the (revocable) pinned import
  assert.ok(crossed.revoked);
  assert.equal(s.exporter.unpinCalls, 1);
  assert.deepEqual(s.ib.dataDirectMrList, [crossed]);
  const warnsBefore = s.m.diag.names().filter((n) => n.startsWith("warn:")).length;
  s.rdma.removeDmaPf(s.dmaPf);
  assert.equal(s.exporter.unpinCalls, 1, "no second unpin");
  assert.equal(s.exporter.unmapCalls, 1, "no second unmap");
  assert.equal(s.m.diag.names().filter((n) => n.startsWith("warn:")).length, warnsBefore);
  assert.equal(s.ib.dataDirectMrList.length, 0);
  assert.equal(ibvDeregMr(mr), 0);
  assert.equal(s.exporter.attachments, 0);
});

test("DD-41 map_pages on a revoked umem → -EINVAL", () => {
  const s = setup();
  const mr = s.regDD()!;
  const umem = s.kmr(mr).ddCrossedMr!.umem!;
  s.rdma.removeDmaPf(s.dmaPf);
  let err: KernelError | null = null;
  umem.dmabuf.resv.with(() => {
    try {
      ibUmemDmabufMapPages(umem);
    } catch (e) {
      err = e as KernelError;
    }
  });
  assert.ok(err);
  assert.equal((err as KernelError).errnoName, "EINVAL");
  assert.equal(umem.sgt, null);
});

test("DD-42 dereg of a live DD MR: crossing mkey first, crossed MR unlinked, umem revoked (unmapped + unpinned), detached, reference dropped", () => {
  const s = setup();
  const mr = s.regDD()!;
  const attachBefore = s.exporter.attachments;
  const refsBefore = s.exporter.buf.file.refs;
  const mark = s.m.log.length;
  assert.equal(ibvDeregMr(mr), 0);
  const ops = rdmaOps(s, mark);
  const order = [
    indexOf(ops, "mkey-destroy crossing"),
    indexOf(ops, "dd-list-del"),
    indexOf(ops, "dmabuf-unmap"),
    indexOf(ops, "umem-revoke"),
    indexOf(ops, "dmabuf-detach"),
    indexOf(ops, "umem-release"),
    indexOf(ops, "mr-dereg"),
  ];
  assert.deepEqual(
    order,
    [...order].sort((x, y) => x - y),
    ops.join(" | "),
  );
  assert.equal(s.exporter.pinCount, 0);
  assert.equal(s.exporter.attachments, attachBefore - 1);
  assert.equal(s.exporter.buf.file.refs, refsBefore - 1);
  assert.equal(s.ib.dataDirectMrList.length, 0);
  assert.throws(() => s.rdma.fileOf(s.ctx.fd).mr(mr.handle), /ENOENT/);
});

test("DD-43 DMA PF removal racing a registration: unbind waits for data_direct_lock; either revoked after registering or -EINVAL; never unrevoked on an UNBOUND device", () => {
  // (a) the registration holds data_direct_lock when the removal starts
  const s = setup();
  const lkeyPtr = s.rdma.userMem.alloc(4);
  const bytes = encodeRegDmabufMr({
    driverId: RDMA_DRIVER.MLX5,
    pdHandle: s.pd.handle,
    offset: OFFSET,
    length: LENGTH,
    iova: IOVA,
    fd: s.exporter.fd,
    access: ACCESS,
    lkeyPtr,
    rkeyPtr: s.rdma.userMem.alloc(4),
    mlx5Access: DD,
  });
  const reg = s.rdma.spawnIoctl("reg", s.ctx.fd, RDMA_VERBS_IOCTL, new UserBuffer(bytes));
  assert.equal(s.rdma.sched.step(reg), "progress");
  assert.equal(s.ib.ddLock.owner?.name, "reg");
  const rm = s.rdma.sched.spawn("remove", s.rdma.dd.remove(s.dmaPf));
  assert.equal(s.rdma.sched.step(rm), "blocked", "unbind waits for data_direct_lock");
  assert.equal(s.rdma.dd.mutex.owner?.name, "remove", "holding the global mutex meanwhile");
  s.rdma.sched.runAll([reg, rm]);
  assert.equal(reg.error, undefined);
  assert.equal(reg.result, 0);
  const lkey = new DataView(s.rdma.userMem.view(lkeyPtr)!.buffer).getUint32(0, true);
  const r = s.rdma.translate(s.ib, { key: lkey, addr: IOVA, length: 64n, access: "remote-write" });
  assert.equal(!r.ok && r.reason, "revoked", "registered, then revoked");
  assert.equal(s.ib.ddState, "UNBOUND");
  assert.equal(s.exporter.pinCount, 0);
  assert.ok(!s.m.diag.has("lockdep:inversion"), s.m.diag.names().join(","));

  // (b) the removal wins: the registration finds no PF
  const t = setup();
  const rm2 = t.rdma.sched.spawn("remove", t.rdma.dd.remove(t.dmaPf));
  t.rdma.sched.runAll([rm2]);
  assert.equal(t.regDD(), null);
  assert.equal(t.lib.errno, errnoOf("EINVAL"));
  assert.equal(t.exporter.attachments, 0);
});

test("DD-44 'v6.19': a pinnable exporter's move_notify on a DD MR → warn:pinned-invalidate, mapping unchanged, MR works ('v7.0': note:invalidate-skipped)", () => {
  const s = setup();
  const mr = s.regDD()!;
  const umem = s.kmr(mr).ddCrossedMr!.umem!;
  const sgt = umem.sgt;
  const before = ok(s.write(mr, IOVA, 4096n));
  s.exporter.moveNotify();
  assert.ok(s.m.diag.has("warn:pinned-invalidate"));
  assert.equal(umem.sgt, sgt, "mapping unchanged");
  assert.equal(ok(s.write(mr, IOVA, 4096n)).dmaAddress, before.dmaAddress);
  assert.ok(s.exporter.isMappingValid(sgt!), "a pinned mapping stays valid for the exporter");

  const t = setup({ rdma: { kernelProfile: "v7.0" } });
  const m2 = t.regDD()!;
  assert.equal(t.kmr(m2).ddCrossedMr!.umem!.attach.importerOps?.moveNotify, undefined);
  t.exporter.moveNotify();
  assert.ok(t.m.diag.has("note:invalidate-skipped"));
  assert.ok(!t.m.diag.has("warn:pinned-invalidate"));
  ok(t.write(m2, IOVA, 4096n));
});

test("DD-45 IB device removed with a live DD MR → MR deregistered, registration unlinked, the PF stays bound to another matching IB device", () => {
  const s = setup();
  const ib2 = s.rdma.addMlx5Device(BDF.NIC2, { vhcaId: 6, firmwareVuid: VUID });
  const mr = s.regDD()!;
  assert.equal(s.exporter.attachments, 1);
  s.rdma.removeIbDevice(s.ib);
  assert.equal(s.exporter.attachments, 0);
  assert.equal(s.exporter.pinCount, 0);
  assert.deepEqual(
    s.rdma.dd.regList.map((r) => r.ibdev),
    [ib2],
  );
  assert.equal(ib2.ddState, "BOUND");
  assert.equal(s.ib.mkeys.size, 0, "data-direct mkeys and PD destroyed too");
  // the old context is disassociated: calls fail with EIO, a destroy reads as done
  assert.equal(ibvDeregMr(mr), 0);
  const again = mlx5dvRegDmabufMr(s.pd, OFFSET, LENGTH, IOVA, s.exporter.fd, ACCESS, DD);
  assert.equal(again, null);
  assert.equal(s.lib.errno, errnoOf("EIO"));
});

test("DD-46 module unload: the data-direct driver goes first (every PF removed, MRs revoked) before IB devices are destroyed", () => {
  const s = setup();
  const ib2 = s.rdma.addMlx5Device(BDF.NIC2, { vhcaId: 6, firmwareVuid: VUID });
  const ctx2 = ibvOpenDevice(s.lib, ib2.name)!;
  const pd2 = ibvAllocPd(ctx2)!;
  s.regDD();
  mlx5dvRegDmabufMr(pd2, OFFSET, LENGTH, IOVA, s.exporter.fd, ACCESS, DD);
  s.rdma.probeDmaPf(BDF.DMA_PF_B);
  const mark = s.m.log.length;
  s.rdma.moduleExit();
  const ops = rdmaOps(s, mark);
  const lastRevoke = ops.map((o) => o.startsWith("mr-revoke")).lastIndexOf(true);
  const firstRemove = indexOf(ops, "ib-device-remove");
  assert.equal(ops.filter((o) => o.startsWith("mr-revoke")).length, 2);
  assert.ok(lastRevoke < firstRemove);
  assert.ok(indexOf(ops, "dd-remove") < firstRemove);
  assert.equal(ops.filter((o) => o.startsWith("dd-remove")).length, 2);
  assert.equal(s.rdma.devices.length, 0);
  assert.equal(s.rdma.dd.devList.length, 0);
  assert.equal(s.rdma.dd.regList.length, 0);
  assert.equal(s.exporter.attachments, 0);
  assert.equal(s.dmaPf.driver, null);
  // and module init brings it all back in the other order
  const devs = s.rdma.moduleInit([{ pdev: BDF.NIC, cfg: { vhcaId: 5, firmwareVuid: VUID } }]);
  assert.equal(devs[0].ddState, "BOUND");
  assert.equal(devs[0].dataDirectDev?.pdev, s.dmaPf, "first PF in scan order");
});

test("DD-47 ibv_rereg_mr on a DD MR → IBV_REREG_MR_ERR_INPUT (-1), errno EINVAL; MR unchanged", () => {
  const s = setup();
  const mr = s.regDD()!;
  const k: Mlx5Mr = s.kmr(mr);
  const ret = ibvReregMr(mr, IBV_REREG_MR.CHANGE_ACCESS, null, 0n, 0n, ACCESS);
  assert.equal(ret, IBV_REREG_MR_ERR_INPUT);
  assert.equal(ret, -1);
  assert.equal(s.lib.errno, errnoOf("EINVAL"));
  assert.equal(s.kmr(mr), k);
  assert.equal(k.access, ACCESS);
  ok(s.write(mr, IOVA, 64n));
});
