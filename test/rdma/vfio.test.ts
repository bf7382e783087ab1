/** rdma-data-direct.md §2, §8.4, §9.4: data direct and plain MRs on a VFIO dma-buf (DD-34 … DD-37). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { UserBuffer } from "../../src/core/file.js";
import { PCI_COMMAND } from "../../src/pci/regs.js";
import { IBV_WC, ibvDeregMr } from "../../src/rdma/index.js";
import type { VfioDmaBuf } from "../../src/vfio/dma-buf.js";
import { VFIO_IOCTL } from "../../src/vfio/index.js";
import { errnoOf, GPU_BAR, IOVA, ok, setup } from "./setup.js";

const MEM_OFF = 0x4;
const MEM_ON = 0x6;

function kinds(s: ReturnType<typeof setup>, mark: number): string[] {
  return s.m.log.since(mark).map((e) => e.event.kind);
}

test("DD-34 'v6.19': a VFIO dma-buf → data-direct registration fails with -EOPNOTSUPP at pin; no attachment remains", () => {
  const s = setup({ exporter: false });
  const x = s.vfioExport();
  const buf = s.m.fds.peek(x.fd)!.priv as { attachments: unknown[]; file: { refs: number } };
  const mark = s.m.log.length;
  const mr = s.regDD({ fd: x.fd });
  assert.equal(mr, null);
  assert.equal(s.lib.errno, errnoOf("EOPNOTSUPP"));
  const k = kinds(s, mark);
  assert.ok(k.includes("attach") && k.includes("detach"), "attached, then released");
  assert.ok(!k.includes("map"), "never mapped");
  assert.equal(buf.attachments.length, 0);
  assert.equal(buf.file.refs, 1);
  assert.equal(s.ib.dataDirectMrList.length, 0);
});

test("DD-35 'v7.0': the same → -EOPNOTSUPP at attach (not revocable); pin never called", () => {
  const s = setup({ exporter: false, rdma: { kernelProfile: "v7.0" } });
  assert.equal(s.m.kernel.revokeSemantics, "revocable_wait");
  const x = s.vfioExport();
  const vbuf = s.m.fds.peek(x.fd)!.priv as { attachments: unknown[]; ops: { pin?: unknown } };
  assert.equal(vbuf.ops.pin, undefined, "the v7.0 VFIO exporter has no pin op");
  const mark = s.m.log.length;
  assert.equal(s.regDD({ fd: x.fd }), null);
  assert.equal(s.lib.errno, errnoOf("EOPNOTSUPP"));
  assert.ok(!kinds(s, mark).includes("attach"), "the exporter's attach refused it");
  assert.equal(vbuf.attachments.length, 0);
});

test("DD-36 'v7.0' + ddRevocablePinned (projected): success; VFIO reset revokes the crossed MR (still listed), access fails, it stays revoked; dereg → 0, no attachment", () => {
  const s = setup({ exporter: false, rdma: { kernelProfile: "v7.0", ddRevocablePinned: true } });
  const x = s.vfioExport();
  const vbuf = s.m.fds.peek(x.fd)!.priv as { attachments: unknown[]; priv: VfioDmaBuf };
  const mr = s.regDD({ fd: x.fd });
  assert.ok(mr, `errno ${s.lib.errno}`);
  const crossing = s.kmr(mr);
  const crossed = crossing.ddCrossedMr!;
  assert.equal(crossing.projected, true);
  assert.equal(crossed.projected, true);
  const w = ok(s.write(mr, IOVA + 0x1000n, 4096n));
  assert.equal(w.projected, true);
  assert.equal(w.dmaAddress, GPU_BAR + 0x11000n);
  assert.equal(w.issuer, s.dmaPf);
  assert.equal(vbuf.priv.liveMappings, 1);

  const mark = s.m.log.length;
  assert.equal(s.m.vfio.ioctl(x.vfd, VFIO_IOCTL.VFIO_DEVICE_RESET, new UserBuffer(new Uint8Array(0))), 0);
  assert.ok(crossed.revoked);
  assert.equal(crossed.mmkey!.state, "disabled");
  assert.equal(crossed.umem!.revoked, true);
  assert.equal(crossed.umem!.sgt, null);
  assert.equal(crossed.umem!.pinned, false);
  assert.deepEqual(s.ib.dataDirectMrList, [crossed], "still in data_direct_mr_list");
  assert.equal(vbuf.priv.liveMappings, 0, "unmapped inside the notification: VFIO's wait returns");
  assert.ok(!s.m.diag.has("deadlock:revoke-wait"));
  const revokeEvents = s.m.log
    .since(mark)
    .flatMap((e) => (e.event.kind === "rdma" && e.event.op === "mr-revoke" ? [e.event] : []));
  assert.equal(revokeEvents.length, 1);
  assert.equal(revokeEvents[0].projected, true);
  // the reset finished and memory is enabled again: the MR stays dead
  assert.equal(vbuf.priv.state, "ACTIVE");
  const f = s.write(mr, IOVA + 0x1000n, 4096n);
  assert.equal(f.ok, false);
  assert.equal(!f.ok && f.status, IBV_WC.REM_ACCESS_ERR);
  assert.equal(!f.ok && f.reason, "revoked");
  assert.equal(!f.ok && f.projected, true);
  assert.equal(ibvDeregMr(mr), 0);
  assert.equal(vbuf.attachments.length, 0);
  assert.equal(s.ib.dataDirectMrList.length, 0);
});

test("DD-37 plain MR on a VFIO buffer, MOVE_NOTIFY=y: memory off → zapped, access faults with -ENODEV; memory on → next access works; MOVE_NOTIFY=n → registration -EOPNOTSUPP", () => {
  const s = setup({ exporter: false });
  const x = s.vfioExport();
  const mr = s.regPlain({ fd: x.fd });
  assert.ok(mr, `errno ${s.lib.errno}`);
  const k = s.kmr(mr);
  const first = ok(s.write(mr, IOVA, 4096n));
  assert.equal(first.issuer, s.nicPf);
  assert.equal(first.faulted, false);
  s.m.vfio.configWrite(x.vfd, PCI_COMMAND, 2, MEM_OFF);
  assert.equal(k.mmkey!.mttValid, false, "the invalidate callback zapped the MTT");
  assert.equal(k.umem!.sgt, null, "and unmapped");
  const f = s.write(mr, IOVA, 4096n);
  assert.equal(f.ok, false);
  assert.equal(!f.ok && f.reason, "fault");
  assert.equal(!f.ok && f.errno, "ENODEV");
  assert.equal(!f.ok && f.status, IBV_WC.REM_ACCESS_ERR);
  s.m.vfio.configWrite(x.vfd, PCI_COMMAND, 2, MEM_ON);
  const again = ok(s.write(mr, IOVA, 4096n));
  assert.equal(again.faulted, true, "mapped again by the fault, no re-registration");
  assert.equal(again.dmaAddress, first.dmaAddress);
  assert.equal(ibvDeregMr(mr), 0);

  const n = setup({ exporter: false, kernel: { moveNotify: false } });
  const y = n.vfioExport();
  const before = n.snapshot();
  assert.equal(n.regPlain({ fd: y.fd }), null);
  assert.equal(n.lib.errno, errnoOf("EOPNOTSUPP"));
  assert.deepEqual(n.snapshot(), before);
  const ybuf = n.m.fds.peek(y.fd)!.priv as { attachments: unknown[] };
  assert.equal(ybuf.attachments.length, 0);
});
