/**
 * §13.8 Revocation: EPa exports X then Y; importers A then B attach to X, C to Y (all EPb, so every
 * map is BUS_ADDR); MN=y; all mapped.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createEventfd } from "../../src/core/file.js";
import type { DynamicImporter } from "../../src/dmabuf/importer.js";
import { PCI_COMMAND, PCI_EXP_DEVCTL, PCI_EXP_DEVCTL_BCR_FLR, PCI_PM_CTRL } from "../../src/pci/regs.js";
import {
  encodeHotReset,
  encodeLowPowerWakeup,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_IOCTL,
} from "../../src/vfio/index.js";
import { type FName, fn } from "../helpers/spec-f.js";
import { call, isBug, page, type VfioFOptions, vfioF } from "../helpers/vfio-f.js";

const one = [{ offset: 0n, length: page(1) }];
const MEM_OFF = 0x4;
const MEM_ON = 0x6;
const SET = VFIO_DEVICE_FEATURE_SET;

function setup(o: VfioFOptions & { exporter?: FName; importerDev?: FName } = {}) {
  const t = vfioF(o);
  const devFd = o.exporter ? t.m.vfio.open(t.dev[o.exporter].bdf) : t.fd;
  const vdev = t.m.vfio.deviceOf(devFd);
  const X = t.exportBuf(0, one, devFd);
  const Y = t.exportBuf(0, one, devFd);
  const on = o.importerDev ?? "EPb";
  const A = t.importer(on, "A");
  const B = t.importer(on, "B");
  const C = t.importer(on, "C");
  A.attach(X.buf);
  B.attach(X.buf);
  C.attach(Y.buf);
  for (const i of [A, B, C]) i.map();
  const imps: Record<string, DynamicImporter> = { A, B, C };
  const mark = () => {
    const seq = t.m.log.length;
    const base = Object.fromEntries(Object.entries(imps).map(([k, v]) => [k, v.notifications]));
    return {
      /** notifications per importer since mark() */
      n: () => Object.fromEntries(Object.entries(imps).map(([k, v]) => [k, v.notifications - base[k]])),
      order: () =>
        t.m.log.since(seq).flatMap((e) => (e.event.kind === "move-notify" ? [e.event.attachment] : [])),
    };
  };
  const states = () => vdev.dmabufs.map((p) => p.state);
  const cmd = (v: number) => t.configWrite(PCI_COMMAND, 2, v, devFd);
  return { ...t, devFd, vdev, X, Y, A, B, C, mark, states, cmd };
}

const each = (n: number) => ({ A: n, B: n, C: n });

test("K-115 COMMAND = MASTER only → X, Y SUSPENDED; B before A, X's before Y's; map -ENODEV; attach -ENODEV; old unmap 0", () => {
  const s = setup();
  const k = s.mark();
  assert.equal(s.cmd(MEM_OFF).errno, null);
  assert.deepEqual(s.states(), ["SUSPENDED", "SUSPENDED"]);
  assert.deepEqual(k.order(), ["B", "A", "C"]);
  assert.equal(call(() => s.A.map()).errno, "ENODEV");
  assert.equal(call(() => s.importer("EPb", "D").attach(s.X.buf)).errno, "ENODEV");
  assert.equal(call(() => s.A.unmap()).errno, null);
  // B still holds its old table: using it now is the protocol violation move_notify forbids
  assert.equal(s.B.dma(s.B.mappings[0]), false);
  assert.equal(s.B.violations.length, 1);
});

test("K-116 repeating the same write → no notifications", () => {
  const s = setup();
  s.cmd(MEM_OFF);
  const k = s.mark();
  s.cmd(MEM_OFF);
  assert.deepEqual(k.n(), each(0));
});

test("K-117 COMMAND = MEMORY|MASTER → ACTIVE, one notification each; re-map gives the same addresses", () => {
  const s = setup();
  const before = s.A.mappings[0].sgt.sgl[0].dmaAddress;
  s.cmd(MEM_OFF);
  s.A.unmap();
  const k = s.mark();
  s.cmd(MEM_ON);
  assert.deepEqual(k.n(), each(1));
  assert.deepEqual(s.states(), ["ACTIVE", "ACTIVE"]);
  assert.equal(s.A.map().sgt.sgl[0].dmaAddress, before);
});

