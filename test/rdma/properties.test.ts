/**
 * Properties of the RDMA importer (rdma-data-direct.md §8–§10): random interleavings of register
 * (plain and data direct) / access / exporter invalidate, revoke and restore / DMA PF unbind and
 * rebind / dereg — including a registration and a PF removal interleaved step by step as two kernel
 * threads — never let an access translate to a revoked or stale target, never leak an MR, umem or
 * attachment, and keep every reference and pin count balanced.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { KernelError } from "../../src/core/errors.js";
import { UserBuffer } from "../../src/core/file.js";
import { PCI_COMMAND } from "../../src/pci/regs.js";
import {
  encodeRegDmabufMr,
  IB_ACCESS,
  type IbUmemDmabuf,
  ibvDeregMr,
  type Mlx5Mr,
  RDMA_DRIVER,
  RDMA_VERBS_IOCTL,
  type RdmaAccessKind,
  RdmaDataPlane,
  type RdmaProfile,
  type Spawned,
} from "../../src/rdma/index.js";
import type { VfioDmaBuf } from "../../src/vfio/dma-buf.js";
import { VFIO_IOCTL } from "../../src/vfio/index.js";
import { DD, type Setup, setup } from "./setup.js";

const PAGE = 4096n;
const IOVA_BASE = 0x7f00_0000_0000n;
const KINDS: RdmaAccessKind[] = ["local-read", "local-write", "remote-read", "remote-write", "remote-atomic"];
const ACC = IB_ACCESS.LOCAL_WRITE | IB_ACCESS.REMOTE_WRITE | IB_ACCESS.REMOTE_READ | IB_ACCESS.REMOTE_ATOMIC;

type Op =
  | { t: "reg"; dd: boolean; off: number; pages: number; iovaPage: number; ro: boolean }
  | { t: "access"; pick: number; delta: number; len: number; kind: number }
  | { t: "move" | "revoke" | "restore" | "pfRemove" | "pfProbe" | "memOff" | "memOn" | "reset" }
  | { t: "dereg"; pick: number }
  | { t: "race"; steps: boolean[]; remove: boolean };

const regArb: fc.Arbitrary<Op> = fc.record({
  t: fc.constant("reg" as const),
  dd: fc.boolean(),
  off: fc.integer({ min: 0, max: 255 }),
  pages: fc.integer({ min: 1, max: 8 }),
  iovaPage: fc.integer({ min: 0, max: 1 << 20 }),
  ro: fc.boolean(),
});

const opArb = (exporterOps: Op["t"][]): fc.Arbitrary<Op> =>
  fc.oneof(
    { arbitrary: regArb, weight: 3 },
    {
      arbitrary: fc.record({
        t: fc.constant("access" as const),
        pick: fc.nat(),
        delta: fc.integer({ min: -8192, max: 9 * 4096 }),
        len: fc.integer({ min: 1, max: 3 * 4096 }),
        kind: fc.integer({ min: 0, max: 4 }),
      }),
      weight: 3,
    },
    {
      arbitrary: fc.record({
        t: fc.constant("access" as const),
        pick: fc.nat(),
        delta: fc.integer({ min: 0, max: 4095 }),
        len: fc.integer({ min: 1, max: 64 }),
        kind: fc.integer({ min: 2, max: 3 }),
      }),
      weight: 3,
    },
    {
      arbitrary: fc.constantFrom(...exporterOps, "pfRemove", "pfProbe").map((t) => ({ t }) as Op),
      weight: 2,
    },
    { arbitrary: fc.record({ t: fc.constant("dereg" as const), pick: fc.nat() }), weight: 1 },
    {
      arbitrary: fc.record({
        t: fc.constant("race" as const),
        steps: fc.array(fc.boolean(), { maxLength: 12 }),
        remove: fc.boolean(),
      }),
      weight: 1,
    },
  );

interface Live {
  handle: number;
  iova: bigint;
  length: bigint;
}

/** The exporter under test, seen through what the invariants need. */
interface Target {
  fd: number;
  attachments(): number;
  refs(): number;
  liveMappings(): number;
  pins(): number | null;
  /** Does this mapping still address the buffer's memory? */
  valid(u: IbUmemDmabuf): boolean;
  apply(op: Op["t"]): void;
}

