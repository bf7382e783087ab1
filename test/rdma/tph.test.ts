/** tph-and-tlp.md §5.4, §12.4: a dma-buf MR picks up the exporter's TPH (TPH-26 … TPH-28). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { UserBuffer } from "../../src/core/file.js";
import { PCI_TPH_CAP } from "../../src/pci/regs.js";
import { tphStEntryOffset } from "../../src/pci/tph.js";
import { type IbPd, regDmabufMrCore } from "../../src/rdma/index.js";
import { encodeDmaBufTph, VFIO_DMA_BUF_TPH_ST, VFIO_IOCTL } from "../../src/vfio/index.js";
import { setCompleterField } from "../helpers/tph-machine.js";
import { BDF, IOVA, ok, type SetupOptions, setup } from "./setup.js";

/** NIC up after `tweak`, VFIO export of the GPU with ST 0xF0 / PH 2 published through feature 13. */
function tphSetup(o: SetupOptions = {}, tweak: (s: ReturnType<typeof setup>) => void = () => {}) {
  const s = setup({ exporter: false, order: "pf-only", kernel: { tphFeature: true }, ...o });
  tweak(s);
  s.addIb();
  s.open();
  const x = s.vfioExport();
  const set = encodeDmaBufTph({ fd: x.fd, flags: VFIO_DMA_BUF_TPH_ST, st: 0xf0, ph: 2 });
  assert.equal(s.m.vfio.ioctl(x.vfd, VFIO_IOCTL.VFIO_DEVICE_FEATURE, new UserBuffer(set)), 0);
  const cap = s.rdma.tph.tphCap(s.nicPf);
  const entry = (i: number) => s.nicPf.config.read16(tphStEntryOffset(cap, i));
  return { ...s, x, cap, entry };
}

test("TPH-26 plain registration on a VFIO buffer with ST 0xF0 / PH 2 → mkey pcie_tph_en 1, ph 2, ST index 1, table entry 1 = 0x00F0; tph_req_type 0 or 2 → no TPH, no index", () => {
  const s = tphSetup();
  assert.equal(s.rdma.tph.pcieTphEnabledReqType(s.nicPf), 1);
  const mr = s.regPlain({ fd: s.x.fd });
  assert.ok(mr, `errno ${s.lib.errno}`);
  const t = s.kmr(mr).mmkey!.tph!;
  assert.deepEqual([t.en, t.ph, t.stIndex, t.st], [true, 2, 1, 0xf0]);
  assert.equal(s.entry(1), 0x00f0);
  const w = ok(s.write(mr, IOVA, 64n));
  assert.deepEqual(w.tph, { st: 0xf0, ph: 2, stIndex: 1, extended: false });
  assert.equal(w.issuer.bdf, BDF.NIC);

  // Root Port not a completer: TPH never enabled on the NIC (req type 0)
  const z = tphSetup({}, (u) => setCompleterField(u.m.device(BDF.NIC_RP), 0));
  assert.equal(z.rdma.tph.pcieTphEnabledReqType(z.nicPf), 0);
  const mz = z.regPlain({ fd: z.x.fd })!;
  assert.ok(mz);
  assert.equal(z.kmr(mz).mmkey!.tph, null);
  assert.equal(z.write(mz, IOVA, 64n).ok && ok(z.write(mz, IOVA, 64n)).tph, undefined);
  // extended requester against a Root Port reporting the reserved value 2: req type 2 → no TPH
  const two = tphSetup({}, (u) => {
    setCompleterField(u.m.device(BDF.NIC_RP), 2);
    const cap = u.rdma.tph.tphCap(u.nicPf);
    u.nicPf.config.write32(cap + PCI_TPH_CAP, u.nicPf.config.read32(cap + PCI_TPH_CAP) | 0x100);
  });
  assert.equal(two.rdma.tph.pcieTphEnabledReqType(two.nicPf), 2);
  const m2 = two.regPlain({ fd: two.x.fd })!;
  assert.equal(two.kmr(m2).mmkey!.tph, null);
  assert.deepEqual(two.ib.st!.inUse(), [], "no index allocated");
});

test("TPH-27 no TPH on the buffer → success, no TPH, no diagnostic; ST table full → success without TPH and a debug event", () => {
  const s = setup({ kernel: { tphFeature: true } });
  const diagBefore = s.m.diag.events.length;
  const mr = s.regPlain();
  assert.ok(mr);
  assert.equal(s.kmr(mr).mmkey!.tph, null);
  assert.equal(s.exporter.getTphCalls, 1, "asked, answered -EOPNOTSUPP");
  assert.equal(s.m.diag.events.length, diagBefore);

  const f = tphSetup();
  for (let i = 0; i < 63; i++) f.ib.st!.allocIndexByTag(0x100 + i);
  const mf = f.regPlain({ fd: f.x.fd });
  assert.ok(mf, `errno ${f.lib.errno}`);
  assert.equal(f.kmr(mf).mmkey!.tph, null);
  assert.ok(f.m.diag.has("debug:mlx5-st-alloc"));
  // the index of a TPH MR is released with its mkey (TPH-29's last step, model side)
  const g = tphSetup();
  assert.ok(g.regPlain({ fd: g.x.fd }));
  assert.equal(g.ib.st!.refcount(1), 1);
  g.rdma.close(g.ctx.fd);
  assert.equal(g.ib.st!.refcount(1), 0);
});

test("TPH-28 a DMA handle with PH 1 → the handle's values are used and the buffer's TPH is not queried", () => {
  const s = setup({ exporterTph: { st: 0xf0, ph: 2 } });
  const file = s.rdma.fileOf(s.ctx.fd);
  const pd: IbPd = file.pd(s.pd.handle);
  const mr = s.rdma.sched.run(
    regDmabufMrCore(file, {
      pd,
      offset: 0x10000n,
      length: 0x200000n,
      iova: IOVA,
      fd: s.exporter.fd,
      access: { len: 4, value: 7n },
      dmah: { ph: 1 },
    }),
  );
  const mk = s.ib.mkeys.get(mr.lkey)!;
  assert.deepEqual([mk.tph!.en, mk.tph!.ph, mk.tph!.stIndex, mk.tph!.fromDmah], [true, 1, 0, true]);
  assert.equal(s.exporter.getTphCalls, 0);
  // without the handle the buffer's values are taken
  const plain = s.regPlain()!;
  assert.equal(s.kmr(plain).mmkey!.tph!.ph, 2);
  assert.equal(s.exporter.getTphCalls, 1);
});

test("TPH on data-direct MRs (open point, knob dataDirectTph): 'carry' puts the NIC PF's index on the crossed MR (labelled an assumption); 'drop' none", () => {
  const s = setup({ exporterTph: { st: 0x33, ph: 3 } });
  const mr = s.regDD()!;
  const w = ok(s.write(mr, IOVA, 64n));
  assert.deepEqual(w.tph, {
    st: 0x33,
    ph: 3,
    stIndex: 1,
    extended: false,
    assumption: "dataDirectTph=carry",
  });
  assert.equal(w.issuer, s.dmaPf);
  const d = setup({ exporterTph: { st: 0x33, ph: 3 }, rdma: { dataDirectTph: "drop" } });
  const md = d.regDD()!;
  assert.equal(ok(d.write(md, IOVA, 64n)).tph, undefined);
  assert.equal(d.exporter.getTphCalls, 0);
});