test("K-118 toggling MASTER with MEMORY kept → no notifications; COMMAND reads back MASTER set then clear", () => {
  const s = setup();
  const k = s.mark();
  s.cmd(0x2); // MEMORY only
  assert.equal(s.m.vfio.configRead(s.devFd, PCI_COMMAND, 2) & 0x4, 0);
  s.cmd(0x6);
  assert.equal(s.m.vfio.configRead(s.devFd, PCI_COMMAND, 2) & 0x4, 0x4);
  assert.deepEqual(k.n(), each(0));
});

test("K-119 1-byte write at offset 4 with 0x04 → revoke; 1-byte write at offset 5 → nothing", () => {
  const s = setup();
  const k = s.mark();
  s.configWrite(5, 1, 0x00);
  assert.deepEqual(k.n(), each(0));
  s.configWrite(4, 1, 0x04);
  assert.deepEqual(k.n(), each(1));
  assert.deepEqual(s.states(), ["SUSPENDED", "SUSPENDED"]);
});

test("K-120 4-byte write at offset 4 whose low word lacks MEMORY → revoke", () => {
  const s = setup();
  const k = s.mark();
  s.configWrite(4, 4, 0x0010_0004);
  assert.deepEqual(k.n(), each(1));
});

test("K-121 the exporter is a VF: COMMAND with MEMORY=0 → 2 notifications each (revoke + un-revoke), ACTIVE", () => {
  const s = setup({
    mutate: (m) => {
      fn(m, "EPb").sriov = {
        totalVfs: 8,
        numVfs: 1,
        vfOffset: 1,
        vfStride: 1,
        vfDevice: 0x101e,
        vfBars: [{ index: 0, type: "mem64", prefetch: true, size: "1MiB" }],
      };
    },
    exporter: "EPbVF",
    importerDev: "EPa",
  });
  const k = s.mark();
  s.cmd(MEM_OFF);
  assert.deepEqual(k.n(), each(2));
  assert.deepEqual(s.states(), ["ACTIVE", "ACTIVE"]);
});

test("K-122 PM_CTRL D3hot → SUSPENDED, notify 1; D0 → ACTIVE, notify 1", () => {
  const s = setup();
  const pm = s.dev.EPa.pmCapOffset + PCI_PM_CTRL;
  const k = s.mark();
  s.configWrite(pm, 2, 3);
  assert.deepEqual(k.n(), each(1));
  assert.deepEqual(s.states(), ["SUSPENDED", "SUSPENDED"]);
  assert.equal(s.dev.EPa.powerState, 3);
  s.configWrite(pm, 2, 0);
  assert.deepEqual(k.n(), each(2));
  assert.deepEqual(s.states(), ["ACTIVE", "ACTIVE"]);
});

test("K-123 virtual MEMORY=0: PM_CTRL D3hot then D0 → no notifications, still SUSPENDED", () => {
  const s = setup();
  s.cmd(MEM_OFF);
  const pm = s.dev.EPa.pmCapOffset + PCI_PM_CTRL;
  const k = s.mark();
  s.configWrite(pm, 2, 3);
  s.configWrite(pm, 2, 0);
  assert.deepEqual(k.n(), each(0));
  assert.deepEqual(s.states(), ["SUSPENDED", "SUSPENDED"]);
});

