/**
 * §13.9 nvgrace-gpu (GH200 0x2342; memphys 0x4000_0000_0000, memlength 68 GiB = 0x11_0000_0000), plus
 * the probe rules of §9.1 (device-ready wait, firmware fallback K-198, DVSEC, fake BAR sizes) and
 * the region info of the fake regions. The GPU replaces EPa of fabric F (03:00.0 below DSPa), so
 * EPb below DSPb is an importer below the same switch. MN=y.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import type { MachineInput } from "../../src/import/machine-schema.js";
import {
  addNvgraceDvsec,
  appendExtCapability,
  decodeRegionInfo,
  decodeSparseMmapCap,
  dvsecCap,
  encodeRegionInfoQuery,
  NVGRACE_DRIVER_NAME,
  NVGRACE_GPU_DEVICE_IDS,
  type NvgraceFirmwareProps,
  NvgraceGpuHw,
  nvgraceHasMigHwBug,
  PCI_EXT_CAP_ID_DVSEC,
  PCI_VENDOR_ID_NVIDIA,
  pciFindDvsecCapability,
  registerNvgraceGpu,
  VFIO_IOCTL,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  type VfioDmaBuf,
} from "../../src/vfio/index.js";
import { BDF, compose, fn } from "../helpers/spec-f.js";
import { call, page, vfioF } from "../helpers/vfio-f.js";

const GiB = 1n << 30n;
const MiB = 1n << 20n;
const MEMPHYS = 0x4000_0000_0000n;
const MEMLENGTH = 0x11_0000_0000n; // 68 GiB
const FW: NvgraceFirmwareProps = { memphys: MEMPHYS, memlength: MEMLENGTH };
const BAR0 = 0x80_0000_0000n;
const BAR4 = 0x80_0400_0000n;
const one = [{ offset: 0n, length: page(1) }];

/** EPa of F becomes a GH200: BAR0 (16 MiB) and a real BAR4 (64 MiB); no BAR2. */
function gh200(id = "10de:2342") {
  return (m: MachineInput) => {
    const f = fn(m, "EPa");
    f.id = id;
    f.class = 0x030200;
    f.driver = null;
    f.bars = [
      { index: 0, type: "mem64", prefetch: true, address: "0x80_0000_0000", size: "16MiB" },
      { index: 4, type: "mem64", prefetch: true, address: "0x80_0400_0000", size: "64MiB" },
    ];
  };
}

const busOffset = (m: MachineInput) => {
  m.hostBridges[0].windows = [{ cpuBase: "0x80_0000_0000", size: "64GiB", busOffset: "0x10_0000_0000" }];
};

interface GpuOptions {
  /** "fixed": NVIDIA DVSEC 3 with MIG_SUPPORTED_WITH_CACHED_RESMEM; "bug": no DVSEC. */
  mig: "fixed" | "bug";
  firmware?: NvgraceFirmwareProps | null;
  hw?: NvgraceGpuHw;
  mutate?: (m: MachineInput) => void;
  id?: string;
}

/** Builds F with the GPU, probes and binds nvgrace-gpu, opens the device. */
function gpuF(o: GpuOptions) {
  const t = vfioF({ open: false, mutate: compose(gh200(o.id), o.mutate ?? (() => {})) });
  const gpu = t.dev.EPa;
  if (o.mig === "fixed") addNvgraceDvsec(gpu, true);
  const { vdev, nvdev, driver } = registerNvgraceGpu(t.m, {
    device: BDF.EPa,
    firmware: o.firmware === undefined ? FW : o.firmware,
    hw: o.hw,
  });
  const fd = t.m.vfio.open(BDF.EPa);
  return {
    ...t,
    gpu,
    fd,
    vdev,
    nv: nvdev,
    driver,
    exp: (region: number, ranges: { offset: bigint; length: bigint }[]) =>
      t.exportRanges(region, ranges, {}, fd),
    exportBuf: (region: number, ranges: { offset: bigint; length: bigint }[]) =>
      t.exportBuf(region, ranges, fd),
    priv: (bufFd: number) => t.buf(bufFd).priv as VfioDmaBuf,
    regionInfo(index: number, argsz = 64) {
      const b = new Uint8Array(Math.max(argsz, 32));
      b.set(encodeRegionInfoQuery(index));
      new DataView(b.buffer).setUint32(0, argsz, true);
      const r = t.ioctl(VFIO_IOCTL.VFIO_DEVICE_GET_REGION_INFO, b, fd);
      return { r, info: decodeRegionInfo(b), bytes: b };
    },
    reset: () => t.reset(fd),
  };
}

