/**
 * Runs a scenario (schema.ts) on a fresh Machine: every step goes through the same kernel paths a
 * C program would drive (raw ioctl bytes included); each step reports its result, the move_notify
 * calls it caused on every live attachment, the diagnostics it recorded, and its expectations.
 */
import { errnoName, errnoNumber } from "../core/errno.js";
import { InputError, KernelBug, KernelError } from "../core/errors.js";
import { UserBuffer } from "../core/file.js";
import type { DmaBuf, DmaBufAttachment } from "../dmabuf/dma-buf.js";
import { DMA_BUF_IOCTL_SYNC, DMA_BUF_SET_NAME_A, DMA_BUF_SET_NAME_B } from "../dmabuf/dma-buf.js";
import { DynamicImporter } from "../dmabuf/importer.js";
import { dmaBufDmaOf, type SgTable } from "../dmabuf/phys-vec.js";
import { parseCpuOption } from "../import/source.js";
import { describeProfile, Machine } from "../machine/index.js";
import type { Fabric } from "../pci/fabric.js";
import {
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_PM_CTRL,
} from "../pci/regs.js";
import { VfioDmaBuf } from "../vfio/dma-buf.js";
import { encodeFeatureDmaBuf, VFIO_IOCTL, type VfioPciDevice } from "../vfio/index.js";
import type { ExpectSpec, ScenarioSpec, StepSpec } from "./schema.js";

export interface StepOutcome {
  ret: number;
  /** Errno name, or null on success. */
  errno: string | null;
  /** The ioctl argument after the call (what the kernel copied back). */
  arg?: string;
  fd?: number;
  detail?: string;
  map?: { mode: string; nents: number; entries: [string, string][] };
  /** A kernel BUG (the model's KernelBug): the scenario stops there. */
  bug?: string;
  unbind?: { completed: boolean };
}

export interface Expectation {
  what: string;
  want: unknown;
  got: unknown;
  ok: boolean;
}

export interface StepReport {
  index: number;
  op: string;
  result: StepOutcome;
  /** move_notify calls this step caused, for every live attachment. */
  move_notify: Record<string, number>;
  /** Buffer states after the step, per named dma-buf. */
  states: Record<string, string>;
  diagnostics: string[];
  expectations: Expectation[];
  ok: boolean;
  note?: string;
}

export interface ScenarioReport {
  name: string;
  machine: string;
  kernel: string;
  steps: StepReport[];
  ok: boolean;
  /** Importers that used a mapping after being told to stop (must stay empty). */
  violations: string[];
}

const IOCTL_NAMES: Record<string, number> = {
  ...VFIO_IOCTL,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SET_NAME: DMA_BUF_SET_NAME_B,
  DMA_BUF_SET_NAME_A,
  DMA_BUF_SET_NAME_B,
};

const DIRS = { bidirectional: 0, to_device: 1, from_device: 2, none: 3 } as const;

const num = (v: number | string): bigint => BigInt(typeof v === "number" ? v : v.replace(/_/g, ""));
const hex = (v: bigint) => `0x${v.toString(16)}`;

interface Attached {
  name: string;
  buf: DmaBuf;
  importer: DynamicImporter | null;
  /** Static importers: the attachment and their tables. */
  attachment: DmaBufAttachment;
  tables: { sgt: SgTable; dir: number }[];
  /** The importer's own dma_buf_get reference, dropped at detach. */
  ref: boolean;
}

export interface RunOptions {
  /** Builds the fabric of `machine:` (builtin:, a file relative to the scenario). */
  loadFabric: (source: string) => Fabric;
  /** Where step i starts in the source, for reports. */
  lineOfStep?: (i: number) => number | undefined;
}