test("K-124 DEVCTL write with BCR_FLR → reset, notify 2, ACTIVE, BCR_FLR reads 0; without DEVCAP.FLR → nothing", () => {
  const s = setup();
  const devctl = s.dev.EPa.pcieCapOffset + PCI_EXP_DEVCTL;
  const k = s.mark();
  s.configWrite(devctl, 2, s.dev.EPa.configRead(devctl, 2) | PCI_EXP_DEVCTL_BCR_FLR);
  assert.deepEqual(k.n(), each(2));
  assert.deepEqual(s.states(), ["ACTIVE", "ACTIVE"]);
  assert.equal(s.m.vfio.configRead(s.devFd, devctl, 2) & PCI_EXP_DEVCTL_BCR_FLR, 0);
  assert.ok(s.m.log.all().some((e) => e.event.kind === "reset" && e.event.method === "flr"));

  const n = setup({
    mutate: (m) => {
      fn(m, "EPa").flr = false;
    },
  });
  const k2 = n.mark();
  n.configWrite(devctl, 2, PCI_EXP_DEVCTL_BCR_FLR);
  assert.deepEqual(k2.n(), each(0));
});

test("K-125 AF_CTRL.FLR with AF_CAP TP|FLR → as K-124; with FLR only → nothing", () => {
  const withAf = (tp: boolean) => (m: Parameters<typeof fn>[0]) => {
    fn(m, "EPa").af = { flr: true, tp };
  };
  const s = setup({ mutate: withAf(true) });
  const af = s.dev.EPa.config.findCapability(0x13);
  const k = s.mark();
  s.configWrite(af + 4, 1, 1);
  assert.deepEqual(k.n(), each(2));
  assert.deepEqual(s.states(), ["ACTIVE", "ACTIVE"]);
  const n = setup({ mutate: withAf(false) });
  const k2 = n.mark();
  n.configWrite(n.dev.EPa.config.findCapability(0x13) + 4, 1, 1);
  assert.deepEqual(k2.n(), each(0));
});

test("K-126 VFIO_DEVICE_RESET → 0, notify 2 per importer, ACTIVE", () => {
  const s = setup();
  const k = s.mark();
  assert.deepEqual(s.reset(), { ret: 0, errno: null });
  assert.deepEqual(k.n(), each(2));
  assert.deepEqual(s.states(), ["ACTIVE", "ACTIVE"]);
});

test("K-127 VFIO_DEVICE_RESET while SUSPENDED by COMMAND → 0, notify 0, still SUSPENDED", () => {
  const s = setup();
  s.cmd(MEM_OFF);
  const k = s.mark();
  assert.equal(s.reset().errno, null);
  assert.deepEqual(k.n(), each(0));
  assert.deepEqual(s.states(), ["SUSPENDED", "SUSPENDED"]);
});

test("K-128 VFIO_DEVICE_RESET without a working reset → -EINVAL, notify 0", () => {
  // no FLR, no PM reset, and a sibling on the bus rules out a bus reset: the reset at open failed
  const s = setup({
    mutate: (m) => {
      const epa = fn(m, "EPa");
      epa.flr = false;
      epa.pm = false;
      fn(m, "DSPa").below!.push({ at: "00.1", id: "1b36:0010", class: 0x010802, name: "EPe" });
    },
  });
  assert.equal(s.vdev.resetWorks, false);
  const k = s.mark();
  assert.equal(s.reset().errno, "EINVAL");
  assert.deepEqual(k.n(), each(0));
});

test("K-129 VFIO_DEVICE_RESET whose reset finds the device lock contended → -EAGAIN, notify 2, ACTIVE", () => {
  const s = setup();
  s.vdev.faults.resetContended = true;
  const k = s.mark();
  assert.equal(s.reset().errno, "EAGAIN");
  assert.deepEqual(k.n(), each(2));
  assert.deepEqual(s.states(), ["ACTIVE", "ACTIVE"]);
});

/** EPe = 03:00.1, a second function on EPa's bus: the dev_set is {EPa, EPe}. */
function hotResetSetup(open = true) {
  const s = setup({
    mutate: (m) => {
      fn(m, "DSPa").below!.push({
        at: "00.1",
        id: "1b36:0010",
        class: 0x010802,
        name: "EPe",
        bars: [{ index: 0, type: "mem64", prefetch: true, size: "1MiB" }],
      });
    },
  });
  const epe = s.m.device("0000:03:00.1");
  const eFd = open ? s.m.vfio.open(epe.bdf) : -1;
  if (!open) s.m.vfio.bind(epe);
  const eVdev = s.m.vfio.devices.get(epe)!;
  let D: DynamicImporter | null = null;
  if (open) {
    const Z = s.exportBuf(0, one, eFd);
    D = s.importer("EPb", "D");
    D.attach(Z.buf);
    D.map();
  }
  const hot = () =>
    s.ioctl(VFIO_IOCTL.VFIO_DEVICE_PCI_HOT_RESET, encodeHotReset([s.devFd, eFd].filter((f) => f >= 0)));
  return { ...s, eVdev, D, hot };
}