/** Probes a GPU and reports the error name (or null) without failing the test. */
function probe(o: GpuOptions) {
  const t = vfioF({ open: false, mutate: compose(gh200(o.id), o.mutate ?? (() => {})) });
  if (o.mig === "fixed") addNvgraceDvsec(t.dev.EPa, true);
  const r = call(() =>
    registerNvgraceGpu(t.m, {
      device: BDF.EPa,
      firmware: o.firmware === undefined ? FW : o.firmware,
      hw: o.hw,
    }),
  );
  return { ...t, r };
}

test("K-147 no MIG bug: region 4 {0, 0x1000} → fd; physVec paddr 0x4000_0000_0000; provider = the GPU's BAR0 provider", () => {
  const g = gpuF({ mig: "fixed" });
  assert.equal(g.nv.hasMigHwBug, false);
  assert.equal(g.vdev.driver.name, NVGRACE_DRIVER_NAME);
  const r = g.exp(4, one);
  assert.equal(r.errno, null);
  const p = g.priv(r.ret);
  assert.deepEqual(p.physVec, [{ paddr: 0x4000_0000_0000n, len: 0x1000n }]);
  assert.equal(p.provider, g.m.p2pdma.provider(g.gpu, 0));
  assert.equal(p.provider.bar, 0);
  assert.equal(p.provider.owner, g.gpu);
  assert.equal(g.buf(r.ret).size, 0x1000n);
});

test("K-148 region 4 {0x11_0000_0000, 0x1000} (padding below bar_size 128 GiB) → -EINVAL; {0x10_FFFF_F000, 0x1000} → fd", () => {
  const g = gpuF({ mig: "fixed" });
  assert.equal(g.nv.usemem.barSize, 128n * GiB);
  assert.equal(g.regionInfo(4).info.size, 128n * GiB);
  const before = g.m.dmabuf.buffers.size;
  assert.equal(g.exp(4, [{ offset: 0x11_0000_0000n, length: 0x1000n }]).errno, "EINVAL");
  assert.equal(g.m.dmabuf.buffers.size, before);
  assert.equal(g.vdev.dmabufs.length, 0);
  const ok = g.exp(4, [{ offset: 0x10_ffff_f000n, length: 0x1000n }]);
  assert.equal(ok.errno, null);
  assert.deepEqual(g.priv(ok.ret).physVec, [{ paddr: MEMPHYS + 0x10_ffff_f000n, len: 0x1000n }]);
});

test("K-149 no MIG bug: region 2 goes to the core path on the real BAR2 (not implemented) → -EINVAL", () => {
  const g = gpuF({ mig: "fixed" });
  assert.equal(g.nv.resmem.memlength, 0n);
  assert.equal(g.nv.memregion(2), null);
  assert.equal(g.exp(2, one).errno, "EINVAL");
  assert.equal(g.vdev.dmabufs.length, 0);
  // region info of index 2 is the core's too: an unimplemented BAR, size 0, no flags
  const ri = g.regionInfo(2);
  assert.equal(ri.r.errno, null);
  assert.deepEqual([ri.info.size, ri.info.flags], [0n, 0]);
});

