/** fast-check generators of valid TLP inputs (reserved bits zero) for the codec properties. */
import fc from "fast-check";
import {
  FM_TYPES,
  type FmHeader,
  type FmTlpInput,
  NFM_TYPES,
  type NfmHeader,
  type NfmTlpInput,
  type OhcA,
  type TlpPrefix,
  type TlpTypeInfo,
} from "../../src/tlp/index.js";

/** fast-check records have no prototype; the decoder returns plain objects (deepStrictEqual compares both). */
const plain = <T>(x: T): T => structuredClone(x);
const u = (max: number) => fc.integer({ min: 0, max });
const u32 = u(0xffffffff);
const addr = (bits: 32 | 64) => fc.bigInt(0n, (1n << BigInt(bits)) - 1n).map((a) => a & ~3n);
const typesOf = (table: readonly (TlpTypeInfo | undefined)[]) =>
  table.filter((t): t is TlpTypeInfo => t !== undefined);
const len = fc.oneof(
  u(1023).map((n) => n + 1),
  fc.constantFrom(1, 1024),
);

export const NFM_TYPE_LIST = typesOf(NFM_TYPES);
export const FM_TYPE_LIST = typesOf(FM_TYPES);

const nfmBase = (ti: TlpTypeInfo) =>
  fc.record({
    fmtType: fc.constant(ti.code),
    tc: u(7),
    attr: u(7),
    td: fc.boolean(),
    ep: fc.boolean(),
    length: len,
  });

/** A valid non-flit header of type `ti`. */
export function nfmHeader(ti: TlpTypeInfo): fc.Arbitrary<NfmHeader> {
  switch (ti.kind) {
    case "mem":
      return fc
        .record({
          base: nfmBase(ti),
          at: u(3),
          requesterId: u(0xffff),
          tag: u(0x3ff),
          firstBe: u(15),
          lastBe: u(15),
          address: addr(ti.addr64 ? 64 : 32),
          tph: fc.option(fc.record({ st: u(255), ph: u(3) }), { nil: null }),
        })
        .map(({ base, tph, tag, firstBe, lastBe, ...r }) => ({
          kind: "mem" as const,
          ...base,
          ...r,
          tph,
          tag: tph && ti.posted ? null : tag,
          firstBe: tph && !ti.posted ? null : firstBe,
          lastBe: tph && !ti.posted ? null : lastBe,
        }));
    case "io":
      return fc
        .record({
          base: nfmBase(ti),
          requesterId: u(0xffff),
          tag: u(0x3ff),
          firstBe: u(15),
          lastBe: u(15),
          address: addr(32),
        })
        .map(({ base, ...r }) => ({ kind: "io" as const, ...base, ...r }));
    case "cfg":
      return fc
        .record({
          base: nfmBase(ti),
          requesterId: u(0xffff),
          tag: u(0x3ff),
          firstBe: u(15),
          lastBe: u(15),
          targetId: u(0xffff),
          register: u(0x3ff).map((r) => r << 2),
        })
        .map(({ base, ...r }) => ({ kind: "cfg" as const, ...base, ...r }));
    case "cpl":
      return fc
        .record({
          base: nfmBase(ti),
          completerId: u(0xffff),
          status: u(7),
          bcm: fc.boolean(),
          byteCount: u(4095).map((n) => n + 1),
          requesterId: u(0xffff),
          tag: u(0x3ff),
          lowerAddress: u(0x7f),
        })
        .map(({ base, ...r }) => ({ kind: "cpl" as const, ...base, ...r }));
    default:
      return fc
        .record({
          base: nfmBase(ti),
          requesterId: u(0xffff),
          tag: u(0x3ff),
          messageCode: u(255),
          dw2: u32,
          dw3: u32,
        })
        .map(({ base, ...r }) => ({ kind: "msg" as const, ...base, ...r }));
  }
}

const nfmPrefix: fc.Arbitrary<TlpPrefix> = fc.oneof(
  u(255).map((hi) => ({ type: 0x90, body: hi << 16 })),
  fc.record({ type: fc.integer({ min: 0x80, max: 0x9f }), body: u(0xffffff) }),
);

/** Valid NFM TLPs, header only, with up to 4 end-to-end and a few local prefixes. */
export const nfmTlp: fc.Arbitrary<NfmTlpInput> = fc
  .constantFrom(...NFM_TYPE_LIST)
  .chain((ti) => fc.record({ header: nfmHeader(ti), prefixes: fc.array(nfmPrefix, { maxLength: 6 }) }))
  .map(({ header, prefixes }) => {
    let e2e = 0;
    const kept = prefixes.filter((p) => (p.type & 0xf0) !== 0x90 || ++e2e <= 4);
    return { mode: "nfm" as const, header, prefixes: kept };
  })
  .map(plain);