test("K-130 hot reset of {EPa, EPe} → 0; every importer notify 2; revoke in set order, restore in reverse", () => {
  const s = hotResetSetup();
  assert.deepEqual(
    s.m.vfio.devSet(s.vdev).map((d) => d.bdf),
    ["0000:03:00.0", "0000:03:00.1"],
  );
  const k = s.mark();
  const seq = s.m.log.length;
  assert.equal(s.hot().errno, null);
  assert.deepEqual(k.n(), each(2));
  assert.equal(s.D!.notifications, 2);
  const flow = s.m.log
    .since(seq)
    .flatMap((e) =>
      e.event.kind === "revoke" || e.event.kind === "restore" ? [`${e.event.kind} ${e.event.device}`] : [],
    );
  assert.deepEqual(flow, [
    "revoke 0000:03:00.0",
    "revoke 0000:03:00.0",
    "revoke 0000:03:00.1",
    "restore 0000:03:00.1",
    "restore 0000:03:00.0",
    "restore 0000:03:00.0",
  ]);
});

test("K-131 hot reset with EPe's memory_lock contended → -EBUSY; EPa's importers notify 2, EPe's 0; no reset", () => {
  const s = hotResetSetup();
  s.eVdev.memoryLock.contended = true;
  const k = s.mark();
  const seq = s.m.log.length;
  assert.equal(s.hot().errno, "EBUSY");
  assert.deepEqual(k.n(), each(2));
  assert.equal(s.D!.notifications, 0);
  assert.ok(!s.m.log.since(seq).some((e) => e.event.kind === "reset"));
});

test("K-132 hot reset where EPe fails the ownership check → -EINVAL; EPa revoke + undo; EPe untouched", () => {
  const s = hotResetSetup();
  s.eVdev.faults.foreignOwner = true;
  const k = s.mark();
  assert.equal(s.hot().errno, "EINVAL");
  assert.deepEqual(k.n(), each(2));
  assert.equal(s.D!.notifications, 0);
});

test("K-133 hot reset with EPe in the set but not open → succeeds; EPa notify 2", () => {
  const s = hotResetSetup(false);
  const k = s.mark();
  assert.equal(s.hot().errno, null);
  assert.deepEqual(k.n(), each(2));
  assert.equal(s.eVdev.openCount, 0);
});

test("K-134 LOW_POWER_ENTRY (SET) → 0, notify 1, D3hot; again → -EINVAL, notify 0, SUSPENDED", () => {
  const s = setup();
  const k = s.mark();
  assert.equal(s.lowPower(3, SET).errno, null);
  assert.deepEqual(k.n(), each(1));
  assert.equal(s.dev.EPa.powerState, 3);
  assert.equal(s.lowPower(3, SET).errno, "EINVAL");
  assert.deepEqual(k.n(), each(1));
  assert.deepEqual(s.states(), ["SUSPENDED", "SUSPENDED"]);
});

test("K-135 LOW_POWER_ENTRY with GET → -EINVAL, notify 0", () => {
  const s = setup();
  const k = s.mark();
  assert.equal(s.lowPower(3, VFIO_DEVICE_FEATURE_GET).errno, "EINVAL");
  assert.deepEqual(k.n(), each(0));
});

test("K-136 LOW_POWER_EXIT after K-134 → 0, notify 1, ACTIVE", () => {
  const s = setup();
  s.lowPower(3, SET);
  const k = s.mark();
  assert.equal(s.lowPower(5, SET).errno, null);
  assert.deepEqual(k.n(), each(1));
  assert.deepEqual(s.states(), ["ACTIVE", "ACTIVE"]);
  assert.equal(s.dev.EPa.powerState, 0);
});