test("K-150 MIG bug: usemem 67 GiB, resmem at 0x4010_C000_0000 (1 GiB); region 2 {0, 1 GiB} → that paddr; region 4 beyond 67 GiB → -EINVAL", () => {
  const g = gpuF({ mig: "bug" });
  assert.equal(g.nv.hasMigHwBug, true);
  assert.equal(g.nv.usemem.memphys, MEMPHYS);
  assert.equal(g.nv.usemem.memlength, 0x10_c000_0000n);
  assert.equal(g.nv.resmem.memphys, 0x4010_c000_0000n);
  assert.equal(g.nv.resmem.memlength, 0x4000_0000n);
  const r2 = g.exp(2, [{ offset: 0n, length: 0x4000_0000n }]);
  assert.equal(r2.errno, null);
  const p2 = g.priv(r2.ret);
  assert.deepEqual(p2.physVec, [{ paddr: 0x4010_c000_0000n, len: 0x4000_0000n }]);
  assert.equal(p2.provider, g.m.p2pdma.provider(g.gpu, 0)); // BAR0's provider for resmem too
  // usemem ends at 67 GiB: a range crossing it fails, one ending exactly there succeeds
  assert.equal(g.exp(4, [{ offset: 0x10_c000_0000n - 0x1000n, length: 0x2000n }]).errno, "EINVAL");
  assert.equal(g.exp(4, [{ offset: 0x10_c000_0000n, length: 0x1000n }]).errno, "EINVAL");
  assert.equal(g.exp(4, [{ offset: 0x10_c000_0000n - 0x1000n, length: 0x1000n }]).errno, null);
  // resmem's limit is its 1 GiB
  assert.equal(g.exp(2, [{ offset: 0x4000_0000n, length: 0x1000n }]).errno, "EINVAL");
  // bar sizes: usemem from 67 GiB → 128 GiB; resmem 1 GiB
  assert.equal(g.nv.usemem.barSize, 128n * GiB);
  assert.equal(g.nv.resmem.barSize, GiB);
});

test("K-151 region 0 on nvgrace → the core path on the real BAR0", () => {
  for (const mig of ["fixed", "bug"] as const) {
    const g = gpuF({ mig });
    const r = g.exp(0, [{ offset: 0x2000n, length: 0x1000n }]);
    assert.equal(r.errno, null);
    const p = g.priv(r.ret);
    assert.deepEqual(p.physVec, [{ paddr: BAR0 + 0x2000n, len: 0x1000n }]);
    assert.equal(p.provider, g.m.p2pdma.provider(g.gpu, 0));
    // the real BAR0 is 16 MiB
    assert.equal(g.exp(0, [{ offset: 16n * MiB, length: 0x1000n }]).errno, "EINVAL");
  }
});

test("K-152 EPb below the same switch maps a region-4 buffer → BUS_ADDR at memphys + BAR0's bus offset", () => {
  const g = gpuF({ mig: "fixed", mutate: busOffset });
  const { buf } = g.exportBuf(4, [{ offset: 0x3000n, length: 0x2000n }]);
  const a = g.importer("EPb", "A");
  a.attach(buf);
  const { sgt } = a.map();
  assert.equal(g.m.p2pdma.state(g.gpu)!.mapTypes.get(g.dev.EPb.cacheKey), 3); // BUS_ADDR
  // BAR0 sits at CPU 0x80_0000_0000 = bus 0x70_0000_0000: its offset applies to device memory too
  assert.equal(sgt.sgl[0].dmaAddress, MEMPHYS + 0x3000n - 0x10_0000_0000n);
  assert.equal(sgt.sgl[0].dmaAddress, 0x3ff0_0000_3000n);
  assert.equal(sgt.sgl[0].dmaLen, 0x2000n);
  assert.equal(sgt.nents, 1);
});