const ohcB = fc.record({ st: u(0xffff), ph: u(3), hv: u(3), ama: u(7), av: fc.boolean() });
const ohcC = fc.record({
  requesterSegment: u(255),
  prSentCounter: u(255),
  streamId: u(255),
  subStream: u(7),
  rsv: fc.boolean(),
  k: fc.boolean(),
  t: fc.boolean(),
});

function ohcA(ti: TlpTypeInfo): fc.Arbitrary<OhcA> {
  switch (ti.kind) {
    case "mem":
      return fc.record({
        format: fc.constant("A1" as const),
        nw: fc.boolean(),
        pv: fc.boolean(),
        pmr: fc.boolean(),
        er: fc.boolean(),
        pasid: u(0xfffff),
        lastBe: u(15),
        firstBe: u(15),
      });
    case "cpl":
      return fc.record({
        format: fc.constant("A5" as const),
        destSegment: u(255),
        completerSegment: u(255),
        dsv: fc.boolean(),
        lowerAddress: u(3),
        status: u(7),
      });
    default:
      return fc.record({
        format: fc.constant(
          ti.kind === "io" ? ("A2" as const) : ti.kind === "cfg" ? ("A3" as const) : ("A4" as const),
        ),
        raw: u32,
      });
  }
}

/** A valid flit-mode header of type `ti`. */
export function fmHeader(ti: TlpTypeInfo): fc.Arbitrary<FmHeader> {
  if (ti.kind === "nop") return fc.constant({ kind: "nop" as const, type: 0 as const });
  const base = fc.record({
    type: fc.constant(ti.code),
    tc: u(7),
    ts: u(7),
    attr: u(7),
    length: len,
    ohcA: fc.option(ohcA(ti), { nil: null }),
    ohcB: fc.option(ohcB, { nil: null }),
    ohcC: fc.option(ohcC, { nil: null }),
    ohcE: fc.option(
      fc.constantFrom(1, 2, 4).chain((n) => fc.array(u32, { minLength: n, maxLength: n })),
      { nil: null },
    ),
  });
  const dw1 = { requesterId: u(0xffff), ep: fc.boolean(), tag: u(0x3fff) };
  switch (ti.kind) {
    case "mem":
      return fc
        .record({ base, ...dw1, address: addr(ti.addr64 ? 64 : 32), at: u(3) })
        .map(({ base: b, ...r }) => ({ kind: "mem" as const, ...b, ...r }));
    case "io":
      return fc
        .record({ base, ...dw1, address: addr(32) })
        .map(({ base: b, ...r }) => ({ kind: "io" as const, ...b, ...r }));
    case "cfg":
      return fc
        .record({ base, ...dw1, targetId: u(0xffff), register: u(0x3ff).map((r) => r << 2) })
        .map(({ base: b, ...r }) => ({ kind: "cfg" as const, ...b, ...r }));
    case "cpl":
      return fc
        .record({
          base,
          completerId: u(0xffff),
          ep: fc.boolean(),
          tag: u(0x3fff),
          requesterId: u(0xffff),
          lowerAddress: u(31).map((x) => x << 2),
          byteCount: u(4095).map((n) => n + 1),
        })
        .map(({ base: b, ...r }) => ({ kind: "cpl" as const, ...b, ...r }));
    default:
      return fc
        .record({ base, dws: fc.array(u32, { minLength: 3, maxLength: 3 }) })
        .map(({ base: b, dws }) => ({ kind: "msg" as const, ...b, dws }));
  }
}

/** Valid FM TLPs, header only, with up to 2 local prefixes. */
export const fmTlp: fc.Arbitrary<FmTlpInput> = fc
  .constantFrom(...FM_TYPE_LIST)
  .chain((ti) =>
    fc.record({
      header: fmHeader(ti),
      prefixes: fc.array(fc.record({ type: fc.integer({ min: 0x8d, max: 0x8f }), body: u(0xffffff) }), {
        maxLength: 2,
      }),
    }),
  )
  .map(({ header, prefixes }) => plain({ mode: "fm" as const, header, prefixes }));

/** NFM memory requests and completions that flit mode can express (§8): the translation domain. */
export const nfmTranslatable: fc.Arbitrary<NfmTlpInput> = fc
  .constantFrom(...NFM_TYPE_LIST.filter((t) => t.kind === "mem" || t.kind === "cpl"))
  .chain((ti) => fc.record({ header: nfmHeader(ti), stHi: u(255) }))
  .map(({ header, stHi }) => {
    if (header.kind === "cpl") return { mode: "nfm" as const, header: { ...header, bcm: false } };
    // ExtTPH only with a non-zero ST[15:8] (a zero upper byte translates back as an 8-bit ST).
    const prefixes = header.kind === "mem" && header.tph && stHi ? [{ type: 0x90, body: stHi << 16 }] : [];
    return { mode: "nfm" as const, header, prefixes };
  })
  .map(plain);