function world(s: Setup, target: Target) {
  const live: Live[] = [];
  // the data plane beside the translations: its revoke check sees every byte that lands
  const dp = new RdmaDataPlane(s.rdma, { trace: false });
  const kmr = (l: Live) => s.rdma.fileOf(s.ctx.fd).mr(l.handle) as Mlx5Mr;
  const umems = () =>
    live.map((l) => {
      const k = kmr(l);
      return (k.kind === "crossing" ? k.ddCrossedMr!.umem : k.umem)!;
    });
  const check = () => {
    const us = umems();
    assert.ok(us.every((u) => !u.released));
    assert.equal(target.attachments(), us.length, "one attachment per live MR");
    assert.equal(target.refs(), 1 + us.length, "one dma-buf reference per live MR (+ the fd)");
    assert.equal(target.liveMappings(), us.filter((u) => u.sgt).length, "exporter mappings = mapped umems");
    const pins = target.pins();
    if (pins !== null) assert.equal(pins, us.filter((u) => u.pinned).length, "pins = pinned umems");
    // never a registered-but-unrevoked DD MR on a device without a DMA PF (DD-43)
    if (!s.ib.dataDirectDev)
      for (const l of live) {
        const k = kmr(l);
        if (k.kind === "crossing") assert.ok(k.ddCrossedMr!.revoked, "DD MR alive on an UNBOUND device");
      }
    for (const c of s.ib.dataDirectMrList) assert.ok(c.umem && !c.umem.released);
  };
  const register = (o: Extract<Op, { t: "reg" }>) => {
    const offset = BigInt(o.off) * PAGE;
    const length = BigInt(o.pages) * PAGE;
    const iova = IOVA_BASE + BigInt(o.iovaPage) * PAGE;
    const access = ACC | (o.ro ? IB_ACCESS.RELAXED_ORDERING : 0);
    const mr = o.dd
      ? s.regDD({ offset, length, iova, access, fd: target.fd })
      : s.regPlain({ offset, length, iova, access, fd: target.fd });
    if (mr) live.push({ handle: mr.handle, iova, length });
  };
  const access = (o: Extract<Op, { t: "access" }>) => {
    if (!live.length) return;
    const l = live[o.pick % live.length];
    const addr = l.iova + BigInt(o.delta);
    if (KINDS[o.kind] === "remote-write") {
      const wc = dp.rdmaWrite(s.ib, kmr(l).rkey, addr, new Uint8Array(o.len));
      assert.equal(wc.bytesDelivered, wc.statusName === "SUCCESS" ? o.len : 0, wc.detail);
    }
    const r = s.rdma.translate(s.ib, {
      key: kmr(l).rkey,
      addr,
      length: BigInt(o.len),
      access: KINDS[o.kind],
    });
    if (!r.ok) return;
    // an access that translates touches a live, valid mapping inside the MR
    assert.ok(addr >= l.iova && addr + BigInt(o.len) <= l.iova + l.length, "translated outside the MR");
    const k = kmr(l);
    const u = (k.kind === "crossing" ? k.ddCrossedMr!.umem : k.umem)!;
    if (k.kind === "crossing") {
      assert.ok(
        !k.ddCrossedMr!.revoked && k.ddCrossedMr!.inDdList,
        "translated through a revoked crossed MR",
      );
      assert.equal(r.issuer, u.dmaDevice);
    } else assert.equal(r.issuer, s.nicPf);
    assert.ok(u.sgt && !u.revoked && u.attach.mappings.includes(u.sgt), "translated without a live mapping");
    assert.ok(target.valid(u), "translated to a revoked or moved target");
    let total = 0n;
    for (const seg of r.segments) {
      total += seg.len;
      assert.ok(
        u.segs.some(
          (m) => seg.dmaAddress >= m.dmaAddress && seg.dmaAddress + seg.len <= m.dmaAddress + m.len,
        ),
        "segment outside the umem's mapping",
      );
    }
    assert.equal(total, BigInt(o.len));
  };
  const dereg = (pick: number) => {
    if (!live.length) return;
    const [l] = live.splice(pick % live.length, 1);
    const mr = { ...s.pd, context: s.ctx, pd: s.pd, handle: l.handle } as unknown as Parameters<
      typeof ibvDeregMr
    >[0];
    assert.equal(ibvDeregMr(mr), 0);
  };
  const race = (o: Extract<Op, { t: "race" }>) => {
    const lkeyPtr = s.rdma.userMem.alloc(4);
    const bytes = encodeRegDmabufMr({
      driverId: RDMA_DRIVER.MLX5,
      pdHandle: s.pd.handle,
      offset: 0n,
      length: 4n * PAGE,
      iova: IOVA_BASE,
      fd: target.fd,
      access: ACC,
      lkeyPtr,
      rkeyPtr: s.rdma.userMem.alloc(4),
      mlx5Access: DD,
    });
    const reg = s.rdma.spawnIoctl("reg", s.ctx.fd, RDMA_VERBS_IOCTL, new UserBuffer(bytes));
    const other = s.rdma.sched.spawn("pf", o.remove ? s.rdma.dd.remove(s.dmaPf) : s.rdma.dd.probe(s.dmaPf));
    const pick = (b: boolean): Spawned<unknown> => (b ? reg : other);
    for (const pickReg of o.steps) s.rdma.sched.step(pick(pickReg));
    s.rdma.sched.runAll([reg, other]);
    if (other.error && !(other.error instanceof KernelError)) throw other.error;
    if (reg.error) {
      if (!(reg.error instanceof KernelError)) throw reg.error;
      return;
    }
    const handle = Number(new DataView(bytes.buffer).getBigUint64(24 + 8, true));
    live.push({ handle, iova: IOVA_BASE, length: 4n * PAGE });
  };
  const run = (ops: Op[]) => {
    for (const o of ops) {
      switch (o.t) {
        case "reg":
          register(o);
          break;
        case "access":
          access(o);
          break;
        case "dereg":
          dereg(o.pick);
          break;
        case "race":
          race(o);
          break;
        case "pfRemove":
          s.rdma.removeDmaPf(s.dmaPf);
          break;
        case "pfProbe":
          if (!s.rdma.dd.bound.has(s.dmaPf)) s.rdma.probeDmaPf(s.dmaPf);
          break;
        default:
          target.apply(o.t);
      }
      check();
    }
    assert.deepEqual(dp.revokedWrites, [], "bytes landed in a revoked exporter range");
    // tear everything down: nothing may remain
    while (live.length) dereg(0);
    s.rdma.close(s.ctx.fd);
    assert.equal(target.attachments(), 0);
    assert.equal(target.refs(), 1);
    assert.equal(target.liveMappings(), 0);
    if (target.pins() !== null) assert.equal(target.pins(), 0);
    assert.equal(s.ib.dataDirectMrList.length, 0);
    const internal = [s.ib.ddr.mkey, s.ib.ddr.mkeyRo].filter((k) => k).map((k) => k!.key);
    assert.deepEqual([...s.ib.mkeys.keys()].sort(), internal.sort(), "only the data-direct mkeys remain");
    assert.equal(s.ib.mrs.size, 0);
    const bad = s.m.diag.names().filter((n) => /^(leak:|lockdep:|deadlock:|warn:ib_umem)/.test(n));
    assert.deepEqual(bad, []);
  };
  return { run };
}