test("K-153 nvgrace without the firmware memory properties → region 4 resolves to the real BAR4 (core path)", () => {
  const g = gpuF({ mig: "fixed", firmware: null });
  assert.equal(g.nv.ops, "core");
  assert.equal(g.nv.fallback, "EINVAL"); // missing property
  assert.equal(g.vdev.driver.name, NVGRACE_DRIVER_NAME);
  const r = g.exp(4, one);
  assert.equal(r.errno, null);
  const p = g.priv(r.ret);
  assert.deepEqual(p.physVec, [{ paddr: BAR4, len: 0x1000n }]);
  assert.equal(p.provider, g.m.p2pdma.provider(g.gpu, 4));
  // limited by the real BAR4 (64 MiB), no fake region, core region info
  assert.equal(g.exp(4, [{ offset: 64n * MiB, length: 0x1000n }]).errno, "EINVAL");
  const ri = g.regionInfo(4);
  assert.equal(ri.info.size, 64n * MiB);
  assert.equal(ri.info.flags & VFIO_REGION_INFO_FLAG_CAPS, 0);
  // only one of the two properties present: same fallback
  for (const firmware of [{ memphys: MEMPHYS }, { memlength: MEMLENGTH }]) {
    const h = gpuF({ mig: "fixed", firmware });
    assert.equal(h.nv.ops, "core");
    assert.equal(h.priv(h.exp(4, one).ret).physVec[0].paddr, BAR4);
  }
});

test("K-154 VFIO_DEVICE_RESET on nvgrace → fake-BAR registers cleared first, then R8 (notify 2, ACTIVE)", () => {
  const g = gpuF({ mig: "bug" });
  // the VM programs both fake BARs
  g.nv.configWrite(0x20, 4, 0x0000_0000);
  g.nv.configWrite(0x24, 4, 0x0000_4000);
  g.nv.configWrite(0x18, 4, 0x4000_0000);
  g.nv.configWrite(0x1c, 4, 0x0000_4010);
  assert.equal(g.nv.usemem.barVal, 0x4000_0000_0000n);
  assert.equal(g.nv.resmem.barVal, 0x4010_4000_0000n);
  const { buf } = g.exportBuf(4, one);
  const a = g.importer("EPb", "A");
  a.attach(buf);
  a.map();
  const seen: { kind: string; usemem: bigint; resmem: bigint }[] = [];
  const off = g.m.log.subscribe((e) => {
    if (e.event.kind === "zap" || e.event.kind === "move-notify" || e.event.kind === "reset")
      seen.push({ kind: e.event.kind, usemem: g.nv.usemem.barVal, resmem: g.nv.resmem.barVal });
  });
  const n0 = a.notifications;
  assert.deepEqual(g.reset(), { ret: 0, errno: null });
  off();
  assert.equal(a.notifications - n0, 2);
  assert.equal(g.vdev.dmabufs[0].state, "ACTIVE");
  assert.deepEqual(
    seen.map((s) => s.kind),
    ["zap", "move-notify", "reset", "move-notify"],
  );
  // already cleared when the R8 sequence starts
  assert.ok(seen.every((s) => s.usemem === 0n && s.resmem === 0n));
  // reads back as an unprogrammed 64-bit prefetchable BAR
  assert.equal(g.nv.configRead(0x20, 4), 0xc);
  assert.equal(g.nv.configRead(0x24, 4), 0);
  // nvgrace's ioctl clears them before the core even checks reset_works (R8: -EINVAL, notify 0)
  g.nv.configWrite(0x24, 4, 0x4000);
  g.vdev.resetWorks = false;
  const n1 = a.notifications;
  assert.equal(g.reset().errno, "EINVAL");
  assert.equal(g.nv.usemem.barVal, 0n);
  assert.equal(a.notifications, n1);
});

test("K-155 MIG bug: memlength 1.25 GiB → usemem rounds to 0 → probe -EINVAL; 512 MiB → -EOVERFLOW; device stays unbound", () => {
  for (const [memlength, errno] of [
    [GiB + 256n * MiB, "EINVAL"],
    [512n * MiB, "EOVERFLOW"],
  ] as const) {
    const p = probe({ mig: "bug", firmware: { memphys: MEMPHYS, memlength } });
    assert.equal(p.r.errno, errno);
    assert.equal(p.m.vfio.devices.has(p.dev.EPa), false);
    assert.equal(p.dev.EPa.driver, null);
  }
  // without the bug the same sizes are fine: no carve-out, no round-down
  const q = probe({ mig: "fixed", firmware: { memphys: MEMPHYS, memlength: 512n * MiB } });
  assert.equal(q.r.errno, null);
});