export function runScenario(spec: ScenarioSpec, opts: RunOptions): ScenarioReport {
  const fabric = opts.loadFabric(spec.machine);
  const { profile: _p, ...knobs } = spec.kernel ?? {};
  const m = new Machine(fabric, { kernel: knobs, cpu: spec.cpu ? parseCpuOption(spec.cpu) : undefined });
  const fds = new Map<string, number>();
  const atts = new Map<string, Attached>();
  const steps: StepReport[] = [];
  let stopped = false;

  const fdOf = (ref: string | number, where: string): number => {
    if (typeof ref === "number") return ref;
    const fd = fds.get(ref);
    if (fd === undefined) throw new InputError(`no fd named "${ref}" (name one with "as:" first)`, where);
    return fd;
  };
  const attOf = (name: string, where: string): Attached => {
    const a = atts.get(name);
    if (!a) throw new InputError(`no attachment named "${name}"`, where);
    return a;
  };
  const deviceFd = (bdf: string, where: string): number => {
    const dev = m.device(bdf);
    for (const [, fd] of fds) {
      const f = m.fds.peek(fd);
      if (f?.kind === "vfio-device" && (f.priv as { vdev: VfioPciDevice }).vdev.pdev === dev) return fd;
    }
    throw new InputError(`device ${dev.bdf} is not open in this scenario (open it first)`, where);
  };
  const vdevOf = (bdf: string): VfioPciDevice => {
    const v = m.vfio.devices.get(m.device(bdf));
    if (!v) throw new InputError(`device ${bdf} is not bound to vfio-pci`);
    return v;
  };
  const bufState = (fd: number): string | null => {
    const f = m.fds.peek(fd);
    if (f?.kind !== "dma-buf") return null;
    const p = (f.priv as DmaBuf).priv;
    return p instanceof VfioDmaBuf ? p.state : "EXPORTED";
  };

  for (const [i, step] of spec.steps.entries()) {
    if (stopped) break;
    const where = `steps[${i}]`;
    const line = opts.lineOfStep?.(i);
    const notifyBefore = new Map([...atts].map(([n, a]) => [n, a.importer?.notifications ?? 0]));
    const diagBefore = m.diag.events.length;
    const { op, run } = stepAction(step, where);
    let result: StepOutcome;
    try {
      result = run();
    } catch (e) {
      if (e instanceof KernelError) result = { ret: -e.errno, errno: e.errnoName, detail: e.check };
      else if (e instanceof KernelBug) {
        result = { ret: 0, errno: null, bug: e.message };
        stopped = true;
      } else if (e instanceof InputError) throw new InputError(e.message, line ? `line ${line}` : where);
      else throw e;
    }
    const moveNotify: Record<string, number> = {};
    for (const [n, a] of atts)
      if (a.importer) moveNotify[n] = a.importer.notifications - (notifyBefore.get(n) ?? 0);
    const states: Record<string, string> = {};
    for (const [n, fd] of fds) {
      const s = bufState(fd);
      if (s) states[n] = s;
    }
    const diagnostics = m.diag.events.slice(diagBefore).map((d) => d.event);
    const expectations = checkExpect(step.expect, result, moveNotify, states, diagnostics);
    if (result.bug) expectations.push({ what: "no kernel BUG", want: "no BUG", got: result.bug, ok: false });
    steps.push({
      index: i,
      op,
      result,
      move_notify: moveNotify,
      states,
      diagnostics,
      expectations,
      ok: expectations.every((x) => x.ok),
      ...(step.note ? { note: step.note } : {}),
    });
  }

  const violations = [...atts.values()].flatMap((a) => a.importer?.violations ?? []);
  return {
    name: spec.name ?? "",
    machine: m.name,
    kernel: describeProfile(m.kernel),
    steps,
    ok: steps.every((s) => s.ok) && violations.length === 0,
    violations,
  };

  function stepAction(step: StepSpec, where: string): { op: string; run: () => StepOutcome } {
    if ("open" in step)
      return {
        op: `open ${step.open}`,
        run: () => {
          const fd = m.vfio.open(step.open, { cdev: step.cdev });
          fds.set(step.as, fd);
          return { ret: fd, errno: null, fd };
        },
      };
    if ("ioctl" in step) {
      const cmd = resolveIoctl(step.ioctl, where);
      const name = typeof step.ioctl === "string" ? step.ioctl : hex(BigInt(step.ioctl));
      return {
        op: `ioctl ${name}`,
        run: () => {
          const arg = step.arg === null ? new UserBuffer(null) : UserBuffer.of(step.arg);
          const ret = m.vfio.ioctl(fdOf(step.fd, where), cmd, arg);
          const out: StepOutcome = { ret, errno: null, arg: arg.toHex() };
          if (step.as && ret >= 0 && m.fds.peek(ret)) {
            fds.set(step.as, ret);
            out.fd = ret;
          }
          return out;
        },
      };
    }
    if ("export" in step) {
      const e = step.export;
      return {
        op: `export region ${e.region}`,
        run: () => {
          const ranges = e.ranges.map((r) =>
            Array.isArray(r)
              ? { offset: num(r[0]), length: num(r[1]) }
              : { offset: num(r.offset), length: num(r.length) },
          );
          const bytes = encodeFeatureDmaBuf({
            regionIndex: e.region,
            ranges,
            openFlags: e.openFlags === undefined ? 0 : Number(num(e.openFlags)),
            dmaBufFlags: e.flags === undefined ? 0 : Number(num(e.flags)),
          });
          const ret = m.vfio.ioctl(fdOf(e.fd, where), VFIO_IOCTL.VFIO_DEVICE_FEATURE, new UserBuffer(bytes));
          if (step.as) fds.set(step.as, ret);
          return { ret, errno: null, fd: ret, arg: Buffer.from(bytes).toString("hex") };
        },
      };
    }
    if ("close" in step)
      return {
        op: `close ${step.close}`,
        run: () => {
          const fd = fdOf(step.close, where);
          m.fds.close(fd);
          if (typeof step.close === "string") fds.delete(step.close);
          return { ret: 0, errno: null };
        },
      };
    if ("event" in step)
      return {
        op: `event ${step.event} ${step.device}`,
        run: () => event(step.event, step.device, where),
      };
    if ("configWrite" in step) {
      const c = step.configWrite;
      return {
        op: `config write ${c.device} +0x${Number(num(c.offset)).toString(16)}/${c.size}`,
        run: () => {
          m.vfio.configWrite(deviceFd(c.device, where), Number(num(c.offset)), c.size, Number(num(c.value)));
          return { ret: 0, errno: null };
        },
      };
    }
    if ("attach" in step)
      return {
        op: `attach ${step.attach} by ${step.importer.device}${step.importer.dynamic ? "" : " (static)"}`,
        run: () => {
          const buf = m.dmabuf.get(m.fds, fdOf(step.attach, where)); // the importer's own reference
          const dev = m.device(step.importer.device);
          try {
            if (step.importer.dynamic) {
              const imp = new DynamicImporter(m.dmabuf, dev, step.as, { peer2peer: step.importer.peer2peer });
              const a = imp.attach(buf);
              atts.set(step.as, { name: step.as, buf, importer: imp, attachment: a, tables: [], ref: true });
            } else {
              const a = m.dmabuf.attach(buf, dev, step.as);
              atts.set(step.as, { name: step.as, buf, importer: null, attachment: a, tables: [], ref: true });
            }
          } catch (e) {
            m.dmabuf.put(buf);
            throw e;
          }
          return { ret: 0, errno: null };
        },
      };
    if ("map" in step)
      return {
        op: `map ${step.map} ${step.dir}`,
        run: () => {
          const a = attOf(step.map, where);
          const dir = DIRS[step.dir];
          let sgt: SgTable;
          if (a.importer) sgt = a.importer.map(dir).sgt;
          else {
            sgt = m.dmabuf.mapAttachmentUnlocked(a.attachment, dir);
            a.tables.push({ sgt, dir });
          }
          const d = dmaBufDmaOf(sgt);
          return {
            ret: 0,
            errno: null,
            map: {
              mode: d?.mode ?? "exporter",
              nents: sgt.nents,
              entries: sgt.sgl.map((e) => [hex(e.dmaAddress), hex(e.dmaLen)] as [string, string]),
            },
          };
        },
      };
    if ("unmap" in step)
      return {
        op: `unmap ${step.unmap}`,
        run: () => {
          const a = attOf(step.unmap, where);
          if (a.importer) a.importer.unmap();
          else {
            const t = a.tables.pop();
            if (!t) throw new KernelError("EINVAL", `${step.unmap} has no mapping`);
            m.dmabuf.unmapAttachmentUnlocked(a.attachment, t.sgt, t.dir);
          }
          return { ret: 0, errno: null };
        },
      };
    return {
      op: `detach ${step.detach}`,
      run: () => {
        const a = attOf(step.detach, where);
        if (a.importer) a.importer.detach();
        else m.dmabuf.detach(a.buf, a.attachment);
        atts.delete(step.detach);
        if (a.ref) m.dmabuf.put(a.buf);
        return { ret: 0, errno: null };
      },
    };
  }

  function event(kind: string, bdf: string, where: string): StepOutcome {
    const pdev = m.device(bdf);
    switch (kind) {
      case "reset":
        return {
          ret: m.vfio.ioctl(
            deviceFd(bdf, where),
            VFIO_IOCTL.VFIO_DEVICE_RESET,
            new UserBuffer(new Uint8Array(0)),
          ),
          errno: null,
        };
      case "flr": {
        const off = pdev.pcieCapOffset + PCI_EXP_DEVCTL;
        const fd = deviceFd(bdf, where);
        m.vfio.configWrite(fd, off, 2, pdev.configRead(off, 2) | PCI_EXP_DEVCTL_BCR_FLR);
        return { ret: 0, errno: null };
      }
      case "memory-off":
      case "memory-on": {
        const fd = deviceFd(bdf, where);
        const cur = m.vfio.configRead(fd, PCI_COMMAND, 2);
        m.vfio.configWrite(
          fd,
          PCI_COMMAND,
          2,
          kind === "memory-on" ? cur | PCI_COMMAND_MEMORY : cur & ~PCI_COMMAND_MEMORY,
        );
        return { ret: 0, errno: null };
      }
      case "d3hot":
      case "d0":
        m.vfio.configWrite(deviceFd(bdf, where), pdev.pmCapOffset + PCI_PM_CTRL, 2, kind === "d3hot" ? 3 : 0);
        return { ret: 0, errno: null };
      case "wake":
        m.vfio.wake(vdevOf(bdf));
        return { ret: 0, errno: null };
      default: {
        const r = m.vfio.unbind(vdevOf(bdf));
        return { ret: 0, errno: null, unbind: r };
      }
    }
  }
}