function pinnable(s: Setup): Target {
  const x = s.exporter;
  return {
    fd: x.fd,
    attachments: () => x.attachments,
    refs: () => x.buf.file.refs,
    liveMappings: () => x.liveMappings,
    pins: () => x.pinCount,
    valid: (u) => !!u.sgt && x.isMappingValid(u.sgt),
    apply(t) {
      try {
        if (t === "move") x.moveNotify();
        else if (t === "revoke") x.revoke();
        else if (t === "restore") x.restore();
      } catch (e) {
        if (!(e instanceof KernelError) || e.errnoName !== "EBUSY") throw e;
      }
    },
  };
}

const PROFILES: Partial<RdmaProfile>[] = [
  {},
  { kernelProfile: "v7.0" },
  { kernelProfile: "v7.0", ddRevocablePinned: true },
];

test("PROP pinnable exporter: any interleaving keeps accesses on live targets, counts balanced, nothing leaked", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...PROFILES),
      fc.array(opArb(["move", "revoke", "restore"]), { minLength: 10, maxLength: 60, size: "medium" }),
      (profile, ops) => {
        const s = setup({ rdma: profile });
        world(s, pinnable(s)).run(ops);
      },
    ),
    { numRuns: 150 },
  );
});

test("PROP VFIO exporter ('v7.0' + projected, and 'v6.19'): memory off/on and resets never leave a translatable revoked target", () => {
  fc.assert(
    fc.property(
      fc.constantFrom<Partial<RdmaProfile>>({ kernelProfile: "v7.0", ddRevocablePinned: true }, {}),
      fc.array(opArb(["memOff", "memOn", "reset"]), { minLength: 10, maxLength: 60, size: "medium" }),
      (profile, ops) => {
        const s = setup({ rdma: profile, exporter: false });
        const x = s.vfioExport(64n << 20n);
        const buf = s.m.fds.peek(x.fd)!.priv as {
          attachments: unknown[];
          file: { refs: number };
          priv: VfioDmaBuf;
        };
        const target: Target = {
          fd: x.fd,
          attachments: () => buf.attachments.length,
          refs: () => buf.file.refs,
          liveMappings: () => buf.priv.liveMappings,
          pins: () => null,
          valid: () => !buf.priv.revoked,
          apply(t) {
            if (t === "memOff") s.m.vfio.configWrite(x.vfd, PCI_COMMAND, 2, 0x4);
            else if (t === "memOn") s.m.vfio.configWrite(x.vfd, PCI_COMMAND, 2, 0x6);
            else if (t === "reset")
              s.m.vfio.ioctl(x.vfd, VFIO_IOCTL.VFIO_DEVICE_RESET, new UserBuffer(new Uint8Array(0)));
          },
        };
        world(s, target).run(ops);
      },
    ),
    { numRuns: 100 },
  );
});