test("K-198 (first numbered K-302) nvidia,gpu-mem-size = 0 → probe succeeds with the plain core ops; region 4 resolves to the real BAR4", () => {
  const g = gpuF({ mig: "bug", firmware: { memphys: MEMPHYS, memlength: 0n } });
  assert.equal(g.nv.ops, "core");
  assert.equal(g.nv.fallback, "ENOMEM");
  assert.equal(g.nv.memregion(4), null);
  assert.equal(g.nv.memregion(2), null);
  assert.equal(g.m.vfio.devices.get(g.gpu), g.vdev);
  const r = g.exp(4, one);
  assert.equal(r.errno, null);
  assert.deepEqual(g.priv(r.ret).physVec, [{ paddr: BAR4, len: 0x1000n }]);
  // MIG bug or not, region 2 is the core's (no BAR2 here)
  assert.equal(g.exp(2, one).errno, "EINVAL");
  // the other firmware-step errors fall back the same way (values too wide for the 64-bit types)
  for (const firmware of [
    { memphys: 1n << 64n, memlength: MEMLENGTH },
    { memphys: MEMPHYS, memlength: 1n << 64n },
  ]) {
    const h = gpuF({ mig: "bug", firmware });
    assert.deepEqual([h.nv.ops, h.nv.fallback], ["core", "EOVERFLOW"]);
  }
});

/* ---- §9.1 probe details without their own K id ---- */

test("nvgrace probe: the five supported ids bind; another NVIDIA id or vendor → -ENODEV, unbound", () => {
  for (const dev of NVGRACE_GPU_DEVICE_IDS) {
    const p = probe({ mig: "fixed", id: `10de:${dev.toString(16).padStart(4, "0")}` });
    assert.equal(p.r.errno, null, `10de:${dev.toString(16)}`);
  }
  for (const id of ["10de:2330", "15b3:2342"]) {
    const p = probe({ mig: "fixed", id });
    assert.equal(p.r.errno, "ENODEV");
    assert.equal(p.m.vfio.devices.size, 0);
  }
  assert.deepEqual(NVGRACE_GPU_DEVICE_IDS, [0x2342, 0x2345, 0x2348, 0x2941, 0x31c2]);
});

test("nvgrace probe: a device already bound elsewhere → -EBUSY", () => {
  const t = vfioF({ open: false, mutate: gh200() });
  t.m.vfio.bind(t.dev.EPa);
  assert.equal(call(() => registerNvgraceGpu(t.m, { device: BDF.EPa, firmware: FW })).errno, "EBUSY");
});

test("nvgrace probe: device-ready wait polls 0x1498 and 0x200BC every 1000 ms; never ready → -ETIME after 31 polls", () => {
  const hw = NvgraceGpuHw.with(0xff, 0x00); // HBM training never completes
  const p = probe({ mig: "fixed", hw });
  assert.equal(p.r.errno, "ETIME");
  assert.equal(p.m.vfio.devices.has(p.dev.EPa), false);
  assert.equal(hw.nowMs, 31_000);
  const polls = hw.reads.filter(([, off]) => off === 0x200bc).map(([t]) => t);
  assert.equal(polls.length, 31);
  assert.deepEqual([polls[0], polls[1], polls[30]], [0, 1000, 30_000]);
  // C2C link down: the HBM register is not even read (both must be 0xFF)
  const c2c = NvgraceGpuHw.with(0x00, 0xff);
  assert.equal(probe({ mig: "fixed", hw: c2c }).r.errno, "ETIME");
  assert.ok(c2c.reads.every(([, off]) => off === 0x1498));
});