function wakeupSetup() {
  const s = setup();
  const efd = createEventfd(s.m.fds);
  assert.equal(s.lowPower(4, SET, encodeLowPowerWakeup(efd)).errno, null);
  return s;
}

test("K-137 ENTRY_WITH_WAKEUP, then a wake-up → eventfd signalled, engaged cleared, still SUSPENDED; EXIT → ACTIVE notify 1", () => {
  const s = wakeupSetup();
  const k = s.mark();
  s.m.vfio.wake(s.vdev);
  assert.ok(s.m.log.all().some((e) => e.event.kind === "eventfd-signal"));
  assert.equal(s.vdev.lowPower.engaged, false);
  assert.deepEqual(k.n(), each(0));
  assert.deepEqual(s.states(), ["SUSPENDED", "SUSPENDED"]);
  assert.equal(s.lowPower(5, SET).errno, null);
  assert.deepEqual(k.n(), each(1));
  assert.deepEqual(s.states(), ["ACTIVE", "ACTIVE"]);
});

test("K-138 COMMAND write whose physical write fails: MEMORY=0 → error, SUSPENDED, notify 1; MEMORY=1 → notify 0", () => {
  const s = setup();
  s.vdev.faults.configWrite = "EIO";
  const k = s.mark();
  assert.equal(s.cmd(MEM_OFF).errno, "EIO");
  assert.deepEqual(k.n(), each(1));
  assert.deepEqual(s.states(), ["SUSPENDED", "SUSPENDED"]);
  const t = setup();
  t.vdev.faults.configWrite = "EIO";
  const k2 = t.mark();
  assert.equal(t.cmd(MEM_ON).errno, "EIO");
  assert.deepEqual(k2.n(), each(0));
});

test("K-139 closing the device with buffers ACTIVE → notify 1 each; DEAD; registration back; attach/map -ENODEV, unmap/detach 0", () => {
  const s = setup();
  const base = s.vdev.registration - 2;
  const k = s.mark();
  s.m.vfio.close(s.devFd);
  assert.deepEqual(k.n(), each(1));
  assert.equal(s.X.buf.priv && (s.X.buf.priv as { state: string }).state, "DEAD");
  assert.equal(s.vdev.registration, base);
  assert.equal(call(() => s.importer("EPb", "D").attach(s.X.buf)).errno, "ENODEV");
  assert.equal(call(() => s.A.map()).errno, "ENODEV");
  assert.equal(call(() => s.A.unmap()).errno, null);
  assert.equal(call(() => s.A.detach()).errno, null);
});

test("K-140 close while SUSPENDED by COMMAND → notify 1 (cleanup always notifies)", () => {
  const s = setup();
  s.cmd(MEM_OFF);
  const k = s.mark();
  s.m.vfio.close(s.devFd);
  assert.deepEqual(k.n(), each(1));
});

test("K-141 close after K-137's wake (SUSPENDED, D0, MEMORY=1) → notify 2 (low-power exit restores, cleanup revokes)", () => {
  const s = wakeupSetup();
  s.m.vfio.wake(s.vdev);
  const k = s.mark();
  s.m.vfio.close(s.devFd);
  assert.deepEqual(k.n(), each(2));
});

test("K-142 close, reopen, COMMAND MEMORY=1 → X and Y stay DEAD; a new export works", () => {
  const s = setup();
  s.m.vfio.close(s.devFd);
  const fd2 = s.m.vfio.open(s.dev.EPa.bdf);
  s.configWrite(PCI_COMMAND, 2, MEM_ON, fd2);
  assert.equal(call(() => s.importer("EPb", "D").attach(s.X.buf)).errno, "ENODEV");
  assert.equal(call(() => s.importer("EPb", "E").attach(s.Y.buf)).errno, "ENODEV");
  assert.equal(s.exportRanges(0, one, {}, fd2).errno, null);
});

