/**
 * The RDMA data plane: a work request on an MR becomes DMA issued by the function the MR
 * translates to (the NIC PF, or its data-direct DMA PF), routed through the fabric by the DMA
 * engine with the map type and addresses the kernel computed, and a work completion. After any
 * revocation the request completes in error and no byte reaches the target — the kernel's promise
 * to an exporter, checked here on every operation against the dma-bufs' own state.
 */

import type { DmaResult } from "../dataplane/engine.js";
import { DmaEngine } from "../dataplane/engine.js";
import type { TlpTrace } from "../dataplane/trace.js";
import { VfioDmaBuf } from "../vfio/dma-buf.js";
import type { IbDevice } from "./core/device.js";
import type { Rdma } from "./rdma.js";
import type { RdmaAccessKind, TranslateResult } from "./translate.js";
import { IBV_WC } from "./uapi.js";

export interface WorkCompletion {
  opcode: "RDMA_WRITE" | "RDMA_READ";
  status: number;
  statusName: string;
  /** Bytes the operation moved (0 on error). */
  byteLen: number;
  /** The function whose Requester ID the memory requests carried. */
  issuer?: string;
  mapType?: string;
  dataDirect?: boolean;
  tph?: { st: number; ph: number };
  /** Why it failed (translation, fabric). */
  detail?: string;
  /** The memory requests on the wire, per link. */
  tlps: TlpTrace[];
  /** Bytes that reached memory (writes) — must be 0 when status is not SUCCESS. */
  bytesDelivered: number;
  projected?: true;
  data?: Uint8Array;
}

/** A byte delivered into memory an exporter had revoked: the one thing that must never happen. */
export interface RevokedWrite {
  dmabuf: string;
  device: string;
  bytes: number;
}

export class RdmaDataPlane {
  readonly engine: DmaEngine;
  /** Every write that landed in a revoked exporter range (empty unless the model is wrong). */
  readonly revokedWrites: RevokedWrite[] = [];

  /**
   * `trace: false` skips building the per-link TLP trace of every request (the engine's default
   * otherwise): the bytes still move and the revoke check still runs, `tlps` stay empty.
   */
  constructor(
    readonly rdma: Rdma,
    readonly opts: { trace?: boolean } = {},
  ) {
    this.engine = DmaEngine.of(rdma.machine);
  }

  /** The responder side of an RDMA WRITE: the NIC places `data` at `addr` of the MR `rkey`. */
  rdmaWrite(dev: IbDevice | string, rkey: number, addr: bigint, data: Uint8Array): WorkCompletion {
    const tr = this.rdma.translate(dev, {
      key: rkey,
      addr,
      length: BigInt(data.length),
      access: "remote-write",
    });
    if (!tr.ok) return this.failed("RDMA_WRITE", tr);
    const results: DmaResult[] = [];
    let off = 0;
    for (const seg of tr.segments) {
      const n = Number(seg.len);
      const r = this.engine.dmaWrite(tr.issuer, seg.dmaAddress, data.subarray(off, off + n), {
        addressKind: tr.addressKind,
        tph: tr.tph ? { st: tr.tph.st, ph: tr.tph.ph, extended: tr.tph.extended } : undefined,
        attr: tr.relaxedOrdering ? 2 : 0,
        trace: this.opts.trace,
      });
      this.checkRevoked(r);
      results.push(r);
      off += n;
      if (r.status !== "SC") break;
    }
    return this.completion("RDMA_WRITE", tr, results, data.length);
  }

  /** The responder side of an RDMA READ: the NIC reads `length` bytes at `addr` of the MR `rkey`. */
  rdmaRead(dev: IbDevice | string, rkey: number, addr: bigint, length: number): WorkCompletion {
    const tr = this.rdma.translate(dev, { key: rkey, addr, length: BigInt(length), access: "remote-read" });
    if (!tr.ok) return this.failed("RDMA_READ", tr);
    const out = new Uint8Array(length);
    const results: DmaResult[] = [];
    let off = 0;
    for (const seg of tr.segments) {
      const n = Number(seg.len);
      const r = this.engine.dmaRead(tr.issuer, seg.dmaAddress, n, {
        addressKind: tr.addressKind,
        tph: tr.tph ? { st: tr.tph.st, ph: tr.tph.ph, extended: tr.tph.extended } : undefined,
        trace: this.opts.trace,
      });
      out.set(r.data, off);
      results.push(r);
      off += n;
      if (r.status !== "SC") break;
    }
    const wc = this.completion("RDMA_READ", tr, results, length);
    if (wc.status === IBV_WC.SUCCESS) wc.data = out;
    return wc;
  }

  private failed(
    opcode: WorkCompletion["opcode"],
    tr: Extract<TranslateResult, { ok: false }>,
  ): WorkCompletion {
    return {
      opcode,
      status: tr.status,
      statusName: tr.statusName,
      byteLen: 0,
      detail: `${tr.reason}: ${tr.detail}`,
      tlps: [],
      bytesDelivered: 0,
      ...(tr.projected ? { projected: true as const } : {}),
    };
  }

  private completion(
    opcode: WorkCompletion["opcode"],
    tr: Extract<TranslateResult, { ok: true }>,
    results: DmaResult[],
    length: number,
  ): WorkCompletion {
    const bad = results.find((r) => r.status !== "SC");
    const delivered = results.reduce((n, r) => n + r.bytesDelivered, 0);
    return {
      opcode,
      status: bad ? IBV_WC.REM_ACCESS_ERR : IBV_WC.SUCCESS,
      statusName: bad ? "REM_ACCESS_ERR" : "SUCCESS",
      byteLen: bad ? 0 : length,
      issuer: tr.issuer.bdf,
      mapType: tr.mapType,
      dataDirect: tr.dataDirect,
      ...(tr.tph ? { tph: { st: tr.tph.st, ph: tr.tph.ph } } : {}),
      ...(bad
        ? {
            detail: `fabric: ${bad.status}${bad.reason ? ` (${bad.reason})` : ""}${bad.at ? ` at ${bad.at}` : ""}`,
          }
        : {}),
      tlps: results.map((r) => r.tlps),
      bytesDelivered: delivered,
      ...(tr.projected ? { projected: true as const } : {}),
    };
  }

  /** Bytes that landed inside a VFIO dma-buf which is not ACTIVE (revoked, dead, released). */
  private checkRevoked(r: DmaResult): void {
    for (const s of r.segments) {
      if (s.status !== "SC" || s.target?.kind !== "bar") continue;
      const t = s.target;
      const cpu = t.dev.resources[t.bar].start + t.offset;
      let revoked: string | null = null;
      let active = false;
      for (const buf of this.rdma.machine.dmabuf.buffers) {
        const p = buf.priv;
        if (!(p instanceof VfioDmaBuf) || !p.physVec.some((v) => cpu >= v.paddr && cpu < v.paddr + v.len))
          continue;
        if (p.state === "ACTIVE") active = true;
        else revoked ??= buf.label;
      }
      // memory an active export still covers (a newer export of the same range) is fair game
      if (revoked && !active)
        this.revokedWrites.push({ dmabuf: revoked, device: t.dev.bdf, bytes: s.length });
    }
  }
}

export type { RdmaAccessKind };