test("nvgrace probe: HBM training done at 5 s → probe succeeds at model time 5000 ms; ready at 30 s still in time, at 31 s too late", () => {
  const hw = NvgraceGpuHw.with(0xff, 0x3f).set(0x200bc, 0xff, 5000);
  assert.equal(probe({ mig: "fixed", hw }).r.errno, null);
  assert.equal(hw.nowMs, 5000);
  const last = NvgraceGpuHw.with(0xff, 0).set(0x200bc, 0xff, 30_000);
  assert.equal(probe({ mig: "fixed", hw: last }).r.errno, null);
  assert.equal(last.nowMs, 30_000);
  const late = NvgraceGpuHw.with(0xff, 0).set(0x200bc, 0xff, 31_000);
  assert.equal(probe({ mig: "fixed", hw: late }).r.errno, "ETIME");
  // a device-ready failure wins over a good firmware description
  assert.equal(probe({ mig: "fixed", hw: NvgraceGpuHw.with(0, 0), firmware: FW }).r.errno, "ETIME");
});

test("nvgrace has_mig_hw_bug: DVSEC (0x0023) vendor 10de id 3 word +0xA bit 0 → no bug; bit clear, other id or vendor, or none → bug", () => {
  const cases: [((d: Parameters<typeof addNvgraceDvsec>[0]) => void) | null, boolean][] = [
    [(d) => addNvgraceDvsec(d, true), false],
    [(d) => addNvgraceDvsec(d, false), true],
    [
      (d) =>
        appendExtCapability(d.config, dvsecCap({ vendor: PCI_VENDOR_ID_NVIDIA, dvsecId: 2, words: [1] })),
      true,
    ],
    [(d) => appendExtCapability(d.config, dvsecCap({ vendor: 0x8086, dvsecId: 3, words: [1] })), true],
    [null, true],
  ];
  for (const [add, bug] of cases) {
    const t = vfioF({ open: false, mutate: gh200() });
    add?.(t.dev.EPa);
    assert.equal(nvgraceHasMigHwBug(t.dev.EPa), bug);
  }
});

test("DVSEC helper: appended after the last extended capability and linked from it; earlier ones still found", () => {
  const t = vfioF({ open: false });
  const epb = t.dev.EPb; // ARI + SR-IOV
  const before = epb.config.extCapabilities().map((c) => c.id);
  assert.ok(before.length >= 2);
  const o = addNvgraceDvsec(epb, true);
  const after = epb.config.extCapabilities();
  assert.deepEqual(
    after.map((c) => c.id),
    [...before, PCI_EXT_CAP_ID_DVSEC],
  );
  assert.equal(after[after.length - 1].offset, o);
  assert.equal(pciFindDvsecCapability(epb.config, PCI_VENDOR_ID_NVIDIA, 3), o);
  // header 1: vendor 10de, length 0x10; header 2: id 3; bitmap word at +0xA
  assert.equal(epb.config.read32(o + 4), (0x10 << 20) | 0x10de);
  assert.equal(epb.config.read16(o + 8), 3);
  assert.equal(epb.config.read16(o + 0xa), 1);
  // nothing overlaps: each capability starts after the previous one's registers
  const offs = after.map((c) => c.offset);
  assert.ok(offs.every((x, i) => i === 0 || x > offs[i - 1]));
  assert.ok(o >= offs[offs.length - 2] + 0x40); // SR-IOV is 0x40 bytes
  // a GPU with no extended capability yet gets it at 0x100
  assert.equal(addNvgraceDvsec(t.dev.EPa, true), 0x100);
});

test("fake BAR sizes: bug case takes usemem's bar_size before the 512 MiB round-down (65.25 GiB → usemem 64 GiB, bar 128 GiB)", () => {
  const g = gpuF({ mig: "bug", firmware: { memphys: MEMPHYS, memlength: 65n * GiB + 256n * MiB } });
  assert.equal(g.nv.usemem.memlength, 64n * GiB);
  assert.equal(g.nv.usemem.barSize, 128n * GiB);
  assert.equal(g.nv.resmem.memphys, MEMPHYS + 64n * GiB);
  assert.equal(g.nv.resmem.memlength, GiB + 256n * MiB);
  assert.equal(g.nv.resmem.barSize, 2n * GiB);
  // without the bug: one region, the power of two above it
  const f = gpuF({ mig: "fixed", firmware: { memphys: MEMPHYS, memlength: 64n * GiB } });
  assert.deepEqual([f.nv.usemem.memlength, f.nv.usemem.barSize], [64n * GiB, 64n * GiB]);
});

