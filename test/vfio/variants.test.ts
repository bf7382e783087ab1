/** §13.13 post-6.19 variants (K-187 … K-193) and TPH on dma-buf (tph-and-tlp §12.3, TPH-20 … TPH-25). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createEventfd } from "../../src/core/file.js";
import { DynamicImporter } from "../../src/dmabuf/importer.js";
import { PCI_COMMAND } from "../../src/pci/regs.js";
import {
  encodeDmaBufTph,
  encodeFeature,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
} from "../../src/vfio/index.js";
import { fn } from "../helpers/spec-f.js";
import { call, isBug, page, type VfioFOptions, vfioF } from "../helpers/vfio-f.js";

const one = [{ offset: 0n, length: page(1) }];
const SET = VFIO_DEVICE_FEATURE_SET;

test("K-187 revocable_wait: an importer without invalidate → attach -EOPNOTSUPP; dma_buf_pin → 0", () => {
  const t = vfioF({ kernel: { revokeSemantics: "revocable_wait" } });
  const { buf } = t.exportBuf(0, one);
  assert.equal(call(() => t.importer("EPb", "N", { withMoveNotify: false }).attach(buf)).errno, "EOPNOTSUPP");
  const a = t.importer("EPb", "A").attach(buf);
  assert.equal(call(() => buf.resv.with(() => t.m.dmabuf.pin(a))).errno, null, "pin ops are gone: a no-op");
  // and with MN=n a dynamic map still works (CONFIG_DMABUF_MOVE_NOTIFY removed)
  const u = vfioF({ kernel: { revokeSemantics: "revocable_wait", moveNotify: false } });
  const ub = u.exportBuf(0, one);
  const ua = u.importer("EPb", "A");
  ua.attach(ub.buf);
  assert.equal(call(() => ua.map()).errno, null);
});

test("K-188 revocable_wait: memory off while A unmaps in its callback returns cleanly; one that never unmaps → deadlock diagnostic", () => {
  const t = vfioF({ kernel: { revokeSemantics: "revocable_wait" } });
  const { buf } = t.exportBuf(0, one);
  const a = t.importer("EPb", "A", { unmapInNotify: true });
  a.attach(buf);
  a.map();
  assert.equal(t.configWrite(PCI_COMMAND, 2, 0x4).errno, null);
  assert.equal(a.mappings.length, 0);
  assert.ok(!t.m.diag.has("deadlock:revoke-wait"));

  const u = vfioF({ kernel: { revokeSemantics: "revocable_wait" } });
  const ub = u.exportBuf(0, one);
  const b = u.importer("EPb", "B");
  b.attach(ub.buf);
  b.map();
  u.configWrite(PCI_COMMAND, 2, 0x4);
  assert.ok(u.m.diag.has("deadlock:revoke-wait"));
});

test("K-189 closeOrder: at the close notification the physical COMMAND.MEMORY is still set with cleanup_then_disable, already clear in 6.19", () => {
  for (const [order, memory] of [
    ["cleanup_then_disable", true],
    ["disable_then_cleanup", false],
  ] as const) {
    const t = vfioF({ kernel: { closeOrder: order } });
    const { buf } = t.exportBuf(0, one);
    let seen: boolean | null = null;
    const imp = new DynamicImporter(t.m.dmabuf, t.dev.EPb, "A");
    imp.attach(buf);
    const orig = buf.attachments[0].importerOps!.moveNotify!;
    buf.attachments[0].importerOps!.moveNotify = (a) => {
      seen = t.dev.EPa.memoryDecodeEnabled;
      orig(a);
    };
    t.m.vfio.close(t.fd);
    assert.equal(seen, memory, order);
  }
});

const tphCompleter = (kind: "none" | "tph" | "ext") => (m: Parameters<typeof fn>[0]) => {
  fn(m, "EPa").tphCompleter = kind;
};

function tphSetup(o: VfioFOptions = {}) {
  const t = vfioF({ mutate: tphCompleter("ext"), ...o, kernel: { tphFeature: true, ...o.kernel } });
  const X = t.exportBuf(0, one);
  const tph = (a: Parameters<typeof encodeDmaBufTph>[0]) => t.feature(encodeDmaBufTph(a));
  const getTph = (ext: boolean) => call(() => X.buf.resv.with(() => t.m.dmabuf.getTph(X.buf, ext)));
  return { ...t, X, tph, getTph };
}

test("K-190 tphFeature (v9 order): completer none → -EOPNOTSUPP even with PROBE; flags 4 / ph 4 → -EINVAL; ST_EXT on TPH-only → -EOPNOTSUPP", () => {
  const none = tphSetup({ mutate: tphCompleter("none"), kernel: { tphSeriesVersion: "v9" } });
  assert.equal(none.tph({ fd: none.X.fd, flags: 1, st: 1 }).errno, "EOPNOTSUPP");
  assert.equal(none.feature(encodeFeature(VFIO_DEVICE_FEATURE_PROBE | SET | 13)).errno, "EOPNOTSUPP");
  const t = tphSetup({ kernel: { tphSeriesVersion: "v9" } });
  assert.equal(t.tph({ fd: t.X.fd, flags: 4 }).errno, "EINVAL");
  assert.equal(t.tph({ fd: t.X.fd, flags: 1, ph: 4 }).errno, "EINVAL");
  const only = tphSetup({ mutate: tphCompleter("tph") });
  assert.equal(only.tph({ fd: only.X.fd, flags: 2, stExt: 0x1234 }).errno, "EOPNOTSUPP");
  // another device's buffer → -EINVAL; a valid SET then get_tph(false) → the tag; get_tph(true) → -EOPNOTSUPP
  const other = t.m.vfio.open("0000:04:00.0");
  const Y = t.exportBuf(0, one, other);
  assert.equal(t.tph({ fd: Y.fd, flags: 1, st: 1 }).errno, "EINVAL");
  assert.equal(t.tph({ fd: t.X.fd, flags: 1, st: 0xf0, ph: 2 }).errno, null);
  assert.deepEqual(t.getTph(false), { ret: 0, errno: null });
  assert.deepEqual(
    t.X.buf.resv.with(() => t.m.dmabuf.getTph(t.X.buf, false)),
    { st: 0xf0, ph: 2 },
  );
  assert.equal(t.getTph(true).errno, "EOPNOTSUPP");
});

test("TPH-20 SET {ST 0xF0, PH 2} → get_tph(8-bit) gives 0xF0 / 2; extended → -EOPNOTSUPP", () => {
  const t = tphSetup();
  assert.equal(t.tph({ fd: t.X.fd, flags: 1, st: 0xf0, ph: 2 }).errno, null);
  assert.deepEqual(
    t.X.buf.resv.with(() => t.m.dmabuf.getTph(t.X.buf, false)),
    { st: 0xf0, ph: 2 },
  );
  assert.equal(t.getTph(true).errno, "EOPNOTSUPP");
});

test("TPH-21 the encoded ioctl: argsz 20, flags 0x0002000D, payload 05 00 00 00 01 00 00 00 00 00 F0 02", () => {
  const b = encodeDmaBufTph({ fd: 5, flags: 1, st: 0xf0, ph: 2 });
  const v = new DataView(b.buffer);
  assert.equal(v.getUint32(0, true), 20);
  assert.equal(v.getUint32(4, true), 0x0002000d);
  assert.equal(Buffer.from(b.subarray(8)).toString("hex"), "050000000100000000" + "00f002");
});

test("TPH-22 flags 0x4, ph 4, GET, argsz 19 → -EINVAL; closed fd → -EBADF; plain file → -EINVAL; another device's buffer → -EINVAL", () => {
  const t = tphSetup();
  assert.equal(t.tph({ fd: t.X.fd, flags: 4 }).errno, "EINVAL");
  assert.equal(t.tph({ fd: t.X.fd, flags: 1, ph: 4 }).errno, "EINVAL");
  assert.equal(t.tph({ fd: t.X.fd, flags: 1, featureFlags: VFIO_DEVICE_FEATURE_GET | 13 }).errno, "EINVAL");
  assert.equal(t.tph({ fd: t.X.fd, flags: 1, argsz: 19 }).errno, "EINVAL");
  assert.equal(t.tph({ fd: 30, flags: 1 }).errno, "EBADF");
  const plain = createEventfd(t.m.fds);
  assert.equal(t.tph({ fd: plain, flags: 1 }).errno, "EINVAL");
  const b = t.m.vfio.open("0000:04:00.0");
  const Y = t.exportBuf(0, one, b);
  assert.equal(t.tph({ fd: Y.fd, flags: 1 }).errno, "EINVAL");
});

test("TPH-23 completer 0: SET -EOPNOTSUPP, PROBE|SET 0 (v7) / -EOPNOTSUPP (v9); completer 1 + ST_EXT -EOPNOTSUPP; completer 0 + flags 4: -EINVAL (v7) / -EOPNOTSUPP (v9)", () => {
  const v7 = tphSetup({ mutate: tphCompleter("none") });
  assert.equal(v7.tph({ fd: v7.X.fd, flags: 1 }).errno, "EOPNOTSUPP");
  assert.equal(v7.feature(encodeFeature(VFIO_DEVICE_FEATURE_PROBE | SET | 13)).errno, null);
  assert.equal(v7.tph({ fd: v7.X.fd, flags: 4 }).errno, "EINVAL");
  const v9 = tphSetup({ mutate: tphCompleter("none"), kernel: { tphSeriesVersion: "v9" } });
  assert.equal(v9.feature(encodeFeature(VFIO_DEVICE_FEATURE_PROBE | SET | 13)).errno, "EOPNOTSUPP");
  assert.equal(v9.tph({ fd: v9.X.fd, flags: 4 }).errno, "EOPNOTSUPP");
  for (const version of ["v7", "v9"] as const) {
    const one1 = tphSetup({ mutate: tphCompleter("tph"), kernel: { tphSeriesVersion: version } });
    assert.equal(one1.tph({ fd: one1.X.fd, flags: 2, stExt: 1 }).errno, "EOPNOTSUPP", version);
  }
});

test("TPH-24 SET with flags 0 after TPH-20 → 0; get_tph → -EOPNOTSUPP for both widths", () => {
  const t = tphSetup();
  t.tph({ fd: t.X.fd, flags: 3, st: 0xf0, stExt: 0xabcd, ph: 2 });
  assert.equal(t.getTph(true).errno, null);
  assert.equal(t.tph({ fd: t.X.fd, flags: 0 }).errno, null);
  assert.equal(t.getTph(false).errno, "EOPNOTSUPP");
  assert.equal(t.getTph(true).errno, "EOPNOTSUPP");
});

test("TPH-25 get_tph on an exporter without the op → -EOPNOTSUPP; without the lock → KernelBug; tphFeature off → feature 13 -ENOTTY", () => {
  const off = vfioF({ mutate: tphCompleter("ext") });
  const X = off.exportBuf(0, one);
  assert.equal(call(() => X.buf.resv.with(() => off.m.dmabuf.getTph(X.buf, false))).errno, "EOPNOTSUPP");
  assert.ok(isBug(() => off.m.dmabuf.getTph(X.buf, false)));
  assert.equal(off.feature(encodeDmaBufTph({ fd: X.fd, flags: 1 })).errno, "ENOTTY");
});

const revokeReq = (fd: number, index = 13) => {
  const d = new Uint8Array(4);
  new DataView(d.buffer).setInt32(0, fd, true);
  return encodeFeature(SET | index, d);
};

test("K-191 revokeFeature: DMA_BUF_REVOKE → 0, then attach -ENODEV; again → -EBADFD; another device's buffer → -ENODEV; memory on does not restore", () => {
  const t = vfioF({ kernel: { revokeFeature: true } });
  const X = t.exportBuf(0, one);
  const a = t.importer("EPb", "A");
  a.attach(X.buf);
  assert.equal(t.feature(revokeReq(X.fd)).errno, null);
  assert.equal(a.notifications, 1);
  assert.equal(call(() => t.importer("EPb", "B").attach(X.buf)).errno, "ENODEV");
  assert.equal(t.feature(revokeReq(X.fd)).errno, "EBADFD");
  t.configWrite(PCI_COMMAND, 2, 0x4);
  t.configWrite(PCI_COMMAND, 2, 0x6);
  assert.equal(t.vdev.dmabufs[0].state, "DEAD");
  const other = t.m.vfio.open("0000:04:00.0");
  const Y = t.exportBuf(0, one, other);
  assert.equal(t.feature(revokeReq(Y.fd)).errno, "ENODEV");
});

test("K-192 memattrFeature: memattr 2 → -ENOENT; WC (1) → 0, recorded for later mmaps", () => {
  const t = vfioF({ kernel: { memattrFeature: true } });
  const X = t.exportBuf(0, one);
  const req = (memattr: number) => {
    const d = new Uint8Array(8);
    const v = new DataView(d.buffer);
    v.setInt32(0, X.fd, true);
    v.setUint32(4, memattr, true);
    return encodeFeature(SET | 14, d);
  };
  assert.equal(t.feature(req(2)).errno, "ENOENT");
  assert.equal(t.feature(req(1)).errno, null);
  assert.equal(t.vdev.dmabufs[0].memattr, 1);
});

test("K-193 a device with non-mappable BARs (variant) → export -EINVAL", () => {
  const t = vfioF({
    mutate: (m) => {
      fn(m, "EPa").nonMappableBars = true;
    },
  });
  assert.equal(t.exportRanges(0, one).errno, "EINVAL");
});