test("K-143 a buffer fd closed by its last holder → unlinked, registration put, no notification; later events skip it", () => {
  const s = setup();
  const Z = s.exportBuf(0, one);
  const reg = s.vdev.registration;
  const seq = s.m.log.length;
  s.m.fds.close(Z.fd);
  assert.equal(s.vdev.dmabufs.length, 2);
  assert.equal(s.vdev.registration, reg - 1);
  assert.ok(!s.m.log.since(seq).some((e) => e.event.kind === "move-notify"));
  s.cmd(MEM_OFF);
  assert.ok(!s.m.log.since(seq).some((e) => e.event.kind === "revoke" && e.event.dmabuf === Z.buf.label));
});

test("K-144 cleanup racing a buffer whose file count reached zero → skipped (no notification, still linked), unlinked by its release", () => {
  const s = setup();
  const f = s.Y.buf.file;
  f.refs = 0; // the last fput happened; release has not run yet
  const k = s.mark();
  s.m.vfio.close(s.devFd);
  assert.deepEqual(k.n(), { A: 1, B: 1, C: 0 });
  assert.equal(s.vdev.dmabufs.length, 1, "Y is still linked");
  f.ops.release!(f);
  assert.equal(s.vdev.dmabufs.length, 0);
});

test("K-145 unbinding after close with DEAD buffer fds still open completes (DEAD buffers hold no registration)", () => {
  const s = setup();
  s.m.vfio.close(s.devFd);
  assert.ok(s.m.fds.peek(s.X.fd));
  assert.deepEqual(s.m.vfio.unbind(s.vdev), { completed: true });
});

test("K-146 lock order memory_lock → dma_resv; move_notify runs with resv held; re-taking resv in the callback → deadlock diagnostic", () => {
  const s = setup();
  let heldInside: string[] = [];
  const X = s.X.buf;
  const spy = s.importer("EPb", "S");
  spy.attach(X);
  const orig = X.attachments[0].importerOps!.moveNotify!;
  X.attachments[0].importerOps!.moveNotify = (a) => {
    heldInside = s.m.locks.heldClasses();
    orig(a);
  };
  s.cmd(MEM_OFF);
  assert.deepEqual(heldInside, ["memory_lock", "dma_resv"]);
  assert.ok(s.m.locks.order().includes("memory_lock>dma_resv"));
  const bad = setup();
  bad.importer("EPb", "R", { relockInNotify: true }).attach(bad.X.buf);
  assert.ok(isBug(() => bad.m.vfio.configWrite(bad.devFd, PCI_COMMAND, 2, MEM_OFF)));
  assert.ok(bad.m.diag.has("deadlock:dma_resv"));
  assert.deepEqual(bad.m.locks.heldClasses(), [], "every lock released after the failure");
});

test("K-194 PF with VFs enabled: PM_CTRL D3hot → write succeeds, stays D0, notify 2, ACTIVE", () => {
  const s = setup({ exporter: "EPb", importerDev: "EPa" });
  const pm = s.dev.EPb.pmCapOffset + PCI_PM_CTRL;
  const k = s.mark();
  assert.equal(s.configWrite(pm, 2, 3, s.devFd).errno, null);
  assert.equal(s.dev.EPb.powerState, 0);
  assert.deepEqual(k.n(), each(2));
  assert.deepEqual(s.states(), ["ACTIVE", "ACTIVE"]);
});

test("K-195 ENTRY_WITH_WAKEUP: eventfd -1 → -EINVAL; a non-eventfd → -EINVAL; a closed fd → -EBADF; notify 0, not engaged", () => {
  const s = setup();
  const k = s.mark();
  assert.equal(s.lowPower(4, SET, encodeLowPowerWakeup(-1)).errno, "EINVAL");
  assert.equal(s.lowPower(4, SET, encodeLowPowerWakeup(s.X.fd)).errno, "EINVAL");
  assert.equal(s.lowPower(4, SET, encodeLowPowerWakeup(777)).errno, "EBADF");
  assert.deepEqual(k.n(), each(0));
  assert.equal(s.vdev.lowPower.engaged, false);
  assert.deepEqual(s.states(), ["ACTIVE", "ACTIVE"]);
});