test("GET_REGION_INFO of a fake region: size bar_size, READ|WRITE|MMAP|CAPS, sparse mmap with one area [0, memlength)", () => {
  const g = gpuF({ mig: "bug" });
  const flags =
    VFIO_REGION_INFO_FLAG_READ |
    VFIO_REGION_INFO_FLAG_WRITE |
    VFIO_REGION_INFO_FLAG_MMAP |
    VFIO_REGION_INFO_FLAG_CAPS;
  for (const [index, size, len] of [
    [4, 128n * GiB, 0x10_c000_0000n],
    [2, GiB, GiB],
  ] as const) {
    const { r, info, bytes } = g.regionInfo(index, 64);
    assert.equal(r.errno, null);
    assert.deepEqual(info, { argsz: 64, flags, index, capOffset: 32, size, offset: BigInt(index) << 40n });
    const cap = decodeSparseMmapCap(bytes, info.capOffset);
    assert.deepEqual(cap, { id: 1, version: 1, next: 0, areas: [{ offset: 0n, size: len }] });
  }
  // argsz without room for the capability: the needed argsz comes back, cap_offset 0
  const small = g.regionInfo(4, 32);
  assert.deepEqual([small.info.argsz, small.info.capOffset, small.info.flags], [64, 0, flags]);
  // argsz below the fixed struct → -EINVAL; an unreadable argument → -EFAULT
  assert.equal(g.regionInfo(4, 16).r.errno, "EINVAL");
  assert.equal(g.ioctl(VFIO_IOCTL.VFIO_DEVICE_GET_REGION_INFO, new Uint8Array(16), g.fd).errno, "EFAULT");
  // a real BAR is the core's answer
  const bar0 = g.regionInfo(0, 32);
  assert.deepEqual([bar0.info.size, bar0.info.flags & VFIO_REGION_INFO_FLAG_CAPS], [16n * MiB, 0]);
});

test("nvgrace ioctls: IOEVENTFD → -ENOTTY; fake BAR sizing reads back ~(bar_size-1) | 64-bit prefetchable", () => {
  const g = gpuF({ mig: "fixed" });
  assert.equal(g.ioctl(VFIO_IOCTL.VFIO_DEVICE_IOEVENTFD, new Uint8Array(32), g.fd).errno, "ENOTTY");
  g.nv.configWrite(0x20, 4, 0xffff_ffff);
  g.nv.configWrite(0x24, 4, 0xffff_ffff);
  assert.equal(g.nv.configRead(0x20, 4), 0x0000_000c); // 128 GiB: no size bits in the low dword
  assert.equal(g.nv.configRead(0x24, 4), 0xffff_ffe0);
  assert.equal(g.nv.configRead(0x24, 2), 0xffe0);
  // without the bug, BAR2/3 is not a fake BAR
  assert.equal(g.nv.configRead(0x18, 4), null);
  assert.equal(g.nv.configWrite(0x18, 4, 1), false);
});

test("nvgrace config region: pread/pwrite of BAR2–5 reach the emulated fake BARs, never the device, and the first open clears them", () => {
  const g = gpuF({ mig: "fixed" });
  const real = [0x18, 0x1c, 0x20, 0x24].map((o) => g.gpu.configRead(o, 4));
  const read = (fd: number, o: number, size: 1 | 2 | 4 = 4) => g.m.vfio.configRead(fd, o, size);
  // sizing, as a guest BIOS does it
  g.m.vfio.configWrite(g.fd, 0x20, 4, 0xffff_ffff);
  g.m.vfio.configWrite(g.fd, 0x24, 4, 0xffff_ffff);
  assert.deepEqual([read(g.fd, 0x20), read(g.fd, 0x24), read(g.fd, 0x24, 2)], [0xc, 0xffff_ffe0, 0xffe0]);
  // an address programmed by the guest reads back; the device's own registers never moved
  g.m.vfio.configWrite(g.fd, 0x24, 4, 0x4000);
  assert.equal(read(g.fd, 0x24), 0x4000);
  assert.deepEqual(
    [0x18, 0x1c, 0x20, 0x24].map((o) => g.gpu.configRead(o, 4)),
    real,
  );
  // the value survives while the device stays open, and a new open starts from zero
  const fd2 = g.m.vfio.open(BDF.EPa);
  assert.equal(read(fd2, 0x24), 0x4000);
  g.m.fds.close(fd2);
  g.m.fds.close(g.fd);
  const fd3 = g.m.vfio.open(BDF.EPa);
  assert.deepEqual([read(fd3, 0x20), read(fd3, 0x24)], [0xc, 0]);
  // outside the fake BARs the core answers (BAR0, vendor and device ids)
  assert.equal(read(fd3, 0x10), g.gpu.configRead(0x10, 4));
  assert.equal(read(fd3, 0x00), g.gpu.configRead(0x00, 4));
});