function resolveIoctl(v: string | number, where: string): number {
  if (typeof v === "number") return v;
  if (/^(0x[0-9a-fA-F]+|\d+)$/.test(v)) return Number(v);
  const n = IOCTL_NAMES[v];
  if (n === undefined)
    throw new InputError(
      `unknown ioctl "${v}" (known: ${Object.keys(IOCTL_NAMES).join(", ")}, or a number)`,
      where,
    );
  return n;
}

function checkExpect(
  e: ExpectSpec | undefined,
  r: StepOutcome,
  moveNotify: Record<string, number>,
  states: Record<string, string>,
  diagnostics: string[],
): Expectation[] {
  const out: Expectation[] = [];
  if (!e) return out;
  if (e.errno !== undefined) {
    const want = e.errno === 0 ? 0 : typeof e.errno === "number" ? e.errno : (errnoNumber(e.errno) ?? -1);
    const got = r.errno ? (errnoNumber(r.errno) ?? -1) : 0;
    out.push({
      what: "errno",
      want: e.errno === 0 ? 0 : typeof e.errno === "number" ? (errnoName(e.errno) ?? e.errno) : e.errno,
      got: r.errno ?? 0,
      ok: want === got,
    });
  }
  if (e.ret !== undefined) out.push({ what: "ret", want: e.ret, got: r.ret, ok: e.ret === r.ret });
  for (const [k, v] of Object.entries(e.move_notify ?? {}))
    out.push({ what: `move_notify ${k}`, want: v, got: moveNotify[k] ?? 0, ok: (moveNotify[k] ?? 0) === v });
  for (const [k, v] of Object.entries(e.state ?? {}))
    out.push({ what: `state ${k}`, want: v, got: states[k] ?? "(none)", ok: states[k] === v });
  if (e.map) {
    const got = r.map;
    if (e.map.mode)
      out.push({ what: "map mode", want: e.map.mode, got: got?.mode, ok: got?.mode === e.map.mode });
    if (e.map.nents !== undefined)
      out.push({ what: "map nents", want: e.map.nents, got: got?.nents, ok: got?.nents === e.map.nents });
    if (e.map.entries) {
      const want = e.map.entries.map(([a, l]) => [hex(num(a)), hex(num(l))]);
      out.push({
        what: "map entries",
        want,
        got: got?.entries,
        ok: JSON.stringify(want) === JSON.stringify(got?.entries),
      });
    }
  }
  for (const d of e.diagnostics ?? [])
    out.push({
      what: `diagnostic ${d}`,
      want: true,
      got: diagnostics.includes(d),
      ok: diagnostics.includes(d),
    });
  return out;
}