test("nvgrace with core ops: the config region is the core's, BAR2–5 included", () => {
  const g = gpuF({ mig: "bug", firmware: null });
  for (const o of [0x18, 0x1c, 0x20, 0x24])
    assert.equal(g.m.vfio.configRead(g.fd, o, 4), g.gpu.configRead(o, 4));
});

test("nvgrace with core ops: VFIO_DEVICE_RESET is the plain R8 and region info the core's", () => {
  const g = gpuF({ mig: "bug", firmware: null });
  assert.equal(g.nv.configRead(0x20, 4), null);
  const { buf } = g.exportBuf(0, one);
  const a = g.importer("EPb", "A");
  a.attach(buf);
  a.map();
  assert.deepEqual(g.reset(), { ret: 0, errno: null });
  assert.equal(a.notifications, 2);
  assert.deepEqual([g.regionInfo(4, 32).info.size, g.regionInfo(4, 32).info.capOffset], [64n * MiB, 0]);
});

test("property: random ranges on the fake regions stay inside [memphys, memphys+memlength) of the region; failures leave nothing behind", () => {
  const pageArb = (maxPages: bigint) => fc.bigInt({ min: 0n, max: maxPages }).map((p) => p * 0x1000n);
  const range = fc.record({
    offset: fc.oneof(
      { arbitrary: pageArb(1n << 18n), weight: 3 }, // inside resmem's 1 GiB
      { arbitrary: pageArb((128n << 18n) + 16n), weight: 3 }, // up to just past the 128 GiB bar_size
      { arbitrary: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), weight: 1 },
    ),
    length: fc.oneof(
      { arbitrary: pageArb(1n << 10n), weight: 4 },
      { arbitrary: pageArb(1n << 19n), weight: 1 },
      { arbitrary: fc.constantFrom(0x1000n, 0x4000_0000n, 0n, 0x800n), weight: 1 },
    ),
  });
  fc.assert(
    fc.property(
      fc.constantFrom("fixed" as const, "bug" as const),
      fc.constantFrom(2, 4),
      fc.array(range, { minLength: 1, maxLength: 3 }),
      (mig, region, ranges) => {
        const g = gpuF({ mig });
        const mr = g.nv.memregion(region);
        const bufs = g.m.dmabuf.buffers.size;
        const reg = g.vdev.registration;
        const r = g.exp(region, ranges);
        if (r.errno) {
          assert.equal(g.m.dmabuf.buffers.size, bufs);
          assert.equal(g.vdev.dmabufs.length, 0);
          assert.equal(g.vdev.registration, reg);
          assert.equal(g.m.fds.peek(g.fd + 1), undefined);
          return;
        }
        assert.ok(mr, "only a fake region can succeed here (the GPU has no BAR2)");
        const p = g.priv(r.ret);
        assert.equal(p.physVec.length, ranges.length);
        for (const v of p.physVec) {
          assert.ok(v.paddr >= mr.memphys);
          assert.ok(v.paddr + v.len <= mr.memphys + mr.memlength);
        }
        assert.equal(
          p.size,
          ranges.reduce((s, x) => s + x.length, 0n),
        );
      },
    ),
    { numRuns: 200 },
  );
});
